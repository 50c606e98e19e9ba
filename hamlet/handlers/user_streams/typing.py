"""Typing notifications: in memory per homeserver, expiring on the Clock."""

from __future__ import annotations

import logging
from collections.abc import Collection
from dataclasses import dataclass
from typing import ClassVar

from hamlet.handlers.common.errors import ForbiddenError
from hamlet.handlers.common.notifier import Notifier
from hamlet.handlers.common.room_access import MembershipChecker
from hamlet.handlers.common.service import ENTRY_BYTES, ServiceBase
from hamlet.handlers.common.streams import StreamToken, SyncScope
from hamlet.runtime.clock import Clock, DelayedCall

logger = logging.getLogger(__name__)

DEFAULT_TIMEOUT_MS = 30_000
MAX_TIMEOUT_MS = 120_000


@dataclass(frozen=True, slots=True)
class RoomTyping:
    """Who is typing in a room now (an `m.typing` ephemeral event)."""

    type: ClassVar[str] = "m.typing"
    user_ids: tuple[str, ...]


class _RoomTyping:
    __slots__ = ("serial", "users")

    def __init__(self) -> None:
        self.serial = 0
        self.users: dict[str, DelayedCall] = {}  # user -> its expiry timer


class TypingHandler(ServiceBase):
    """The `typing` stream: a serial that moves each time a room's typing set changes."""

    name = "typing"

    def __init__(self, clock: Clock, notifier: Notifier, membership: MembershipChecker) -> None:
        self._clock = clock
        self._notifier = notifier
        self._membership = membership
        self._rooms: dict[str, _RoomTyping] = {}
        self._position = 0
        notifier.register_stream(self.name, self)

    def current_position(self) -> int:
        return self._position

    async def set_typing(
        self, requester_user: str, target_user: str, room_id: str, typing: bool, timeout_ms: int
    ) -> None:
        if requester_user != target_user:
            raise ForbiddenError("Cannot set another user's typing state")
        if not await self._membership.is_joined(target_user, room_id):
            raise ForbiddenError(f"User {target_user} not in room {room_id}")
        if typing:
            self.started_typing(room_id, target_user, timeout_ms)
        else:
            self.stopped_typing(room_id, target_user)

    def started_typing(self, room_id: str, user_id: str, timeout_ms: int) -> None:
        timeout_ms = max(0, min(timeout_ms, MAX_TIMEOUT_MS))
        room = self._rooms.setdefault(room_id, _RoomTyping())
        old = room.users.get(user_id)
        if old is not None:
            old.cancel()
        room.users[user_id] = self._clock.call_later(
            timeout_ms / 1000, self._expire, room_id, user_id
        )
        if old is None:
            self._changed(room_id, room)

    def stopped_typing(self, room_id: str, user_id: str) -> None:
        room = self._rooms.get(room_id)
        if room is None:
            return
        timer = room.users.pop(user_id, None)
        if timer is None:
            return
        timer.cancel()
        self._changed(room_id, room)

    def _expire(self, room_id: str, user_id: str) -> None:
        room = self._rooms.get(room_id)
        if room is None or user_id not in room.users:
            return
        del room.users[user_id]
        logger.debug("Typing of %s in %s timed out", user_id, room_id)
        self._changed(room_id, room)

    def _changed(self, room_id: str, room: _RoomTyping) -> None:
        self._position += 1
        room.serial = self._position
        self._notifier.notify("typing", self._position, rooms=[room_id])

    # --- provider ---

    def typing_users(self, room_id: str) -> list[str]:
        room = self._rooms.get(room_id)
        return sorted(room.users) if room is not None else []

    async def changes(
        self, scope: SyncScope, since: StreamToken | None, upto: StreamToken
    ) -> dict[str, RoomTyping]:
        """The provider: typing in the scope's rooms, by room (in memory, so
        always as of now)."""
        return self.get_updates(scope.room_ids, since.typing if since else 0)

    def get_updates(self, room_ids: Collection[str], since_pos: int) -> dict[str, RoomTyping]:
        """Who types in each of `room_ids` whose typing set changed after `since_pos`.

        A position ahead of this stream (a token from before a restart) gets
        the current state of every room that has one.
        """
        if since_pos > self._position:
            since_pos = 0
        out: dict[str, RoomTyping] = {}
        for room_id in room_ids:
            room = self._rooms.get(room_id)
            if room is None or room.serial <= since_pos:
                continue
            out[room_id] = RoomTyping(tuple(sorted(room.users)))
        return out

    def memory_usage(self) -> int:
        return ENTRY_BYTES * sum(1 + len(r.users) for r in self._rooms.values())

    def clear_caches(self) -> None:
        """Typing state is not a cache."""

    async def shutdown(self) -> None:
        for room in self._rooms.values():
            for timer in room.users.values():
                timer.cancel()
        self._rooms.clear()
