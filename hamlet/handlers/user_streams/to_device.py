"""Send-to-device messaging: an inbox per device, delivered by /sync and then deleted.

Any user can message any device, so everything one sender can make another
device store or download is bounded (`limits.max_to_device_*`): the size of
a message and the messages of a request (413), the rate (`rc_to_device` per
sender, 429; `rc_key_requests` per sending device for `m.room_key_request`,
whose excess is dropped as Synapse does), the undelivered messages queued
per sender and per device, and the bytes one /sync carries.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from typing import Any, Protocol

import orjson

from hamlet.config import LimitsConfig, RateLimitConfig
from hamlet.core.ids import get_domain_from_id, is_valid_user_id
from hamlet.handlers.common import ratelimit
from hamlet.handlers.common.errors import BadJsonError, LimitExceededError, TooLargeError
from hamlet.handlers.common.notifier import Notifier
from hamlet.handlers.common.service import ServiceBase
from hamlet.runtime.clock import Clock
from hamlet.storage.stores.to_device import (
    TO_DEVICE_STREAM,
    InboxMessage,
    QueueCaps,
    ToDeviceStore,
)
from hamlet.storage.stream_ids import StreamIdGenerator

logger = logging.getLogger(__name__)

DEFAULT_LIMIT = 100
ALL_DEVICES = "*"
# How long a /sendToDevice txn id is remembered (Synapse keeps them ~30 minutes too).
TXN_ID_LIFETIME_MS = 30 * 60 * 1000
TXN_ID_PRUNE_INTERVAL_S = 10 * 60.0
ROOM_KEY_REQUEST = "m.room_key_request"


class _Device(Protocol):
    @property
    def device_id(self) -> str: ...


class DeviceLister(Protocol):
    async def get_devices(self, user_id: str) -> Sequence[_Device]:
        """The local user's devices."""
        ...


class RemoteToDevice(Protocol):
    async def send_to_device(
        self, sender: str, event_type: str, by_server: Mapping[str, Mapping[str, Any]]
    ) -> None:
        """Carry messages ({server: {user: {device: content}}}) to other servers."""
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
        *,
        limits: LimitsConfig,
        rc_to_device: RateLimitConfig,
        rc_key_requests: RateLimitConfig,
    ) -> None:
        self._server_name = server_name
        self._clock = clock
        self._store = store
        self._notifier = notifier
        self._devices = devices
        self._limits = limits
        self._caps = QueueCaps(
            per_sender=limits.max_to_device_queue_per_sender,
            per_device=limits.max_to_device_queue_per_device,
        )
        self._rate = ratelimit.Ratelimiter(
            clock,
            name="rc_to_device",
            per_second=rc_to_device.per_second,
            burst_count=rc_to_device.burst_count,
        )
        self._key_requests = ratelimit.Ratelimiter(
            clock,
            name="rc_key_requests",
            per_second=rc_key_requests.per_second,
            burst_count=rc_key_requests.burst_count,
        )
        self._remote: RemoteToDevice | None = None
        self.stream_ids = StreamIdGenerator(TO_DEVICE_STREAM)
        notifier.register_stream(self.name, self)

    async def load(self) -> None:
        await self.stream_ids.load(self._store.db, "device_inbox", "stream_id")

    def start(self) -> None:
        self._rate.start()
        self._key_requests.start()
        self._clock.looping_call(self._prune_txn_ids, TXN_ID_PRUNE_INTERVAL_S)

    async def _prune_txn_ids(self) -> None:
        await self._store.delete_txn_ids_before(self._clock.time_msec() - TXN_ID_LIFETIME_MS)

    def current_position(self) -> int:
        return self.stream_ids.current()

    def attach_remote(self, remote: RemoteToDevice) -> None:
        """Federation, built later, carries messages for other servers' users."""
        self._remote = remote

    async def send(
        self,
        sender: str,
        sender_device: str,
        txn_id: str,
        event_type: str,
        messages: Any,
        *,
        ratelimit_exempt: bool = False,
    ) -> None:
        """Handle `PUT /sendToDevice/{type}/{txnId}`; a repeated txn id does nothing.
        Messages for other servers' users go to their servers (one
        `m.direct_to_device` EDU each), the local ones to the inboxes."""
        if not isinstance(messages, Mapping):
            raise BadJsonError("'messages' must be an object")
        remote: dict[str, dict[str, dict[str, Any]]] = {}
        local: dict[str, Mapping[str, Any]] = {}
        for user_id, by_device in messages.items():
            if not isinstance(by_device, Mapping) or not is_valid_user_id(user_id):
                raise BadJsonError(f"Bad messages for {user_id!r}")
            for device_id, content in by_device.items():
                if not isinstance(content, Mapping):
                    raise BadJsonError(f"Message for {user_id} {device_id} must be an object")
                if len(orjson.dumps(content)) > self._limits.max_to_device_message_size:
                    raise TooLargeError(
                        f"A to-device message may be at most"
                        f" {self._limits.max_to_device_message_size} bytes"
                    )
            server = get_domain_from_id(user_id)
            if server == self._server_name:
                local[user_id] = by_device
            elif self._remote is None:
                logger.info("Dropping to-device message for remote user %s", user_id)
            else:
                remote.setdefault(server, {})[user_id] = {d: dict(c) for d, c in by_device.items()}
        # Checked before `*` expands (a lookup per user), and after.
        self._check_count(sum(len(d) for d in messages.values()))
        unique = await self._expand(local)
        count = len(unique) + sum(len(d) for users in remote.values() for d in users.values())
        self._check_count(count)
        if not ratelimit_exempt:
            await self._rate.ratelimit(sender, n_actions=count)
        if event_type == ROOM_KEY_REQUEST:
            unique = await self._drop_excess_key_requests(sender, sender_device, unique)
        if not await self._deliver(sender, sender_device, txn_id, event_type, unique):
            return
        if remote and self._remote is not None:
            await self._remote.send_to_device(sender, event_type, remote)

    def _check_count(self, count: int) -> None:
        cap = self._limits.max_to_device_messages_per_request
        if count > cap:
            raise TooLargeError(f"At most {cap} to-device messages per request")

    async def receive_remote(
        self, origin: str, sender: str, event_type: str, message_id: str, messages: Any
    ) -> None:
        """An `m.direct_to_device` EDU from `origin` (its user `sender`): delivered
        to our users' devices once per message id; what does not fit is dropped."""
        cap = self._limits.max_to_device_messages_per_request
        if sum(len(d) if isinstance(d, Mapping) else 1 for d in messages.values()) > cap:
            logger.info("Dropping to-device EDU %s from %s: too many messages", message_id, origin)
            return
        local: dict[str, Mapping[str, Any]] = {}
        for user_id, by_device in messages.items():
            if not isinstance(by_device, Mapping) or not is_valid_user_id(user_id):
                continue
            if get_domain_from_id(user_id) != self._server_name:
                continue
            local[user_id] = {
                d: c
                for d, c in by_device.items()
                if isinstance(c, Mapping)
                and len(orjson.dumps(c)) <= self._limits.max_to_device_message_size
            }
        unique = await self._expand(local)
        if len(unique) > cap:
            logger.info("Dropping to-device EDU %s from %s: too many devices", message_id, origin)
            return
        # The txn id key makes a retried transaction deliver nothing twice.
        await self._deliver(sender, f"federation:{origin}", message_id, event_type, unique)

    async def _expand(
        self, messages: Mapping[str, Mapping[str, Any]]
    ) -> dict[tuple[str, str], Any]:
        """(user, device) -> content for local users, `*` expanded: one message
        per device even if it was addressed twice (by id and by `*`)."""
        unique: dict[tuple[str, str], Any] = {}
        for user_id, by_device in messages.items():
            for device_id, content in by_device.items():
                if device_id == ALL_DEVICES:
                    for device in await self._devices.get_devices(user_id):
                        unique[(user_id, device.device_id)] = content
                else:
                    unique[(user_id, device_id)] = content
        return unique

    async def _deliver(
        self,
        sender: str,
        sender_device: str,
        txn_id: str,
        event_type: str,
        unique: Mapping[tuple[str, str], Any],
    ) -> bool:
        """Store the messages unless this txn id was seen (then False)."""
        allocated = [self.stream_ids.next() for _ in unique]
        try:
            rows = [
                InboxMessage(u, d, sender, event_type, dict(c), sid)
                for ((u, d), c), sid in zip(unique.items(), allocated, strict=True)
            ]
            stored = await self._store.add_messages(
                sender, sender_device, txn_id, rows, self._clock.time_msec(), self._caps
            )
        finally:
            for sid in allocated:
                self.stream_ids.finish(sid)
        if stored is None:
            return False
        if stored:
            top = max(m.stream_id for m in stored)
            self._notifier.notify(TO_DEVICE_STREAM, top, users={m.user_id for m in stored})
        return True

    async def _drop_excess_key_requests(
        self, sender: str, sender_device: str, unique: dict[tuple[str, str], Any]
    ) -> dict[tuple[str, str], Any]:
        """Key requests past `rc_key_requests` are dropped, not refused (as in
        Synapse): a client asking every device for a key must not fail whole."""
        key = (sender, sender_device)
        kept: dict[tuple[str, str], Any] = {}
        for target, content in unique.items():
            if target[0] != sender:
                try:
                    await self._key_requests.ratelimit(key)
                except LimitExceededError:
                    logger.info(
                        "Dropping room key request from %s to %s: rate limited",
                        sender,
                        target[0],
                    )
                    continue
            kept[target] = content
        return kept

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
        messages, complete = await self._store.get_messages(
            user_id, device_id, since_pos, upto, limit, self._limits.max_to_device_sync_bytes
        )
        events = [{"sender": m.sender, "type": m.type, "content": m.content} for m in messages]
        if len(messages) >= limit or not complete:
            upto = messages[-1].stream_id
        return events, upto

    async def delete_delivered(self, user_id: str, device_id: str, upto: int) -> int:
        """Forget the device's messages up to `upto`: the client synced past them."""
        return await self._store.delete_messages(user_id, device_id, upto)

    async def shutdown(self) -> None:
        """The txn-id pruning timer belongs to the Clock."""
        self._rate.stop()
        self._key_requests.stop()
