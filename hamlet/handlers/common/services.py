"""Builds the common services: notifier, request slots, rate limit overrides, shared stores."""

from __future__ import annotations

from hamlet.handlers.common.memberships import MembershipCache
from hamlet.handlers.common.notifier import Notifier
from hamlet.handlers.common.ratelimit_overrides import RatelimitOverrides
from hamlet.handlers.common.request_slots import RequestSlots
from hamlet.handlers.common.service import BuildContext
from hamlet.handlers.container import Services
from hamlet.storage.stores.accounts import AccountStore
from hamlet.storage.stores.devices import DeviceStore
from hamlet.storage.stores.events import EventsStore
from hamlet.storage.stores.profiles import ProfilesStore
from hamlet.storage.stores.ratelimit_overrides import RatelimitOverrideStore
from hamlet.storage.stores.room_history import RoomHistoryStore
from hamlet.storage.stores.rooms import RoomsStore
from hamlet.storage.stores.user_directory import UserDirectoryStore


def build(ctx: BuildContext, s: Services) -> None:
    db = ctx.db
    s.notifier = ctx.own(Notifier(ctx.clock))
    # Taken by the front door per request, and by the syncs while they build.
    limits = ctx.config.limits
    s.request_slots = RequestSlots(limits.max_concurrent_requests, limits.max_queued_requests)
    # Read by the rooms' message rate limiter, written through the admin API.
    s.ratelimit_overrides = ctx.own(RatelimitOverrides(RatelimitOverrideStore(db)))
    # Stores more than one package reads; a package builds its private ones itself.
    s.account_store = AccountStore(db)
    s.device_store = DeviceStore(db)
    s.events_store = EventsStore(db)
    s.rooms_store = RoomsStore(db)
    s.memberships = ctx.own(MembershipCache(s.rooms_store, s.notifier))
    s.profiles_store = ProfilesStore(db)
    s.room_history_store = RoomHistoryStore(db)
    s.user_directory_store = UserDirectoryStore(db)
