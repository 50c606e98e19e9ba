"""Simplified sliding sync (MSC4186): room lists by recency, read from the sync providers.

A request names lists (index ranges over the user's joined and invited
rooms, most recently active first) and room subscriptions; the response
carries the rooms in them that this connection does not have yet or that
changed since its `pos`. Rooms come from `RoomSyncBuilder.joined_room`
with a `RoomWindow` per room, the extensions from the same stream
providers /sync v3 reads.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Final

from hamlet.core.filters import RoomEventFilter
from hamlet.handlers.common.errors import InvalidParamError, LimitExceededError
from hamlet.handlers.common.notifier import Notifier
from hamlet.handlers.common.requester import Requester
from hamlet.handlers.common.streams import StreamProvider, StreamToken, SyncScope
from hamlet.handlers.e2ee.device_lists import DeviceListChanges
from hamlet.handlers.e2ee.keys import E2eKeysHandler
from hamlet.handlers.push.rules import PushRulesHandler
from hamlet.handlers.rooms.state import StateHandler
from hamlet.handlers.sliding_sync.connections import Connections, ConnectionState, SentRoom
from hamlet.handlers.sliding_sync.params import LAZY, ME, RoomParams, SlidingSyncParams
from hamlet.handlers.sliding_sync.results import (
    AccountDataExtension,
    E2eeExtension,
    SlidingRoom,
    SlidingSyncResult,
    ToDeviceExtension,
)
from hamlet.handlers.sync.handler import (
    MAX_TIMEOUT_MS,
    SYNC_CAP_RETRY_MS,
    add_push_rules,
    device_key_state,
)
from hamlet.handlers.sync.results import ToDeviceResult
from hamlet.handlers.sync.rooms import WILDCARD, RoomSyncBuilder, RoomWindow
from hamlet.handlers.user_streams.account_data import AccountDataUpdates
from hamlet.runtime.clock import Clock
from hamlet.storage.stores.events import EventsStore
from hamlet.storage.stores.rooms import Membership, RoomsStore

#: Events that move a room up the list (the proposal's "proper" activity).
BUMP_TYPES: Final = frozenset(
    {
        "m.room.create",
        "m.room.message",
        "m.room.encrypted",
        "m.sticker",
        "m.call.invite",
        "m.poll.start",
        "m.beacon_info",
    }
)
#: Rooms built per response; the rest follow in the next one (never all of a huge account at once).
MAX_ROOMS_PER_RESPONSE: Final = 100
LISTED: Final = ("join", "invite")
MEMBER = "m.room.member"


@dataclass(frozen=True, slots=True)
class SlidingSyncRequest:
    requester: Requester
    params: SlidingSyncParams
    pos: str | None
    timeout_ms: int


def window_for(params: RoomParams, user_id: str) -> RoomWindow:
    """`$ME` is the requester; `$LAZY` members are the timeline's senders."""
    pairs = {(t, user_id if k == ME else k) for t, k in params.required_state}
    lazy = (MEMBER, LAZY) in pairs
    state_filter = RoomEventFilter()
    if lazy:
        pairs.discard((MEMBER, LAZY))
        if (MEMBER, WILDCARD) not in pairs:
            pairs.add((MEMBER, WILDCARD))
            state_filter = RoomEventFilter(lazy_load_members=True)
    return RoomWindow(
        params.timeline_limit, state_filter=state_filter, required_state=frozenset(pairs)
    )


class SlidingSyncHandler:
    def __init__(
        self,
        *,
        clock: Clock,
        notifier: Notifier,
        rooms: RoomsStore,
        events: EventsStore,
        state: StateHandler,
        room_builder: RoomSyncBuilder,
        account_data: StreamProvider[AccountDataUpdates],
        to_device: StreamProvider[ToDeviceResult],
        device_lists: StreamProvider[DeviceListChanges],
        e2e_keys: E2eKeysHandler,
        push_rules: PushRulesHandler,
        max_syncs_per_user: int = 10,
    ) -> None:
        self.clock = clock
        self.notifier = notifier
        self.rooms = rooms
        self.events = events
        self.state = state
        self.room_builder = room_builder
        self.account_data = account_data
        self.to_device = to_device
        self.device_lists = device_lists
        self.e2e_keys = e2e_keys
        self.push_rules = push_rules
        self.max_syncs_per_user = max_syncs_per_user
        self.connections = Connections()
        self.active_syncs = 0
        self._per_user: dict[str, int] = {}

    @contextmanager
    def _slot(self, user_id: str) -> Iterator[None]:
        running = self._per_user.get(user_id, 0)
        if running >= self.max_syncs_per_user:
            raise LimitExceededError(
                SYNC_CAP_RETRY_MS, f"Too many concurrent sliding syncs (max {running})"
            )
        self._per_user[user_id] = running + 1
        self.active_syncs += 1
        try:
            yield
        finally:
            self.active_syncs -= 1
            left = self._per_user[user_id] - 1
            if left:
                self._per_user[user_id] = left
            else:
                del self._per_user[user_id]

    async def sync(self, request: SlidingSyncRequest) -> SlidingSyncResult:
        requester = request.requester
        with self._slot(requester.user_id):
            return await self._sync(request)

    async def _sync(self, request: SlidingSyncRequest) -> SlidingSyncResult:
        requester = request.requester
        user_id = requester.user_id
        key = (user_id, requester.device_id, request.params.conn_id or "")
        previous = self.connections.get(key, request.pos) if request.pos is not None else None
        now = self.notifier.current_token()
        result, state = await self._build(request, previous, now)
        if previous is not None and request.timeout_ms > 0:
            deadline = self.clock.monotonic() + min(request.timeout_ms, MAX_TIMEOUT_MS) / 1000
            since = now
            while not result.has_news():
                remaining = deadline - self.clock.monotonic()
                joined = [m.room_id for m in await self.rooms.get_rooms_for_user(user_id)]
                if remaining <= 0 or not await self.notifier.wait_for_change(
                    user_id, joined, since, remaining
                ):
                    break
                since = self.notifier.current_token()
                result, state = await self._build(request, previous, since)
        result.pos = self.connections.add(key, state, reset=previous is None)
        return result

    async def _build(
        self, request: SlidingSyncRequest, previous: ConnectionState | None, now: StreamToken
    ) -> tuple[SlidingSyncResult, ConnectionState]:
        params = request.params
        requester = request.requester
        user_id = requester.user_id
        all_memberships = await self.rooms.get_memberships_of_user(user_id)
        memberships = {
            m.room_id: m
            for m in all_memberships
            if m.membership in LISTED and not m.forgotten and m.stream_ordering <= now.events
        }
        joined = [r for r, m in memberships.items() if m.membership == "join"]
        latest = await self.events.get_latest_positions(joined, now.events, BUMP_TYPES)
        bumps = {r: max(m.stream_ordering, latest.get(r, 0)) for r, m in memberships.items()}
        ordered = sorted(memberships, key=lambda r: (-bumps[r], r))

        wanted: dict[str, RoomParams] = {}
        for room_list in params.lists.values():
            for start, end in room_list.ranges:
                for room_id in ordered[start : end + 1]:
                    have = wanted.get(room_id)
                    wanted[room_id] = room_list.room if have is None else have.merge(room_list.room)
        for room_id, room_params in params.subscriptions.items():
            if room_id in memberships:
                have = wanted.get(room_id)
                wanted[room_id] = room_params if have is None else have.merge(room_params)

        since = previous.token if previous is not None else None
        sent = dict(previous.sent) if previous is not None else {}
        known = [r for r in wanted if r in sent]
        newest = await self.events.get_latest_positions(known, now.events)
        scope = SyncScope(user_id, requester.device_id, frozenset(wanted))
        result = SlidingSyncResult(pos="", lists={name: len(ordered) for name in params.lists})
        await self._left(scope, all_memberships, sent, now, result)
        built = 0
        for room_id, room_params in wanted.items():
            m = memberships[room_id]
            had = sent.get(room_id)
            # A new membership (an invite accepted) starts the room afresh, as do new parameters.
            initial = had is None or had.params != room_params or m.stream_ordering > had.position
            if had is not None and not initial and newest.get(room_id, 0) <= had.position:
                continue
            if built >= MAX_ROOMS_PER_RESPONSE:
                break
            built += 1
            room_since = (
                None if had is None or initial else now.copy_and_replace("events", had.position)
            )
            room = await self._room(scope, m, room_params, room_since, now)
            if room is not None:
                result.rooms[room_id] = room
                sent[room_id] = SentRoom(room_params, now.events)
        await self._extensions(result, request, since, now)
        return result, ConnectionState(now, sent)

    async def _left(
        self,
        scope: SyncScope,
        memberships: list[Membership],
        sent: dict[str, SentRoom],
        now: StreamToken,
        result: SlidingSyncResult,
    ) -> None:
        """Rooms the connection has that the user has left (or was banned
        from) since: their timeline up to the leave, and they are forgotten."""
        for m in memberships:
            had = sent.get(m.room_id)
            if had is None or m.membership not in ("leave", "ban"):
                continue
            if not had.position < m.stream_ordering <= now.events:
                continue
            window = window_for(had.params, scope.user_id)
            left = await self.room_builder.left_room(scope, m, had.position, window)
            result.rooms[m.room_id] = SlidingRoom(
                membership=m.membership,
                initial=False,
                bump_stamp=m.stream_ordering,
                left=left,
                num_live=len(left.timeline.events),
            )
            del sent[m.room_id]

    async def _room(
        self,
        scope: SyncScope,
        membership: Membership,
        params: RoomParams,
        since: StreamToken | None,
        now: StreamToken,
    ) -> SlidingRoom | None:
        room_id = membership.room_id
        initial = since is None
        if membership.membership == "invite":
            stripped = await self.room_builder.stripped_state(membership)
            names = [e for e in stripped if e.type == "m.room.name"]
            name = names[0].content.get("name") if names else None
            return SlidingRoom(
                membership="invite",
                initial=True,
                bump_stamp=membership.stream_ordering,
                name=name if isinstance(name, str) else None,
                invite_state=stripped,
            )
        window = window_for(params, scope.user_id)
        joined = await self.room_builder.joined_room(scope, room_id, since, now, window)
        if joined is None:
            return None
        name_event = await self.state.get_current_state_event(room_id, "m.room.name", "")
        name = name_event.content.get("name") if name_event is not None else None
        latest = await self.events.get_latest_positions([room_id], now.events, BUMP_TYPES)
        return SlidingRoom(
            membership="join",
            initial=initial,
            bump_stamp=max(membership.stream_ordering, latest.get(room_id, 0)),
            name=name if isinstance(name, str) else None,
            joined=joined,
            num_live=0 if initial else len(joined.timeline.events),
        )

    async def _extensions(
        self,
        result: SlidingSyncResult,
        request: SlidingSyncRequest,
        since: StreamToken | None,
        now: StreamToken,
    ) -> None:
        params = request.params
        requester = request.requester
        user_id, device_id = requester.user_id, requester.device_id
        scope = SyncScope(user_id, device_id, frozenset(result.rooms))
        if params.to_device:
            result.to_device = await self._to_device(scope, params.to_device_since, now)
        if params.e2ee:
            keys = await device_key_state(self.e2e_keys, requester)
            changes = (
                await self.device_lists.changes(scope, since, now)
                if since is not None
                else DeviceListChanges()
            )
            result.e2ee = E2eeExtension(changes, keys)
        if params.account_data:
            updates = await self.account_data.changes(scope, since, now)
            if since is None:
                await add_push_rules(updates, self.push_rules, user_id)
            result.account_data = AccountDataExtension(
                updates.global_events, dict(updates.room_events)
            )

    async def _to_device(
        self, scope: SyncScope, since_text: str | None, now: StreamToken
    ) -> ToDeviceExtension:
        """The extension has its own `since`: the device's confirmation of what it got."""
        since = None
        if since_text is not None:
            if not since_text.isdigit() or len(since_text) > 18:
                raise InvalidParamError("extensions.to_device.since is not a valid token")
            since = StreamToken(to_device=int(since_text))
        found = await self.to_device.changes(scope, since, now)
        return ToDeviceExtension(found.messages, str(found.position))
