"""Read receipts (`m.read`, `m.read.private`, threaded or not) and read markers."""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass, field
from typing import Any, ClassVar, Final

from hamlet.core.ids import is_room_id, is_valid_event_id
from hamlet.handlers.common.errors import ForbiddenError, InvalidParamError, MatrixError
from hamlet.handlers.common.notifier import Notifier
from hamlet.handlers.common.room_access import MembershipChecker
from hamlet.handlers.common.service import ServiceBase
from hamlet.handlers.common.streams import StreamToken, SyncScope
from hamlet.handlers.user_streams.account_data import AccountDataHandler
from hamlet.runtime.clock import Clock
from hamlet.storage.stores.receipts import Receipt, ReceiptStore
from hamlet.storage.stream_ids import StreamIdGenerator

READ: Final = "m.read"
READ_PRIVATE: Final = "m.read.private"
FULLY_READ: Final = "m.fully_read"
RECEIPT_TYPES: Final = frozenset({READ, READ_PRIVATE})
MAIN_TIMELINE: Final = "main"


@dataclass(slots=True)
class RoomReceipts:
    """A room's receipts the user may see (an `m.receipt` ephemeral event), oldest first."""

    type: ClassVar[str] = "m.receipt"
    receipts: list[Receipt] = field(default_factory=list)

    def content(self) -> dict[str, Any]:
        """`{event_id: {receipt_type: {user_id: {"ts", "thread_id"?}}}}`."""
        content: dict[str, Any] = {}
        for r in self.receipts:
            entry: dict[str, Any] = {"ts": r.ts}
            if r.thread_id is not None:
                entry["thread_id"] = r.thread_id
            content.setdefault(r.event_id, {}).setdefault(r.receipt_type, {})[r.user_id] = entry
        return content


class ReceiptsHandler(ServiceBase):
    """The `receipts` stream: a stream id per receipt update, stored in the database."""

    name = "receipts"

    def __init__(
        self,
        clock: Clock,
        store: ReceiptStore,
        notifier: Notifier,
        membership: MembershipChecker,
        account_data: AccountDataHandler,
    ) -> None:
        self._clock = clock
        self._store = store
        self._notifier = notifier
        self._membership = membership
        self._account_data = account_data
        self.stream_ids = StreamIdGenerator("receipts")
        notifier.register_stream(self.name, self)

    async def load(self) -> None:
        await self.stream_ids.load(self._store.db, "receipts", "stream_id")

    def current_position(self) -> int:
        return self.stream_ids.current()

    # --- writing ---

    async def _check(self, user_id: str, room_id: str, event_id: str) -> None:
        if not is_room_id(room_id) or not is_valid_event_id(event_id):
            raise MatrixError(400, "M_UNKNOWN", "A valid room ID and event ID must be specified")
        if not await self._membership.is_joined(user_id, room_id):
            raise ForbiddenError(f"User {user_id} not in room {room_id}")

    async def received_client_receipt(
        self,
        user_id: str,
        room_id: str,
        receipt_type: str,
        event_id: str,
        thread_id: str | None = None,
    ) -> None:
        """Handle `POST /receipt/{type}/{event}`; `m.fully_read` sets the read marker."""
        if receipt_type not in RECEIPT_TYPES and receipt_type != FULLY_READ:
            raise MatrixError(
                400,
                "M_UNKNOWN",
                f"Receipt type must be {', '.join(sorted(RECEIPT_TYPES | {FULLY_READ}))}",
            )
        if thread_id is not None and receipt_type == FULLY_READ:
            raise InvalidParamError(f"thread_id is not compatible with {FULLY_READ} receipts.")
        await self._check(user_id, room_id, event_id)
        if receipt_type == FULLY_READ:
            await self._account_data.set_fully_read(user_id, room_id, event_id)
        else:
            await self._write(user_id, room_id, receipt_type, event_id, thread_id)

    async def received_remote_receipt(
        self, user_id: str, room_id: str, event_id: str, thread_id: str | None
    ) -> bool:
        """A remote server's public read receipt for one of its users; False
        (and nothing stored) unless that user is joined to the room here."""
        try:
            await self._check(user_id, room_id, event_id)
        except MatrixError:
            return False
        await self._write(user_id, room_id, READ, event_id, thread_id)
        return True

    async def set_read_markers(
        self,
        user_id: str,
        room_id: str,
        *,
        fully_read: str | None = None,
        read: str | None = None,
        read_private: str | None = None,
    ) -> None:
        """Handle `POST /read_markers`."""
        for event_id in (fully_read, read, read_private):
            if event_id is not None:
                await self._check(user_id, room_id, event_id)
        if fully_read is not None:
            await self._account_data.set_fully_read(user_id, room_id, fully_read)
        if read is not None:
            await self._write(user_id, room_id, READ, read, None)
        if read_private is not None:
            await self._write(user_id, room_id, READ_PRIVATE, read_private, None)

    async def _write(
        self, user_id: str, room_id: str, receipt_type: str, event_id: str, thread_id: str | None
    ) -> None:
        with self.stream_ids.allocate() as stream_id:
            await self._store.upsert_receipt(
                room_id,
                receipt_type,
                user_id,
                thread_id,
                event_id,
                self._clock.time_msec(),
                stream_id,
            )
        if receipt_type == READ_PRIVATE:
            # Nobody else sees it: only wake the owner.
            self._notifier.notify("receipts", stream_id, users=[user_id])
        else:
            self._notifier.notify("receipts", stream_id, rooms=[room_id])

    # --- provider ---

    async def changes(
        self, scope: SyncScope, since: StreamToken | None, upto: StreamToken
    ) -> dict[str, RoomReceipts]:
        """The provider: receipts in the scope's rooms, by room."""
        return await self.get_updates(
            scope.user_id, scope.room_ids, since.receipts if since else 0, upto.receipts
        )

    async def get_updates(
        self, user_id: str, room_ids: Collection[str], since_pos: int, upto: int | None = None
    ) -> dict[str, RoomReceipts]:
        """Receipts per room newer than `since_pos`, as `user_id` may see them
        (private receipts only their owner's).

        A position ahead of the stream (token from another database) gets every receipt.
        """
        current = self.current_position()
        upto = current if upto is None else min(upto, current)
        if since_pos > current:
            since_pos = 0
        out: dict[str, RoomReceipts] = {}
        for r in await self._store.get_receipts_in_rooms(room_ids, since_pos, upto):
            if r.receipt_type == READ_PRIVATE and r.user_id != user_id:
                continue
            out.setdefault(r.room_id, RoomReceipts()).receipts.append(r)
        return out

    async def shutdown(self) -> None:
        """Nothing in memory but the stream position."""
