"""`POST /search` for room events: matches the user may see, a page at a time.

The rooms searched are those the user is joined to, has left or was banned
from (not forgotten); in the latter two only events up to their departure
(the storage query joins the user's membership). Each candidate then passes
the room event filter and history visibility, as on every read path, and so
does every event of a result's context.

Pages continue from `next_batch`, which names the search's snapshot (the
stream position when the first page was asked for: later events never
enter a search already being paged through) and the last (rank, stream
position) returned. Ranks depend on the event alone (see the store), so a
page never repeats or skips a result of an earlier one.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

from hamlet.core.search_query import searchable_text
from hamlet.handlers.common.errors import InvalidParamError
from hamlet.handlers.history.pagination import PaginationHandler, make_pagination_token
from hamlet.handlers.history.serializer import EventSerializer
from hamlet.handlers.history.visibility import VisibilityHandler
from hamlet.handlers.rooms.event_cache import EventCache
from hamlet.handlers.rooms.state import StateHandler
from hamlet.handlers.search.params import BatchToken, EventContext, SearchRequest
from hamlet.storage.stores.events import StoredEvent
from hamlet.storage.stores.room_history import RoomHistoryStore
from hamlet.storage.stores.rooms import RoomsStore
from hamlet.storage.stores.search import SearchScope, SearchStore

# Matches examined for one page (dropped by filters or visibility) before
# the page ends early with a next_batch to carry on from.
MAX_SCANNED = 1000


class SearchHandler:
    def __init__(
        self,
        *,
        store: SearchStore,
        history: RoomHistoryStore,
        rooms: RoomsStore,
        state: StateHandler,
        cache: EventCache,
        visibility: VisibilityHandler,
        pagination: PaginationHandler,
        serializer: EventSerializer,
        current_stream: Callable[[], int],
    ) -> None:
        self.store = store
        self.history = history
        self.rooms = rooms
        self.state = state
        self.cache = cache
        self.visibility = visibility
        self.pagination = pagination
        self.serializer = serializer
        self._current_stream = current_stream

    async def search(
        self,
        user_id: str,
        device_id: str | None,
        req: SearchRequest,
        batch: BatchToken | None,
    ) -> dict[str, Any]:
        if batch is not None and batch.by_rank != req.by_rank:
            raise InvalidParamError("next_batch belongs to a search with another order_by")
        group = batch.group if batch is not None else None
        scope = SearchScope(
            user_id=user_id,
            types=req.types,
            upto=batch.upto if batch is not None else self._current_stream(),
            event_filter=req.event_filter,
            room_id=group[1] if group is not None and group[0] == "room_id" else None,
            sender=group[1] if group is not None and group[0] == "sender" else None,
        )
        after = (batch.rank, batch.stream) if batch is not None else None
        found, ranks, more = await self._page(user_id, req, scope, after)
        count = await self.store.count(req.query, scope)
        texts = {
            s.stream_ordering: text
            for s in found
            if (text := searchable_text(s.event.type, s.event.content)) is not None
        }
        highlights = set(req.query.words) | await self.store.matched_words(req.query, texts)
        served = await self.serializer.serialize(found, user_id=user_id, device_id=device_id)
        contexts = {}
        if req.context is not None:
            contexts = await self._contexts(user_id, device_id, found, req.context)
        results = [
            {
                "rank": ranks[s.stream_ordering],
                "result": event,
                "context": contexts.get(s.event.event_id, {}),
            }
            for s, event in zip(found, served, strict=True)
        ]
        out: dict[str, Any] = {
            "results": results,
            "count": count,
            "highlights": sorted(highlights),
        }
        next_batch: BatchToken | None = None
        if more is not None:
            next_batch = BatchToken(req.by_rank, scope.upto, more[0], more[1], group)
            out["next_batch"] = next_batch.encode()
        if req.include_state and found:
            out["state"] = await self._room_states(user_id, {s.event.room_id for s in found})
        groups = {key: _groups(found, key, next_batch) for key in req.group_by if found}
        if groups:
            out["groups"] = groups
        return {"search_categories": {"room_events": out}}

    async def _page(
        self,
        user_id: str,
        req: SearchRequest,
        scope: SearchScope,
        after: tuple[float, int] | None,
    ) -> tuple[list[StoredEvent], dict[int, float], tuple[float, int] | None]:
        """Up to `limit` visible matches after `after`, their ranks, and where
        to continue (None when nothing more can match)."""
        out: list[StoredEvent] = []
        ranks: dict[int, float] = {}
        batch = min(max(2 * (req.limit + 1), 20), 200)
        scanned = 0
        keep = req.event_filter.matches if req.event_filter is not None else None
        while True:
            hits = await self.store.search(
                req.query, scope, by_rank=req.by_rank, after=after, limit=batch
            )
            rows = {
                s.stream_ordering: s
                for s in await self.history.get_events_by_stream([h.stream_ordering for h in hits])
            }
            candidates = [
                rows[h.stream_ordering]
                for h in hits
                if h.stream_ordering in rows
                and (keep is None or keep(rows[h.stream_ordering].event))
            ]
            allowed = {
                s.stream_ordering
                for s in await self.visibility.filter_for_user(user_id, candidates)
            }
            for hit in hits:
                if hit.stream_ordering not in allowed:
                    continue
                if len(out) == req.limit:
                    last = out[-1].stream_ordering
                    return out, ranks, (ranks[last], last)
                out.append(rows[hit.stream_ordering])
                ranks[hit.stream_ordering] = hit.rank
            scanned += len(hits)
            if len(hits) < batch:
                return out, ranks, None
            after = (hits[-1].rank, hits[-1].stream_ordering)
            if scanned >= MAX_SCANNED:
                return out, ranks, after

    async def _contexts(
        self,
        user_id: str,
        device_id: str | None,
        found: list[StoredEvent],
        ctx: EventContext,
    ) -> dict[str, dict[str, Any]]:
        access: dict[str, tuple[bool, int | None]] = {}
        contexts: dict[str, dict[str, Any]] = {}
        for stored in found:
            room_id = stored.event.room_id
            if room_id not in access:
                access[room_id] = await self.pagination.check_access(user_id, room_id)
            joined, cap = access[room_id]
            before, after = await self.pagination.around(
                user_id,
                stored,
                joined=joined,
                cap=cap,
                before_limit=ctx.before_limit,
                after_limit=ctx.after_limit,
            )
            served = await self.serializer.serialize(
                [*before, *after], user_id=user_id, device_id=device_id
            )
            last = after[-1] if after else stored
            context: dict[str, Any] = {
                "events_before": served[: len(before)],
                "events_after": served[len(before) :],
                "start": make_pagination_token(
                    (before[-1] if before else stored).stream_ordering - 1
                ),
                "end": make_pagination_token(last.stream_ordering),
            }
            if ctx.include_profile:
                senders = {s.event.sender for s in (*before, stored, *after)}
                members = await self.state.get_state_after(
                    last, {("m.room.member", s) for s in senders}
                )
                context["profile_info"] = {
                    key[1]: {
                        "displayname": event.content.get("displayname"),
                        "avatar_url": event.content.get("avatar_url"),
                    }
                    for key, event in members.items()
                }
            contexts[stored.event.event_id] = context
        return contexts

    async def _room_states(
        self, user_id: str, room_ids: Iterable[str]
    ) -> dict[str, list[dict[str, Any]]]:
        """Each room's current state, or for a room the user has left, the
        state when they left (what happened since is not theirs to see)."""
        out: dict[str, list[dict[str, Any]]] = {}
        for room_id in sorted(room_ids):
            membership = await self.rooms.get_membership(room_id, user_id)
            if membership is None:
                continue
            if membership.membership == "join":
                state = await self.state.get_current_state(room_id)
            else:
                departure = await self.cache.get(membership.event_id)
                if departure is None:
                    continue
                state = await self.state.get_state_after(departure)
            out[room_id] = [e.get_client_event() for e in state.values()]
        return out


def _groups(
    found: list[StoredEvent], key: str, next_batch: BatchToken | None
) -> dict[str, dict[str, Any]]:
    """Results by room or sender, each group numbered in order of its first result."""
    groups: dict[str, dict[str, Any]] = {}
    for stored in found:
        value = stored.event.room_id if key == "room_id" else stored.event.sender
        group = groups.get(value)
        if group is None:
            group = groups[value] = {"results": [], "order": len(groups) + 1}
            if next_batch is not None:
                group["next_batch"] = BatchToken(
                    next_batch.by_rank,
                    next_batch.upto,
                    next_batch.rank,
                    next_batch.stream,
                    (key, value),
                ).encode()
        group["results"].append(stored.event.event_id)
    return groups
