"""One homeserver (one server_name): builds, starts and shuts down its services.

`HomeServer(config)` does nothing but remember the config. `setup()` opens
storage, migrates, has every package build its services in dependency order
and loads them; if any step fails, what was built is shut down before the
error propagates. `shutdown()` is idempotent and leaves no timer, task,
connection or file.
"""

from __future__ import annotations

import contextlib
import logging
import os
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

from hamlet.config import HomeServerConfig
from hamlet.core.crypto import (
    SigningKey,
    generate_signing_key,
    read_signing_keys,
    write_signing_keys,
)
from hamlet.handlers.accounts import services as accounts
from hamlet.handlers.admin import services as admin
from hamlet.handlers.appservice import services as appservice
from hamlet.handlers.common import services as common
from hamlet.handlers.common.service import BuildContext, Service, ServiceRegistry
from hamlet.handlers.container import Services
from hamlet.handlers.e2ee import services as e2ee
from hamlet.handlers.federation import services as federation
from hamlet.handlers.federation.sender import services as federation_sender
from hamlet.handlers.history import services as history
from hamlet.handlers.media import services as media
from hamlet.handlers.push import services as push
from hamlet.handlers.rooms import services as rooms
from hamlet.handlers.search import services as search
from hamlet.handlers.sliding_sync import services as sliding_sync
from hamlet.handlers.spaces import services as spaces
from hamlet.handlers.sync import services as sync
from hamlet.handlers.user_streams import services as user_streams
from hamlet.runtime.blocking import run_file_io
from hamlet.runtime.clock import Clock
from hamlet.runtime.http_client import HttpClient
from hamlet.runtime.logcontext import LoggingContext
from hamlet.runtime.lru import LruCache
from hamlet.storage.database import Database
from hamlet.storage.factory import make_database
from hamlet.storage.migrations import migrate

if TYPE_CHECKING:
    from hamlet.storage.engines.postgres import PgPool

logger = logging.getLogger(__name__)

PackageBuilder = Callable[[BuildContext, Services], None]

#: Each package's builder, dependencies first: e2ee before accounts (devices
#: bump the device list stream), rooms before accounts (profiles change
#: memberships), application service registrations before rooms and
#: accounts (aliases, tokens and registration consult them), and each later
#: package reads what the earlier ones built.
PACKAGE_BUILDERS: tuple[PackageBuilder, ...] = (
    common.build,
    federation.build_transport,
    appservice.build_registry,
    e2ee.build,
    rooms.build,
    accounts.build,
    history.build,
    search.build,
    user_streams.build,
    appservice.build,
    push.build,
    sync.build,
    sliding_sync.build,
    spaces.build,
    admin.build,
    media.build,
    federation.build,
    federation_sender.build,
)


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


class HomeServer(Services):
    builders: ClassVar[tuple[PackageBuilder, ...]] = PACKAGE_BUILDERS

    # What a homeserver holds besides its services' own estimates.
    BASE_BYTES: ClassVar[int] = 400_000

    def __init__(
        self,
        config: HomeServerConfig,
        *,
        pg_pool: PgPool | None = None,
        http_client: HttpClient | None = None,
    ) -> None:
        self.config = config
        self.server_name = config.server_name
        self.clock = Clock(config.server_name)
        self._pg_pool = pg_pool
        # The host shares one client among its tenants; a homeserver built
        # on its own gets a private one, created at setup and closed at shutdown.
        self._http_client = http_client
        self._owns_http_client = http_client is None
        self._db: Database | None = None
        self._signing_key: SigningKey | None = None
        self._registry = ServiceRegistry()
        #: Seconds each step of setup() took, in order (logged once set up).
        self.setup_timings: dict[str, float] = {}
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

    @property
    def http_client(self) -> HttpClient:
        """The outbound HTTP client (the host's, shared by its tenants, or a private one)."""
        if self._http_client is None:
            raise RuntimeError(f"homeserver {self.server_name} is not set up")
        return self._http_client

    @property
    def services(self) -> tuple[Service, ...]:
        """The registered services, in build order (empty once shut down)."""
        return tuple(self._registry)

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
        timings = self.setup_timings
        lap = time.monotonic()

        def step_done(name: str) -> None:
            nonlocal lap
            now = time.monotonic()
            timings[name] = now - lap
            lap = now

        signing_key = await run_file_io(load_or_create_signing_key, self.config.signing_key_path)
        self._signing_key = signing_key
        step_done("signing_key")
        self._db = db = make_database(self.config, self._pg_pool)
        await db.open()
        step_done("database")
        await migrate(db)
        step_done("migrations")
        if self._http_client is None:
            self._http_client = HttpClient()
        ctx = BuildContext(
            self.config,
            self.clock,
            db,
            signing_key,
            http_client=self._http_client,
            registry=self._registry,
        )
        for build in self.builders:
            build(ctx, self)
        step_done("services")
        # Stream positions and state are read once everything exists, so a
        # sync token stays valid across a restart.
        await self._registry.load()
        await db.release_memory()
        step_done("load")
        # Where a slow start went, for the operator (and bench/startup.py).
        logger.info(
            "Set up in %.3fs: %s",
            sum(timings.values()),
            " ".join(f"{name}={seconds:.3f}" for name, seconds in timings.items()),
        )

    async def start(self) -> None:
        if self.state != "ready":
            raise RuntimeError(f"start() called on a homeserver that is {self.state}")
        self.clock.start()
        # Deferred like any call_when_running, but awaited: a service whose
        # start() fails fails the homeserver's start, which then rolls
        # back as a failed setup() does.
        try:
            await self.clock.when_running(self._start_background_work)
        except BaseException as e:
            if isinstance(e, Exception):
                with LoggingContext("start", self.server_name):
                    logger.exception("Start of %s failed; shutting it down", self.server_name)
            await self.shutdown()
            raise
        self.state = "running"

    def _start_background_work(self) -> None:
        self.db.start_txn_logging(self.clock)
        self._registry.start()
        logger.info("Homeserver %s running", self.server_name)

    def memory_estimate_bytes(self) -> int:
        """An estimate of what this homeserver holds in memory (for /metrics)."""
        if self.state not in ("ready", "running"):
            return 0
        return self.BASE_BYTES + self._registry.memory_usage()

    def clear_caches(self) -> None:
        """Drop every service's caches; what they hold is read again from storage."""
        self._registry.clear_caches()

    def caches(self) -> dict[str, LruCache[Any, Any]]:
        """The LRU caches the services hold, by `Service.attribute` (for /metrics)."""
        found: dict[str, LruCache[Any, Any]] = {}
        for service in self._registry:
            for attr, value in getattr(service, "__dict__", {}).items():
                if isinstance(value, LruCache):
                    found[f"{type(service).__name__}.{attr.lstrip('_')}"] = value
        return found

    def is_idle(self) -> bool:
        """No sync waiting and no background job running: safe to hibernate."""
        return (
            self.sync.active_syncs == 0
            and self.sliding_sync.active_syncs == 0
            and not self.clock.has_running_tasks()
        )

    def request_slot(self) -> contextlib.AbstractAsyncContextManager[None]:
        """One of the tenant's `limits.max_concurrent_requests` slots (request_slots.py)."""
        return self.request_slots.slot()

    async def shutdown(self) -> None:
        if self.state in ("shut_down", "shutting_down"):
            return
        self.state = "shutting_down"
        with LoggingContext("shutdown", self.server_name):
            await self.clock.shutdown()
            await self._registry.shutdown()
            if self._db is not None:
                try:
                    await self._db.close()
                except Exception:
                    logger.exception("Closing the database failed")
            if self._owns_http_client and self._http_client is not None:
                await self._http_client.close()
                self._http_client = None
            self.state = "shut_down"
