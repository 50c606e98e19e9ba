"""Receipts and read markers: `/rooms/{roomId}/receipt/...` and `/rooms/{roomId}/read_markers`."""

from __future__ import annotations

from typing import Any

from hamlet.api.request import ApiRequest
from hamlet.api.router import Router
from hamlet.handlers.common.errors import BadJsonError, InvalidParamError


async def post_receipt(req: ApiRequest) -> dict[str, Any]:
    requester = await req.authenticate()
    body = await req.json_object(allow_empty=True)
    thread_id = None
    if "thread_id" in body:
        thread_id = body["thread_id"]
        if not isinstance(thread_id, str) or not thread_id:
            raise InvalidParamError("thread_id field must be a non-empty string")
    await req.hs.receipts.received_client_receipt(
        requester.user_id,
        req.params["roomId"],
        req.params["receiptType"],
        req.params["eventId"],
        thread_id,
    )
    return {}


def _event_id(body: dict[str, Any], key: str) -> str | None:
    value = body.get(key)
    if value is not None and not isinstance(value, str):
        raise BadJsonError(f"'{key}' must be an event ID")
    return value


async def post_read_markers(req: ApiRequest) -> dict[str, Any]:
    requester = await req.authenticate()
    body = await req.json_object()
    await req.hs.receipts.set_read_markers(
        requester.user_id,
        req.params["roomId"],
        fully_read=_event_id(body, "m.fully_read"),
        read=_event_id(body, "m.read"),
        read_private=_event_id(body, "m.read.private"),
    )
    return {}


def register(router: Router) -> None:
    router.add_client("POST", "/rooms/{roomId}/receipt/{receiptType}/{eventId}", post_receipt)
    router.add_client("POST", "/rooms/{roomId}/read_markers", post_read_markers)
