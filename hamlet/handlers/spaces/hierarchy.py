"""Spaces: walking the `m.space.child` tree, and restricted join rules.

The walk is depth-first, pre-order (as the spec and Synapse): a room, then
each of its children (in the spec's child order) with its own subtree.
Each room appears once however often it is reached (cycles, duplicate
children). Which rooms appear is decided by a pluggable predicate: what a
user may see (`/hierarchy`) or everything this server knows (the admin
API). Rooms this server does not know are listed only through the child
event that points to them; nothing is fetched over federation.

Pagination is stateless: `next_batch` is an opaque, HMAC-signed token
naming the walk's parameters, the viewer, how many rooms were returned so
far and the last of them. The next page re-walks the tree and resumes after
that room (or at the count, if the room has gone), so a token can't be
forged, can't be replayed with other parameters, and outlives a restart.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import logging
import re
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import orjson

from hamlet.core.events import Event
from hamlet.core.power_levels import (
    CREATE_KEY,
    JOIN_RULES_KEY,
    POWER_LEVELS_KEY,
    AuthState,
    get_named_level,
    get_power_levels_content,
    get_user_power_level,
)
from hamlet.core.room_versions import RoomVersion, get_room_version
from hamlet.handlers.common.errors import (
    ForbiddenError,
    InvalidParamError,
    MatrixError,
    NotFoundError,
)
from hamlet.handlers.rooms.event_cache import EventCache
from hamlet.handlers.rooms.state import StateHandler
from hamlet.storage.stores.rooms import RoomsStore

logger = logging.getLogger(__name__)

SPACE_CHILD = "m.space.child"
SPACE_PARENT = "m.space.parent"
ROOM_TYPE_SPACE = "m.space"

#: Rooms per page: the default, and the most a client may ask for.
DEFAULT_LIMIT = 50
MAX_LIMIT = 50
#: Rooms visited in one walk at most, however large (or deep) the tree.
MAX_ROOMS_WALKED = 5000
#: Children of one room considered at most.
MAX_CHILDREN_PER_ROOM = 1000

# The single-valued state a summary is made of.
_SUMMARY_TYPES = (
    "m.room.create",
    "m.room.name",
    "m.room.topic",
    "m.room.avatar",
    "m.room.canonical_alias",
    "m.room.join_rules",
    "m.room.guest_access",
    "m.room.history_visibility",
    "m.room.encryption",
)

_INVALID_ORDER = re.compile(r"[^\x20-\x7E]")
_TOKEN_VERSION = 1
_ADMIN_VIEWER = "*admin"


# Restricted join rules


def has_restricted_join_rule(version: RoomVersion, join_rule: str | None) -> bool:
    if join_rule == "restricted":
        return version.restricted_join_rule
    if join_rule == "knock_restricted":
        return version.knock_restricted_join_rule
    return False


def allowed_room_ids(join_rules_content: Mapping[str, Any]) -> list[str]:
    """The rooms whose members may join a restricted room (`m.room_membership` rules)."""
    allow = join_rules_content.get("allow")
    if not isinstance(allow, list):
        return []
    rooms: list[str] = []
    for rule in allow:
        if (
            isinstance(rule, Mapping)
            and rule.get("type") == "m.room_membership"
            and isinstance(rule.get("room_id"), str)
            and rule["room_id"] not in rooms
        ):
            rooms.append(rule["room_id"])
    return rooms


def pick_join_authoriser(auth_state: AuthState, local_joined: Sequence[str]) -> str | None:
    """A local joined member who may invite, to vouch for a restricted join.

    The most powerful one is chosen (ties broken by user ID) so the choice
    is stable; None if nobody local may invite.
    """
    invite_level = get_named_level(get_power_levels_content(auth_state), "invite")
    ranked = sorted(
        ((get_user_power_level(u, auth_state), u) for u in local_joined),
        key=lambda pair: (-pair[0], pair[1]),
    )
    for level, user_id in ranked:
        if level >= invite_level:
            return user_id
    return None


class RestrictedJoins:
    """Decides whether a local user may join a restricted room, and who vouches."""

    def __init__(self, *, server_name: str, rooms: RoomsStore, state: StateHandler) -> None:
        self.server_name = server_name
        self.rooms = rooms
        self.state = state

    async def user_in_any_room(self, user_id: str, room_ids: Sequence[str]) -> bool:
        for room_id in room_ids:
            membership = await self.rooms.get_membership(room_id, user_id)
            if membership is not None and membership.membership == "join":
                return True
        return False

    async def authoriser_for_join(
        self, room_id: str, version: RoomVersion, user_id: str
    ) -> str | None:
        """None when the room's join rule isn't restricted (nothing to add).

        Otherwise the user ID to put in `join_authorised_via_users_server`;
        403 if the user is in none of the allowed rooms, 400
        M_UNABLE_TO_AUTHORISE_JOIN if that user is another server's and we
        are not in every allowed room to tell, 400 M_UNABLE_TO_GRANT_JOIN if
        no local member can vouch for them.
        """
        auth_state = await self.state.get_current_state(
            room_id, {CREATE_KEY, JOIN_RULES_KEY, POWER_LEVELS_KEY}
        )
        join_rules = auth_state.get(JOIN_RULES_KEY)
        content = join_rules.content if join_rules is not None else {}
        rule = content.get("join_rule")
        if not has_restricted_join_rule(version, rule if isinstance(rule, str) else None):
            return None
        allowed = allowed_room_ids(content)
        if not await self.user_in_any_room(user_id, allowed):
            if not user_id.endswith(":" + self.server_name):
                # Another server's user may be in an allowed room we are not in.
                for allowed_id in allowed:
                    if self.server_name not in await self.rooms.get_joined_hosts(allowed_id):
                        raise MatrixError(
                            400,
                            "M_UNABLE_TO_AUTHORISE_JOIN",
                            f"Unable to check if {user_id} is in allowed rooms.",
                        )
            raise ForbiddenError(
                "You do not belong to any of the required rooms/spaces to join this room."
            )
        suffix = ":" + self.server_name
        local = [
            m.user_id for m in await self.rooms.get_members(room_id) if m.user_id.endswith(suffix)
        ]
        authoriser = pick_join_authoriser(auth_state, local)
        if authoriser is None:
            raise MatrixError(
                400, "M_UNABLE_TO_GRANT_JOIN", "Unable to find a user which could issue an invite"
            )
        return authoriser


# The hierarchy walk


@dataclass(slots=True)
class RoomInfo:
    """What the walk knows of one local room."""

    room_id: str
    version: RoomVersion
    room_type: str | None
    #: Current single-valued state by event type (redactions applied).
    state: dict[str, Event]
    #: Valid `m.space.child` events (non-empty `via`), in the spec's order.
    children: list[Event] = field(default_factory=list)

    def content(self, event_type: str) -> Mapping[str, Any]:
        event = self.state.get(event_type)
        return event.content if event is not None else {}

    @property
    def join_rule(self) -> str | None:
        rule = self.content("m.room.join_rules").get("join_rule")
        return rule if isinstance(rule, str) else None

    @property
    def world_readable(self) -> bool:
        hv = self.content("m.room.history_visibility").get("history_visibility")
        return hv == "world_readable"


#: Whether a room should be listed (and walked into).
Predicate = Callable[[RoomInfo], Awaitable[bool]]


@dataclass(frozen=True, slots=True)
class _Position:
    offset: int
    last_room: str


def _has_valid_via(event: Event) -> bool:
    via = event.content.get("via")
    return isinstance(via, list) and bool(via) and all(isinstance(v, str) for v in via)


def _is_suggested(event: Event) -> bool:
    return event.content.get("suggested") is True


def child_order_key(event: Event) -> tuple[bool, str, int, str]:
    """Valid `order` strings first (by code point), then timestamp, then room ID."""
    order = event.content.get("order")
    if not isinstance(order, str) or len(order) > 50 or _INVALID_ORDER.search(order):
        order = None
    return order is None, order or "", event.origin_server_ts, event.state_key or ""


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).decode("ascii").rstrip("=")


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


class SpaceHierarchyHandler:
    def __init__(
        self,
        *,
        server_name: str,
        token_key: bytes,
        rooms: RoomsStore,
        state: StateHandler,
        cache: EventCache,
        restricted: RestrictedJoins,
    ) -> None:
        self.server_name = server_name
        self._token_key = hashlib.sha256(b"hamlet space hierarchy tokens\0" + token_key).digest()
        self.rooms = rooms
        self.state = state
        self.cache = cache
        self.restricted = restricted

    # Entry points

    async def get_hierarchy(
        self,
        user_id: str,
        room_id: str,
        *,
        suggested_only: bool = False,
        max_depth: int | None = None,
        limit: int | None = None,
        from_token: str | None = None,
    ) -> dict[str, Any]:
        """`GET /_matrix/client/v1/rooms/{roomId}/hierarchy` for `user_id`."""

        async def may_see(info: RoomInfo) -> bool:
            return await self.user_may_see(user_id, info)

        root = await self.load_room(room_id, suggested_only)
        if root is None or not await may_see(root):
            raise ForbiddenError(
                f"User {user_id} not in room {room_id}, and room previews are disabled"
            )
        return await self._paginate(
            room_id,
            viewer=user_id,
            may_see=may_see,
            suggested_only=suggested_only,
            max_depth=max_depth,
            limit=limit,
            from_token=from_token,
        )

    async def get_admin_hierarchy(
        self,
        room_id: str,
        *,
        suggested_only: bool = False,
        max_depth: int | None = None,
        limit: int | None = None,
        from_token: str | None = None,
    ) -> dict[str, Any]:
        """The hierarchy as this server sees it: every room it knows, in full."""

        async def known(info: RoomInfo) -> bool:
            return True

        if await self.rooms.get_room(room_id) is None:
            raise NotFoundError("Unknown room")
        return await self._paginate(
            room_id,
            viewer=_ADMIN_VIEWER,
            may_see=known,
            suggested_only=suggested_only,
            max_depth=max_depth,
            limit=limit,
            from_token=from_token,
        )

    async def user_may_see(self, user_id: str, info: RoomInfo) -> bool:
        """The spec's rule for listing a room to a (potential) joiner."""
        membership = await self.rooms.get_membership(info.room_id, user_id)
        if membership is not None and membership.membership in ("join", "invite"):
            return True
        rule = info.join_rule
        if rule == "public":
            return True
        if rule == "knock" and info.version.knock_join_rule:
            return True
        if rule == "knock_restricted" and info.version.knock_restricted_join_rule:
            return True
        if info.world_readable:
            return True
        if has_restricted_join_rule(info.version, rule):
            allowed = allowed_room_ids(info.content("m.room.join_rules"))
            return await self.restricted.user_in_any_room(user_id, allowed)
        return False

    # Loading and summarising rooms

    async def load_room(self, room_id: str, suggested_only: bool = False) -> RoomInfo | None:
        """A local room's summary state and children; None for a room we don't know."""
        row = await self.rooms.get_room(room_id)
        if row is None:
            return None
        ids = await self.state.get_current_state_ids(room_id)
        wanted = [ids[(t, "")] for t in _SUMMARY_TYPES if (t, "") in ids]
        child_ids = [eid for (t, _k), eid in ids.items() if t == SPACE_CHILD]
        loaded = await self.cache.get_many([*wanted, *child_ids])
        events: dict[str, Event] = {}
        for event_id, stored in loaded.items():
            event = stored.event
            if stored.redacted_by is not None:
                event = Event(
                    event.get_redacted_pdu_json(), event.room_version, event_id=event.event_id
                )
            events[event_id] = event
        state = {t: events[ids[(t, "")]] for t in _SUMMARY_TYPES if ids.get((t, "")) in events}
        room_type = row.room_type
        info = RoomInfo(room_id, get_room_version(row.room_version), room_type, state)
        if room_type == ROOM_TYPE_SPACE:
            children = [
                events[eid] for eid in child_ids if eid in events and _has_valid_via(events[eid])
            ]
            if suggested_only:
                children = [c for c in children if _is_suggested(c)]
            children.sort(key=child_order_key)
            info.children = children[:MAX_CHILDREN_PER_ROOM]
        return info

    async def summarize(self, info: RoomInfo) -> dict[str, Any]:
        joined = await self.rooms.get_members(info.room_id)

        def text(event_type: str, key: str) -> str | None:
            value = info.content(event_type).get(key)
            return value if isinstance(value, str) else None

        entry: dict[str, Any] = {
            "room_id": info.room_id,
            "name": text("m.room.name", "name"),
            "topic": text("m.room.topic", "topic"),
            "canonical_alias": text("m.room.canonical_alias", "alias"),
            "avatar_url": text("m.room.avatar", "url"),
            "num_joined_members": len(joined),
            "join_rule": info.join_rule,
            "world_readable": info.world_readable,
            "guest_can_join": text("m.room.guest_access", "guest_access") == "can_join",
            "room_type": info.room_type,
            "room_version": info.version.identifier,
            "encryption": text("m.room.encryption", "algorithm"),
        }
        summary = {k: v for k, v in entry.items() if v is not None}
        summary["children_state"] = [
            {
                "type": child.type,
                "state_key": child.state_key,
                "content": dict(child.content),
                "sender": child.sender,
                "origin_server_ts": child.origin_server_ts,
            }
            for child in info.children
        ]
        return summary

    # The walk and its pages

    async def walk(
        self,
        root_id: str,
        may_see: Predicate,
        *,
        suggested_only: bool,
        max_depth: int | None,
    ) -> AsyncIterator[RoomInfo]:
        """The listed rooms of the tree under `root_id`, depth-first, each once."""
        stack: list[tuple[str, int]] = [(root_id, 0)]
        processed: set[str] = set()
        while stack:
            room_id, depth = stack.pop()
            if room_id in processed:
                continue
            processed.add(room_id)
            if len(processed) > MAX_ROOMS_WALKED:
                logger.warning("Space hierarchy of %s is too large; stopped walking", root_id)
                return
            info = await self.load_room(room_id, suggested_only)
            if info is None or not await may_see(info):
                continue
            yield info
            if max_depth is None or depth < max_depth:
                # Pushed in reverse so the first child is walked next.
                stack.extend(
                    (child.state_key, depth + 1)
                    for child in reversed(info.children)
                    if child.state_key is not None and child.state_key not in processed
                )

    async def _paginate(
        self,
        root_id: str,
        *,
        viewer: str,
        may_see: Predicate,
        suggested_only: bool,
        max_depth: int | None,
        limit: int | None,
        from_token: str | None,
    ) -> dict[str, Any]:
        if limit is None:
            limit = DEFAULT_LIMIT
        elif limit <= 0:
            raise InvalidParamError("limit must be a positive integer")
        limit = min(limit, MAX_LIMIT)
        if max_depth is not None and max_depth < 0:
            raise InvalidParamError("max_depth must be a non-negative integer")
        params = [root_id, suggested_only, max_depth, viewer]
        position = self._parse_token(from_token, params) if from_token is not None else None

        listed: list[RoomInfo] = []
        start: int | None = 0 if position is None else None
        async for info in self.walk(
            root_id, may_see, suggested_only=suggested_only, max_depth=max_depth
        ):
            listed.append(info)
            if position is not None and start is None and info.room_id == position.last_room:
                start = len(listed)
            if start is not None and len(listed) > start + limit:
                break
        if start is None:
            # The last room of the previous page has gone: fall back to the count.
            assert position is not None
            start = min(position.offset, len(listed))
        page = listed[start : start + limit]
        response: dict[str, Any] = {"rooms": [await self.summarize(info) for info in page]}
        if len(listed) > start + limit:
            offset = start + len(page)
            response["next_batch"] = self._make_token(params, offset, page[-1].room_id)
        return response

    # Tokens

    def _sign(self, payload: bytes) -> str:
        return _b64(hmac.new(self._token_key, payload, hashlib.sha256).digest()[:16])

    def _make_token(self, params: list[Any], offset: int, last_room: str) -> str:
        payload = orjson.dumps([_TOKEN_VERSION, *params, offset, last_room])
        return f"{_b64(payload)}.{self._sign(payload)}"

    def _parse_token(self, token: str, params: list[Any]) -> _Position:
        bad = InvalidParamError("Unknown pagination token")
        encoded, _, signature = token.partition(".")
        try:
            payload = _unb64(encoded)
        except (binascii.Error, ValueError):
            raise bad from None
        if not signature or not hmac.compare_digest(signature, self._sign(payload)):
            raise bad
        try:
            fields = orjson.loads(payload)
        except orjson.JSONDecodeError:
            raise bad from None
        n = len(params)
        if (
            not isinstance(fields, list)
            or len(fields) != n + 3
            or fields[0] != _TOKEN_VERSION
            or not isinstance(fields[n + 1], int)
            or not isinstance(fields[n + 2], str)
        ):
            raise bad
        if fields[1 : n + 1] != params:
            raise InvalidParamError(
                "suggested_only and max_depth cannot change on paginated requests"
            )
        return _Position(fields[n + 1], fields[n + 2])
