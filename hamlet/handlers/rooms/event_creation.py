"""Creating local events: build, authorise against current state, persist, announce.

Each room is linearised, so on this single-writer homeserver every room's
DAG is a line: an event's only prev_event is the room's newest event.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from hamlet.core import errors as core_errors
from hamlet.core.auth_rules import (
    auth_check,
    auth_types_for_event,
    user_may_redact,
    validate_power_levels_content,
)
from hamlet.core.crypto import SigningKey
from hamlet.core.events import Event, build_event
from hamlet.core.power_levels import AuthState
from hamlet.core.room_versions import RoomVersion, get_room_version
from hamlet.handlers.common.errors import BadJsonError, ForbiddenError, NotFoundError, TooLargeError
from hamlet.handlers.common.notifier import Notifier
from hamlet.handlers.common.service import ServiceBase
from hamlet.handlers.rooms.event_cache import EventCache
from hamlet.handlers.rooms.state import StateHandler
from hamlet.runtime.clock import Clock
from hamlet.runtime.linearizer import Linearizer
from hamlet.runtime.lru import LruCache
from hamlet.storage.stores.events import SNAPSHOT_EVERY, EventsStore, PersistRequest, StoredEvent
from hamlet.storage.stores.rooms import RoomsStore

logger = logging.getLogger(__name__)


@dataclass(slots=True)
class _RoomHead:
    event_id: str
    depth: int
    state_group: int
    delta_depth: int


class EventCreator(ServiceBase):
    def __init__(
        self,
        *,
        server_name: str,
        clock: Clock,
        signing_key: SigningKey,
        events: EventsStore,
        rooms: RoomsStore,
        state: StateHandler,
        cache: EventCache,
        notifier: Notifier,
    ) -> None:
        self.server_name = server_name
        self.clock = clock
        self.signing_key = signing_key
        self.events_store = events
        self.rooms_store = rooms
        self.state = state
        self.cache = cache
        self._linearizer = Linearizer()
        self._heads: dict[str, _RoomHead] = {}
        self._versions: LruCache[str, RoomVersion] = LruCache(1000)
        self._stream = 0
        # Positions handed out but not yet persisted: readers must not see
        # past the lowest of them, or they would skip it when it lands.
        self._in_flight: set[int] = set()
        self._group = 0
        self._notifier = notifier
        self._unannounced: list[StoredEvent] = []
        notifier.register_stream(self.name, self)

    async def load(self) -> None:
        self._stream, self._group = await self.events_store.max_positions()

    name = "events"

    def current_position(self) -> int:
        return self.current_stream

    @property
    def current_stream(self) -> int:
        """The highest position below which every event is persisted."""
        if self._in_flight:
            return min(self._in_flight) - 1
        return self._stream

    async def room_version(self, room_id: str) -> RoomVersion:
        version = self._versions.get(room_id)
        if version is None:
            room = await self.rooms_store.get_room(room_id)
            if room is None:
                raise NotFoundError("Unknown room")
            # A room's version never changes (an upgrade makes a new room).
            version = get_room_version(room.room_version)
            self._versions.set(room_id, version)
        return version

    async def find_txn(self, room_id: str, txn: tuple[str, str, str]) -> Event | None:
        """The event a (user, device, txn id) already made in this room, if any."""
        event_id = await self.events_store.get_event_by_txn(room_id, *txn)
        if event_id is None:
            return None
        stored = await self.cache.get(event_id)
        return stored.event if stored is not None else None

    async def send(
        self,
        sender: str,
        room_id: str,
        type: str,
        content: Mapping[str, Any],
        *,
        state_key: str | None = None,
        redacts: str | None = None,
        txn: tuple[str, str, str] | None = None,
        create_version: str | None = None,
        origin_server_ts: int | None = None,
    ) -> Event:
        """Create and persist one event; returns it (or the earlier one for a repeated txn).

        `create_version` is given only for the m.room.create event of a new
        room. Policy beyond the auth rules (membership checks, rate limits,
        shadow bans, idempotent state) is `EventPipeline`'s, which every
        sending path goes through.
        """
        if "\x00" in type or (state_key is not None and "\x00" in state_key):
            raise BadJsonError("Event type and state key may not contain NUL")
        async with self._linearizer.queue(room_id):
            if txn is not None:
                earlier = await self.find_txn(room_id, txn)
                if earlier is not None:
                    return earlier
            if create_version is not None:
                version = get_room_version(create_version)
                head = None
            else:
                version = await self.room_version(room_id)
                head = await self._head(room_id)
            current_ids = await self.state.get_current_state_ids(room_id) if head else {}
            wanted = auth_types_for_event(version, type, state_key, sender, content)
            auth_state = await self.state.get_current_state(room_id, wanted) if head else {}
            try:
                event = build_event(
                    version,
                    room_id=room_id,
                    sender=sender,
                    type=type,
                    content=content,
                    state_key=state_key,
                    prev_events=[head.event_id] if head else [],
                    auth_events=sorted(e.event_id for e in auth_state.values()),
                    depth=head.depth + 1 if head else 1,
                    origin_server_ts=origin_server_ts
                    if origin_server_ts is not None
                    else self.clock.time_msec(),
                    server_name=self.server_name,
                    signing_key=self.signing_key,
                    redacts=redacts,
                )
            except core_errors.EventTooLargeError as e:
                raise TooLargeError(str(e)) from None
            except core_errors.EventFormatError as e:
                raise BadJsonError(str(e)) from None
            if type == "m.room.power_levels" and state_key == "":
                try:
                    validate_power_levels_content(version, content)
                except core_errors.EventAuthError as e:
                    raise BadJsonError(str(e)) from None
            try:
                auth_check(version, event, auth_state)
            except core_errors.EventAuthError as e:
                raise ForbiddenError(str(e)) from None
            if event.redacts is not None:
                await self._check_redaction(event, auth_state)
            return await self._persist(event, version, head, current_ids, txn)

    async def _check_redaction(self, event: Event, auth_state: AuthState) -> None:
        """Every local redaction, whichever endpoint made it (in v11 `redacts`
        is in the content, so /send and PUT /state can make one too)."""
        assert event.redacts is not None
        original = await self.cache.get(event.redacts)
        if original is None or original.event.room_id != event.room_id:
            raise NotFoundError("Event not found")
        if original.event.type == "m.room.create":
            raise ForbiddenError("Redacting create events is not permitted")
        if not user_may_redact(event.sender, original.event.sender, auth_state):
            raise ForbiddenError("You don't have permission to redact this event")

    async def _head(self, room_id: str) -> _RoomHead:
        head = self._heads.get(room_id)
        if head is None:
            latest = await self.events_store.get_latest(room_id)
            if latest is None:
                raise NotFoundError("Unknown room")
            event_id, depth, _stream, group = latest
            _prev, delta_depth = await self.events_store.get_state_group_info(group)
            head = _RoomHead(event_id, depth, group, delta_depth)
            self._heads[room_id] = head
        return head

    async def _persist(
        self,
        event: Event,
        version: RoomVersion,
        head: _RoomHead | None,
        current_ids: Mapping[tuple[str, str], str],
        txn: tuple[str, str, str] | None,
    ) -> Event:
        self._stream += 1
        stream = self._stream
        group = head.state_group if head else 0
        delta_depth = head.delta_depth if head else 0
        full_state = None
        new_ids = dict(current_ids)
        if event.state_key is not None:
            self._group += 1
            new_group = self._group
            new_ids[(event.type, event.state_key)] = event.event_id
            if head is None or delta_depth + 1 >= SNAPSHOT_EVERY:
                full_state = new_ids
            request = PersistRequest(
                event=event,
                stream_ordering=stream,
                state_group=new_group,
                prev_state_group=group if head else None,
                prev_delta_depth=delta_depth,
                full_state=full_state,
                txn=txn,
                room_row=self._room_row(event, version) if head is None else None,
                replaces_state=current_ids.get((event.type, event.state_key)),
            )
            group, delta_depth = new_group, (0 if full_state is not None else delta_depth + 1)
        else:
            request = PersistRequest(
                event=event, stream_ordering=stream, state_group=group, txn=txn
            )
        self._in_flight.add(stream)
        try:
            await self.events_store.persist(request)
        except BaseException:
            self._in_flight.discard(stream)
            self._announce()
            raise
        self._in_flight.discard(stream)
        self._heads[event.room_id] = _RoomHead(event.event_id, event.depth, group, delta_depth)
        stored = StoredEvent(stream, event, None, group, request.replaces_state)
        self.cache.add(stored)
        if event.state_key is not None:
            self.state.state_changed(event.room_id, (event.type, event.state_key), event.event_id)
            self.state.cache_group(group, new_ids)
        if event.redacts is not None:
            self.cache.invalidate(event.redacts)
        self._unannounced.append(stored)
        self._announce()
        return event

    def _announce(self) -> None:
        """Wake syncs for persisted events, in order, once none before them is pending."""
        upto = self.current_stream
        ready = sorted(
            (s for s in self._unannounced if s.stream_ordering <= upto),
            key=lambda s: s.stream_ordering,
        )
        if not ready:
            return
        self._unannounced = [s for s in self._unannounced if s.stream_ordering > upto]
        for stored in ready:
            event = stored.event
            members = [event.state_key] if event.type == "m.room.member" and event.state_key else []
            self._notifier.notify("events", upto, rooms=[event.room_id], users=members)

    @staticmethod
    def _room_row(event: Event, version: RoomVersion) -> tuple[str, str, str | None]:
        creator = event.sender if version.creator_from_sender else event.content.get("creator")
        room_type = event.content.get("type")
        return (
            version.identifier,
            str(creator or event.sender),
            room_type if isinstance(room_type, str) else None,
        )

    def forget_room(self, room_id: str) -> None:
        self._heads.pop(room_id, None)
        self._versions.pop(room_id)

    def clear_caches(self) -> None:
        self._heads.clear()
        self._versions.clear()
