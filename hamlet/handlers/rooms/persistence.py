"""Writing events into a room's DAG, local or remote, one room at a time.

`EventPersister` owns what every stored event touches: the events stream
(positions, the notifier), each room's forward extremities, the state
groups (the state *after* each event, as deltas), and the room's current
state, which is the resolution of its forward extremities' states.
Callers hold `lock(room_id)` while they compute an event's state and
persist it, so a room's extremities and current state change one event at
a time.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Collection, Mapping, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass, field

from hamlet.core import errors as core_errors
from hamlet.core.dag import new_extremities
from hamlet.core.events import Event
from hamlet.core.power_levels import POWER_LEVELS_KEY, StateKey
from hamlet.core.room_versions import RoomVersion, get_room_version
from hamlet.core.state_res import partition_state, resolve_state
from hamlet.handlers.common.errors import MatrixError, NotFoundError
from hamlet.handlers.common.notifier import Notifier
from hamlet.handlers.common.service import ServiceBase
from hamlet.handlers.rooms.event_cache import EventCache
from hamlet.handlers.rooms.state import StateHandler, StateIds
from hamlet.runtime.linearizer import Linearizer
from hamlet.runtime.lru import LruCache
from hamlet.storage.stores.events import (
    SNAPSHOT_EVERY,
    CurrentStateDelta,
    EventsStore,
    Extremity,
    NewStateGroup,
    OutOfBandMembership,
    PersistRequest,
    StoredEvent,
)
from hamlet.storage.stores.rooms import RoomsStore

logger = logging.getLogger(__name__)

MEMBER = "m.room.member"


@dataclass(frozen=True, slots=True)
class StateBefore:
    """The room state before an event, and the stored group it is nearest to."""

    ids: StateIds
    #: A stored group: `ids` itself when `exact`, else what `ids` is written
    #: as a delta against. None when there is none (a room's first event).
    base_group: int | None = None
    base_ids: StateIds = field(default_factory=dict)
    base_delta_depth: int = 0

    @property
    def exact(self) -> bool:
        return self.base_group is not None and self.base_ids == self.ids


EMPTY_STATE = StateBefore({})


@dataclass(frozen=True, slots=True)
class Outcome:
    """How a new event is stored (see `StoredEvent.in_timeline`)."""

    outlier: bool = False
    soft_failed: bool = False
    rejected_reason: str | None = None


ACCEPTED = Outcome()


class StateResolutionError(MatrixError):
    """The states of an event's prev_events cannot be merged here (room version 1)."""

    def __init__(self, message: str) -> None:
        super().__init__(400, "M_UNSUPPORTED_ROOM_VERSION", message)


class EventPersister(ServiceBase):
    name = "events"

    def __init__(
        self,
        *,
        events: EventsStore,
        rooms: RoomsStore,
        state: StateHandler,
        cache: EventCache,
        notifier: Notifier,
    ) -> None:
        self.events_store = events
        self.rooms_store = rooms
        self.state = state
        self.cache = cache
        self._linearizer = Linearizer()
        self._extremities: dict[str, list[Extremity]] = {}
        self._delta_depths: LruCache[int, int] = LruCache(5000)
        self._versions: LruCache[str, RoomVersion] = LruCache(1000)
        self._stream = 0
        # Positions handed out but not yet persisted: readers must not see
        # past the lowest of them, or they would skip it when it lands.
        self._in_flight: set[int] = set()
        self._group = 0
        # The next position below every other, for backfilled history;
        # read from the store on first use.
        self._backfill_next: int | None = None
        self._notifier = notifier
        self._unannounced: list[StoredEvent] = []
        # Users whose membership an unannounced event's state delta changed,
        # by stream ordering: named when it is announced, maybe by another call.
        self._members_changed: dict[int, list[str]] = {}
        notifier.register_stream(self.name, self)

    async def load(self) -> None:
        self._stream, self._group = await self.events_store.max_positions()

    def current_position(self) -> int:
        return self.current_stream

    @property
    def current_stream(self) -> int:
        """The highest position below which every event is persisted."""
        if self._in_flight:
            return min(self._in_flight) - 1
        return self._stream

    @asynccontextmanager
    async def lock(self, room_id: str) -> AsyncIterator[None]:
        async with self._linearizer.queue(room_id):
            yield

    async def room_version(self, room_id: str) -> RoomVersion:
        version = self._versions.get(room_id)
        if version is None:
            room = await self.rooms_store.get_room(room_id)
            if room is None:
                raise NotFoundError("Unknown room")
            # A room's version never changes (an upgrade makes a new room).
            version = get_room_version(room.room_version)
            self._versions.set(room_id, version)
        return version

    async def extremities(self, room_id: str) -> list[Extremity]:
        cached = self._extremities.get(room_id)
        if cached is None:
            cached = await self.events_store.get_forward_extremities(room_id)
            self._extremities[room_id] = cached
        return list(cached)

    # --- state ---

    async def _delta_depth(self, group: int) -> int:
        depth = self._delta_depths.get(group)
        if depth is None:
            _prev, depth = await self.events_store.get_state_group_info(group)
            self._delta_depths.set(group, depth)
        return depth

    async def state_at_groups(self, version: RoomVersion, groups: Sequence[int]) -> StateBefore:
        """The state before an event whose prev_events' states are `groups`:
        their resolution (per the room version), or the one state they share."""
        distinct = list(dict.fromkeys(groups))
        if not distinct:
            return EMPTY_STATE
        sets = [await self.state.get_state_ids_at_group(g) for g in distinct]
        if len(distinct) == 1:
            ids = sets[0]
        else:
            ids = await self.resolve(version, sets)
        # Write the result as a delta against the prev state it differs least from.
        best = min(range(len(distinct)), key=lambda i: _distance(sets[i], ids))
        return StateBefore(ids, distinct[best], sets[best], await self._delta_depth(distinct[best]))

    async def state_ids_before(self, stored: StoredEvent) -> StateIds:
        """The state before a stored event: resolved over its prev_events'
        states (what /state_ids and /send_join answer)."""
        prevs = await self.events_store.get_events(stored.event.prev_events)
        groups = [p.state_group for p in prevs.values() if p.state_group is not None]
        return (await self.state_at_groups(stored.event.room_version, groups)).ids

    async def state_from_snapshot(self, room_id: str, ids: StateIds) -> StateBefore:
        """A state given whole (from another server): written against the
        room's current state when it has one."""
        extremities = await self.extremities(room_id)
        if not extremities:
            return StateBefore(dict(ids))
        base = max(extremities, key=lambda x: x.stream_ordering).state_group
        base_ids = await self.state.get_state_ids_at_group(base)
        return StateBefore(dict(ids), base, base_ids, await self._delta_depth(base))

    async def resolve(
        self, version: RoomVersion, state_sets: Sequence[StateIds], pending: Event | None = None
    ) -> StateIds:
        """State resolution over `state_sets`; `pending` is an event the sets
        may name that is not stored yet.

        The auth difference is computed on stored auth chains (IDs only), so
        only the states' events and the auth chains of the conflicted and
        power levels events are loaded, not every event in the room's history.
        """
        if version.state_res == "v1":
            # v1 looks at nothing but the states' own events.
            ids = {eid for state in state_sets for eid in state.values()}
            stored = await self.events_store.get_events(ids - _pending_id(pending))
            events = {eid: s.event for eid, s in stored.items()} | _pending_map(pending)
            return self._run_resolution(version, state_sets, events, set(), None)
        unconflicted, _conflicted = partition_state(state_sets)
        common = await self._auth_chain(set(unconflicted.values()), pending)
        own = [
            await self._auth_chain({e for k, e in state.items() if k not in unconflicted}, pending)
            for state in state_sets
        ]
        chains = [common | chain for chain in own]
        difference = set().union(*chains) - chains[0].intersection(*chains[1:])
        power_levels = {s[POWER_LEVELS_KEY] for s in state_sets if POWER_LEVELS_KEY in s}
        wanted = (
            {eid for state in state_sets for eid in state.values()}
            | set().union(*own)
            | await self._auth_chain(power_levels, pending)
        )
        stored = await self.events_store.get_events(
            wanted - _pending_id(pending), include_rejected=True
        )
        events = {eid: s.event for eid, s in stored.items()} | _pending_map(pending)
        rejected = {eid for eid, s in stored.items() if s.rejected_reason is not None}
        return self._run_resolution(version, state_sets, events, rejected, difference)

    async def _auth_chain(self, event_ids: set[str], pending: Event | None) -> set[str]:
        """Stored auth ancestors of `event_ids`; the pending event's through its auth events."""
        if pending is not None and pending.event_id in event_ids:
            event_ids = (event_ids - {pending.event_id}) | set(pending.auth_events)
            return set(pending.auth_events) | await self.events_store.get_auth_chain_ids(event_ids)
        return await self.events_store.get_auth_chain_ids(event_ids) if event_ids else set()

    @staticmethod
    def _run_resolution(
        version: RoomVersion,
        state_sets: Sequence[StateIds],
        events: Mapping[str, Event],
        rejected: set[str],
        difference: set[str] | None,
    ) -> StateIds:
        try:
            return resolve_state(version, state_sets, events, rejected, difference)
        except core_errors.UnsupportedRoomVersionError as e:
            raise StateResolutionError(str(e)) from None

    async def load_state(self, ids: StateIds, keys: Collection[StateKey]) -> dict[StateKey, Event]:
        wanted = {k: ids[k] for k in keys if k in ids}
        found = await self.cache.get_many(wanted.values())
        return {k: found[v].event for k, v in wanted.items() if v in found}

    # --- persisting ---

    async def reserve_backfill(self, n: int) -> list[int]:
        """`n` stream positions below every stored event, lowest first: for
        history fetched from other servers, which sorts before what the room
        already shows (oldest first within a batch)."""
        if self._backfill_next is None:
            lowest = await self.events_store.min_stream_ordering() - 1
            if self._backfill_next is None:
                self._backfill_next = lowest
        top = self._backfill_next
        self._backfill_next = top - n
        return list(range(top - n + 1, top + 1))

    def _next_group(self) -> int:
        self._group += 1
        return self._group

    async def _plan_group(
        self, before: StateBefore, after: StateIds
    ) -> tuple[int | None, NewStateGroup | None]:
        """The group holding `after`: an existing one, or a new delta or snapshot."""
        base = before.base_group
        if base is not None and after == before.base_ids:
            return base, None
        if not after:
            return None, None
        group = self._next_group()
        base_ids = before.base_ids
        if (
            base is not None
            and before.base_delta_depth + 1 < SNAPSHOT_EVERY
            and all(k in after for k in base_ids)
        ):
            delta = {k: v for k, v in after.items() if base_ids.get(k) != v}
            return group, NewStateGroup(group, base, before.base_delta_depth + 1, delta)
        return group, NewStateGroup(group, None, 0, dict(after))

    async def persist(
        self,
        event: Event,
        version: RoomVersion,
        before: StateBefore | None,
        *,
        outcome: Outcome = ACCEPTED,
        txn: tuple[str, str, str] | None = None,
        apply_redaction: bool = False,
        redaction_power: bool | None = None,
        redacted_by: str | None = None,
        fresh: bool = False,
        backfill_at: int | None = None,
        only_extremity: bool = False,
    ) -> StoredEvent:
        """Store `event` (the caller holds the room's lock). `before` is the
        state before it; None for an outlier. `fresh`: built here just now,
        so no stored event can name it as a prev_event. `backfill_at`: old
        history, stored at that (reserved) position, which changes neither
        the room's extremities nor its current state and wakes no one.
        `redaction_power`: keep this redaction for an event it names that
        comes later (whether its sender has the redact level);
        `redacted_by`: an earlier redaction that applies to this event.
        `only_extremity`: the room's forward extremities are this event
        alone, so the current state is the state after it (our join of a
        room we had left: what we held of it is stale)."""
        room_id = event.room_id
        key = (event.type, event.state_key) if event.state_key is not None else None
        groups: list[NewStateGroup] = []
        after: StateIds = {}
        state_group: int | None = None
        if before is not None:
            after = before.ids
            if key is not None and outcome.rejected_reason is None:
                after = {**before.ids, key: event.event_id}
            state_group, new_group = await self._plan_group(before, after)
            if new_group is not None:
                groups.append(new_group)
        in_timeline = before is not None and outcome == ACCEPTED
        accepted = in_timeline and backfill_at is None
        extremities: list[str] | None = None
        current: CurrentStateDelta | None = None
        new_current: StateIds | None = None
        old_ext: list[str] = []
        if accepted:
            assert state_group is not None
            old = await self.extremities(room_id)
            old_ext = [x.event_id for x in old]
            has_children = not fresh and await self.events_store.has_timeline_children(
                event.event_id
            )
            extremities = (
                [event.event_id]
                if only_extremity
                else new_extremities(old_ext, event.event_id, event.prev_events, has_children)
            )
            new_current = await self._current_state_of(
                version, event, extremities, old, state_group, after
            )
            current = await self._current_delta(room_id, new_current, event)
        if backfill_at is None:
            self._stream += 1
            stream = self._stream
        else:
            stream = backfill_at
        room_row = _room_row(event, version) if event.type == "m.room.create" else None
        if room_row is not None and await self.rooms_store.get_room(room_id) is not None:
            room_row = None
        request = PersistRequest(
            event=event,
            stream_ordering=stream,
            state_group=state_group,
            new_groups=groups,
            txn=txn,
            replaces_state=before.ids.get(key) if before is not None and key else None,
            room_row=room_row,
            outlier=before is None,
            soft_failed=outcome.soft_failed,
            rejected_reason=outcome.rejected_reason,
            extremities=(
                _extremity_change(old_ext, extremities) if extremities is not None else None
            ),
            replaces_outlier=not fresh,
            current_state=current,
            apply_redaction=apply_redaction and in_timeline,
            redaction_power=redaction_power if in_timeline else None,
            redacted_by=redacted_by if in_timeline else None,
        )
        await self._store(request, in_flight=backfill_at is None)
        served = event
        if request.redacted_by is not None:
            served = Event(
                event.get_redacted_pdu_json(), event.room_version, event_id=event.event_id
            )
        stored = StoredEvent(
            stream,
            served,
            request.redacted_by,
            state_group,
            request.replaces_state,
            outlier=request.outlier,
            soft_failed=outcome.soft_failed,
            rejected_reason=outcome.rejected_reason,
        )
        for group in groups:
            self._delta_depths.set(group.group_id, group.delta_depth)
        if state_group is not None:
            self.state.cache_group(state_group, after)
        if outcome.rejected_reason is None:
            self.cache.add(stored)
        if extremities is not None:
            by_id = {x.event_id: x for x in await self.extremities(room_id)}
            by_id[event.event_id] = _extremity(stored)
            self._extremities[room_id] = [by_id[e] for e in extremities]
        if new_current is not None:
            self.state.set_current_state(room_id, new_current)
        if request.apply_redaction and event.redacts is not None:
            self.cache.invalidate(event.redacts)
        if accepted:
            self._unannounced.append(stored)
            if current is not None:
                self._members_changed[stored.stream_ordering] = [
                    *current.memberships,
                    *(k for t, k in current.to_delete if t == MEMBER),
                ]
        self._announce()
        return stored

    async def persist_outliers(
        self, version: RoomVersion, items: Sequence[tuple[Event, Outcome]]
    ) -> list[StoredEvent]:
        """Store new events of one room without state, in one write (the
        caller holds the room's lock and knows none of them is stored).
        Outliers change no extremity nor state and wake nobody."""
        if not items:
            return []
        room_known = await self.rooms_store.get_room(items[0][0].room_id) is not None
        requests: list[PersistRequest] = []
        for event, outcome in items:
            room_row = None
            if event.type == "m.room.create" and not room_known:
                room_row, room_known = _room_row(event, version), True
            self._stream += 1
            requests.append(
                PersistRequest(
                    event=event,
                    stream_ordering=self._stream,
                    state_group=None,
                    room_row=room_row,
                    outlier=True,
                    rejected_reason=outcome.rejected_reason,
                )
            )
        streams = {r.stream_ordering for r in requests}
        self._in_flight |= streams
        try:
            await self.events_store.persist_outliers(requests)
        finally:
            self._in_flight -= streams
            self._announce()
        stored = [
            StoredEvent(
                r.stream_ordering,
                r.event,
                None,
                None,
                outlier=True,
                rejected_reason=r.rejected_reason,
            )
            for r in requests
        ]
        for one in stored:
            if one.rejected_reason is None:
                self.cache.add(one)
        return stored

    async def _store(self, request: PersistRequest, *, in_flight: bool = True) -> None:
        """Write one event, its stream position in flight meanwhile (not a
        backfilled one's: readers of news never look below their position)."""
        stream = request.stream_ordering
        if in_flight:
            self._in_flight.add(stream)
        try:
            await self.events_store.persist(request)
        except BaseException:
            self._in_flight.discard(stream)
            self._announce()
            raise
        self._in_flight.discard(stream)

    async def persist_out_of_band(
        self, event: Event, stripped_state: Sequence[Mapping[str, object]]
    ) -> StoredEvent:
        """A local user's membership of a room we are not in (a knock through
        another server): an outlier, listed with the user's rooms and shown
        with `stripped_state` (see `OutOfBandMembership`)."""
        async with self.lock(event.room_id):
            self._stream += 1
            stream = self._stream
            request = PersistRequest(
                event=event,
                stream_ordering=stream,
                state_group=None,
                outlier=True,
                replaces_outlier=True,
                out_of_band=OutOfBandMembership(stripped_state),
            )
            await self._store(request)
            stored = StoredEvent(stream, event, None, None, outlier=True)
            self._unannounced.append(stored)
            self._announce()
        return stored

    async def _current_state_of(
        self,
        version: RoomVersion,
        event: Event,
        extremities: Sequence[str],
        old: Sequence[Extremity],
        state_group: int,
        after: StateIds,
    ) -> StateIds:
        groups = {x.event_id: x.state_group for x in old}
        groups[event.event_id] = state_group
        distinct = list(dict.fromkeys(groups[e] for e in extremities))
        if distinct == [state_group]:
            return after
        # The event's own group is not written yet: its state is `after`.
        sets = [
            after if g == state_group else await self.state.get_state_ids_at_group(g)
            for g in distinct
        ]
        return await self.resolve(version, sets, event) if len(sets) > 1 else sets[0]

    async def _current_delta(
        self, room_id: str, new: StateIds, event: Event
    ) -> CurrentStateDelta | None:
        old = (
            await self.state.get_current_state_ids(room_id) if event.type != "m.room.create" else {}
        )
        if new == old:
            return None
        to_set = {k: v for k, v in new.items() if old.get(k) != v}
        to_delete = [k for k in old if k not in new]
        if not to_set and not to_delete:
            return None
        member_ids = {k[1]: v for k, v in to_set.items() if k[0] == MEMBER}
        found = await self.cache.get_many([v for v in member_ids.values() if v != event.event_id])
        memberships: dict[str, str] = {}
        for user_id, event_id in member_ids.items():
            member = event if event_id == event.event_id else _event_of(found.get(event_id))
            if member is not None:
                memberships[user_id] = str(member.content.get("membership"))
        return CurrentStateDelta(to_set, to_delete, memberships)

    def _announce(self) -> None:
        """Wake syncs for persisted events, in order, once none before them is pending."""
        upto = self.current_stream
        ready = sorted(
            (s for s in self._unannounced if s.stream_ordering <= upto),
            key=lambda s: s.stream_ordering,
        )
        if not ready:
            return
        self._unannounced = [s for s in self._unannounced if s.stream_ordering > upto]
        for stored in ready:
            event = stored.event
            members = [event.state_key] if event.type == MEMBER and event.state_key else []
            changed = self._members_changed.pop(stored.stream_ordering, [])
            self._notifier.notify(
                "events", upto, rooms=[event.room_id], users=list({*members, *changed})
            )

    def forget_room(self, room_id: str) -> None:
        self._extremities.pop(room_id, None)
        self._versions.pop(room_id)

    def clear_caches(self) -> None:
        self._extremities.clear()
        self._versions.clear()
        self._delta_depths.clear()


def _pending_id(pending: Event | None) -> set[str]:
    return {pending.event_id} if pending is not None else set()


def _pending_map(pending: Event | None) -> dict[str, Event]:
    return {pending.event_id: pending} if pending is not None else {}


def _extremity_change(old: Sequence[str], new: Sequence[str]) -> tuple[list[str], list[str]]:
    return [e for e in old if e not in new], [e for e in new if e not in old]


def _distance(a: Mapping[StateKey, str], b: Mapping[StateKey, str]) -> int:
    return sum(1 for k, v in b.items() if a.get(k) != v) + sum(1 for k in a if k not in b)


def _event_of(stored: StoredEvent | None) -> Event | None:
    return stored.event if stored is not None else None


def _extremity(stored: StoredEvent) -> Extremity:
    assert stored.state_group is not None
    return Extremity(
        stored.event.event_id, stored.event.depth, stored.stream_ordering, stored.state_group
    )


def _room_row(event: Event, version: RoomVersion) -> tuple[str, str, str | None]:
    creator = event.sender if version.creator_from_sender else event.content.get("creator")
    room_type = event.content.get("type")
    return (
        version.identifier,
        str(creator or event.sender),
        room_type if isinstance(room_type, str) else None,
    )
