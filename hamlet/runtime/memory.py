"""Handing memory freed by shut-down homeservers back to the operating system.

A hibernated homeserver's objects sit in reference cycles until the
collector's oldest generation runs, and what they free stays in glibc's
arenas: RSS after hibernating 100 tenants stayed where it was with them
awake. A full collection then `malloc_trim(0)` gives it back.

That only covers what glibc's malloc holds. Python's own small-object
allocator keeps its 1 MiB arenas until every object in one is freed, and
a few objects outliving a wake (a tenant's request figures, a timer of a
neighbour) pin the arenas the woken homeservers filled: after 100 wakes
and re-hibernation 13 such arenas stayed, RSS 67 -> 99 -> 79 MB. The
serving process therefore runs on the system allocator
(`reexec_on_system_malloc`), where the trim returns freed pages wherever
they are: 69 -> 101 -> 70 MB.

A full collection costs in proportion to everything tracked, most of it
the modules and the configs of every tenant, which never become garbage:
`freeze_long_lived` takes what exists once the host is up out of the
collector's sight, so the collection after each hibernation sweep (on the
event loop) scans what the awake homeservers hold and little else.
"""

from __future__ import annotations

import functools
import gc
import logging
import os
import sys
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


#: The environment variable choosing CPython's allocator (honoured if set).
ALLOCATOR_ENV = "PYTHONMALLOC"


def reexec_on_system_malloc() -> None:
    """Start this process over (same pid, arguments and descriptors) on glibc's malloc.

    Call first thing, before anything is opened. Does nothing if the
    allocator was chosen already (this is the process started over, or the
    operator set one) or where there is no `malloc_trim` to give pages back.
    """
    if os.environ.get(ALLOCATOR_ENV) or _find_trim() is None:
        return
    os.environ[ALLOCATOR_ENV] = "malloc"
    sys.stdout.flush()
    sys.stderr.flush()
    os.execv(sys.executable, sys.orig_argv)


def freeze_long_lived() -> None:
    """Move every object alive now out of the collector's reach for good.

    For a serving process once it is up: whatever is alive then (modules,
    configs, hibernated tenants) lives as long as the process, or is freed
    by reference counting. A cycle among them would never be collected, so
    call it only when no homeserver that may later hibernate is awake
    besides a few static ones.
    """
    gc.collect()
    gc.freeze()
