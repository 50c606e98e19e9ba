"""Event relations: `/relations` and `/threads` pagination.

Bundled aggregations (`unsigned.m.relations`) are in `aggregations.py`.
"""

from __future__ import annotations

from typing import Any

from hamlet.handlers.common.errors import InvalidParamError, NotFoundError
from hamlet.handlers.history.aggregations import rel_type_of
from hamlet.handlers.history.pagination import (
    PaginationHandler,
    make_pagination_token,
    parse_pagination_token,
    scan_visible,
)
from hamlet.handlers.history.serializer import EventSerializer
from hamlet.handlers.history.visibility import VisibilityHandler
from hamlet.handlers.rooms.event_cache import EventCache
from hamlet.storage.stores.events import StoredEvent
from hamlet.storage.stores.room_history import RoomHistoryStore

DEFAULT_LIMIT = 5
MAX_RECURSION_DEPTH = 3
#: Thread roots scanned (and dropped as invisible or not participated) before
#: a page of `/threads` gives up and hands back a token to continue from.
MAX_THREADS_SCANNED = 2000
THREAD_INCLUDES = ("all", "participated")


class RelationsHandler:
    def __init__(
        self,
        *,
        history: RoomHistoryStore,
        cache: EventCache,
        visibility: VisibilityHandler,
        serializer: EventSerializer,
        pagination: PaginationHandler,
    ) -> None:
        self.history = history
        self.cache = cache
        self.visibility = visibility
        self.serializer = serializer
        self.pagination = pagination

    async def get_relations(
        self,
        user_id: str,
        device_id: str | None,
        room_id: str,
        event_id: str,
        *,
        rel_type: str | None,
        event_type: str | None,
        from_token: str | None,
        to_token: str | None,
        limit: int,
        backwards: bool,
        recurse: bool,
    ) -> dict[str, Any]:
        start = parse_pagination_token(from_token) if from_token is not None else None
        bound = parse_pagination_token(to_token) if to_token is not None else None
        joined, _cap = await self.pagination.check_access(user_id, room_id)
        parent = await self.cache.get(event_id)
        if parent is None or parent.event.room_id != room_id:
            raise NotFoundError("Event not found")
        if not await self.visibility.filter_for_user(user_id, [parent], currently_joined=joined):
            raise NotFoundError("Event not found")
        parents = {event_id}
        if recurse:
            frontier = {event_id}
            for _ in range(MAX_RECURSION_DEPTH - 1):
                frontier = await self.history.get_child_ids(frontier, rel_type) - parents
                if not frontier:
                    break
                parents |= frontier

        async def fetch(
            after: int | None, before: int | None, n: int, back: bool
        ) -> list[StoredEvent]:
            return await self.history.get_relations(
                parents,
                rel_type=rel_type,
                event_type=event_type,
                after=after,
                before=before,
                limit=n,
                backwards=back,
            )

        async def visible(events: list[StoredEvent]) -> list[StoredEvent]:
            return await self.visibility.filter_for_user(user_id, events, currently_joined=joined)

        events: list[StoredEvent] = []
        next_pos: int | None = None
        if limit > 0:
            events, next_pos = await scan_visible(
                fetch,
                visible=visible,
                start=start,
                bound=bound,
                backwards=backwards,
                limit=limit,
            )
        response: dict[str, Any] = {
            "chunk": await self.serializer.serialize(events, user_id=user_id, device_id=device_id)
        }
        if next_pos is not None:
            response["next_batch"] = make_pagination_token(next_pos)
        if from_token is not None:
            response["prev_batch"] = from_token
        if recurse:
            response["recursion_depth"] = MAX_RECURSION_DEPTH
        return response

    async def get_threads(
        self,
        user_id: str,
        device_id: str | None,
        room_id: str,
        *,
        include: str,
        from_token: str | None,
        limit: int,
    ) -> dict[str, Any]:
        """`GET /rooms/{roomId}/threads`: thread roots, most recently active first.

        Tokens are `t<N>`: the threads whose latest reply is at or before N.
        """
        if include not in THREAD_INCLUDES:
            raise InvalidParamError("include must be 'all' or 'participated'")
        pos = parse_pagination_token(from_token) if from_token is not None else None
        joined, cap = await self.pagination.check_access(user_id, room_id)
        roots: list[StoredEvent] = []
        next_pos: int | None = None
        batch = min(max(2 * (limit + 1), 20), 500)
        scanned = 0
        while limit > 0:
            rows = await self.history.get_thread_roots(room_id, before=pos, upto=cap, limit=batch)
            found = await self.cache.get_many([root for root, _latest in rows])
            candidates = [
                stored
                for stored in found.values()
                if stored.event.room_id == room_id and rel_type_of(stored) is None
            ]
            if include == "participated":
                mine = {s.event.event_id for s in candidates if s.event.sender == user_id}
                mine |= await self.history.get_threads_participated(
                    [s.event.event_id for s in candidates if s.event.event_id not in mine],
                    user_id,
                )
                candidates = [s for s in candidates if s.event.event_id in mine]
            visible = {
                s.event.event_id
                for s in await self.visibility.filter_for_user(
                    user_id, candidates, currently_joined=joined
                )
            }
            full = False
            for root, latest in rows:
                if root not in visible:
                    continue
                if len(roots) == limit:
                    full = True
                    break
                roots.append(found[root])
                next_pos = latest - 1
            scanned += len(rows)
            if full:
                break
            if len(rows) < batch:
                next_pos = None
                break
            pos = rows[-1][1] - 1
            if scanned >= MAX_THREADS_SCANNED:
                next_pos = pos
                break
        response: dict[str, Any] = {
            "chunk": await self.serializer.serialize(roots, user_id=user_id, device_id=device_id)
        }
        if next_pos is not None:
            response["next_batch"] = make_pagination_token(next_pos)
        return response
