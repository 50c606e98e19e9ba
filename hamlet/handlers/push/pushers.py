"""/pushers and /pushers/set, and the pool of HTTP pushers' delivery queues.

The database is the truth: the pool holds one `PusherQueue` per stored
HTTP pusher, made at load and when a pusher is set, dropped when one is
deleted here; a pusher deleted behind the pool (with its device) is
noticed by its queue before it sends.
"""

from __future__ import annotations

import logging
from collections.abc import Collection, Mapping, Sequence
from typing import Any, Final, Protocol

import orjson

from hamlet.config.model import PushConfig
from hamlet.core.power_levels import StateKey
from hamlet.core.push_gateway import PusherDataError, check_http_data
from hamlet.handlers.common.errors import BadJsonError, ForbiddenError, MatrixError
from hamlet.handlers.common.notifier import Notifier
from hamlet.handlers.common.service import ENTRY_BYTES, ServiceBase
from hamlet.handlers.push.actions import PushEvaluator, StreamPosition
from hamlet.handlers.push.delivery import DeliveryShared, EventSource, PusherQueue
from hamlet.handlers.push.gateway import GatewayClient
from hamlet.handlers.rooms.state import StateHandler
from hamlet.handlers.user_streams.receipts import READ, READ_PRIVATE, RoomReceipts
from hamlet.runtime.clock import Clock
from hamlet.storage.stores.events import StoredEvent
from hamlet.storage.stores.pushers import PusherRow, PushersStore
from hamlet.storage.stores.rooms import Membership

logger = logging.getLogger(__name__)

#: Pushers loaded into the pool at start (one tenant's; more wait for a restart).
MAX_LOADED: Final = 100_000
#: Rooms looked at for the badge count.
MAX_BADGE_ROOMS: Final = 1000
MAX_APP_ID: Final = 64
MAX_PUSHKEY: Final = 512
MAX_TEXT: Final = 512
MAX_DATA_BYTES: Final = 4096
_REQUIRED: Final = (
    "kind",
    "app_id",
    "app_display_name",
    "device_display_name",
    "pushkey",
    "lang",
    "data",
)


class ReceiptSource(Protocol):
    def current_position(self) -> int: ...

    async def get_updates(
        self, user_id: str, room_ids: Collection[str], since_pos: int, upto: int | None = None
    ) -> dict[str, RoomReceipts]: ...


class JoinedRooms(Protocol):
    async def get_rooms_for_user(
        self, user_id: str, memberships: tuple[str, ...] = ("join",)
    ) -> list[Membership]: ...


def _missing(message: str) -> MatrixError:
    return MatrixError(400, "M_MISSING_PARAM", message)


def _text(body: Mapping[str, Any], key: str, limit: int) -> str:
    value = body.get(key)
    if not isinstance(value, str):
        raise BadJsonError(f"'{key}' must be a string")
    if len(value) > limit:
        raise MatrixError(400, "M_INVALID_PARAM", f"'{key}' is longer than {limit} characters")
    return value


def pusher_json(row: PusherRow) -> dict[str, Any]:
    return {
        "app_id": row.app_id,
        "pushkey": row.pushkey,
        "kind": row.kind,
        "app_display_name": row.app_display_name,
        "device_display_name": row.device_display_name,
        "profile_tag": row.profile_tag,
        "lang": row.lang,
        "data": row.data,
    }


class PushersHandler(ServiceBase):
    name = "pushers"

    def __init__(
        self,
        *,
        clock: Clock,
        store: PushersStore,
        config: PushConfig,
        gateway: GatewayClient,
        evaluator: PushEvaluator,
        events: EventSource,
        state: StateHandler,
        joined_rooms: JoinedRooms,
        event_stream_position: StreamPosition,
        notifier: Notifier,
        receipts: ReceiptSource,
    ) -> None:
        self._clock = clock
        self._store = store
        self._config = config
        self._state = state
        self._joined_rooms = joined_rooms
        self._event_stream = event_stream_position
        self._queues: dict[tuple[str, str, str], PusherQueue] = {}
        self._by_user: dict[str, set[tuple[str, str, str]]] = {}
        self._shared = DeliveryShared(
            clock=clock,
            store=store,
            config=config,
            gateway=gateway,
            events=events,
            describe=self._describe,
            unread=self.badge_count,
            gone=self._forget,
        )
        self._started = False
        self._receipts = receipts
        self._receipts_pos = 0
        self._receipt_rooms: set[str] = set()
        self._readers: set[str] = set()
        self._reading = False
        evaluator.add_listener(self._on_actions)
        notifier.add_listener(self._on_notify)

    # --- lifecycle ---

    async def load(self) -> None:
        for row in await self._store.get_all_pushers(MAX_LOADED):
            if row.kind == "http":
                self._add_queue(row)

    def start(self) -> None:
        self._started = True
        self._receipts_pos = self._receipts.current_position()
        for queue in list(self._queues.values()):
            queue.wake()

    async def shutdown(self) -> None:
        for queue in self._queues.values():
            queue.close()
        self._queues.clear()
        self._by_user.clear()

    def memory_usage(self) -> int:
        return len(self._queues) * ENTRY_BYTES

    # --- the pool ---

    def queue(self, user_id: str, app_id: str, pushkey: str) -> PusherQueue | None:
        return self._queues.get((user_id, app_id, pushkey))

    def _add_queue(self, row: PusherRow) -> PusherQueue:
        old = self._queues.pop(row.key, None)
        if old is not None:
            old.close()
        queue = PusherQueue(row, self._shared)
        self._queues[row.key] = queue
        self._by_user.setdefault(row.user_id, set()).add(row.key)
        return queue

    def _forget(self, queue: PusherQueue) -> None:
        if self._queues.get(queue.key) is not queue:
            return
        del self._queues[queue.key]
        keys = self._by_user.get(queue.row.user_id)
        if keys is not None:
            keys.discard(queue.key)
            if not keys:
                del self._by_user[queue.row.user_id]
        queue.close()

    def _on_actions(self, users: set[str]) -> None:
        if not self._started:
            return
        for user_id in users:
            for key in tuple(self._by_user.get(user_id, ())):
                self._queues[key].wake()

    # --- badges: a read receipt lowers the count on the user's devices ---

    def _on_notify(
        self, stream: str, position: int, users: Sequence[str], rooms: Sequence[str]
    ) -> None:
        if stream != "receipts" or not self._started or not self._queues:
            return
        # A private receipt names its reader; a public one only its room.
        self._readers.update(u for u in users if u in self._by_user)
        self._receipt_rooms.update(rooms)
        if not self._reading and (self._readers or self._receipt_rooms):
            self._reading = True
            self._clock.run_as_background_process("push_badges", self._read_receipts)

    async def _read_receipts(self) -> None:
        try:
            while self._readers or self._receipt_rooms:
                readers, self._readers = self._readers, set()
                rooms, self._receipt_rooms = self._receipt_rooms, set()
                if rooms:
                    upto = self._receipts.current_position()
                    updates = await self._receipts.get_updates("", rooms, self._receipts_pos, upto)
                    self._receipts_pos = max(self._receipts_pos, upto)
                    readers.update(
                        r.user_id
                        for room in updates.values()
                        for r in room.receipts
                        if r.receipt_type in (READ, READ_PRIVATE)
                    )
                for user_id in readers:
                    for key in tuple(self._by_user.get(user_id, ())):
                        self._queues[key].badge_changed()
        finally:
            self._reading = False

    # --- /pushers ---

    async def get_pushers(self, user_id: str) -> list[dict[str, Any]]:
        return [pusher_json(row) for row in await self._store.get_pushers(user_id)]

    async def set_pusher(
        self, user_id: str, device_id: str | None, body: Mapping[str, Any]
    ) -> None:
        if "kind" in body and body["kind"] is None and "app_id" in body and "pushkey" in body:
            app_id = _text(body, "app_id", MAX_APP_ID)
            pushkey = _text(body, "pushkey", MAX_PUSHKEY)
            await self._store.delete_pusher(user_id, app_id, pushkey)
            queue = self._queues.get((user_id, app_id, pushkey))
            if queue is not None:
                self._forget(queue)
            return
        missing = [key for key in _REQUIRED if key not in body]
        if missing:
            raise _missing(f"Missing params: {missing}")
        kind = _text(body, "kind", MAX_TEXT)
        if kind != "http":
            # Email pushers need an email sender Hamlet does not have.
            raise _missing(f"Config Error: unknown pusher kind {kind!r}")
        data = body["data"]
        try:
            check_http_data(data)
        except PusherDataError as e:
            raise _missing(f"Config Error: {e}") from None
        if len(orjson.dumps(data)) > MAX_DATA_BYTES:
            raise MatrixError(400, "M_INVALID_PARAM", f"'data' is larger than {MAX_DATA_BYTES}")
        append = body.get("append", False)
        if not isinstance(append, bool):
            raise BadJsonError("'append' must be a boolean")
        profile_tag = body.get("profile_tag", "")
        if profile_tag is None:
            profile_tag = ""
        row = PusherRow(
            user_id=user_id,
            app_id=_text(body, "app_id", MAX_APP_ID),
            pushkey=_text(body, "pushkey", MAX_PUSHKEY),
            device_id=device_id,
            kind=kind,
            app_display_name=_text(body, "app_display_name", MAX_TEXT),
            device_display_name=_text(body, "device_display_name", MAX_TEXT),
            profile_tag=_text({"profile_tag": profile_tag}, "profile_tag", MAX_TEXT),
            lang=_text(body, "lang", MAX_TEXT),
            data=dict(data),
            pushkey_ts=self._clock.time_msec(),
            # Only what happens from now on is pushed.
            last_stream_ordering=self._event_stream.current_position(),
            failing_since=None,
        )
        stored, removed = await self._store.set_pusher(
            row, remove_others=not append, max_per_user=self._config.max_pushers_per_user
        )
        if not stored:
            raise ForbiddenError(
                f"Too many pushers (at most {self._config.max_pushers_per_user})",
                errcode="M_LIMIT_EXCEEDED",
            )
        for key in removed:
            queue = self._queues.get(key)
            if queue is not None:
                self._forget(queue)
        fresh = await self._store.get_pusher(user_id, row.app_id, row.pushkey)
        if fresh is not None:
            self._add_queue(fresh)

    # --- what a notification says ---

    async def _describe(self, stored: StoredEvent) -> tuple[str | None, str | None]:
        event = stored.event
        member_key: StateKey = ("m.room.member", event.sender)
        name_key: StateKey = ("m.room.name", "")
        alias_key: StateKey = ("m.room.canonical_alias", "")
        state = await self._state.get_current_state(
            event.room_id, {member_key, name_key, alias_key}
        )
        room_name: str | None = None
        for key, field in ((name_key, "name"), (alias_key, "alias")):
            found = state.get(key)
            value = found.content.get(field) if found is not None else None
            if isinstance(value, str) and value:
                room_name = value
                break
        member = state.get(member_key)
        display = member.content.get("displayname") if member is not None else None
        return room_name, display if isinstance(display, str) and display else None

    async def badge_count(self, user_id: str) -> int:
        """Rooms with unread notifications plus invites (or, with
        `group_unread_count_by_room: false`, the notifications), as Synapse."""
        rooms = await self._joined_rooms.get_rooms_for_user(user_id, ("join", "invite"))
        joined = [m.room_id for m in rooms if m.membership == "join"][:MAX_BADGE_ROOMS]
        badge = sum(1 for m in rooms if m.membership == "invite")
        counts = await self._store.unread_rooms(user_id, joined)
        if self._config.group_unread_count_by_room:
            return badge + sum(1 for c in counts.values() if c > 0)
        return badge + sum(counts.values())
