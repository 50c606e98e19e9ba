"""`GET /hierarchy/{roomId}`: another server reads a space's summary and children
(what it may see: `handlers/spaces/hierarchy.py`)."""

from __future__ import annotations

from typing import Any

from hamlet.api.federation.signed import signed
from hamlet.api.request import ApiRequest
from hamlet.api.router import Router

FEDERATION_V1 = "/_matrix/federation/v1"


async def get_hierarchy(req: ApiRequest, origin: str) -> dict[str, Any]:
    return await req.hs.spaces.get_federation_hierarchy(
        origin, req.params["roomId"], suggested_only=req.query_bool("suggested_only")
    )


def register(router: Router) -> None:
    router.add("GET", f"{FEDERATION_V1}/hierarchy/{{roomId}}", signed(get_hierarchy))
