"""Event relations: `/relations` pagination and bundled aggregations.

The aggregator fills `unsigned.m.relations` for served events with a few
queries per batch (not per event): the latest applicable edit (`m.replace`,
served as the full replacement event), thread summaries (`m.thread`) and
references (`m.reference`). Redacted relations never count.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from hamlet.handlers.common.errors import InvalidParamError, NotFoundError
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

REPLACE = "m.replace"
THREAD = "m.thread"
REFERENCE = "m.reference"


def _rel_type(stored: StoredEvent) -> str | None:
    rel = stored.event.content.get("m.relates_to")
    if isinstance(rel, dict):
        value = rel.get("rel_type")
        return value if isinstance(value, str) else None
    return None


def _is_valid_edit(original: StoredEvent, edit: StoredEvent) -> bool:
    o, e = original.event, edit.event
    return (
        e.sender == o.sender
        and e.type == o.type
        and e.room_id == o.room_id
        and e.state_key is None
        and o.state_key is None
        and isinstance(e.content.get("m.new_content"), dict)
    )


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
                if stored.event.room_id == room_id and _rel_type(stored) is None
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

    # Bundled aggregations (the EventSerializer's aggregator hook).

    async def aggregate(
        self, events: Sequence[StoredEvent], user_id: str
    ) -> dict[str, dict[str, Any]]:
        by_id = {s.event.event_id: s for s in events if s.redacted_by is None}
        if not by_id:
            return {}
        # One cheap query finds which events have relations at all (usually few).
        kinds = await self.history.get_relation_kinds(list(by_id))
        if not kinds:
            return {}
        out: dict[str, dict[str, Any]] = {}
        relation_of = {eid: _rel_type(s) for eid, s in by_id.items()}

        # Edits: not for state events, nor for events that are edits themselves.
        editable = [
            by_id[eid]
            for eid, found in kinds.items()
            if REPLACE in found
            and eid in by_id
            and by_id[eid].event.state_key is None
            and relation_of[eid] != REPLACE
        ]
        for eid, edit in (await self._latest_edits(editable, user_id)).items():
            out.setdefault(eid, {})[REPLACE] = edit

        # Threads: events inside a relation cannot be thread roots.
        roots = [
            eid
            for eid, found in kinds.items()
            if THREAD in found and eid in by_id and relation_of[eid] is None
        ]
        if roots:
            await self._threads(roots, by_id, user_id, out)

        referenced = [eid for eid, found in kinds.items() if REFERENCE in found and eid in by_id]
        if referenced:
            refs = await self.history.get_related_ids(referenced, REFERENCE)
            found_refs = await self.cache.get_many([ref for _parent, ref in refs])
            seen = {
                s.event.event_id
                for s in await self.visibility.filter_for_user(user_id, list(found_refs.values()))
            }
            for parent, ref in refs:
                if ref in seen:
                    entry = out.setdefault(parent, {}).setdefault(REFERENCE, {"chunk": []})
                    entry["chunk"].append({"event_id": ref})
        return out

    async def _latest_edits(
        self, originals: Sequence[StoredEvent], user_id: str
    ) -> dict[str, dict[str, Any]]:
        """event_id -> the latest valid replacement of it, serialized."""
        if not originals:
            return {}
        by_id = {s.event.event_id: s for s in originals}
        candidates = await self.history.get_related_events(list(by_id), REPLACE)
        candidates = await self.visibility.filter_for_user(user_id, candidates)
        latest: dict[str, StoredEvent] = {}
        for edit in candidates:
            rel = edit.event.content.get("m.relates_to")
            target = rel.get("event_id") if isinstance(rel, dict) else None
            original = by_id.get(target) if isinstance(target, str) else None
            if original is None or not _is_valid_edit(original, edit):
                continue
            best = latest.get(original.event.event_id)
            key = (edit.event.origin_server_ts, edit.event.event_id)
            if best is None or key > (best.event.origin_server_ts, best.event.event_id):
                latest[original.event.event_id] = edit
        if not latest:
            return {}
        order = list(latest)
        served = await self.serializer.serialize(
            [latest[e] for e in order], user_id=user_id, bundle=False
        )
        return dict(zip(order, served, strict=True))

    async def _threads(
        self,
        roots: list[str],
        by_id: dict[str, StoredEvent],
        user_id: str,
        out: dict[str, dict[str, Any]],
    ) -> None:
        summaries = await self.history.get_thread_summaries(roots)
        if not summaries:
            return
        latest_events = await self.history.get_events_by_stream(
            [s.latest_stream for s in summaries.values()]
        )
        latest_events = await self.visibility.filter_for_user(user_id, latest_events)
        by_stream = {s.stream_ordering: s for s in latest_events}
        participated = await self.history.get_threads_participated(list(summaries), user_id)
        shown = {
            root: by_stream[summary.latest_stream]
            for root, summary in summaries.items()
            if summary.latest_stream in by_stream
        }
        if not shown:
            return
        order = list(shown)
        latest_list = [shown[r] for r in order]
        served = await self.serializer.serialize(latest_list, user_id=user_id, bundle=False)
        edits = await self._latest_edits(latest_list, user_id)
        for root, stored, event_json in zip(order, latest_list, served, strict=True):
            edit = edits.get(stored.event.event_id)
            if edit is not None:
                event_json.setdefault("unsigned", {})["m.relations"] = {REPLACE: edit}
            out.setdefault(root, {})[THREAD] = {
                "latest_event": event_json,
                "count": summaries[root].count,
                "current_user_participated": root in participated
                or by_id[root].event.sender == user_id,
            }
