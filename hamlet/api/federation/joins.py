"""`/make_join` and `/send_join` (v2): another server's user joins one of our rooms."""

from __future__ import annotations

from typing import Any

from hamlet.api.federation.signed import signed
from hamlet.api.request import ApiRequest
from hamlet.api.router import Router

FEDERATION_V1 = "/_matrix/federation/v1"
FEDERATION_V2 = "/_matrix/federation/v2"


async def make_join(req: ApiRequest, origin: str) -> dict[str, Any]:
    # Without `ver` the joining server only knows room version 1 (the spec's default).
    versions = req.query.getall("ver", []) or ["1"]
    return await req.hs.federation_joins.make_join(
        origin, req.params["roomId"], req.params["userId"], versions
    )


async def send_join(req: ApiRequest, origin: str) -> dict[str, Any]:
    pdu = await req.json_object()
    return await req.hs.federation_joins.send_join(
        origin, req.params["roomId"], req.params["eventId"], pdu
    )


def register(router: Router) -> None:
    router.add("GET", f"{FEDERATION_V1}/make_join/{{roomId}}/{{userId}}", signed(make_join))
    router.add("PUT", f"{FEDERATION_V2}/send_join/{{roomId}}/{{eventId}}", signed(send_join))
