"""How the application service code speaks HTTP to a service."""

from __future__ import annotations

from typing import Any, Protocol

from hamlet.handlers.appservice.registry import AppService
from hamlet.runtime.http_client import HttpResponse


class JsonHttp(Protocol):
    """What the application service code needs of an HTTP client."""

    async def request_json(
        self,
        method: str,
        url: str,
        *,
        body: Any = None,
        headers: dict[str, str] | None = None,
        timeout_s: float,
    ) -> HttpResponse: ...


def app_url(service: AppService, path: str) -> str:
    assert service.url is not None
    return f"{service.url}/_matrix/app/v1{path}"


def hs_headers(service: AppService) -> dict[str, str]:
    return {"Authorization": f"Bearer {service.config.hs_token}"}
