"""Push notifications: GET /pushers, POST /pushers/set, GET /notifications."""

from __future__ import annotations

from typing import Any

from hamlet.api.request import ApiRequest
from hamlet.api.router import Router


async def get_pushers(req: ApiRequest) -> dict[str, Any]:
    requester = await req.authenticate()
    return {"pushers": await req.hs.pushers.get_pushers(requester.user_id)}


async def set_pusher(req: ApiRequest) -> dict[str, Any]:
    requester = await req.authenticate()
    body = await req.json_object()
    await req.hs.pushers.set_pusher(requester.user_id, requester.device_id, body)
    return {}


async def get_notifications(req: ApiRequest) -> dict[str, Any]:
    requester = await req.authenticate()
    return await req.hs.notifications.get_notifications(
        requester.user_id,
        from_token=req.query.get("from"),
        limit=req.query_int("limit"),
        only=req.query.get("only"),
    )


def register(router: Router) -> None:
    router.add_client("GET", "/pushers", get_pushers)
    router.add_client("POST", "/pushers/set", set_pusher)
    router.add_client("GET", "/notifications", get_notifications)
