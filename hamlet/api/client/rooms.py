"""Rooms: create, send, state, single events, redactions and membership lists."""

from __future__ import annotations

from typing import Any

from hamlet.api.request import ApiRequest
from hamlet.api.router import Router
from hamlet.handlers.admin.users import fake_event_id
from hamlet.handlers.common.errors import (
    BadJsonError,
    InvalidParamError,
    MissingParamError,
    NotFoundError,
)
from hamlet.handlers.common.streams import StreamToken


async def create_room(req: ApiRequest) -> dict[str, Any]:
    requester = await req.hs.auth.get_user_by_req(req)
    body = await req.json_object()
    return await req.hs.room_creation.create_room(requester.user_id, body)


def _txn(req: ApiRequest, user_id: str, device_id: str | None) -> tuple[str, str, str]:
    return (user_id, device_id or "", req.params["txnId"])


def _check_room_id(room_id: str) -> None:
    if not room_id.startswith("!") or ":" not in room_id:
        raise InvalidParamError(f"{room_id!r} is not a room ID")


async def send_event(req: ApiRequest) -> dict[str, Any]:
    requester = await req.hs.auth.get_user_by_req(req)
    room_id = req.params["roomId"]
    _check_room_id(room_id)
    hs = req.hs
    txn = _txn(req, requester.user_id, requester.device_id)
    # A retried transaction gets its event back before any check or rate
    # limit (the client was told nothing, or lost the answer).
    earlier = await hs.event_creator.find_txn(room_id, txn)
    if earlier is not None:
        return {"event_id": earlier.event_id}
    content = await req.json_object()
    await hs.membership.require_joined(requester.user_id, room_id)
    await hs.room_ratelimits.message(requester)
    if requester.shadow_banned:
        # Looks sent; nothing is stored and nobody sees it.
        return {"event_id": fake_event_id()}
    event = await hs.event_creator.send(
        requester.user_id, room_id, req.params["eventType"], content, txn=txn
    )
    return {"event_id": event.event_id}


async def put_state(req: ApiRequest) -> dict[str, Any]:
    requester = await req.hs.auth.get_user_by_req(req)
    room_id = req.params["roomId"]
    _check_room_id(room_id)
    content = await req.json_object()
    event_type = req.params["eventType"]
    state_key = req.params.get("stateKey", "")
    hs = req.hs
    if event_type == "m.room.member":
        membership = content.get("membership")
        if not isinstance(membership, str):
            raise BadJsonError("membership must be a string")
        event = await hs.membership.update_membership(
            requester.user_id,
            room_id,
            state_key,
            membership,
            extra={k: v for k, v in content.items() if k != "membership"},
        )
        return {"event_id": event.event_id}
    await hs.membership.require_joined(requester.user_id, room_id)
    if event_type == "m.room.canonical_alias":
        await hs.directory.check_canonical_alias(room_id, content)
    current = await hs.room_state.get_current_state_event(room_id, event_type, state_key)
    if current is not None and current.sender == requester.user_id and current.content == content:
        # PUT is idempotent: the same state again by the same sender makes
        # no new event (as Synapse).
        return {"event_id": current.event_id}
    event = await hs.event_creator.send(
        requester.user_id, room_id, event_type, content, state_key=state_key
    )
    return {"event_id": event.event_id}


async def get_state_event(req: ApiRequest) -> dict[str, Any]:
    requester = await req.hs.auth.get_user_by_req(req)
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
    requester = await req.hs.auth.get_user_by_req(req)
    room_id = req.params["roomId"]
    state = await req.hs.room_reader.get_state_for_user(requester.user_id, room_id)
    served = await req.hs.room_reader.serialize_state(state)
    return (200, served)


async def get_event(req: ApiRequest) -> dict[str, Any]:
    requester = await req.hs.auth.get_user_by_req(req)
    stored = await req.hs.room_reader.get_event_for_user(
        requester.user_id, req.params["roomId"], req.params["eventId"]
    )
    return await req.hs.event_serializer.serialize_one(
        stored, user_id=requester.user_id, device_id=requester.device_id
    )


async def redact(req: ApiRequest) -> dict[str, Any]:
    requester = await req.hs.auth.get_user_by_req(req)
    room_id = req.params["roomId"]
    _check_room_id(room_id)
    hs = req.hs
    txn = _txn(req, requester.user_id, requester.device_id)
    earlier = await hs.event_creator.find_txn(room_id, txn)
    if earlier is not None:
        return {"event_id": earlier.event_id}
    body = await req.json_object(allow_empty=True)
    await hs.membership.require_joined(requester.user_id, room_id)
    target = req.params["eventId"]
    content: dict[str, Any] = {}
    reason = body.get("reason")
    if reason is not None:
        if not isinstance(reason, str):
            raise BadJsonError("reason must be a string")
        content["reason"] = reason
    event = await hs.event_creator.send(
        requester.user_id,
        room_id,
        "m.room.redaction",
        content,
        redacts=target,
        txn=txn,
    )
    return {"event_id": event.event_id}


async def get_members(req: ApiRequest) -> dict[str, Any]:
    requester = await req.hs.auth.get_user_by_req(req)
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
    requester = await req.hs.auth.get_user_by_req(req)
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
    requester = await req.hs.auth.get_user_by_req(req)
    rooms = await req.hs.rooms_store.get_rooms_for_user(requester.user_id)
    return {"joined_rooms": [m.room_id for m in rooms]}


async def upgrade_room(req: ApiRequest) -> dict[str, Any]:
    requester = await req.hs.auth.get_user_by_req(req)
    room_id = req.params["roomId"]
    _check_room_id(room_id)
    body = await req.json_object()
    if "new_version" not in body:
        raise MissingParamError("Missing new_version")
    new_room_id = await req.hs.room_upgrade.upgrade_room(
        requester.user_id, room_id, body["new_version"]
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
