"""What delivery needs from the outbound HTTP client, and that client's adapter.

Gateway URLs are chosen by users, so every request goes through the
configured `ip_range_blacklist` / `ip_range_whitelist`, checked when
connecting (runtime/http_client.py).
"""

from __future__ import annotations

from typing import Any, Final, Protocol

import orjson

from hamlet.core.canonical_json import JsonDict
from hamlet.runtime.clock import Clock
from hamlet.runtime.http_client import (
    BlockedAddressError,
    HttpClient,
    HttpClientError,
    IpRangeFilter,
)

#: A gateway's answer is small (`{"rejected": [...]}`); more is refused.
MAX_ANSWER_BYTES: Final = 64 * 1024


class GatewayError(Exception):
    """No answer from the gateway: unreachable, too slow, refused address."""

    def __init__(self, message: str, *, blocked: bool = False) -> None:
        super().__init__(message)
        self.blocked = blocked


class GatewayClient(Protocol):
    async def post_json(self, url: str, body: JsonDict, timeout_s: float) -> tuple[int, Any]:
        """POST `body`; (status, parsed JSON answer or None). Raises
        `GatewayError` when there is no answer."""
        ...


class HttpGatewayClient:
    def __init__(self, http: HttpClient, clock: Clock, ip_filter: IpRangeFilter) -> None:
        self._http = http
        self._clock = clock
        self._filter = ip_filter

    async def post_json(self, url: str, body: JsonDict, timeout_s: float) -> tuple[int, Any]:
        try:
            response = await self._http.request(
                "POST",
                url,
                clock=self._clock,
                timeout_s=timeout_s,
                ip_filter=self._filter,
                headers={"Content-Type": "application/json"},
                body=orjson.dumps(body),
                max_body_bytes=MAX_ANSWER_BYTES,
            )
        except BlockedAddressError as e:
            raise GatewayError(str(e), blocked=True) from e
        except HttpClientError as e:
            raise GatewayError(str(e)) from e
        try:
            answer = orjson.loads(response.body) if response.body else None
        except orjson.JSONDecodeError:
            answer = None
        return response.status, answer
