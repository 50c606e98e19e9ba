"""Builds the sync services: filters and /sync itself."""

from __future__ import annotations

from hamlet.handlers.common.service import BuildContext
from hamlet.handlers.common.work_slots import WorkSlots
from hamlet.handlers.container import Services
from hamlet.handlers.sync.filters import FilterHandler
from hamlet.handlers.sync.handler import SyncHandler
from hamlet.handlers.sync.rooms import RoomSyncBuilder
from hamlet.handlers.sync.sharing import KeptResults
from hamlet.handlers.sync.to_device import ToDeviceProvider
from hamlet.storage.stores.filters import FilterStore


def build(ctx: BuildContext, s: Services) -> None:
    s.filters = ctx.own(FilterHandler(ctx.server_name, FilterStore(ctx.db)))
    s.sync = SyncHandler(
        clock=ctx.clock,
        notifier=s.notifier,
        memberships=s.memberships,
        room_builder=RoomSyncBuilder(
            position=s.event_persister,
            events=s.events_store,
            history=s.room_history_store,
            rooms=s.rooms_store,
            memberships=s.memberships,
            state=s.room_state,
            visibility=s.visibility,
            serializer=s.event_serializer,
            push_rules=s.push_rules,
            notifier=s.notifier,
        ),
        typing=s.typing,
        receipts=s.receipts,
        account_data=s.account_data,
        to_device=ToDeviceProvider(s.to_device),
        presence=s.presence,
        push_rules=s.push_rules,
        e2e_keys=s.e2e_keys,
        device_lists=s.device_lists,
        max_syncs_per_user=ctx.config.limits.max_concurrent_syncs_per_user,
        build_slots=WorkSlots(
            ctx.config.limits.max_concurrent_sync_builds_per_user,
            ctx.config.limits.max_concurrent_sync_builds,
            s.request_slots,
        ),
        kept=ctx.own(KeptResults(ctx.clock, ctx.config.sync_response_cache_duration)),
    )
