"""Typed results of /sync: what the providers found, before any JSON.

The API layer (`api/client/sync_json.py`) shapes them into the /sync
response; sliding sync shapes the same per-room results its own way.
Events are already in the client format (`EventSerializer`): how an event is
served depends on the requester (transaction ids, bundled relations,
redactions), which is the handlers' business, not the API's.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from hamlet.handlers.common.streams import StreamToken
from hamlet.handlers.e2ee.device_lists import DeviceListChanges
from hamlet.handlers.user_streams.account_data import AccountDataEntry
from hamlet.handlers.user_streams.presence import PresenceUpdates
from hamlet.handlers.user_streams.receipts import RoomReceipts
from hamlet.handlers.user_streams.typing import RoomTyping

ClientEvent = dict[str, Any]
#: A room's ephemeral events, in the order they are served.
Ephemeral = RoomTyping | RoomReceipts


@dataclass(frozen=True, slots=True)
class StrippedStateEvent:
    """State an invitee or knocker sees before joining."""

    type: str
    state_key: str | None
    content: dict[str, Any]
    sender: str


@dataclass(frozen=True, slots=True)
class Timeline:
    events: list[ClientEvent]
    limited: bool
    #: Where /messages continues backwards from the first event.
    prev_batch: StreamToken


@dataclass(frozen=True, slots=True)
class RoomSummary:
    heroes: list[str]
    joined_member_count: int
    invited_member_count: int


@dataclass(frozen=True, slots=True)
class UnreadCounts:
    notification_count: int
    highlight_count: int


@dataclass(slots=True)
class JoinedRoom:
    timeline: Timeline
    #: State at the start of the timeline (only what the timeline does not carry).
    state: list[ClientEvent]
    account_data: list[AccountDataEntry]
    unread: UnreadCounts
    summary: RoomSummary
    ephemeral: list[Ephemeral] = field(default_factory=list)

    def is_empty(self) -> bool:
        """Nothing to tell in an incremental sync."""
        return not (self.timeline.events or self.state or self.ephemeral or self.account_data)


@dataclass(frozen=True, slots=True)
class LeftRoom:
    timeline: Timeline
    state: list[ClientEvent]


@dataclass(frozen=True, slots=True)
class StrippedRoom:
    """An invited or knocked room: its stripped state."""

    stripped_state: list[StrippedStateEvent]


@dataclass(slots=True)
class RoomsResult:
    join: dict[str, JoinedRoom] = field(default_factory=dict)
    invite: dict[str, StrippedRoom] = field(default_factory=dict)
    leave: dict[str, LeftRoom] = field(default_factory=dict)
    knock: dict[str, StrippedRoom] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class ToDeviceMessage:
    sender: str
    type: str
    content: dict[str, Any]


@dataclass(frozen=True, slots=True)
class ToDeviceResult:
    messages: list[ToDeviceMessage]
    #: How far the messages go: the next token's `to_device` position
    #: (behind `upto` when a batch was cut short).
    position: int


@dataclass(frozen=True, slots=True)
class DeviceKeyState:
    """The requesting device's one-time and fallback key state."""

    one_time_key_counts: dict[str, int]
    unused_fallback_key_types: list[str]


@dataclass(frozen=True, slots=True)
class SyncResult:
    next_batch: StreamToken
    rooms: RoomsResult
    account_data: list[AccountDataEntry]
    presence: PresenceUpdates
    to_device: list[ToDeviceMessage]
    device_lists: DeviceListChanges
    device_keys: DeviceKeyState
    #: The response body once the API has encoded this result, so identical
    #: requests sharing it (see `SyncHandler`) pay for the encoding once.
    encoded: dict[str, bytes] = field(default_factory=dict, compare=False, repr=False)

    def has_news(self) -> bool:
        """Anything for the client in an incremental sync (key counts are always there)."""
        rooms = self.rooms
        return bool(
            rooms.join
            or rooms.invite
            or rooms.leave
            or rooms.knock
            or self.account_data
            or self.presence.states
            or self.to_device
            or self.device_lists.changed
            or self.device_lists.left
        )
