"""Builds the user streams /sync reads: typing, account data, receipts, presence, to-device."""

from __future__ import annotations

from hamlet.handlers.common.service import BuildContext
from hamlet.handlers.container import Services
from hamlet.handlers.user_streams.account_data import AccountDataHandler
from hamlet.handlers.user_streams.presence import PresenceHandler
from hamlet.handlers.user_streams.receipts import ReceiptsHandler
from hamlet.handlers.user_streams.to_device import ToDeviceHandler
from hamlet.handlers.user_streams.typing import TypingHandler
from hamlet.storage.stores.account_data import AccountDataStore
from hamlet.storage.stores.receipts import ReceiptStore
from hamlet.storage.stores.to_device import ToDeviceStore


def build(ctx: BuildContext, s: Services) -> None:
    clock, db, notifier = ctx.clock, ctx.db, s.notifier
    s.typing = ctx.own(TypingHandler(clock, notifier, s.membership))
    limits = ctx.config.limits
    s.account_data = ctx.own(
        AccountDataHandler(
            AccountDataStore(db),
            notifier,
            max_size=limits.max_account_data_size,
            max_entries=limits.max_account_data_entries,
            max_total_size=limits.max_account_data_total_size,
            max_sync_bytes=limits.max_account_data_sync_bytes,
        )
    )
    s.receipts = ctx.own(
        ReceiptsHandler(clock, ReceiptStore(db), notifier, s.membership, s.account_data)
    )
    s.presence = ctx.own(
        PresenceHandler(
            clock,
            notifier,
            s.rooms_store,
            enabled=ctx.config.presence.enabled,
            max_status_msg_length=limits.max_status_msg_length,
            rate=ctx.config.rc_presence_per_user,
        )
    )
    s.to_device = ctx.own(
        ToDeviceHandler(
            ctx.server_name,
            clock,
            ToDeviceStore(db),
            notifier,
            s.devices,
            limits=limits,
            rc_to_device=ctx.config.rc_to_device,
            rc_key_requests=ctx.config.rc_key_requests,
        )
    )
