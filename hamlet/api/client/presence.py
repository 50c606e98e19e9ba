"""`PUT/GET /presence/{userId}/status`."""

from __future__ import annotations

from typing import Any

from hamlet.api.request import ApiRequest
from hamlet.api.router import Router
from hamlet.handlers.common.errors import MissingParamError


async def put_status(req: ApiRequest) -> dict[str, Any]:
    requester = await req.authenticate()
    body = await req.json_object()
    if "presence" not in body:
        raise MissingParamError("Missing param: presence")
    await req.hs.presence.set_presence(
        requester.user_id, req.params["userId"], body["presence"], body.get("status_msg")
    )
    return {}


async def get_status(req: ApiRequest) -> dict[str, Any]:
    requester = await req.authenticate()
    return await req.hs.presence.get_presence_for(requester.user_id, req.params["userId"])


def register(router: Router) -> None:
    router.add_client("PUT", "/presence/{userId}/status", put_status)
    router.add_client("GET", "/presence/{userId}/status", get_status)
