"""Creating local events: build, authorise against the state before, persist.

A new event names the room's forward extremities as its prev_events (the
most recent `MAX_PREV_EVENTS`), so it merges the forks federation brings;
the state before it is the resolution of their states, and its auth
events are picked from that state.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any, Protocol

from hamlet.core import errors as core_errors
from hamlet.core.auth_rules import (
    auth_check,
    auth_types_for_event,
    user_may_redact,
    validate_power_levels_content,
)
from hamlet.core.crypto import SigningKey
from hamlet.core.dag import next_depth, select_prev_events
from hamlet.core.events import Event, build_event
from hamlet.core.ids import generate_room_id, get_domain_from_id
from hamlet.core.power_levels import CREATE_KEY, AuthState
from hamlet.core.room_versions import RoomVersion, get_room_version
from hamlet.handlers.common.errors import (
    BadJsonError,
    ForbiddenError,
    MatrixError,
    NotFoundError,
    TooLargeError,
)
from hamlet.handlers.common.service import ServiceBase
from hamlet.handlers.rooms.event_cache import EventCache
from hamlet.handlers.rooms.persistence import EventPersister
from hamlet.handlers.rooms.state import StateHandler
from hamlet.runtime.clock import Clock
from hamlet.storage.stores.events import EventsStore, Extremity

logger = logging.getLogger(__name__)

_ROOM_ID_ATTEMPTS = 5


class RemoteInvites(Protocol):
    async def countersigned(self, event: Event) -> Event:
        """The invite of another server's user, signed by that server too."""
        ...


def _no_room_id() -> MatrixError:
    return MatrixError(500, "M_UNKNOWN", "Couldn't generate a unique room ID")


class RoomIdTakenError(MatrixError):
    """A new room's ID is taken: two v12 create events alike to the
    millisecond hash alike."""

    def __init__(self) -> None:
        super().__init__(400, "M_ROOM_IN_USE", "The room already exists")


class EventCreator(ServiceBase):
    def __init__(
        self,
        *,
        server_name: str,
        clock: Clock,
        signing_key: SigningKey,
        persister: EventPersister,
        events: EventsStore,
        state: StateHandler,
        cache: EventCache,
    ) -> None:
        self.server_name = server_name
        self.clock = clock
        self.signing_key = signing_key
        self.persister = persister
        self.events_store = events
        self.state = state
        self.cache = cache
        self._remote_invites: RemoteInvites | None = None

    def attach_remote_invites(self, remote_invites: RemoteInvites) -> None:
        """Federation (built after rooms) countersigns invites of remote users
        from now on; until then they are stored as they are."""
        self._remote_invites = remote_invites

    def current_position(self) -> int:
        return self.persister.current_position()

    @property
    def current_stream(self) -> int:
        """The highest position below which every event is persisted."""
        return self.persister.current_stream

    async def room_version(self, room_id: str) -> RoomVersion:
        return await self.persister.room_version(room_id)

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
        async with self.persister.lock(room_id):
            if txn is not None:
                earlier = await self.find_txn(room_id, txn)
                if earlier is not None:
                    return earlier
            prevs: list[Extremity] = []
            if create_version is not None:
                version = get_room_version(create_version)
                if await self.persister.extremities(room_id):
                    raise RoomIdTakenError()
            else:
                version = await self.persister.room_version(room_id)
                extremities = await self.persister.extremities(room_id)
                if not extremities:
                    raise NotFoundError("Unknown room")
                chosen = set(
                    select_prev_events(
                        (x.event_id, x.depth, x.stream_ordering) for x in extremities
                    )
                )
                prevs = [x for x in extremities if x.event_id in chosen]
            before = await self.persister.state_at_groups(version, [x.state_group for x in prevs])
            wanted = auth_types_for_event(version, type, state_key, sender, content)
            # From v12 the create event is not an auth event (the room ID
            # names it), but the auth rules still read it.
            auth_state = await self.persister.load_state(before.ids, {*wanted, CREATE_KEY})
            try:
                event = build_event(
                    version,
                    room_id=room_id,
                    sender=sender,
                    type=type,
                    content=content,
                    state_key=state_key,
                    prev_events=[x.event_id for x in prevs],
                    auth_events=sorted(e.event_id for k, e in auth_state.items() if k in wanted),
                    depth=next_depth([x.depth for x in prevs]),
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
            if self._remote_invites is not None and self._invites_remote_user(event):
                # Under the room's lock, so the invite's prev_events stay
                # the room's extremities while the invitee's server signs.
                event = await self._remote_invites.countersigned(event)
            stored = await self.persister.persist(
                event, version, before, txn=txn, apply_redaction=True, fresh=True
            )
            return stored.event

    def _invites_remote_user(self, event: Event) -> bool:
        return (
            event.type == "m.room.member"
            and event.membership == "invite"
            and event.state_key is not None
            and get_domain_from_id(event.state_key) != self.server_name
        )

    async def new_room(
        self, sender: str, version: RoomVersion, content: Mapping[str, Any]
    ) -> tuple[int, Event]:
        """A new room's create event (not stored) and its timestamp, for
        `send` to make again; its `room_id` is the new room's ID.

        From v12 that ID is the event's hash, the same for two alike rooms
        made in one millisecond: as Synapse, the timestamp moves on until
        the ID is free.
        """
        ts = self.clock.time_msec()
        room_id = generate_room_id(self.server_name)
        for attempt in range(_ROOM_ID_ATTEMPTS):
            create = self.build_create(sender, version, room_id, content, ts + attempt)
            if not version.room_id_from_create_event:
                return ts, create
            if not await self.persister.extremities(create.room_id):
                return ts + attempt, create
        raise _no_room_id()

    async def send_create(
        self,
        sender: str,
        version: RoomVersion,
        content: Mapping[str, Any],
        planned: tuple[int, Event],
    ) -> Event:
        """Make the create event `new_room` planned, or, when a concurrent
        alike request took its v12 room ID meanwhile, a fresh one."""
        ts, create = planned
        for _ in range(_ROOM_ID_ATTEMPTS):
            try:
                return await self.send(
                    sender,
                    create.room_id,
                    "m.room.create",
                    content,
                    state_key="",
                    create_version=version.identifier,
                    origin_server_ts=ts,
                )
            except RoomIdTakenError:
                ts, create = await self.new_room(sender, version, content)
        raise _no_room_id()

    def build_create(
        self, sender: str, version: RoomVersion, room_id: str, content: Mapping[str, Any], ts: int
    ) -> Event:
        """The m.room.create event `send` makes from the same arguments (so,
        from v12, the room ID it hashes to), checked by the auth rules."""
        try:
            event = build_event(
                version,
                room_id=room_id,
                sender=sender,
                type="m.room.create",
                content=content,
                state_key="",
                prev_events=[],
                auth_events=[],
                depth=next_depth([]),
                origin_server_ts=ts,
                server_name=self.server_name,
                signing_key=self.signing_key,
            )
            auth_check(version, event, {})
        except core_errors.EventTooLargeError as e:
            raise TooLargeError(str(e)) from None
        except (core_errors.EventFormatError, core_errors.EventAuthError) as e:
            raise BadJsonError(str(e)) from None
        return event

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

    def forget_room(self, room_id: str) -> None:
        self.persister.forget_room(room_id)
