"""`/event`, `/state`, `/state_ids` and `/event_auth`: another server reads a
room's DAG (checks in `handlers/federation/room_reads.py`)."""

from __future__ import annotations

from typing import Any

from hamlet.api.federation.signed import signed
from hamlet.api.request import ApiRequest
from hamlet.api.router import Router
from hamlet.handlers.common.errors import MissingParamError

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


def register(router: Router) -> None:
    router.add("GET", f"{FEDERATION_V1}/event/{{eventId}}", signed(get_event))
    router.add("GET", f"{FEDERATION_V1}/state/{{roomId}}", signed(get_state))
    router.add("GET", f"{FEDERATION_V1}/state_ids/{{roomId}}", signed(get_state_ids))
    router.add("GET", f"{FEDERATION_V1}/event_auth/{{roomId}}/{{eventId}}", signed(get_event_auth))
