"""Tenants at runtime: provision, suspend, resume, hibernate, wake and remove.

The tenants listed in the main config are static; tenants added at runtime
are written under `host.tenants_dir` (a config file and data directory
each) and recorded in the registry there (`hamlet.host.records`, a row
each), so a restarted process brings
back exactly the tenants that existed, in the state they were in.

Hibernation rule: a tenant idle for `host.hibernate_after` with no request
in flight, no active /sync and no background job running is shut down
completely; only its config stays in memory. Its periodic maintenance
(rate-limiter pruning, presence and UIA/nonce expiry, stats) is deferred:
that state lives in memory and is rebuilt empty on wake, so nothing is
lost by not running it. The next request wakes the tenant.

Provisioning and removal are crash-consistent: see `hamlet.host.journal`
for the order of their steps and what startup does with an unfinished one.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import os
import re
import secrets
import time
import traceback
from collections.abc import Awaitable, Callable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

import yaml

from hamlet.api.server import HOST_SERVER_NAME
from hamlet.config import (
    ConfigError,
    HomeServerConfig,
    HostConfig,
    load_config,
    validate_config,
)
from hamlet.config._reader import Invalid
from hamlet.config.homeserver import validate_server_name
from hamlet.homeserver import HomeServer
from hamlet.host import journal
from hamlet.host.listeners import ListenError
from hamlet.host.records import RecordStore, TenantRecord
from hamlet.host.registry import HostTaken, TenantRegistry
from hamlet.host.tenant import Tenant, TenantState
from hamlet.runtime.blocking import run_file_io
from hamlet.runtime.clock import Clock, LoopingCall
from hamlet.runtime.http_client import HttpClient
from hamlet.runtime.logcontext import LoggingContext
from hamlet.runtime.memory import release_freed_memory
from hamlet.runtime.timeout import with_timeout
from hamlet.storage.errors import StorageError

if TYPE_CHECKING:
    from hamlet.storage.engines.postgres import PgPool

logger = logging.getLogger(__name__)

HIBERNATE_CHECK_S = 5.0
#: Homeservers built at once by wakes. A wake is mostly event-loop work
#: (building services) between short database reads, so more at once do
#: not finish sooner: 100 simultaneous wakes interleaved each took as long
#: as all of them, and the awake tenants' requests queued behind every one.
#: In turns, the first wakes are served early and the loop stays shared.
WAKES_AT_ONCE = 4
#: Keys a provisioned tenant's config may not set: the host decides them
#: (where its data lives, how it is reached), or they are the process's
#: (listeners, logs, tracing) and would be ignored or reach outside its data.
HOST_LEVEL_KEYS = frozenset(
    {
        "server_name",
        "database",
        "signing_key_path",
        "media_store_path",
        "listeners",
        "tenants",
        "host",
        "log_config",
        "pid_file",
        "opentracing",
        "daemonize",
    }
)
#: An own listener's bind address: an IP literal or host name, no more.
MAX_BIND_ADDRESS_LENGTH = 255


class TenantError(Exception):
    """A provisioning request that can't be done; `status` is the HTTP status to answer."""

    def __init__(self, status: int, message: str, errors: list[str] | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.errors = errors or []


Closer = Callable[[], Awaitable[None]]
#: Called with the name of each step of provisioning and removal as it is
#: reached; tests raise there to stand for the process being killed.
CrashPoint = Callable[[str], None]


def _no_crash(step: str) -> None:
    return None


class ListenerOpener(Protocol):
    async def __call__(self, tenant: Tenant, address: str, port: int) -> tuple[int, Closer]:
        """Serve only `tenant` on address:port; returns the bound port and a closer."""


def schema_for(server_name: str) -> str:
    """A PostgreSQL schema name for a tenant: readable, unique, injection-proof."""
    slug = re.sub(r"[^a-z0-9]+", "_", server_name.lower()).strip("_")[:40]
    digest = hashlib.sha256(server_name.lower().encode()).hexdigest()[:8]
    return f"t_{slug}_{digest}"


class TenantManager:
    def __init__(
        self,
        host_config: HostConfig,
        static_configs: list[HomeServerConfig],
        registry: TenantRegistry,
    ) -> None:
        self.host_config = host_config
        self.static_configs = static_configs
        self.registry = registry
        self.clock = Clock(HOST_SERVER_NAME)
        self.records: dict[str, TenantRecord] = {}
        self.store = RecordStore(host_config.tenants_dir)
        self._pg_pool: PgPool | None = None
        # The one outbound HTTP client of the process: every tenant's
        # federation requests share its connection pools.
        self.http_client = HttpClient()
        self._lock = asyncio.Lock()
        self._wake_slots = asyncio.Semaphore(WAKES_AT_ONCE)
        self._sweeper: LoopingCall | None = None
        self.open_listener: ListenerOpener | None = None
        self._listeners: dict[str, Closer] = {}
        self.listen_ports: dict[str, int] = {}
        #: Why a tenant did not come up (its traceback is in the log).
        self.start_failures: dict[str, str] = {}
        self.crash_point: CrashPoint = _no_crash
        tenant_db = host_config.tenant_database
        if tenant_db is not None and tenant_db.is_postgres:
            # Imported here: a host on SQLite never loads asyncpg.
            from hamlet.storage.engines.postgres import PgPool

            self._pg_pool = PgPool(tenant_db.pg_dsn_kwargs(), min_size=1, max_size=tenant_db.cp_max)

    @property
    def tenants_dir(self) -> Path:
        return self.host_config.tenants_dir

    # --- lifecycle of the host ---

    async def start(self) -> None:
        self.clock.start()
        for config in self.static_configs:
            await self._bring_up_static(config)
        records = await run_file_io(self.store.open)
        await self._recover({r.server_name.lower() for r in records})
        for record in records:
            await self._bring_up_record(record)
        if self.host_config.hibernate_after_ms > 0:
            self._sweeper = self.clock.looping_call(self.hibernate_idle, HIBERNATE_CHECK_S)

    async def _bring_up_static(self, config: HomeServerConfig) -> None:
        hs = self._new_hs(config)
        try:
            await hs.setup()
            await hs.start()
        except Exception as e:
            # setup() and start() logged the traceback under the tenant's context.
            self.start_failures[config.server_name] = f"{type(e).__name__}: {e}"
            logger.error("Tenant %s failed to start: %s", config.server_name, e)
            return
        tenant = Tenant(config, hs, self.clock, waker=self._wake, static=True)
        self.registry.add_tenant(tenant)

    async def _bring_up_record(self, record: TenantRecord) -> None:
        # Kept even if it does not come up: it stays the tenant's, and removable.
        self.records[record.server_name.lower()] = record
        try:
            config, _warnings = await run_file_io(load_config, Path(record.config_path))
        except (ConfigError, OSError) as e:
            self._start_failed(record.server_name, f"broken config: {e}")
            return
        tenant = Tenant(config, None, self.clock, waker=self._wake, static=False)
        try:
            self.registry.add_tenant(tenant)
        except HostTaken as e:
            # Provisioned before names were checked: the first owner keeps the host.
            self._start_failed(record.server_name, f"its hosts are taken ({e})")
            return
        if record.state == TenantState.SUSPENDED.value:
            tenant.state = TenantState.SUSPENDED
            return
        # Persisted tenants come back hibernated and wake on first use when
        # hibernation is on; otherwise they start now.
        try:
            if self.host_config.hibernate_after_ms <= 0:
                tenant.hs = await self._start_hs(config)
                tenant.state = TenantState.ACTIVE
            await self._open_own_listener(tenant, record)
        except Exception as e:
            logger.exception("Tenant %s failed to start; the others go on", config.server_name)
            self.registry.remove_tenant(tenant.server_name)
            await tenant.shut_down(TenantState.REMOVED)
            self._start_failed(record.server_name, f"{type(e).__name__}: {e}")
            traceback.clear_frames(e.__traceback__)

    def _start_failed(self, server_name: str, why: str) -> None:
        self.start_failures[server_name] = why
        logger.error("Tenant %s is down: %s", server_name, why)

    async def _open_own_listener(self, tenant: Tenant, record: TenantRecord) -> None:
        if record.listen is None or self.open_listener is None:
            return
        address, port = record.listen
        bound, closer = await self.open_listener(tenant, address, port)
        self._listeners[tenant.server_name.lower()] = closer
        self.listen_ports[tenant.server_name.lower()] = bound

    async def _close_own_listener(self, tenant: Tenant) -> None:
        closer = self._listeners.pop(tenant.server_name.lower(), None)
        self.listen_ports.pop(tenant.server_name.lower(), None)
        if closer is not None:
            await closer()

    async def stop(self) -> None:
        with LoggingContext("host-shutdown", HOST_SERVER_NAME):
            await self.clock.shutdown()
            for closer in self._listeners.values():
                await closer()
            self._listeners.clear()
            for tenant in self.registry.tenants():
                self.registry.remove_tenant(tenant.server_name)
                await tenant.shut_down(TenantState.REMOVED)
            if self._pg_pool is not None:
                await self._pg_pool.close()
            await self.http_client.close()
            await run_file_io(self.store.close)

    # --- building homeservers ---

    def _new_hs(self, config: HomeServerConfig) -> HomeServer:
        shared = (
            self._pg_pool if config.database.is_postgres and self._shares_pool(config) else None
        )
        return HomeServer(config, pg_pool=shared, http_client=self.http_client)

    def _shares_pool(self, config: HomeServerConfig) -> bool:
        tenant_db = self.host_config.tenant_database
        return (
            tenant_db is not None
            and tenant_db.is_postgres
            and config.database.pg_dsn_kwargs() == tenant_db.pg_dsn_kwargs()
        )

    async def _start_hs(self, config: HomeServerConfig) -> HomeServer:
        hs = self._new_hs(config)
        await hs.setup()
        try:
            await hs.start()
        except BaseException:
            await hs.shutdown()
            raise
        return hs

    async def _wake(self, tenant: Tenant) -> HomeServer:
        with LoggingContext(f"wake-{tenant.server_name}", HOST_SERVER_NAME):
            started = time.monotonic()
            async with self._wake_slots:
                hs = await self._start_hs(tenant.config)
            logger.info(
                "Woke tenant %s in %.1f ms", tenant.server_name, (time.monotonic() - started) * 1000
            )
            return hs

    # --- provisioning ---

    def _tenant_config(
        self, server_name: str, overrides: Mapping[str, Any], data_dir: Path
    ) -> dict[str, Any]:
        refused = sorted(k for k in overrides if k in HOST_LEVEL_KEYS)
        if refused:
            raise TenantError(
                400,
                "invalid tenant config",
                [
                    f"{key}: the host sets this for a provisioned tenant "
                    "(own listener: the request's `listen`)"
                    for key in refused
                ],
            )
        raw: dict[str, Any] = dict(overrides)
        raw["server_name"] = server_name
        raw.setdefault("public_baseurl", f"https://{server_name}/")
        # A provisioned tenant is reached on the host's shared listeners, so
        # its name delegates federation there.
        raw.setdefault("serve_server_wellknown", True)
        raw.setdefault("registration_shared_secret", secrets.token_urlsafe(32))
        raw["signing_key_path"] = str(data_dir / "signing.key")
        raw["media_store_path"] = str(data_dir / "media_store")
        raw["listeners"] = []
        tenant_db = self.host_config.tenant_database
        if tenant_db is not None and tenant_db.is_postgres:
            args = {k: v for k, v in tenant_db.args.items() if k not in ("schema",)}
            args["schema"] = schema_for(server_name)
            raw["database"] = {"name": "psycopg2", "args": args}
        else:
            raw["database"] = {
                "name": "sqlite3",
                "args": {"database": str(data_dir / "homeserver.db")},
            }
        return raw

    async def add(
        self,
        server_name: str,
        overrides: Mapping[str, Any] | None = None,
        *,
        listen: tuple[str, int] | None = None,
    ) -> Tenant:
        """Create a tenant's config, key and storage and bring it up.

        On any failure everything built is shut down and removed again; the
        other tenants never notice.
        """
        with LoggingContext(f"provision-{server_name}", HOST_SERVER_NAME):
            async with self._lock:
                return await self._add(server_name, overrides or {}, listen)

    async def _add(
        self, server_name: str, overrides: Mapping[str, Any], listen: tuple[str, int] | None
    ) -> Tenant:
        try:
            server_name = validate_server_name(server_name)
        except Invalid as e:
            raise TenantError(400, f"invalid server name: {e}") from None
        if listen is not None:
            _check_listen(*listen)
        if self.registry.get_tenant(server_name) is not None or server_name.lower() in self.records:
            raise TenantError(409, f"tenant {server_name} already exists")
        data_dir = self.tenants_dir / server_name
        if await run_file_io(data_dir.exists):
            raise TenantError(409, f"data for {server_name} already exists at {data_dir}")
        raw = self._tenant_config(server_name, overrides, data_dir)
        try:
            config, warnings = validate_config(raw, config_dir=data_dir)
        except ConfigError as e:
            raise TenantError(400, "invalid tenant config", e.errors) from None
        clashes = self.registry.host_clashes(config)
        if clashes:
            raise TenantError(409, f"{server_name} cannot be served here", clashes)
        for warning in warnings:
            logger.warning("Tenant %s config: %s", server_name, warning)
        try:
            await run_file_io(journal.begin_add, data_dir)
        except OSError as e:
            raise TenantError(500, f"cannot create {data_dir}: {e.strerror}") from None
        record = TenantRecord(
            server_name=server_name,
            config_path=str(data_dir / "homeserver.yaml"),
            data_dir=str(data_dir),
            state=TenantState.ACTIVE.value,
            created_ts=int(time.time() * 1000),
            listen=listen,
        )
        tenant = Tenant(config, None, self.clock, waker=self._wake, static=False)
        try:
            await self._build(tenant, record, raw)
        except BaseException as e:
            # A crash here leaves the directory marked: startup rolls it back.
            logger.exception("Provisioning %s failed; undoing it", server_name)
            self.records.pop(server_name.lower(), None)
            if self.registry.get_tenant(server_name) is tenant:
                self.registry.remove_tenant(server_name)
            await self._close_own_listener(tenant)
            await tenant.shut_down(TenantState.REMOVED)
            await self._purge_data(data_dir, config)
            # The logged traceback's frames would keep the half-built
            # homeserver alive for as long as the log record lives.
            traceback.clear_frames(e.__traceback__)
            if not isinstance(e, Exception):
                raise
            if isinstance(e, ListenError):
                raise TenantError(409, str(e)) from e
            raise TenantError(500, f"provisioning {server_name} failed: {e}") from e
        self.crash_point("add:committed")
        await run_file_io(journal.finish, data_dir, journal.Step.ADD)
        logger.info("Provisioned tenant %s", server_name)
        return tenant

    async def _build(self, tenant: Tenant, record: TenantRecord, raw: dict[str, Any]) -> None:
        """Every step of provisioning up to its commit: the registry listing it."""
        await run_file_io(_write_config, Path(record.config_path), raw)
        self.crash_point("add:files")
        tenant.hs = hs = self._new_hs(tenant.config)
        await hs.setup()
        await hs.start()
        tenant.state = TenantState.ACTIVE
        self.crash_point("add:started")
        self.registry.add_tenant(tenant)
        await self._open_own_listener(tenant, record)
        self.records[tenant.server_name.lower()] = record
        await run_file_io(self.store.put, record)

    def _require(self, server_name: str) -> Tenant:
        tenant = self.registry.get_tenant(server_name)
        if tenant is None:
            raise TenantError(404, f"no tenant {server_name}")
        return tenant

    async def remove(self, server_name: str, *, purge: bool = False) -> None:
        """Stop routing to the tenant, drain its requests, shut it down, forget it.

        A tenant that failed to come up at startup has no homeserver but
        is removed (and purged) all the same.
        """
        with LoggingContext(f"remove-{server_name}", HOST_SERVER_NAME):
            async with self._lock:
                tenant = self.registry.get_tenant(server_name)
                if tenant is not None and tenant.static:
                    raise TenantError(400, f"{server_name} is in the main config; edit it there")
                record = self.records.get(server_name.lower())
                if record is None:
                    raise TenantError(404, f"no tenant {server_name}")
                data_dir = Path(record.data_dir)
                await run_file_io(journal.begin_remove, data_dir, purge)
                self.crash_point("remove:marked")
                if tenant is not None:
                    tenant.state = TenantState.STOPPING
                    await self._close_own_listener(tenant)
                    await self._drain(tenant)
                    self.registry.remove_tenant(tenant.server_name)
                    await tenant.shut_down(TenantState.REMOVED)
                del self.records[server_name.lower()]
                self.start_failures.pop(record.server_name, None)
                await run_file_io(self.store.delete, record.server_name)
                self.crash_point("remove:committed")
                if purge:
                    config = tenant.config if tenant is not None else None
                    await self._purge_data(data_dir, config)
                else:
                    await run_file_io(journal.finish, data_dir, journal.Step.REMOVE)
                logger.info("Removed tenant %s%s", server_name, " and its data" if purge else "")

    async def _drain(self, tenant: Tenant) -> None:
        timeout = self.host_config.drain_timeout_ms / 1000
        if tenant.inflight == 0:
            return
        try:
            await with_timeout(tenant.drained(), timeout, self.clock)
        except TimeoutError:
            logger.warning(
                "Tenant %s still had %d requests after %.1fs; shutting down anyway",
                tenant.server_name,
                tenant.inflight,
                timeout,
            )

    async def _purge_data(self, data_dir: Path, config: HomeServerConfig | None) -> None:
        """Drop the tenant's database, then its directory (config read from it if not given).

        Kept (and marked) if the database cannot be dropped: the next start tries again.
        """
        if config is None:
            try:
                config, _ = await run_file_io(load_config, data_dir / "homeserver.yaml")
            except (ConfigError, OSError):
                config = None
        if config is None:
            # Not written yet (then there is no database either), or a name an
            # older version let through: its schema is named after the directory.
            if self._pg_pool is not None and not await self._drop_schema(
                self._pg_pool, schema_for(data_dir.name), data_dir.name
            ):
                return
        elif config.database.is_postgres:
            from hamlet.storage.engines.postgres import PgPool

            shared = self._pg_pool if self._shares_pool(config) else None
            pool = shared or PgPool(config.database.pg_dsn_kwargs(), min_size=1, max_size=1)
            try:
                dropped = await self._drop_schema(
                    pool, config.database.pg_schema, config.server_name
                )
            finally:
                if shared is None:
                    await pool.close()
            if not dropped:
                return
        self.crash_point("purge:database-dropped")
        await run_file_io(journal.trash, data_dir)

    @staticmethod
    async def _drop_schema(pool: PgPool, schema: str, server_name: str) -> bool:
        from hamlet.storage.engines.postgres import PostgresDatabase

        try:
            await PostgresDatabase(pool, schema).drop_schema()
        except StorageError:
            logger.exception("Could not drop the schema of %s", server_name)
            return False
        return True

    async def _recover(self, listed: set[str]) -> None:
        """Finish or roll back what a crash interrupted (see `hamlet.host.journal`)."""
        with LoggingContext("recovery", HOST_SERVER_NAME):
            for step in await run_file_io(journal.unfinished, self.tenants_dir):
                name, adding = step.server_name, step.step == journal.Step.ADD
                what = "provisioning" if adding else "removal"
                # Listed: the registry committed an add, or never committed a removal.
                outcome = "finished" if adding == (name.lower() in listed) else "rolled back"
                if name.lower() in listed or not step.purge:
                    logger.warning("Tenant %s: its unfinished %s is %s", name, what, outcome)
                    await run_file_io(journal.finish, step.data_dir, step.step)
                else:
                    logger.warning(
                        "Tenant %s: its unfinished %s is %s, data purged", name, what, outcome
                    )
                    await self._purge_data(step.data_dir, None)
            emptied = await run_file_io(journal.empty_trash, self.tenants_dir)
            if emptied:
                logger.warning("Deleted %d directories an interrupted purge left", emptied)

    async def suspend(self, server_name: str) -> None:
        with LoggingContext(f"suspend-{server_name}", HOST_SERVER_NAME):
            async with self._lock:
                tenant = self._require(server_name)
                tenant.state = TenantState.SUSPENDED
                await self._drain(tenant)
                await tenant.shut_down(TenantState.SUSPENDED)
                await self._set_record_state(tenant, TenantState.SUSPENDED)
                logger.info("Suspended tenant %s", server_name)

    async def resume(self, server_name: str) -> None:
        with LoggingContext(f"resume-{server_name}", HOST_SERVER_NAME):
            async with self._lock:
                tenant = self._require(server_name)
                if tenant.state != TenantState.SUSPENDED:
                    return
                tenant.state = TenantState.HIBERNATED
                await self._set_record_state(tenant, TenantState.ACTIVE)
                logger.info("Resumed tenant %s", server_name)

    async def _set_record_state(self, tenant: Tenant, state: TenantState) -> None:
        record = self.records.get(tenant.server_name.lower())
        if record is not None:
            record.state = state.value
            await run_file_io(self.store.set_state, record.server_name, state.value)

    # --- hibernation ---

    def _is_idle(self, tenant: Tenant, now: float) -> bool:
        hs = tenant.hs
        if hs is None or tenant.state != TenantState.ACTIVE or tenant.inflight:
            return False
        if now - tenant.last_activity < self.host_config.hibernate_after_ms / 1000:
            return False
        return hs.is_idle()

    async def hibernate_idle(self) -> int:
        """Hibernate every tenant idle for long enough; returns how many."""
        now = self.clock.monotonic()
        count = 0
        for tenant in self.registry.tenants():
            if self._is_idle(tenant, now):
                await self.hibernate(tenant)
                count += 1
        if count:
            await release_freed_memory()
        return count

    async def hibernate(self, tenant: Tenant) -> None:
        async with tenant._wake_lock:
            hs = tenant.hs
            if hs is None or tenant.inflight or tenant.state != TenantState.ACTIVE:
                return
            tenant.state = TenantState.HIBERNATED
            tenant.hs = None
            await hs.shutdown()
            logger.info("Hibernated tenant %s", tenant.server_name)


def _write_config(config_path: Path, raw: dict[str, Any]) -> None:
    tmp = config_path.with_suffix(".tmp")
    tmp.touch(0o600)
    tmp.write_text(yaml.safe_dump(raw, sort_keys=True))
    os.replace(tmp, config_path)


def _check_listen(address: str, port: int) -> None:
    """An own listener's address, refused before anything is built for it."""
    if not 0 <= port <= 65535:
        raise TenantError(400, f"listen port {port} is not between 0 and 65535")
    if not address or len(address) > MAX_BIND_ADDRESS_LENGTH or not address.isprintable():
        raise TenantError(400, "listen bind_address must be an IP address or host name")
