"""The one way in for every event a local user or the server sends.

The client API (send, state, redact, membership, createRoom, upgrade, the
canonical alias fix-up when an alias is deleted), the admin API
(force-join, make room admin, room deletion), server notices, a profile
change's new join events and deactivation all come through here, so each
policy is applied once, in this order:

1. a repeated transaction ID answers with the event it made, before any
   check or limit (the client lost the first answer);
2. non-membership events need the sender joined (an unknown room is 404);
   `m.room.canonical_alias` may only name local aliases of this room;
3. state identical to the current state by the same sender answers with
   that event and makes none (PUT is idempotent, as in Synapse);
4. rate limits: `rc_message` for every non-membership event, createRoom,
   room upgrades and knocks, and `rc_room_creation` too for the middle
   two; `rc_joins` (local and per room) for a new join by any path;
   `rc_invites` (per room, per invitee, per issuer) for invites. Server
   admins are exempt; an admin's `override_ratelimit` replaces
   `rc_message` for one user;
5. a shadow-banned sender's non-membership events, invites and upgrades
   look done (a fake ID) but nothing is stored; their createRoom makes the
   room without its invites (Synapse's choices).

Internal senders (`Sender.server`) skip 4 and 5, as Synapse sends these
with `ratelimit=False`. The events a createRoom or an upgrade makes are
limited once, as the request, never one by one. Below this, `EventCreator`
builds, authorises and persists, and `MembershipHandler` shapes membership
events; besides this pipeline only room creation and upgrade, which it
fronts, call them to send.
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Iterable, Mapping
from typing import Any, Final

from hamlet.core.ids import generate_room_id, is_room_id
from hamlet.core.room_versions import KNOWN_ROOM_VERSIONS
from hamlet.handlers.common.errors import BadJsonError, InvalidParamError, MatrixError
from hamlet.handlers.rooms.canonical_alias import check_canonical_alias
from hamlet.handlers.rooms.creation import RoomCreationHandler
from hamlet.handlers.rooms.event_creation import EventCreator
from hamlet.handlers.rooms.membership import MEMBER, MembershipHandler
from hamlet.handlers.rooms.ratelimits import RoomRatelimiters
from hamlet.handlers.rooms.sender import Sender, fake_event_id
from hamlet.handlers.rooms.state import StateHandler
from hamlet.handlers.rooms.upgrade import RoomUpgradeHandler
from hamlet.runtime.lru import LruCache

logger = logging.getLogger(__name__)

CANONICAL_ALIAS: Final = "m.room.canonical_alias"
REDACTION: Final = "m.room.redaction"
#: Fake event IDs handed to shadow-banned senders, by transaction, so a
#: retried request gets the same answer as a real one would.
FAKE_TXN_CACHE_SIZE: Final = 10_000


def _check_room_id(room_id: str) -> None:
    if not is_room_id(room_id):
        raise InvalidParamError(f"{room_id!r} is not a room ID")


class EventPipeline:
    def __init__(
        self,
        *,
        server_name: str,
        creator: EventCreator,
        membership: MembershipHandler,
        state: StateHandler,
        creation: RoomCreationHandler,
        upgrade: RoomUpgradeHandler,
        ratelimits: RoomRatelimiters,
    ) -> None:
        self.server_name = server_name
        self._creator = creator
        self._membership = membership
        self._state = state
        self._creation = creation
        self._upgrade = upgrade
        self._ratelimits = ratelimits
        self._fake_txns: LruCache[tuple[str, str, str, str], str] = LruCache(FAKE_TXN_CACHE_SIZE)

    # Single events

    async def send(
        self,
        sender: Sender,
        room_id: str,
        event_type: str,
        content: Mapping[str, Any],
        *,
        state_key: str | None = None,
        redacts: str | None = None,
        txn_id: str | None = None,
    ) -> str:
        """Send one event (a state event when `state_key` is given); returns its ID."""
        _check_room_id(room_id)
        if event_type == MEMBER and state_key is not None:
            return await self._member_state(sender, room_id, state_key, content)
        txn = sender.txn_key(txn_id) if txn_id is not None else None
        earlier = await self._earlier_txn(room_id, txn) if txn is not None else None
        if earlier is not None:
            return earlier
        await self._membership.require_joined(sender.user_id, room_id)
        if state_key is not None:
            if event_type == CANONICAL_ALIAS and state_key == "":
                await check_canonical_alias(
                    self._membership.rooms, self.server_name, room_id, content
                )
            current = await self._state.get_current_state_event(room_id, event_type, state_key)
            if current is not None and current.sender == sender.user_id:
                if current.content == content:
                    return current.event_id
        if not sender.internal:
            await self._ratelimits.message(sender)
            if sender.shadow_banned:
                faked = fake_event_id()
                if txn is not None:
                    self._fake_txns.set((room_id, *txn), faked)
                return faked
        event = await self._creator.send(
            sender.user_id,
            room_id,
            event_type,
            content,
            state_key=state_key,
            redacts=redacts,
            txn=txn,
            origin_server_ts=sender.origin_server_ts,
        )
        return event.event_id

    async def _earlier_txn(self, room_id: str, txn: tuple[str, str, str]) -> str | None:
        """The answer a transaction already had: its event, or the fake ID it was told."""
        earlier = await self._creator.find_txn(room_id, txn)
        if earlier is not None:
            return earlier.event_id
        return self._fake_txns.get((room_id, *txn))

    async def redact(
        self,
        sender: Sender,
        room_id: str,
        event_id: str,
        *,
        reason: str | None = None,
        txn_id: str | None = None,
    ) -> str:
        content = {"reason": reason} if reason is not None else {}
        return await self.send(sender, room_id, REDACTION, content, redacts=event_id, txn_id=txn_id)

    # Membership

    async def resolve_room(self, room_id_or_alias: str) -> str:
        return await self._membership.resolve_room(room_id_or_alias)

    async def _member_state(
        self, sender: Sender, room_id: str, target: str, content: Mapping[str, Any]
    ) -> str:
        membership = content.get("membership")
        if not isinstance(membership, str):
            raise BadJsonError("membership must be a string")
        extra = {k: v for k, v in content.items() if k != "membership"}
        return await self.update_membership(sender, room_id, target, membership, extra=extra)

    async def set_own_membership(
        self, user_id: str, room_ids: Iterable[str], membership: str
    ) -> None:
        """The server sets the user's own `membership` in each room (a fresh
        join carrying a new profile, or leaving on deactivation); a room
        refusing it is logged and skipped so the others still get theirs."""
        sender = Sender.server(user_id)
        for room_id in room_ids:
            try:
                await self.update_membership(sender, room_id, user_id, membership)
            except MatrixError as e:
                logger.warning(
                    "Could not set %s's membership in %s to %s: %s",
                    user_id,
                    room_id,
                    membership,
                    e.message,
                )

    async def update_membership(
        self,
        sender: Sender,
        room_id: str,
        target: str,
        membership: str,
        *,
        action: str | None = None,
        reason: str | None = None,
        extra: Mapping[str, Any] | None = None,
    ) -> str:
        """Change `target`'s membership; `action` is the endpoint's verb (`kick`,
        `unban`, ...) when it says more than the membership does."""
        _check_room_id(room_id)
        if not sender.internal:
            if membership == "invite" and sender.shadow_banned:
                return fake_event_id()
            await self._limit_membership(sender, room_id, target, membership)
        event = await self._membership.update_membership(
            sender.user_id,
            room_id,
            target,
            membership,
            action=action,
            reason=reason,
            extra=extra,
            origin_server_ts=sender.origin_server_ts,
        )
        return event.event_id

    async def _limit_membership(
        self, sender: Sender, room_id: str, target: str, membership: str
    ) -> None:
        if membership == "join":
            current = await self._membership.rooms.get_membership(room_id, target)
            # Only a new join counts: a join event that changes the profile
            # of someone already joined is not limited (as Synapse).
            if current is None or current.membership != "join":
                await self._ratelimits.join(sender, room_id)
        elif membership == "invite":
            await self._ratelimits.invite(sender, room_id, target)
        elif membership == "knock":
            # Synapse counts a knock against the per-user action limit, not the join one.
            await self._ratelimits.message(sender)

    # Whole rooms

    async def create_room(self, sender: Sender, body: Mapping[str, Any]) -> dict[str, Any]:
        plan = await self._creation.plan(sender.user_id, body, sender.app_service_id)
        if not sender.internal:
            await self._ratelimits.room_creation_request(sender)
            if sender.shadow_banned:
                plan = dataclasses.replace(plan, invites=())
        return await self._creation.create(plan)

    async def upgrade_room(
        self, sender: Sender, room_id: str, new_version: Any, additional_creators: Any = None
    ) -> str:
        """Upgrade the room; returns the replacement room's ID."""
        _check_room_id(room_id)
        auth_state = await self._upgrade.check(
            sender.user_id, room_id, new_version, additional_creators
        )
        if not sender.internal:
            await self._ratelimits.room_creation_request(sender)
            if sender.shadow_banned:
                if KNOWN_ROOM_VERSIONS[new_version].room_id_from_create_event:
                    return "!" + fake_event_id()[1:]
                return generate_room_id(self.server_name)
        return await self._upgrade.upgrade_room(
            sender.user_id, room_id, new_version, auth_state, additional_creators or ()
        )
