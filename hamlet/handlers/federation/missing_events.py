"""Filling holes in a room's DAG when a PDU arrives whose past we lack.

As Synapse (`_get_missing_events_for_pdu`): a PDU whose prev_events are not
stored makes us ask its origin `POST /get_missing_events` (earliest: our
forward extremities; latest: the PDU; `limit` 10; `min_depth` the room's
lowest known depth). Unlike Synapse we ask again from the oldest events
that came back, for up to `MAX_GAP_EVENTS` in all, and store them only once
collected, oldest first: positions in the events stream are arrival order,
so a gap stored newest part first would read out of order in /messages.

An event whose prev_events are still missing after that (the gap was
larger, or the origin would not say) is stored on the state before it as
its origin has it (`/state_ids`, then the events we lack), which state
resolution merges with ours. An event whose auth events are missing gets
its auth chain (`/event_auth`) stored as outliers first.

Fills of one room are serialised (`Linearizer`), so two transactions do
not fetch the same gap twice: the second retries its PDU first and fetches
only what is still missing. Nothing else waits: other rooms fill in
parallel and the room's own persist lock is held only while storing.
"""

from __future__ import annotations

import logging
from typing import Final
from urllib.parse import quote

from hamlet.core.events import Event
from hamlet.core.power_levels import StateKey
from hamlet.handlers.common.errors import MatrixError
from hamlet.handlers.federation.remote_events import (
    FEDERATION_V1,
    FetchBudget,
    FetchError,
    RemoteEvents,
)
from hamlet.handlers.rooms.federated_events import FederatedEventHandler, MissingEventsError
from hamlet.handlers.rooms.persistence import EventPersister
from hamlet.runtime.clock import Clock
from hamlet.runtime.linearizer import Linearizer
from hamlet.storage.stores.dag_gaps import DagGapsStore
from hamlet.storage.stores.events import EventsStore, StoredEvent

logger = logging.getLogger(__name__)

#: Events asked for per `/get_missing_events` (Synapse asks for 10).
ROUND_LIMIT: Final = 10
#: Events one gap may be filled with before the rest is left to /backfill.
MAX_GAP_EVENTS: Final = 100
#: Event IDs one request names (the server side takes at most 20).
MAX_NAMED: Final = 20
#: What one inbound transaction may spend on fetching.
TXN_FETCH_SECONDS: Final = 60.0
TXN_FETCH_EVENTS: Final = 5_000
TXN_FETCH_BYTES: Final = 20 * 1024 * 1024
TXN_STATE_FETCHES: Final = 3


class GapFiller:
    def __init__(
        self,
        *,
        clock: Clock,
        remote: RemoteEvents,
        events: EventsStore,
        gaps: DagGapsStore,
        persister: EventPersister,
        federated: FederatedEventHandler,
    ) -> None:
        self._clock = clock
        self._remote = remote
        self._events = events
        self._gaps = gaps
        self._persister = persister
        self._federated = federated
        self._rooms = Linearizer()

    def budget(self) -> FetchBudget:
        """The fetching allowance of one inbound transaction."""
        return FetchBudget.start(
            self._clock,
            seconds=TXN_FETCH_SECONDS,
            events=TXN_FETCH_EVENTS,
            size=TXN_FETCH_BYTES,
            state_fetches=TXN_STATE_FETCHES,
        )

    async def persist_pdu(self, origin: str, event: Event, budget: FetchBudget) -> StoredEvent:
        """Store a checked PDU from `origin`, fetching what it needs first.
        Raises `MissingEventsError` when that could not be fetched."""
        try:
            return await self._federated.persist_event(event)
        except MissingEventsError:
            pass
        async with self._rooms.queue(event.room_id):
            if await self._missing_prevs(event):
                await self._fill_gap(origin, event, budget)
            return await self.persist_fetching(origin, event, budget)

    async def persist_fetching(
        self,
        server: str,
        event: Event,
        budget: FetchBudget,
        *,
        backfill_at: int | None = None,
    ) -> StoredEvent:
        """Store `event`, fetching from `server` its auth chain and then the
        state before it when they are missing; `MissingEventsError` when
        that is not enough (or could not be fetched)."""
        state: dict[StateKey, str] | None = None
        fetched_auth = False
        version = event.room_version
        while True:
            try:
                return await self._federated.persist_event(
                    event, state=state, backfill_at=backfill_at
                )
            except MissingEventsError as e:
                missing = e
            try:
                if not fetched_auth and await self._missing_auth(event):
                    fetched_auth = True
                    await self._remote.fetch_auth_chain(budget, server, version, event)
                elif state is None and await self._missing_prevs(event):
                    state = await self._remote.fetch_state_before(budget, server, version, event)
                else:
                    raise missing
            except FetchError as e:
                raise MissingEventsError(f"Could not fetch them: {e}", missing.missing) from None

    async def _fill_gap(self, origin: str, event: Event, budget: FetchBudget) -> None:
        """Collect the events between our extremities and `event`, then store
        them oldest first (each one's own gaps fetched as for a PDU)."""
        room_id = event.room_id
        extremities = await self._persister.extremities(room_id)
        earliest = [x.event_id for x in sorted(extremities, key=lambda x: -x.depth)[:MAX_NAMED]]
        min_depth = await self._gaps.get_min_depth(room_id) or 0
        collected: dict[str, Event] = {}
        latest = [event.event_id]
        while latest and len(collected) < MAX_GAP_EVENTS:
            try:
                answer = await self._remote.post(
                    budget,
                    origin,
                    f"{FEDERATION_V1}/get_missing_events/{quote(room_id, safe='')}",
                    {
                        "earliest_events": earliest,
                        "latest_events": latest,
                        "limit": ROUND_LIMIT,
                        "min_depth": min_depth,
                    },
                )
                got = await self._remote.checked(
                    budget, room_id, event.room_version, answer.get("events"), ROUND_LIMIT
                )
            except FetchError as e:
                # What earlier rounds brought is still worth storing.
                logger.info("Could not fetch the gap before %s: %s", event.event_id, e)
                break
            fresh = [e for e in got if e.event_id not in collected and e.event_id != event.event_id]
            if not fresh:
                break
            collected.update((e.event_id, e) for e in fresh)
            latest = await self._gap_edges(list(collected.values()), collected)
        for pulled in sorted(collected.values(), key=lambda e: (e.depth, e.event_id)):
            try:
                await self.persist_fetching(origin, pulled, budget)
            except MatrixError as e:
                logger.info("Could not store %s before %s: %s", pulled.event_id, event.event_id, e)

    async def _gap_edges(self, events: list[Event], collected: dict[str, Event]) -> list[str]:
        """Those of `events` with a prev_event neither stored in the timeline
        nor collected: where the next round walks back from (the answer
        leaves out the events it starts from)."""
        prevs = [p for e in events for p in e.prev_events if p not in collected]
        known = await self._events.get_events(prevs, include_rejected=True)
        gone = {p for p in prevs if p not in known or known[p].outlier}
        edges = [e.event_id for e in events if any(p in gone for p in e.prev_events)]
        return edges[:MAX_NAMED]

    async def _missing_prevs(self, event: Event) -> bool:
        known = await self._events.get_events(event.prev_events, include_rejected=True)
        return any(p not in known or known[p].state_group is None for p in event.prev_events)

    async def _missing_auth(self, event: Event) -> bool:
        known = await self._events.get_events(event.auth_events, include_rejected=True)
        return any(a not in known for a in event.auth_events)
