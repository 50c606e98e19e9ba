"""Rate limiters for room actions: messages, joins and invites, one set per homeserver."""

from __future__ import annotations

from typing import Protocol

from hamlet.config import HomeServerConfig, RateLimitConfig
from hamlet.handlers.common.ratelimit import Ratelimiter, RatelimiterSet
from hamlet.handlers.rooms.sender import Sender
from hamlet.runtime.clock import Clock


class RatelimitOverrideLookup(Protocol):
    async def get(self, user_id: str) -> tuple[int, int] | None:
        """A user's `(messages_per_second, burst_count)` override, if any."""


class RoomRatelimiters(RatelimiterSet):
    def __init__(
        self, clock: Clock, config: HomeServerConfig, overrides: RatelimitOverrideLookup
    ) -> None:
        def make(name: str, rc: RateLimitConfig) -> Ratelimiter:
            return Ratelimiter(
                clock, name=name, per_second=rc.per_second, burst_count=rc.burst_count
            )

        self.messages = make("rc_message", config.rc_message)
        # Per-user overrides of rc_message (the admin API sets them).
        self.overrides = overrides
        self.room_creation = make("rc_room_creation", config.rc_room_creation)
        self.joins_local = make("rc_joins.local", config.rc_joins.local)
        self.joins_remote = make("rc_joins.remote", config.rc_joins.remote)
        self.joins_per_room = make("rc_joins_per_room", config.rc_joins_per_room)
        self.invites_per_room = make("rc_invites.per_room", config.rc_invites.per_room)
        self.invites_per_user = make("rc_invites.per_user", config.rc_invites.per_user)
        self.invites_per_issuer = make("rc_invites.per_issuer", config.rc_invites.per_issuer)
        self._limiters = (
            self.messages,
            self.room_creation,
            self.joins_local,
            self.joins_remote,
            self.joins_per_room,
            self.invites_per_room,
            self.invites_per_user,
            self.invites_per_issuer,
        )

    async def message(self, sender: Sender) -> None:
        if sender.exempt_from_limits:
            return
        override = await self.overrides.get(sender.user_id)
        if override is None:
            await self.messages.ratelimit(sender.user_id)
            return
        per_second, burst_count = override
        if per_second == 0:
            return  # 0 messages per second: not rate limited at all
        await self.messages.ratelimit(sender.user_id, rate_hz=per_second, burst_count=burst_count)

    async def room_creation_request(self, sender: Sender) -> None:
        """createRoom and upgrades: `rc_room_creation` as well as `rc_message`,
        checked before either counts, so a refusal by one costs nothing in
        the other (as Synapse)."""
        if sender.exempt_from_limits:
            return
        await self.room_creation.ratelimit(sender.user_id, update=False)
        await self.message(sender)
        await self.room_creation.ratelimit(sender.user_id)

    async def join(self, sender: Sender, room_id: str) -> None:
        if not sender.exempt_from_limits:
            await self.joins_local.ratelimit(sender.user_id)
            await self.joins_per_room.ratelimit(room_id)

    async def remote_join(self, sender: Sender) -> None:
        """A join of a room we are not in yet, over federation: `rc_joins.remote`
        instead of the local limits (as Synapse), since the room is another's."""
        if not sender.exempt_from_limits:
            await self.joins_remote.ratelimit(sender.user_id)

    async def invite(self, sender: Sender, room_id: str, invitee: str) -> None:
        if not sender.exempt_from_limits:
            await self.invites_per_room.ratelimit(room_id)
            await self.invites_per_user.ratelimit(invitee)
            await self.invites_per_issuer.ratelimit(sender.user_id)
