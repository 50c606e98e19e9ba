"""The one contract every stateful service offers the HomeServer that owns it.

A HomeServer never names its services one by one to load, start, stop or
measure them: each package's builder hands what it constructs to a
`ServiceRegistry`, and the HomeServer drives the registry.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Final, Protocol, TypeVar

from hamlet.config import HomeServerConfig
from hamlet.core.crypto import SigningKey
from hamlet.runtime.clock import Clock
from hamlet.runtime.http_client import HttpClient
from hamlet.storage.database import Database

logger = logging.getLogger(__name__)

#: Rough size of one small in-memory entry (a stream position, a timer, a
#: cached token owner), for the services' memory estimates.
ENTRY_BYTES: Final = 300


class Service(Protocol):
    async def load(self) -> None:
        """Read positions and state from storage, before the server serves anything."""
        ...

    def start(self) -> None:
        """Start background work; called once the event loop runs (`call_when_running`)."""
        ...

    async def shutdown(self) -> None:
        """Release everything; also called after a partial setup, so never assume `load()` ran."""
        ...

    def clear_caches(self) -> None:
        """Drop what can be read again from storage; never what correctness needs."""
        ...

    def memory_usage(self) -> int:
        """An estimate, in bytes, of what this service holds in memory."""
        ...


class ServiceBase:
    """No-op defaults: a service overrides the parts that apply to it."""

    async def load(self) -> None:
        return None

    def start(self) -> None:
        return None

    async def shutdown(self) -> None:
        return None

    def clear_caches(self) -> None:
        return None

    def memory_usage(self) -> int:
        return 0


S = TypeVar("S", bound=Service)


class ServiceRegistry:
    """The services of one homeserver, in the order they were built."""

    def __init__(self) -> None:
        self._services: list[Service] = []

    def own(self, service: S) -> S:
        """Register a service as soon as it exists, so a failure after it still shuts it down."""
        self._services.append(service)
        return service

    def __iter__(self) -> Iterator[Service]:
        return iter(tuple(self._services))

    def __len__(self) -> int:
        return len(self._services)

    async def load(self) -> None:
        for service in tuple(self._services):
            await service.load()

    def start(self) -> None:
        for service in tuple(self._services):
            service.start()

    async def shutdown(self) -> None:
        """Shut every service down, the last built first; one failing does not stop the rest."""
        while self._services:
            service = self._services.pop()
            try:
                await service.shutdown()
            except Exception:
                logger.exception("Shutting down %r failed", service)

    def clear_caches(self) -> None:
        for service in self._services:
            service.clear_caches()

    def memory_usage(self) -> int:
        return sum(service.memory_usage() for service in self._services)


@dataclass(frozen=True, slots=True)
class BuildContext:
    """What the package builders build from: the homeserver's config, clock and storage,
    and the process's outbound HTTP client."""

    config: HomeServerConfig
    clock: Clock
    db: Database
    signing_key: SigningKey
    http_client: HttpClient
    registry: ServiceRegistry = field(default_factory=ServiceRegistry)

    @property
    def server_name(self) -> str:
        return self.config.server_name

    def own(self, service: S) -> S:
        return self.registry.own(service)
