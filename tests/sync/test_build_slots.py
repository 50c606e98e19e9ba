"""Sync builds take slots: a user's distinct syncs (/sync and sliding sync
alike) build a few at a time, the tenant's a few more; the rest wait their
turn, then are answered in full."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from typing import Any
from urllib.parse import quote

import orjson
import pytest

from hamlet.config import HomeServerConfig
from tests.sliding_sync.helpers import slide
from tests.support.harness import Harness, Response
from tests.support.users import TestUser, make_user
from tests.sync.helpers import C, body, fast_harness, unpooled, until

LIMITS = {"max_concurrent_sync_builds_per_user": 2, "max_concurrent_sync_builds": 3}


@pytest.fixture
async def h(make_hs_config: Callable[..., HomeServerConfig]) -> AsyncIterator[Harness]:
    async with fast_harness(make_hs_config, limits=LIMITS) as h:
        yield h


class HeldBuilds:
    """Makes every /sync and sliding sync build wait until released, and
    records whose builds run at once."""

    def __init__(self, h: Harness, monkeypatch: pytest.MonkeyPatch) -> None:
        self.release = asyncio.Event()
        self.running: list[str] = []
        self.most = 0
        for handler in (h.hs.sync, h.hs.sliding_sync):
            monkeypatch.setattr(handler, "_build", self._held(handler._build))

    def _held(self, build: Callable[..., Any]) -> Callable[..., Any]:
        async def held(request: Any, *args: Any) -> Any:
            self.running.append(request.requester.user_id)
            self.most = max(self.most, len(self.running))
            try:
                await self.release.wait()
                return await build(request, *args)
            finally:
                self.running.remove(request.requester.user_id)

        return held


def distinct_sync(
    get: Callable[..., Any], user: TestUser, n: int, query: str = ""
) -> asyncio.Future[Response]:
    """A sync that shares no computation with another `n`."""
    room_filter = orjson.dumps({"room": {"timeline": {"limit": n + 1}}}).decode()
    return asyncio.ensure_future(get(f"{C}/sync?filter={quote(room_filter)}{query}", user.token))


async def test_a_users_distinct_syncs_build_two_at_a_time(
    h: Harness, monkeypatch: pytest.MonkeyPatch
) -> None:
    alice = await make_user(h, "alice")
    bob = await make_user(h, "bob")
    held = HeldBuilds(h, monkeypatch)
    async with unpooled(h) as get:
        flood = [distinct_sync(get, alice, i) for i in range(5)]
        await until(lambda: h.hs.sync.computations == 5, "five syncs of alice computing")
        await until(lambda: len(held.running) == 2, "two of them building")
        # Bob is not queued behind alice's flood: the tenant has a slot left.
        bobs = distinct_sync(get, bob, 0)
        await until(lambda: bob.user_id in held.running, "bob's sync building")
        assert held.running.count(alice.user_id) == 2
        # A sliding sync of alice's waits for one of her slots too.
        sliding = asyncio.ensure_future(slide(h, alice, {"lists": {}}))
        await until(lambda: h.hs.sliding_sync.computations == 1, "alice's sliding sync")
        assert held.running.count(alice.user_id) == 2
        held.release.set()
        answered = await asyncio.gather(*flood, bobs)
    assert all("next_batch" in body(r) for r in answered)
    assert (await sliding).status == 200
    assert held.most == 3
    assert h.hs.sync.build_slots.waiting_owners == 0


async def test_the_tenant_builds_a_few_at_a_time(
    h: Harness, monkeypatch: pytest.MonkeyPatch
) -> None:
    users = [await make_user(h, f"user{i}") for i in range(5)]
    held = HeldBuilds(h, monkeypatch)
    async with unpooled(h) as get:
        syncs = [distinct_sync(get, user, 0) for user in users]
        await until(lambda: h.hs.sync.computations == 5, "five users syncing")
        await until(lambda: len(held.running) == 3, "three building")
        held.release.set()
        answered = await asyncio.gather(*syncs)
    assert all("next_batch" in body(r) for r in answered)
    assert held.most == 3


async def test_a_long_poll_waits_without_holding_a_slot(h: Harness) -> None:
    alice = await make_user(h, "alice")
    async with unpooled(h) as get:
        since = body(await get(f"{C}/sync", alice.token))["next_batch"]
        query = f"&since={quote(since)}&timeout=30000"
        polls = [distinct_sync(get, alice, i, query) for i in range(3)]
        await until(lambda: h.hs.notifier.waiter_count == 3, "three long-polls waiting")
        # Both of alice's build slots are free: a fresh sync is answered at once.
        assert h.hs.sync.build_slots.running == 0
        assert "next_batch" in body(await get(f"{C}/sync", alice.token))
        for poll in polls:
            poll.cancel()
        await asyncio.gather(*polls, return_exceptions=True)
