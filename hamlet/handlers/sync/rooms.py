"""The `events` stream provider: joined, invited, left and knocked rooms of one user.

/sync v3 asks for every room at once (`build`); sliding sync asks room by
room with its own timeline limit and required state (`joined_room` with a
`RoomWindow`). Both get the same typed results (`sync/results.py`).
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Mapping
from dataclasses import dataclass, replace
from typing import Any

from hamlet.core.events import Event
from hamlet.core.filters import RoomEventFilter, RoomFilter
from hamlet.core.glob import WorkBudget
from hamlet.core.power_levels import StateKey
from hamlet.handlers.common.memberships import MembershipCache
from hamlet.handlers.common.notifier import Notifier
from hamlet.handlers.common.streams import StreamPosition, StreamToken, SyncScope
from hamlet.handlers.history.serializer import EventSerializer
from hamlet.handlers.history.visibility import VisibilityHandler
from hamlet.handlers.push.rules import (
    PushRulesHandler,
    request_budget,
)
from hamlet.handlers.rooms.state import StateHandler
from hamlet.handlers.sync.results import (
    ClientEvent,
    JoinedRoom,
    LeftRoom,
    RoomsResult,
    RoomSummary,
    StrippedRoom,
    StrippedStateEvent,
    Timeline,
    UnreadCounts,
)
from hamlet.handlers.sync.unread import UnreadTracker
from hamlet.handlers.user_streams.account_data import AccountDataEntry
from hamlet.storage.stores.events import EventsStore, StoredEvent
from hamlet.storage.stores.room_history import RoomHistoryStore
from hamlet.storage.stores.rooms import Membership, RoomsStore

#: State an invitee sees before joining (the spec's recommended stripped state).
STRIPPED_STATE_TYPES = frozenset(
    {
        "m.room.create",
        "m.room.join_rules",
        "m.room.name",
        "m.room.avatar",
        "m.room.canonical_alias",
        "m.room.encryption",
        "m.room.topic",
    }
)
MAX_HEROES = 5
WILDCARD = "*"
ALL_EVENTS = RoomEventFilter()
#: Those of the rooms whose timeline may have moved past the position (a
#: superset), or None when it cannot tell.
ChangedHint = Callable[[Collection[str], int], set[str] | None]
ALL_ROOMS = RoomFilter()


@dataclass(frozen=True, slots=True)
class RoomWindow:
    """What a consumer wants of one joined room.

    Why a value of its own rather than the /sync filter: sliding sync asks
    per room list for a different `timeline_limit` and `required_state`
    (`(type, state_key)` pairs, `"*"` for any state key), which a v3 filter
    cannot say. /sync v3 derives one window for all rooms from its filter.
    """

    timeline_limit: int
    timeline_filter: RoomEventFilter = ALL_EVENTS
    state_filter: RoomEventFilter = ALL_EVENTS
    #: None: all state the filter lets through; else only these pairs.
    required_state: frozenset[tuple[str, str]] | None = None

    @classmethod
    def from_filter(cls, room_filter: RoomFilter) -> RoomWindow:
        return cls(room_filter.timeline_limit, room_filter.timeline, room_filter.state)

    def wants_state(self, event_type: str, state_key: str) -> bool:
        if self.required_state is None:
            return True
        wanted = self.required_state
        return (
            (event_type, state_key) in wanted
            or (event_type, WILDCARD) in wanted
            or (WILDCARD, state_key) in wanted
            or (WILDCARD, WILDCARD) in wanted
        )


def _from_kept(entry: Mapping[str, Any]) -> StrippedStateEvent:
    state_key, content = entry.get("state_key"), entry.get("content")
    return StrippedStateEvent(
        str(entry.get("type")),
        state_key if isinstance(state_key, str) else None,
        dict(content) if isinstance(content, dict) else {},
        str(entry.get("sender")),
    )


def _keeps_every_event(event_filter: RoomEventFilter) -> bool:
    """Does the filter let every event of a room through (whatever it asks of their number)?"""
    return (
        replace(
            event_filter,
            limit=None,
            lazy_load_members=False,
            include_redundant_members=False,
            unread_thread_notifications=False,
        )
        == ALL_EVENTS
    )


def _stripped(event: Event) -> StrippedStateEvent:
    return StrippedStateEvent(event.type, event.state_key, dict(event.content), event.sender)


def _pick_state(
    user_id: str, state: Mapping[StateKey, Event], timeline: list[StoredEvent], window: RoomWindow
) -> list[Event]:
    """Of a room's state at the start of `timeline`, what the window serves."""
    in_timeline = {s.event.event_id for s in timeline}
    state_filter = window.state_filter
    wanted_members: set[str] | None = None
    if state_filter.lazy_load_members:
        wanted_members = {s.event.sender for s in timeline} | {user_id}
    served: list[Event] = []
    for (event_type, state_key), event in state.items():
        if event.event_id in in_timeline or not state_filter.matches(event):
            continue
        if not window.wants_state(event_type, state_key):
            continue
        if (
            wanted_members is not None
            and event_type == "m.room.member"
            and state_key not in wanted_members
        ):
            continue
        served.append(event)
    return served


def _summary(members: list[Membership], user_id: str) -> RoomSummary:
    """The room's summary from its memberships (of any kind)."""
    joined = [m for m in members if m.membership == "join"]
    invited = [m for m in members if m.membership == "invite"]
    others = sorted(
        (m for m in joined + invited if m.user_id != user_id), key=lambda m: m.stream_ordering
    )
    return RoomSummary([m.user_id for m in others[:MAX_HEROES]], len(joined), len(invited))


def _split(items: list[ClientEvent], sizes: list[int]) -> list[list[ClientEvent]]:
    """`items` cut into consecutive runs of `sizes`."""
    out, start = [], 0
    for size in sizes:
        out.append(items[start : start + size])
        start += size
    return out


class RoomSyncBuilder:
    """The `events` stream's provider (rooms, their timelines and invites)."""

    name = "events"

    def __init__(
        self,
        *,
        position: StreamPosition,
        events: EventsStore,
        history: RoomHistoryStore,
        rooms: RoomsStore,
        memberships: MembershipCache,
        state: StateHandler,
        visibility: VisibilityHandler,
        serializer: EventSerializer,
        push_rules: PushRulesHandler,
        notifier: Notifier,
    ) -> None:
        self._position = position
        self.unread = UnreadTracker(
            events=events, history=history, state=state, push_rules=push_rules, notifier=notifier
        )
        self.push_rules = push_rules
        self.events = events
        self.history = history
        self.rooms = rooms
        self.memberships = memberships
        self.state = state
        self.visibility = visibility
        self.serializer = serializer

    def current_position(self) -> int:
        return self._position.current_position()

    async def changes(
        self, scope: SyncScope, since: StreamToken | None, upto: StreamToken
    ) -> RoomsResult:
        """The provider, with no filter and no news from other streams."""
        return await self.build(
            scope=scope,
            since=since,
            now=upto,
            full_state=False,
            room_filter=ALL_ROOMS,
            room_account_data={},
            other_news=(),
        )

    async def build(
        self,
        *,
        scope: SyncScope,
        since: StreamToken | None,
        now: StreamToken,
        full_state: bool,
        room_filter: RoomFilter,
        room_account_data: Mapping[str, list[AccountDataEntry]],
        other_news: Collection[str],
        changed_hint: ChangedHint | None = None,
    ) -> RoomsResult:
        """Every room of the user. In an incremental sync, joined rooms where
        nothing happened are not even looked at; `other_news` are rooms with
        news from another stream (ephemeral events), which are.
        `changed_hint` may tell which joined rooms' timelines may have moved
        since `since` without asking the store."""
        user_id = scope.user_id
        memberships = [
            m
            for m in await self.memberships.memberships_of_user(user_id)
            if not m.forgotten and room_filter.matches_room(m.room_id)
        ]
        since_pos = since.events if since is not None else None
        joined = [m for m in memberships if m.membership == "join"]
        joined_ids = [m.room_id for m in joined]
        if since_pos is None or full_state:
            changed = set(joined_ids)
        else:
            hinted = changed_hint(joined_ids, since_pos) if changed_hint is not None else None
            changed = (
                hinted
                if hinted is not None
                else await self.events.get_rooms_changed(joined_ids, since_pos, now.events)
            )
        window = RoomWindow.from_filter(room_filter)
        out = RoomsResult()
        push_budget = request_budget()
        # Rooms served from their newest events with their full state (all of
        # them in an initial sync): read together, a few queries in all.
        fresh = [
            m
            for m in memberships
            if m.membership == "join"
            and m.stream_ordering <= now.events
            and (since_pos is None or m.stream_ordering > since_pos)
        ]
        built = await self._fresh_joined_rooms(
            scope, fresh, now, window, newly_joined=since_pos is not None, push_budget=push_budget
        )
        for m in memberships:
            if m.stream_ordering > now.events:
                continue
            newly = since_pos is None or m.stream_ordering > since_pos
            if m.membership == "join":
                quiet = (
                    since_pos is not None
                    and not full_state
                    and not newly
                    and m.room_id not in changed
                    and m.room_id not in other_news
                    and not room_account_data.get(m.room_id)
                )
                if quiet:
                    continue
                room = (
                    built[m.room_id]
                    if m.room_id in built
                    else await self._joined_room(
                        scope,
                        m,
                        None if newly else since_pos,
                        now,
                        full_state or newly,
                        m.room_id in changed,
                        window,
                        newly_joined=newly and since_pos is not None,
                        push_budget=push_budget,
                    )
                )
                room.account_data = room_filter.account_data.filter(
                    room_account_data.get(m.room_id, [])
                )
                out.join[m.room_id] = room
            elif m.membership == "invite" and (newly or full_state):
                out.invite[m.room_id] = StrippedRoom(await self.stripped_state(m))
            elif m.membership in ("leave", "ban"):
                if since_pos is None and not room_filter.include_leave:
                    continue
                if since_pos is not None and not newly and not full_state:
                    continue
                out.leave[m.room_id] = await self.left_room(scope, m, since_pos, window)
            elif m.membership == "knock" and (newly or full_state):
                out.knock[m.room_id] = StrippedRoom(await self.stripped_state(m))
        return out

    async def joined_room(
        self,
        scope: SyncScope,
        room_id: str,
        since: StreamToken | None,
        upto: StreamToken,
        window: RoomWindow,
    ) -> JoinedRoom | None:
        """One joined room for a consumer that goes room by room (sliding
        sync): its timeline after `since` (None: the newest events) up to
        `upto`, state, counts and summary; None if the user is not joined."""
        membership = await self.rooms.get_membership(room_id, scope.user_id)
        if membership is None or membership.membership != "join":
            return None
        newly = since is None or membership.stream_ordering > since.events
        since_pos = None if newly or since is None else since.events
        changed = since_pos is None or bool(
            await self.events.get_rooms_changed([room_id], since_pos, upto.events)
        )
        return await self._joined_room(
            scope,
            membership,
            since_pos,
            upto,
            newly,
            changed,
            window,
            newly_joined=newly and since is not None,
        )

    async def _fresh_joined_rooms(
        self,
        scope: SyncScope,
        memberships: list[Membership],
        now: StreamToken,
        window: RoomWindow,
        *,
        newly_joined: bool,
        push_budget: WorkBudget,
    ) -> dict[str, JoinedRoom]:
        """`_joined_room` without `since` for each of `memberships` (joined
        rooms), each step done for all rooms at once: their timelines, state,
        serialisation, read positions, members and unread events are each a
        query or a few, however many rooms the user is in."""
        if not memberships:
            return {}
        user_id = scope.user_id
        room_ids = [m.room_id for m in memberships]
        timelines = await self._newest_timelines(user_id, room_ids, now.events, window)
        starts, stored = await self._states_at_start(room_ids, timelines)
        picked = {r: _pick_state(user_id, starts[r], timelines[r][0], window) for r in room_ids}
        states = _split(
            await self.serializer.serialize(
                # Read above: every picked event is there, so the runs line up.
                [stored[e.event_id] for r in room_ids for e in picked[r]],
                user_id=user_id,
                include_room_id=False,
                bundle=False,
            ),
            [len(picked[r]) for r in room_ids],
        )
        served = _split(
            await self.serializer.serialize(
                [s for r in room_ids for s in timelines[r][0]],
                user_id=user_id,
                device_id=scope.device_id,
                include_room_id=False,
            ),
            [len(timelines[r][0]) for r in room_ids],
        )
        members = await self.memberships.members_of_rooms(room_ids)
        summaries = {r: _summary(members[r], user_id) for r in room_ids}
        unread = await self.unread.counts_of_rooms(
            user_id,
            {r: summaries[r].joined_member_count for r in room_ids},
            upto=now.events,
            budget=push_budget,
        )
        out: dict[str, JoinedRoom] = {}
        for i, room_id in enumerate(room_ids):
            timeline, limited = timelines[room_id]
            prev_pos = timeline[0].stream_ordering - 1 if timeline else now.events
            out[room_id] = JoinedRoom(
                timeline=Timeline(
                    served[i], limited or newly_joined, now.copy_and_replace("events", prev_pos)
                ),
                state=states[i],
                account_data=[],
                unread=UnreadCounts(*unread[room_id]),
                summary=summaries[room_id],
            )
        return out

    async def _newest_timelines(
        self, user_id: str, room_ids: list[str], upto: int, window: RoomWindow
    ) -> dict[str, tuple[list[StoredEvent], bool]]:
        """`_timeline` without `after` of each room (joined), read together."""
        limit = window.timeline_limit
        if limit <= 0:
            return {room_id: ([], True) for room_id in room_ids}
        timeline_filter = window.timeline_filter
        page = limit * 2 + 1
        pages = await self.history.get_newest_room_events(
            room_ids, before=upto, limit=page, event_filter=timeline_filter
        )
        visible = await self.visibility.filter_for_user(
            user_id,
            [s for r in room_ids for s in pages[r] if timeline_filter.matches(s.event)],
            currently_joined=True,
        )
        by_room: dict[str, list[StoredEvent]] = {room_id: [] for room_id in room_ids}
        for stored in visible:
            by_room[stored.event.room_id].append(stored)
        out: dict[str, tuple[list[StoredEvent], bool]] = {}
        for room_id in room_ids:
            collected = by_room[room_id]
            if len(collected) <= limit and len(pages[room_id]) >= page:
                # So much of the first page was hidden that the room needs more.
                out[room_id] = (await self._timeline(user_id, room_id, None, upto, window))[:2]
                continue
            limited = len(collected) > limit
            collected = collected[:limit]
            collected.reverse()
            out[room_id] = collected, limited
        return out

    async def _states_at_start(
        self, room_ids: list[str], timelines: Mapping[str, tuple[list[StoredEvent], bool]]
    ) -> tuple[dict[str, dict[StateKey, Event]], dict[str, StoredEvent]]:
        """`_state_before` the first timeline event of each room (its current
        state if the timeline is empty), read together; and the stored
        events read for it, by id."""
        firsts = {r: timelines[r][0][0] for r in room_ids if timelines[r][0]}
        groups = await self.state.get_state_ids_at_groups(
            {f.state_group for f in firsts.values() if f.state_group is not None}
        )
        ids: dict[str, dict[StateKey, str]] = {}
        for room_id in room_ids:
            first = firsts.get(room_id)
            if first is None:
                ids[room_id] = await self.state.get_current_state_ids(room_id)
            elif first.state_group is None:
                ids[room_id] = {}
            else:
                ids[room_id] = groups[first.state_group]
        found = await self.state.event_cache.get_many(
            {e for room_ids_ in ids.values() for e in room_ids_.values()}
            | {f.replaces_state for f in firsts.values() if f.replaces_state is not None}
        )
        out: dict[str, dict[StateKey, Event]] = {}
        for room_id in room_ids:
            state = {k: found[v].event for k, v in ids[room_id].items() if v in found}
            first = firsts.get(room_id)
            if first is not None and first.event.is_state():
                key: StateKey = (first.event.type, first.event.state_key or "")
                previous = found.get(first.replaces_state) if first.replaces_state else None
                if previous is not None:
                    state[key] = previous.event
                elif state.get(key) is not None and state[key].event_id == first.event.event_id:
                    del state[key]
            out[room_id] = state
        return out, found

    async def _timeline(
        self,
        user_id: str,
        room_id: str,
        after: int | None,
        upto: int,
        window: RoomWindow,
    ) -> tuple[list[StoredEvent], bool, bool]:
        """The newest visible, filter-matching events in (after, upto];
        `limited`; and whether they are every event of the room there."""
        limit = window.timeline_limit
        if limit <= 0:
            return [], True, False
        timeline_filter = window.timeline_filter
        page = limit * 2 + 1
        collected: list[StoredEvent] = []
        complete = _keeps_every_event(timeline_filter)
        before = upto
        while len(collected) <= limit:
            batch = await self.history.get_room_events(
                room_id,
                after=after,
                before=before,
                limit=page,
                backwards=True,
                event_filter=timeline_filter,
            )
            if batch:
                before = batch[-1].stream_ordering - 1
            wanted = [s for s in batch if timeline_filter.matches(s.event)]
            visible = await self.visibility.filter_for_user(user_id, wanted)
            complete = complete and len(visible) == len(batch)
            collected.extend(visible)
            if len(batch) < page:
                break
        limited = len(collected) > limit
        collected = collected[:limit]
        collected.reverse()
        return collected, limited, complete and not limited

    async def _state_for(
        self,
        user_id: str,
        room_id: str,
        group: int | None,
        timeline: list[StoredEvent],
        window: RoomWindow,
    ) -> list[ClientEvent]:
        if timeline:
            # The spec's `state` is the state at the start of the timeline:
            # a client seeds its start-of-timeline state with it and replays
            # the timeline on top, so a state event the timeline replaces
            # must still be served in its old form.
            state = await self._state_before(timeline[0])
        elif group is None:
            state = await self.state.get_current_state(room_id)
        else:
            state = await self.state.get_state_at_group(group)
        return await self._serialize_state(user_id, _pick_state(user_id, state, timeline, window))

    async def current_state(
        self, scope: SyncScope, room_id: str, keys: Collection[StateKey]
    ) -> list[ClientEvent]:
        """The room's current state events of `keys` (those that exist), as
        the user sees them: sliding sync's `required_state` deltas."""
        events = await self.state.get_current_state(room_id, set(keys))
        return await self._serialize_state(scope.user_id, list(events.values()))

    async def _serialize_state(self, user_id: str, events: list[Event]) -> list[ClientEvent]:
        stored = await self.state.event_cache.get_many([e.event_id for e in events])
        return await self.serializer.serialize(
            [stored[e.event_id] for e in events if e.event_id in stored],
            user_id=user_id,
            include_room_id=False,
            bundle=False,
        )

    async def _state_before(self, first: StoredEvent) -> dict[StateKey, Event]:
        """The room state just before `first`: the state after it, minus its own change."""
        state = dict(await self.state.get_state_after(first))
        event = first.event
        if not event.is_state():
            return state
        key: StateKey = (event.type, event.state_key or "")
        previous = (
            await self.state.event_cache.get(first.replaces_state)
            if first.replaces_state is not None
            else None
        )
        if previous is not None:
            state[key] = previous.event
        elif state.get(key) is not None and state[key].event_id == event.event_id:
            del state[key]
        return state

    async def _joined_room(
        self,
        scope: SyncScope,
        membership: Membership,
        since_pos: int | None,
        now: StreamToken,
        full_state: bool,
        changed: bool,
        window: RoomWindow,
        *,
        newly_joined: bool = False,
        push_budget: WorkBudget | None = None,
    ) -> JoinedRoom:
        user_id = scope.user_id
        room_id = membership.room_id
        timeline: list[StoredEvent] = []
        limited = False
        # Did the timeline see every event since the token (for the unread counts)?
        complete = not changed
        if changed or since_pos is None:
            timeline, limited, complete = await self._timeline(
                user_id, room_id, since_pos, now.events, window
            )
        # A room joined since the last sync is always `limited` (as in
        # Synapse): a client that knew the room (from an invite) resets its
        # timeline only then, and so takes prev_batch as its back-pagination
        # token; otherwise it has none and paginates from the room's end.
        limited = limited or newly_joined
        prev_pos = timeline[0].stream_ordering - 1 if timeline else now.events
        state: list[ClientEvent] = []
        if full_state or limited:
            state = await self._state_for(user_id, room_id, None, timeline, window)
        served = await self.serializer.serialize(
            timeline, user_id=user_id, device_id=scope.device_id, include_room_id=False
        )
        summary = await self._summary(room_id, user_id)
        notification_count, highlight_count = await self.unread.counts(
            user_id,
            room_id,
            upto=now.events,
            member_count=summary.joined_member_count,
            budget=push_budget or request_budget(),
            seen_after=since_pos if complete else None,
            seen=timeline,
        )
        return JoinedRoom(
            timeline=Timeline(served, limited, now.copy_and_replace("events", prev_pos)),
            state=state,
            account_data=[],
            unread=UnreadCounts(notification_count, highlight_count),
            summary=summary,
        )

    async def _summary(self, room_id: str, user_id: str) -> RoomSummary:
        return _summary(await self.memberships.members(room_id), user_id)

    async def stripped_state(self, membership: Membership) -> list[StrippedStateEvent]:
        """The stripped state an invitee or knocker sees, ending with their own member event."""
        kept = await self.rooms.get_out_of_band_state(membership.event_id)
        if kept is not None:
            # A room we are not in: what its server told us, kept as it came.
            return [_from_kept(e) for e in kept]
        state = await self.state.get_current_state(membership.room_id)
        events = [_stripped(e) for (t, _k), e in state.items() if t in STRIPPED_STATE_TYPES]
        own = await self.state.event_cache.get(membership.event_id)
        if own is not None:
            events.append(_stripped(own.event))
        return events

    async def left_room(
        self,
        scope: SyncScope,
        membership: Membership,
        since_pos: int | None,
        window: RoomWindow,
    ) -> LeftRoom:
        user_id = scope.user_id
        room_id = membership.room_id
        timeline, limited, _complete = await self._timeline(
            user_id, room_id, since_pos, membership.stream_ordering, window
        )
        leave_event = await self.state.event_cache.get(membership.event_id)
        group = leave_event.state_group if leave_event is not None else None
        state = await self._state_for(user_id, room_id, group, timeline, window)
        served = await self.serializer.serialize(
            timeline, user_id=user_id, device_id=scope.device_id, include_room_id=False
        )
        prev_pos = timeline[0].stream_ordering - 1 if timeline else membership.stream_ordering
        return LeftRoom(Timeline(served, limited, StreamToken(events=prev_pos)), state)
