"""GET /sync: waits for something new, then assembles the response from each stream.

Every stream is read between the client's `since` token and a `now` token
taken once the wait is over; the result's `next_batch` is that `now`.

Identical requests share one computation: a client (or a bug in one) that
opens the same long-poll many times costs one notifier waiter and one set
of queries per wake, not one per request. A user's distinct syncs in flight
are capped (`limits.max_concurrent_syncs_per_user`); past it, 429. Of those,
only `limits.max_concurrent_sync_builds_per_user` build at once (and
`max_concurrent_sync_builds` of the tenant's): the rest wait their turn,
after their long-poll.
"""

from __future__ import annotations

import logging
from collections.abc import Hashable
from dataclasses import dataclass

from hamlet.core.filters import Filter
from hamlet.handlers.common.errors import InvalidParamError, LimitExceededError
from hamlet.handlers.common.memberships import MembershipCache
from hamlet.handlers.common.notifier import Notifier
from hamlet.handlers.common.requester import Requester
from hamlet.handlers.common.shared import SharedComputations
from hamlet.handlers.common.streams import StreamProvider, StreamToken, SyncScope
from hamlet.handlers.common.work_slots import WorkSlots
from hamlet.handlers.e2ee.device_lists import DeviceListChanges
from hamlet.handlers.e2ee.keys import E2eKeysHandler
from hamlet.handlers.push.rules import PUSH_RULES_TYPE, PushRulesHandler
from hamlet.handlers.sync.quiet import QuietStreams
from hamlet.handlers.sync.results import DeviceKeyState, Ephemeral, SyncResult, ToDeviceResult
from hamlet.handlers.sync.rooms import RoomSyncBuilder
from hamlet.handlers.sync.sharing import KeptResults, Position
from hamlet.handlers.user_streams.account_data import AccountDataEntry, AccountDataUpdates
from hamlet.handlers.user_streams.presence import PresenceHandler, PresenceUpdates
from hamlet.handlers.user_streams.receipts import RoomReceipts
from hamlet.handlers.user_streams.typing import RoomTyping
from hamlet.runtime.clock import Clock

logger = logging.getLogger(__name__)

MAX_TIMEOUT_MS = 5 * 60 * 1000
# A client over its cap of syncs is asked to come back this much later.
SYNC_CAP_RETRY_MS = 1000


@dataclass(frozen=True, slots=True)
class SyncRequest:
    requester: Requester
    since: StreamToken | None
    timeout_ms: int
    full_state: bool
    filter: Filter
    set_presence: str | None

    def sharing_key(self) -> Hashable:
        """Requests with the same key get the same response. `set_presence`
        is not part of it: it is applied per request, around the computation."""
        r = self.requester
        return (
            r.user_id,
            r.device_id,
            r.token_id,
            self.since,
            self.timeout_ms,
            self.full_state,
            self.filter,
        )

    def answers_now(self) -> bool:
        """Whether it answers at once, without waiting for news (as `_sync` decides)."""
        return self.since is None or self.timeout_ms <= 0 or self.full_state


class SyncHandler:
    def __init__(
        self,
        *,
        clock: Clock,
        notifier: Notifier,
        memberships: MembershipCache,
        room_builder: RoomSyncBuilder,
        typing: StreamProvider[dict[str, RoomTyping]],
        receipts: StreamProvider[dict[str, RoomReceipts]],
        account_data: StreamProvider[AccountDataUpdates],
        to_device: StreamProvider[ToDeviceResult],
        # Also a StreamProvider; the concrete type for `syncing()`.
        presence: PresenceHandler,
        push_rules: PushRulesHandler,
        e2e_keys: E2eKeysHandler,
        device_lists: StreamProvider[DeviceListChanges],
        max_syncs_per_user: int = 10,
        build_slots: WorkSlots | None = None,
        kept: KeptResults | None = None,
    ) -> None:
        self.clock = clock
        self.notifier = notifier
        self.memberships = memberships
        self.room_builder = room_builder
        self.typing = typing
        self.receipts = receipts
        self.account_data = account_data
        self.to_device = to_device
        self.presence = presence
        self.push_rules = push_rules
        self.e2e_keys = e2e_keys
        self.device_lists = device_lists
        self.quiet = QuietStreams(notifier)
        self.max_syncs_per_user = max_syncs_per_user
        # Shared with sliding sync: builds of one user, and of the tenant, at once.
        self.build_slots = build_slots or WorkSlots(2, 8)
        self.kept = kept if kept is not None else KeptResults(clock, 0)
        self.active_syncs = 0
        # The shared computation is a background process of the homeserver,
        # in its own logging context, not a task of the first request.
        self._shared: SharedComputations[SyncResult] = SharedComputations(
            lambda compute: clock.run_as_background_process("sync", compute),
            max_syncs_per_user,
            lambda running: LimitExceededError(
                SYNC_CAP_RETRY_MS, f"Too many concurrent /sync requests (max {running})"
            ),
        )

    async def sync(self, request: SyncRequest) -> SyncResult:
        self.active_syncs += 1
        try:
            async with self.presence.syncing(request.requester.user_id, request.set_presence):
                return await self._join(request)
        finally:
            self.active_syncs -= 1

    async def _join(self, request: SyncRequest) -> SyncResult:
        """The result kept from an identical request if it is still what a
        build would give, else the computation of this request, started now
        unless an identical one is running."""
        key = request.sharing_key()
        if request.answers_now():
            kept = self.kept.get(request.requester, key, self._position())
            if kept is not None:
                return kept
        return await self._shared.join(key, request.requester.user_id, lambda: self._sync(request))

    def _position(self) -> Position:
        return Position(
            self.notifier.current_token(),
            self.e2e_keys.keys_generation,
            self.memberships.rewrites,
        )

    @property
    def computations(self) -> int:
        """Sync computations in flight (each serving one or more requests)."""
        return self._shared.computations

    async def _sync(self, request: SyncRequest) -> SyncResult:
        user_id = request.requester.user_id
        since = request.since
        if since is not None and since.events > self.notifier.current_token().events:
            raise InvalidParamError("The since token is from the future")
        if since is None or request.timeout_ms <= 0 or request.full_state:
            return await self._build_and_keep(request)
        joined = [m.room_id for m in await self.memberships.rooms_for_user(user_id)]
        deadline = self.clock.monotonic() + min(request.timeout_ms, MAX_TIMEOUT_MS) / 1000
        waited_from = since
        while True:
            remaining = deadline - self.clock.monotonic()
            await self.notifier.wait_for_change(user_id, joined, waited_from, remaining)
            now, result = await self._build_now(request)
            # A change the filter hides (a presence update, a filtered-out
            # room) woke the wait but gave nothing to say: wait on, as
            # Synapse does, rather than answer empty once per change.
            if result.has_news() or self.clock.monotonic() >= deadline:
                return result
            waited_from = now

    async def _build_and_keep(self, request: SyncRequest) -> SyncResult:
        """Build now, and keep the result for identical requests."""
        async with self.build_slots.slot(request.requester.user_id):
            # Before any read: a key change during the build makes it stale.
            position = self._position()
            result = await self._build_in_slot(request, position.token)
        self.kept.keep(request.requester, request.sharing_key(), position, result)
        return result

    async def _build_now(self, request: SyncRequest) -> tuple[StreamToken, SyncResult]:
        """The result up to the current token, and that token."""
        async with self.build_slots.slot(request.requester.user_id):
            # Taken after waiting: what the slot's wait let happen is in this sync.
            now = self.notifier.current_token()
            return now, await self._build_in_slot(request, now)

    async def _build_in_slot(self, request: SyncRequest, now: StreamToken) -> SyncResult:
        # Whatever this build confirms (to-device messages) may make the
        # device's kept result stale.
        self.kept.building(request.requester)
        return await self._build(request, now)

    async def _build(self, request: SyncRequest, now: StreamToken) -> SyncResult:
        requester = request.requester
        user_id = requester.user_id
        since = request.since
        full_state = request.full_state or since is None
        joined_ids = frozenset(m.room_id for m in await self.memberships.rooms_for_user(user_id))
        scope = SyncScope(user_id, requester.device_id, joined_ids)
        # Streams that did not move for this user since the token are not read.
        quiet, quiet_since = self.quiet, None if request.full_state else since
        if quiet.account_data(scope, quiet_since):
            account_data = AccountDataUpdates(position=now.account_data)
        else:
            account_data = await self.account_data.changes(scope, since, now)
        if since is None:
            await add_push_rules(account_data, self.push_rules, user_id)
        typing = await self.typing.changes(scope, since, now)
        if quiet.receipts(scope, quiet_since):
            receipts: dict[str, RoomReceipts] = {}
        else:
            receipts = await self.receipts.changes(scope, since, now)
        ephemeral: dict[str, list[Ephemeral]] = {}
        for room_id in set(typing) | set(receipts):
            events: list[Ephemeral] = [
                e for e in (typing.get(room_id), receipts.get(room_id)) if e is not None
            ]
            ephemeral[room_id] = request.filter.room.ephemeral.filter(events)
        rooms = await self.room_builder.build(
            scope=scope,
            since=since,
            now=now,
            full_state=full_state,
            room_filter=request.filter.room,
            room_account_data=account_data.room_events,
            other_news={room_id for room_id, events in ephemeral.items() if events},
            changed_hint=quiet.rooms_changed,
        )
        incremental = since is not None and not request.full_state
        for room_id, room in list(rooms.join.items()):
            room.ephemeral = ephemeral.get(room_id, [])
            if incremental and room.is_empty():
                del rooms.join[room_id]

        if quiet.to_device(scope, quiet_since):
            to_device = ToDeviceResult([], now.to_device)
        else:
            to_device = await self.to_device.changes(scope, since, now)
            quiet.to_device_read(scope, len(to_device.messages))
        if quiet.presence(scope, quiet_since):
            presence = PresenceUpdates([], self.clock.time_msec())
        else:
            presence = await self.presence.changes(scope, since, now)
        presence_filter = request.filter.presence
        shown = PresenceUpdates(
            [
                s
                for s in presence.states
                if presence_filter.matches({"type": "m.presence", "sender": s.user_id})
            ],
            presence.as_of_ms,
        )
        if quiet.device_lists(scope, quiet_since):
            device_lists = DeviceListChanges()
        else:
            device_lists = await self.device_lists.changes(scope, since, now)
        return SyncResult(
            # Both streams may stop short of `now` when a byte budget cut them.
            next_batch=now.copy_and_replace("to_device", to_device.position).copy_and_replace(
                "account_data", account_data.position
            ),
            rooms=rooms,
            account_data=request.filter.account_data.filter(account_data.global_events),
            presence=shown,
            to_device=to_device.messages,
            device_lists=device_lists,
            device_keys=await device_key_state(self.e2e_keys, requester),
        )


async def device_key_state(e2e_keys: E2eKeysHandler, requester: Requester) -> DeviceKeyState:
    """The requesting device's one-time key counts and unused fallback key types."""
    if requester.device_id is None:
        return DeviceKeyState({}, [])
    counts, unused = await e2e_keys.key_state(
        requester.user_id, requester.device_id, requester.token_id
    )
    return DeviceKeyState(counts, unused)


async def add_push_rules(
    updates: AccountDataUpdates, push_rules: PushRulesHandler, user_id: str
) -> None:
    """For an initial sync: push rules never changed were never stored, yet are served."""
    if all(e.type != PUSH_RULES_TYPE for e in updates.global_events):
        updates.global_events.append(
            AccountDataEntry(PUSH_RULES_TYPE, await push_rules.get_rules(user_id))
        )
