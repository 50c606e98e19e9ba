"""Room aliases and the published room directory."""

from __future__ import annotations

import base64
import binascii
import logging
from collections.abc import Mapping
from typing import Any

import orjson

from hamlet.core.ids import RoomAlias, is_room_id
from hamlet.core.power_levels import (
    get_power_levels_content,
    get_required_level,
    get_user_power_level,
)
from hamlet.handlers.appservice.queries import AppServiceQueries
from hamlet.handlers.appservice.registry import AppServices
from hamlet.handlers.common.errors import (
    ForbiddenError,
    InvalidParamError,
    MatrixError,
    NotFoundError,
)
from hamlet.handlers.common.requester import Requester
from hamlet.handlers.history.visibility import HISTORY_KEY
from hamlet.handlers.rooms.directory_rules import DirectoryRuleSets
from hamlet.handlers.rooms.pipeline import EventPipeline
from hamlet.handlers.rooms.sender import Sender
from hamlet.handlers.rooms.state import StateHandler
from hamlet.storage.stores.rooms import RoomsStore
from hamlet.storage.stores.user_directory import UserDirectoryStore

logger = logging.getLogger(__name__)

MAX_ALIAS_LENGTH = 255
CANONICAL_ALIAS = "m.room.canonical_alias"

_PUBLIC_ROOM_STATE = {
    ("m.room.create", ""),
    ("m.room.name", ""),
    ("m.room.topic", ""),
    (CANONICAL_ALIAS, ""),
    ("m.room.avatar", ""),
    ("m.room.join_rules", ""),
    ("m.room.guest_access", ""),
    HISTORY_KEY,
}


def _str(content: Mapping[str, Any], key: str) -> str | None:
    value = content.get(key)
    return value if isinstance(value, str) else None


def _encode_since(forward: bool, entry: Mapping[str, Any]) -> str:
    raw = orjson.dumps(["f" if forward else "b", entry["num_joined_members"], entry["room_id"]])
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def _decode_since(token: str) -> tuple[bool, tuple[int, str]]:
    """(forward, sort key of the entry the token is next to)."""
    try:
        raw = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4))
        direction, count, room_id = orjson.loads(raw)
    except (binascii.Error, orjson.JSONDecodeError, ValueError, TypeError):
        raise InvalidParamError("Invalid 'since' token") from None
    if direction not in ("f", "b") or not isinstance(count, int) or not isinstance(room_id, str):
        raise InvalidParamError("Invalid 'since' token")
    return direction == "f", (-count, room_id)


def _sort_key(entry: Mapping[str, Any]) -> tuple[int, str]:
    return -int(entry["num_joined_members"]), str(entry["room_id"])


class DirectoryHandler:
    def __init__(
        self,
        *,
        server_name: str,
        rooms: RoomsStore,
        state: StateHandler,
        rules: DirectoryRuleSets,
        pipeline: EventPipeline | None = None,
        counts: UserDirectoryStore | None = None,
        app_services: AppServices | None = None,
        app_service_queries: AppServiceQueries | None = None,
    ) -> None:
        self.server_name = server_name
        self.rules = rules
        self.app_service_queries = app_service_queries
        self.app_services = app_services or AppServices((), server_name)
        self.rooms = rooms
        self.state = state
        self.pipeline = pipeline
        self.counts = counts

    def _local_alias(self, alias: str) -> RoomAlias:
        if not RoomAlias.is_valid(alias):
            raise InvalidParamError(f"{alias!r} is not a valid room alias")
        parsed = RoomAlias.from_string(alias)
        if parsed.domain != self.server_name:
            raise InvalidParamError("Room alias must be local")
        return parsed

    async def _is_joined(self, user_id: str, room_id: str) -> bool:
        membership = await self.rooms.get_membership(room_id, user_id)
        return membership is not None and membership.membership == "join"

    async def can_change_room_list(self, requester: Requester, room_id: str) -> bool:
        """Server admins, and joined members who may set the canonical alias (like Synapse)."""
        if requester.is_admin:
            return True
        if not await self._is_joined(requester.user_id, room_id):
            return False
        state = await self.state.get_current_state(
            room_id, {("m.room.create", ""), ("m.room.power_levels", "")}
        )
        needed = get_required_level(CANONICAL_ALIAS, True, get_power_levels_content(state))
        return get_user_power_level(requester.user_id, state) >= needed

    # Aliases

    async def create_alias(self, requester: Requester, alias: str, room_id: str) -> None:
        if len(alias) > MAX_ALIAS_LENGTH:
            raise InvalidParamError(
                f"Can't create aliases longer than {MAX_ALIAS_LENGTH} characters"
            )
        self._local_alias(alias)
        if not is_room_id(room_id):
            raise InvalidParamError(f"{room_id!r} is not a room ID")
        self.app_services.check_alias_available(
            alias, self.app_services.by_id(requester.app_service_id or "")
        )
        if await self.rooms.get_room(room_id) is None:
            raise NotFoundError("Unknown room")
        if not requester.is_admin and not await self._is_joined(requester.user_id, room_id):
            raise ForbiddenError("You must be in the room to create an alias for it")
        if not self.rules.aliases.allows(requester.user_id, room_id, [alias]):
            raise ForbiddenError("Not allowed to create alias")
        if not await self.rooms.create_alias(alias, room_id, requester.user_id):
            raise MatrixError(409, "M_UNKNOWN", f"Room alias {alias} already exists")

    async def get_alias(self, alias: str) -> dict[str, Any]:
        """The room an alias we hold points at, and the servers to join it
        through: ours first, then every other server with a joined member."""
        if not RoomAlias.is_valid(alias):
            raise InvalidParamError(f"{alias!r} is not a valid room alias")
        queries = self.app_service_queries
        if queries is None:
            found = await self.rooms.get_alias(alias)
        else:
            found = await queries.find_alias(alias, self.rooms.get_alias)
        if found is None:
            raise NotFoundError(f"Room alias {alias} not found")
        room_id = found[0]
        others = {m.user_id.partition(":")[2] for m in await self.rooms.get_members(room_id)} - {
            self.server_name
        }
        return {"room_id": room_id, "servers": [self.server_name, *sorted(others)]}

    async def federation_alias(self, alias: str) -> dict[str, Any]:
        """`GET /_matrix/federation/v1/query/directory`: only our own aliases."""
        self._local_alias(alias)
        return await self.get_alias(alias)

    async def delete_alias(self, requester: Requester, alias: str) -> None:
        self._local_alias(alias)
        found = await self.rooms.get_alias(alias)
        if found is None:
            raise NotFoundError(f"Room alias {alias} not found")
        room_id, creator = found
        if creator != requester.user_id and not await self.can_change_room_list(requester, room_id):
            raise ForbiddenError("You don't have permission to delete the alias")
        await self.rooms.delete_alias(alias)
        await self._drop_from_canonical_alias(requester, room_id, alias)

    async def _drop_from_canonical_alias(
        self, requester: Requester, room_id: str, alias: str
    ) -> None:
        """Like Synapse: a deleted alias is also removed from m.room.canonical_alias
        (by the deleter, so not if they are shadow-banned or may not)."""
        if self.pipeline is None:
            return
        event = await self.state.get_current_state_event(room_id, CANONICAL_ALIAS, "")
        if event is None:
            return
        content = dict(event.content)
        changed = False
        if content.get("alias") == alias:
            del content["alias"]
            changed = True
        alt = content.get("alt_aliases")
        if isinstance(alt, list) and alias in alt:
            content["alt_aliases"] = [a for a in alt if a != alias]
            changed = True
        if not changed:
            return
        try:
            await self.pipeline.send(
                Sender.of(requester), room_id, CANONICAL_ALIAS, content, state_key=""
            )
        except MatrixError as e:
            logger.info(
                "Could not remove %s from the canonical alias of %s: %s", alias, room_id, e.message
            )

    async def get_room_aliases(self, user_id: str, room_id: str) -> list[str]:
        if await self.rooms.get_room(room_id) is None:
            raise ForbiddenError(f"User {user_id} not in room {room_id}")
        if not await self._is_joined(user_id, room_id):
            hv = await self.state.get_current_state_event(room_id, *HISTORY_KEY)
            if hv is None or hv.content.get("history_visibility") != "world_readable":
                raise ForbiddenError(f"User {user_id} not in room {room_id}")
        return await self.rooms.get_aliases_for_room(room_id)

    # The published room list

    async def get_visibility(self, room_id: str) -> str:
        room = await self.rooms.get_room(room_id)
        if room is None:
            raise NotFoundError("Unknown room")
        return "public" if room.is_public else "private"

    async def set_visibility(self, requester: Requester, room_id: str, visibility: Any) -> None:
        if visibility not in ("public", "private"):
            raise InvalidParamError("visibility must be 'public' or 'private'")
        room = await self.rooms.get_room(room_id)
        if room is None:
            raise NotFoundError("Unknown room")
        if not await self.can_change_room_list(requester, room_id):
            raise ForbiddenError("You don't have permission to change the room list")
        if room.blocked and visibility == "public":
            raise ForbiddenError("This room has been blocked on this server")
        if visibility == "public":
            aliases = await self.rooms.get_aliases_for_room(room_id)
            canonical = await self.state.get_current_state_event(room_id, CANONICAL_ALIAS, "")
            alias = canonical.content.get("alias") if canonical is not None else None
            if isinstance(alias, str):
                aliases.append(alias)
            if not self.rules.publication.allows(requester.user_id, room_id, aliases):
                raise ForbiddenError("Not allowed to publish room")
        await self.rooms.set_room_public(room_id, visibility == "public")

    async def _public_room_entry(self, room_id: str, joined: int) -> dict[str, Any]:
        state = await self.state.get_current_state(room_id, _PUBLIC_ROOM_STATE)

        def content(event_type: str) -> Mapping[str, Any]:
            event = state.get((event_type, ""))
            return event.content if event is not None else {}

        entry: dict[str, Any] = {
            "room_id": room_id,
            "num_joined_members": joined,
            "world_readable": content(HISTORY_KEY[0]).get("history_visibility") == "world_readable",
            "guest_can_join": content("m.room.guest_access").get("guest_access") == "can_join",
        }
        for key, event_type, field in (
            ("name", "m.room.name", "name"),
            ("topic", "m.room.topic", "topic"),
            ("canonical_alias", CANONICAL_ALIAS, "alias"),
            ("avatar_url", "m.room.avatar", "url"),
            ("join_rule", "m.room.join_rules", "join_rule"),
            ("room_type", "m.room.create", "type"),
        ):
            value = _str(content(event_type), field)
            if value:
                entry[key] = value
        return entry

    async def public_rooms(
        self,
        *,
        server: str | None,
        limit: int | None,
        since: str | None,
        search_term: str | None,
        room_types: list[str | None] | None,
    ) -> dict[str, Any]:
        if server is not None and server != self.server_name:
            raise InvalidParamError("Only this server's room directory can be listed")
        if limit is not None and limit < 0:
            raise InvalidParamError("limit must not be negative")
        position = _decode_since(since) if since else None
        room_ids = await self.rooms.get_public_room_ids()
        counts = await self.counts.count_joined_members(room_ids) if self.counts else {}
        entries = [await self._public_room_entry(r, counts.get(r, 0)) for r in room_ids]
        if search_term:
            needle = search_term.strip().lower()
            entries = [
                e
                for e in entries
                if any(
                    needle in str(e.get(k, "")).lower()
                    for k in ("name", "topic", "canonical_alias")
                )
            ]
        if room_types is not None:
            entries = [e for e in entries if e.get("room_type") in room_types]
        entries.sort(key=_sort_key)
        total = len(entries)
        if position is None:
            begin, end = 0, total
        else:
            forward, key = position
            split = sum(1 for e in entries if _sort_key(e) <= key)
            if forward:
                begin, end = split, total
            else:
                begin, end = 0, sum(1 for e in entries if _sort_key(e) < key)
        if limit:
            if position is not None and not position[0]:
                begin = max(begin, end - limit)
            else:
                end = min(end, begin + limit)
        page = entries[begin:end]
        response: dict[str, Any] = {"chunk": page, "total_room_count_estimate": total}
        if page and end < total:
            response["next_batch"] = _encode_since(True, page[-1])
        if page and begin > 0:
            response["prev_batch"] = _encode_since(False, page[0])
        return response
