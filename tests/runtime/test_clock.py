"""The real Clock on the virtual-time loop: fresh contexts, timeouts, shutdown."""

from __future__ import annotations

import asyncio
import contextvars
import itertools
import logging

import pytest

from hamlet.runtime.clock import Clock, ClockShutDownError
from hamlet.runtime.logcontext import LoggingContext, current_context
from hamlet.runtime.timeout import with_timeout
from tests.conftest import advance
from tests.support.harness import RecordingHandler

logger = logging.getLogger(__name__)

SERVER = "hs.test"


def _where() -> tuple[str, str | None, str]:
    ctx = current_context()
    assert ctx is not None
    return ctx.server_name, ctx.request, ctx.name


async def test_time_follows_the_virtual_loop() -> None:
    clock = Clock(SERVER)
    t0, m0 = clock.time(), clock.monotonic()
    await advance(3600)
    assert clock.time() - t0 == pytest.approx(3600, abs=1)
    assert clock.monotonic() - m0 == pytest.approx(3600, abs=1)
    assert clock.time_msec() // 1000 == int(clock.time())
    await clock.shutdown()


async def test_sleep_waits_virtual_time() -> None:
    clock = Clock(SERVER)
    woke: list[float] = []

    async def sleeper() -> None:
        await clock.sleep(30)
        woke.append(clock.monotonic())

    start = clock.monotonic()
    clock.run_as_background_process("sleeper", sleeper)
    await advance(29)
    assert woke == []
    await advance(2)
    assert woke and woke[0] - start == pytest.approx(30, abs=0.5)
    await clock.shutdown()


async def test_call_later_runs_in_fresh_context_not_the_requests(
    log_records: RecordingHandler,
) -> None:
    clock = Clock(SERVER)
    seen: list[tuple[str, str | None, str]] = []

    def callback() -> None:
        seen.append(_where())
        logger.info("timer fired")

    with LoggingContext("GET-1", SERVER, request="GET-1"):
        clock.call_later(5, callback)
    await advance(5)
    assert seen == [(SERVER, None, "call_later")]
    (record,) = log_records.matching("timer fired")
    assert record.server_name == SERVER  # type: ignore[attr-defined]
    assert record.request == "call_later"  # type: ignore[attr-defined]
    assert clock.pending_count() == 0
    await clock.shutdown()


async def test_call_later_cancel() -> None:
    clock = Clock(SERVER)
    fired: list[int] = []
    call = clock.call_later(1, fired.append, 1)
    assert call.active() and clock.pending_count() == 1
    call.cancel()
    assert not call.active() and clock.pending_count() == 0
    await advance(2)
    assert fired == []
    await clock.shutdown()


async def test_call_later_async_callback_is_tracked() -> None:
    clock = Clock(SERVER)
    seen: list[tuple[str, str | None, str]] = []

    async def callback() -> None:
        await clock.sleep(1)
        seen.append(_where())

    clock.call_later(1, callback)
    await advance(1)
    assert clock.pending_count() >= 1  # the task and its sleep
    await advance(1)
    assert seen == [(SERVER, None, "call_later")]
    assert clock.pending_count() == 0
    await clock.shutdown()


async def test_looping_call_from_request_runs_as_looping_call(
    log_records: RecordingHandler,
) -> None:
    clock = Clock(SERVER)
    seen: list[tuple[str, str | None, str]] = []

    def tick() -> None:
        seen.append(_where())
        logger.info("tick")

    with LoggingContext("POST-3", SERVER, request="POST-3") as request_ctx:
        call = clock.looping_call(tick, 10)
    await advance(35)
    assert seen == [(SERVER, None, "looping_call")] * 3
    ticks = log_records.matching("tick")
    assert len(ticks) == 3
    assert {(r.server_name, r.request) for r in ticks} == {(SERVER, "looping_call")}  # type: ignore[attr-defined]
    # The request that scheduled it is not charged for its work.
    assert request_ctx.usage.db_txn_count == 0
    call.stop()
    await advance(20)
    assert len(seen) == 3
    assert clock.pending_count() == 0
    await clock.shutdown()


async def test_looping_call_async_never_overlaps_and_survives_errors(
    log_records: RecordingHandler,
) -> None:
    clock = Clock(SERVER)
    runs: list[float] = []
    active = 0

    async def job() -> None:
        nonlocal active
        active += 1
        assert active == 1
        runs.append(clock.monotonic())
        await clock.sleep(15)  # longer than the interval
        active -= 1
        if len(runs) == 2:
            raise ValueError("second run fails")

    clock.looping_call(job, 10)
    await advance(100)
    # Runs at 10, then 10s after each finishes (25s apart): 10, 35, 60, 85.
    assert len(runs) == 4
    assert all(b - a == pytest.approx(25, abs=0.5) for a, b in itertools.pairwise(runs))
    (failure,) = [r for r in log_records.records if r.getMessage().startswith("Looping call")]
    assert failure.server_name == SERVER  # type: ignore[attr-defined]
    assert failure.request == "looping_call"  # type: ignore[attr-defined]
    await clock.shutdown()
    assert clock.pending_count() == 0


async def test_background_process_context_and_errors(log_records: RecordingHandler) -> None:
    clock = Clock(SERVER)
    seen: list[tuple[str, str | None, str]] = []

    async def work(fail: bool) -> str:
        await clock.sleep(1)
        seen.append(_where())
        logger.info("working")
        if fail:
            raise RuntimeError("broken job")
        return "done"

    with LoggingContext("GET-9", SERVER, request="GET-9") as caller:
        ok = clock.run_as_background_process("prune", work, False)
        bad = clock.run_as_background_process("prune", work, True)
        assert current_context() is caller
    await advance(1)
    assert await ok == "done"
    assert await bad is None
    assert sorted(seen) == [
        (SERVER, None, "background-prune-1"),
        (SERVER, None, "background-prune-2"),
    ]
    assert {r.request for r in log_records.matching("working")} == {  # type: ignore[attr-defined]
        "background-prune-1",
        "background-prune-2",
    }
    (failed,) = log_records.matching("Background process prune failed")
    assert failed.request == "background-prune-2"  # type: ignore[attr-defined]
    assert failed.server_name == SERVER  # type: ignore[attr-defined]
    assert failed.exc_info is not None
    assert clock.pending_count() == 0
    await clock.shutdown()


_probe: contextvars.ContextVar[str] = contextvars.ContextVar("probe", default="unset")


async def test_run_in_background_completed_awaitable_keeps_caller_context() -> None:
    clock = Clock(SERVER)

    def completes_at_once() -> asyncio.Future[int]:
        _probe.set("callee")
        fut: asyncio.Future[int] = asyncio.get_running_loop().create_future()
        fut.set_result(7)
        return fut

    with LoggingContext("GET-1", SERVER, request="GET-1") as caller:
        result = clock.run_in_background(completes_at_once)
        assert current_context() is caller
        assert _probe.get() == "unset"
        assert await result == 7
        assert current_context() is caller
    assert current_context() is None
    await clock.shutdown()


async def test_run_in_background_pending_awaitable_keeps_caller_context() -> None:
    clock = Clock(SERVER)
    seen: list[LoggingContext | None] = []

    async def slow() -> str:
        _probe.set("callee")
        with LoggingContext("inner", SERVER):
            await clock.sleep(5)
        seen.append(current_context())
        return "late"

    with LoggingContext("GET-2", SERVER, request="GET-2") as caller:
        pending = clock.run_in_background(slow)
        assert not pending.done()
        assert current_context() is caller
        assert _probe.get() == "unset"
        await advance(1)
        assert current_context() is caller
    assert current_context() is None
    await advance(5)
    assert await pending == "late"
    # The callee is the caller's work: it ran under the caller's logging context.
    assert seen == [caller]
    await clock.shutdown()


async def test_run_in_background_plain_values_and_errors() -> None:
    clock = Clock(SERVER)
    assert await clock.run_in_background(lambda: 3) == 3

    def fails() -> None:
        raise KeyError("x")

    with pytest.raises(KeyError):
        await clock.run_in_background(fails)
    await clock.shutdown()


async def test_with_timeout_keeps_caller_context_and_logs_under_it(
    log_records: RecordingHandler,
) -> None:
    clock = Clock(SERVER)
    with LoggingContext("GET-5", SERVER, request="GET-5") as caller:
        task = asyncio.get_running_loop().create_task(
            with_timeout(clock.sleep(60), 10, clock), context=contextvars.copy_context()
        )
        await advance(10)
        with pytest.raises(TimeoutError):
            await task
        assert current_context() is caller
        # Directly in this task as well.
        waiting = with_timeout(clock.sleep(60), 2, clock)
        runner = asyncio.get_running_loop().create_task(_expect_timeout(waiting, caller))
        await advance(2)
        await runner
        assert current_context() is caller
    lines = log_records.matching("Timed out after")
    assert len(lines) == 2
    assert {(r.server_name, r.request) for r in lines} == {(SERVER, "GET-5")}  # type: ignore[attr-defined]
    assert clock.pending_count() == 0
    await clock.shutdown()


async def _expect_timeout(aw: object, caller: LoggingContext) -> None:
    with pytest.raises(TimeoutError):
        await aw  # type: ignore[misc]
    assert current_context() is caller


async def test_with_timeout_returns_result_and_clears_timer() -> None:
    clock = Clock(SERVER)

    async def quick() -> int:
        await clock.sleep(1)
        return 5

    runner = asyncio.get_running_loop().create_task(with_timeout(quick(), 10, clock))
    await advance(1)
    assert await runner == 5
    assert clock.pending_count() == 0
    await clock.shutdown()


async def test_with_timeout_does_not_swallow_outside_cancellation() -> None:
    clock = Clock(SERVER)
    runner = asyncio.get_running_loop().create_task(with_timeout(clock.sleep(60), 10, clock))
    await advance(1)
    runner.cancel()
    with pytest.raises(asyncio.CancelledError):
        await runner
    assert clock.pending_count() == 0
    await clock.shutdown()


async def test_shutdown_cancels_everything_and_refuses_more() -> None:
    clock = Clock(SERVER)
    fired: list[str] = []
    sleeper_outcome: list[str] = []

    async def sleeper() -> None:
        try:
            await clock.sleep(100)
        except asyncio.CancelledError:
            sleeper_outcome.append("cancelled")
            raise

    async def forever() -> None:
        await asyncio.Event().wait()

    clock.call_later(10, fired.append, "later")
    clock.looping_call(fired.append, 5, "loop")
    bg = clock.run_as_background_process("forever", forever)
    sleeping = clock.run_in_background(sleeper)
    await advance(1)
    assert clock.pending_count() >= 4

    await clock.shutdown()
    assert clock.is_shut_down
    assert clock.pending_count() == 0
    assert bg.cancelled()
    assert sleeping.cancelled()
    assert sleeper_outcome == ["cancelled"]
    await advance(60)
    assert fired == []

    with pytest.raises(ClockShutDownError):
        clock.call_later(1, fired.append, "x")
    with pytest.raises(ClockShutDownError):
        clock.looping_call(fired.append, 1, "x")
    with pytest.raises(ClockShutDownError):
        clock.call_when_running(fired.append, "x")
    with pytest.raises(ClockShutDownError):
        clock.run_as_background_process("x", forever)
    with pytest.raises(ClockShutDownError):
        clock.run_in_background(forever)
    with pytest.raises(ClockShutDownError):
        await clock.sleep(1)
    await clock.shutdown()  # idempotent


async def test_shutdown_from_inside_a_background_task() -> None:
    clock = Clock(SERVER)
    done: list[bool] = []

    async def stopper() -> None:
        await clock.shutdown()
        done.append(True)

    task = clock.run_as_background_process("stopper", stopper)
    await advance(0)
    await task
    assert done == [True] and clock.pending_count() == 0


def test_call_when_running_before_the_loop_is_flushed_by_start() -> None:
    clock = Clock(SERVER)
    seen: list[tuple[str, str | None, str]] = []
    with LoggingContext("setup", SERVER):
        clock.call_when_running(lambda: seen.append(_where()))
    assert seen == []
    assert clock.pending_count() == 0

    async def main() -> None:
        clock.start()
        await asyncio.sleep(0)
        await asyncio.sleep(0)
        await clock.shutdown()

    asyncio.run(main())
    assert seen == [(SERVER, None, "call_when_running")]


async def test_call_when_running_inside_the_loop_runs_soon() -> None:
    clock = Clock(SERVER)
    seen: list[tuple[str, str | None, str]] = []
    with LoggingContext("GET-1", SERVER, request="GET-1"):
        clock.call_when_running(lambda: seen.append(_where()))
        assert seen == []
    await advance(0)
    assert seen == [(SERVER, None, "call_when_running")]
    await clock.shutdown()


def test_shutdown_drops_unflushed_call_when_running() -> None:
    clock = Clock(SERVER)
    fired: list[int] = []
    clock.call_when_running(fired.append, 1)  # no loop yet: queued

    async def main() -> None:
        await clock.shutdown()
        with pytest.raises(ClockShutDownError):
            clock.start()
        await asyncio.sleep(0)

    asyncio.run(main())
    assert fired == []


async def test_run_in_background_failure_is_logged_under_the_callers_context(
    log_records: RecordingHandler,
) -> None:
    clock = Clock(SERVER)

    async def fails_later() -> None:
        await clock.sleep(1)
        raise KeyError("later")

    def fails_at_once() -> None:
        raise KeyError("at once")

    with LoggingContext("PUT-7", SERVER, request="PUT-7"):
        clock.run_in_background(fails_later)
        clock.run_in_background(fails_at_once)
    await advance(2)
    lines = log_records.matching("Background work")
    assert len(lines) == 2
    assert {(r.server_name, r.request) for r in lines} == {(SERVER, "PUT-7")}  # type: ignore[attr-defined]
    assert {str(r.exc_info[1]) for r in lines if r.exc_info} == {"'later'", "'at once'"}
    await clock.shutdown()
