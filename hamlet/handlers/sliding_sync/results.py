"""Typed results of a sliding sync request; `api/client/sliding_sync.py` shapes the JSON."""

from __future__ import annotations

from dataclasses import dataclass, field

from hamlet.handlers.e2ee.device_lists import DeviceListChanges
from hamlet.handlers.sync.results import (
    DeviceKeyState,
    JoinedRoom,
    LeftRoom,
    StrippedStateEvent,
    ToDeviceMessage,
)
from hamlet.handlers.user_streams.account_data import AccountDataEntry
from hamlet.handlers.user_streams.receipts import RoomReceipts
from hamlet.handlers.user_streams.typing import RoomTyping


@dataclass(frozen=True, slots=True)
class Hero:
    """A member a client can name an unnamed room after."""

    user_id: str
    displayname: str | None
    avatar_url: str | None


@dataclass(frozen=True, slots=True)
class SlidingRoom:
    membership: str
    #: First time this connection gets the room (or with new parameters).
    initial: bool
    bump_stamp: int
    #: Older events sent again because the room's timeline limit grew.
    expanded_timeline: bool = False
    name: str | None = None
    avatar: str | None = None
    #: Only for rooms without a name.
    heroes: list[Hero] = field(default_factory=list)
    #: None: not said (not a DM, and the connection was never told it is).
    is_dm: bool | None = None
    #: A joined room's timeline, state and counts.
    joined: JoinedRoom | None = None
    #: A room left since the connection had it: its timeline up to the leave.
    left: LeftRoom | None = None
    #: Timeline events that happened since the connection's previous response.
    num_live: int = 0
    invite_state: list[StrippedStateEvent] | None = None


@dataclass(frozen=True, slots=True)
class ToDeviceExtension:
    messages: list[ToDeviceMessage]
    next_batch: str


@dataclass(frozen=True, slots=True)
class E2eeExtension:
    device_lists: DeviceListChanges
    device_keys: DeviceKeyState


@dataclass(frozen=True, slots=True)
class AccountDataExtension:
    global_events: list[AccountDataEntry]
    rooms: dict[str, list[AccountDataEntry]]
    #: The account data stream position these go up to (the next `pos` reads on from it).
    position: int


@dataclass(slots=True)
class SlidingSyncResult:
    pos: str
    lists: dict[str, int]
    rooms: dict[str, SlidingRoom] = field(default_factory=dict)
    to_device: ToDeviceExtension | None = None
    e2ee: E2eeExtension | None = None
    account_data: AccountDataExtension | None = None
    receipts: dict[str, RoomReceipts] | None = None
    typing: dict[str, RoomTyping] | None = None
    #: The response body once encoded, for the identical requests sharing this result.
    encoded: dict[str, bytes] = field(default_factory=dict, compare=False, repr=False)

    def has_news(self) -> bool:
        """Anything a long-poll should return for (key counts alone are not)."""
        e2ee = self.e2ee
        return bool(
            self.rooms
            or (self.to_device is not None and self.to_device.messages)
            or (e2ee is not None and (e2ee.device_lists.changed or e2ee.device_lists.left))
            or self.receipts
            or self.typing
            or (
                self.account_data is not None
                and (self.account_data.global_events or self.account_data.rooms)
            )
        )
