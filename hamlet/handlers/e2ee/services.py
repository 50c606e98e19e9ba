"""Builds the e2ee services: device keys, the device list stream and key backup."""

from __future__ import annotations

from hamlet.handlers.common.service import BuildContext
from hamlet.handlers.container import Services
from hamlet.handlers.e2ee.device_lists import DeviceListHandler
from hamlet.handlers.e2ee.key_backup import KeyBackupHandler
from hamlet.handlers.e2ee.keys import E2eKeysHandler
from hamlet.storage.stores.e2e_keys import E2eKeysStore
from hamlet.storage.stores.key_backup import KeyBackupStore


def build(ctx: BuildContext, s: Services) -> None:
    store = E2eKeysStore(ctx.db)
    s.device_lists = ctx.own(DeviceListHandler(ctx.server_name, store, s.rooms_store, s.notifier))
    s.e2e_keys = ctx.own(
        E2eKeysHandler(
            server_name=ctx.server_name,
            clock=ctx.clock,
            store=store,
            device_lists=s.device_lists,
            devices=s.device_store,
            max_one_time_keys=ctx.config.limits.max_one_time_keys_per_algorithm,
        )
    )
    s.key_backup = ctx.own(KeyBackupHandler(KeyBackupStore(ctx.db)))
