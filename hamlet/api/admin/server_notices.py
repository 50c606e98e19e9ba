"""Sending server notices: /_synapse/admin/v1/send_server_notice[/{txnId}]."""

from __future__ import annotations

from typing import Any

from hamlet.api.admin.auth import require_admin
from hamlet.api.request import ApiRequest
from hamlet.api.router import Router
from hamlet.handlers.common.errors import BadJsonError, MissingParamError

BASE = "/_synapse/admin/v1/send_server_notice"


async def _send(req: ApiRequest, txn_id: str | None) -> dict[str, Any]:
    requester = await require_admin(req)
    body = await req.json_object()
    missing = [k for k in ("user_id", "content") if k not in body]
    if missing:
        raise MissingParamError(f"Missing params: {missing}")
    user_id = body["user_id"]
    content = body["content"]
    event_type = body.get("type", "m.room.message")
    state_key = body.get("state_key")
    if not isinstance(user_id, str):
        raise BadJsonError("user_id must be a string")
    if not isinstance(content, dict):
        raise BadJsonError("content must be an object")
    if not isinstance(event_type, str):
        raise BadJsonError("type must be a string")
    if state_key is not None and not isinstance(state_key, str):
        raise BadJsonError("state_key must be a string")
    scope = f"{requester.user_id} {requester.device_id or ''}"
    event_id = await req.hs.server_notices.send_notice(
        user_id,
        content,
        event_type=event_type,
        state_key=state_key,
        txn=(scope, txn_id) if txn_id is not None else None,
    )
    return {"event_id": event_id}


async def post_notice(req: ApiRequest) -> dict[str, Any]:
    return await _send(req, None)


async def put_notice(req: ApiRequest) -> dict[str, Any]:
    return await _send(req, req.params["txnId"])


def register(router: Router) -> None:
    router.add("POST", BASE, post_notice)
    router.add("PUT", f"{BASE}/{{txnId}}", put_notice)
