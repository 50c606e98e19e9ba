"""Room history: `GET /rooms/{roomId}/messages`, `/rooms/{roomId}/context/{eventId}`
and `GET /_matrix/client/v1/rooms/{roomId}/timestamp_to_event` (jump to date)."""

from __future__ import annotations

from typing import Any

from hamlet.api.request import ApiRequest
from hamlet.api.router import Router
from hamlet.handlers.common.errors import MissingParamError
from hamlet.handlers.history.pagination import (
    DEFAULT_LIMIT,
    parse_direction,
    parse_event_filter_param,
    parse_limit,
)


async def get_messages(req: ApiRequest) -> dict[str, Any]:
    requester = await req.authenticate(allow_guest=True)
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
    requester = await req.authenticate(allow_guest=True)
    return await req.hs.pagination.get_context(
        requester.user_id,
        requester.device_id,
        req.params["roomId"],
        req.params["eventId"],
        limit=parse_limit(req.query_int("limit"), DEFAULT_LIMIT),
        event_filter=parse_event_filter_param(req.query.get("filter")),
    )


async def timestamp_to_event(req: ApiRequest) -> dict[str, Any]:
    requester = await req.authenticate()
    ts = req.query_int("ts")
    if ts is None:
        raise MissingParamError("Missing integer query parameter 'ts'")
    return await req.hs.pagination.timestamp_to_event(
        requester.user_id,
        req.params["roomId"],
        ts,
        # `dir` is required by the spec; Synapse defaults to forwards.
        forwards=not parse_direction(req.query.get("dir"), default="f"),
    )


def register(router: Router) -> None:
    router.add("GET", "/_matrix/client/v1/rooms/{roomId}/timestamp_to_event", timestamp_to_event)
    router.add_client("GET", "/rooms/{roomId}/messages", get_messages)
    router.add_client("GET", "/rooms/{roomId}/context/{eventId}", get_context)
