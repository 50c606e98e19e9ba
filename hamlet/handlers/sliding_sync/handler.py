"""Simplified sliding sync (MSC4186): room lists by recency, read from the sync providers.

A request names lists (index ranges over the user's joined and invited
rooms, most recently active first) and room subscriptions; the response
carries the rooms in them that this connection does not have yet or that
changed since its `pos`. Rooms come from `RoomSyncBuilder.joined_room`
with a `RoomWindow` per room, the extensions from the same stream
providers /sync v3 reads.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Hashable
from dataclasses import dataclass
from typing import Any, Final, TypeVar

from hamlet.core.events import Event
from hamlet.core.filters import RoomEventFilter
from hamlet.handlers.common.errors import InvalidParamError, LimitExceededError
from hamlet.handlers.common.notifier import Notifier
from hamlet.handlers.common.requester import Requester
from hamlet.handlers.common.shared import SharedComputations
from hamlet.handlers.common.streams import StreamProvider, StreamToken, SyncScope
from hamlet.handlers.common.work_slots import WorkSlots
from hamlet.handlers.e2ee.device_lists import DeviceListChanges
from hamlet.handlers.e2ee.keys import E2eKeysHandler
from hamlet.handlers.push.rules import PushRulesHandler
from hamlet.handlers.rooms.state import StateHandler
from hamlet.handlers.sliding_sync.connections import Connections, ConnectionState, SentRoom
from hamlet.handlers.sliding_sync.filters import RoomFacts
from hamlet.handlers.sliding_sync.params import (
    ALL,
    LAZY,
    ME,
    ExtensionScope,
    RoomParams,
    SlidingSyncParams,
)
from hamlet.handlers.sliding_sync.results import (
    AccountDataExtension,
    E2eeExtension,
    Hero,
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
from hamlet.handlers.sync.results import ClientEvent, StrippedStateEvent, ToDeviceResult
from hamlet.handlers.sync.rooms import WILDCARD, RoomSyncBuilder, RoomWindow
from hamlet.handlers.user_streams.account_data import AccountDataHandler
from hamlet.handlers.user_streams.receipts import RoomReceipts
from hamlet.handlers.user_streams.typing import RoomTyping
from hamlet.runtime.clock import Clock
from hamlet.storage.stores.events import EventsStore
from hamlet.storage.stores.rooms import Membership, RoomsStore

logger = logging.getLogger(__name__)
T = TypeVar("T")

#: Events that move a room up the list (the proposal's "proper" activity,
#: Synapse's DEFAULT_BUMP_EVENT_TYPES); the user's own membership does too.
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
#: Memberships whose rooms are listed; a leave only if someone else sent it (a kick).
LISTED: Final = ("join", "invite", "knock", "ban")
#: Memberships of rooms the user is out of; listed (kicked, banned) up to that event.
GONE: Final = ("leave", "ban")
STRIPPED: Final = ("invite", "knock")
MEMBER = "m.room.member"
NAME = "m.room.name"
AVATAR = "m.room.avatar"


@dataclass(frozen=True, slots=True)
class SlidingSyncRequest:
    requester: Requester
    params: SlidingSyncParams
    pos: str | None
    timeout_ms: int

    def sharing_key(self) -> Hashable:
        """Requests with the same key get the same response (a retry storm
        of one client costs one computation)."""
        r = self.requester
        return (
            r.user_id,
            r.device_id,
            r.token_id,
            self.pos,
            self.timeout_ms,
            self.params.sharing_key(),
        )


@dataclass(frozen=True, slots=True)
class RoomChange:
    """How a room's parameters moved since the connection last had it."""

    #: Never sent, or sent under another membership: everything afresh.
    initial: bool = False
    #: A bigger timeline than before: the newest events again, older ones included.
    expanded: bool = False
    #: `required_state` pairs the client did not ask for before.
    added_state: frozenset[tuple[str, str]] = frozenset()

    @classmethod
    def between(cls, old: RoomParams, new: RoomParams) -> RoomChange:
        return cls(
            expanded=new.timeline_limit > old.timeline_limit,
            added_state=new.required_state - old.required_state,
        )


def scoped_rooms(
    scope: ExtensionScope, list_rooms: dict[str, list[str]], subscribed: list[str]
) -> set[str]:
    """The rooms an extension covers: of the lists and subscriptions it names
    (as Synapse: `*` is all of them, an unknown name none)."""
    rooms: set[str] = set()
    if scope.rooms is not None:
        rooms.update(r for r in subscribed if ALL in scope.rooms or r in scope.rooms)
    if scope.lists is not None:
        for name, ids in list_rooms.items():
            if ALL in scope.lists or name in scope.lists:
                rooms.update(ids)
    return rooms


@dataclass(frozen=True, slots=True)
class ExtensionRooms:
    """What a room-scoped extension (receipts, typing) works on."""

    user_id: str
    device_id: str | None
    rooms: frozenset[str]
    #: Rooms this response sends afresh (all of them on a first request):
    #: they get current data, not changes.
    fresh: frozenset[str]
    #: Event ids of the timeline sent for each fresh room.
    timelines: dict[str, frozenset[str]]
    since: StreamToken | None
    now: StreamToken

    @classmethod
    def of(
        cls,
        scope: SyncScope,
        rooms: set[str],
        result: SlidingSyncResult,
        since: StreamToken | None,
        now: StreamToken,
    ) -> ExtensionRooms:
        sent = result.rooms
        fresh = frozenset(r for r in rooms if since is None or (r in sent and sent[r].initial))
        timelines = {
            r: frozenset(e["event_id"] for e in joined.timeline.events)
            for r in fresh
            if r in sent and (joined := sent[r].joined) is not None
        }
        return cls(scope.user_id, scope.device_id, frozenset(rooms), fresh, timelines, since, now)

    async def read(
        self, provider: StreamProvider[dict[str, T]]
    ) -> tuple[dict[str, T], dict[str, T]]:
        """The provider's changes since `pos` in the rooms not fresh, and its
        current data of the fresh ones."""
        changed: dict[str, T] = {}
        current: dict[str, T] = {}
        others = self.rooms - self.fresh
        if self.since is not None and others:
            changed = await provider.changes(self._scope(others), self.since, self.now)
        if self.fresh:
            current = await provider.changes(self._scope(self.fresh), None, self.now)
        return changed, current

    def _scope(self, rooms: frozenset[str]) -> SyncScope:
        return SyncScope(self.user_id, self.device_id, rooms)


def _text(value: Any) -> str | None:
    return value if isinstance(value, str) else None


def _content(event: Event | None, key: str) -> str | None:
    return _text(event.content.get(key)) if event is not None else None


def _stripped_content(stripped: list[StrippedStateEvent], event_type: str, key: str) -> str | None:
    found = [e for e in stripped if e.type == event_type]
    return _text(found[0].content.get(key)) if found else None


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
        # A StreamProvider too; the concrete type for DMs and tags.
        account_data: AccountDataHandler,
        receipts: StreamProvider[dict[str, RoomReceipts]],
        typing: StreamProvider[dict[str, RoomTyping]],
        to_device: StreamProvider[ToDeviceResult],
        device_lists: StreamProvider[DeviceListChanges],
        e2e_keys: E2eKeysHandler,
        push_rules: PushRulesHandler,
        connections: Connections,
        max_syncs_per_user: int = 10,
        build_slots: WorkSlots | None = None,
    ) -> None:
        self.clock = clock
        self.notifier = notifier
        self.rooms = rooms
        self.events = events
        self.state = state
        self.room_builder = room_builder
        self.account_data = account_data
        self.build_slots = build_slots or WorkSlots(2, 8)
        self.receipts = receipts
        self.typing = typing
        self.to_device = to_device
        self.device_lists = device_lists
        self.e2e_keys = e2e_keys
        self.push_rules = push_rules
        self.max_syncs_per_user = max_syncs_per_user
        self.connections = connections
        self.active_syncs = 0
        # Run under the logging context of the request that starts it (its
        # logs and database time are that request's), shared with the others.
        self._shared: SharedComputations[SlidingSyncResult] = SharedComputations(
            clock.run_in_background,
            max_syncs_per_user,
            lambda running: LimitExceededError(
                SYNC_CAP_RETRY_MS, f"Too many concurrent sliding syncs (max {running})"
            ),
        )

    async def sync(self, request: SlidingSyncRequest) -> SlidingSyncResult:
        self.active_syncs += 1
        try:
            return await self._shared.join(
                request.sharing_key(), request.requester.user_id, lambda: self._sync(request)
            )
        finally:
            self.active_syncs -= 1

    @property
    def computations(self) -> int:
        """Sliding sync computations in flight (each serving one or more requests)."""
        return self._shared.computations

    async def _sync(self, request: SlidingSyncRequest) -> SlidingSyncResult:
        requester = request.requester
        user_id = requester.user_id
        key = (user_id, requester.device_id, request.params.conn_id or "")
        base = await self.connections.get(key, request.pos) if request.pos is not None else None
        previous = base.state if base is not None else None
        result, state, since = await self._build_in_slot(request, previous)
        if previous is not None and request.timeout_ms > 0:
            deadline = self.clock.monotonic() + min(request.timeout_ms, MAX_TIMEOUT_MS) / 1000
            while not result.has_news():
                remaining = deadline - self.clock.monotonic()
                joined = [m.room_id for m in await self.rooms.get_rooms_for_user(user_id)]
                if remaining <= 0 or not await self.notifier.wait_for_change(
                    user_id, joined, since, remaining
                ):
                    break
                result, state, since = await self._build_in_slot(request, previous)
        result.pos = await self.connections.add(key, base, state)
        return result

    async def _build_in_slot(
        self, request: SlidingSyncRequest, previous: ConnectionState | None
    ) -> tuple[SlidingSyncResult, ConnectionState, StreamToken]:
        """A build in one of the user's build slots (/sync's), as of the
        token when it got one; and that token."""
        async with self.build_slots.slot(request.requester.user_id):
            now = self.notifier.current_token()
            result, state = await self._build(request, previous, now)
        return result, state, now

    async def _build(
        self, request: SlidingSyncRequest, previous: ConnectionState | None, now: StreamToken
    ) -> tuple[SlidingSyncResult, ConnectionState]:
        params = request.params
        requester = request.requester
        user_id = requester.user_id
        all_memberships = await self.rooms.get_memberships_of_user(user_id)
        memberships = await self._listed(user_id, all_memberships, now)
        joined = [r for r, m in memberships.items() if m.membership == "join"]
        latest = await self.events.get_latest_positions(joined, now.events, BUMP_TYPES)
        bumps = {r: max(m.stream_ordering, latest.get(r, 0)) for r, m in memberships.items()}
        ordered = sorted(memberships, key=lambda r: (-bumps[r], r))
        facts = RoomFacts(
            user_id=user_id,
            memberships=memberships,
            rooms=self.rooms,
            state=self.state,
            account_data=self.account_data,
        )

        wanted: dict[str, RoomParams] = {}
        counts: dict[str, int] = {}
        list_rooms: dict[str, list[str]] = {}
        for name, room_list in params.lists.items():
            matching = await facts.apply(room_list.filters, ordered)
            counts[name] = len(matching)
            in_range = list_rooms[name] = []
            for start, end in room_list.ranges:
                for room_id in matching[start : end + 1]:
                    in_range.append(room_id)
                    have = wanted.get(room_id)
                    wanted[room_id] = room_list.room if have is None else have.merge(room_list.room)
        subscribed = [
            r
            for r in params.subscriptions
            if r in memberships and r not in params.unsubscribe_rooms
        ]
        for room_id in subscribed:
            room_params = params.subscriptions[room_id]
            have = wanted.get(room_id)
            wanted[room_id] = room_params if have is None else have.merge(room_params)

        since = previous.token if previous is not None else None
        sent = dict(previous.sent) if previous is not None else {}
        for room_id in params.unsubscribe_rooms:
            # The client dropped the room: if it comes back, it comes back afresh.
            if room_id not in wanted:
                sent.pop(room_id, None)
        known = [r for r in wanted if r in sent]
        newest = await self.events.get_latest_positions(known, now.events)
        scope = SyncScope(user_id, requester.device_id, frozenset(wanted))
        result = SlidingSyncResult(pos="", lists=counts)
        await self._left(scope, all_memberships, memberships, sent, now, result)
        dms = await facts.dm_rooms()
        built = 0
        for room_id, room_params in wanted.items():
            m = memberships[room_id]
            had = sent.get(room_id)
            is_dm = room_id in dms
            if had is None or (m.stream_ordering > had.position and m.membership not in GONE):
                # A new membership (an invite accepted) starts the room afresh.
                change = RoomChange(initial=True)
            elif m.stream_ordering > had.position:
                # Kicked or banned since: the timeline up to it.
                change = RoomChange()
            else:
                change = RoomChange.between(had.params, room_params)
                news = m.membership == "join" and newest.get(room_id, 0) > had.position
                if not (news or change.expanded or change.added_state or had.is_dm != is_dm):
                    # Less asked of it (a smaller window): nothing to send now.
                    sent[room_id] = SentRoom(room_params, had.position, had.is_dm)
                    continue
            if built >= MAX_ROOMS_PER_RESPONSE:
                break
            built += 1
            room = await self._room(
                scope,
                m,
                room_params,
                change,
                had,
                now,
                # `false` only to a connection told `true` before.
                is_dm=is_dm if is_dm or (had is not None and had.is_dm) else None,
                bump_stamp=bumps[room_id],
            )
            if room is not None:
                result.rooms[room_id] = room
                sent[room_id] = SentRoom(room_params, now.events, is_dm)
        await self._extensions(result, request, since, now, list_rooms, subscribed)
        if result.account_data is not None:
            # A page of account data: the rest comes with the next `pos`.
            now = now.copy_and_replace("account_data", result.account_data.position)
        return result, ConnectionState(now, sent)

    async def _listed(
        self, user_id: str, memberships: list[Membership], now: StreamToken
    ) -> dict[str, Membership]:
        """The rooms lists hold, as Synapse: joined, invited, knocked, banned
        and kicked from; not those the user left (nor forgot)."""
        current = [m for m in memberships if not m.forgotten and m.stream_ordering <= now.events]
        leaves = [m.event_id for m in current if m.membership == "leave"]
        events = await self.state.event_cache.get_many(leaves) if leaves else {}
        return {
            m.room_id: m
            for m in current
            if m.membership in LISTED
            or (
                m.membership == "leave"
                and m.event_id in events
                and events[m.event_id].event.sender != user_id
            )
        }

    async def _left(
        self,
        scope: SyncScope,
        memberships: list[Membership],
        listed: dict[str, Membership],
        sent: dict[str, SentRoom],
        now: StreamToken,
        result: SlidingSyncResult,
    ) -> None:
        """Rooms the connection has that the user has left since: their
        timeline up to the leave, and they are forgotten."""
        for m in memberships:
            had = sent.get(m.room_id)
            if had is None or m.membership != "leave" or m.room_id in listed:
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
        change: RoomChange,
        had: SentRoom | None,
        now: StreamToken,
        *,
        is_dm: bool | None,
        bump_stamp: int,
    ) -> SlidingRoom | None:
        room_id = membership.room_id
        if membership.membership in GONE:
            return await self._gone_room(scope, membership, params, had)
        if membership.membership in STRIPPED:
            stripped = await self.room_builder.stripped_state(membership)
            return SlidingRoom(
                membership=membership.membership,
                initial=True,
                bump_stamp=membership.stream_ordering,
                name=_stripped_content(stripped, NAME, "name"),
                avatar=_stripped_content(stripped, AVATAR, "url"),
                is_dm=is_dm,
                invite_state=stripped,
            )
        window = window_for(params, scope.user_id)
        fresh = change.initial or change.expanded
        since = None if fresh or had is None else now.copy_and_replace("events", had.position)
        joined = await self.room_builder.joined_room(scope, room_id, since, now, window)
        if joined is None:
            return None
        if not fresh and had is not None:
            senders = {e["sender"] for e in joined.timeline.events}
            joined.state = await self._state_delta(
                scope, room_id, params, change, had.position, now, senders
            )
        num_live = 0
        if had is not None and not change.initial:
            num_live = len(joined.timeline.events)
            if change.expanded:
                live = await self.events.count_events_between(room_id, had.position, now.events)
                num_live = min(num_live, live)
        state = await self.state.get_current_state(room_id, {(NAME, ""), (AVATAR, "")})
        name_event, avatar_event = state.get((NAME, "")), state.get((AVATAR, ""))
        heroes: list[Hero] = []
        if name_event is None or not isinstance(name_event.content.get("name"), str):
            heroes = await self._heroes(room_id, joined.summary.heroes)
        return SlidingRoom(
            membership="join",
            initial=change.initial,
            expanded_timeline=change.expanded,
            bump_stamp=bump_stamp,
            name=_content(name_event, "name"),
            avatar=_content(avatar_event, "url"),
            heroes=heroes,
            is_dm=is_dm,
            joined=joined,
            num_live=num_live,
        )

    async def _gone_room(
        self, scope: SyncScope, membership: Membership, params: RoomParams, had: SentRoom | None
    ) -> SlidingRoom:
        """A room the user was kicked or banned from: its timeline up to that
        event (what came after it since `had`, if the connection had the
        room), named as it was then."""
        window = window_for(params, scope.user_id)
        since = had.position if had is not None else None
        left = await self.room_builder.left_room(scope, membership, since, window)
        stored = await self.state.event_cache.get(membership.event_id)
        then = await self.state.get_state_after(stored) if stored is not None else {}
        return SlidingRoom(
            membership=membership.membership,
            initial=had is None,
            bump_stamp=membership.stream_ordering,
            name=_content(then.get((NAME, "")), "name"),
            avatar=_content(then.get((AVATAR, "")), "url"),
            left=left,
            num_live=len(left.timeline.events) if had is not None else 0,
        )

    async def _state_delta(
        self,
        scope: SyncScope,
        room_id: str,
        params: RoomParams,
        change: RoomChange,
        since: int,
        now: StreamToken,
        senders: set[str],
    ) -> list[ClientEvent]:
        """`required_state` of a room the connection has (as Synapse): the
        current state of the wanted keys that changed since it was sent, the
        members of the timeline's senders under `$LAZY`, and all of the
        current state that pairs new to the request match."""
        user_id = scope.user_id
        pairs = {(t, user_id if k == ME else k) for t, k in params.required_state}
        lazy = (MEMBER, LAZY) in pairs
        explicit = RoomWindow(0, required_state=frozenset(pairs - {(MEMBER, LAZY)}))
        changed = await self.events.get_state_keys_changed(room_id, since, now.events)
        keys = {k for k in changed if explicit.wants_state(*k)}
        if lazy:
            keys |= {(MEMBER, sender) for sender in senders}
        if change.added_state:
            added = {(t, user_id if k == ME else k) for t, k in change.added_state}
            if (MEMBER, LAZY) in added:
                keys |= {(MEMBER, sender) for sender in senders | {user_id}}
            window = RoomWindow(0, required_state=frozenset(added - {(MEMBER, LAZY)}))
            current = await self.state.get_current_state_ids(room_id)
            keys |= {k for k in current if window.wants_state(*k)}
        return await self.room_builder.current_state(scope, room_id, keys) if keys else []

    async def _heroes(self, room_id: str, user_ids: list[str]) -> list[Hero]:
        """The summary's heroes with their names and avatars in the room."""
        members = await self.state.get_current_state(room_id, {(MEMBER, u) for u in user_ids})
        heroes = []
        for user_id in user_ids:
            event = members.get((MEMBER, user_id))
            heroes.append(
                Hero(user_id, _content(event, "displayname"), _content(event, "avatar_url"))
            )
        return heroes

    async def _extensions(
        self,
        result: SlidingSyncResult,
        request: SlidingSyncRequest,
        since: StreamToken | None,
        now: StreamToken,
        list_rooms: dict[str, list[str]],
        subscribed: list[str],
    ) -> None:
        """The extensions, computed concurrently; each runs in the request's
        logging context (`run_in_background` keeps the caller's), so its
        logs and database time are the request's."""
        params = request.params
        requester = request.requester
        user_id, device_id = requester.user_id, requester.device_id
        scope = SyncScope(user_id, device_id, frozenset(result.rooms))
        jobs: list[asyncio.Future[None]] = []

        async def to_device() -> None:
            result.to_device = await self._to_device(scope, params.to_device_since, now)

        async def e2ee() -> None:
            keys = await device_key_state(self.e2e_keys, requester)
            changes = (
                await self.device_lists.changes(scope, since, now)
                if since is not None
                else DeviceListChanges()
            )
            result.e2ee = E2eeExtension(changes, keys)

        async def account_data() -> None:
            updates = await self.account_data.changes(scope, since, now)
            if since is None:
                await add_push_rules(updates, self.push_rules, user_id)
            result.account_data = AccountDataExtension(
                updates.global_events, dict(updates.room_events), updates.position
            )

        def covered(ext_scope: ExtensionScope) -> ExtensionRooms:
            return ExtensionRooms.of(
                scope, scoped_rooms(ext_scope, list_rooms, subscribed), result, since, now
            )

        async def receipts(ext: ExtensionRooms) -> None:
            result.receipts = await self._receipts(ext)

        async def typing(ext: ExtensionRooms) -> None:
            result.typing = await self._typing(ext)

        if params.to_device:
            jobs.append(self.clock.run_in_background(to_device))
        if params.e2ee:
            jobs.append(self.clock.run_in_background(e2ee))
        if params.account_data:
            jobs.append(self.clock.run_in_background(account_data))
        if params.receipts is not None:
            jobs.append(self.clock.run_in_background(receipts, covered(params.receipts)))
        if params.typing is not None:
            jobs.append(self.clock.run_in_background(typing, covered(params.typing)))
        await asyncio.gather(*jobs)

    async def _receipts(self, ext: ExtensionRooms) -> dict[str, RoomReceipts]:
        """As Synapse: a room sent afresh gets the receipts on its timeline's
        events and the user's own; any other gets the receipts since `pos`."""
        out, current = await ext.read(self.receipts)
        for room_id, room_receipts in current.items():
            shown = ext.timelines.get(room_id, frozenset())
            kept = [
                r for r in room_receipts.receipts if r.event_id in shown or r.user_id == ext.user_id
            ]
            if kept:
                out[room_id] = RoomReceipts(kept)
        return out

    async def _typing(self, ext: ExtensionRooms) -> dict[str, RoomTyping]:
        """Who types in the scoped rooms: changes since `pos`, or everyone
        typing in a room this connection gets afresh."""
        out, current = await ext.read(self.typing)
        out.update((r, t) for r, t in current.items() if t.user_ids)
        logger.debug("typing extension: %d rooms, %d with news", len(ext.rooms), len(out))
        return out

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
