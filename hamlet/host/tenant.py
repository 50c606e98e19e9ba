"""One tenant of the host: its homeserver (when awake), state and request gate."""

from __future__ import annotations

import asyncio
import contextlib
import enum
from collections.abc import AsyncIterator, Awaitable, Callable, Hashable
from dataclasses import dataclass, field

from hamlet.api.server import RequestSample
from hamlet.config import HomeServerConfig
from hamlet.handlers.common.errors import MatrixError, UnrecognizedError
from hamlet.homeserver import HomeServer
from hamlet.runtime.clock import Clock

# Latency histogram bucket bounds, in seconds (Prometheus style, cumulative).
LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)


class TenantState(enum.Enum):
    STARTING = "starting"
    ACTIVE = "active"
    HIBERNATED = "hibernated"
    SUSPENDED = "suspended"
    STOPPING = "stopping"
    REMOVED = "removed"


def bucket_pairs(counts: list[int]) -> list[tuple[str, float]]:
    """Cumulative bucket counts as Prometheus (upper bound, count) pairs, `+Inf` left out."""
    return [(str(bound), float(n)) for bound, n in zip(LATENCY_BUCKETS, counts, strict=True)]


def _add_to_buckets(buckets: list[int], seconds: float) -> None:
    for i, bound in enumerate(LATENCY_BUCKETS):
        if seconds <= bound:
            buckets[i] += 1


def _no_buckets() -> list[int]:
    return [0] * len(LATENCY_BUCKETS)


@dataclass(slots=True)
class ServletStats:
    """Answered requests of one (method, servlet, tag, status): Synapse's per-servlet figures."""

    count: int = 0
    time_sum_s: float = 0.0
    buckets: list[int] = field(default_factory=_no_buckets)
    cpu_s: float = 0.0
    db_s: float = 0.0
    db_txns: int = 0
    nbytes: int = 0


ServletKey = tuple[str, str, str, int]  # method, servlet, tag, status


@dataclass(slots=True)
class RequestStats:
    """A tenant's request figures (or those of requests no tenant took).

    Per-servlet keys are bounded: a request is counted per servlet only
    once a route matched, so its method and servlet are the route's.
    """

    count: int = 0
    errors: int = 0
    #: Moved by every figure recorded: the figures are unchanged while it stands.
    version: int = 0
    latency_sum_s: float = 0.0
    buckets: list[int] = field(default_factory=_no_buckets)
    received_by_servlet: dict[tuple[str, str], int] = field(default_factory=dict)
    by_servlet: dict[ServletKey, ServletStats] = field(default_factory=dict)

    def received(self, method: str, servlet: str) -> None:
        self.version += 1
        key = (method, servlet)
        self.received_by_servlet[key] = self.received_by_servlet.get(key, 0) + 1

    def observe(self, sample: RequestSample) -> None:
        self.version += 1
        self.count += 1
        if sample.status >= 500:
            self.errors += 1
        self.latency_sum_s += sample.wall_s
        _add_to_buckets(self.buckets, sample.wall_s)
        if sample.servlet is None:
            return
        key = (sample.method, sample.servlet, sample.tag, sample.status)
        stats = self.by_servlet.get(key)
        if stats is None:
            stats = self.by_servlet[key] = ServletStats()
        stats.count += 1
        stats.time_sum_s += sample.wall_s
        _add_to_buckets(stats.buckets, sample.wall_s)
        stats.cpu_s += sample.cpu_s
        stats.db_s += sample.db_s
        stats.db_txns += sample.db_txns
        stats.nbytes += sample.nbytes


Waker = Callable[["Tenant"], Awaitable[HomeServer]]


class Tenant:
    """The gate every request to a tenant passes through.

    A hibernated tenant is woken by its first request; a suspended one
    answers 503; a removed one is unknown. In-flight requests are counted
    so removal can drain them.
    """

    def __init__(
        self,
        config: HomeServerConfig,
        hs: HomeServer | None,
        clock: Clock,
        *,
        waker: Waker | None = None,
        static: bool = True,
    ) -> None:
        self.server_name = config.server_name
        self.config = config
        self.hs = hs
        self.state = TenantState.ACTIVE if hs is not None else TenantState.HIBERNATED
        self.static = static
        self._clock = clock
        self._waker = waker
        self._wake_lock = asyncio.Lock()
        self.inflight = 0
        self._drained = asyncio.Event()
        self._drained.set()
        self.last_activity = clock.monotonic()
        self.stats = RequestStats()
        self.wake_count = 0
        # (users, rooms) at the last scrape, reported while hibernated.
        self.last_counts: tuple[int | None, int | None] = (None, None)
        # (wake_count, the homeserver's transaction count) as of last_counts.
        self.counted_at: tuple[int, int] | None = None
        # /metrics text of the tenant while hibernated, and what it was written from.
        self.metrics_text: tuple[Hashable, list[str]] | None = None

    def touch(self) -> None:
        self.last_activity = self._clock.monotonic()

    async def _awake(self) -> HomeServer:
        if self.hs is not None and self.state == TenantState.ACTIVE:
            return self.hs
        async with self._wake_lock:
            if self.state == TenantState.HIBERNATED:
                if self._waker is None:
                    raise MatrixError(503, "M_UNKNOWN", "This homeserver is not available")
                self.hs = await self._waker(self)
                self.wake_count += 1
                # Suspended or removed while it woke: the homeserver is left
                # to `shut_down`, which waits for this lock.
                if self.state == TenantState.HIBERNATED:
                    self.state = TenantState.ACTIVE
        if self.hs is None or self.state != TenantState.ACTIVE:
            raise self._unavailable()
        return self.hs

    async def shut_down(self, state: TenantState) -> None:
        """Leave the tenant in `state` with no homeserver running.

        Under the wake lock: a wake in progress finishes first, and its
        homeserver is the one shut down.
        """
        self.state = state
        async with self._wake_lock:
            hs, self.hs = self.hs, None
            self.state = state
            if hs is not None:
                await hs.shutdown()

    def _unavailable(self) -> MatrixError:
        if self.state == TenantState.SUSPENDED:
            return MatrixError(503, "M_UNKNOWN", "This homeserver is suspended")
        if self.state == TenantState.REMOVED:
            return UnrecognizedError(404, f"Unknown host {self.server_name!r}")
        return MatrixError(503, "M_UNKNOWN", "This homeserver is not available")

    @contextlib.asynccontextmanager
    async def open(self) -> AsyncIterator[HomeServer]:
        if self.state in (TenantState.SUSPENDED, TenantState.REMOVED, TenantState.STOPPING):
            raise self._unavailable()
        async with self._held():
            try:
                yield await self._awake()
            finally:
                self.touch()

    @contextlib.asynccontextmanager
    async def peek(self) -> AsyncIterator[HomeServer | None]:
        """The homeserver if it is awake, kept from hibernating meanwhile.

        For figures: never wakes the tenant nor counts as activity, and
        suspending or removing it waits (as for a request) until done.
        """
        hs = self.hs
        if hs is None or self.state != TenantState.ACTIVE:
            yield None
            return
        async with self._held():
            yield hs

    @contextlib.asynccontextmanager
    async def _held(self) -> AsyncIterator[None]:
        """Counted in flight: hibernation skips the tenant, removal drains it."""
        self.inflight += 1
        self._drained.clear()
        try:
            yield
        finally:
            self.inflight -= 1
            if self.inflight == 0:
                self._drained.set()

    def received(self, method: str, servlet: str) -> None:
        self.stats.received(method, servlet)

    def observe(self, sample: RequestSample) -> None:
        self.stats.observe(sample)

    async def drained(self) -> None:
        await self._drained.wait()
