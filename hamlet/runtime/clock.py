"""The per-homeserver Clock: the only owner of timers and background tasks.

asyncio callbacks and tasks inherit the scheduler's `contextvars`, which
would make a timer set from a request log (and charge its costs) as that
request. Every callback here therefore runs in a fresh context that holds
only the homeserver's name, and the Clock remembers everything it started
so `shutdown()` can cancel all of it.
"""

from __future__ import annotations

import asyncio
import contextvars
import functools
import inspect
import itertools
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, TypeVar, overload

from hamlet.runtime import tracing
from hamlet.runtime.logcontext import (
    LoggingContext,
    ResourceUsage,
    current_context,
    fresh_context,
    measure_cpu,
)

logger = logging.getLogger(__name__)

T = TypeVar("T")


class ClockShutDownError(RuntimeError):
    """Raised when something is scheduled on a clock that has shut down."""


class DelayedCall:
    __slots__ = ("_clock", "_done", "_handle")

    def __init__(self, clock: Clock) -> None:
        self._clock = clock
        self._handle: asyncio.TimerHandle | None = None
        self._done = False

    def active(self) -> bool:
        return not self._done

    def cancel(self) -> None:
        if self._done:
            return
        self._done = True
        if self._handle is not None:
            self._handle.cancel()
        self._clock._delayed.discard(self)

    def _fired(self) -> None:
        self._done = True
        self._clock._delayed.discard(self)


class LoopingCall:
    """Runs `fn` every `interval_s`; a run never overlaps the previous one."""

    __slots__ = ("_args", "_clock", "_fn", "_running", "_stopped", "_timer", "interval_s")

    def __init__(
        self, clock: Clock, fn: Callable[..., object], interval_s: float, args: tuple[object, ...]
    ) -> None:
        self._clock = clock
        self._fn = fn
        self._args = args
        self.interval_s = interval_s
        self._timer: asyncio.TimerHandle | None = None
        self._running: asyncio.Task[None] | None = None
        self._stopped = False

    def _schedule(self) -> None:
        loop = self._clock._loop()
        ctx = fresh_context("looping_call", self._clock.server_name)
        self._timer = loop.call_later(self.interval_s, self._fire, context=ctx)

    def _fire(self) -> None:
        self._timer = None
        if self._stopped:
            return
        job = current_context()
        assert job is not None  # _schedule made it
        name = getattr(self._fn, "__name__", "looping_call")
        tracing.start_job_span(job, f"looping_call.{name}")
        stats = self._clock.job_stats_for(name)
        stats.begin()
        error: Exception | None = None
        started = time.thread_time()
        try:
            result = self._fn(*self._args)
        except Exception as e:
            logger.exception("Looping call %r failed", self._fn)
            error, result = e, None
        job.add_cpu_time(time.thread_time() - started)
        if inspect.isawaitable(result):
            task = self._clock._loop().create_task(measure_cpu(result, job))
            self._running = task
            self._clock._tasks.add(task)
            task.add_done_callback(functools.partial(self._run_done, job, stats))
            return
        _job_done(job, stats, error)
        self._schedule()

    def _run_done(self, job: LoggingContext, stats: JobStats, task: asyncio.Task[None]) -> None:
        self._clock._tasks.discard(task)
        self._running = None
        error = None if task.cancelled() else task.exception()
        if error is not None:
            logger.error("Looping call %r failed", self._fn, exc_info=error)
        _job_done(job, stats, error)
        if not self._stopped:
            self._schedule()

    def stop(self) -> None:
        self._stopped = True
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        if self._running is not None:
            self._running.cancel()
        self._clock._looping.discard(self)


async def pass_turn() -> None:
    """Let every other ready callback run once before going on: for work
    with no Clock at hand (the HTTP front door writing a large body)."""
    await asyncio.sleep(0)


async def _await(aw: Awaitable[T]) -> T:
    return await aw


@dataclass(slots=True)
class JobStats:
    """Runs of one background process or looping call, for Synapse's
    `synapse_background_process_*` metrics."""

    starts: int = 0
    in_flight: int = 0
    cpu_s: float = 0.0
    db_txns: int = 0
    db_s: float = 0.0

    def begin(self) -> None:
        self.starts += 1
        self.in_flight += 1

    def end(self, usage: ResourceUsage) -> None:
        self.in_flight -= 1
        self.cpu_s += usage.cpu_s
        self.db_txns += usage.db_txn_count
        self.db_s += usage.db_s


def _job_done(job: LoggingContext, stats: JobStats, error: BaseException | None) -> None:
    stats.end(job.usage)
    tracing.end_job_span(job, error)


class Clock:
    def __init__(self, server_name: str) -> None:
        self.server_name = server_name
        self._delayed: set[DelayedCall] = set()
        self._looping: set[LoopingCall] = set()
        self._tasks: set[asyncio.Task[Any]] = set()
        self._sleeps: set[asyncio.Future[None]] = set()
        self._pending_when_running: list[tuple[Callable[..., object], tuple[object, ...]]] = []
        self._bg_counter = itertools.count(1)
        # Per job name (a fixed set, named in code).
        self.job_stats: dict[str, JobStats] = {}
        self._shut_down = False
        # Wall-clock time is derived from the loop's clock so that tests on a
        # virtual-time loop see time() move when they advance the loop.
        self._epoch_offset: float | None = None

    def job_stats_for(self, name: str) -> JobStats:
        stats = self.job_stats.get(name)
        if stats is None:
            stats = self.job_stats[name] = JobStats()
        return stats

    def _loop(self) -> asyncio.AbstractEventLoop:
        if self._shut_down:
            raise ClockShutDownError(f"clock of {self.server_name} has shut down")
        return asyncio.get_running_loop()

    def time(self) -> float:
        try:
            now = asyncio.get_running_loop().time()
        except RuntimeError:
            return time.time()
        if self._epoch_offset is None:
            self._epoch_offset = time.time() - now
        return now + self._epoch_offset

    def time_msec(self) -> int:
        return int(self.time() * 1000)

    def monotonic(self) -> float:
        return asyncio.get_running_loop().time()

    async def sleep(self, seconds: float) -> None:
        loop = self._loop()
        fut: asyncio.Future[None] = loop.create_future()
        handle = loop.call_later(max(seconds, 0.0), _resolve, fut)
        self._sleeps.add(fut)
        try:
            await fut
        finally:
            handle.cancel()
            self._sleeps.discard(fut)

    def call_later(self, delay_s: float, fn: Callable[..., object], *args: object) -> DelayedCall:
        loop = self._loop()
        call = DelayedCall(self)

        def fire() -> None:
            call._fired()
            self._run_callback("call_later", fn, args)

        ctx = fresh_context("call_later", self.server_name)
        call._handle = loop.call_later(max(delay_s, 0.0), fire, context=ctx)
        self._delayed.add(call)
        return call

    def looping_call(
        self, fn: Callable[..., object], interval_s: float, *args: object
    ) -> LoopingCall:
        if interval_s <= 0:
            raise ValueError("looping_call interval must be positive")
        self._loop()
        call = LoopingCall(self, fn, interval_s, args)
        self._looping.add(call)
        call._schedule()
        return call

    def call_when_running(self, fn: Callable[..., object], *args: object) -> None:
        """Run `fn` once the event loop is running (soon, if it already is)."""
        if self._shut_down:
            raise ClockShutDownError(f"clock of {self.server_name} has shut down")
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            self._pending_when_running.append((fn, args))
            return
        self._schedule_soon(loop, fn, args)

    def start(self) -> None:
        """Flush callbacks registered before the loop ran. Called from the loop."""
        loop = self._loop()
        pending, self._pending_when_running = self._pending_when_running, []
        for fn, args in pending:
            self._schedule_soon(loop, fn, args)

    async def when_running(self, fn: Callable[..., object], *args: object) -> None:
        """Run `fn` as `call_when_running` would, and wait for it to finish.

        Being awaited, this runs only once the loop runs. `fn` runs in a
        fresh `call_when_running` context for this homeserver (an awaitable
        it returns is awaited there too); its failure is raised to the
        caller rather than logged and dropped.
        """
        loop = self._loop()
        ctx = fresh_context("call_when_running", self.server_name)
        result = ctx.run(fn, *args)
        if inspect.isawaitable(result):
            task = loop.create_task(_await(result), context=ctx)
            self._track(task)
            await task

    def _schedule_soon(
        self, loop: asyncio.AbstractEventLoop, fn: Callable[..., object], args: tuple[object, ...]
    ) -> None:
        call = DelayedCall(self)

        def fire() -> None:
            call._fired()
            self._run_callback("call_when_running", fn, args)

        ctx = fresh_context("call_when_running", self.server_name)
        call._handle = loop.call_later(0, fire, context=ctx)
        self._delayed.add(call)

    def _run_callback(self, name: str, fn: Callable[..., object], args: tuple[object, ...]) -> None:
        try:
            result = fn(*args)
        except Exception:
            logger.exception("%s callback %r failed", name, fn)
            return
        if inspect.isawaitable(result):
            self._track(self._loop().create_task(_await(result)))

    def run_as_background_process(
        self, desc: str, fn: Callable[..., Awaitable[T]], *args: object
    ) -> asyncio.Task[T | None]:
        loop = self._loop()
        name = f"background-{desc}-{next(self._bg_counter)}"
        ctx = fresh_context(name, self.server_name)
        job = ctx.run(current_context)
        assert job is not None
        tracing.start_job_span(job, f"bgproc.{desc}", caller=current_context())
        stats = self.job_stats_for(desc)
        stats.begin()

        async def run() -> T | None:
            try:
                return await measure_cpu(fn(*args), job)
            except asyncio.CancelledError:
                raise
            except Exception as e:
                logger.exception("Background process %s failed", desc)
                tracing.end_job_span(job, e)
                return None

        task = loop.create_task(run(), name=name, context=ctx)
        self._track(task)
        # Here, not in run(): also when cancelled before it ever ran.
        task.add_done_callback(lambda _: _job_done(job, stats, None))
        return task

    def _track(self, task: asyncio.Task[Any]) -> None:
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    @overload
    def run_in_background(
        self, fn: Callable[..., Awaitable[T]], *args: object
    ) -> asyncio.Future[T]: ...

    @overload
    def run_in_background(self, fn: Callable[..., T], *args: object) -> asyncio.Future[T]: ...

    def run_in_background(
        self, fn: Callable[..., Awaitable[T] | T], *args: object
    ) -> asyncio.Future[T]:
        """Start `fn` now as fire-and-forget work of the caller.

        It runs under the caller's logging context (it is the caller's work),
        but in a copy of the caller's `contextvars`, so nothing `fn` sets
        leaks back, whether it completes at once or stays pending. The clock
        owns the resulting task and cancels it on shutdown.
        """
        loop = self._loop()
        ctx = contextvars.copy_context()
        try:
            result = ctx.run(fn, *args)
        except Exception as e:
            failed: asyncio.Future[T] = loop.create_future()
            failed.set_exception(e)
            _log_failure(fn, failed)
            return failed
        if not inspect.isawaitable(result):
            done: asyncio.Future[T] = loop.create_future()
            done.set_result(result)
            return done
        task = loop.create_task(_await(result), context=ctx)
        self._track(task)
        # Logged where it failed, as the caller's work. Left to asyncio, an
        # unawaited failure would be logged whenever the task is collected,
        # under whatever context (or none) happens to run then.
        task.add_done_callback(functools.partial(_log_failure, fn), context=ctx)
        return task

    def has_running_tasks(self) -> bool:
        """Whether a background job (or a looping call's run) is in progress."""
        return bool(self._tasks)

    def pending_count(self) -> int:
        return len(self._delayed) + len(self._looping) + len(self._tasks) + len(self._sleeps)

    @property
    def is_shut_down(self) -> bool:
        return self._shut_down

    async def shutdown(self) -> None:
        """Cancel every timer, looping call and task this clock started."""
        if self._shut_down:
            return
        self._shut_down = True
        self._pending_when_running.clear()
        for call in list(self._delayed):
            call.cancel()
        for looping in list(self._looping):
            looping.stop()
        for fut in list(self._sleeps):
            fut.cancel()
        tasks = [t for t in self._tasks if t is not asyncio.current_task()]
        for task in tasks:
            task.cancel()
        if tasks:
            await asyncio.gather(*tasks, return_exceptions=True)
        self._tasks.clear()


def _log_failure(fn: Callable[..., object], fut: asyncio.Future[Any]) -> None:
    """Log fire-and-forget work that failed; an awaiter still gets the exception."""
    if not fut.cancelled() and (error := fut.exception()) is not None:
        logger.error("Background work %r failed", fn, exc_info=error)


def _resolve(fut: asyncio.Future[None]) -> None:
    if not fut.done():
        fut.set_result(None)
