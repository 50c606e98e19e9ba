"""Work in flight that the event loop cannot see: pool threads and socket round trips.

A task waiting for a database reply looks, to the loop, exactly like a task
waiting forever, and a thread is invisible to it altogether. A
virtual-time loop must know the difference: moving time on while a write
is still under way makes a timer fire "before" work that really started
first. So whoever starts such work wraps the wait in `track()`, and
`VirtualTimeEventLoop` holds time still until nothing is tracked.

Only waits that finish on their own belong here (a thread running, a query
on the wire). A wait for another task (a lock, a free pooled connection
held by a transaction that sleeps) must stay untracked, or a loop whose
time is stopped would wait for a timer that can never fire.
"""

from __future__ import annotations

import asyncio
import contextlib
import weakref
from collections.abc import Iterator

_counts: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, int] = weakref.WeakKeyDictionary()


@contextlib.contextmanager
def track() -> Iterator[None]:
    """Count the enclosed wait as work in flight on the running loop."""
    loop = asyncio.get_running_loop()
    _counts[loop] = _counts.get(loop, 0) + 1
    try:
        yield
    finally:
        _counts[loop] -= 1


def in_flight(loop: asyncio.AbstractEventLoop) -> int:
    """How many tracked waits on `loop` have not finished."""
    return _counts.get(loop, 0)
