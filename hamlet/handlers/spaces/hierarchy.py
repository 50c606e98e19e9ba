"""Spaces: walking the `m.space.child` tree, and restricted join rules.

The walk is depth-first, pre-order (as the spec and Synapse): a room, then
each of its children (in the spec's child order) with its own subtree.
Each room appears once however often it is reached (cycles, duplicate
children). Which rooms appear is decided by a pluggable predicate: what a
user may see (`/hierarchy`) or everything this server knows (the admin
API). For a client, a child room this server is not in is asked of the
servers its `m.space.child` event names (`remote.py`, through an attached
`RemoteSpaces`: bounded per walk, cached briefly) and listed with their
summary; the admin walk never asks anyone, so rooms this server does not
know appear there only through the child events pointing at them.
Other servers ask for a space's summary and children through
`get_federation_hierarchy`, seeing what a server may (Synapse's rule).

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
from hamlet.handlers.spaces.remote import (
    ChildLink,
    RemoteRoom,
    RemoteSpaces,
    RequestBudget,
    child_order_key,
    valid_via,
)
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
#: Children summarised in one answer to another server (Synapse's bound).
MAX_FEDERATION_CHILDREN = 50
#: Requests to other servers one client walk may make.
MAX_REMOTE_REQUESTS = 10

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
        are not in every allowed room to tell (their membership in a room
        we are not in does not count: we no longer hear of it), 400 M_UNABLE_TO_GRANT_JOIN if
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
        suffix = ":" + self.server_name
        known = allowed
        if not user_id.endswith(suffix):
            # Another server's membership in a room none of our users is in
            # (any longer) is stale or unknown to us: we cannot tell.
            known = [r for r in allowed if self.server_name in await self.rooms.get_joined_hosts(r)]
        if not await self.user_in_any_room(user_id, known):
            if len(known) < len(allowed):
                raise MatrixError(
                    400,
                    "M_UNABLE_TO_AUTHORISE_JOIN",
                    f"Unable to check if {user_id} is in allowed rooms.",
                )
            raise ForbiddenError(
                "You do not belong to any of the required rooms/spaces to join this room."
            )
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
    def links(self) -> list[ChildLink]:
        return [ChildLink(c.state_key or "", valid_via(c.content)) for c in self.children]

    @property
    def join_rule(self) -> str | None:
        rule = self.content("m.room.join_rules").get("join_rule")
        return rule if isinstance(rule, str) else None

    @property
    def world_readable(self) -> bool:
        hv = self.content("m.room.history_visibility").get("history_visibility")
        return hv == "world_readable"


#: A room the walk lists: known here, or summarised by another server.
Listed = RoomInfo | RemoteRoom
#: Whether a room should be listed (and walked into).
Predicate = Callable[[Listed], Awaitable[bool]]


@dataclass(frozen=True, slots=True)
class _Position:
    offset: int
    last_room: str


def _has_valid_via(event: Event) -> bool:
    via = event.content.get("via")
    return isinstance(via, list) and bool(via) and all(isinstance(v, str) for v in via)


def _is_suggested(event: Event) -> bool:
    return event.content.get("suggested") is True


def _event_order_key(event: Event) -> tuple[bool, str, int, str]:
    return child_order_key(event.content, event.origin_server_ts, event.state_key or "")


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
        self._remote: RemoteSpaces | None = None

    def attach_remote(self, remote: RemoteSpaces) -> None:
        """How client walks reach rooms this server is not in (the federation
        package's, built after this one); until then they are left out."""
        self._remote = remote

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

        async def may_see(entry: Listed) -> bool:
            if isinstance(entry, RemoteRoom):
                return await self.user_may_see_remote(user_id, entry)
            return await self.user_may_see(user_id, entry)

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
            remote=self._remote,
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

        async def known(entry: Listed) -> bool:
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
            remote=None,
        )

    async def get_federation_hierarchy(
        self, origin: str, room_id: str, *, suggested_only: bool
    ) -> dict[str, Any]:
        """`GET /_matrix/federation/v1/hierarchy/{roomId}` for `origin`: the
        room and its children that server may see; children it may not see
        but that we know are `inaccessible_children`, others are left out."""
        root = await self.load_room(room_id, suggested_only)
        if root is None or not await self.server_may_see(origin, root):
            raise NotFoundError(f"Unknown room: {room_id}")
        children: list[dict[str, Any]] = []
        inaccessible: list[str] = []
        for link in root.links[:MAX_FEDERATION_CHILDREN]:
            info = await self.load_room(link.room_id, suggested_only)
            if info is None:
                continue
            if await self.server_may_see(origin, info):
                summary = await self.summarize(info, for_server=True)
                del summary["children_state"]
                children.append(summary)
            else:
                inaccessible.append(info.room_id)
        return {
            "room": await self.summarize(root, for_server=True),
            "children": children,
            "inaccessible_children": inaccessible,
        }

    async def server_may_see(self, origin: str, info: RoomInfo) -> bool:
        """Synapse's rule for another server: what anyone may peek at or
        join, and rooms (or restricted rooms' allowed rooms) it is in."""
        if self._open_to_anyone(info):
            return True
        if origin in await self.rooms.get_joined_hosts(info.room_id):
            return True
        if has_restricted_join_rule(info.version, info.join_rule):
            for allowed in allowed_room_ids(info.content("m.room.join_rules")):
                if origin in await self.rooms.get_joined_hosts(allowed):
                    return True
        return False

    async def user_may_see_remote(self, user_id: str, room: RemoteRoom) -> bool:
        """Synapse's rule for a room summarised by another server: open to
        anyone, or restricted to rooms the user is in, or one the user is
        joined or invited to here."""
        summary = room.summary
        if summary.get("join_rule", "public") in ("public", "knock", "knock_restricted"):
            return True
        if summary.get("world_readable") is True:
            return True
        allowed = summary.get("allowed_room_ids", [])
        if allowed and await self.restricted.user_in_any_room(user_id, allowed):
            return True
        membership = await self.rooms.get_membership(room.room_id, user_id)
        return membership is not None and membership.membership in ("join", "invite")

    def _open_to_anyone(self, info: RoomInfo) -> bool:
        rule = info.join_rule
        if rule == "public" or info.world_readable:
            return True
        if rule == "knock" and info.version.knock_join_rule:
            return True
        return rule == "knock_restricted" and info.version.knock_restricted_join_rule

    async def user_may_see(self, user_id: str, info: RoomInfo) -> bool:
        """The spec's rule for listing a room to a (potential) joiner."""
        membership = await self.rooms.get_membership(info.room_id, user_id)
        if membership is not None and membership.membership in ("join", "invite"):
            return True
        if self._open_to_anyone(info):
            return True
        if has_restricted_join_rule(info.version, info.join_rule):
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
            children.sort(key=_event_order_key)
            info.children = children[:MAX_CHILDREN_PER_ROOM]
        return info

    async def summarize(self, info: RoomInfo, *, for_server: bool = False) -> dict[str, Any]:
        """The room's summary; `for_server` adds a restricted room's allowed
        rooms, with which the asking server judges its own users."""
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
        if for_server and has_restricted_join_rule(info.version, info.join_rule):
            summary["allowed_room_ids"] = allowed_room_ids(info.content("m.room.join_rules"))
        return summary

    async def _client_summary(self, entry: Listed) -> dict[str, Any]:
        if isinstance(entry, RemoteRoom):
            return entry.client_summary()
        return await self.summarize(entry)

    # The walk and its pages

    async def walk(
        self,
        root_id: str,
        may_see: Predicate,
        *,
        suggested_only: bool,
        max_depth: int | None,
        remote: RemoteSpaces | None = None,
    ) -> AsyncIterator[Listed]:
        """The listed rooms of the tree under `root_id`, depth-first, each
        once; with `remote`, children this server is not in are asked of
        their `via` servers."""
        stack: list[tuple[ChildLink, int]] = [(ChildLink(root_id, ()), 0)]
        processed: set[str] = set()
        lookup = _RemoteLookup(remote, suggested_only) if remote is not None else None
        while stack:
            link, depth = stack.pop()
            if link.room_id in processed:
                continue
            processed.add(link.room_id)
            if len(processed) > MAX_ROOMS_WALKED:
                logger.warning("Space hierarchy of %s is too large; stopped walking", root_id)
                return
            entry: Listed | None = None
            if lookup is not None and link.via and not await self._joined_here(link.room_id):
                entry = await lookup.room(link)
            if entry is None:
                entry = await self.load_room(link.room_id, suggested_only)
            if entry is None or not await may_see(entry):
                continue
            yield entry
            if max_depth is None or depth < max_depth:
                links = entry.links if isinstance(entry, RoomInfo) else entry.children
                # Pushed in reverse so the first child is walked next.
                stack.extend(
                    (child, depth + 1)
                    for child in reversed(links)
                    if child.room_id and child.room_id not in processed
                )

    async def _joined_here(self, room_id: str) -> bool:
        return self.server_name in await self.rooms.get_joined_hosts(room_id)

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
        remote: RemoteSpaces | None,
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

        listed: list[Listed] = []
        start: int | None = 0 if position is None else None
        async for info in self.walk(
            root_id, may_see, suggested_only=suggested_only, max_depth=max_depth, remote=remote
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
        response: dict[str, Any] = {"rooms": [await self._client_summary(e) for e in page]}
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


class _RemoteLookup:
    """One client walk's view of other servers: a request budget, and the
    children summaries a remote space's answer already gave."""

    def __init__(self, remote: RemoteSpaces, suggested_only: bool) -> None:
        self._remote = remote
        self._suggested_only = suggested_only
        self._budget = RequestBudget(MAX_REMOTE_REQUESTS)
        self._known: dict[str, RemoteRoom] = {}
        # Children a remote server says nobody here can reach: never asked about.
        self._inaccessible: set[str] = set()

    async def room(self, link: ChildLink) -> RemoteRoom | None:
        if link.room_id in self._inaccessible:
            return None
        known = self._known.get(link.room_id)
        # A child space's summary lacks its children: only its own answer has them.
        if known is not None and known.room_type != ROOM_TYPE_SPACE:
            return known
        answer = await self._remote.fetch(
            link.room_id, link.via, self._suggested_only, self._budget
        )
        if answer is None:
            return known
        self._known.update(answer.children)
        self._inaccessible.update(answer.inaccessible)
        return answer.room
