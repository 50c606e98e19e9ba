"""Handing memory freed by shut-down homeservers back to the operating system.

A hibernated homeserver's objects sit in reference cycles until the
collector's oldest generation runs, and what they free stays in glibc's
arenas: RSS after hibernating 100 tenants stayed where it was with them
awake. A full collection then `malloc_trim(0)` gives it back.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import gc
import logging
from collections.abc import Callable

from hamlet.runtime.blocking import run_file_io

logger = logging.getLogger(__name__)


def _find_trim() -> Callable[[int], int] | None:
    name = ctypes.util.find_library("c")
    if name is None:
        return None
    try:
        trim: Callable[[int], int] = ctypes.CDLL(name).malloc_trim
    except (OSError, AttributeError):
        # Not glibc (musl, macOS): nothing to trim that way.
        return None
    return trim


_malloc_trim = _find_trim()


async def release_freed_memory() -> None:
    """Collect cycles (on the loop: the collector needs the GIL), then trim off it."""
    gc.collect()
    if _malloc_trim is not None:
        # The trim walks the heap without the GIL; it blocks no tenant there.
        await run_file_io(_malloc_trim, 0)
