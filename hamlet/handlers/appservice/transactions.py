"""Pushing events to application services: `PUT {url}/_matrix/app/v1/transactions/{txnId}`.

Each service has a position in the events stream (persisted). Events past
it are read back from storage in batches, filtered by the service's
interest (Synapse's rules: the sender or a member event's target in its
users namespace, the room ID in its rooms namespace, one of the room's
aliases in its aliases namespace, or one of its users joined to the room),
and written as a numbered transaction together with the new position, in
one database transaction. A transaction is then sent until the service
acknowledges it, with exponential backoff on the homeserver's clock; its
ID survives a restart, so a retry after a crash is recognised by the
bridge rather than handled twice, and the position means a bridge that was
down gets everything it missed.

Isolation: nothing on the send path awaits a bridge. A new event only
`wake()`s the services; each one that has a URL runs its own background
job, at most one at a time (so one transaction in flight per service),
which ends when the service is caught up. A slow or dead bridge holds only
its own job.
"""

from __future__ import annotations

import logging
from collections import deque
from collections.abc import Awaitable, Callable, Collection, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol
from urllib.parse import quote

from hamlet.handlers.appservice.http import JsonHttpClient, app_url, hs_headers
from hamlet.handlers.appservice.queries import AppServiceQueries
from hamlet.handlers.appservice.registry import AppService, AppServices
from hamlet.handlers.common.service import ENTRY_BYTES, ServiceBase
from hamlet.runtime.clock import Clock
from hamlet.runtime.http_client import HttpClientError
from hamlet.storage.stores.accounts import AccountStore
from hamlet.storage.stores.appservice import AppServiceStore, PendingTxn
from hamlet.storage.stores.events import EventsStore, StoredEvent
from hamlet.storage.stores.rooms import RoomsStore

logger = logging.getLogger(__name__)

#: Events read (and, at most, sent) per transaction.
BATCH_EVENTS = 100
#: Ephemeral events held per service between transactions; older ones go first.
MAX_EPHEMERAL = 1000
TXN_TIMEOUT_S = 60.0
FIRST_BACKOFF_S = 1.0
#: Users whose one-time key counts one transaction carries (MSC3202).
MAX_KEY_COUNT_USERS = 100
#: Synapse's recoverer stops doubling at 2^9 seconds; so do we.
MAX_BACKOFF_S = 512.0


@dataclass(frozen=True, slots=True)
class Ephemeral:
    """An ephemeral change for services that receive them (MSC2409, MSC3202).

    `event` is ready (typing, presence), or `receipts_at` names the receipt
    stream position to read it from; a service gets those if it is
    interested in `room_id` (typing, receipts) or if one of its users is
    among `users` (presence: those who share a room with the user whose
    presence moved). `to_device`: `users` got to-device messages, which
    the service's own users' devices receive through it.
    `device_lists_at`: the device list stream moved, `users` are those to
    tell (MSC3202 services only).
    """

    event: dict[str, Any] | None = None
    room_id: str | None = None
    users: tuple[str, ...] = ()
    receipts_at: int | None = None
    to_device: bool = False
    device_lists_at: int | None = None


Ack = Callable[[], Awaitable[None]]


class EphemeralSources(Protocol):
    """Where the ephemeral data a transaction carries is read from."""

    async def receipt_event(self, room_id: str, at: int) -> dict[str, Any] | None: ...

    async def take_to_device(self, user_id: str, limit: int) -> tuple[list[dict[str, Any]], Ack]:
        """Up to about `limit` messages for the user's devices (with `to_user_id`
        and `to_device_id`), and what deletes them once they are queued."""
        ...

    async def device_list_changes(
        self, observers: Sequence[str], since: int, upto: int
    ) -> tuple[set[str], set[str]]:
        """(changed, left) for the observers between two device list positions."""
        ...

    def device_lists_position(self) -> int: ...

    async def key_counts(
        self, user_id: str
    ) -> tuple[dict[str, dict[str, int]], dict[str, list[str]]]:
        """Per device of the user: one-time key counts, unused fallback key types."""
        ...


@dataclass(slots=True)
class _Extras:
    """What one transaction carries besides room events."""

    ephemeral: list[dict[str, Any]] = field(default_factory=list)
    to_device: list[dict[str, Any]] = field(default_factory=list)
    acks: list[Ack] = field(default_factory=list)
    changed: set[str] = field(default_factory=set)
    left: set[str] = field(default_factory=set)

    def __bool__(self) -> bool:
        return bool(self.ephemeral or self.to_device or self.changed or self.left)

    def add_to(self, body: dict[str, Any]) -> None:
        if self.ephemeral:
            body["ephemeral"] = self.ephemeral
            body["de.sorunome.msc2409.ephemeral"] = self.ephemeral
        if self.to_device:
            body["de.sorunome.msc2409.to_device"] = self.to_device
        if self.changed or self.left:
            body["org.matrix.msc3202.device_lists"] = {
                "changed": sorted(self.changed),
                "left": sorted(self.left),
            }


Serialize = Callable[[list[StoredEvent]], Awaitable[list[dict[str, Any]]]]


class _Queue:
    """One service's sending state."""

    def __init__(self, service: AppService) -> None:
        self.service = service
        self.position = 0
        self.running = False
        self.woken = False
        self.ephemeral: deque[Ephemeral] = deque(maxlen=MAX_EPHEMERAL)
        #: Device list position the service was last told up to (MSC3202).
        self.device_lists = 0
        #: Transactions sent and acknowledged since start (for tests and metrics).
        self.sent = 0
        #: Seconds until the next retry while the service is failing, else 0.
        self.backoff_s = 0.0


class AppServiceTransactions(ServiceBase):
    def __init__(
        self,
        *,
        clock: Clock,
        services: AppServices,
        store: AppServiceStore,
        events: EventsStore,
        rooms: RoomsStore,
        serialize: Serialize,
        events_position: Callable[[], int],
        http: JsonHttpClient,
        accounts: AccountStore,
        queries: AppServiceQueries,
        sources: EphemeralSources,
    ) -> None:
        self._clock = clock
        self._store = store
        self._events = events
        self._rooms = rooms
        self._serialize = serialize
        self._events_position = events_position
        self._http = http
        self._accounts = accounts
        self._queries = queries
        self._sources = sources
        self._queues = {s.id: _Queue(s) for s in services if s.url is not None}
        self._started = False

    async def load(self) -> None:
        now = self._events_position()
        for q in self._queues.values():
            stored = await self._store.get_position(q.service.id)
            if stored is None:
                # A new registration gets what happens from now on.
                await self._store.set_position(q.service.id, now)
                q.position = now
            else:
                q.position = stored[0]
            q.device_lists = self._sources.device_lists_position()

    def start(self) -> None:
        self._started = True
        # Whatever was queued or missed while the server was down.
        self.wake()

    def wake(self, services: Collection[str] | None = None) -> None:
        """Something new may be for these services (all of them by default)."""
        if not self._started:
            return
        for as_id, q in self._queues.items():
            if services is not None and as_id not in services:
                continue
            q.woken = True
            if not q.running:
                q.running = True
                self._clock.run_as_background_process(f"appservice-{as_id}", self._run, q)

    def add_ephemeral(self, item: Ephemeral) -> None:
        """Offer an ephemeral change to every service that receives them.

        Interest is decided in each service's own job (it may read the
        database); a service that falls behind loses its oldest ones,
        as ephemeral data is not worth holding a bridge's backlog for.
        """
        woken = []
        for as_id, q in self._queues.items():
            config = q.service.config
            if item.device_lists_at is not None:
                wanted = config.msc3202
            else:
                wanted = config.receive_ephemeral
            if wanted:
                q.ephemeral.append(item)
                woken.append(as_id)
        if woken:
            self.wake(woken)

    def receives_ephemeral(self) -> bool:
        return any(
            q.service.config.receive_ephemeral or q.service.config.msc3202
            for q in self._queues.values()
        )

    def status(self, as_id: str) -> tuple[int, float] | None:
        """(transactions acknowledged since start, current backoff in seconds)."""
        q = self._queues.get(as_id)
        return None if q is None else (q.sent, q.backoff_s)

    def memory_usage(self) -> int:
        return sum(len(q.ephemeral) for q in self._queues.values()) * ENTRY_BYTES

    # --- the per-service job ---

    async def _run(self, q: _Queue) -> None:
        try:
            while True:
                q.woken = False
                pending = await self._store.oldest_txn(q.service.id)
                if pending is not None:
                    await self._deliver(q, pending)
                    continue
                if await self._make_txn(q):
                    continue
                if not q.woken:
                    return
        finally:
            q.running = False

    async def _make_txn(self, q: _Queue) -> bool:
        """Queue the next transaction (or skip uninteresting events); False if caught up."""
        upto = self._events_position()
        events: list[StoredEvent] = []
        new_position = q.position
        rooms: dict[str, bool] = {}
        if upto > q.position:
            batch = await self._events.get_events_after(q.position, upto, BATCH_EVENTS)
            new_position = batch[-1].stream_ordering if len(batch) == BATCH_EVENTS else upto
            events = [e for e in batch if await self._interested(q.service, e, rooms)]
        extras = await self._extras_for(q, rooms)
        if not events and not extras:
            if new_position == q.position:
                return bool(q.ephemeral)
            await self._store.set_position(q.service.id, new_position)
            q.position = new_position
            return True
        await self._ask_about_invitees(q.service, events)
        body: dict[str, Any] = {"events": await self._serialize(events)}
        extras.add_to(body)
        if q.service.config.msc3202:
            await self._add_key_counts(q.service, events, extras, body)
        await self._store.create_txn(q.service.id, new_position, body)
        q.position = new_position
        # Only now that the transaction holds them (a crash in between sends
        # them twice, never loses them).
        for ack in extras.acks:
            await ack()
        return True

    async def _extras_for(self, q: _Queue, rooms: dict[str, bool]) -> _Extras:
        """Up to a batch of the queued ephemeral data this service is interested in."""
        out = _Extras()
        service = q.service
        drained: set[str] = set()
        later: list[Ephemeral] = []
        while q.ephemeral and len(out.ephemeral) + len(out.to_device) < BATCH_EVENTS:
            item = q.ephemeral.popleft()
            owned = [u for u in item.users if service.owns_user(u)]
            if item.to_device:
                # Only users the service owns exclusively: their inboxes are
                # drained into transactions, which must never happen to a real
                # user's (a double-puppeting bridge claims those non-exclusively).
                mine = [u for u in owned if service.is_exclusive_user(u)]
                await self._take_to_device(mine, drained, later, out)
            elif item.device_lists_at is not None:
                if owned and item.device_lists_at > q.device_lists:
                    changed, left = await self._sources.device_list_changes(
                        owned, q.device_lists, item.device_lists_at
                    )
                    q.device_lists = item.device_lists_at
                    out.changed |= changed
                    out.left |= left
            elif item.room_id is not None:
                known = rooms.get(item.room_id)
                if known is None:
                    known = await self.is_interested_in_room(service, item.room_id)
                    rooms[item.room_id] = known
                if known:
                    event = item.event
                    if item.receipts_at is not None:
                        event = await self._sources.receipt_event(item.room_id, item.receipts_at)
                    if event is not None:
                        out.ephemeral.append(event)
            elif owned and item.event is not None:
                out.ephemeral.append(item.event)
        q.ephemeral.extend(later)
        out.changed -= out.left
        return out

    async def _take_to_device(
        self, users: list[str], drained: set[str], later: list[Ephemeral], out: _Extras
    ) -> None:
        """Each user's device inboxes at most once per transaction; a user with
        more waiting than fits is offered again for the next one."""
        for user_id in users:
            if user_id in drained:
                later.append(Ephemeral(users=(user_id,), to_device=True))
                continue
            drained.add(user_id)
            messages, ack = await self._sources.take_to_device(user_id, BATCH_EVENTS)
            if messages:
                out.to_device.extend(messages)
                out.acks.append(ack)
            if len(messages) >= BATCH_EVENTS:
                later.append(Ephemeral(users=(user_id,), to_device=True))

    async def _add_key_counts(
        self,
        service: AppService,
        events: list[StoredEvent],
        extras: _Extras,
        body: dict[str, Any],
    ) -> None:
        """MSC3202: key counts of the service's users the transaction concerns,
        as Synapse picks them (its sender, its users in the rooms of the events
        and ephemeral events, the to-device recipients), so an encrypted bridge
        knows when to upload more."""
        users = {service.sender}
        users.update(m["to_user_id"] for m in extras.to_device)
        rooms = {e.event.room_id for e in events}
        rooms.update(e["room_id"] for e in extras.ephemeral if isinstance(e.get("room_id"), str))
        for room_id in rooms:
            members = await self._rooms.get_members(room_id, "join")
            users.update(m.user_id for m in members if service.owns_user(m.user_id))
        counts: dict[str, Any] = {}
        fallback: dict[str, Any] = {}
        for user_id in sorted(users)[:MAX_KEY_COUNT_USERS]:
            user_counts, user_fallback = await self._sources.key_counts(user_id)
            if user_counts:
                counts[user_id] = user_counts
            if user_fallback:
                fallback[user_id] = user_fallback
        # Synapse sends the counts under both names (the MSC renamed the field).
        body["org.matrix.msc3202.device_one_time_keys_count"] = counts
        body["org.matrix.msc3202.device_one_time_key_counts"] = counts
        body["org.matrix.msc3202.device_unused_fallback_key_types"] = fallback

    async def _ask_about_invitees(self, service: AppService, events: list[StoredEvent]) -> None:
        """An invite (or other membership) for an unknown user of the service:
        ask the service, so it can create the ghost first (as Synapse)."""
        for stored in events:
            target = stored.event.state_key
            if stored.event.type != "m.room.member" or target is None:
                continue
            if service.owns_user(target) and not await self._accounts.user_exists(target):
                await self._queries.ask_user(service, target)

    async def _deliver(self, q: _Queue, txn: PendingTxn) -> None:
        """Send until acknowledged; backing off, on the clock, while the service fails."""
        backoff = FIRST_BACKOFF_S
        url = app_url(q.service, f"/transactions/{quote(str(txn.txn_id), safe='')}")
        while True:
            if await self._put(q.service, url, txn.body):
                q.backoff_s = 0.0
                await self._store.complete_txn(q.service.id, txn.txn_id)
                q.sent += 1
                return
            q.backoff_s = backoff
            await self._clock.sleep(backoff)
            backoff = min(backoff * 2, MAX_BACKOFF_S)

    async def _put(self, service: AppService, url: str, body: dict[str, Any]) -> bool:
        try:
            resp = await self._http.request_json(
                "PUT", url, body=body, headers=hs_headers(service), timeout_s=TXN_TIMEOUT_S
            )
        except HttpClientError as e:
            logger.warning("Application service %s unreachable: %s", service.id, e)
            return False
        if 200 <= resp.status < 300:
            return True
        logger.warning("Application service %s answered a transaction %d", service.id, resp.status)
        return False

    # --- interest ---

    async def _interested(
        self, service: AppService, stored: StoredEvent, rooms: dict[str, bool]
    ) -> bool:
        """`rooms` remembers the room-level answers within one batch."""
        event = stored.event
        if service.is_interested_in_user(event.sender):
            return True
        if event.type == "m.room.member" and event.state_key is not None:
            if service.is_interested_in_user(event.state_key):
                return True
        known = rooms.get(event.room_id)
        if known is None:
            known = rooms[event.room_id] = await self.is_interested_in_room(service, event.room_id)
        return known

    async def is_interested_in_room(self, service: AppService, room_id: str) -> bool:
        if service.is_interested_in_room_id(room_id):
            return True
        if service.config.aliases:
            for alias in await self._rooms.get_aliases_for_room(room_id):
                if service.is_interested_in_alias(alias):
                    return True
        members = await self._rooms.get_members(room_id, "join")
        return any(service.owns_user(m.user_id) for m in members)
