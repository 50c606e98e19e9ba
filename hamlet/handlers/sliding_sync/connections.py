"""Per-connection state of sliding sync: which rooms a client has, as of which `pos`.

Persisted (`SlidingSyncStore`), so a `pos` survives a restart: a new
process loads the state the position stands for and sends only what
changed since. A response writes only the rooms it changed. Recent states
are also kept in memory, so the usual request (the newest `pos`, or a
retry of the one before) reads nothing. Bounded: `MAX_CONNECTIONS_PER_USER`
per user (least recently used dropped: their `pos` is then unknown) and
`MAX_ROOMS_PER_CONNECTION` rooms per connection (those sent longest ago
forgotten: they come back afresh).
"""

from __future__ import annotations

import asyncio
import re
import secrets
from collections import OrderedDict
from dataclasses import dataclass, field
from typing import Final

from hamlet.handlers.common.errors import InvalidParamError, MatrixError
from hamlet.handlers.common.streams import StreamToken
from hamlet.handlers.sliding_sync.params import RoomParams
from hamlet.runtime.clock import Clock
from hamlet.storage.stores.sliding_sync import SlidingSyncStore, StoredRoom

MAX_CONNECTIONS_PER_USER: Final = 10
MAX_ROOMS_PER_CONNECTION: Final = 2000
#: States kept in memory, across all connections.
CACHED_STATES: Final = 1000
_POS = re.compile(r"^([0-9a-f]{8})_([0-9]{1,18})$")

ConnectionKey = tuple[str, str | None, str]


class UnknownPosError(MatrixError):
    def __init__(self) -> None:
        super().__init__(400, "M_UNKNOWN_POS", "Unknown position; start the connection again")


@dataclass(frozen=True, slots=True)
class SentRoom:
    """A room as a connection has it: with which parameters, up to which event."""

    params: RoomParams
    #: The `events` position the room was last sent up to; a room that left
    #: the lists' ranges keeps it, and gets what it missed once back.
    position: int
    #: Whether the connection was told the room is a DM.
    is_dm: bool = False


@dataclass(frozen=True, slots=True)
class ConnectionState:
    """What a client has once it got the response carrying one `pos`."""

    token: StreamToken
    sent: dict[str, SentRoom] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class Position:
    """Where a request continues from: its connection, position and state."""

    conn_key: str
    number: int
    state: ConnectionState


def _stored(room: SentRoom) -> StoredRoom:
    return StoredRoom(
        room.params.timeline_limit, room.params.required_state, room.position, room.is_dm
    )


def _sent(room: StoredRoom) -> SentRoom:
    return SentRoom(
        RoomParams(room.timeline_limit, room.required_state), room.sent_position, room.is_dm
    )


class Connections:
    def __init__(self, store: SlidingSyncStore, clock: Clock) -> None:
        self.store = store
        self.clock = clock
        # Responses of one connection are recorded one at a time: each takes
        # the next number of the connection.
        self._writing: dict[str, tuple[asyncio.Lock, int]] = {}
        self._cache: OrderedDict[tuple[str, int], tuple[ConnectionKey, ConnectionState]] = (
            OrderedDict()
        )

    async def get(self, key: ConnectionKey, pos: str) -> Position:
        """The state a `pos` of this (user, device, conn_id) stands for."""
        m = _POS.match(pos)
        if m is None:
            raise InvalidParamError(f"Invalid pos {pos[:64]!r}")
        conn_key, number = m.group(1), int(m.group(2))
        cached = self._cache.get((conn_key, number))
        if cached is not None:
            owner, state = cached
            if owner != key:
                raise UnknownPosError()
            self._cache.move_to_end((conn_key, number))
            return Position(conn_key, number, state)
        stored = await self.store.load(conn_key, key, number)
        if stored is None:
            raise UnknownPosError()
        state = ConnectionState(
            StreamToken.parse(stored.token),
            {room_id: _sent(room) for room_id, room in stored.rooms.items()},
        )
        self._remember(conn_key, number, key, state)
        return Position(conn_key, number, state)

    async def add(self, key: ConnectionKey, base: Position | None, state: ConnectionState) -> str:
        """Record the state of a new response; returns its `pos`."""
        now_ms = self.clock.time_msec()
        sent = _bounded(state.sent)
        state = ConnectionState(state.token, sent)
        if base is None:
            conn_key = secrets.token_hex(4)
            for dropped in await self.store.start(conn_key, key, now_ms, MAX_CONNECTIONS_PER_USER):
                self._forget(dropped)
            changed: dict[str, StoredRoom | None] = {r: _stored(s) for r, s in sent.items()}
        else:
            conn_key = base.conn_key
            old = base.state.sent
            changed = {r: _stored(s) for r, s in sent.items() if old.get(r) != s}
            changed.update((r, None) for r in old if r not in sent)
            # The state after the base is this one now (a retry replaces it).
            for cached_key in [k for k in self._cache if k[0] == conn_key and k[1] != base.number]:
                del self._cache[cached_key]
        lock, users = self._writing.get(conn_key, (asyncio.Lock(), 0))
        self._writing[conn_key] = (lock, users + 1)
        try:
            async with lock:
                number = await self.store.add(
                    conn_key,
                    base.number if base is not None else None,
                    state.token.to_string(),
                    changed,
                    now_ms,
                )
        finally:
            lock, users = self._writing[conn_key]
            if users == 1:
                del self._writing[conn_key]
            else:
                self._writing[conn_key] = (lock, users - 1)
        if number:
            self._remember(conn_key, number, key, state)
        return f"{conn_key}_{number}"

    def _remember(
        self, conn_key: str, number: int, key: ConnectionKey, state: ConnectionState
    ) -> None:
        self._cache[(conn_key, number)] = (key, state)
        self._cache.move_to_end((conn_key, number))
        while len(self._cache) > CACHED_STATES:
            self._cache.popitem(last=False)

    def _forget(self, conn_key: str) -> None:
        for cached_key in [k for k in self._cache if k[0] == conn_key]:
            del self._cache[cached_key]

    async def count_rows(self, pos: str) -> int:
        """Rows stored for the connection of `pos` (for tests and checks)."""
        return await self.store.count_rows(pos.split("_", 1)[0])


def _bounded(sent: dict[str, SentRoom]) -> dict[str, SentRoom]:
    """At most MAX_ROOMS_PER_CONNECTION rooms: those sent longest ago are forgotten."""
    if len(sent) <= MAX_ROOMS_PER_CONNECTION:
        return sent
    newest = sorted(sent.items(), key=lambda item: -item[1].position)
    return dict(newest[:MAX_ROOMS_PER_CONNECTION])
