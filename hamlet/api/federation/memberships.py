"""`/invite` (v2), `/make_leave` and `/send_leave` (v2): invites of our
users to other servers' rooms, and other servers' users leaving ours."""

from __future__ import annotations

from typing import Any

from hamlet.api.federation.signed import signed
from hamlet.api.request import ApiRequest
from hamlet.api.router import Router

FEDERATION_V1 = "/_matrix/federation/v1"
FEDERATION_V2 = "/_matrix/federation/v2"


async def invite(req: ApiRequest, origin: str) -> dict[str, Any]:
    body = await req.json_object()
    return await req.hs.federation_invites.on_invite(
        origin, req.params["roomId"], req.params["eventId"], body
    )


async def make_leave(req: ApiRequest, origin: str) -> dict[str, Any]:
    return await req.hs.federation_leaves.make_leave(
        origin, req.params["roomId"], req.params["userId"]
    )


async def send_leave(req: ApiRequest, origin: str) -> dict[str, Any]:
    pdu = await req.json_object()
    return await req.hs.federation_leaves.send_leave(
        origin, req.params["roomId"], req.params["eventId"], pdu
    )


def register(router: Router) -> None:
    router.add("PUT", f"{FEDERATION_V2}/invite/{{roomId}}/{{eventId}}", signed(invite))
    router.add("GET", f"{FEDERATION_V1}/make_leave/{{roomId}}/{{userId}}", signed(make_leave))
    router.add("PUT", f"{FEDERATION_V2}/send_leave/{{roomId}}/{{eventId}}", signed(send_leave))
