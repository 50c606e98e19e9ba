"""Room history: `GET /rooms/{roomId}/messages` and `/rooms/{roomId}/context/{eventId}`."""

from __future__ import annotations

from typing import Any

from hamlet.api.request import ApiRequest
from hamlet.api.router import Router
from hamlet.handlers.pagination import (
    DEFAULT_LIMIT,
    parse_direction,
    parse_event_filter_param,
    parse_limit,
)


async def get_messages(req: ApiRequest) -> dict[str, Any]:
    requester = await req.hs.auth.get_user_by_req(req, allow_guest=True)
    return await req.hs.pagination.get_messages(
        requester.user_id,
        requester.device_id,
        req.params["roomId"],
        from_token=req.query.get("from"),
        to_token=req.query.get("to"),
        backwards=parse_direction(req.query.get("dir")),
        limit=parse_limit(req.query_int("limit"), DEFAULT_LIMIT),
        event_filter=parse_event_filter_param(req.query.get("filter")),
    )


async def get_context(req: ApiRequest) -> dict[str, Any]:
    requester = await req.hs.auth.get_user_by_req(req, allow_guest=True)
    return await req.hs.pagination.get_context(
        requester.user_id,
        requester.device_id,
        req.params["roomId"],
        req.params["eventId"],
        limit=parse_limit(req.query_int("limit"), DEFAULT_LIMIT),
        event_filter=parse_event_filter_param(req.query.get("filter")),
    )


def register(router: Router) -> None:
    router.add_client("GET", "/rooms/{roomId}/messages", get_messages)
    router.add_client("GET", "/rooms/{roomId}/context/{eventId}", get_context)
