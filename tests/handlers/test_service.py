"""ServiceRegistry: the order it drives services in, and failures it survives."""

from __future__ import annotations

import pytest

from hamlet.handlers.common.service import ServiceBase, ServiceRegistry


class Recorder(ServiceBase):
    def __init__(self, name: str, log: list[str], *, fail_shutdown: bool = False) -> None:
        self.name = name
        self.log = log
        self.fail_shutdown = fail_shutdown
        self.cache = [1, 2, 3]

    async def load(self) -> None:
        self.log.append(f"load {self.name}")

    def start(self) -> None:
        self.log.append(f"start {self.name}")

    async def shutdown(self) -> None:
        self.log.append(f"shutdown {self.name}")
        if self.fail_shutdown:
            raise RuntimeError("shutdown bug")

    def clear_caches(self) -> None:
        self.cache.clear()

    def memory_usage(self) -> int:
        return 100 * len(self.cache)


async def test_load_and_start_in_build_order_shutdown_in_reverse() -> None:
    log: list[str] = []
    registry = ServiceRegistry()
    a = registry.own(Recorder("a", log))
    registry.own(Recorder("b", log, fail_shutdown=True))
    registry.own(Recorder("c", log))
    await registry.load()
    registry.start()
    assert registry.memory_usage() == 900
    registry.clear_caches()
    assert registry.memory_usage() == 0 and a.cache == []
    await registry.shutdown()
    await registry.shutdown()  # nothing left to shut down twice
    assert log == [
        "load a",
        "load b",
        "load c",
        "start a",
        "start b",
        "start c",
        "shutdown c",
        "shutdown b",
        "shutdown a",
    ]
    assert len(registry) == 0


async def test_a_failed_load_leaves_every_service_registered_for_shutdown() -> None:
    log: list[str] = []
    registry = ServiceRegistry()
    registry.own(Recorder("a", log))

    class Broken(ServiceBase):
        async def load(self) -> None:
            raise OSError("unreadable")

    registry.own(Broken())
    registry.own(Recorder("c", log))
    with pytest.raises(OSError):
        await registry.load()
    await registry.shutdown()
    assert log == ["load a", "shutdown c", "shutdown a"]
