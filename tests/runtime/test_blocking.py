"""The thread pools: CPU work never takes database threads; tenants take turns at both.

Jobs that hold a thread until the test lets them go make the outcomes
ordering facts rather than timings.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable
from typing import TypeVar

import pytest

from hamlet.config import HomeServerConfig
from hamlet.handlers.accounts.passwords import PasswordHasher
from hamlet.runtime import blocking
from hamlet.runtime.blocking import (
    CPU_JOBS_PER_TENANT,
    CPU_THREADS,
    DB_JOBS_PER_TENANT,
    DB_THREADS,
    run_cpu,
    run_db,
)
from hamlet.runtime.logcontext import LoggingContext
from hamlet.storage.factory import make_database

MakeConfig = Callable[..., HomeServerConfig]
T = TypeVar("T")

# Generous, and only reached if the behaviour under test is broken (a hang).
DEADLOCK_GUARD_S = 30


class HeldJobs:
    """CPU jobs that each hold their thread until `release()`."""

    def __init__(self) -> None:
        self.release_all = threading.Event()
        self.started: list[str] = []
        self._lock = threading.Lock()

    def job(self, name: str) -> str:
        with self._lock:
            self.started.append(name)
        self.release_all.wait(DEADLOCK_GUARD_S)
        return name


async def _until(predicate: Callable[[], bool]) -> None:
    for _ in range(10_000):
        if predicate():
            return
        await asyncio.sleep(0.001)
    raise AssertionError("condition never became true")


async def test_cpu_work_never_holds_a_tenants_database_threads(
    make_hs_config: MakeConfig,
) -> None:
    db = make_database(make_hs_config(server_name="b.test"))
    await db.open()
    held = HeldJobs()
    # Far more CPU jobs than any pool has threads, from tenants A1..A8.
    jobs = [
        asyncio.ensure_future(run_cpu(f"a{i % 8}.test", held.job, f"a{i}"))
        for i in range(4 * CPU_THREADS + 8)
    ]
    await _until(lambda: len(held.started) == CPU_THREADS)
    try:
        result = await asyncio.wait_for(db.fetchval("select_one", "SELECT 1"), DEADLOCK_GUARD_S)
        assert result == 1
        assert not any(job.done() for job in jobs), "B's query finished first"
    finally:
        held.release_all.set()
        await asyncio.gather(*jobs)
        await db.close()
    assert blocking.in_flight() == 0


async def test_a_query_finishes_while_bcrypt_hashes_for_another_tenant_run(
    make_hs_config: MakeConfig,
) -> None:
    db = make_database(make_hs_config(server_name="b.test"))
    await db.open()
    hashes_at_once = 2 * CPU_THREADS
    hasher = PasswordHasher(pepper="", rounds=13, tenant="a.test", max_concurrent=hashes_at_once)
    hashes = [asyncio.ensure_future(hasher.hash(f"password {i}")) for i in range(hashes_at_once)]
    try:
        await _until(lambda: blocking.in_flight() == len(hashes))
        assert await db.fetchval("select_one", "SELECT 1") == 1
        assert not any(h.done() for h in hashes)
    finally:
        await asyncio.gather(*hashes)
        await db.close()


async def test_a_busy_tenant_cannot_fill_the_cpu_pool() -> None:
    held = HeldJobs()
    busy = [asyncio.ensure_future(run_cpu("busy.test", held.job, f"busy{i}")) for i in range(200)]
    try:
        await _until(lambda: len(held.started) == CPU_JOBS_PER_TENANT)
        # The busy tenant's other 200 - k jobs are queued, not holding threads,
        # so another tenant's job runs to the end while they all wait.
        other = await asyncio.wait_for(run_cpu("quiet.test", lambda: "quiet ran"), DEADLOCK_GUARD_S)
        assert other == "quiet ran"
        assert len(held.started) == CPU_JOBS_PER_TENANT
    finally:
        held.release_all.set()
        assert await asyncio.gather(*busy) == [f"busy{i}" for i in range(200)]
    assert blocking.in_flight() == 0


def _submit(pool: str, tenant: str, fn: Callable[..., T], *args: object) -> asyncio.Future[T]:
    """A call on `pool` for `tenant`: named for run_cpu, from its logging context for run_db."""
    if pool == "cpu":
        return asyncio.ensure_future(run_cpu(tenant, fn, *args))
    with LoggingContext("job", tenant):
        # The task copies the context now, as a request's calls run in it.
        return asyncio.ensure_future(run_db(fn, *args))


@pytest.mark.parametrize(("pool", "threads"), [("cpu", CPU_THREADS), ("db", DB_THREADS)])
async def test_freed_threads_go_round_the_tenants_in_turn(pool: str, threads: int) -> None:
    gates: dict[str, threading.Event] = {}
    started: list[str] = []

    def job(name: str) -> None:
        started.append(name)
        gates[name].wait(DEADLOCK_GUARD_S)

    def submit(tenant: str, name: str) -> asyncio.Future[None]:
        gates[name] = threading.Event()
        return _submit(pool, tenant, job, name)

    # Fill every thread, then queue three jobs for x and three for y.
    jobs = [submit(f"f{i}.test", f"f{i}") for i in range(threads)]
    await _until(lambda: len(started) == threads)
    jobs += [submit("x.test", f"x{i}") for i in range(3)]
    jobs += [submit("y.test", f"y{i}") for i in range(3)]
    # Free one thread at a time (the longest-running job) and see who gets it.
    for n in range(6):
        gates[started[n]].set()
        await _until(lambda n=n: len(started) == threads + n + 1)  # type: ignore[misc]
    assert started[threads:] == ["x0", "y0", "x1", "y1", "x2", "y2"]
    for gate in gates.values():
        gate.set()
    await asyncio.gather(*jobs)


async def test_a_flooding_tenants_queued_queries_do_not_delay_another_tenants() -> None:
    held = HeldJobs()
    flood = [_submit("db", "flood.test", held.job, f"flood{i}") for i in range(200)]
    try:
        await _until(lambda: len(held.started) == DB_JOBS_PER_TENANT)
        assert blocking.db_queued() == 200 - DB_JOBS_PER_TENANT
        # The flood's queued calls wait in its own queue, so a free thread
        # is left for the neighbour's query whatever the flood has asked for.
        quiet = await asyncio.wait_for(
            _submit("db", "quiet.test", lambda: "quiet ran"), DEADLOCK_GUARD_S
        )
        assert quiet == "quiet ran"
        assert len(held.started) == DB_JOBS_PER_TENANT
    finally:
        held.release_all.set()
        assert await asyncio.gather(*flood) == [f"flood{i}" for i in range(200)]
    assert blocking.in_flight() == 0


async def test_a_queued_db_call_runs_even_if_its_caller_is_cancelled() -> None:
    held = HeldJobs()
    running = [_submit("db", "t.test", held.job, f"r{i}") for i in range(DB_JOBS_PER_TENANT)]
    await _until(lambda: len(held.started) == DB_JOBS_PER_TENANT)
    # As a rollback must: asked for, it happens, though its caller is gone.
    queued = _submit("db", "t.test", held.job, "rollback")
    await asyncio.sleep(0)
    queued.cancel()
    held.release_all.set()
    with pytest.raises(asyncio.CancelledError):
        await queued
    await asyncio.gather(*running)
    assert "rollback" in held.started
    assert blocking.in_flight() == 0


async def test_a_cancelled_queued_cpu_job_never_runs_and_frees_its_place() -> None:
    held = HeldJobs()
    running = [
        asyncio.ensure_future(run_cpu("t.test", held.job, f"r{i}"))
        for i in range(CPU_JOBS_PER_TENANT)
    ]
    await _until(lambda: len(held.started) == CPU_JOBS_PER_TENANT)
    queued = asyncio.ensure_future(run_cpu("t.test", held.job, "queued"))
    await asyncio.sleep(0)
    queued.cancel()
    with pytest.raises(asyncio.CancelledError):
        await queued
    held.release_all.set()
    await asyncio.gather(*running)
    assert "queued" not in held.started
    assert await run_cpu("t.test", lambda: 7) == 7
    assert blocking.in_flight() == 0
