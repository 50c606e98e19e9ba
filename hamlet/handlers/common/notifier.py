"""Wakes long-polling /sync requests when something they care about moves.

Every stream reports a new position with `notify(stream, pos, users=...,
rooms=...)`. The notifier remembers, per user and per room, the last
position each stream reached for them, so a sync that arrives just after a
change (between two long-polls) returns at once instead of waiting for the
next one. Waiters are futures indexed by user and room; each one is removed
in a `finally`, whether it was woken, timed out or cancelled.
"""

from __future__ import annotations

import asyncio
import logging
from collections import OrderedDict
from collections.abc import Callable, Collection, Iterable, Sequence

from hamlet.handlers.common.service import ENTRY_BYTES, ServiceBase
from hamlet.handlers.common.streams import STREAM_NAMES, StreamPosition, StreamToken
from hamlet.runtime.clock import Clock
from hamlet.runtime.timeout import with_timeout

logger = logging.getLogger(__name__)

# Users (and, separately, rooms) whose last stream positions are remembered.
POSITION_KEYS = 10_000

# Told of every move: (stream, position, users, rooms).
NotifyListener = Callable[[str, int, Sequence[str], Sequence[str]], None]


class _Waiter:
    __slots__ = ("future", "rooms", "since", "user_id")

    def __init__(
        self, user_id: str, rooms: frozenset[str], since: StreamToken, future: asyncio.Future[bool]
    ) -> None:
        self.user_id = user_id
        self.rooms = rooms
        self.since = since
        self.future = future

    def wake_if_past(self, stream: str, position: int) -> None:
        if not self.future.done() and position > self.since.get(stream):
            self.future.set_result(True)


class _Positions:
    """The last position of each stream per key (user or room), bounded.

    The least recently moved keys are evicted past `max_keys`; their
    positions fold into a per-stream watermark, and a key that is not held
    counts as changed for any token older than the watermark. So eviction
    can only make a sync return early (and empty), never miss a change.
    """

    def __init__(self, max_keys: int) -> None:
        self.max_keys = max_keys
        self._table: OrderedDict[str, dict[str, int]] = OrderedDict()
        self._evicted: dict[str, int] = {}

    def advance(self, key: str, stream: str, position: int) -> None:
        positions = self._table.get(key)
        if positions is None:
            self._table[key] = {stream: position}
            if len(self._table) > self.max_keys:
                _old, dropped = self._table.popitem(last=False)
                for name, pos in dropped.items():
                    if self._evicted.get(name, 0) < pos:
                        self._evicted[name] = pos
            return
        self._table.move_to_end(key)
        if positions.get(stream, 0) < position:
            positions[stream] = position

    def past(self, key: str, since: StreamToken) -> bool:
        positions = self._table.get(key)
        if positions is None:
            positions = self._evicted
        return any(pos > since.get(stream) for stream, pos in positions.items())

    def position(self, key: str, stream: str) -> int:
        """The last position `stream` reached for `key` (the watermark if not held)."""
        positions = self._table.get(key)
        if positions is None:
            return self._evicted.get(stream, 0)
        return positions.get(stream, 0)

    def __len__(self) -> int:
        return len(self._table)

    def entries(self) -> int:
        return sum(len(p) for p in self._table.values())


class Notifier(ServiceBase):
    def __init__(self, clock: Clock) -> None:
        self._clock = clock
        self._providers: dict[str, StreamPosition] = {}
        self._user_waiters: dict[str, set[_Waiter]] = {}
        self._room_waiters: dict[str, set[_Waiter]] = {}
        # Last position each stream reached for a user / a room.
        self._user_positions = _Positions(POSITION_KEYS)
        self._room_positions = _Positions(POSITION_KEYS)
        # Last position of the events stream at which a room's memberships changed.
        self._member_positions = _Positions(POSITION_KEYS)
        # Each stream's position when this notifier started hearing of its
        # moves: it knows nothing of what moved before (another process).
        self._floor: StreamToken | None = None
        self._waiter_count = 0
        self._listeners: list[NotifyListener] = []

    # --- streams ---

    def register_stream(self, name: str, provider: StreamPosition) -> None:
        """Called by each stream provider's constructor.

        Providers need the notifier to wake syncs and the notifier needs
        them for the current token: it is built first and providers add
        themselves, so nothing is wired in after construction.
        """
        if name not in STREAM_NAMES:
            raise ValueError(f"unknown stream {name!r}")
        self._providers[name] = provider

    def start(self) -> None:
        # Called once every service loaded its positions, before any request.
        self._floor = self.current_token()

    def add_listener(self, listener: NotifyListener) -> None:
        """Called by a service's constructor (the federation sender) to hear of
        every move, synchronously, so the streams need not know it exists.
        A listener must be quick: it runs inside `notify`."""
        self._listeners.append(listener)

    def current_token(self) -> StreamToken:
        """The position of every registered stream now (0 for the others)."""
        return StreamToken(
            **{name: provider.current_position() for name, provider in self._providers.items()}
        )

    # --- notifying ---

    def notify(
        self,
        stream: str,
        position: int,
        *,
        users: Iterable[str] = (),
        rooms: Iterable[str] = (),
    ) -> None:
        """`stream` reached `position` with a change for these users and rooms."""
        if stream not in STREAM_NAMES:
            raise ValueError(f"unknown stream {stream!r}")
        user_ids, room_ids = tuple(users), tuple(rooms)
        for user_id in user_ids:
            self._user_positions.advance(user_id, stream, position)
            for waiter in self._user_waiters.get(user_id, ()):
                waiter.wake_if_past(stream, position)
        for room_id in room_ids:
            self._room_positions.advance(room_id, stream, position)
            for waiter in self._room_waiters.get(room_id, ()):
                waiter.wake_if_past(stream, position)
            if stream == "events" and user_ids:
                # The events stream names users exactly when memberships change.
                self._member_positions.advance(room_id, stream, position)
        for listener in self._listeners:
            listener(stream, position, user_ids, room_ids)

    # --- waiting ---

    def has_change(self, user_id: str, room_ids: Collection[str], since: StreamToken) -> bool:
        """Did anything relevant to the user move past `since` already?"""
        if since.ahead_streams(self.current_token()):
            # A token from before a restart: the caller sends the current state.
            return True
        if self._user_positions.past(user_id, since):
            return True
        return any(self._room_positions.past(r, since) for r in room_ids)

    def stream_position(self, stream: str) -> int:
        """The current position of one stream (0 if none registered)."""
        provider = self._providers.get(stream)
        return provider.current_position() if provider is not None else 0

    def knows_since(self, stream: str, since_pos: int) -> bool:
        """Has this notifier heard of every move of `stream` past `since_pos`?
        (Not for a position ahead of the stream: a token of another database.)"""
        provider = self._providers.get(stream)
        return (
            self._floor is not None
            and provider is not None
            and self._floor.get(stream) <= since_pos <= provider.current_position()
        )

    def moved_since(
        self,
        stream: str,
        since_pos: int,
        *,
        users: Iterable[str] = (),
        rooms: Iterable[str] = (),
    ) -> bool:
        """Might `stream` have moved past `since_pos` for these users or rooms?

        False only when sure: for a position from before this notifier
        started, or a key it no longer holds, the answer is yes. What a
        stream writes is notified in the same step as its position moves,
        so a False holds for everything up to the current token.
        """
        if not self.knows_since(stream, since_pos):
            return True
        return any(self._user_positions.position(u, stream) > since_pos for u in users) or any(
            self._room_positions.position(r, stream) > since_pos for r in rooms
        )

    def members_moved_since(self, since_pos: int, *, rooms: Iterable[str]) -> bool:
        """Might the memberships of these rooms have changed past `since_pos`
        (an events stream position)? False only when sure."""
        if not self.knows_since("events", since_pos):
            return True
        return any(self._member_positions.position(r, "events") > since_pos for r in rooms)

    async def wait_for_change(
        self, user_id: str, room_ids: Collection[str], since: StreamToken, timeout_s: float
    ) -> bool:
        """Wait until something for the user (directly or in one of `room_ids`)
        moves past `since`: True as soon as it does, False after `timeout_s`."""
        if self.has_change(user_id, room_ids, since):
            return True
        if timeout_s <= 0:
            return False
        future: asyncio.Future[bool] = asyncio.get_running_loop().create_future()
        waiter = _Waiter(user_id, frozenset(room_ids), since, future)
        self._add(waiter)
        try:
            return await with_timeout(future, timeout_s, self._clock)
        except TimeoutError:
            return False
        finally:
            self._remove(waiter)

    def _add(self, waiter: _Waiter) -> None:
        self._waiter_count += 1
        self._user_waiters.setdefault(waiter.user_id, set()).add(waiter)
        for room_id in waiter.rooms:
            self._room_waiters.setdefault(room_id, set()).add(waiter)

    def _remove(self, waiter: _Waiter) -> None:
        self._waiter_count -= 1
        self._discard(self._user_waiters, waiter.user_id, waiter)
        for room_id in waiter.rooms:
            self._discard(self._room_waiters, room_id, waiter)
        if not waiter.future.done():
            waiter.future.cancel()

    @staticmethod
    def _discard(table: dict[str, set[_Waiter]], key: str, waiter: _Waiter) -> None:
        waiters = table.get(key)
        if waiters is not None:
            waiters.discard(waiter)
            if not waiters:
                del table[key]

    # --- introspection and lifecycle ---

    @property
    def waiter_count(self) -> int:
        """How many /sync requests are waiting now (for metrics)."""
        return self._waiter_count

    def index_sizes(self) -> tuple[int, int]:
        """(users, rooms) with at least one waiter: both 0 when nobody waits."""
        return len(self._user_waiters), len(self._room_waiters)

    def memory_usage(self) -> int:
        entries = (
            self._waiter_count
            + self._user_positions.entries()
            + self._room_positions.entries()
            + self._member_positions.entries()
        )
        return entries * ENTRY_BYTES

    def clear_caches(self) -> None:
        """Nothing to drop: the positions are what makes catch-up correct."""

    async def shutdown(self) -> None:
        for waiters in list(self._user_waiters.values()):
            for waiter in list(waiters):
                if not waiter.future.done():
                    waiter.future.cancel()
