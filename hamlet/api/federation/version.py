"""`GET /_matrix/federation/v1/version`: which server software this is (no authentication)."""

from __future__ import annotations

from typing import Any

from hamlet import __version__
from hamlet.api.request import ApiRequest
from hamlet.api.router import Router

SERVER_SOFTWARE = "Hamlet"


async def version(req: ApiRequest) -> dict[str, Any]:
    return {"server": {"name": SERVER_SOFTWARE, "version": __version__}}


def register(router: Router) -> None:
    router.add("GET", "/_matrix/federation/v1/version", version)
