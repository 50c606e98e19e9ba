"""What another server may ask of our users' devices: `/user/keys/query`,
`/user/keys/claim` and `/user/devices/{userId}` (local users only)."""

from __future__ import annotations

from typing import Any

from hamlet.api.federation.signed import signed
from hamlet.api.request import ApiRequest
from hamlet.api.router import Router
from hamlet.handlers.common.errors import MissingParamError

FEDERATION_V1 = "/_matrix/federation/v1"


async def query_keys(req: ApiRequest, origin: str) -> dict[str, Any]:
    body = await req.json_object()
    if "device_keys" not in body:
        raise MissingParamError("Missing param: device_keys")
    return await req.hs.e2e_keys.federation_query(body["device_keys"])


async def claim_keys(req: ApiRequest, origin: str) -> dict[str, Any]:
    body = await req.json_object()
    if "one_time_keys" not in body:
        raise MissingParamError("Missing param: one_time_keys")
    return await req.hs.e2e_keys.federation_claim(body["one_time_keys"])


async def user_devices(req: ApiRequest, origin: str) -> dict[str, Any]:
    return await req.hs.e2e_keys.user_devices(req.params["userId"])


def register(router: Router) -> None:
    router.add("POST", f"{FEDERATION_V1}/user/keys/query", signed(query_keys))
    router.add("POST", f"{FEDERATION_V1}/user/keys/claim", signed(claim_keys))
    router.add("GET", f"{FEDERATION_V1}/user/devices/{{userId}}", signed(user_devices))
