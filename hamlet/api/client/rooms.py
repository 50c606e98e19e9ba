"""Rooms: create, send, state, single events, redactions and membership lists."""

from __future__ import annotations

from typing import Any

from hamlet.api.request import ApiRequest
from hamlet.api.router import Router
from hamlet.handlers.common.errors import (
    BadJsonError,
    MatrixError,
    MissingParamError,
    NotFoundError,
)
from hamlet.handlers.common.streams import StreamToken
from hamlet.handlers.rooms.sender import Sender


def _massaged_ts(req: ApiRequest) -> int | None:
    """An application service's `ts` query parameter (ignored for anyone else)."""
    ts = req.query_int("ts")
    if ts is not None and ts < 0:
        raise MatrixError(400, "M_INVALID_PARAM", "Query parameter 'ts' must not be negative")
    return ts


async def create_room(req: ApiRequest) -> dict[str, Any]:
    requester = await req.authenticate()
    body = await req.json_object()
    return await req.hs.event_pipeline.create_room(Sender.of(requester), body)


async def send_event(req: ApiRequest) -> dict[str, Any]:
    requester = await req.authenticate()
    content = await req.json_object()
    event_id = await req.hs.event_pipeline.send(
        Sender.of(requester, ts=_massaged_ts(req)),
        req.params["roomId"],
        req.params["eventType"],
        content,
        txn_id=req.params["txnId"],
    )
    return {"event_id": event_id}


async def put_state(req: ApiRequest) -> dict[str, Any]:
    requester = await req.authenticate()
    content = await req.json_object()
    event_id = await req.hs.event_pipeline.send(
        Sender.of(requester, ts=_massaged_ts(req)),
        req.params["roomId"],
        req.params["eventType"],
        content,
        state_key=req.params.get("stateKey", ""),
    )
    return {"event_id": event_id}


async def get_state_event(req: ApiRequest) -> dict[str, Any]:
    requester = await req.authenticate()
    room_id = req.params["roomId"]
    state = await req.hs.room_reader.get_state_for_user(requester.user_id, room_id)
    key = (req.params["eventType"], req.params.get("stateKey", ""))
    event = state.get(key)
    if event is None:
        raise NotFoundError("Event not found")
    if req.query.get("format") == "event":
        return event.get_client_event()
    return dict(event.content)


async def get_state(req: ApiRequest) -> Any:
    requester = await req.authenticate()
    room_id = req.params["roomId"]
    state = await req.hs.room_reader.get_state_for_user(requester.user_id, room_id)
    served = await req.hs.room_reader.serialize_state(state)
    return (200, served)


async def get_event(req: ApiRequest) -> dict[str, Any]:
    requester = await req.authenticate()
    stored = await req.hs.room_reader.get_event_for_user(
        requester.user_id, req.params["roomId"], req.params["eventId"]
    )
    return await req.hs.event_serializer.serialize_one(
        stored, user_id=requester.user_id, device_id=requester.device_id
    )


async def redact(req: ApiRequest) -> dict[str, Any]:
    requester = await req.authenticate()
    body = await req.json_object(allow_empty=True)
    reason = body.get("reason")
    if reason is not None and not isinstance(reason, str):
        raise BadJsonError("reason must be a string")
    event_id = await req.hs.event_pipeline.redact(
        Sender.of(requester),
        req.params["roomId"],
        req.params["eventId"],
        reason=reason,
        txn_id=req.params["txnId"],
    )
    return {"event_id": event_id}


async def get_members(req: ApiRequest) -> dict[str, Any]:
    requester = await req.authenticate()
    room_id = req.params["roomId"]
    hs = req.hs
    at = req.query.get("at")
    at_stream = StreamToken.parse(at).events if at else None
    membership = req.query.get("membership")
    not_membership = req.query.get("not_membership")
    events = await hs.room_reader.get_member_events_for_user(requester.user_id, room_id, at_stream)
    chunk = [
        e
        for e in events
        if (membership is None or e.content.get("membership") == membership)
        and (not_membership is None or e.content.get("membership") != not_membership)
    ]
    return {"chunk": [e.get_client_event() for e in chunk]}


async def get_joined_members(req: ApiRequest) -> dict[str, Any]:
    requester = await req.authenticate()
    room_id = req.params["roomId"]
    hs = req.hs
    await hs.membership.require_joined(requester.user_id, room_id)
    state = await hs.room_state.get_current_state(room_id)
    joined: dict[str, Any] = {}
    for (event_type, state_key), event in state.items():
        if event_type == "m.room.member" and event.content.get("membership") == "join":
            # Strings the member set, or nothing (the spec has no nulls here).
            name, avatar = event.content.get("displayname"), event.content.get("avatar_url")
            member = joined[state_key] = {}
            if isinstance(name, str):
                member["display_name"] = name
            if isinstance(avatar, str):
                member["avatar_url"] = avatar
    return {"joined": joined}


async def joined_rooms(req: ApiRequest) -> dict[str, Any]:
    requester = await req.authenticate()
    return {"joined_rooms": await req.hs.membership.joined_room_ids(requester.user_id)}


async def upgrade_room(req: ApiRequest) -> dict[str, Any]:
    requester = await req.authenticate()
    body = await req.json_object()
    if "new_version" not in body:
        raise MissingParamError("Missing new_version")
    new_room_id = await req.hs.event_pipeline.upgrade_room(
        Sender.of(requester),
        req.params["roomId"],
        body["new_version"],
        body.get("additional_creators"),
    )
    return {"replacement_room": new_room_id}


def register(router: Router) -> None:
    router.add_client("POST", "/createRoom", create_room)
    router.add_client("PUT", "/rooms/{roomId}/send/{eventType}/{txnId}", send_event)
    router.add_client("PUT", "/rooms/{roomId}/state/{eventType}/{stateKey:[^/]*}", put_state)
    router.add_client("PUT", "/rooms/{roomId}/state/{eventType}", put_state)
    router.add_client("GET", "/rooms/{roomId}/state/{eventType}/{stateKey:[^/]*}", get_state_event)
    router.add_client("GET", "/rooms/{roomId}/state/{eventType}", get_state_event)
    router.add_client("GET", "/rooms/{roomId}/state", get_state)
    router.add_client("GET", "/rooms/{roomId}/event/{eventId}", get_event)
    router.add_client("PUT", "/rooms/{roomId}/redact/{eventId}/{txnId}", redact)
    router.add_client("GET", "/rooms/{roomId}/members", get_members)
    router.add_client("GET", "/rooms/{roomId}/joined_members", get_joined_members)
    router.add_client("GET", "/joined_rooms", joined_rooms)
    router.add_client("POST", "/rooms/{roomId}/upgrade", upgrade_room)
