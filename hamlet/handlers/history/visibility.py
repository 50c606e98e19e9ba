"""History visibility: which events a user may see, on every read path."""

from __future__ import annotations

from collections.abc import Collection, Sequence

from hamlet.handlers.rooms.state import StateHandler
from hamlet.storage.stores.events import StoredEvent
from hamlet.storage.stores.rooms import RoomsStore

HISTORY_KEY = ("m.room.history_visibility", "")


class VisibilityHandler:
    def __init__(self, state: StateHandler, rooms: RoomsStore) -> None:
        self.state = state
        self.rooms = rooms

    async def _visibility_and_membership(
        self, groups: Collection[int], user_id: str
    ) -> dict[int, tuple[str, str | None]]:
        """(history visibility, the user's membership) at each state group."""
        member_key = ("m.room.member", user_id)
        states = await self.state.get_state_ids_at_groups(groups)
        wanted = {
            event_id
            for ids in states.values()
            for key in (HISTORY_KEY, member_key)
            if (event_id := ids.get(key)) is not None
        }
        events = await self.state.event_cache.get_many(wanted)
        out: dict[int, tuple[str, str | None]] = {}
        for group, ids in states.items():
            hv = events.get(ids.get(HISTORY_KEY, ""))
            visibility = "shared"
            if hv is not None:
                value = hv.event.content.get("history_visibility")
                if isinstance(value, str):
                    visibility = value
            member = events.get(ids.get(member_key, ""))
            membership = member.event.content.get("membership") if member is not None else None
            out[group] = visibility, membership if isinstance(membership, str) else None
        return out

    async def filter_for_user(
        self, user_id: str, events: Sequence[StoredEvent], *, currently_joined: bool | None = None
    ) -> list[StoredEvent]:
        """Keep the events `user_id` may see (order preserved).

        `currently_joined` may be passed when the caller knows it (all
        events from one room); it matters for `shared` visibility.
        """
        visible: list[StoredEvent] = []
        joined_now: dict[str, bool] = {}
        at_group = await self._visibility_and_membership(
            {
                s.state_group
                for s in events
                if s.in_timeline
                and s.state_group is not None
                and not (s.event.type == "m.room.member" and s.event.state_key == user_id)
            },
            user_id,
        )
        for stored in events:
            if not stored.in_timeline:
                # Outliers have no state to judge them by; soft-failed and
                # rejected events are never served.
                continue
            event = stored.event
            if event.type == "m.room.member" and event.state_key == user_id:
                visible.append(stored)
                continue
            assert stored.state_group is not None
            visibility, membership = at_group[stored.state_group]
            if visibility == "world_readable" or membership == "join":
                visible.append(stored)
            elif visibility == "invited" and membership == "invite":
                visible.append(stored)
            elif visibility == "shared":
                room_id = event.room_id
                if room_id not in joined_now:
                    if currently_joined is not None:
                        joined_now[room_id] = currently_joined
                    else:
                        current = await self.rooms.get_membership(room_id, user_id)
                        joined_now[room_id] = current is not None and current.membership == "join"
                if joined_now[room_id]:
                    visible.append(stored)
        return visible

    async def may_see_room_history(self, user_id: str, room_id: str) -> bool:
        """Whether a user may read a room at all (member now, or world readable)."""
        current = await self.rooms.get_membership(room_id, user_id)
        if current is not None and current.membership in ("join", "leave", "ban", "invite"):
            return True
        event = await self.state.get_current_state_event(room_id, *HISTORY_KEY)
        return event is not None and event.content.get("history_visibility") == "world_readable"
