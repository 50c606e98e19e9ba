"""Presence of local users: in memory, timed out on the Clock.

Like Synapse: a user idle for `IDLE_TIMEOUT_MS` goes from online to
unavailable; a user who neither syncs nor acts for `SYNC_TIMEOUT_MS` (and
has no sync in flight) goes offline. With presence disabled, PUT is
accepted and ignored, GET says offline and nothing is streamed.
"""

from __future__ import annotations

import contextlib
import dataclasses
import logging
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any, Final

from hamlet.config.model import DEFAULT_RC_PRESENCE_PER_USER, RateLimitConfig
from hamlet.handlers.common.errors import ForbiddenError, InvalidParamError
from hamlet.handlers.common.notifier import Notifier
from hamlet.handlers.common.ratelimit import Ratelimiter
from hamlet.handlers.common.room_access import RoomSharing
from hamlet.handlers.common.service import ENTRY_BYTES, ServiceBase
from hamlet.handlers.common.streams import StreamToken, SyncScope
from hamlet.runtime.clock import Clock

logger = logging.getLogger(__name__)

ONLINE: Final = "online"
UNAVAILABLE: Final = "unavailable"
OFFLINE: Final = "offline"
STATES: Final = frozenset({ONLINE, UNAVAILABLE, OFFLINE})

IDLE_TIMEOUT_MS: Final = 5 * 60 * 1000
SYNC_TIMEOUT_MS: Final = 30 * 1000
# `currently_active` stays true this long after the last activity.
ACTIVE_GRANULARITY_MS: Final = 60 * 1000
CHECK_INTERVAL_S: Final = 5.0
# A remote user whose server has said nothing of them for this long goes
# offline (as Synapse: their server may have gone away without telling us).
FEDERATION_TIMEOUT_MS: Final = 30 * 60 * 1000


@dataclass(frozen=True, slots=True)
class UserPresence:
    user_id: str
    state: str = OFFLINE
    status_msg: str | None = None
    last_active_ts: int = 0
    last_sync_ts: int = 0
    currently_active: bool = False
    stream_id: int = 0

    def content(self, now_ms: int) -> dict[str, Any]:
        """The `m.presence` content / GET body."""
        out: dict[str, Any] = {"presence": self.state}
        if self.last_active_ts:
            out["last_active_ago"] = max(0, now_ms - self.last_active_ts)
        if self.status_msg is not None:
            out["status_msg"] = self.status_msg
        if self.state == ONLINE:
            out["currently_active"] = self.currently_active
        return out


@dataclass(frozen=True, slots=True)
class PresenceUpdates:
    """Presence states to send, by user id; `last_active_ago` counts from `as_of_ms`."""

    states: list[UserPresence]
    as_of_ms: int


class PresenceHandler(ServiceBase):
    """The `presence` stream: a serial in memory, moved by every state change."""

    name = "presence"

    def __init__(
        self,
        clock: Clock,
        notifier: Notifier,
        rooms: RoomSharing,
        *,
        enabled: bool = True,
        max_status_msg_length: int = 1024,
        rate: RateLimitConfig = DEFAULT_RC_PRESENCE_PER_USER,
    ) -> None:
        self._clock = clock
        # `rc_presence.per_user`: each PUT and each /sync's `set_presence`
        # spends one action (as Synapse); a /sync over the limit leaves the
        # state alone instead of failing.
        self._rate = Ratelimiter(
            clock,
            name="rc_presence.per_user",
            per_second=rate.per_second,
            burst_count=rate.burst_count,
        )
        # Every room-mate's /sync carries the status: it must stay small.
        self._max_status_msg_length = max_status_msg_length
        self._notifier = notifier
        self._rooms = rooms
        self.enabled = enabled
        self._states: dict[str, UserPresence] = {}
        self._syncing: dict[str, int] = {}  # user -> syncs in flight
        # Users whose presence their own (remote) server tells us; their
        # `last_sync_ts` is when it last did.
        self._remote: set[str] = set()
        self._position = 0
        notifier.register_stream(self.name, self)

    def start(self) -> None:
        if self.enabled:
            self._rate.start()
            self._clock.looping_call(self.check_timeouts, CHECK_INTERVAL_S)

    def current_position(self) -> int:
        return self._position

    # --- reading ---

    def get_state(self, user_id: str) -> UserPresence:
        if not self.enabled:
            return UserPresence(user_id)
        return self._states.get(user_id) or UserPresence(user_id)

    async def get_presence_for(self, observer: str, user_id: str) -> dict[str, Any]:
        """Handle `GET /presence/{userId}/status` (403 unless the users share a room)."""
        if observer != user_id and user_id not in await self._rooms.users_sharing_rooms(observer):
            raise ForbiddenError("You are not allowed to see their presence.")
        return self.get_state(user_id).content(self._clock.time_msec())

    # --- writing ---

    async def set_presence(
        self, requester: str, user_id: str, presence: Any, status_msg: Any
    ) -> None:
        """Handle `PUT /presence/{userId}/status`."""
        if requester != user_id:
            raise ForbiddenError("Can only set your own presence state")
        if presence not in STATES:
            raise InvalidParamError(f"Invalid presence state {presence!r}")
        if status_msg is not None and not isinstance(status_msg, str):
            raise InvalidParamError("'status_msg' must be a string")
        if status_msg is not None and len(status_msg) > self._max_status_msg_length:
            raise InvalidParamError(
                f"'status_msg' may be at most {self._max_status_msg_length} characters"
            )
        if not self.enabled:
            return
        await self._rate.ratelimit(user_id)
        now = self._clock.time_msec()
        old = self.get_state(user_id)
        new = dataclasses.replace(old, state=presence, status_msg=status_msg)
        if presence == ONLINE:
            new = dataclasses.replace(new, last_active_ts=now, currently_active=True)
        await self._update(old, new)

    async def bump_active(self, user_id: str) -> None:
        """The user did something (sent an event, a receipt...): online and active."""
        if not self.enabled:
            return
        old = self.get_state(user_id)
        now = self._clock.time_msec()
        new = dataclasses.replace(old, state=ONLINE, last_active_ts=now, currently_active=True)
        await self._update(old, new)

    async def set_state_from_sync(self, user_id: str, presence: str | None) -> None:
        """`/sync?set_presence=`: online (the default) or unavailable marks the user
        as syncing in that state; offline leaves presence alone."""
        if not self.enabled:
            return
        presence = presence or ONLINE
        if presence not in STATES:
            raise InvalidParamError(f"Invalid presence state {presence!r}")
        if presence == OFFLINE:
            return
        now = self._clock.time_msec()
        old = self.get_state(user_id)
        new = dataclasses.replace(old, last_sync_ts=now)
        if presence == ONLINE and old.state != ONLINE:
            new = dataclasses.replace(new, state=ONLINE, last_active_ts=now, currently_active=True)
        elif presence == UNAVAILABLE and old.state == OFFLINE:
            new = dataclasses.replace(new, state=UNAVAILABLE)
        await self._update(old, new)

    async def set_remote_presence(
        self,
        user_id: str,
        presence: str,
        *,
        status_msg: str | None,
        last_active_ago: int | None,
        currently_active: bool,
    ) -> None:
        """A remote user's presence, as their server pushed it (checked by the caller)."""
        if not self.enabled:
            return
        if presence not in STATES:
            raise InvalidParamError(f"Invalid presence state {presence!r}")
        if status_msg is not None:
            status_msg = status_msg[: self._max_status_msg_length]
        now = self._clock.time_msec()
        self._remote.add(user_id)
        old = self.get_state(user_id)
        new = dataclasses.replace(
            old,
            state=presence,
            status_msg=status_msg,
            last_active_ts=now - max(0, last_active_ago) if last_active_ago is not None else 0,
            last_sync_ts=now,
            currently_active=currently_active and presence == ONLINE,
        )
        await self._update(old, new)

    @contextlib.asynccontextmanager
    async def syncing(self, user_id: str, presence: str | None) -> AsyncIterator[None]:
        """Wrap one /sync: the user is not timed out while a sync is in flight."""
        if presence is not None and presence not in STATES:
            raise InvalidParamError(f"Invalid presence state {presence!r}")
        affects = self.enabled and presence != OFFLINE
        # Over `rc_presence` the sync still keeps the user from timing out;
        # only the state change it asks for is skipped.
        if affects and self._rate.can_do_action(user_id)[0]:
            await self.set_state_from_sync(user_id, presence)
        if affects:
            self._syncing[user_id] = self._syncing.get(user_id, 0) + 1
        try:
            yield
        finally:
            if affects:
                left = self._syncing[user_id] - 1
                if left:
                    self._syncing[user_id] = left
                else:
                    del self._syncing[user_id]
                state = self._states.get(user_id)
                if state is not None:
                    self._states[user_id] = dataclasses.replace(
                        state, last_sync_ts=self._clock.time_msec()
                    )

    async def _update(self, old: UserPresence, new: UserPresence) -> None:
        if _visible(old) == _visible(new):
            # Only timestamps moved: remember them without streaming.
            self._states[new.user_id] = dataclasses.replace(new, stream_id=old.stream_id)
            return
        self._position += 1
        new = dataclasses.replace(new, stream_id=self._position)
        self._states[new.user_id] = new
        users = await self._rooms.users_sharing_rooms(new.user_id)
        users.add(new.user_id)
        self._notifier.notify("presence", self._position, users=users)

    async def check_timeouts(self) -> None:
        """Idle online users become unavailable; users gone quiet become offline."""
        now = self._clock.time_msec()
        # Each state is read afresh: an update awaited for the previous user
        # lets a request change this one, which a snapshot would overwrite.
        for user_id in list(self._states):
            old = self._states.get(user_id)
            if old is None or old.state == OFFLINE:
                continue
            if old.user_id in self._remote:
                # Their own server times them out; we only notice it went quiet.
                if now - old.last_sync_ts > FEDERATION_TIMEOUT_MS:
                    offline = dataclasses.replace(old, state=OFFLINE, currently_active=False)
                    await self._update(old, offline)
                continue
            new = old
            if old.state == ONLINE:
                if now - old.last_active_ts > IDLE_TIMEOUT_MS:
                    new = dataclasses.replace(new, state=UNAVAILABLE, currently_active=False)
                elif old.currently_active and now - old.last_active_ts > ACTIVE_GRANULARITY_MS:
                    new = dataclasses.replace(new, currently_active=False)
            if old.user_id not in self._syncing:
                quiet_since = max(old.last_sync_ts, old.last_active_ts)
                if now - quiet_since > SYNC_TIMEOUT_MS:
                    new = dataclasses.replace(new, state=OFFLINE, currently_active=False)
            if new != old:
                await self._update(old, new)

    # --- provider ---

    async def changes(
        self, scope: SyncScope, since: StreamToken | None, upto: StreamToken
    ) -> PresenceUpdates:
        """The provider (in memory, so always as of now)."""
        return await self.get_updates(scope.user_id, since.presence if since else 0)

    async def get_updates(self, user_id: str, since_pos: int) -> PresenceUpdates:
        """Presence of the user and of users sharing a room with them, changed
        after `since_pos`; on an initial sync (0, or a position ahead of the
        stream) only users who are not offline."""
        now = self._clock.time_msec()
        states: list[UserPresence] = []
        if not self.enabled:
            return PresenceUpdates(states, now)
        initial = since_pos == 0 or since_pos > self._position
        users = await self._rooms.users_sharing_rooms(user_id)
        users.add(user_id)
        for uid in sorted(users):
            state = self._states.get(uid)
            if state is None:
                continue
            if initial:
                if state.state == OFFLINE:
                    continue
            elif state.stream_id <= since_pos:
                continue
            states.append(state)
        return PresenceUpdates(states, now)

    def memory_usage(self) -> int:
        return ENTRY_BYTES * (len(self._states) + len(self._syncing) + len(self._remote))

    def clear_caches(self) -> None:
        """Presence is state, not a cache."""

    async def shutdown(self) -> None:
        """The timeout looping call belongs to the Clock; the limiter's pruning is ours."""
        self._rate.stop()


def _visible(state: UserPresence) -> tuple[str, str | None, bool]:
    """What a presence event shows, apart from times."""
    return (state.state, state.status_msg, state.currently_active)
