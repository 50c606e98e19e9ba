"""The `rooms` section of /sync: joined, invited and left rooms of one user."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from hamlet.core.events import Event
from hamlet.core.filters import RoomFilter
from hamlet.core.glob import WorkBudget
from hamlet.core.power_levels import StateKey
from hamlet.handlers.common.streams import StreamToken
from hamlet.handlers.history.serializer import EventSerializer
from hamlet.handlers.history.visibility import VisibilityHandler
from hamlet.handlers.push.rules import PushRulesHandler, request_budget
from hamlet.handlers.rooms.state import StateHandler
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


def _stripped(event: Event) -> dict[str, Any]:
    return {
        "type": event.type,
        "state_key": event.state_key,
        "content": dict(event.content),
        "sender": event.sender,
    }


class RoomSyncBuilder:
    def __init__(
        self,
        *,
        events: EventsStore,
        history: RoomHistoryStore,
        rooms: RoomsStore,
        state: StateHandler,
        visibility: VisibilityHandler,
        serializer: EventSerializer,
        push_rules: PushRulesHandler,
    ) -> None:
        self.push_rules = push_rules
        self.events = events
        self.history = history
        self.rooms = rooms
        self.state = state
        self.visibility = visibility
        self.serializer = serializer

    async def build(
        self,
        *,
        user_id: str,
        device_id: str | None,
        since: StreamToken | None,
        now: StreamToken,
        full_state: bool,
        room_filter: RoomFilter,
        room_account_data: Mapping[str, list[dict[str, Any]]],
        ephemeral: Mapping[str, list[dict[str, Any]]],
    ) -> dict[str, dict[str, Any]]:
        """The rooms section. In an incremental sync, joined rooms where
        nothing happened are not even looked at."""
        memberships = [
            m
            for m in await self.rooms.get_memberships_of_user(user_id)
            if not m.forgotten and room_filter.matches_room(m.room_id)
        ]
        since_pos = since.events if since is not None else None
        joined = [m for m in memberships if m.membership == "join"]
        changed = (
            await self.events.get_rooms_changed([m.room_id for m in joined], since_pos, now.events)
            if since_pos is not None and not full_state
            else {m.room_id for m in joined}
        )
        out: dict[str, dict[str, Any]] = {"join": {}, "invite": {}, "leave": {}, "knock": {}}
        push_budget = request_budget()
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
                    and not ephemeral.get(m.room_id)
                    and not room_account_data.get(m.room_id)
                )
                if quiet:
                    continue
                room = out["join"][m.room_id] = await self._joined_room(
                    user_id,
                    device_id,
                    m,
                    None if newly else since_pos,
                    now,
                    full_state or newly,
                    m.room_id in changed,
                    room_filter,
                    room_account_data.get(m.room_id, []),
                    newly_joined=newly and since_pos is not None,
                    push_budget=push_budget,
                )
                room["ephemeral"] = {"events": ephemeral.get(m.room_id, [])}
            elif m.membership == "invite" and (newly or full_state):
                out["invite"][m.room_id] = await self._invited_room(m)
            elif m.membership in ("leave", "ban"):
                if since_pos is None and not room_filter.include_leave:
                    continue
                if since_pos is not None and not newly and not full_state:
                    continue
                out["leave"][m.room_id] = await self._left_room(
                    user_id, device_id, m, since_pos, room_filter
                )
            elif m.membership == "knock" and (newly or full_state):
                out["knock"][m.room_id] = {"knock_state": {"events": await self._stripped_state(m)}}
        return out

    @staticmethod
    def drop_empty(rooms: dict[str, dict[str, Any]], *, incremental: bool) -> None:
        """In an incremental sync, leave out joined rooms where nothing happened."""
        if not incremental:
            return
        for room_id in list(rooms["join"]):
            room = rooms["join"][room_id]
            if (
                not room["timeline"]["events"]
                and not room["state"]["events"]
                and not room["ephemeral"]["events"]
                and not room["account_data"]["events"]
            ):
                del rooms["join"][room_id]

    async def _timeline(
        self,
        user_id: str,
        room_id: str,
        after: int | None,
        upto: int,
        room_filter: RoomFilter,
    ) -> tuple[list[StoredEvent], bool]:
        """The newest visible, filter-matching events in (after, upto]; and `limited`."""
        limit = room_filter.timeline_limit
        if limit <= 0:
            return [], True
        timeline_filter = room_filter.timeline
        page = limit * 2 + 1
        collected: list[StoredEvent] = []
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
            collected.extend(await self.visibility.filter_for_user(user_id, wanted))
            if len(batch) < page:
                break
        limited = len(collected) > limit
        collected = collected[:limit]
        collected.reverse()
        return collected, limited

    async def _state_for(
        self,
        user_id: str,
        room_id: str,
        group: int | None,
        timeline: list[StoredEvent],
        room_filter: RoomFilter,
    ) -> list[dict[str, Any]]:
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
        in_timeline = {s.event.event_id for s in timeline}
        state_filter = room_filter.state
        wanted_members: set[str] | None = None
        if state_filter.lazy_load_members:
            wanted_members = {s.event.sender for s in timeline} | {user_id}
        served: list[Event] = []
        for (event_type, state_key), event in state.items():
            if event.event_id in in_timeline or not state_filter.matches(event):
                continue
            if (
                wanted_members is not None
                and event_type == "m.room.member"
                and state_key not in wanted_members
            ):
                continue
            served.append(event)
        stored = await self.state.event_cache.get_many([e.event_id for e in served])
        return await self.serializer.serialize(
            [stored[e.event_id] for e in served if e.event_id in stored],
            user_id=user_id,
            include_room_id=False,
            bundle=False,
        )

    async def _state_before(self, first: StoredEvent) -> dict[StateKey, Event]:
        """The room state just before `first`: the state after it, minus its own change."""
        state = dict(await self.state.get_state_at_group(first.state_group))
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
        user_id: str,
        device_id: str | None,
        membership: Membership,
        since_pos: int | None,
        now: StreamToken,
        full_state: bool,
        changed: bool,
        room_filter: RoomFilter,
        account_data: list[dict[str, Any]],
        *,
        newly_joined: bool = False,
        push_budget: WorkBudget | None = None,
    ) -> dict[str, Any]:
        room_id = membership.room_id
        timeline: list[StoredEvent] = []
        limited = False
        if changed or since_pos is None:
            timeline, limited = await self._timeline(
                user_id, room_id, since_pos, now.events, room_filter
            )
        # A room joined since the last sync is always `limited` (as in
        # Synapse): a client that knew the room (from an invite) resets its
        # timeline only then, and so takes prev_batch as its back-pagination
        # token; otherwise it has none and paginates from the room's end.
        limited = limited or newly_joined
        prev_pos = timeline[0].stream_ordering - 1 if timeline else now.events
        state: list[dict[str, Any]] = []
        if full_state or limited:
            state = await self._state_for(user_id, room_id, None, timeline, room_filter)
        served = await self.serializer.serialize(
            timeline, user_id=user_id, device_id=device_id, include_room_id=False
        )
        read_pos = await self.events.get_read_position(room_id, user_id)
        summary = await self._summary(room_id, user_id)
        notification_count, highlight_count = await self.push_rules.unread_counts(
            user_id,
            room_id,
            after=read_pos,
            upto=now.events,
            member_count=summary["m.joined_member_count"],
            budget=push_budget,
        )
        return {
            "timeline": {
                "events": served,
                "limited": limited,
                "prev_batch": now.copy_and_replace("events", prev_pos).to_string(),
            },
            "state": {"events": state},
            "account_data": {"events": room_filter.account_data.filter(account_data)},
            "ephemeral": {"events": []},
            "unread_notifications": {
                "notification_count": notification_count,
                "highlight_count": highlight_count,
            },
            "summary": summary,
        }

    async def _summary(self, room_id: str, user_id: str) -> dict[str, Any]:
        members = await self.rooms.get_members(room_id, None)
        joined = [m for m in members if m.membership == "join"]
        invited = [m for m in members if m.membership == "invite"]
        others = sorted(
            (m for m in joined + invited if m.user_id != user_id), key=lambda m: m.stream_ordering
        )
        return {
            "m.heroes": [m.user_id for m in others[:MAX_HEROES]],
            "m.joined_member_count": len(joined),
            "m.invited_member_count": len(invited),
        }

    async def _invited_room(self, membership: Membership) -> dict[str, Any]:
        return {"invite_state": {"events": await self._stripped_state(membership)}}

    async def _stripped_state(self, membership: Membership) -> list[dict[str, Any]]:
        """The stripped state an invitee or knocker sees, ending with their own member event."""
        state = await self.state.get_current_state(membership.room_id)
        events = [_stripped(e) for (t, _k), e in state.items() if t in STRIPPED_STATE_TYPES]
        own = await self.state.event_cache.get(membership.event_id)
        if own is not None:
            events.append(_stripped(own.event))
        return events

    async def _left_room(
        self,
        user_id: str,
        device_id: str | None,
        membership: Membership,
        since_pos: int | None,
        room_filter: RoomFilter,
    ) -> dict[str, Any]:
        room_id = membership.room_id
        timeline, limited = await self._timeline(
            user_id, room_id, since_pos, membership.stream_ordering, room_filter
        )
        leave_event = await self.state.event_cache.get(membership.event_id)
        group = leave_event.state_group if leave_event is not None else None
        state = await self._state_for(user_id, room_id, group, timeline, room_filter)
        served = await self.serializer.serialize(
            timeline, user_id=user_id, device_id=device_id, include_room_id=False
        )
        prev_pos = timeline[0].stream_ordering - 1 if timeline else membership.stream_ordering
        return {
            "timeline": {
                "events": served,
                "limited": limited,
                "prev_batch": StreamToken(events=prev_pos).to_string(),
            },
            "state": {"events": state},
            "account_data": {"events": []},
        }
