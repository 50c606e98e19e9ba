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

T = TypeVar("T")

_POOL_SIZE = 4
_pool: ThreadPoolExecutor | None = None


def _get_pool() -> ThreadPoolExecutor:
    global _pool
    if _pool is None:
        _pool = ThreadPoolExecutor(max_workers=_POOL_SIZE, thread_name_prefix="hamlet-blocking")
    return _pool


async def run_blocking(fn: Callable[..., T], *args: object) -> T:
    """Run `fn(*args)` on the shared pool without blocking the event loop."""
    loop = asyncio.get_running_loop()
    ctx = contextvars.copy_context()
    return await loop.run_in_executor(_get_pool(), functools.partial(ctx.run, fn, *args))
