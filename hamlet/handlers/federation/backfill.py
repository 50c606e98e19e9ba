"""Backfill: fetching a room's older history from other servers for /messages.

When a client paginates back past the oldest event we hold of a room (its
backward extremities: prev_events of timeline events that are not in the
timeline, as for a room joined over federation), `/messages` asks
`backfill(room_id, limit)`. Servers with a member in the room are asked in
turn, `GET /backfill/{roomId}?v=...&limit=`, until one gives events we lack,
within one `FetchBudget`. Every event is checked (format, signatures,
hashes), then stored oldest first against its auth events and the state
before it (fetched from that server when its own prev_events are missing)
as old history: at stream positions below every stored event, lowest for
the oldest, so /messages, which pages by position, shows it before what
the room already had. It changes neither the room's extremities nor its
current state and wakes no /sync. Clients see it within history
visibility, as any event.

A room whose backfill found nothing is not asked about again for
`RETRY_AFTER_S`, so a client paginating into a history no server gives
does not cost a round of requests each time.
"""

from __future__ import annotations

import logging
from typing import Final
from urllib.parse import quote

from hamlet.core.events import Event
from hamlet.handlers.common.errors import MatrixError
from hamlet.handlers.common.service import ENTRY_BYTES, ServiceBase
from hamlet.handlers.federation.missing_events import GapFiller
from hamlet.handlers.federation.remote_events import (
    FEDERATION_V1,
    FetchBudget,
    FetchError,
    RemoteEvents,
)
from hamlet.handlers.rooms.persistence import EventPersister
from hamlet.runtime.clock import Clock
from hamlet.runtime.linearizer import Linearizer
from hamlet.runtime.lru import LruCache
from hamlet.storage.stores.dag_gaps import DagGapsStore
from hamlet.storage.stores.events import EventsStore
from hamlet.storage.stores.rooms import RoomsStore

logger = logging.getLogger(__name__)

#: Events asked for per request (the server side answers at most 100).
MAX_LIMIT: Final = 100
#: Backward extremities named per request (the server side takes 20).
MAX_STARTS: Final = 20
#: Servers tried for one backfill.
MAX_SERVERS: Final = 5
BACKFILL_SECONDS: Final = 30.0
BACKFILL_BYTES: Final = 10 * 1024 * 1024
BACKFILL_STATE_FETCHES: Final = 2
RETRY_AFTER_S: Final = 60.0


class Backfiller(ServiceBase):
    name = "federation_backfill"

    def __init__(
        self,
        *,
        server_name: str,
        clock: Clock,
        remote: RemoteEvents,
        gaps: GapFiller,
        gaps_store: DagGapsStore,
        events: EventsStore,
        rooms: RoomsStore,
        persister: EventPersister,
    ) -> None:
        self._server_name = server_name
        self._clock = clock
        self._remote = remote
        self._gaps = gaps
        self._gaps_store = gaps_store
        self._events = events
        self._rooms = rooms
        self._persister = persister
        self._running = Linearizer()
        # room ID -> when a backfill of it last found nothing
        self._fruitless: LruCache[str, float] = LruCache(10_000)

    async def backfill(self, room_id: str, limit: int) -> bool:
        """Fetch up to `limit` older events of the room; whether any was stored."""
        async with self._running.queue(room_id):
            failed_at = self._fruitless.get(room_id)
            if failed_at is not None and self._clock.monotonic() - failed_at < RETRY_AFTER_S:
                return False
            starts = await self._gaps_store.get_backward_extremities(room_id, MAX_STARTS)
            if not starts:
                return False
            stored = await self._from_servers(room_id, starts, max(1, min(limit, MAX_LIMIT)))
            if not stored:
                self._fruitless.set(room_id, self._clock.monotonic())
            return stored

    async def _from_servers(self, room_id: str, starts: list[str], limit: int) -> bool:
        version = await self._persister.room_version(room_id)
        hosts = sorted(await self._rooms.get_joined_hosts(room_id) - {self._server_name})
        budget = FetchBudget.start(
            self._clock,
            seconds=BACKFILL_SECONDS,
            events=limit * 10,
            size=BACKFILL_BYTES,
            state_fetches=BACKFILL_STATE_FETCHES,
        )
        for server in hosts[:MAX_SERVERS]:
            try:
                answer = await self._remote.get(
                    budget,
                    server,
                    f"{FEDERATION_V1}/backfill/{quote(room_id, safe='')}",
                    {"v": starts, "limit": str(limit)},
                )
                events = await self._remote.checked(
                    budget, room_id, version, answer.get("pdus"), limit
                )
            except FetchError as e:
                logger.info("Backfilling %s from %s failed: %s", room_id, server, e)
                continue
            if await self._store(server, await self._unknown(events), budget):
                return True
        return False

    async def _unknown(self, events: list[Event]) -> list[Event]:
        """Those not in the timeline yet (outliers among them join it)."""
        known = await self._events.get_events([e.event_id for e in events], include_rejected=True)
        return [e for e in events if e.event_id not in known or known[e.event_id].outlier]

    async def _store(self, server: str, events: list[Event], budget: FetchBudget) -> bool:
        ordered = sorted(events, key=lambda e: (e.depth, e.event_id))
        positions = await self._persister.reserve_backfill(len(ordered))
        stored_any = False
        for event, position in zip(ordered, positions, strict=True):
            try:
                stored = await self._gaps.persist_fetching(
                    server, event, budget, backfill_at=position
                )
            except MatrixError as e:
                logger.info("Not backfilling %s: %s", event.event_id, e.message)
                continue
            stored_any = stored_any or stored.in_timeline
        return stored_any

    def memory_usage(self) -> int:
        return ENTRY_BYTES * len(self._fruitless)

    def clear_caches(self) -> None:
        """Forgetting a fruitless room costs at most one more round of requests."""
        self._fruitless.clear()
