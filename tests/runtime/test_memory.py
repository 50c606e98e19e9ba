"""What hibernation calls to give freed memory back."""

from __future__ import annotations

import gc
import weakref

from hamlet.runtime import memory


class _Node:
    def __init__(self) -> None:
        self.me = self


async def test_cycles_are_collected_and_the_heap_trimmed(monkeypatch) -> None:  # type: ignore[no-untyped-def]
    trims: list[int] = []

    def trim(pad: int) -> int:
        trims.append(pad)
        return 1

    monkeypatch.setattr(memory, "_find_trim", lambda: trim)
    gc.disable()
    try:
        node = _Node()
        ref = weakref.ref(node)
        del node
        assert ref() is not None, "a cycle outlives its last name until collected"
        await memory.release_freed_memory()
        assert ref() is None
    finally:
        gc.enable()
    assert trims == [0]


def test_glibc_trim_is_found_here() -> None:
    # The test machines run glibc: the trim is really there, not silently skipped.
    assert memory._find_trim() is not None


def test_frozen_objects_are_left_alone_and_later_cycles_still_collected() -> None:
    kept = _Node()
    kept_ref = weakref.ref(kept)
    try:
        memory.freeze_long_lived()
        assert gc.get_freeze_count() > 0
        del kept
        gc.collect()
        assert kept_ref() is not None, "alive at the freeze: never collected"
        later = _Node()
        later_ref = weakref.ref(later)
        del later
        gc.collect()
        assert later_ref() is None
    finally:
        gc.unfreeze()
    gc.collect()
    assert kept_ref() is None
