"""One destination's queue: at most one transaction in flight, retries, catch-up.

Normal mode sends queued PDUs in stream order, 50 a transaction, with up to
100 queued EDUs. When a transaction fails for good (the destination is then
backed off) or the queue outgrows `MAX_QUEUED_PDUS`, the queued PDUs are
dropped and the queue *catches up* instead: it sends the newest queued event
of each room the destination has not taken (`destination_rooms` after
`last_successful_stream_ordering`), oldest first, and the destination
fetches what lies between with /get_missing_events. Everything it needs is
in the database, so a restart resumes where the last run stopped.
"""

from __future__ import annotations

import asyncio
import enum
import logging
from collections.abc import Awaitable, Callable, Collection, Sequence
from dataclasses import dataclass, field
from urllib.parse import quote

import orjson

from hamlet.config.model import FederationConfig
from hamlet.core.canonical_json import JsonDict
from hamlet.handlers.federation.sender.backoff import RetryPolicy, RetryTimings
from hamlet.handlers.federation.sender.transport import (
    TransactionTransport,
    http_status,
    retry_after_ms,
)
from hamlet.runtime.clock import Clock, DelayedCall
from hamlet.runtime.timeout import with_timeout
from hamlet.storage.stores.federation_outbox import (
    DestinationRow,
    FederationOutboxStore,
    QueuedEdu,
    QueuedPdu,
)

logger = logging.getLogger(__name__)

MAX_PDUS_PER_TXN = 50
MAX_EDUS_PER_TXN = 100
# Past this many queued PDUs a destination is too far behind to replay
# event by event: it catches up instead.
MAX_QUEUED_PDUS = 1000
# Queued EDUs kept per destination beyond coalescing (the newest win).
MAX_QUEUED_EDUS = 5000


class Outcome(enum.Enum):
    SENT = "sent"
    REJECTED = "rejected"  # the destination answered 4xx: up, but refusing this
    FAILED = "failed"  # unreachable, timing out, 5xx or 429 at every try: back it off


@dataclass(slots=True)
class SenderShared:
    """What all queues of one homeserver share."""

    server_name: str
    clock: Clock
    store: FederationOutboxStore
    config: FederationConfig
    policy: RetryPolicy
    # The tenant's cap on transactions in flight to destinations in good
    # standing, all together; destinations that failed lately (retrying a
    # transaction or backed off) share a pool of their own, so a set of
    # hanging servers cannot hold up the healthy ones past their first try.
    slots: asyncio.Semaphore
    suspect_slots: asyncio.Semaphore
    load_pdus: Callable[[Sequence[str]], Awaitable[list[JsonDict]]]
    transport: TransactionTransport | None = None
    txn_counter: int = field(default=0)

    def next_txn_id(self) -> str:
        # Seeded from the clock at start, as Synapse does, so IDs stay
        # unique per destination across restarts.
        self.txn_counter += 1
        return str(self.txn_counter)


class DestinationQueue:
    def __init__(self, destination: str, shared: SenderShared) -> None:
        self.destination = destination
        self._s = shared
        self.timings = RetryTimings()
        self.last_successful: int | None = None
        self.catching_up = False
        self._pdus: list[QueuedPdu] = []
        self._edus_queued = False
        # Queued PDU rows that catch-up has made obsolete, to delete before sending.
        self._rows_stale = False
        self._running = False
        self._again = False
        self._retry_timer: DelayedCall | None = None
        # What the last 429 of the transaction in flight asked us to wait (ms).
        self._asked_wait_ms = 0
        self.transactions_sent = 0

    # --- state ---

    def load(
        self,
        row: DestinationRow | None,
        pdus: list[QueuedPdu] | None = None,
        *,
        edus_queued: bool = False,
        behind: bool = False,
    ) -> None:
        """Restore what the database holds; `behind`: some room has an event
        newer than the last the destination took."""
        if row is not None:
            self.timings = RetryTimings(row.failure_ts, row.retry_last_ts, row.retry_interval)
            self.last_successful = row.last_successful_stream_ordering
        pdus = pdus or []
        if len(pdus) > MAX_QUEUED_PDUS:
            self.catching_up = True
        else:
            self._pdus = pdus
            # Rooms ahead but nothing queued: an outage dropped the queue.
            self.catching_up = behind and not pdus
        self._edus_queued = edus_queued

    @property
    def pending_pdus(self) -> int:
        return len(self._pdus)

    def has_work(self) -> bool:
        return bool(self._pdus) or self._edus_queued or self.catching_up

    # --- feeding ---

    def accepts_pdus(self) -> bool:
        """Should new PDUs be queued, or only recorded for catch-up?"""
        return not self.catching_up

    def pdus_queued(self, pdus: Sequence[QueuedPdu]) -> None:
        """PDUs written to the queue table for this destination (or, if it
        started catching up meanwhile, only to `destination_rooms`)."""
        if self.catching_up:
            self._rows_stale = True
            self.wake()
            return
        self._pdus.extend(pdus)
        if len(self._pdus) > MAX_QUEUED_PDUS:
            logger.info("%s is %d PDUs behind: catching up", self.destination, len(self._pdus))
            self._start_catching_up()
        self.wake()

    def recorded_for_catch_up(self) -> None:
        """A room moved on for this destination while it catches up (or, if
        it stopped meanwhile, the event was never queued: catch up again)."""
        self.catching_up = True
        self.wake()

    def edus_queued(self) -> None:
        self._edus_queued = True
        self.wake()

    def reset_backoff(self) -> None:
        self.timings = RetryTimings()
        if self._retry_timer is not None:
            self._retry_timer.cancel()
            self._retry_timer = None
        self.wake()

    # --- sending ---

    def wake(self) -> None:
        if self._running:
            self._again = True
            return
        if self._s.transport is None or self._s.clock.is_shut_down:
            return
        if not self.has_work():
            return
        self._running = True
        self._s.clock.run_as_background_process("federation_send", self._run)

    async def _run(self) -> None:
        try:
            while True:
                self._again = False
                retry_at = self.timings.retry_at()
                now = self._s.clock.time_msec()
                if retry_at > now:
                    self._schedule_retry(retry_at - now)
                    return
                if not await self._send_one():
                    if not self._again:
                        return
        finally:
            self._running = False
            if self._again:
                self.wake()

    def _schedule_retry(self, delay_ms: int) -> None:
        if self._retry_timer is not None:
            self._retry_timer.cancel()
        self._retry_timer = self._s.clock.call_later(delay_ms / 1000, self._retry_due)

    def _retry_due(self) -> None:
        self._retry_timer = None
        self.wake()

    async def _next_pdus(self) -> tuple[list[QueuedPdu], bool]:
        """The next batch, and whether it comes from catch-up."""
        if self.catching_up:
            batch = await self._s.store.get_catch_up_pdus(
                self.destination, self.last_successful, MAX_PDUS_PER_TXN
            )
            if batch:
                return batch, True
            self.catching_up = False
        return self._pdus[:MAX_PDUS_PER_TXN], False

    async def _send_one(self) -> bool:
        """Send one transaction; False when there is nothing (more) to do now."""
        if self._rows_stale:
            await self._drop_pdus()
        pdus, from_catch_up = await self._next_pdus()
        edus: list[QueuedEdu] = []
        if self._edus_queued:
            edus = await self._s.store.get_queued_edus(self.destination, MAX_EDUS_PER_TXN)
            if len(edus) < MAX_EDUS_PER_TXN:
                self._edus_queued = False
        if not pdus and not edus:
            return False
        pdu_json = await self._s.load_pdus([p.event_id for p in pdus])
        outcome = await self._transmit(pdu_json, edus)
        if outcome is Outcome.SENT:
            sent = {p.stream_ordering for p in pdus}
            newest = max(sent) if sent else None
            await self._s.store.record_success(
                self.destination, newest, () if from_catch_up else sent, edus
            )
            self.timings = RetryTimings()
            if newest is not None and (self.last_successful or 0) < newest:
                self.last_successful = newest
            if not from_catch_up:
                self._pdus = [p for p in self._pdus if p.stream_ordering not in sent]
            self.transactions_sent += 1
            return True
        if outcome is Outcome.REJECTED:
            # The server is up (so no backoff, as in Synapse), but sending the
            # same again would be refused again: drop what it carried.
            await self._s.store.record_success(self.destination, None, (), edus)
            self.timings = RetryTimings()
            await self._drop_pdus()
            return False
        self.timings = self._s.policy.after_failure(
            self.timings, self._s.clock.time_msec(), self._asked_wait_ms
        )
        t = self.timings
        await self._s.store.set_retry_timings(
            self.destination, t.failure_ts, t.retry_last_ts, t.retry_interval
        )
        logger.info(
            "Backing off %s for %d ms after a failed transaction",
            self.destination,
            t.retry_interval,
        )
        await self._drop_pdus()
        self._again = True  # come back to schedule the retry
        return False

    async def _drop_pdus(self) -> None:
        self._start_catching_up()
        self._rows_stale = False
        await self._s.store.drop_queued_pdus(self.destination)

    def _start_catching_up(self) -> None:
        self.catching_up = True
        self._pdus = []
        self._rows_stale = True

    async def _transmit(self, pdus: list[JsonDict], edus: Collection[QueuedEdu]) -> Outcome:
        s = self._s
        transport = s.transport
        assert transport is not None
        txn_id = s.next_txn_id()
        body: JsonDict = {
            "origin": s.server_name,
            "origin_server_ts": s.clock.time_msec(),
            "pdus": pdus,
            "edus": [{"edu_type": e.edu_type, "content": orjson.loads(e.content)} for e in edus],
        }
        path = f"/_matrix/federation/v1/send/{quote(txn_id, safe='')}"
        timeout_ms = s.config.client_timeout
        self._asked_wait_ms = 0
        for attempt in range(s.config.max_long_retries + 1):
            if attempt:
                # A 429's retry_after_ms is honoured, up to the longest
                # backoff (a remote server does not get to park the queue).
                delay_s = max(
                    s.policy.long_retry_delay_s(attempt - 1),
                    min(self._asked_wait_ms, s.config.destination_max_retry_interval) / 1000,
                )
                await s.clock.sleep(delay_s)
            try:
                suspect = attempt > 0 or self.timings.failing
                async with s.suspect_slots if suspect else s.slots:
                    response = await with_timeout(
                        transport.put_json(self.destination, path, body, timeout_ms=timeout_ms),
                        timeout_ms / 1000,
                        s.clock,
                    )
            except asyncio.CancelledError:
                raise
            except Exception as e:
                status = http_status(e)
                if status is not None and 400 <= status < 500 and status != 429:
                    logger.warning(
                        "%s refused transaction %s (%d): %r", self.destination, txn_id, status, e
                    )
                    return Outcome.REJECTED
                # Unreachable, timing out, 5xx or 429: the same transaction
                # is tried again (as Synapse does) before backing off.
                self._asked_wait_ms = (retry_after_ms(e) or 0) if status == 429 else 0
                logger.info(
                    "Transaction %s to %s failed (try %d): %r",
                    txn_id,
                    self.destination,
                    attempt + 1,
                    e,
                )
                continue
            self._asked_wait_ms = 0
            _log_pdu_errors(self.destination, txn_id, response)
            return Outcome.SENT
        return Outcome.FAILED


def _log_pdu_errors(destination: str, txn_id: str, response: object) -> None:
    """The destination took the transaction; events it refused are its call,
    logged here and not sent again."""
    results = response.get("pdus") if isinstance(response, dict) else None
    if not isinstance(results, dict):
        return
    for event_id, result in list(results.items())[:MAX_PDUS_PER_TXN]:
        if isinstance(result, dict) and "error" in result:
            logger.warning(
                "%s refused %s in transaction %s: %.200s",
                destination,
                event_id,
                txn_id,
                result["error"],
            )
