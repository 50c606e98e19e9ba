"""The virtual-time loop's settle step waits for threads and database round trips."""

from __future__ import annotations

import asyncio
import time

import pytest

from hamlet.runtime import pending_io, virtual_time
from hamlet.runtime.blocking import run_db
from hamlet.runtime.clock import Clock
from hamlet.storage.database import Transaction
from hamlet.storage.factory import make_database
from tests.conftest import advance, settle


def _slow_thread_call() -> str:
    time.sleep(0.05)
    return "done"


async def _tracked_real_work(log: list[str], entry: str) -> None:
    # Stands in for a socket round trip: finished in real time, by no timer
    # of the virtual clock.
    with pending_io.track():
        await asyncio.to_thread(time.sleep, 0.05)
    log.append(entry)


async def test_settle_waits_for_a_pool_thread() -> None:
    task = asyncio.ensure_future(run_db(_slow_thread_call))
    await settle()
    assert task.done() and task.result() == "done"


async def test_settle_waits_for_tracked_work_and_not_for_timers() -> None:
    loop = asyncio.get_running_loop()
    clock = Clock("hs.test")
    finished: list[str] = []

    async def sleeper() -> None:
        await clock.sleep(60)
        finished.append("timer")

    clock.run_in_background(_tracked_real_work, finished, "io")
    clock.run_in_background(sleeper)
    started = loop.time()
    await settle()
    assert finished == ["io"]
    assert loop.time() - started < 1, "settle moved virtual time"
    assert pending_io.in_flight(loop) == 0
    await advance(60)
    assert finished == ["io", "timer"]
    await clock.shutdown()


async def test_advance_lets_tracked_work_finish_before_the_next_timer() -> None:
    clock = Clock("hs.test")
    order: list[str] = []

    clock.call_later(1, lambda: clock.run_in_background(_tracked_real_work, order, "write"))
    clock.call_later(1.001, lambda: order.append("next timer"))
    await advance(2)
    assert order == ["write", "next timer"]
    await clock.shutdown()


async def test_settle_fails_loudly_on_work_that_never_finishes(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(virtual_time, "SETTLE_LIMIT_S", 0.2)
    stuck = asyncio.Event()

    async def never_done() -> None:
        with pending_io.track():
            await stuck.wait()

    task = asyncio.ensure_future(never_done())
    with pytest.raises(virtual_time.SettleTimeoutError, match="1 tracked waits in flight"):
        await settle()
    stuck.set()
    await task


async def test_a_background_write_has_committed_once_settled(make_hs_config) -> None:  # type: ignore[no-untyped-def]
    db = make_database(make_hs_config())
    await db.open()
    await db.execute("mk", "CREATE TABLE t (x INTEGER)")
    clock = Clock("test.local")

    async def insert(txn: Transaction) -> None:
        for i in range(20):
            await txn.execute("INSERT INTO t (x) VALUES (?)", (i,))

    clock.run_as_background_process("insert", db.run_interaction, "ins", insert)
    await settle()
    assert await db.fetchval("count", "SELECT COUNT(*) FROM t") == 20
    await clock.shutdown()
    await db.close()
