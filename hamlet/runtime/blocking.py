"""The process-wide pool for blocking calls (SQLite), shared by every tenant.

A thread per tenant would make idle tenants expensive; one small pool
serves all of them, and each tenant serialises its own connection.
"""

from __future__ import annotations

import asyncio
import contextvars
import functools
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import TypeVar

from hamlet.runtime import pending_io

T = TypeVar("T")

_POOL_SIZE = 4
_pool: ThreadPoolExecutor | None = None


def _get_pool() -> ThreadPoolExecutor:
    global _pool
    if _pool is None:
        _pool = ThreadPoolExecutor(max_workers=_POOL_SIZE, thread_name_prefix="hamlet-blocking")
    return _pool


async def run_blocking(fn: Callable[..., T], *args: object) -> T:
    """Run `fn(*args)` on the shared pool without blocking the event loop.

    A thread cannot be interrupted: once submitted, `fn` always runs to the
    end. If the awaiting task is cancelled meanwhile, this waits for `fn`
    to finish before raising `CancelledError`, so the caller never releases
    a resource (a SQLite connection and its lock) that a pool thread is
    still using, and a rollback it awaits while cancelled still happens.
    """
    loop = asyncio.get_running_loop()
    ctx = contextvars.copy_context()
    with pending_io.track():
        fut = loop.run_in_executor(_get_pool(), functools.partial(ctx.run, fn, *args))
        return await _await_to_the_end(fut)


async def _await_to_the_end(fut: asyncio.Future[T]) -> T:
    try:
        return await asyncio.shield(fut)
    except asyncio.CancelledError:
        while not fut.done():
            try:
                await asyncio.shield(fut)
            except asyncio.CancelledError:
                continue
            except BaseException:
                break
        if not fut.cancelled():
            fut.exception()  # retrieved: the caller gets CancelledError instead
        raise
