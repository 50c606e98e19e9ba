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
from hamlet.runtime.blocking import run_blocking
from hamlet.runtime.clock import Clock
from hamlet.runtime.logcontext import LoggingContext
from hamlet.storage.database import Database
from hamlet.storage.engines.postgres import PgPool
from hamlet.storage.factory import make_database
from hamlet.storage.migrations import migrate

logger = logging.getLogger(__name__)


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
    path.write_text(write_signing_keys([key]))
    path.chmod(0o600)
    return key


class HomeServer:
    def __init__(self, config: HomeServerConfig, *, pg_pool: PgPool | None = None) -> None:
        self.config = config
        self.server_name = config.server_name
        self.clock = Clock(config.server_name)
        self._pg_pool = pg_pool
        self._db: Database | None = None
        self._signing_key: SigningKey | None = None
        self._services: list[Service] = []
        self._request_slots: asyncio.Semaphore | None = None
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
        self._build_services()

    def _build_services(self) -> None:
        """Build every service, dependencies first."""

    async def start(self) -> None:
        if self.state != "ready":
            raise RuntimeError(f"start() called on a homeserver that is {self.state}")
        self.clock.start()
        self.clock.call_when_running(self._start_background_work)
        self.state = "running"

    def _start_background_work(self) -> None:
        self.db.start_txn_logging(self.clock)
        logger.info("Homeserver %s running", self.server_name)

    @contextlib.asynccontextmanager
    async def request_slot(self) -> AsyncIterator[None]:
        if self._request_slots is None:
            yield
            return
        async with self._request_slots:
            yield

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
