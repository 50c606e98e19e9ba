"""Account data (global and per room), room tags and the fully-read marker."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Final, TypeVar

import orjson

from hamlet.core.ids import is_room_id
from hamlet.handlers.common.errors import (
    ForbiddenError,
    InvalidParamError,
    MatrixError,
    NotFoundError,
    TooLargeError,
)
from hamlet.handlers.common.notifier import Notifier
from hamlet.handlers.common.service import ServiceBase
from hamlet.handlers.common.streams import StreamToken, SyncScope
from hamlet.storage.stores.account_data import AccountDataCaps, AccountDataStore, Refused
from hamlet.storage.stream_ids import StreamIdGenerator

FULLY_READ: Final = "m.fully_read"
PUSH_RULES: Final = "m.push_rules"
TAG: Final = "m.tag"
DIRECT: Final = "m.direct"

T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class AccountDataEntry:
    """One account data event: its type and current content."""

    type: str
    content: Mapping[str, Any]


@dataclass(slots=True)
class AccountDataUpdates:
    """What changed for a user, global and per room, up to the stream
    `position` (behind the sync's token when a byte budget cut the batch)."""

    global_events: list[AccountDataEntry] = field(default_factory=list)
    room_events: dict[str, list[AccountDataEntry]] = field(default_factory=dict)
    position: int = 0


def check_can_set(data_type: str) -> None:
    """The read marker and push rules have their own APIs (Synapse: 405 M_BAD_JSON)."""
    if data_type == FULLY_READ:
        raise MatrixError(
            405,
            "M_BAD_JSON",
            "Cannot set m.fully_read through this API. Use /rooms/!roomId:server.name/read_markers",
        )
    if data_type == PUSH_RULES:
        raise MatrixError(
            405, "M_BAD_JSON", "Cannot set m.push_rules through this API. Use /pushrules"
        )


def check_own(requester: str, user_id: str, verb: str = "add") -> None:
    if requester != user_id:
        raise ForbiddenError(f"Cannot {verb} account data for other users.")


def check_room_id(room_id: str) -> None:
    if not is_room_id(room_id):
        raise InvalidParamError(f"{room_id} is not a valid room ID")


class AccountDataHandler(ServiceBase):
    """The `account_data` stream: a stream id per change, stored in the database."""

    name = "account_data"

    def __init__(
        self,
        store: AccountDataStore,
        notifier: Notifier,
        *,
        max_size: int = 64 * 1024,
        max_entries: int = 10_000,
        max_total_size: int = 4 * 1024 * 1024,
        max_sync_bytes: int = 1024 * 1024,
    ) -> None:
        self._store = store
        self._notifier = notifier
        # Each entry goes to every sync of every device of the user: bounded in
        # size, in total and, since room ids are not checked against
        # memberships, in number; and one sync carries a page of it.
        self._max_size = max_size
        self._caps = AccountDataCaps(max_entries, max_total_size)
        self._max_sync_bytes = max_sync_bytes
        self.stream_ids = StreamIdGenerator("account_data")
        # Tag changes are read-modify-write of the m.tag entry: one at a time.
        self._tag_lock = asyncio.Lock()
        notifier.register_stream(self.name, self)

    async def load(self) -> None:
        await self.stream_ids.load(self._store.db, "account_data", "stream_id")

    def current_position(self) -> int:
        return self.stream_ids.current()

    # --- global and room account data ---

    async def set_global(self, user_id: str, data_type: str, content: dict[str, Any]) -> int:
        return await self._put(user_id, None, data_type, content)

    async def set_room(
        self, user_id: str, room_id: str, data_type: str, content: dict[str, Any]
    ) -> int:
        check_room_id(room_id)
        return await self._put(user_id, room_id, data_type, content)

    async def get_global(self, user_id: str, data_type: str) -> dict[str, Any]:
        content = await self._store.get(user_id, None, data_type)
        if content is None:
            raise NotFoundError("Account data not found")
        return dict(content)

    async def get_room(self, user_id: str, room_id: str, data_type: str) -> dict[str, Any]:
        check_room_id(room_id)
        if data_type == PUSH_RULES:
            return {}  # room-specific push rules are not supported
        content = await self._store.get(user_id, room_id, data_type)
        if content is None:
            raise NotFoundError("Room account data not found")
        return dict(content)

    async def set_fully_read(self, user_id: str, room_id: str, event_id: str) -> int:
        """The read marker is room account data `m.fully_read`."""
        return await self._put(user_id, room_id, FULLY_READ, {"event_id": event_id})

    async def write_with(self, user_id: str, write: Callable[[int], Awaitable[T]]) -> T:
        """For a service that writes a user's account data inside its own
        transaction (push rules): allocates the stream id for `write(stream_id)`
        and wakes the user's syncs once it committed."""
        with self.stream_ids.allocate() as stream_id:
            result = await write(stream_id)
        self._notifier.notify("account_data", stream_id, users=[user_id])
        return result

    async def _put(
        self, user_id: str, room_id: str | None, data_type: str, content: dict[str, Any]
    ) -> int:
        self._check_size(content)
        with self.stream_ids.allocate() as stream_id:
            refused = await self._store.put(
                user_id, room_id, data_type, content, stream_id, caps=self._caps
            )
        if refused is not None:
            raise self._over_cap(refused)
        self._notifier.notify("account_data", stream_id, users=[user_id])
        return stream_id

    def _check_size(self, content: Any) -> None:
        if len(orjson.dumps(content)) > self._max_size:
            raise TooLargeError(f"Account data may be at most {self._max_size} bytes")

    def _over_cap(self, refused: Refused) -> MatrixError:
        if refused is Refused.TOO_MANY:
            message = f"At most {self._caps.max_entries} account data entries per user"
        else:
            message = f"At most {self._caps.max_total_size} bytes of account data per user"
        return MatrixError(403, "M_LIMIT_EXCEEDED", message)

    # --- tags (room account data m.tag) ---

    async def get_tags(self, user_id: str, room_id: str) -> dict[str, Any]:
        content = await self._store.get(user_id, room_id, TAG)
        tags = content.get("tags") if isinstance(content, dict) else None
        return dict(tags) if isinstance(tags, dict) else {}

    async def get_tag_names(self, user_id: str) -> dict[str, frozenset[str]]:
        """The names of the user's tags, by room (rooms without tags left out)."""
        out: dict[str, frozenset[str]] = {}
        for room_id, content in (await self._store.get_per_room(user_id, TAG)).items():
            names = frozenset(_tags_of(content if isinstance(content, dict) else None))
            if names:
                out[room_id] = names
        return out

    async def get_direct_rooms(self, user_id: str) -> frozenset[str]:
        """The rooms the user's `m.direct` names as DMs (Synapse: any list value of it)."""
        content = await self._store.get(user_id, None, DIRECT)
        if not isinstance(content, dict):
            return frozenset()
        return frozenset(
            room_id
            for rooms in content.values()
            if isinstance(rooms, list)
            for room_id in rooms
            if isinstance(room_id, str)
        )

    async def add_tag(self, user_id: str, room_id: str, tag: str, content: dict[str, Any]) -> int:
        order = content.get("order")
        if order is not None and (
            isinstance(order, bool) or not isinstance(order, int | float) or not 0 <= order <= 1
        ):
            raise InvalidParamError("'order' must be a number between 0 and 1")

        def change(old: dict[str, Any] | None) -> dict[str, Any]:
            tags = _tags_of(old)
            tags[tag] = content
            new = {"tags": tags}
            self._check_size(new)
            return new

        return await self._update_tags(user_id, room_id, change)

    async def remove_tag(self, user_id: str, room_id: str, tag: str) -> int:
        def change(old: dict[str, Any] | None) -> dict[str, Any]:
            tags = _tags_of(old)
            tags.pop(tag, None)
            return {"tags": tags}

        return await self._update_tags(user_id, room_id, change)

    async def _update_tags(
        self, user_id: str, room_id: str, change: Callable[[dict[str, Any] | None], dict[str, Any]]
    ) -> int:
        check_room_id(room_id)
        async with self._tag_lock:
            with self.stream_ids.allocate() as stream_id:
                refused = await self._store.update(
                    user_id, room_id, TAG, change, stream_id, caps=self._caps
                )
        if refused is not None:
            raise self._over_cap(refused)
        self._notifier.notify("account_data", stream_id, users=[user_id])
        return stream_id

    # --- provider ---

    async def changes(
        self, scope: SyncScope, since: StreamToken | None, upto: StreamToken
    ) -> AccountDataUpdates:
        """The provider: the user's account data changed between the tokens."""
        return await self.get_updates(
            scope.user_id, since.account_data if since else 0, upto.account_data
        )

    async def get_updates(
        self, user_id: str, since_pos: int, upto: int | None = None
    ) -> AccountDataUpdates:
        """Global and per-room account data of the user changed after `since_pos`
        (everything for 0, or for a position ahead of the stream), oldest
        first, within the sync byte budget: the rest comes from `position` on."""
        current = self.current_position()
        upto = current if upto is None else min(upto, current)
        if since_pos > current:
            since_pos = 0
        rows, position = await self._store.get_changed(
            user_id, since_pos, upto, self._max_sync_bytes
        )
        updates = AccountDataUpdates(position=position)
        for row in rows:
            event = AccountDataEntry(row.type, row.content)
            if row.room_id is None:
                updates.global_events.append(event)
            else:
                updates.room_events.setdefault(row.room_id, []).append(event)
        return updates

    async def shutdown(self) -> None:
        """Nothing in memory but the stream position."""


def _tags_of(content: dict[str, Any] | None) -> dict[str, Any]:
    tags = content.get("tags") if content is not None else None
    return dict(tags) if isinstance(tags, dict) else {}
