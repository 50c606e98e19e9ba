"""Deadlines that leave the caller in its own logging context."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable
from typing import TypeVar

from hamlet.runtime.clock import Clock

logger = logging.getLogger(__name__)

T = TypeVar("T")


async def with_timeout(aw: Awaitable[T], seconds: float, clock: Clock) -> T:
    """Await `aw` for at most `seconds`; raise `TimeoutError` after that.

    The awaitable runs inside the caller's task, so it shares the caller's
    logging context; the timer that cancels it belongs to the clock. The
    timeout is logged by the caller's task, hence under the caller's context.
    """
    task = asyncio.current_task()
    if task is None:
        raise RuntimeError("with_timeout must be awaited from a task")
    fired = False

    def expire() -> None:
        nonlocal fired
        fired = True
        task.cancel()

    timer = clock.call_later(seconds, expire)
    try:
        return await aw
    except asyncio.CancelledError:
        if fired and task.uncancel() == 0:
            logger.debug("Timed out after %.3fs", seconds)
            raise TimeoutError(f"timed out after {seconds}s") from None
        raise
    finally:
        timer.cancel()
