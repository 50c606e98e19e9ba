"""The federation sender: turns local activity into per-destination queues.

It listens to the notifier (every stream reports its moves there), so rooms,
typing, receipts and presence know nothing of federation. A move in a room
whose remote servers are known to be none is dropped in the listener, so a
local-only room costs one cache lookup per event. Everything else is handed
to one background worker per homeserver, which reads what changed and
queues PDUs (local events) and EDUs (`m.typing`, `m.receipt`, `m.presence`
of local users) for each remote server in the room.
"""

from __future__ import annotations

import asyncio
import logging
import random
from collections.abc import Collection, Sequence
from typing import Protocol

import orjson

from hamlet.config.model import FederationConfig
from hamlet.core.canonical_json import JsonDict
from hamlet.core.ids import is_valid_server_name
from hamlet.handlers.common.errors import MatrixError, NotFoundError
from hamlet.handlers.common.notifier import Notifier
from hamlet.handlers.common.service import ENTRY_BYTES, ServiceBase
from hamlet.handlers.federation.sender.backoff import RetryPolicy
from hamlet.handlers.federation.sender.edus import Edu, presence_edu, receipt_edu, typing_edu
from hamlet.handlers.federation.sender.hosts import JoinedHosts, server_of
from hamlet.handlers.federation.sender.queue import (
    MAX_QUEUED_EDUS,
    MAX_QUEUED_PDUS,
    DestinationQueue,
    SenderShared,
)
from hamlet.handlers.federation.sender.transport import TransactionTransport
from hamlet.handlers.user_streams.presence import UserPresence
from hamlet.handlers.user_streams.receipts import READ, RoomReceipts
from hamlet.runtime.clock import Clock
from hamlet.storage.stores.events import StoredEvent
from hamlet.storage.stores.federation_outbox import FederationOutboxStore, QueuedPdu
from hamlet.storage.stores.rooms import Membership

logger = logging.getLogger(__name__)

# Trim the EDU queues of failing destinations every this many EDUs.
TRIM_EDUS_EVERY = 100
#: How often `send_pending` looks whether the queues are done.
PENDING_POLL_S = 0.05


class StreamPosition(Protocol):
    def current_position(self) -> int: ...


class EventSource(Protocol):
    async def get_events(self, event_ids: Collection[str]) -> dict[str, StoredEvent]: ...


class TypingSource(Protocol):
    def typing_users(self, room_id: str) -> list[str]: ...


class ReceiptSource(Protocol):
    def current_position(self) -> int: ...

    async def get_updates(
        self, user_id: str, room_ids: Collection[str], since_pos: int, upto: int | None = None
    ) -> dict[str, RoomReceipts]: ...


class PresenceSource(Protocol):
    def get_state(self, user_id: str) -> UserPresence: ...


class UserRooms(Protocol):
    async def get_rooms_for_user(
        self, user_id: str, memberships: tuple[str, ...] = ("join",)
    ) -> list[Membership]: ...


class FederationSender(ServiceBase):
    def __init__(
        self,
        *,
        server_name: str,
        clock: Clock,
        store: FederationOutboxStore,
        config: FederationConfig,
        max_in_flight: int,
        notifier: Notifier,
        hosts: JoinedHosts,
        events: EventSource,
        event_stream: StreamPosition,
        typing: TypingSource,
        receipts: ReceiptSource,
        presence: PresenceSource,
        user_rooms: UserRooms,
        transport: TransactionTransport | None = None,
        rng: random.Random | None = None,
    ) -> None:
        self.server_name = server_name
        self._clock = clock
        self._store = store
        self._hosts = hosts
        self._events = events
        self._event_stream = event_stream
        self._typing = typing
        self._receipts = receipts
        self._presence = presence
        self._user_rooms = user_rooms
        self._shared = SenderShared(
            server_name=server_name,
            clock=clock,
            store=store,
            config=config,
            policy=RetryPolicy(config, rng),
            slots=asyncio.Semaphore(max_in_flight),
            suspect_slots=asyncio.Semaphore(max(1, max_in_flight // 2)),
            load_pdus=self._load_pdus,
            transport=transport,
        )
        self._queues: dict[str, DestinationQueue] = {}
        # What the listener saw and the worker has not handled yet.
        self._events_pos: int | None = None
        self._events_upto = 0
        self._event_rooms: set[str] = set()
        self._membership_rooms: set[str] = set()
        self._typing_rooms: set[str] = set()
        self._receipts_pos = 0
        self._receipt_rooms: dict[str, int] = {}
        self._presence_users: set[str] = set()
        # Local users whose typing the remote servers of a room were last told of.
        self._typing_sent: dict[str, set[str]] = {}
        self._edu_position = 0
        self._resume_pending = True
        self._working = False
        notifier.add_listener(self._on_notify)

    # --- lifecycle ---

    async def load(self) -> None:
        self._edu_position = await self._store.max_edu_position()

    def start(self) -> None:
        self._events_pos = self._events_upto = self._event_stream.current_position()
        self._receipts_pos = self._receipts.current_position()
        self._shared.txn_counter = self._clock.time_msec()
        self._kick()

    def attach_transport(self, transport: TransactionTransport) -> None:
        """The outbound client to send with; queues with work start sending."""
        self._shared.transport = transport
        for queue in self._queues.values():
            queue.wake()

    def memory_usage(self) -> int:
        pending = sum(q.pending_pdus for q in self._queues.values())
        typing = sum(len(users) for users in self._typing_sent.values())
        return ENTRY_BYTES * (len(self._queues) + pending + typing + len(self._receipt_rooms))

    def clear_caches(self) -> None:
        """The hosts cache; everything else is queued work."""
        self._hosts.clear()

    async def shutdown(self) -> None:
        """Timers and the worker belong to the Clock; queued work is in the database."""

    async def send_pending(self, timeout_s: float) -> None:
        """Wait, at most `timeout_s`, until the events written so far are
        queued and every destination not backed off has taken its PDUs.

        For events about to be purged (an admin's room deletion): a queue
        loads each PDU when it sends it, so after the purge it could not.
        """
        deadline = self._clock.time_msec() + timeout_s * 1000
        while self._clock.time_msec() < deadline and self._sending():
            await self._clock.sleep(PENDING_POLL_S)

    def _sending(self) -> bool:
        if self._shared.transport is None or self._events_pos is None:
            return False  # offline or not started: nothing leaves meanwhile
        if self._working or self._event_rooms:
            return True
        return any(
            queue.pending_pdus and not queue.timings.failing for queue in self._queues.values()
        )

    # --- introspection ---

    def queue(self, destination: str) -> DestinationQueue | None:
        return self._queues.get(destination)

    # --- the listener ---

    def _on_notify(
        self, stream: str, position: int, users: Sequence[str], rooms: Sequence[str]
    ) -> None:
        if stream == "events":
            if self._events_pos is None:
                return
            for room_id in rooms:
                if users:
                    # A membership change: the room's servers may have changed.
                    self._hosts.invalidate(room_id)
                    self._membership_rooms.add(room_id)
                elif not self._may_federate(room_id):
                    continue
                self._event_rooms.add(room_id)
            self._events_upto = max(self._events_upto, position)
        elif stream == "typing":
            self._typing_rooms.update(r for r in rooms if self._may_federate(r))
        elif stream == "receipts":
            for room_id in rooms:
                if self._may_federate(room_id):
                    self._receipt_rooms[room_id] = max(
                        self._receipt_rooms.get(room_id, 0), position
                    )
        elif stream == "presence":
            for user_id in users:
                if (
                    server_of(user_id) == self.server_name
                    and self._presence.get_state(user_id).stream_id == position
                ):
                    self._presence_users.add(user_id)
        else:
            return
        if self._has_input():
            self._kick()

    def _may_federate(self, room_id: str) -> bool:
        """False only for a room known to have no remote server."""
        hosts = self._hosts.cached(room_id)
        return hosts is None or bool(hosts.joined)

    def _has_input(self) -> bool:
        return bool(
            self._resume_pending
            or self._event_rooms
            or self._typing_rooms
            or self._receipt_rooms
            or self._presence_users
        )

    # --- the worker ---

    def _kick(self) -> None:
        if self._working or self._clock.is_shut_down:
            return
        self._working = True
        self._clock.run_as_background_process("federation_outbox", self._work)

    async def _work(self) -> None:
        try:
            if self._resume_pending:
                await self._resume()
                self._resume_pending = False
            while self._has_input():
                await self._handle_events()
                await self._handle_typing()
                await self._handle_receipts()
                await self._handle_presence()
        finally:
            # After a failure (logged by the Clock) the next move starts the
            # worker again: starting it from here would spin on a dead database.
            self._working = False

    async def _resume(self) -> None:
        """After a restart: reload every destination with something to send."""
        for destination in await self._store.destinations_with_work():
            row = await self._store.get_destination(destination)
            after = row.last_successful_stream_ordering if row else None
            # A queue made meanwhile (an admin's reset) takes what is stored too.
            queue = self._queues.get(destination) or DestinationQueue(destination, self._shared)
            queue.load(
                row,
                await self._store.get_queued_pdus(destination, MAX_QUEUED_PDUS + 1),
                edus_queued=bool(await self._store.get_queued_edus(destination, 1)),
                behind=bool(await self._store.get_catch_up_pdus(destination, after, 1)),
            )
            self._queues[destination] = queue
            queue.wake()

    async def _queue(self, destination: str) -> DestinationQueue:
        queue = self._queues.get(destination)
        if queue is None:
            row = await self._store.get_destination(destination)
            queue = self._queues.get(destination)
            if queue is None:
                queue = DestinationQueue(destination, self._shared)
                queue.load(row)
                self._queues[destination] = queue
        return queue

    async def _handle_events(self) -> None:
        if not self._event_rooms or self._events_pos is None:
            return
        rooms, self._event_rooms = self._event_rooms, set()
        membership, self._membership_rooms = self._membership_rooms, set()
        after, upto = self._events_pos, self._events_upto
        hosts = {room_id: await self._hosts.remote_hosts(room_id) for room_id in rooms}
        wanted = [r for r in rooms if hosts[r].joined or hosts[r].departed or r in membership]
        events = await self._store.get_events_in_rooms(wanted, after, upto)
        self._events_pos = upto
        entries: list[tuple[str, int, str, Collection[str]]] = []
        for event in events:
            if server_of(event.sender) != self.server_name:
                continue  # the origin sends its own events
            # Servers that joined after the event get it by backfill, not here.
            destinations = hosts[event.room_id].at(event.stream_ordering)
            if event.type == "m.room.member" and event.state_key:
                # A kicked or banned server hears of it too; an invited one
                # has its invite from /invite already.
                target = server_of(event.state_key)
                if (
                    target != self.server_name
                    and is_valid_server_name(target)
                    and event.membership != "invite"
                ):
                    destinations.add(target)
            if destinations:
                entries.append((event.room_id, event.stream_ordering, event.event_id, destinations))
        if entries:
            await self._queue_pdus(entries)

    async def relay(self, stored: StoredEvent, origin: str) -> None:
        """An event `origin` gave us as the room's resident server (its
        user's join or leave through send_*): the servers in the room before
        it get it from us, since `origin` does not know them."""
        hosts = await self._hosts.remote_hosts(stored.event.room_id)
        destinations = hosts.at(stored.stream_ordering) - {origin}
        if destinations:
            entry = (stored.event.room_id, stored.stream_ordering, stored.event.event_id)
            await self._queue_pdus([(*entry, destinations)])

    async def _queue_pdus(self, entries: Sequence[tuple[str, int, str, Collection[str]]]) -> None:
        queues = {d: await self._queue(d) for _r, _s, _e, ds in entries for d in ds}
        queued_for = {d for d, q in queues.items() if q.accepts_pdus()}
        await self._store.queue_pdus(entries, queued_for)
        for destination, queue in queues.items():
            if destination in queued_for:
                pdus = [QueuedPdu(so, eid) for _r, so, eid, ds in entries if destination in ds]
                queue.pdus_queued(pdus)
            else:
                queue.recorded_for_catch_up()

    async def _handle_typing(self) -> None:
        rooms, self._typing_rooms = self._typing_rooms, set()
        for room_id in sorted(rooms):
            hosts = await self._hosts.remote_hosts(room_id)
            before = self._typing_sent.pop(room_id, set())
            if not hosts.joined:
                continue
            now = {
                u for u in self._typing.typing_users(room_id) if server_of(u) == self.server_name
            }
            if now:
                self._typing_sent[room_id] = now
            edus = [typing_edu(room_id, u, True) for u in sorted(now - before)]
            edus += [typing_edu(room_id, u, False) for u in sorted(before - now)]
            await self.queue_edus(hosts.joined.keys(), edus)

    async def _handle_receipts(self) -> None:
        if not self._receipt_rooms:
            return
        dirty, self._receipt_rooms = self._receipt_rooms, {}
        upto = self._receipts.current_position()
        for room_id, position in dirty.items():
            if position > upto:  # notified, but an earlier receipt is still being written
                self._receipt_rooms[room_id] = max(self._receipt_rooms.get(room_id, 0), position)
        hosts = {room_id: await self._hosts.remote_hosts(room_id) for room_id in dirty}
        wanted = [r for r, h in hosts.items() if h.joined]
        # As no user in particular: private receipts are left out.
        updates = await self._receipts.get_updates("", wanted, self._receipts_pos, upto)
        self._receipts_pos = max(self._receipts_pos, upto)
        for room_id, room in updates.items():
            edus = [
                receipt_edu(r)
                for r in room.receipts
                if r.receipt_type == READ and server_of(r.user_id) == self.server_name
            ]
            await self.queue_edus(hosts[room_id].joined.keys(), edus)

    async def _handle_presence(self) -> None:
        users, self._presence_users = self._presence_users, set()
        for user_id in sorted(users):
            destinations: set[str] = set()
            for membership in await self._user_rooms.get_rooms_for_user(user_id):
                destinations.update((await self._hosts.remote_hosts(membership.room_id)).joined)
            if destinations:
                state = self._presence.get_state(user_id)
                await self.queue_edus(destinations, [presence_edu(state, self._clock.time_msec())])

    async def queue_edus(self, destinations: Collection[str], edus: Sequence[Edu]) -> None:
        """Queue EDUs for remote servers, in order; an EDU replaces a queued one
        with the same type and key (give a unique key to keep every one, as
        to-device messages will need)."""
        if not edus or not destinations:
            return
        queues = [await self._queue(d) for d in sorted(destinations)]
        for edu in edus:
            self._edu_position += 1
            content = orjson.dumps(edu.content).decode()
            await self._store.queue_edus(
                destinations, edu.edu_type, edu.key, self._edu_position, content
            )
            if self._edu_position % TRIM_EDUS_EVERY == 0:
                for queue in queues:
                    if queue.timings.failing:
                        await self._store.trim_edus(queue.destination, MAX_QUEUED_EDUS)
        for queue in queues:
            queue.edus_queued()

    async def _load_pdus(self, event_ids: Sequence[str]) -> list[JsonDict]:
        """The PDUs to send, in the order given (events since purged are skipped)."""
        found = await self._events.get_events(event_ids)
        return [
            found[e].event.get_pdu_json(include_unsigned=False) for e in event_ids if e in found
        ]

    # --- admin ---

    async def reset_connection(self, destination: str) -> None:
        """Forget a destination's backoff and try it again now (Synapse's admin API)."""
        row = await self._store.get_destination(destination)
        if row is None:
            raise NotFoundError("Unknown destination")
        if row.retry_last_ts == 0:
            raise MatrixError(
                400, "M_UNKNOWN", "The retry timing does not need to be reset for this destination."
            )
        await self._store.set_retry_timings(destination, None, 0, 0)
        queue = await self._queue(destination)
        queue.reset_backoff()
