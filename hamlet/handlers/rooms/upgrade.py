"""`POST /rooms/{roomId}/upgrade`: replace a room with a new one of another version.

Follows the spec's server behaviour and Synapse's choices:

1. the upgrader must be joined and allowed to send `m.room.tombstone`;
2. the replacement room's create event names its `predecessor` and keeps
   the old room's `type` (and `m.federate: false`);
3. the transferable state is copied (Synapse's list: join rules, name,
   topic, history visibility, guest access, avatar, encryption, server ACL,
   power levels; a space's `m.space.child` events) and bans are replayed.
   The upgrader is raised to the level that copying needs and restored at
   the end; a v12 room's creators (the upgrader and the request's
   `additional_creators`) outrank everyone instead and are left out of its
   power levels;
4. the tombstone goes into the old room, local aliases move (and the
   canonical alias with them), the directory listing moves;
5. the old room's power levels are raised so that ordinary members can
   neither speak nor invite (`events_default` and `invite` to the greater of
   50 and `users_default + 1`).

Nobody is invited: members follow the tombstone and join themselves.
"""

from __future__ import annotations

import copy
import logging
from collections.abc import Mapping, Sequence
from collections.abc import Set as AbstractSet
from typing import Any

from hamlet.core.auth_rules import get_membership
from hamlet.core.events import Event
from hamlet.core.ids import UserID, get_domain_from_id
from hamlet.core.power_levels import (
    CREATE_KEY,
    POWER_LEVELS_KEY,
    AuthState,
    as_int,
    get_room_creators,
    user_can_send,
)
from hamlet.core.room_versions import KNOWN_ROOM_VERSIONS
from hamlet.handlers.common.errors import (
    ForbiddenError,
    InvalidParamError,
    MatrixError,
    NotFoundError,
)
from hamlet.handlers.rooms.event_creation import EventCreator
from hamlet.handlers.rooms.membership import MembershipHandler
from hamlet.handlers.rooms.state import StateHandler
from hamlet.storage.stores.events import EventsStore
from hamlet.storage.stores.rooms import RoomsStore

logger = logging.getLogger(__name__)

TOMBSTONE = "m.room.tombstone"
CANONICAL_ALIAS = "m.room.canonical_alias"
SPACE_CHILD = "m.space.child"
#: The state a replacement room inherits, in the order it is sent (power
#: levels are sent first, separately).
COPIED_STATE = (
    "m.room.join_rules",
    "m.room.name",
    "m.room.topic",
    "m.room.history_visibility",
    "m.room.guest_access",
    "m.room.avatar",
    "m.room.encryption",
    "m.room.server_acl",
)
TOMBSTONE_BODY = "This room has been replaced"
MAX_ADDITIONAL_CREATORS = 100


def _level_needed_to_copy(power_levels: Mapping[str, Any]) -> int:
    """The level that sending every copied state event (and the bans) needs."""
    events = power_levels.get("events")
    event_levels = [as_int(v, 0) for v in events.values()] if isinstance(events, Mapping) else []
    return max(
        as_int(power_levels.get("state_default"), 50),
        as_int(power_levels.get("ban"), 50),
        max(event_levels, default=0),
    )


def _without_users(
    power_levels: Mapping[str, Any], creators: AbstractSet[str] | None
) -> dict[str, Any]:
    """A copy of power levels content with a `users` map that lists no creator."""
    content = copy.deepcopy(dict(power_levels))
    users = content.get("users")
    content["users"] = {
        u: level
        for u, level in (users.items() if isinstance(users, dict) else ())
        if creators is None or u not in creators
    }
    return content


class RoomUpgradeHandler:
    def __init__(
        self,
        *,
        server_name: str,
        creator: EventCreator,
        membership: MembershipHandler,
        state: StateHandler,
        rooms: RoomsStore,
        events: EventsStore,
    ) -> None:
        self.server_name = server_name
        self.creator = creator
        self.membership = membership
        self.state = state
        self.rooms = rooms
        self.events = events
        #: Rooms being upgraded now: a second upgrade waits for no one, it is refused.
        self._in_progress: set[str] = set()

    async def check(
        self, user_id: str, room_id: str, new_version: Any, additional_creators: Any = None
    ) -> AuthState:
        """Refuse an upgrade the user may not make; returns the old room's auth state."""
        if not isinstance(new_version, str) or new_version not in KNOWN_ROOM_VERSIONS:
            raise MatrixError(
                400,
                "M_UNSUPPORTED_ROOM_VERSION",
                f"Your homeserver does not support room version {new_version!r}",
            )
        if additional_creators is not None and not (
            isinstance(additional_creators, list)
            and len(additional_creators) <= MAX_ADDITIONAL_CREATORS
            and all(isinstance(u, str) and UserID.is_valid(u) for u in additional_creators)
        ):
            raise InvalidParamError("additional_creators must be a list of user IDs")
        if await self.rooms.get_room(room_id) is None:
            raise NotFoundError(f"Unknown room id {room_id}")
        auth_state = await self.state.get_current_state(
            room_id, {CREATE_KEY, POWER_LEVELS_KEY, ("m.room.member", user_id)}
        )
        if get_membership(auth_state, user_id) != "join":
            raise ForbiddenError(f"User {user_id} not in room {room_id}")
        if not user_can_send(user_id, TOMBSTONE, True, auth_state):
            raise ForbiddenError("You don't have permission to upgrade the room")
        return auth_state

    async def upgrade_room(
        self,
        user_id: str,
        room_id: str,
        new_version: str,
        auth_state: AuthState,
        additional_creators: Sequence[str] = (),
    ) -> str:
        """Make the upgrade `check` allowed; returns the new room's ID."""
        if room_id in self._in_progress:
            raise MatrixError(400, "M_UNKNOWN", "An upgrade for this room is currently in progress")
        self._in_progress.add(room_id)
        try:
            return await self._upgrade(user_id, room_id, new_version, additional_creators)
        finally:
            self._in_progress.discard(room_id)

    async def _upgrade(
        self, user_id: str, old_room_id: str, new_version: str, additional_creators: Sequence[str]
    ) -> str:
        old_state = await self.state.get_current_state(old_room_id)
        old_room = await self.rooms.get_room(old_room_id)
        assert old_room is not None
        version = KNOWN_ROOM_VERSIONS[new_version]
        send = self.creator.send

        # The create event, naming its predecessor by the old room's newest event.
        latest = await self.events.get_latest(old_room_id)
        predecessor: dict[str, Any] = {"room_id": old_room_id}
        if latest is not None:
            predecessor["event_id"] = latest[0]
        create_content: dict[str, Any] = {"room_version": new_version, "predecessor": predecessor}
        if not version.creator_from_sender:
            create_content["creator"] = user_id
        if version.room_id_from_create_event and additional_creators:
            create_content["additional_creators"] = list(dict.fromkeys(additional_creators))
        old_create = old_state.get(CREATE_KEY)
        if old_create is not None:
            room_type = old_create.content.get("type")
            if room_type is not None:
                create_content["type"] = room_type
            if old_create.content.get("m.federate", True) is False:
                create_content["m.federate"] = False
        planned = await self.creator.new_room(user_id, version, create_content)
        create = await self.creator.send_create(user_id, version, create_content, planned)
        new_room_id = create.room_id
        await self.membership.update_membership(user_id, new_room_id, user_id, "join")

        # Power levels, with the upgrader raised (if needed) to copy everything;
        # from v12 the creators outrank everyone and may not be listed.
        old_pl = old_state.get(POWER_LEVELS_KEY)
        creators = get_room_creators(create) if version.room_id_from_create_event else None
        raised = False
        if old_pl is not None:
            pl_content = _without_users(old_pl.content, creators)
            needed = _level_needed_to_copy(pl_content)
            users = pl_content["users"]
            current = as_int(users.get(user_id, pl_content.get("users_default", 0)), 0)
            if creators is None and current < needed:
                users[user_id] = needed
                raised = True
            await send(user_id, new_room_id, "m.room.power_levels", pl_content, state_key="")

        for event_type in COPIED_STATE:
            event = old_state.get((event_type, ""))
            if event is not None:
                await send(user_id, new_room_id, event_type, dict(event.content), state_key="")
        if create_content.get("type") == "m.space":
            for (event_type, state_key), event in sorted(old_state.items()):
                # A child event with empty content was removed from the space.
                if event_type == SPACE_CHILD and event.content:
                    await send(
                        user_id, new_room_id, event_type, dict(event.content), state_key=state_key
                    )

        for (event_type, state_key), event in sorted(old_state.items()):
            if event_type == "m.room.member" and event.content.get("membership") == "ban":
                extra = {k: v for k, v in event.content.items() if k != "membership"}
                try:
                    await self.membership.update_membership(
                        user_id, new_room_id, state_key, "ban", action="ban", extra=extra
                    )
                except MatrixError as e:
                    logger.warning(
                        "Could not copy the ban of %s to %s: %s", state_key, new_room_id, e
                    )

        await send(
            user_id,
            old_room_id,
            TOMBSTONE,
            {"body": TOMBSTONE_BODY, "replacement_room": new_room_id},
            state_key="",
        )
        await self._move_aliases(
            user_id, old_room_id, new_room_id, old_state.get((CANONICAL_ALIAS, ""))
        )
        if old_room.is_public:
            await self.rooms.set_room_public(old_room_id, False)
            await self.rooms.set_room_public(new_room_id, True)
        if old_pl is not None:
            await self._restrict_old_room(user_id, old_room_id, old_pl.content)
            if raised:
                # Restore the upgrader's own level in the new room.
                await send(
                    user_id,
                    new_room_id,
                    "m.room.power_levels",
                    _without_users(old_pl.content, creators),
                    state_key="",
                )
        return new_room_id

    def _is_mine(self, alias: Any) -> bool:
        if not isinstance(alias, str):
            return False
        try:
            return get_domain_from_id(alias) == self.server_name
        except Exception:
            return False

    async def _move_aliases(
        self, user_id: str, old_room_id: str, new_room_id: str, canonical: Event | None
    ) -> None:
        """Local aliases now lead to the new room; so does the canonical alias (local ones)."""
        await self.rooms.move_aliases(old_room_id, new_room_id)
        if canonical is None:
            return
        old_content = dict(canonical.content)
        new_content: dict[str, Any] = {}
        if self._is_mine(old_content.get("alias")):
            new_content["alias"] = old_content.pop("alias")
        alt = old_content.get("alt_aliases")
        if isinstance(alt, list) and alt:
            new_content["alt_aliases"] = [a for a in alt if self._is_mine(a)]
            old_content["alt_aliases"] = [a for a in alt if not self._is_mine(a)]
        for room, content in ((old_room_id, old_content), (new_room_id, new_content)):
            try:
                await self.creator.send(user_id, room, CANONICAL_ALIAS, content, state_key="")
            except MatrixError as e:
                logger.warning("Could not update the canonical alias of %s: %s", room, e)

    async def _restrict_old_room(
        self, user_id: str, room_id: str, pl_content: Mapping[str, Any]
    ) -> None:
        """Stop ordinary members speaking and inviting in the old room."""
        content = copy.deepcopy(dict(pl_content))
        restricted = max(as_int(content.get("users_default"), 0) + 1, 50)
        updated = False
        for key in ("invite", "events_default"):
            if as_int(content.get(key), 0) < restricted:
                content[key] = restricted
                updated = True
        if not updated:
            return
        try:
            await self.creator.send(user_id, room_id, "m.room.power_levels", content, state_key="")
        except MatrixError as e:
            logger.warning("Unable to update power levels in old room %s: %s", room_id, e)
