"""List filters of sliding sync: which of the user's rooms a list holds.

As Synapse applies them (all given filters ANDed), plus the two Synapse
1.163 answers with a 500: `spaces` (rooms a joined space names in a
`m.space.child` with a `via`, never subspaces) and `room_name_like` (a
case-insensitive substring of the room name). What a filter needs is read
once per request and only when some list uses it.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Final

from hamlet.handlers.rooms.state import StateHandler
from hamlet.handlers.sliding_sync.params import ListFilters
from hamlet.handlers.user_streams.account_data import AccountDataHandler
from hamlet.storage.stores.rooms import Membership, RoomsStore

ENCRYPTION: Final = "m.room.encryption"
SPACE_CHILD: Final = "m.space.child"
NAME: Final = "m.room.name"


class RoomFacts:
    """What the filters of one request look at, loaded on first use."""

    def __init__(
        self,
        *,
        user_id: str,
        memberships: Mapping[str, Membership],
        rooms: RoomsStore,
        state: StateHandler,
        account_data: AccountDataHandler,
    ) -> None:
        self.user_id = user_id
        self.memberships = memberships
        self.rooms = rooms
        self.state = state
        self.account_data = account_data
        self._dms: frozenset[str] | None = None
        self._tags: dict[str, frozenset[str]] | None = None
        self._types: dict[str, str | None] | None = None
        self._encrypted: set[str] | None = None
        self._names: dict[str, str] | None = None
        self._children: dict[str, frozenset[str]] = {}

    async def dm_rooms(self) -> frozenset[str]:
        if self._dms is None:
            self._dms = await self.account_data.get_direct_rooms(self.user_id)
        return self._dms

    async def _tag_names(self) -> dict[str, frozenset[str]]:
        if self._tags is None:
            self._tags = await self.account_data.get_tag_names(self.user_id)
        return self._tags

    async def _room_types(self) -> dict[str, str | None]:
        if self._types is None:
            self._types = await self.rooms.get_room_types(list(self.memberships))
        return self._types

    async def _encrypted_rooms(self) -> set[str]:
        if self._encrypted is None:
            self._encrypted = await self.rooms.get_rooms_with_state(
                list(self.memberships), ENCRYPTION, ""
            )
        return self._encrypted

    async def _room_names(self) -> dict[str, str]:
        if self._names is None:
            names: dict[str, str] = {}
            for room_id in self.memberships:
                event = await self.state.get_current_state_event(room_id, NAME, "")
                name = event.content.get("name") if event is not None else None
                if isinstance(name, str):
                    names[room_id] = name.casefold()
            self._names = names
        return self._names

    async def _space_children(self, space_id: str) -> frozenset[str]:
        """Rooms a space the user is joined to names as children (none for others)."""
        cached = self._children.get(space_id)
        if cached is not None:
            return cached
        children: set[str] = set()
        m = self.memberships.get(space_id)
        if m is not None and m.membership == "join":
            keys = {
                k for k in await self.state.get_current_state_ids(space_id) if k[0] == SPACE_CHILD
            }
            events = await self.state.get_current_state(space_id, keys)
            for (_type, child), event in events.items():
                via = event.content.get("via")
                if isinstance(via, list) and via:
                    children.add(child)
        self._children[space_id] = frozenset(children)
        return self._children[space_id]

    async def apply(self, filters: ListFilters, room_ids: list[str]) -> list[str]:
        """`room_ids` (in their order) that pass every filter given."""
        kept = room_ids
        if filters.is_dm is not None:
            dms = await self.dm_rooms()
            kept = [r for r in kept if (r in dms) == filters.is_dm]
        if filters.spaces is not None:
            in_spaces: set[str] = set()
            for space_id in filters.spaces:
                in_spaces |= await self._space_children(space_id)
            kept = [r for r in kept if r in in_spaces]
        if filters.is_encrypted is not None:
            encrypted = await self._encrypted_rooms()
            kept = [r for r in kept if (r in encrypted) == filters.is_encrypted]
        if filters.is_invite is not None:
            kept = [
                r for r in kept if (self.memberships[r].membership == "invite") == filters.is_invite
            ]
        if filters.room_types is not None or filters.not_room_types is not None:
            types = await self._room_types()
            # A room whose type is unknown (not on this server) is left out, as in Synapse.
            kept = [
                r
                for r in kept
                if r in types
                and (filters.room_types is None or types[r] in filters.room_types)
                and (filters.not_room_types is None or types[r] not in filters.not_room_types)
            ]
        if filters.room_name_like is not None:
            names = await self._room_names()
            like = filters.room_name_like.casefold()
            kept = [r for r in kept if like in names.get(r, "")]
        if filters.tags is not None or filters.not_tags is not None:
            tags = await self._tag_names()
            if filters.tags is not None:
                kept = [r for r in kept if tags.get(r, frozenset()) & filters.tags]
            if filters.not_tags is not None:
                kept = [r for r in kept if not tags.get(r, frozenset()) & filters.not_tags]
        return kept
