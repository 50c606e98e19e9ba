"""`/make_knock` and `/send_knock` (v1): another server's user knocks on one of our rooms."""

from __future__ import annotations

from typing import Any

from hamlet.api.federation.signed import signed
from hamlet.api.request import ApiRequest
from hamlet.api.router import Router
from hamlet.handlers.common.errors import MissingParamError

FEDERATION_V1 = "/_matrix/federation/v1"


async def make_knock(req: ApiRequest, origin: str) -> dict[str, Any]:
    # Unlike make_join's, `ver` is required: knocks came with room version 7.
    versions = req.query.getall("ver", [])
    if not versions:
        raise MissingParamError("Missing query parameter 'ver'")
    return await req.hs.federation_knocks.make_knock(
        origin, req.params["roomId"], req.params["userId"], versions
    )


async def send_knock(req: ApiRequest, origin: str) -> dict[str, Any]:
    pdu = await req.json_object()
    return await req.hs.federation_knocks.send_knock(
        origin, req.params["roomId"], req.params["eventId"], pdu
    )


def register(router: Router) -> None:
    router.add("GET", f"{FEDERATION_V1}/make_knock/{{roomId}}/{{userId}}", signed(make_knock))
    router.add("PUT", f"{FEDERATION_V1}/send_knock/{{roomId}}/{{eventId}}", signed(send_knock))
