"""Secrets never reach a log: every record is scrubbed when it is created.

Our own code never logs a token, but libraries do: aiohttp's server logger
writes the offending raw header line (`Authorization: Bearer syt_...`) at
ERROR when a request header is malformed. So the host wraps the log-record
factory: a record whose message, traceback or stack text holds an
`Authorization` value, a `Bearer` token, an `access_token=`-style query
parameter, a `"password": ...`-style field or a `syt_`/`syr_` token gets that
value replaced by `<redacted>` before any handler, filter or formatter sees
it. Records holding nothing secret are left exactly as they were (their
`msg` and `args` untouched), so structured consumers of records keep working.

Installed by the host (`setup_logging` and `HostProcess.start`), once per
process, over whatever factory is current (the logging context's).
"""

from __future__ import annotations

import logging
import re
import traceback
from typing import Any, Final

REDACTED: Final = "<redacted>"

# Names whose values are secrets, as query parameters or JSON/dict fields.
_SECRET_NAMES: Final = (
    r"access_token|refresh_token|login_token|token|password|new_password|"
    r"registration_shared_secret|shared_secret|client_secret|secret|mac"
)

_PATTERNS: Final = (
    # A header line or repr: `Authorization: Bearer x`, `'Authorization': 'Basic x'`.
    (
        re.compile(r"(authorization['\"]?\s*[:=]\s*['\"]?)[^\r\n'\",]+", re.IGNORECASE),
        rf"\1{REDACTED}",
    ),
    (re.compile(r"(\bbearer\s+)[^\s'\",]+", re.IGNORECASE), rf"\1{REDACTED}"),
    # Query strings and form bodies: `?access_token=x&...`.
    (
        re.compile(rf"((?:^|[?&;\s])(?:{_SECRET_NAMES})=)[^&\s'\"]+", re.IGNORECASE),
        rf"\1{REDACTED}",
    ),
    # JSON or Python reprs: `"password": "x"`, `'new_password': 'x'`.
    (
        re.compile(rf"""(['"](?:{_SECRET_NAMES})['"]\s*:\s*)(['"])(?:\\.|(?!\2).)*\2""", re.I),
        rf"\1\2{REDACTED}\2",
    ),
    # Synapse-format tokens wherever they appear.
    (re.compile(r"\b(sy[trl]_)[A-Za-z0-9_\-]+"), rf"\1{REDACTED}"),
)


def redact(text: str) -> str:
    for pattern, replacement in _PATTERNS:
        text = pattern.sub(replacement, text)
    return text


def _scrub(record: logging.LogRecord) -> None:
    try:
        message = record.getMessage()
    except Exception:
        # A broken format string: the handler reports it; there is no text to scrub.
        message = None
    if message is not None:
        clean = redact(message)
        if clean != message:
            record.msg, record.args = clean, ()
    # exc_info may be False: asyncio logs `exc_info=False` when there is no exception.
    if record.exc_info and record.exc_info[0] is not None:
        text = "".join(traceback.format_exception(*record.exc_info)).rstrip("\n")
        clean = redact(text)
        if clean != text:
            # Formatters print `exc_text` when it is set; the live exception
            # (whose message holds the secret) is dropped from the record.
            record.exc_text, record.exc_info = clean, None
    if record.stack_info:
        record.stack_info = redact(record.stack_info)


def install_redaction() -> None:
    """Scrub every log record of this process from now on (idempotent)."""
    previous = logging.getLogRecordFactory()
    if getattr(previous, "_hamlet_redacting", False):
        return

    def factory(*args: Any, **kwargs: Any) -> logging.LogRecord:
        record = previous(*args, **kwargs)
        _scrub(record)
        return record

    factory._hamlet_redacting = True  # type: ignore[attr-defined]
    logging.setLogRecordFactory(factory)
