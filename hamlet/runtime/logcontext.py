"""Logging contexts: which homeserver, which request or job, and what it cost.

A `LoggingContext` lives in a `contextvars.ContextVar`. asyncio copies the
current context into every task and callback, so work started from a
request carries that request with it. The Clock deliberately breaks that
inheritance for timers and background jobs (see clock.py).
"""

from __future__ import annotations

import asyncio
import contextvars
import logging
import time
from collections.abc import Awaitable, Callable, Coroutine, Generator
from dataclasses import dataclass, field
from typing import Any, Final, TypeVar

T = TypeVar("T")

SENTINEL_SERVER_NAME: Final = "unknown_server_from_sentinel_context"
SENTINEL_REQUEST: Final = "sentinel"

DEFAULT_LOG_FORMAT: Final = (
    "%(asctime)s - %(server_name)s - %(name)s - %(lineno)d - %(levelname)s"
    " - %(request)s - %(message)s"
)


@dataclass(slots=True)
class ResourceUsage:
    wall_s: float = 0.0
    cpu_s: float = 0.0
    db_s: float = 0.0
    db_txn_count: int = 0


@dataclass(slots=True, eq=False)
class LoggingContext:
    """Who is running now: a tenant plus a request or job name."""

    name: str
    server_name: str = SENTINEL_SERVER_NAME
    request: str | None = None
    parent: LoggingContext | None = None
    usage: ResourceUsage = field(default_factory=ResourceUsage)
    started_at: float = field(default_factory=time.monotonic)
    #: The OpenTelemetry span of this request or job, when tracing is on (tracing.py).
    span: Any = None
    #: Sorts a request's figures further than its route (Synapse's `tag`, e.g. a /sync's kind).
    tag: str = ""
    _token: contextvars.Token[LoggingContext | None] | None = None

    @property
    def request_label(self) -> str:
        return self.request if self.request is not None else self.name

    def add_db_time(self, seconds: float) -> None:
        """Charge a finished transaction to this context and its parents."""
        ctx: LoggingContext | None = self
        while ctx is not None:
            ctx.usage.db_s += seconds
            ctx.usage.db_txn_count += 1
            ctx = ctx.parent

    def add_cpu_time(self, seconds: float) -> None:
        ctx: LoggingContext | None = self
        while ctx is not None:
            ctx.usage.cpu_s += seconds
            ctx = ctx.parent

    def child(self, name: str) -> LoggingContext:
        return LoggingContext(
            name=name, server_name=self.server_name, request=self.request, parent=self
        )

    def __enter__(self) -> LoggingContext:
        if self._token is not None:
            raise RuntimeError(f"logging context {self.name} entered twice")
        self._token = _current.set(self)
        return self

    def __exit__(self, *exc: object) -> None:
        self.usage.wall_s = time.monotonic() - self.started_at
        token, self._token = self._token, None
        assert token is not None
        _current.reset(token)


_current: contextvars.ContextVar[LoggingContext | None] = contextvars.ContextVar(
    "hamlet_logging_context", default=None
)


def current_context() -> LoggingContext | None:
    return _current.get()


def tag_request(tag: str) -> None:
    """Label the current request's figures further than its route (Synapse's `tag`)."""
    ctx = _current.get()
    if ctx is not None:
        ctx.tag = tag


def fresh_context(name: str, server_name: str) -> contextvars.Context:
    """A new `contextvars.Context` holding only a logging context for `server_name`.

    Used for timers and background work, which must never run under the
    context (the request) of whoever scheduled them.
    """
    ctx = contextvars.Context()
    ctx.run(_current.set, LoggingContext(name=name, server_name=server_name))
    return ctx


async def in_sentinel_context(fn: Callable[..., Coroutine[Any, Any, T]], *args: object) -> T:
    """Await `fn(*args)` in an empty `contextvars.Context`: outside any logging context.

    For what outlives the caller through callbacks asyncio registers with a
    copy of the *current* context: a listening socket hands that copy to
    every connection it accepts, and so to every request's task. Opened in
    the host's `startup` or `provision-<name>` context, every later
    request, and aiohttp's own error lines, would run as that finished
    context; opened here they start as the sentinel, and the front door
    enters the request's own context.
    """
    task = asyncio.get_running_loop().create_task(fn(*args), context=contextvars.Context())
    return await task


class _MeasuredAwaitable:
    """Drives a coroutine step by step, charging thread CPU time to `ctx`.

    Several tasks interleave on one thread, so CPU time is only
    attributable per step: each `send` into the coroutine is timed.
    """

    __slots__ = ("_aw", "_ctx")

    def __init__(self, aw: Awaitable[Any], ctx: LoggingContext) -> None:
        self._aw = aw
        self._ctx = ctx

    def __await__(self) -> Generator[Any, Any, Any]:
        it = self._aw.__await__()
        to_send: Any = None
        to_throw: BaseException | None = None
        while True:
            started = time.thread_time()
            try:
                if to_throw is not None:
                    yielded = it.throw(to_throw)
                else:
                    yielded = it.send(to_send)
            except StopIteration as stop:
                return stop.value
            finally:
                self._ctx.add_cpu_time(time.thread_time() - started)
            try:
                to_send = yield yielded
                to_throw = None
            except BaseException as e:
                to_send = None
                to_throw = e


async def measure_cpu(aw: Awaitable[T], ctx: LoggingContext) -> T:
    result: T = await _MeasuredAwaitable(aw, ctx)
    return result


def _install_record_factory() -> None:
    previous = logging.getLogRecordFactory()
    if getattr(previous, "_hamlet", False):
        return

    def factory(*args: Any, **kwargs: Any) -> logging.LogRecord:
        record = previous(*args, **kwargs)
        ctx = _current.get()
        if ctx is None:
            record.server_name = SENTINEL_SERVER_NAME
            record.request = SENTINEL_REQUEST
        else:
            record.server_name = ctx.server_name
            record.request = ctx.request_label
        return record

    factory._hamlet = True  # type: ignore[attr-defined]
    logging.setLogRecordFactory(factory)


_install_record_factory()
