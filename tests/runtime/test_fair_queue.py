"""The fair queue: per-tenant caps and round-robin turns, with plain tenants and no threads."""

from __future__ import annotations

import asyncio

import pytest

from hamlet.runtime.fair_queue import FairQueue


async def _settle() -> None:
    for _ in range(5):
        await asyncio.sleep(0)


class Recorder:
    """Jobs that take a place, note that they got it, and hold it until told."""

    def __init__(self, queue: FairQueue) -> None:
        self.queue = queue
        self.granted: list[str] = []
        self.tasks: dict[str, asyncio.Task[None]] = {}

    def submit(self, tenant: str, name: str) -> None:
        async def job() -> None:
            await self.queue.acquire(tenant)
            self.granted.append(name)

        self.tasks[name] = asyncio.ensure_future(job())


async def flooded(places: int, per_tenant: int, jobs: int) -> Recorder:
    """A queue to which the tenant `flood` has submitted `jobs` jobs (f0, f1, ...)."""
    recorder = Recorder(FairQueue(places, per_tenant))
    for i in range(jobs):
        recorder.submit("flood", f"f{i}")
    await _settle()
    return recorder


async def test_freed_places_go_round_the_waiting_tenants_in_turn() -> None:
    jobs = await flooded(places=2, per_tenant=2, jobs=2)
    queue = jobs.queue
    # The flood queues six more before the quiet tenant queues two.
    for i in range(2, 8):
        jobs.submit("flood", f"f{i}")
    jobs.submit("quiet", "q0")
    jobs.submit("quiet", "q1")
    await _settle()
    assert jobs.granted == ["f0", "f1"]
    for _ in range(6):
        queue.release("flood" if jobs.granted[-1].startswith("f") else "quiet")
        await _settle()
    # One place freed at a time: quiet gets every other one, not the ninth.
    assert jobs.granted == ["f0", "f1", "f2", "q0", "f3", "q1", "f4", "f5"]


async def test_a_tenant_at_its_cap_leaves_the_rest_to_others() -> None:
    jobs = await flooded(places=4, per_tenant=3, jobs=10)
    queue = jobs.queue
    assert jobs.granted == ["f0", "f1", "f2"]
    assert queue.queued == 7
    jobs.submit("quiet", "q0")
    await _settle()
    assert jobs.granted[-1] == "q0"
    assert queue.running == 4 and queue.running_by_tenant == {"flood": 3, "quiet": 1}


async def test_a_cancelled_waiter_gives_up_its_turn() -> None:
    queue = FairQueue(places=1, per_tenant=1)
    jobs = Recorder(queue)
    jobs.submit("a", "a0")
    jobs.submit("a", "a1")
    jobs.submit("b", "b0")
    await _settle()
    jobs.tasks["a1"].cancel()
    with pytest.raises(asyncio.CancelledError):
        await jobs.tasks["a1"]
    queue.release("a")
    await _settle()
    assert jobs.granted == ["a0", "b0"]
    queue.release("b")
    assert queue.running == 0 and queue.queued == 0 and not queue.turns


async def test_place_is_given_back_when_the_block_fails() -> None:
    queue = FairQueue(places=1, per_tenant=1)
    with pytest.raises(RuntimeError):
        async with queue.place("a"):
            raise RuntimeError("the job failed")
    assert queue.try_acquire("b")
