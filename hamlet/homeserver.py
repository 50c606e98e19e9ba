"""One homeserver (one server_name): builds, starts and shuts down its services.

`HomeServer(config)` does nothing but remember the config. `setup()` opens
storage, migrates and builds every service in dependency order; if any
step fails, what was built is shut down before the error propagates.
`shutdown()` is idempotent and leaves no timer, task, connection or file.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Protocol

from hamlet.config import HomeServerConfig
from hamlet.core.crypto import (
    SigningKey,
    generate_signing_key,
    read_signing_keys,
    write_signing_keys,
)
from hamlet.handlers.accounts.account import AccountHandler
from hamlet.handlers.accounts.auth import AuthHandler
from hamlet.handlers.accounts.deactivation import DeactivationHandler
from hamlet.handlers.accounts.devices import DeviceHandler
from hamlet.handlers.accounts.login import LoginHandler
from hamlet.handlers.accounts.passwords import PasswordHasher
from hamlet.handlers.accounts.profile import ProfileHandler
from hamlet.handlers.accounts.ratelimits import AccountRatelimiters
from hamlet.handlers.accounts.register import RegistrationHandler
from hamlet.handlers.accounts.shared_secret import SharedSecretRegistration
from hamlet.handlers.accounts.uia import UiaHandler
from hamlet.handlers.accounts.uia_stages import stage_checkers
from hamlet.handlers.accounts.user_directory import UserDirectoryHandler
from hamlet.handlers.admin.event_reports import EventReportsHandler
from hamlet.handlers.admin.ratelimit_overrides import RatelimitOverrides
from hamlet.handlers.admin.rooms import AdminRoomsHandler
from hamlet.handlers.admin.server_notices import ServerNoticesHandler
from hamlet.handlers.admin.users import AdminUsersHandler
from hamlet.handlers.common.errors import LimitExceededError
from hamlet.handlers.common.notifier import Notifier
from hamlet.handlers.e2ee.device_lists import DeviceListHandler
from hamlet.handlers.e2ee.key_backup import KeyBackupHandler
from hamlet.handlers.e2ee.keys import E2eKeysHandler
from hamlet.handlers.history.pagination import PaginationHandler
from hamlet.handlers.history.reader import RoomReader
from hamlet.handlers.history.relations import RelationsHandler
from hamlet.handlers.history.serializer import EventSerializer
from hamlet.handlers.history.visibility import VisibilityHandler
from hamlet.handlers.media.repository import MediaRepository
from hamlet.handlers.push.rules import PushRulesHandler
from hamlet.handlers.rooms.creation import RoomCreationHandler
from hamlet.handlers.rooms.directory import DirectoryHandler
from hamlet.handlers.rooms.event_cache import EventCache
from hamlet.handlers.rooms.event_creation import EventCreator
from hamlet.handlers.rooms.membership import MembershipHandler
from hamlet.handlers.rooms.ratelimits import RoomRatelimiters
from hamlet.handlers.rooms.state import StateHandler
from hamlet.handlers.rooms.upgrade import RoomUpgradeHandler
from hamlet.handlers.spaces.hierarchy import SpaceHierarchyHandler
from hamlet.handlers.sync.filters import FilterHandler
from hamlet.handlers.sync.handler import SyncHandler
from hamlet.handlers.sync.rooms import RoomSyncBuilder
from hamlet.handlers.user_streams.account_data import AccountDataHandler
from hamlet.handlers.user_streams.presence import PresenceHandler
from hamlet.handlers.user_streams.receipts import ReceiptsHandler
from hamlet.handlers.user_streams.to_device import ToDeviceHandler
from hamlet.handlers.user_streams.typing import TypingHandler
from hamlet.runtime.blocking import run_blocking
from hamlet.runtime.clock import Clock
from hamlet.runtime.logcontext import LoggingContext
from hamlet.storage.database import Database
from hamlet.storage.engines.postgres import PgPool
from hamlet.storage.factory import make_database
from hamlet.storage.media_files import MediaFiles
from hamlet.storage.migrations import migrate
from hamlet.storage.stores.account_data import AccountDataStore
from hamlet.storage.stores.accounts import AccountStore
from hamlet.storage.stores.admin_rooms import AdminRoomsStore
from hamlet.storage.stores.admin_users import AdminUserStore
from hamlet.storage.stores.devices import DeviceStore
from hamlet.storage.stores.e2e_keys import E2eKeysStore
from hamlet.storage.stores.event_reports import EventReportStore
from hamlet.storage.stores.events import EventsStore, StoredEvent
from hamlet.storage.stores.filters import FilterStore
from hamlet.storage.stores.key_backup import KeyBackupStore
from hamlet.storage.stores.media import MediaStore
from hamlet.storage.stores.profiles import ProfilesStore
from hamlet.storage.stores.push_rules import PushRulesStore
from hamlet.storage.stores.ratelimit_overrides import RatelimitOverrideStore
from hamlet.storage.stores.receipts import ReceiptStore
from hamlet.storage.stores.registration_token_admin import RegistrationTokenAdminStore
from hamlet.storage.stores.registration_tokens import RegistrationTokenStore
from hamlet.storage.stores.room_history import RoomHistoryStore
from hamlet.storage.stores.rooms import RoomsStore
from hamlet.storage.stores.server_notices import ServerNoticeStore
from hamlet.storage.stores.to_device import ToDeviceStore
from hamlet.storage.stores.user_directory import UserDirectoryStore

logger = logging.getLogger(__name__)

# Requests that may wait for a slot, per slot of `limits.max_concurrent_requests`.
QUEUE_PER_SLOT = 8


class Service(Protocol):
    """What every service offers the HomeServer that owns it."""

    async def shutdown(self) -> None: ...


def load_or_create_signing_key(path: Path) -> SigningKey:
    if path.exists():
        keys = read_signing_keys(path.read_text())
        if keys:
            return keys[0]
    key = generate_signing_key()
    path.parent.mkdir(parents=True, exist_ok=True)
    # Created private (never briefly world-readable) and renamed into place,
    # so a crash cannot leave a half-written key behind.
    tmp = path.with_name(f".{path.name}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(write_signing_keys([key]))
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)
    return key


class HomeServer:
    # Accounts: users, devices, tokens, login and registration.
    account_store: AccountStore
    device_store: DeviceStore
    registration_token_store: RegistrationTokenStore
    password_hasher: PasswordHasher
    account_ratelimiters: AccountRatelimiters
    auth: AuthHandler
    devices: DeviceHandler
    login: LoginHandler
    uia: UiaHandler
    registration: RegistrationHandler
    account: AccountHandler
    shared_secret_registration: SharedSecretRegistration
    events_store: EventsStore
    rooms_store: RoomsStore
    profiles_store: ProfilesStore
    event_cache: EventCache
    room_state: StateHandler
    event_creator: EventCreator
    membership: MembershipHandler
    room_creation: RoomCreationHandler
    room_upgrade: RoomUpgradeHandler
    room_ratelimits: RoomRatelimiters
    directory: DirectoryHandler
    visibility: VisibilityHandler
    room_reader: RoomReader
    event_serializer: EventSerializer
    # Reading rooms: history, relations, profiles and the directories.
    room_history_store: RoomHistoryStore
    user_directory_store: UserDirectoryStore
    pagination: PaginationHandler
    relations: RelationsHandler
    profile: ProfileHandler
    user_directory: UserDirectoryHandler
    # User streams that /sync reads, and the notifier that wakes it.
    notifier: Notifier
    typing: TypingHandler
    account_data: AccountDataHandler
    receipts: ReceiptsHandler
    presence: PresenceHandler
    to_device: ToDeviceHandler
    filters: FilterHandler
    push_rules: PushRulesHandler
    sync: SyncHandler
    # End-to-end encryption: keys, the device list stream, key backup.
    device_lists: DeviceListHandler
    e2e_keys: E2eKeysHandler
    key_backup: KeyBackupHandler
    # Spaces and the rooms side of the admin API.
    spaces: SpaceHierarchyHandler
    admin_rooms: AdminRoomsHandler
    # The users side of the admin API.
    ratelimit_overrides: RatelimitOverrides
    registration_token_admin: RegistrationTokenAdminStore
    deactivation: DeactivationHandler
    admin_users: AdminUsersHandler
    event_reports: EventReportsHandler
    server_notices: ServerNoticesHandler
    # The media repository (uploads, downloads, thumbnails).
    media: MediaRepository

    def __init__(self, config: HomeServerConfig, *, pg_pool: PgPool | None = None) -> None:
        self.config = config
        self.server_name = config.server_name
        self.clock = Clock(config.server_name)
        self._pg_pool = pg_pool
        self._db: Database | None = None
        self._signing_key: SigningKey | None = None
        self._services: list[Service] = []
        self._request_slots: asyncio.Semaphore | None = None
        self._queued = 0
        self._max_queued = 0
        self.state = "created"

    @property
    def db(self) -> Database:
        if self._db is None:
            raise RuntimeError(f"homeserver {self.server_name} is not set up")
        return self._db

    @property
    def signing_key(self) -> SigningKey:
        if self._signing_key is None:
            raise RuntimeError(f"homeserver {self.server_name} is not set up")
        return self._signing_key

    def _own(self, service: Service) -> None:
        """Record a built service so shutdown() reaches it, in reverse build order."""
        self._services.append(service)

    async def setup(self) -> None:
        if self.state != "created":
            raise RuntimeError(f"setup() called on a homeserver that is {self.state}")
        self.state = "setting_up"
        with LoggingContext("setup", self.server_name):
            try:
                await self._setup()
            except BaseException:
                logger.exception(
                    "Setup of %s failed; shutting down what was built", self.server_name
                )
                await self.shutdown()
                raise
            self.state = "ready"

    async def _setup(self) -> None:
        self._signing_key = await run_blocking(
            load_or_create_signing_key, self.config.signing_key_path
        )
        self._db = make_database(self.config, self._pg_pool)
        await self._db.open()
        await migrate(self._db)
        cap = self.config.limits.max_concurrent_requests
        if cap is not None:
            self._request_slots = asyncio.Semaphore(cap)
            self._max_queued = cap * QUEUE_PER_SLOT
        self._build_services()
        await self._build_room_services()
        await self._build_user_stream_services()
        await self._build_e2e_services()
        self._build_sync()
        self._build_spaces_and_admin_rooms()
        self._build_admin_user_services()
        await self._build_media()
        await self.db.release_memory()

    def _build_services(self) -> None:
        """Build every service, dependencies first."""
        self.notifier = Notifier(self.clock)
        self._own(self.notifier)
        self._build_account_services()

    def _build_account_services(self) -> None:
        config = self.config
        self.account_store = AccountStore(self.db)
        self.device_store = DeviceStore(self.db)
        self.registration_token_store = RegistrationTokenStore(self.db)
        self.password_hasher = PasswordHasher(
            pepper=config.password_config.pepper,
            rounds=config.bcrypt_rounds,
            max_concurrent=config.limits.max_concurrent_password_hashes,
        )
        self.account_ratelimiters = AccountRatelimiters(self.clock, config)
        self._own(self.account_ratelimiters)
        self.auth = AuthHandler(self.clock, self.device_store)
        self._own(self.auth)
        self.devices = DeviceHandler(
            self.clock,
            self.device_store,
            self.auth,
            max_devices=config.limits.max_devices_per_user,
        )
        self.login = LoginHandler(
            config,
            self.account_store,
            self.password_hasher,
            self.devices,
            self.account_ratelimiters,
        )
        checkers = stage_checkers(
            clock=self.clock,
            server_name=self.server_name,
            login=self.login,
            limits=self.account_ratelimiters,
            tokens=self.registration_token_store,
        )
        self.uia = UiaHandler(self.clock, checkers)
        self._own(self.uia)
        self.registration = RegistrationHandler(
            config,
            self.clock,
            self.account_store,
            self.registration_token_store,
            self.password_hasher,
            self.devices,
            self.uia,
            self.account_ratelimiters,
        )
        self.account = AccountHandler(
            config, self.account_store, self.password_hasher, self.devices, self.auth, self.uia
        )
        self.shared_secret_registration = SharedSecretRegistration(
            self.clock, config, self.registration
        )
        self._own(self.shared_secret_registration)

    async def _build_room_services(self) -> None:
        """Rooms, events and state; they read their stream positions from storage."""
        self.events_store = EventsStore(self.db)
        self.rooms_store = RoomsStore(self.db)
        self.profiles_store = ProfilesStore(self.db)
        self.event_cache = EventCache(self.events_store)
        self.room_state = StateHandler(self.events_store, self.rooms_store, self.event_cache)
        self.event_creator = EventCreator(
            server_name=self.server_name,
            clock=self.clock,
            signing_key=self.signing_key,
            events=self.events_store,
            rooms=self.rooms_store,
            state=self.room_state,
            cache=self.event_cache,
        )
        await self.event_creator.load()
        self.membership = MembershipHandler(
            server_name=self.server_name,
            creator=self.event_creator,
            state=self.room_state,
            rooms=self.rooms_store,
            profiles=self.profiles_store,
        )
        self.room_ratelimits = RoomRatelimiters(self.clock, self.config)
        self._own(self.room_ratelimits)
        self.user_directory_store = UserDirectoryStore(self.db)
        self.directory = DirectoryHandler(
            server_name=self.server_name,
            rooms=self.rooms_store,
            state=self.room_state,
            creator=self.event_creator,
            counts=self.user_directory_store,
        )
        self.visibility = VisibilityHandler(self.room_state, self.rooms_store)
        self.room_reader = RoomReader(
            state=self.room_state,
            rooms=self.rooms_store,
            cache=self.event_cache,
            visibility=self.visibility,
        )
        self.event_serializer = EventSerializer(self.clock, self.event_cache, self.events_store)
        self._build_history_services()
        self.room_creation = RoomCreationHandler(
            server_name=self.server_name,
            default_room_version=self.config.default_room_version,
            creator=self.event_creator,
            membership=self.membership,
            rooms=self.rooms_store,
        )
        self.room_upgrade = RoomUpgradeHandler(
            server_name=self.server_name,
            creator=self.event_creator,
            membership=self.membership,
            state=self.room_state,
            rooms=self.rooms_store,
            events=self.events_store,
        )

    def _build_history_services(self) -> None:
        """History, relations (and the serializer's bundled aggregations), profiles."""
        self.room_history_store = RoomHistoryStore(self.db)
        creator = self.event_creator
        self.pagination = PaginationHandler(
            history=self.room_history_store,
            rooms=self.rooms_store,
            state=self.room_state,
            cache=self.event_cache,
            visibility=self.visibility,
            serializer=self.event_serializer,
            current_stream=lambda: creator.current_stream,
        )
        self.relations = RelationsHandler(
            history=self.room_history_store,
            cache=self.event_cache,
            visibility=self.visibility,
            serializer=self.event_serializer,
            pagination=self.pagination,
        )
        self.event_serializer.aggregator = self.relations.aggregate
        self.profile = ProfileHandler(
            config=self.config,
            accounts=self.account_store,
            profiles=self.profiles_store,
            rooms=self.rooms_store,
            membership=self.membership,
        )
        self.user_directory = UserDirectoryHandler(
            config=self.config,
            store=self.user_directory_store,
            rooms=self.rooms_store,
            state=self.room_state,
        )

    async def _build_user_stream_services(self) -> None:
        """Typing, receipts, account data, presence, to-device, filters.

        The persistent streams read their positions from storage, so sync
        tokens stay valid across a restart.
        """
        self.typing = TypingHandler(self.clock, self.notifier, self.membership)
        self._own(self.typing)
        self.account_data = AccountDataHandler(
            AccountDataStore(self.db),
            self.notifier,
            max_size=self.config.limits.max_account_data_size,
            max_entries=self.config.limits.max_account_data_entries,
        )
        await self.account_data.load()
        self._own(self.account_data)
        self.receipts = ReceiptsHandler(
            self.clock, ReceiptStore(self.db), self.notifier, self.membership, self.account_data
        )
        await self.receipts.load()
        self._own(self.receipts)
        self.presence = PresenceHandler(
            self.clock,
            self.notifier,
            self.rooms_store,
            enabled=self.config.presence.enabled,
            max_status_msg_length=self.config.limits.max_status_msg_length,
        )
        self._own(self.presence)
        self.to_device = ToDeviceHandler(
            self.server_name,
            self.clock,
            ToDeviceStore(self.db),
            self.notifier,
            self.devices,
            limits=self.config.limits,
            rc_to_device=self.config.rc_to_device,
            rc_key_requests=self.config.rc_key_requests,
        )
        await self.to_device.load()
        self._own(self.to_device)
        self.filters = FilterHandler(self.server_name, FilterStore(self.db))
        self._own(self.filters)
        for provider in (
            self.typing,
            self.receipts,
            self.account_data,
            self.to_device,
            self.presence,
        ):
            self.notifier.register_stream(provider.name, provider)

    async def _build_e2e_services(self) -> None:
        """Device keys, cross-signing, the device list stream and key backup."""
        e2e_store = E2eKeysStore(self.db)
        self.device_lists = DeviceListHandler(e2e_store, self.rooms_store, self.notifier)
        await self.device_lists.load()
        self._own(self.device_lists)
        self.notifier.register_stream(self.device_lists.name, self.device_lists)
        self.devices.device_lists = self.device_lists
        self.e2e_keys = E2eKeysHandler(
            server_name=self.server_name,
            clock=self.clock,
            store=e2e_store,
            device_lists=self.device_lists,
            devices=self.devices,
            max_one_time_keys=self.config.limits.max_one_time_keys_per_algorithm,
        )
        self._own(self.e2e_keys)
        self.key_backup = KeyBackupHandler(KeyBackupStore(self.db))
        self._own(self.key_backup)

    def _build_sync(self) -> None:
        self.push_rules = PushRulesHandler(
            store=PushRulesStore(self.db),
            account_data=self.account_data,
            history=self.room_history_store,
            state=self.room_state,
        )
        self._own(self.push_rules)
        self.notifier.register_stream("events", self.event_creator)
        self.event_creator.add_listener(self._notify_event)
        self.sync = SyncHandler(
            notifier=self.notifier,
            rooms=self.rooms_store,
            room_builder=RoomSyncBuilder(
                events=self.events_store,
                history=self.room_history_store,
                rooms=self.rooms_store,
                state=self.room_state,
                visibility=self.visibility,
                serializer=self.event_serializer,
                push_rules=self.push_rules,
            ),
            typing=self.typing,
            receipts=self.receipts,
            account_data=self.account_data,
            to_device=self.to_device,
            presence=self.presence,
            push_rules=self.push_rules,
            e2e_keys=self.e2e_keys,
            device_lists=self.device_lists,
        )

    def _notify_event(self, stored: StoredEvent) -> None:
        event = stored.event
        users = [event.state_key] if event.type == "m.room.member" and event.state_key else []
        self.notifier.notify(
            "events", self.event_creator.current_stream, rooms=[event.room_id], users=users
        )

    def _build_spaces_and_admin_rooms(self) -> None:
        self.spaces = SpaceHierarchyHandler(
            server_name=self.server_name,
            token_key=bytes(self.signing_key.nacl_key),
            rooms=self.rooms_store,
            state=self.room_state,
            cache=self.event_cache,
            restricted=self.membership.restricted,
        )
        creator = self.event_creator
        self.admin_rooms = AdminRoomsHandler(
            server_name=self.server_name,
            clock=self.clock,
            store=AdminRoomsStore(self.db),
            rooms=self.rooms_store,
            accounts=self.account_store,
            state=self.room_state,
            cache=self.event_cache,
            creator=creator,
            membership=self.membership,
            room_creation=self.room_creation,
            serializer=self.event_serializer,
            history=self.room_history_store,
            current_stream=lambda: creator.current_stream,
        )

    def _build_admin_user_services(self) -> None:
        """Admin API (users side): overrides, user admin, event reports, server notices."""
        self.ratelimit_overrides = RatelimitOverrides(RatelimitOverrideStore(self.db))
        self._own(self.ratelimit_overrides)
        self.room_ratelimits.overrides = self.ratelimit_overrides
        self.registration_token_admin = RegistrationTokenAdminStore(self.db)
        admin_user_store = AdminUserStore(self.db)
        self.deactivation = DeactivationHandler(
            account=self.account,
            accounts=self.account_store,
            profiles=self.profiles_store,
            erased=admin_user_store,
            rooms=self.rooms_store,
            membership=self.membership,
            uia=self.uia,
        )
        self.admin_users = AdminUsersHandler(
            config=self.config,
            clock=self.clock,
            store=admin_user_store,
            accounts=self.account_store,
            profiles=self.profiles_store,
            rooms=self.rooms_store,
            auth=self.auth,
            devices=self.devices,
            account=self.account,
            registration=self.registration,
            deactivation=self.deactivation,
            profile=self.profile,
            overrides=self.ratelimit_overrides,
        )
        self._own(self.admin_users)
        self.event_reports = EventReportsHandler(
            clock=self.clock,
            store=EventReportStore(self.db),
            room_reader=self.room_reader,
            state=self.room_state,
            events=self.events_store,
        )
        self.server_notices = ServerNoticesHandler(
            config=self.config,
            clock=self.clock,
            store=ServerNoticeStore(self.db),
            accounts=self.account_store,
            profiles=self.profiles_store,
            rooms=self.rooms_store,
            room_creation=self.room_creation,
            membership=self.membership,
            creator=self.event_creator,
            account_data=self.account_data,
        )

    async def _build_media(self) -> None:
        self.media = MediaRepository(
            server_name=self.server_name,
            clock=self.clock,
            config=self.config,
            store=MediaStore(self.db),
            files=MediaFiles(self.config.media_store_path),
        )
        self._own(self.media)
        await self.media.prepare()

    async def start(self) -> None:
        if self.state != "ready":
            raise RuntimeError(f"start() called on a homeserver that is {self.state}")
        self.clock.start()
        self.clock.call_when_running(self._start_background_work)
        self.state = "running"

    def _start_background_work(self) -> None:
        self.db.start_txn_logging(self.clock)
        self.admin_users.start()
        self.account_ratelimiters.start()
        self.room_ratelimits.start()
        self.presence.start()
        self.to_device.start()
        self.media.start()
        logger.info("Homeserver %s running", self.server_name)

    # Rough per-entry sizes for the memory estimate (measured on typical entries).
    _BASE_BYTES = 400_000
    _EVENT_BYTES = 3_000
    _STATE_ROOM_BYTES = 8_000
    _ENTRY_BYTES = 300

    def memory_estimate_bytes(self) -> int:
        """An estimate of what this homeserver holds in memory (for /metrics)."""
        if self.state not in ("ready", "running"):
            return 0
        entries = (
            self.notifier.memory_usage()
            + self.typing.memory_usage()
            + self.presence.memory_usage()
            + len(self.auth)
        )
        return (
            self._BASE_BYTES
            + len(self.event_cache) * self._EVENT_BYTES
            + self.room_state.cached_rooms() * self._STATE_ROOM_BYTES
            + entries * self._ENTRY_BYTES
        )

    def is_idle(self) -> bool:
        """No sync waiting and no background job running: safe to hibernate."""
        return self.sync.active_syncs == 0 and not self.clock.has_running_tasks()

    @contextlib.asynccontextmanager
    async def request_slot(self) -> AsyncIterator[None]:
        """One of the tenant's `limits.max_concurrent_requests` slots.

        Beyond the cap requests queue; past a bounded queue they get a 429,
        so a flood costs this tenant its own latency and nobody else's.
        """
        slots = self._request_slots
        if slots is None:
            yield
            return
        if slots.locked() and self._queued >= self._max_queued:
            raise LimitExceededError(1000, "This homeserver is busy; try again shortly")
        self._queued += 1
        try:
            await slots.acquire()
        finally:
            self._queued -= 1
        try:
            yield
        finally:
            slots.release()

    async def shutdown(self) -> None:
        if self.state in ("shut_down", "shutting_down"):
            return
        self.state = "shutting_down"
        with LoggingContext("shutdown", self.server_name):
            await self.clock.shutdown()
            for service in reversed(self._services):
                try:
                    await service.shutdown()
                except Exception:
                    logger.exception("Shutting down %r failed", service)
            self._services.clear()
            if self._db is not None:
                try:
                    await self._db.close()
                except Exception:
                    logger.exception("Closing the database failed")
            self.state = "shut_down"
