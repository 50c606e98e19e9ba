"""`/event`, `/state`, `/state_ids`, `/event_auth`, `/backfill` and
`/get_missing_events`: another server reads a room's DAG (checks in
`handlers/federation/room_reads.py`)."""

from __future__ import annotations

from typing import Any

from hamlet.api.federation.signed import signed
from hamlet.api.request import ApiRequest
from hamlet.api.router import Router
from hamlet.handlers.common.errors import BadJsonError, MissingParamError

FEDERATION_V1 = "/_matrix/federation/v1"


def _event_id(req: ApiRequest) -> str:
    value = req.query.get("event_id")
    if not value:
        raise MissingParamError("Missing string query parameter 'event_id'")
    return value


async def get_event(req: ApiRequest, origin: str) -> dict[str, Any]:
    return await req.hs.federation_room_reads.event(origin, req.params["eventId"])


async def get_state(req: ApiRequest, origin: str) -> dict[str, Any]:
    reads = req.hs.federation_room_reads
    return await reads.state(origin, req.params["roomId"], _event_id(req))


async def get_state_ids(req: ApiRequest, origin: str) -> dict[str, Any]:
    reads = req.hs.federation_room_reads
    return await reads.state_ids(origin, req.params["roomId"], _event_id(req))


async def get_event_auth(req: ApiRequest, origin: str) -> dict[str, Any]:
    reads = req.hs.federation_room_reads
    return await reads.event_auth(origin, req.params["roomId"], req.params["eventId"])


async def get_backfill(req: ApiRequest, origin: str) -> dict[str, Any]:
    starts = req.query.getall("v", [])
    limit = req.query_int("limit", 10) or 0
    reads = req.hs.federation_room_reads
    return await reads.backfill(origin, req.params["roomId"], list(starts), limit)


def _event_ids(body: dict[str, Any], key: str) -> list[str]:
    value = body.get(key, [])
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise BadJsonError(f"{key!r} must be a list of event IDs")
    return value


async def post_missing_events(req: ApiRequest, origin: str) -> dict[str, Any]:
    body = await req.json_object()
    limit, min_depth = body.get("limit", 10), body.get("min_depth", 0)
    if not isinstance(limit, int) or not isinstance(min_depth, int):
        raise BadJsonError("'limit' and 'min_depth' must be integers")
    return await req.hs.federation_room_reads.missing_events(
        origin,
        req.params["roomId"],
        _event_ids(body, "earliest_events"),
        _event_ids(body, "latest_events"),
        limit,
        min_depth,
    )


def register(router: Router) -> None:
    router.add("GET", f"{FEDERATION_V1}/event/{{eventId}}", signed(get_event))
    router.add("GET", f"{FEDERATION_V1}/state/{{roomId}}", signed(get_state))
    router.add("GET", f"{FEDERATION_V1}/state_ids/{{roomId}}", signed(get_state_ids))
    router.add("GET", f"{FEDERATION_V1}/event_auth/{{roomId}}/{{eventId}}", signed(get_event_auth))
    router.add("GET", f"{FEDERATION_V1}/backfill/{{roomId}}", signed(get_backfill))
    router.add(
        "POST", f"{FEDERATION_V1}/get_missing_events/{{roomId}}", signed(post_missing_events)
    )
