"""How the application service code speaks HTTP to a service: JSON over the
process's outbound client, with no address filter (registrations are the
operator's, and a bridge on loopback or the LAN is the normal case; Synapse
does not filter them either)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import orjson

from hamlet.handlers.appservice.registry import AppService
from hamlet.runtime.clock import Clock
from hamlet.runtime.http_client import HttpClient, IpRangeFilter

MAX_RESPONSE_BYTES = 1024 * 1024
OPERATOR_URLS = IpRangeFilter()


@dataclass(frozen=True, slots=True)
class JsonResponse:
    status: int
    #: The parsed body; None when it is empty or not JSON.
    json: Any


class JsonHttpClient:
    """Raises `HttpClientError` (`RequestTimedOutError` past the timeout)."""

    def __init__(self, client: HttpClient, clock: Clock) -> None:
        self._client = client
        self._clock = clock

    async def request_json(
        self,
        method: str,
        url: str,
        *,
        body: Any = None,
        headers: Mapping[str, str] | None = None,
        timeout_s: float,
    ) -> JsonResponse:
        data = orjson.dumps(body) if body is not None else None
        all_headers = {"Content-Type": "application/json"} if data is not None else {}
        all_headers.update(headers or {})
        resp = await self._client.request(
            method,
            url,
            clock=self._clock,
            timeout_s=timeout_s,
            ip_filter=OPERATOR_URLS,
            headers=all_headers,
            body=data,
            max_body_bytes=MAX_RESPONSE_BYTES,
        )
        try:
            parsed = orjson.loads(resp.body) if resp.body.strip() else None
        except orjson.JSONDecodeError:
            parsed = None
        return JsonResponse(resp.status, parsed)


def app_url(service: AppService, path: str) -> str:
    assert service.url is not None
    return f"{service.url}/_matrix/app/v1{path}"


def hs_headers(service: AppService) -> dict[str, str]:
    return {"Authorization": f"Bearer {service.config.hs_token}"}
