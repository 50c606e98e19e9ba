"""No token, password or shared secret reaches a log record, at any level."""

from __future__ import annotations

import asyncio
import dataclasses
import logging
from collections.abc import Iterator

import pytest

from hamlet.config import ListenerConfig
from hamlet.handlers.accounts.auth import generate_access_token
from hamlet.host.log_redaction import REDACTED, install_redaction, redact
from hamlet.host.process import HostProcess
from hamlet.runtime.logcontext import DEFAULT_LOG_FORMAT
from tests.accounts.conftest import MakeConfig
from tests.support.harness import RecordingHandler

TOKEN = generate_access_token("@alice:a.test")
# The 43 random characters (which may hold "_" themselves) after `syt_<localpart>_`.
SECRET_PART = TOKEN.split("_", 2)[2]
assert len(SECRET_PART) == 43


@pytest.fixture
def redacting() -> Iterator[None]:
    """The host installs redaction process-wide; undo it for the tests that follow."""
    previous = logging.getLogRecordFactory()
    yield
    logging.setLogRecordFactory(previous)


def _rendered(record: logging.LogRecord) -> str:
    """Everything a handler could write of the record."""
    text = logging.Formatter(DEFAULT_LOG_FORMAT).format(record)
    return f"{text} {record.msg!r} {record.args!r} {record.stack_info}"


async def _raw_request(port: int, raw: bytes) -> bytes:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(raw)
    await writer.drain()
    answer = await reader.read(65536)
    writer.close()
    await writer.wait_closed()
    return answer


async def test_malformed_headers_log_no_token(
    make_hs_config: MakeConfig, log_records: RecordingHandler, redacting: None
) -> None:
    config = dataclasses.replace(make_hs_config("a.test"), listeners=(ListenerConfig(port=0),))
    process = HostProcess([config])
    await process.start()
    try:
        (port,) = process.bound_ports
        for raw in (
            # A control character in the value: aiohttp logs the raw header line.
            f"GET / HTTP/1.1\r\nHost: a.test\r\nAuthorization: Bearer {TOKEN}\x01\r\n\r\n",
            # A space before the colon: an invalid header name, logged likewise.
            f"GET / HTTP/1.1\r\nHost: a.test\r\nAuthorization : Bearer {TOKEN}\r\n\r\n",
            f"GET /?access_token={TOKEN} HTTP/1.1\r\nHost: a.test\r\nBad Header: {TOKEN}\r\n\r\n",
        ):
            answer = await _raw_request(port, raw.encode())
            assert answer.startswith(b"HTTP/1.") and b" 400 " in answer.split(b"\r\n")[0]
        # And a well-formed request that is refused, for the ordinary path.
        good = f"GET /_matrix/client/v3/account/whoami?access_token={TOKEN} HTTP/1.1\r\n"
        answer = await _raw_request(
            port, f"{good}Host: a.test\r\nConnection: close\r\n\r\n".encode()
        )
        assert b" 401 " in answer.split(b"\r\n")[0]
    finally:
        await process.stop()

    server_errors = [r for r in log_records.records if r.name == "aiohttp.server"]
    assert len(server_errors) == 3, "aiohttp logged the malformed requests"
    assert all(REDACTED in _rendered(r) for r in server_errors)
    for record in log_records.records:
        assert SECRET_PART not in _rendered(record), record


async def test_normal_records_are_left_alone(
    log_records: RecordingHandler, redacting: None
) -> None:
    install_redaction()
    install_redaction()  # idempotent: one wrapper, not two
    log = logging.getLogger("hamlet.test_redaction")
    log.info("%s - %s - {%s} %d", "1.2.3.4", "a.test", "@bob:a.test", 200)
    try:
        raise ValueError("a bug with no secret")
    except ValueError:
        log.exception("Request failed: %s", "GET /sync")
    log.warning("login failed: %s", {"user": "bob", "password": "hunter2"})

    plain, failure, secret = log_records.records[-3:]
    assert plain.args == ("1.2.3.4", "a.test", "@bob:a.test", 200)
    assert plain.getMessage() == "1.2.3.4 - a.test - {@bob:a.test} 200"
    assert plain.server_name == "unknown_server_from_sentinel_context"  # type: ignore[attr-defined]
    assert failure.exc_info is not None and failure.args == ("GET /sync",)
    assert "ValueError: a bug with no secret" in _rendered(failure)
    assert "hunter2" not in _rendered(secret)
    assert secret.getMessage() == f"login failed: {{'user': 'bob', 'password': '{REDACTED}'}}"


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (f"Authorization: Bearer {TOKEN}", f"Authorization: {REDACTED}"),
        ("b'Authorization: Basic dXNlcjpwdw=='", f"b'Authorization: {REDACTED}'"),
        (f"bearer {TOKEN} more", f"bearer {REDACTED} more"),
        (
            f"GET /sync?since=s1&access_token={TOKEN}&x=1",
            f"GET /sync?since=s1&access_token={REDACTED}&x=1",
        ),
        (
            '{"type": "m.login.password", "password": "p\\"w"}',
            f'{{"type": "m.login.password", "password": "{REDACTED}"}}',
        ),
        (
            '{"new_password": "x", "logout_devices": true}',
            f'{{"new_password": "{REDACTED}", "logout_devices": true}}',
        ),
        ("mac=abc123&nonce=n", f"mac={REDACTED}&nonce=n"),
        (f"token was {TOKEN}.", f"token was syt_{REDACTED}."),
        # Not secrets: left exactly as they were.
        ("token bucket for m.login.token refilled", "token bucket for m.login.token refilled"),
        ("password policy: 8 chars", "password policy: 8 chars"),
    ],
)
def test_redact(text: str, expected: str) -> None:
    assert redact(text) == expected


def test_a_record_with_exc_info_false_is_logged(
    log_records: RecordingHandler, redacting: None
) -> None:
    # asyncio's default exception handler logs like this when there is no exception.
    install_redaction()
    logging.getLogger("asyncio").error("Task was destroyed but it is pending!", exc_info=False)
    (record,) = log_records.matching("Task was destroyed")
    assert record.exc_info is False
