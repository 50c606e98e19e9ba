"""One HTTP pusher's queue: its user's push actions, delivered in order.

At most one request per pusher is in flight, and each queue runs in its
own background job on the Clock, so a gateway that hangs (until the
request's timeout) or fails delays only its own pushers. A failure is
tried again after 1 s, doubling up to an hour; a notification failing for
a day is given up (Synapse's timings), so a gateway that comes back is not
flooded with stale notifications. A gateway that answers with the
pusher's pushkey in `rejected` has the pusher deleted.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Final, Protocol

from hamlet.config.model import PushConfig
from hamlet.core.push_gateway import (
    EventInfo,
    PusherInfo,
    badge_body,
    notification_body,
    rejected_pushkeys,
)
from hamlet.handlers.push.gateway import GatewayClient, GatewayError
from hamlet.runtime.clock import Clock, DelayedCall
from hamlet.storage.stores.events import StoredEvent
from hamlet.storage.stores.pushers import PushAction, PusherRow, PushersStore

logger = logging.getLogger(__name__)

INITIAL_BACKOFF_S: Final = 1.0
MAX_BACKOFF_S: Final = 3600.0
GIVE_UP_AFTER_MS: Final = 24 * 3600 * 1000
#: Push actions read per batch.
BATCH: Final = 20
#: The whole exchange with a gateway, connecting included.
REQUEST_TIMEOUT_S: Final = 60.0


class EventSource(Protocol):
    async def get_event(self, event_id: str) -> StoredEvent | None: ...


@dataclass(slots=True)
class DeliveryShared:
    """What all the queues of one homeserver share."""

    clock: Clock
    store: PushersStore
    config: PushConfig
    gateway: GatewayClient
    events: EventSource
    #: Names the event's room and sender: (room name, sender display name).
    describe: Callable[[StoredEvent], Awaitable[tuple[str | None, str | None]]]
    #: The user's badge count.
    unread: Callable[[str], Awaitable[int]]
    #: Called when the queue's pusher is gone (deleted, rejected).
    gone: Callable[[PusherQueue], None]


class PusherQueue:
    def __init__(self, row: PusherRow, shared: DeliveryShared) -> None:
        self.row = row
        self._s = shared
        self.last_stream_ordering = row.last_stream_ordering
        self.failing_since = row.failing_since
        self.backoff_s = INITIAL_BACKOFF_S
        self._timer: DelayedCall | None = None
        self._running = False
        self._again = False
        self._badge_due = False
        # The badge count the device last got, so a read that changes
        # nothing sends nothing.
        self._badge: int | None = None
        self.closed = False
        self.sent = 0

    @property
    def key(self) -> tuple[str, str, str]:
        return self.row.key

    @property
    def url(self) -> str:
        return str(self.row.data["url"])

    def close(self) -> None:
        self.closed = True
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    def wake(self) -> None:
        if self.closed or self._s.clock.is_shut_down or not self._s.config.enabled:
            return
        if self._running:
            self._again = True
            return
        if self._timer is not None:
            return  # backing off: the timer wakes it
        self._running = True
        self._s.clock.run_as_background_process("http_push", self._run)

    def badge_changed(self) -> None:
        """The user read something: the device's badge may need lowering."""
        self._badge_due = True
        self.wake()

    def _retry_due(self) -> None:
        self._timer = None
        self.wake()

    async def _run(self) -> None:
        try:
            while not self.closed:
                self._again = False
                if not await self._still_there():
                    return
                actions = await self._s.store.get_push_actions_after(
                    self.row.user_id, self.last_stream_ordering, BATCH
                )
                if not actions:
                    if self._badge_due:
                        self._badge_due = False
                        await self._send_badge()
                    if not self._again:
                        return
                    continue
                for action in actions:
                    if not await self._deliver(action):
                        return
                    if self.closed:
                        return
        finally:
            self._running = False
            if self._again and self._timer is None:
                self.wake()

    async def _still_there(self) -> bool:
        """Deleting a device deletes its pushers in the database, behind the pool."""
        row = await self._s.store.get_pusher(self.row.user_id, self.row.app_id, self.row.pushkey)
        if row is None:
            self._gone()
            return False
        return True

    def _gone(self) -> None:
        self.close()
        self._s.gone(self)

    async def _deliver(self, action: PushAction) -> bool:
        """Send one notification: False to stop (backing off, or gone)."""
        try:
            sent = await self._send(action)
        except GatewayError as e:
            logger.info("Push to %s failed: %s", self.url, e)
            sent = False
        if sent:
            self.backoff_s = INITIAL_BACKOFF_S
            self.failing_since = None
            await self._progress(action.stream_ordering)
            return not self.closed
        now = self._s.clock.time_msec()
        if self.failing_since is None:
            self.failing_since = now
            await self._progress(self.last_stream_ordering)
        if now - self.failing_since >= GIVE_UP_AFTER_MS:
            logger.warning(
                "Giving up on a notification to %s (pushkey %s)",
                self.row.user_id,
                self.row.pushkey,
            )
            self.backoff_s = INITIAL_BACKOFF_S
            self.failing_since = None
            await self._progress(action.stream_ordering)
            return True
        logger.info("Push to %s failed: trying again in %.0f s", self.url, self.backoff_s)
        self._timer = self._s.clock.call_later(self.backoff_s, self._retry_due)
        self.backoff_s = min(self.backoff_s * 2, MAX_BACKOFF_S)
        return False

    async def _progress(self, stream_ordering: int) -> None:
        self.last_stream_ordering = stream_ordering
        await self._s.store.set_progress(
            self.row.user_id,
            self.row.app_id,
            self.row.pushkey,
            stream_ordering,
            self.failing_since,
        )

    @property
    def _info(self) -> PusherInfo:
        return PusherInfo(self.row.app_id, self.row.pushkey, self.row.pushkey_ts, self.row.data)

    async def _send_badge(self) -> None:
        """Best effort, as Synapse: a failure is logged, not retried."""
        unread = await self._s.unread(self.row.user_id)
        if unread == self._badge:
            return
        try:
            status, _answer = await self._s.gateway.post_json(
                self.url, badge_body(self._info, unread), REQUEST_TIMEOUT_S
            )
        except GatewayError as e:
            logger.info("Badge update to %s failed: %s", self.url, e)
            return
        if 200 <= status < 300:
            self._badge = unread

    async def _send(self, action: PushAction) -> bool:
        """True once the gateway took it (or there was nothing to send)."""
        stored = await self._s.events.get_event(action.event_id)
        if stored is None or stored.redacted_by is not None:
            return True
        event = stored.event
        room_name, sender_name = await self._s.describe(stored)
        unread = await self._s.unread(self.row.user_id)
        body = notification_body(
            self._info,
            EventInfo(
                event_id=event.event_id,
                room_id=event.room_id,
                type=event.type,
                sender=event.sender,
                content=event.content,
                state_key=event.state_key,
                sender_display_name=sender_name,
                room_name=room_name,
            ),
            action.actions,
            unread=unread,
            user_id=self.row.user_id,
            include_content=self._s.config.include_content,
        )
        status, answer = await self._s.gateway.post_json(self.url, body, REQUEST_TIMEOUT_S)
        if not 200 <= status < 300:
            logger.info("Push gateway %s answered %d", self.url, status)
            return False
        self.sent += 1
        self._badge = unread
        if self.row.pushkey in rejected_pushkeys(answer):
            logger.info("Pushkey %s was rejected by %s: removing it", self.row.pushkey, self.url)
            await self._s.store.delete_pusher(self.row.user_id, self.row.app_id, self.row.pushkey)
            self._gone()
        return True
