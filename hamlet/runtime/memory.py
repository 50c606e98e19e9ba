"""Handing memory freed by shut-down homeservers back to the operating system.

A hibernated homeserver's objects sit in reference cycles until the
collector's oldest generation runs, and what they free stays in glibc's
arenas: RSS after hibernating 100 tenants stayed where it was with them
awake. A full collection then `malloc_trim(0)` gives it back.
"""

from __future__ import annotations

import functools
import gc
import logging
from collections.abc import Callable

from hamlet.runtime.blocking import run_file_io

logger = logging.getLogger(__name__)


@functools.cache
def _find_trim() -> Callable[[int], int] | None:
    # Looked up in the symbols the process already has (libc among them)
    # on first use: ctypes.util.find_library would run `ldconfig -p` in a
    # subprocess, 10-90 ms of every start for a call few processes make.
    import ctypes

    try:
        trim: Callable[[int], int] = ctypes.CDLL(None).malloc_trim
    except (OSError, AttributeError):
        # Not glibc (musl, macOS): nothing to trim that way.
        return None
    return trim


async def release_freed_memory() -> None:
    """Collect cycles (on the loop: the collector needs the GIL), then trim off it."""
    gc.collect()
    trim = _find_trim()
    if trim is not None:
        # The trim walks the heap without the GIL; it blocks no tenant there.
        await run_file_io(trim, 0)
