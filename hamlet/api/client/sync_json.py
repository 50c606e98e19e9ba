"""The /sync v3 response body from a `SyncResult`; key order as clients have always seen it."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from hamlet.handlers.sync.results import (
    Ephemeral,
    JoinedRoom,
    LeftRoom,
    RoomsResult,
    StrippedRoom,
    SyncResult,
    Timeline,
)
from hamlet.handlers.user_streams.account_data import AccountDataEntry
from hamlet.handlers.user_streams.presence import PresenceUpdates
from hamlet.handlers.user_streams.receipts import RoomReceipts
from hamlet.handlers.user_streams.typing import RoomTyping

JsonDict = dict[str, Any]


def sync_response(result: SyncResult) -> JsonDict:
    changes = result.device_lists
    return {
        "next_batch": result.next_batch.to_string(),
        "rooms": rooms_json(result.rooms),
        "account_data": {"events": account_data_json(result.account_data)},
        "presence": {"events": presence_json(result.presence)},
        "to_device": {
            "events": [
                {"sender": m.sender, "type": m.type, "content": m.content} for m in result.to_device
            ]
        },
        "device_lists": {"changed": sorted(changes.changed), "left": sorted(changes.left)},
        "device_one_time_keys_count": result.device_keys.one_time_key_counts,
        "device_unused_fallback_key_types": result.device_keys.unused_fallback_key_types,
    }


def rooms_json(rooms: RoomsResult) -> JsonDict:
    return {
        "join": {room_id: joined_room_json(r) for room_id, r in rooms.join.items()},
        "invite": {
            room_id: {"invite_state": stripped_json(r)} for room_id, r in rooms.invite.items()
        },
        "leave": {room_id: left_room_json(r) for room_id, r in rooms.leave.items()},
        "knock": {room_id: {"knock_state": stripped_json(r)} for room_id, r in rooms.knock.items()},
    }


def timeline_json(timeline: Timeline) -> JsonDict:
    return {
        "events": timeline.events,
        "limited": timeline.limited,
        "prev_batch": timeline.prev_batch.to_string(),
    }


def joined_room_json(room: JoinedRoom) -> JsonDict:
    return {
        "timeline": timeline_json(room.timeline),
        "state": {"events": room.state},
        "account_data": {"events": account_data_json(room.account_data)},
        "ephemeral": {"events": [ephemeral_json(e) for e in room.ephemeral]},
        "unread_notifications": {
            "notification_count": room.unread.notification_count,
            "highlight_count": room.unread.highlight_count,
        },
        "summary": {
            "m.heroes": room.summary.heroes,
            "m.joined_member_count": room.summary.joined_member_count,
            "m.invited_member_count": room.summary.invited_member_count,
        },
    }


def left_room_json(room: LeftRoom) -> JsonDict:
    return {
        "timeline": timeline_json(room.timeline),
        "state": {"events": room.state},
        "account_data": {"events": []},
    }


def stripped_json(room: StrippedRoom) -> JsonDict:
    return {
        "events": [
            {"type": e.type, "state_key": e.state_key, "content": e.content, "sender": e.sender}
            for e in room.stripped_state
        ]
    }


def account_data_json(entries: Iterable[AccountDataEntry]) -> list[JsonDict]:
    return [{"type": e.type, "content": e.content} for e in entries]


def presence_json(presence: PresenceUpdates) -> list[JsonDict]:
    return [
        {"type": "m.presence", "sender": s.user_id, "content": s.content(presence.as_of_ms)}
        for s in presence.states
    ]


def ephemeral_json(event: Ephemeral) -> JsonDict:
    if isinstance(event, RoomTyping):
        return {"type": event.type, "content": {"user_ids": list(event.user_ids)}}
    return {"type": event.type, "content": receipts_content(event)}


def receipts_content(room: RoomReceipts) -> JsonDict:
    """`{event_id: {receipt_type: {user_id: {"ts", "thread_id"?}}}}`."""
    return room.content()
