"""The rooms side of the Synapse-compatible admin API.

Listing and inspecting rooms regardless of membership, blocking them,
force-joining local users, making a user room admin, and deleting rooms
(shut down: everyone local leaves, optionally into a new room; then purge)
as a background job whose status is kept in memory for 24 hours (as
Synapse documents: "until Synapse is restarted").
"""

from __future__ import annotations

import logging
import secrets
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

from hamlet.core.filters import RoomEventFilter
from hamlet.core.ids import UserID, is_room_id
from hamlet.core.power_levels import CREATE_KEY, JOIN_RULES_KEY, POWER_LEVELS_KEY
from hamlet.handlers.common.errors import (
    BadJsonError,
    ForbiddenError,
    InvalidParamError,
    MatrixError,
    NotFoundError,
)
from hamlet.handlers.history.pagination import (
    BEGINNING,
    everything,
    make_pagination_token,
    page_room,
    parse_pagination_token,
)
from hamlet.handlers.history.serializer import EventSerializer
from hamlet.handlers.rooms.event_cache import EventCache
from hamlet.handlers.rooms.event_creation import EventCreator
from hamlet.handlers.rooms.membership import MembershipHandler
from hamlet.handlers.rooms.pipeline import EventPipeline
from hamlet.handlers.rooms.sender import Sender
from hamlet.handlers.rooms.state import StateHandler
from hamlet.runtime.clock import Clock
from hamlet.storage.stores.accounts import AccountStore
from hamlet.storage.stores.admin_rooms import AdminRoomsStore, RoomStats
from hamlet.storage.stores.events import StoredEvent
from hamlet.storage.stores.room_history import RoomHistoryStore
from hamlet.storage.stores.rooms import RoomsStore

logger = logging.getLogger(__name__)

DEFAULT_ROOM_NAME = "Content Violation Notification"
DEFAULT_MESSAGE = (
    "Sharing illegal content on this server is not permitted and rooms in violation"
    " will be blocked."
)
#: How long a finished deletion's status can still be read.
DELETE_STATUS_KEEP_MS = 24 * 60 * 60 * 1000

# order_by -> (row field, largest first?)
_ORDERS: dict[str, tuple[str, bool]] = {
    "name": ("name", False),
    "alphabetical": ("name", False),
    "canonical_alias": ("canonical_alias", False),
    "joined_members": ("joined_members", True),
    "size": ("joined_members", True),
    "joined_local_members": ("joined_local_members", True),
    "version": ("version", True),
    "creator": ("creator", False),
    "encryption": ("encryption", False),
    "federatable": ("federatable", False),
    "public": ("public", False),
    "join_rules": ("join_rules", False),
    "guest_access": ("guest_access", False),
    "history_visibility": ("history_visibility", False),
    "state_events": ("state_events", True),
}


def _check_room_id(room_id: str) -> None:
    # `!opaque:domain` before v12, `!` and a hash (no domain) from it.
    if not is_room_id(room_id):
        raise InvalidParamError(f"{room_id} is not a legal room ID")


def _text(content: Mapping[str, Any], key: str) -> str | None:
    value = content.get(key)
    return value if isinstance(value, str) else None


def room_entry(stats: RoomStats) -> dict[str, Any]:
    """One room as the list API shows it."""
    state = stats.state
    create = state.get("m.room.create", {})
    return {
        "room_id": stats.room_id,
        "name": _text(state.get("m.room.name", {}), "name"),
        "canonical_alias": _text(state.get("m.room.canonical_alias", {}), "alias"),
        "joined_members": stats.joined_members,
        "joined_local_members": stats.joined_local_members,
        "version": stats.room_version,
        "creator": stats.creator,
        "encryption": _text(state.get("m.room.encryption", {}), "algorithm"),
        "federatable": create.get("m.federate", True) is not False,
        "public": stats.is_public,
        "join_rules": _text(state.get("m.room.join_rules", {}), "join_rule"),
        "guest_access": _text(state.get("m.room.guest_access", {}), "guest_access"),
        "history_visibility": _text(
            state.get("m.room.history_visibility", {}), "history_visibility"
        ),
        "state_events": stats.state_events,
        "room_type": stats.room_type,
    }


def _sortable(value: Any) -> Any:
    # Room versions are numbers written as strings: compare "9" < "10".
    # Names and the like compare alphabetically, ignoring case.
    if isinstance(value, str) and value.isascii() and value.isdigit():
        return (0, int(value), "", value)
    if isinstance(value, str):
        return (1, 0, value.casefold(), value)
    return value


def _matches_search(entry: Mapping[str, Any], term: str) -> bool:
    """Synapse: in the name, the local part of the canonical alias, or the room ID."""
    lowered = term.lower()
    name = entry.get("name")
    if isinstance(name, str) and lowered in name.lower():
        return True
    alias = entry.get("canonical_alias")
    if isinstance(alias, str) and lowered in alias[1:].split(":", 1)[0].lower():
        return True
    return term in entry["room_id"]


@dataclass(slots=True)
class ShutdownResult:
    kicked_users: list[str] = field(default_factory=list)
    failed_to_kick_users: list[str] = field(default_factory=list)
    local_aliases: list[str] = field(default_factory=list)
    new_room_id: str | None = None

    def to_json(self) -> dict[str, Any]:
        return {
            "kicked_users": list(self.kicked_users),
            "failed_to_kick_users": list(self.failed_to_kick_users),
            "local_aliases": list(self.local_aliases),
            "new_room_id": self.new_room_id,
        }


@dataclass(frozen=True, slots=True)
class DeleteParams:
    requester: str
    new_room_user_id: str | None = None
    room_name: str = DEFAULT_ROOM_NAME
    message: str = DEFAULT_MESSAGE
    block: bool = False
    purge: bool = True
    force_purge: bool = False

    @classmethod
    def parse(cls, requester: str, body: Mapping[str, Any], server_name: str) -> DeleteParams:
        new_room_user_id = body.get("new_room_user_id")
        if new_room_user_id is not None:
            if not isinstance(new_room_user_id, str) or not UserID.is_valid(new_room_user_id):
                raise InvalidParamError("new_room_user_id must be a user ID")
            if UserID.from_string(new_room_user_id).domain != server_name:
                raise InvalidParamError(f"User must be our own: {new_room_user_id}")
        strings: dict[str, str] = {}
        for key, default in (("room_name", DEFAULT_ROOM_NAME), ("message", DEFAULT_MESSAGE)):
            value = body.get(key, default)
            if value is None:
                value = default
            if not isinstance(value, str):
                raise BadJsonError(f"Param '{key}' must be a string")
            strings[key] = value
        flags: dict[str, bool] = {}
        for key, default_flag in (("block", False), ("purge", True), ("force_purge", False)):
            flag = body.get(key, default_flag)
            if not isinstance(flag, bool):
                raise BadJsonError(f"Param '{key}' must be a boolean, if given")
            flags[key] = flag
        return cls(
            requester,
            new_room_user_id,
            strings["room_name"],
            strings["message"],
            flags["block"],
            flags["purge"],
            flags["force_purge"],
        )


@dataclass(slots=True)
class DeleteStatus:
    delete_id: str
    room_id: str
    status: str = "scheduled"
    error: str | None = None
    shutdown_room: ShutdownResult = field(default_factory=ShutdownResult)
    finished_ms: int | None = None

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "delete_id": self.delete_id,
            "room_id": self.room_id,
            "status": self.status,
            "shutdown_room": self.shutdown_room.to_json(),
        }
        if self.error is not None:
            out["error"] = self.error
        return out


class Outbox(Protocol):
    async def send_pending(self, timeout_s: float) -> None: ...


class AdminRoomsHandler:
    def __init__(
        self,
        *,
        server_name: str,
        clock: Clock,
        store: AdminRoomsStore,
        rooms: RoomsStore,
        accounts: AccountStore,
        state: StateHandler,
        cache: EventCache,
        creator: EventCreator,
        membership: MembershipHandler,
        pipeline: EventPipeline,
        serializer: EventSerializer,
        history: RoomHistoryStore,
        current_stream: Callable[[], int],
    ) -> None:
        self.server_name = server_name
        self.clock = clock
        self.store = store
        self.rooms = rooms
        self.accounts = accounts
        self.state = state
        self.cache = cache
        self.creator = creator
        self.membership = membership
        self.pipeline = pipeline
        self.serializer = serializer
        self.history = history
        self._current_stream = current_stream
        self._deletes: dict[str, DeleteStatus] = {}
        self._outbox: Outbox | None = None
        self._outbox_timeout_s = 0.0

    def set_outbox(self, outbox: Outbox, timeout_s: float) -> None:
        """The federation sender, which must send the leaves of a deleted
        room's local users before the purge (waiting at most `timeout_s`)."""
        self._outbox = outbox
        self._outbox_timeout_s = timeout_s

    def _is_mine(self, user_id: str) -> bool:
        return user_id.endswith(":" + self.server_name)

    async def _require_room(self, room_id: str) -> None:
        _check_room_id(room_id)
        if await self.rooms.get_room(room_id) is None:
            raise NotFoundError("Room not found")

    # Listing and inspecting

    async def list_rooms(
        self,
        *,
        start: int,
        limit: int,
        order_by: str,
        backwards: bool,
        search_term: str | None,
        public_rooms: bool | None,
        empty_rooms: bool | None,
    ) -> dict[str, Any]:
        if start < 0 or limit < 0:
            raise InvalidParamError("from and limit must not be negative")
        if order_by not in _ORDERS:
            raise InvalidParamError(f"Unknown value for order_by: {order_by}")
        if search_term is not None and search_term == "":
            raise InvalidParamError("search_term cannot be an empty string")
        entries = [room_entry(s) for s in await self.store.get_room_stats(self.server_name)]
        if search_term is not None:
            entries = [e for e in entries if _matches_search(e, search_term)]
        if public_rooms is not None:
            entries = [e for e in entries if e["public"] == public_rooms]
        if empty_rooms is not None:
            entries = [e for e in entries if (e["joined_members"] == 0) == empty_rooms]
        column, largest_first = _ORDERS[order_by]
        present = [e for e in entries if e[column] is not None]
        missing = [e for e in entries if e[column] is None]
        present.sort(key=lambda e: (_sortable(e[column]), e["room_id"]), reverse=largest_first)
        missing.sort(key=lambda e: e["room_id"], reverse=largest_first)
        ordered = present + missing
        if backwards:
            ordered.reverse()
        total = len(ordered)
        response: dict[str, Any] = {
            "rooms": ordered[start : start + limit],
            "offset": start,
            "total_rooms": total,
        }
        if start + limit < total:
            response["next_batch"] = start + limit
        if start > 0:
            response["prev_batch"] = start - limit if start > limit else 0
        return response

    async def room_details(self, room_id: str) -> dict[str, Any]:
        await self._require_room(room_id)
        found = await self.store.get_room_stats(self.server_name, [room_id])
        if not found:
            raise NotFoundError("Room not found")
        stats = found[0]
        details = room_entry(stats)
        details["topic"] = _text(stats.state.get("m.room.topic", {}), "topic")
        details["avatar"] = _text(stats.state.get("m.room.avatar", {}), "url")
        local = [
            m.user_id for m in await self.rooms.get_members(room_id) if self._is_mine(m.user_id)
        ]
        details["joined_local_devices"] = await self.store.count_devices(local)
        details["forgotten"] = await self.store.is_locally_forgotten(room_id, self.server_name)
        return details

    async def members(self, room_id: str) -> dict[str, Any]:
        await self._require_room(room_id)
        members = sorted(m.user_id for m in await self.rooms.get_members(room_id))
        return {"members": members, "total": len(members)}

    async def room_state(self, room_id: str, event_type: str | None) -> dict[str, Any]:
        await self._require_room(room_id)
        ids = await self.state.get_current_state_ids(room_id)
        wanted = [eid for (t, _k), eid in ids.items() if event_type is None or t == event_type]
        found = await self.cache.get_many(wanted)
        events = sorted(found.values(), key=lambda s: s.stream_ordering)
        return {"state": await self.serializer.serialize(events, bundle=False)}

    async def messages(
        self,
        room_id: str,
        *,
        from_token: str | None,
        to_token: str | None,
        backwards: bool,
        limit: int,
        event_filter: RoomEventFilter | None,
    ) -> dict[str, Any]:
        """Like the client /messages, whatever the admin's membership."""
        await self._require_room(room_id)
        start = parse_pagination_token(from_token) if from_token is not None else None
        bound = parse_pagination_token(to_token) if to_token is not None else None
        if start is None:
            start = self._current_stream() if backwards else BEGINNING
        if event_filter is not None and event_filter.limit is not None:
            limit = min(limit, event_filter.limit)
        events: list[StoredEvent] = []
        next_pos: int | None = None
        if limit > 0 and (backwards or bound is None or start < bound):
            events, next_pos = await self._scan(
                room_id,
                start=start,
                bound=bound,
                backwards=backwards,
                limit=limit,
                event_filter=event_filter,
            )
        response: dict[str, Any] = {
            "chunk": await self.serializer.serialize(events),
            "start": from_token if from_token is not None else make_pagination_token(start),
        }
        if next_pos is not None:
            response["end"] = make_pagination_token(next_pos)
        return response

    async def _scan(
        self,
        room_id: str,
        *,
        start: int | None,
        bound: int | None,
        backwards: bool,
        limit: int,
        event_filter: RoomEventFilter | None,
    ) -> tuple[list[StoredEvent], int | None]:
        return await page_room(
            self.history,
            room_id,
            visible=everything,
            start=start,
            bound=bound,
            backwards=backwards,
            limit=limit,
            event_filter=event_filter,
        )

    async def context(
        self,
        room_id: str,
        event_id: str,
        *,
        limit: int,
        event_filter: RoomEventFilter | None,
    ) -> dict[str, Any]:
        await self._require_room(room_id)
        stored = await self.cache.get(event_id)
        if stored is None or stored.event.room_id != room_id:
            raise NotFoundError("Event not found.")
        pos = stored.stream_ordering
        before_limit = limit // 2
        after_limit = limit - before_limit
        before: list[StoredEvent] = []
        after: list[StoredEvent] = []
        if before_limit:
            before, _ = await self._scan(
                room_id,
                start=pos - 1,
                bound=None,
                backwards=True,
                limit=before_limit,
                event_filter=event_filter,
            )
        if after_limit:
            after, _ = await self._scan(
                room_id,
                start=pos,
                bound=None,
                backwards=False,
                limit=after_limit,
                event_filter=event_filter,
            )
        last = after[-1] if after else stored
        state = await self.state.get_state_after(last)
        served = await self.serializer.serialize([stored, *before, *after])
        return {
            "event": served[0],
            "events_before": served[1 : 1 + len(before)],
            "events_after": served[1 + len(before) :],
            "start": make_pagination_token((before[-1] if before else stored).stream_ordering - 1),
            "end": make_pagination_token(last.stream_ordering),
            "state": [e.get_client_event() for e in state.values()],
        }

    # Blocking

    async def set_blocked(self, admin: str, room_id: str, block: bool) -> dict[str, Any]:
        _check_room_id(room_id)
        if block:
            await self.store.block_room(room_id, admin, self.clock.time_msec())
            logger.info("Admin %s blocked room %s", admin, room_id)
        else:
            await self.store.unblock_room(room_id)
            logger.info("Admin %s unblocked room %s", admin, room_id)
        return {"block": block}

    async def block_status(self, room_id: str) -> dict[str, Any]:
        _check_room_id(room_id)
        blocked_by = await self.store.room_blocked_by(room_id)
        if blocked_by is None:
            return {"block": False}
        return {"block": True, "user_id": blocked_by}

    # Membership

    async def force_join(self, admin: str, room_id_or_alias: str, user_id: Any) -> dict[str, Any]:
        if not isinstance(user_id, str) or not UserID.is_valid(user_id):
            raise InvalidParamError("user_id must be a user ID")
        if not self._is_mine(user_id):
            raise InvalidParamError("This endpoint can only be used with local users")
        if await self.accounts.get_user(user_id) is None:
            raise NotFoundError("User not found")
        room_id = await self.membership.resolve_room(room_id_or_alias)
        await self._require_room(room_id)
        join_rules = await self.state.get_current_state_event(room_id, *JOIN_RULES_KEY)
        is_public = join_rules is not None and join_rules.content.get("join_rule") == "public"
        current = await self.rooms.get_membership(room_id, user_id)
        already = current is not None and current.membership in ("join", "invite")
        if not is_public and not already:
            # As Synapse: the admin invites (so must be able to), then the user joins.
            await self.pipeline.update_membership(Sender.server(admin), room_id, user_id, "invite")
        await self.pipeline.update_membership(Sender.server(user_id), room_id, user_id, "join")
        logger.info("Admin %s joined %s to room %s", admin, user_id, room_id)
        return {"room_id": room_id}

    async def make_room_admin(
        self, admin: str, room_id_or_alias: str, user_id: Any
    ) -> dict[str, Any]:
        if user_id is None:
            user_id = admin
        if not isinstance(user_id, str) or not UserID.is_valid(user_id):
            raise InvalidParamError("user_id must be a user ID")
        room_id = await self.membership.resolve_room(room_id_or_alias)
        await self._require_room(room_id)
        state = await self.state.get_current_state(
            room_id, {CREATE_KEY, POWER_LEVELS_KEY, JOIN_RULES_KEY, ("m.room.member", user_id)}
        )
        create = state.get(CREATE_KEY)
        if create is None:
            raise MatrixError(400, "M_UNKNOWN", "Server not in room")
        power_levels = state.get(POWER_LEVELS_KEY)
        no_local_admin = MatrixError(400, "M_UNKNOWN", "No local admin user in room")
        if power_levels is not None:
            users = power_levels.content.get("users")
            users = users if isinstance(users, Mapping) else {}
            candidates = sorted(
                (u for u in users if isinstance(u, str) and self._is_mine(u)),
                key=lambda u: (users[u] if isinstance(users[u], int) else 0, u),
                reverse=True,
            )
            room_admin = None
            for candidate in candidates:
                if await self.membership.is_joined(candidate, room_id):
                    room_admin = candidate
                    break
            if room_admin is None:
                raise no_local_admin
            pl_content: dict[str, Any] = dict(power_levels.content)
        else:
            room_admin = create.sender
            if not self._is_mine(room_admin):
                raise no_local_admin
            pl_content = {}
        new_users = dict(pl_content.get("users") or {})
        new_users[user_id] = new_users.get(room_admin, 100)
        pl_content["users"] = new_users
        try:
            await self.pipeline.send(
                Sender.server(room_admin),
                room_id,
                "m.room.power_levels",
                pl_content,
                state_key="",
            )
        except ForbiddenError:
            raise MatrixError(
                400,
                "M_UNKNOWN",
                "No local admin user in room with power to update power levels.",
            ) from None
        logger.info("Admin %s made %s room admin of %s via %s", admin, user_id, room_id, room_admin)
        member = state.get(("m.room.member", user_id))
        if member is not None and member.content.get("membership") in ("join", "invite"):
            return {}
        join_rules = state.get(JOIN_RULES_KEY)
        if join_rules is not None and join_rules.content.get("join_rule") == "public":
            return {}
        await self.pipeline.update_membership(Sender.server(room_admin), room_id, user_id, "invite")
        return {}

    # Deleting

    async def start_delete(
        self, admin: str, room_id: str, body: Mapping[str, Any]
    ) -> dict[str, Any]:
        _check_room_id(room_id)
        params = DeleteParams.parse(admin, body, self.server_name)
        if await self.rooms.get_room(room_id) is None:
            raise NotFoundError(f"Unknown room id {room_id}")
        for status in self._deletes.values():
            if status.room_id == room_id and status.status in ("scheduled", "active"):
                raise MatrixError(
                    400, "M_UNKNOWN", f"History purge already in progress for {room_id}"
                )
        self._prune_statuses()
        delete_id = secrets.token_urlsafe(12)
        status = DeleteStatus(delete_id, room_id)
        self._deletes[delete_id] = status
        logger.info(
            "Admin %s scheduled deletion %s of room %s (block=%s, purge=%s, new room by %s)",
            admin,
            delete_id,
            room_id,
            params.block,
            params.purge,
            params.new_room_user_id,
        )
        self.clock.run_as_background_process("purge_room", self._run_delete, status, params)
        return {"delete_id": delete_id}

    async def delete_now(self, admin: str, room_id: str, body: Mapping[str, Any]) -> DeleteStatus:
        """Version 1 of the API: the same job, awaited."""
        _check_room_id(room_id)
        params = DeleteParams.parse(admin, body, self.server_name)
        if await self.rooms.get_room(room_id) is None:
            raise NotFoundError(f"Unknown room id {room_id}")
        status = DeleteStatus(secrets.token_urlsafe(12), room_id)
        logger.info("Admin %s deletes room %s", admin, room_id)
        await self._run_delete(status, params)
        if status.status == "failed":
            raise MatrixError(500, "M_UNKNOWN", status.error or "Room deletion failed")
        return status

    def delete_statuses_for_room(self, room_id: str) -> dict[str, Any]:
        self._prune_statuses()
        results = [s.to_json() for s in self._deletes.values() if s.room_id == room_id]
        if not results:
            raise NotFoundError("No delete task for room_id")
        return {"results": results}

    def delete_status(self, delete_id: str) -> dict[str, Any]:
        self._prune_statuses()
        status = self._deletes.get(delete_id)
        if status is None:
            raise NotFoundError("delete id not found")
        return status.to_json()

    def _prune_statuses(self) -> None:
        cutoff = self.clock.time_msec() - DELETE_STATUS_KEEP_MS
        for delete_id, status in list(self._deletes.items()):
            if status.finished_ms is not None and status.finished_ms < cutoff:
                del self._deletes[delete_id]

    async def _run_delete(self, status: DeleteStatus, params: DeleteParams) -> None:
        status.status = "active"
        room_id = status.room_id
        try:
            await self._shutdown_room(room_id, params, status.shutdown_room)
            if params.purge:
                still_joined = [
                    m.user_id
                    for m in await self.rooms.get_members(room_id)
                    if self._is_mine(m.user_id)
                ]
                if still_joined and not params.force_purge:
                    raise MatrixError(
                        400, "M_UNKNOWN", f"Users are still joined to this room: {still_joined}"
                    )
                if self._outbox is not None:
                    await self._outbox.send_pending(self._outbox_timeout_s)
                await self.purge_room(room_id)
        except Exception as e:
            logger.exception("Deletion %s of room %s failed", status.delete_id, room_id)
            status.status = "failed"
            status.error = e.message if isinstance(e, MatrixError) else str(e)
        else:
            status.status = "complete"
            logger.info("Deletion %s of room %s complete", status.delete_id, room_id)
        finally:
            status.finished_ms = self.clock.time_msec()

    async def _shutdown_room(
        self, room_id: str, params: DeleteParams, result: ShutdownResult
    ) -> None:
        if params.block:
            await self.store.block_room(room_id, params.requester, self.clock.time_msec())
        await self.rooms.set_room_public(room_id, False)
        if params.new_room_user_id is not None:
            created = await self.pipeline.create_room(
                Sender.server(params.new_room_user_id),
                {
                    "preset": "public_chat",
                    "name": params.room_name,
                    "power_level_content_override": {"users_default": -10},
                },
            )
            result.new_room_id = created["room_id"]
            await self.pipeline.send(
                Sender.server(params.new_room_user_id),
                result.new_room_id,
                "m.room.message",
                {"body": params.message, "msgtype": "m.text"},
            )
        members = [
            m
            for m in await self.rooms.get_members(room_id, None)
            if self._is_mine(m.user_id) and m.membership in ("join", "invite", "knock")
        ]
        for member in sorted(members, key=lambda m: m.user_id):
            user_id = member.user_id
            try:
                await self.pipeline.update_membership(
                    Sender.server(user_id), room_id, user_id, "leave"
                )
                await self.membership.forget(user_id, room_id)
                if result.new_room_id is not None and member.membership == "join":
                    await self.pipeline.update_membership(
                        Sender.server(user_id), result.new_room_id, user_id, "join"
                    )
            except Exception:
                logger.exception("Failed to move %s out of room %s", user_id, room_id)
                result.failed_to_kick_users.append(user_id)
            else:
                result.kicked_users.append(user_id)
        if result.new_room_id is not None:
            for alias in await self.rooms.get_aliases_for_room(room_id):
                await self.rooms.delete_alias(alias)
                if await self.rooms.create_alias(alias, result.new_room_id, params.requester):
                    result.local_aliases.append(alias)
            if result.local_aliases:
                await self.pipeline.send(
                    Sender.server(params.new_room_user_id or params.requester),
                    result.new_room_id,
                    "m.room.canonical_alias",
                    {"alias": result.local_aliases[0]},
                    state_key="",
                )

    async def purge_room(self, room_id: str) -> None:
        """Remove every trace of the room from the database and the caches."""
        await self.store.purge_room(room_id)
        self.rooms.memberships_rewritten()
        self.creator.forget_room(room_id)
        self.state.clear_caches()
        self.cache.clear_caches()
        logger.info("Purged room %s", room_id)
