"""Turning stored events into what a client is served."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from typing import Any

from hamlet.core.events import Event
from hamlet.handlers.rooms.event_cache import EventCache
from hamlet.runtime.clock import Clock
from hamlet.storage.stores.events import EventsStore, StoredEvent

#: Adds `unsigned.m.relations` (bundled aggregations) to served events.
Aggregator = Callable[[Sequence[StoredEvent], str], Awaitable[dict[str, dict[str, Any]]]]


class EventSerializer:
    def __init__(
        self,
        clock: Clock,
        cache: EventCache,
        store: EventsStore,
        aggregator: Aggregator | None = None,
    ) -> None:
        self.clock = clock
        self.cache = cache
        self.store = store
        # None for the serializer the aggregator itself serves edits through.
        self.aggregator = aggregator

    async def serialize(
        self,
        events: Sequence[StoredEvent],
        *,
        user_id: str | None = None,
        device_id: str | None = None,
        include_room_id: bool = True,
        bundle: bool = True,
    ) -> list[dict[str, Any]]:
        now = self.clock.time_msec()
        own = [s.event.event_id for s in events if user_id and s.event.sender == user_id]
        txn_ids = await self.store.get_txn_ids(own) if own and device_id else {}
        redactions = await self.cache.get_many(
            [s.redacted_by for s in events if s.redacted_by is not None]
        )
        replaced = await self.cache.get_many(
            [s.replaces_state for s in events if s.replaces_state is not None]
        )
        relations: dict[str, dict[str, Any]] = {}
        if bundle and self.aggregator is not None and user_id is not None:
            relations = await self.aggregator(events, user_id)
        out = []
        for stored in events:
            event = stored.event
            redaction = redactions.get(stored.redacted_by) if stored.redacted_by else None
            if redaction is not None:
                event = Event(
                    event.get_redacted_pdu_json(), event.room_version, event_id=event.event_id
                )
            served = event.get_client_event(include_room_id=include_room_id)
            unsigned: dict[str, Any] = served.setdefault("unsigned", {})
            unsigned["age"] = max(0, now - event.origin_server_ts)
            if redaction is not None:
                unsigned["redacted_because"] = redaction.event.get_client_event()
            prev = replaced.get(stored.replaces_state) if stored.replaces_state else None
            if prev is not None:
                unsigned["replaces_state"] = prev.event.event_id
                unsigned["prev_sender"] = prev.event.sender
                if prev.redacted_by is None:
                    unsigned["prev_content"] = dict(prev.event.content)
            txn = txn_ids.get(event.event_id)
            if txn is not None and txn[0] == device_id:
                unsigned["transaction_id"] = txn[1]
            if redaction is None and event.event_id in relations:
                unsigned["m.relations"] = relations[event.event_id]
            out.append(served)
        return out

    async def serialize_one(self, stored: StoredEvent, **kwargs: Any) -> dict[str, Any]:
        return (await self.serialize([stored], **kwargs))[0]
