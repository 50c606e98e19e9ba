"""`POST /user_directory/search`: people a user may find.

A user finds everyone they share a room with and everyone joined to a
public room (join rule `public`); `user_directory.search_all_users` lets
them find every active local user. Deactivated users are never listed.
"""

from __future__ import annotations

from typing import Any

from hamlet.config import HomeServerConfig
from hamlet.handlers.common.errors import InvalidParamError
from hamlet.handlers.rooms.state import StateHandler
from hamlet.storage.stores.rooms import RoomsStore
from hamlet.storage.stores.user_directory import DirectoryEntry, UserDirectoryStore

DEFAULT_LIMIT = 10
MAX_LIMIT = 1000
# Matching users considered per search before visibility is applied.
MAX_CANDIDATES = 2000
#: Longest search term: far beyond any name, short of what a LIKE pattern
#: and a statement's bound parameters allow.
MAX_TERM_LENGTH = 1000
#: Words of a term that must each match; more only narrow the results
#: further and cost a condition each, so the rest are not used.
MAX_TERM_WORDS = 16


class UserDirectoryHandler:
    def __init__(
        self,
        *,
        config: HomeServerConfig,
        store: UserDirectoryStore,
        rooms: RoomsStore,
        state: StateHandler,
    ) -> None:
        self.config = config
        self.store = store
        self.rooms = rooms
        self.state = state

    async def _is_public(self, room_id: str, cache: dict[str, bool]) -> bool:
        if room_id not in cache:
            event = await self.state.get_current_state_event(room_id, "m.room.join_rules", "")
            cache[room_id] = event is not None and event.content.get("join_rule") == "public"
        return cache[room_id]

    async def search(self, user_id: str, term: str, limit: int) -> dict[str, Any]:
        if len(term) > MAX_TERM_LENGTH:
            raise InvalidParamError(f"search_term is longer than {MAX_TERM_LENGTH} characters")
        words = list(dict.fromkeys(term.split()))[:MAX_TERM_WORDS]
        if not words or not self.config.user_directory.enabled:
            return {"results": [], "limited": False}
        candidates = await self.store.search(words, MAX_CANDIDATES)
        sharing = await self.rooms.users_sharing_rooms(user_id)
        if self.config.user_directory.search_all_users:
            visible = candidates
        else:
            others = [c.user_id for c in candidates if c.user_id not in sharing]
            rooms_of = await self.store.get_joined_rooms(others) if others else {}
            public: dict[str, bool] = {}
            in_public: set[str] = set()
            for other, room_ids in rooms_of.items():
                for room_id in room_ids:
                    if await self._is_public(room_id, public):
                        in_public.add(other)
                        break
            visible = [c for c in candidates if c.user_id in sharing or c.user_id in in_public]
        whole = term.strip().lower()

        def rank(entry: DirectoryEntry) -> tuple[int, int, str, str]:
            localpart = entry.user_id[1:].split(":", 1)[0].lower()
            name = (entry.displayname or "").lower()
            exact = 0 if whole in (localpart, name) else 1
            shared = 0 if entry.user_id in sharing else 1
            return exact, shared, name or localpart, entry.user_id

        visible = sorted(visible, key=rank)
        return {
            "results": [_entry(e) for e in visible[:limit]],
            "limited": len(visible) > limit,
        }


def _entry(entry: DirectoryEntry) -> dict[str, Any]:
    out: dict[str, Any] = {"user_id": entry.user_id}
    if entry.displayname is not None:
        out["display_name"] = entry.displayname
    if entry.avatar_url is not None:
        out["avatar_url"] = entry.avatar_url
    return out
