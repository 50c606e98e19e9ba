"""The process-wide thread pools for blocking calls, shared by every tenant.

A thread per tenant would make idle tenants expensive, so a few small pools
serve all of them. Work is split by what it waits on, because a pool thread
busy with one kind of work is a thread the other kind cannot have:

- `run_db`: database calls (SQLite). Each is short, and each tenant
  serialises its own connection, so a tenant usually holds one of these
  threads at a time. Calls still take turns per tenant (as CPU jobs do),
  so a tenant opening or closing many connections at once, or one whose
  calls arrive faster than the threads free up, cannot queue ahead of a
  neighbour's query.
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
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import TypeVar

from hamlet.runtime import pending_io
from hamlet.runtime.fair_queue import FairQueue, PerLoop
from hamlet.runtime.logcontext import SENTINEL_SERVER_NAME, current_context
from hamlet.runtime.shielding import await_to_the_end, run_to_the_end

logger = logging.getLogger(__name__)

T = TypeVar("T")

DB_THREADS = 4
FILE_IO_THREADS = 2
CPU_THREADS = max(2, min(os.cpu_count() or 2, 8))
CPU_JOBS_PER_TENANT = max(1, CPU_THREADS // 2)
# One thread always left for another tenant's query.
DB_JOBS_PER_TENANT = DB_THREADS - 1

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


async def _in_place(
    queue: FairQueue,
    tenant: str,
    executor: _Executor,
    fn: Callable[..., T],
    args: tuple[object, ...],
) -> T:
    """Run `fn(*args)` in the place `tenant` holds on `queue`, then give the place back."""
    try:
        return await _counted(executor, fn, args)
    finally:
        queue.release(tenant)


async def run_db(fn: Callable[..., T], *args: object) -> T:
    """Run a database call `fn(*args)` on the database pool, taking turns with other tenants.

    The tenant is the current logging context's: every request and job
    runs in one (see logcontext.py), so callers need not pass it.
    """
    tenant = _current_tenant()
    queue = _db_turns.get()
    if queue.try_acquire(tenant):
        return await _in_place(queue, tenant, _db, fn, args)
    # Once asked for, a call runs even if its caller is cancelled while it
    # waits its turn, as one already on a thread does: a transaction's
    # rollback must happen before its connection is released.
    return await run_to_the_end(_take_turns(_db_turns, tenant, _db, fn, args))


async def run_file_io(fn: Callable[..., T], *args: object) -> T:
    """Run a file-system call `fn(*args)` on the file I/O pool."""
    return await _counted(_file_io, fn, args)


_cpu_turns = PerLoop(lambda: FairQueue(CPU_THREADS, CPU_JOBS_PER_TENANT))
_db_turns = PerLoop(lambda: FairQueue(DB_THREADS, DB_JOBS_PER_TENANT))


def _current_tenant() -> str:
    """Whose work this is: the server name of the running request or job."""
    ctx = current_context()
    return ctx.server_name if ctx is not None else SENTINEL_SERVER_NAME


async def _take_turns(
    turns: PerLoop, tenant: str, executor: _Executor, fn: Callable[..., T], args: tuple[object, ...]
) -> T:
    global _in_flight
    queue = turns.get()
    _in_flight += 1
    try:
        await queue.acquire(tenant)
    finally:
        _in_flight -= 1
    return await _in_place(queue, tenant, executor, fn, args)


def db_queued() -> int:
    """Database calls waiting for their tenant's turn on this loop (for tests and metrics)."""
    return _db_turns.get().queued


async def run_cpu(tenant: str, fn: Callable[..., T], *args: object) -> T:
    """Run CPU-bound `fn(*args)` for `tenant` on the CPU pool, taking turns with other tenants."""
    return await _take_turns(_cpu_turns, tenant, _cpu, fn, args)
