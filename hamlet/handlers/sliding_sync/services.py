"""Builds sliding sync (MSC4186) over the providers the sync package built."""

from __future__ import annotations

from hamlet.handlers.common.service import BuildContext
from hamlet.handlers.container import Services
from hamlet.handlers.sliding_sync.connections import Connections
from hamlet.handlers.sliding_sync.handler import SlidingSyncHandler
from hamlet.handlers.sync.to_device import ToDeviceProvider
from hamlet.storage.stores.sliding_sync import SlidingSyncStore


def build(ctx: BuildContext, s: Services) -> None:
    s.sliding_sync = SlidingSyncHandler(
        clock=ctx.clock,
        notifier=s.notifier,
        rooms=s.rooms_store,
        events=s.events_store,
        state=s.room_state,
        room_builder=s.sync.room_builder,
        account_data=s.account_data,
        receipts=s.receipts,
        typing=s.typing,
        to_device=ToDeviceProvider(s.to_device),
        device_lists=s.device_lists,
        e2e_keys=s.e2e_keys,
        push_rules=s.push_rules,
        connections=Connections(SlidingSyncStore(ctx.db), ctx.clock),
        max_syncs_per_user=ctx.config.limits.max_concurrent_syncs_per_user,
        build_slots=s.sync.build_slots,
    )
