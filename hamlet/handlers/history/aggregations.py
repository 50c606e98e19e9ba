"""Bundled aggregations: `unsigned.m.relations` on served events.

Filled for a batch of events with a few queries (not per event): the latest
applicable edit (`m.replace`, served as the full replacement event), thread
summaries (`m.thread`) and references (`m.reference`). Redacted relations
never count.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from hamlet.handlers.history.serializer import EventSerializer
from hamlet.handlers.history.visibility import VisibilityHandler
from hamlet.handlers.rooms.event_cache import EventCache
from hamlet.storage.stores.events import StoredEvent
from hamlet.storage.stores.room_history import RoomHistoryStore

REPLACE = "m.replace"
THREAD = "m.thread"
REFERENCE = "m.reference"


def rel_type_of(stored: StoredEvent) -> str | None:
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


class BundledAggregations:
    """The EventSerializer's aggregator.

    Edits and thread heads are served through `serializer`, which must not
    bundle itself (its events carry no further aggregations).
    """

    def __init__(
        self,
        *,
        history: RoomHistoryStore,
        cache: EventCache,
        visibility: VisibilityHandler,
        serializer: EventSerializer,
    ) -> None:
        self.history = history
        self.cache = cache
        self.visibility = visibility
        self.serializer = serializer

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
        relation_of = {eid: rel_type_of(s) for eid, s in by_id.items()}

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
