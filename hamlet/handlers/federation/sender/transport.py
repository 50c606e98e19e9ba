"""What the sender needs from the outbound federation client, as a Protocol.

The client signs the request (X-Matrix), finds the destination and raises
on failure. An exception carrying an integer HTTP `status` (or `code`) is
the remote server's answer; any other is a network failure or a timeout.
"""

from __future__ import annotations

from typing import Protocol

from hamlet.core.canonical_json import JsonDict


class TransactionTransport(Protocol):
    async def put_json(
        self, destination: str, path: str, body: JsonDict, *, timeout_ms: int | None = None
    ) -> JsonDict:
        """PUT `body` to `path` on `destination`; the parsed JSON response."""
        ...


def http_status(error: BaseException) -> int | None:
    """The HTTP status of a remote server's error answer; None for a network failure."""
    for name in ("status", "code"):
        value = getattr(error, name, None)
        if isinstance(value, int) and not isinstance(value, bool) and 100 <= value <= 599:
            return value
    return None


def retry_after_ms(error: BaseException) -> int | None:
    """The `retry_after_ms` of a remote server's 429 answer (a JSON body on
    the error, as the federation client keeps it), if it gave a sane one."""
    body = getattr(error, "body", None)
    value = body.get("retry_after_ms") if isinstance(body, dict) else None
    if isinstance(value, int) and not isinstance(value, bool) and value > 0:
        return value
    return None
