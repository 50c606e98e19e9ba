"""`PUT /sendToDevice/{eventType}/{txnId}`."""

from __future__ import annotations

from typing import Any

from hamlet.api.request import ApiRequest
from hamlet.api.router import Router
from hamlet.handlers.common.errors import MissingParamError


async def send_to_device(req: ApiRequest) -> dict[str, Any]:
    requester = await req.authenticate()
    body = await req.json_object()
    if "messages" not in body:
        raise MissingParamError("Missing param: messages")
    await req.hs.to_device.send(
        requester.user_id,
        requester.device_id or "",
        req.params["txnId"],
        req.params["eventType"],
        body["messages"],
        ratelimit_exempt=requester.is_admin,
    )
    return {}


def register(router: Router) -> None:
    router.add_client("PUT", "/sendToDevice/{eventType}/{txnId}", send_to_device)
