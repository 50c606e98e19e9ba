"""The process-wide thread pools for blocking calls, shared by every tenant.

A thread per tenant would make idle tenants expensive, so a few small pools
serve all of them. Work is split by what it waits on, because a pool thread
busy with one kind of work is a thread the other kind cannot have:

- `run_db`: database calls (SQLite). Each is short, and each tenant
  serialises its own connection, so a tenant holds at most one of these
  threads at a time.
- `run_file_io`: file-system calls (media files, config and key files).
  A read or write of a chunk is short, but an fsync of a large upload can
  take long; that must not stall another tenant's queries, and it burns no
  CPU, so it does not belong in the CPU pool's fair queue either.
- `run_cpu`: CPU-bound work (bcrypt, Pillow). It can hold a thread for
  hundreds of milliseconds, so it never shares threads with the other two,
  and a tenant can have only `CPU_JOBS_PER_TENANT` jobs running at once;
  the rest wait in that tenant's queue and free threads go round the
  tenants in turn, so 200 logins on one tenant cannot starve another's.
"""

from __future__ import annotations

import asyncio
import contextvars
import functools
import logging
import os
import weakref
from collections import deque
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import TypeVar

from hamlet.runtime import pending_io
from hamlet.runtime.shielding import await_to_the_end

logger = logging.getLogger(__name__)

T = TypeVar("T")

DB_THREADS = 4
FILE_IO_THREADS = 2
CPU_THREADS = max(2, min(os.cpu_count() or 2, 8))
CPU_JOBS_PER_TENANT = max(1, CPU_THREADS // 2)

_in_flight = 0


def in_flight() -> int:
    """Blocking calls submitted (or queued for the CPU pool) and not finished."""
    return _in_flight


class _Executor:
    """A lazily started ThreadPoolExecutor (importing this module starts no thread)."""

    def __init__(self, name: str, threads: int) -> None:
        self.name = name
        self.threads = threads
        self._pool: ThreadPoolExecutor | None = None

    def get(self) -> ThreadPoolExecutor:
        if self._pool is None:
            self._pool = ThreadPoolExecutor(
                max_workers=self.threads, thread_name_prefix=f"hamlet-{self.name}"
            )
            # A daemon must create its pools after the fork; this line shows where.
            logger.debug("Started the %s thread pool", self.name)
        return self._pool

    @property
    def started(self) -> bool:
        return self._pool is not None


_db = _Executor("db", DB_THREADS)
_file_io = _Executor("file-io", FILE_IO_THREADS)
_cpu = _Executor("cpu", CPU_THREADS)


def started_pools() -> list[str]:
    """The names of the pools that have been created in this process."""
    return [executor.name for executor in (_db, _file_io, _cpu) if executor.started]


async def _run_in(executor: _Executor, fn: Callable[..., T], args: tuple[object, ...]) -> T:
    """Run `fn(*args)` on `executor`, to the end even if the caller is cancelled.

    A thread cannot be interrupted: once submitted, `fn` always runs to the
    end. If the awaiting task is cancelled meanwhile, this waits for `fn`
    to finish before raising `CancelledError`, so the caller never releases
    a resource (a SQLite connection and its lock) that a pool thread is
    still using, and a rollback it awaits while cancelled still happens.
    """
    loop = asyncio.get_running_loop()
    ctx = contextvars.copy_context()
    with pending_io.track():
        return await await_to_the_end(
            loop.run_in_executor(executor.get(), functools.partial(ctx.run, fn, *args))
        )


async def _counted(executor: _Executor, fn: Callable[..., T], args: tuple[object, ...]) -> T:
    global _in_flight
    _in_flight += 1
    try:
        return await _run_in(executor, fn, args)
    finally:
        _in_flight -= 1


async def run_db(fn: Callable[..., T], *args: object) -> T:
    """Run a database call `fn(*args)` on the database pool."""
    return await _counted(_db, fn, args)


async def run_file_io(fn: Callable[..., T], *args: object) -> T:
    """Run a file-system call `fn(*args)` on the file I/O pool."""
    return await _counted(_file_io, fn, args)


class _FairQueue:
    """Who may start a CPU job now: a per-tenant cap and round-robin turns.

    Lives on one event loop (its waiters are that loop's futures).
    """

    def __init__(self, threads: int, per_tenant: int) -> None:
        self.threads = threads
        self.per_tenant = per_tenant
        self.running = 0
        self.running_by_tenant: dict[str, int] = {}
        self.waiting: dict[str, deque[asyncio.Future[None]]] = {}
        self.turns: deque[str] = deque()

    def _may_start(self, tenant: str) -> bool:
        return (
            self.running < self.threads and self.running_by_tenant.get(tenant, 0) < self.per_tenant
        )

    def _take(self, tenant: str) -> None:
        self.running += 1
        self.running_by_tenant[tenant] = self.running_by_tenant.get(tenant, 0) + 1

    async def acquire(self, tenant: str) -> None:
        if not self.waiting.get(tenant) and self._may_start(tenant):
            self._take(tenant)
            return
        gate: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        queue = self.waiting.setdefault(tenant, deque())
        queue.append(gate)
        if tenant not in self.turns:
            self.turns.append(tenant)
        try:
            await gate
        except asyncio.CancelledError:
            if gate.done() and not gate.cancelled():
                # Granted just as we were cancelled: hand the slot on.
                self.release(tenant)
            else:
                queue.remove(gate)
                if not queue:
                    del self.waiting[tenant]
            raise

    def release(self, tenant: str) -> None:
        self.running -= 1
        left = self.running_by_tenant[tenant] - 1
        if left:
            self.running_by_tenant[tenant] = left
        else:
            del self.running_by_tenant[tenant]
        self._dispatch()

    def _dispatch(self) -> None:
        for _ in range(len(self.turns)):
            if self.running >= self.threads:
                return
            tenant = self.turns.popleft()
            queue = self.waiting.get(tenant)
            if not queue:
                self.waiting.pop(tenant, None)
                continue
            if self._may_start(tenant):
                self._take(tenant)
                queue.popleft().set_result(None)
            if queue:
                self.turns.append(tenant)
            else:
                del self.waiting[tenant]


_fair_queues: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, _FairQueue] = (
    weakref.WeakKeyDictionary()
)


def _fair_queue() -> _FairQueue:
    loop = asyncio.get_running_loop()
    queue = _fair_queues.get(loop)
    if queue is None:
        queue = _fair_queues[loop] = _FairQueue(CPU_THREADS, CPU_JOBS_PER_TENANT)
    return queue


async def run_cpu(tenant: str, fn: Callable[..., T], *args: object) -> T:
    """Run CPU-bound `fn(*args)` for `tenant` on the CPU pool, taking turns with other tenants."""
    global _in_flight
    queue = _fair_queue()
    _in_flight += 1
    try:
        await queue.acquire(tenant)
        try:
            return await _run_in(_cpu, fn, args)
        finally:
            queue.release(tenant)
    finally:
        _in_flight -= 1
