"""Send-to-device messaging: an inbox per device, delivered by /sync and then deleted."""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from typing import Any, Protocol

from hamlet.core.ids import get_domain_from_id, is_valid_user_id
from hamlet.handlers.common.errors import BadJsonError
from hamlet.handlers.common.notifier import Notifier
from hamlet.handlers.common.service import ServiceBase
from hamlet.runtime.clock import Clock
from hamlet.storage.stores.to_device import TO_DEVICE_STREAM, InboxMessage, ToDeviceStore
from hamlet.storage.stream_ids import StreamIdGenerator

logger = logging.getLogger(__name__)

DEFAULT_LIMIT = 100
ALL_DEVICES = "*"
# How long a /sendToDevice txn id is remembered (Synapse keeps them ~30 minutes too).
TXN_ID_LIFETIME_MS = 30 * 60 * 1000
TXN_ID_PRUNE_INTERVAL_S = 10 * 60.0


class _Device(Protocol):
    @property
    def device_id(self) -> str: ...


class DeviceLister(Protocol):
    async def get_devices(self, user_id: str) -> Sequence[_Device]:
        """The local user's devices."""
        ...


class ToDeviceHandler(ServiceBase):
    """The `to_device` stream: a stream id per stored message."""

    name = "to_device"

    def __init__(
        self,
        server_name: str,
        clock: Clock,
        store: ToDeviceStore,
        notifier: Notifier,
        devices: DeviceLister,
    ) -> None:
        self._server_name = server_name
        self._clock = clock
        self._store = store
        self._notifier = notifier
        self._devices = devices
        self.stream_ids = StreamIdGenerator(TO_DEVICE_STREAM)
        notifier.register_stream(self.name, self)

    async def load(self) -> None:
        await self.stream_ids.load(self._store.db, "device_inbox", "stream_id")

    def start(self) -> None:
        self._clock.looping_call(self._prune_txn_ids, TXN_ID_PRUNE_INTERVAL_S)

    async def _prune_txn_ids(self) -> None:
        await self._store.delete_txn_ids_before(self._clock.time_msec() - TXN_ID_LIFETIME_MS)

    def current_position(self) -> int:
        return self.stream_ids.current()

    async def send(
        self,
        sender: str,
        sender_device: str,
        txn_id: str,
        event_type: str,
        messages: Any,
    ) -> None:
        """Handle `PUT /sendToDevice/{type}/{txnId}`; a repeated txn id does nothing."""
        if not isinstance(messages, Mapping):
            raise BadJsonError("'messages' must be an object")
        targets: list[tuple[str, str, Any]] = []
        for user_id, by_device in messages.items():
            if not isinstance(by_device, Mapping) or not is_valid_user_id(user_id):
                raise BadJsonError(f"Bad messages for {user_id!r}")
            if get_domain_from_id(user_id) != self._server_name:
                logger.info("Dropping to-device message for remote user %s", user_id)
                continue
            for device_id, content in by_device.items():
                if not isinstance(content, Mapping):
                    raise BadJsonError(f"Message for {user_id} {device_id} must be an object")
                if device_id == ALL_DEVICES:
                    for device in await self._devices.get_devices(user_id):
                        targets.append((user_id, device.device_id, content))
                else:
                    targets.append((user_id, device_id, content))
        # One message per device even if it was addressed twice (by id and by "*").
        unique = {(u, d): c for u, d, c in targets}
        allocated = [self.stream_ids.next() for _ in unique]
        try:
            rows = [
                InboxMessage(u, d, sender, event_type, dict(c), sid)
                for ((u, d), c), sid in zip(unique.items(), allocated, strict=True)
            ]
            stored = await self._store.add_messages(
                sender, sender_device, txn_id, rows, self._clock.time_msec()
            )
        finally:
            for sid in allocated:
                self.stream_ids.finish(sid)
        if not stored or not rows:
            return
        top = max(allocated)
        self._notifier.notify(TO_DEVICE_STREAM, top, users={u for u, _ in unique})

    # --- provider ---

    async def get_updates(
        self, user_id: str, device_id: str, since_pos: int, limit: int = DEFAULT_LIMIT
    ) -> tuple[list[dict[str, Any]], int]:
        """The device's messages after `since_pos`, at most `limit`, as
        `{"sender", "type", "content"}` events, and the stream position they go up to
        (the position to put in the next token)."""
        upto = self.current_position()
        if since_pos > upto:
            since_pos = 0
        messages = await self._store.get_messages(user_id, device_id, since_pos, upto, limit)
        events = [{"sender": m.sender, "type": m.type, "content": m.content} for m in messages]
        if len(messages) >= limit:
            upto = messages[-1].stream_id
        return events, upto

    async def delete_delivered(self, user_id: str, device_id: str, upto: int) -> int:
        """Forget the device's messages up to `upto`: the client synced past them."""
        return await self._store.delete_messages(user_id, device_id, upto)

    async def shutdown(self) -> None:
        """The txn-id pruning timer belongs to the Clock."""
