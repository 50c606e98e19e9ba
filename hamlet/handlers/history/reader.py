"""Reading rooms for a user: state and single events, with visibility enforced."""

from __future__ import annotations

from hamlet.core.events import Event
from hamlet.core.power_levels import StateKey
from hamlet.handlers.common.errors import ForbiddenError, NotFoundError
from hamlet.handlers.history.visibility import HISTORY_KEY, VisibilityHandler
from hamlet.handlers.rooms.event_cache import EventCache
from hamlet.handlers.rooms.state import StateHandler
from hamlet.storage.stores.events import StoredEvent
from hamlet.storage.stores.rooms import RoomsStore


class RoomReader:
    def __init__(
        self,
        *,
        state: StateHandler,
        rooms: RoomsStore,
        cache: EventCache,
        visibility: VisibilityHandler,
    ) -> None:
        self.state = state
        self.rooms = rooms
        self.cache = cache
        self.visibility = visibility

    async def _state_group_for_user(self, user_id: str, room_id: str) -> int | None:
        """None: the current state. Otherwise the state when the user left."""
        if await self.rooms.get_room(room_id) is None:
            raise NotFoundError("Unknown room")
        membership = await self.rooms.get_membership(room_id, user_id)
        if membership is not None and membership.membership == "join":
            return None
        if membership is not None and membership.membership in ("leave", "ban"):
            stored = await self.cache.get(membership.event_id)
            if stored is not None:
                return stored.state_group
        hv = await self.state.get_current_state_event(room_id, *HISTORY_KEY)
        if hv is not None and hv.content.get("history_visibility") == "world_readable":
            return None
        raise ForbiddenError(f"User {user_id} not in room {room_id}")

    async def get_state_for_user(self, user_id: str, room_id: str) -> dict[StateKey, Event]:
        group = await self._state_group_for_user(user_id, room_id)
        if group is None:
            return await self.state.get_current_state(room_id)
        return await self.state.get_state_at_group(group)

    async def serialize_state(self, state: dict[StateKey, Event]) -> list[dict[str, object]]:
        return [event.get_client_event() for event in state.values()]

    async def get_member_events_for_user(
        self, user_id: str, room_id: str, at_stream: int | None = None
    ) -> list[Event]:
        group = await self._state_group_for_user(user_id, room_id)
        if at_stream is not None:
            at_group = await self.state.events_store.get_state_group_at_stream(room_id, at_stream)
            if at_group is not None and (group is None or at_group < group):
                group = at_group
        if group is None:
            state = await self.state.get_current_state(room_id)
        else:
            state = await self.state.get_state_at_group(group)
        return [e for (t, _k), e in state.items() if t == "m.room.member"]

    async def get_event_for_user(self, user_id: str, room_id: str, event_id: str) -> StoredEvent:
        stored = await self.cache.get(event_id)
        if stored is None or stored.event.room_id != room_id:
            raise NotFoundError("Event not found")
        if not await self.visibility.filter_for_user(user_id, [stored]):
            raise NotFoundError("Event not found")
        return stored
