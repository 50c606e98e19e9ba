"""`limits.max_concurrent_requests` counts a tenant's work, /sync builds included, not its waits.

A slot is held by the test (or by a sync build it keeps from finishing),
so which request waits and which is refused are facts, not timings.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest

from hamlet.config import HomeServerConfig
from hamlet.handlers.common.request_slots import QUEUE_PER_SLOT, RETRY_AFTER_MS
from hamlet.homeserver import HomeServer
from tests.conftest import advance
from tests.support.harness import Harness, Response, start_harness
from tests.support.users import TestUser, make_user
from tests.sync.helpers import until

C = "/_matrix/client/v3"
MakeConfig = Callable[..., HomeServerConfig]


@pytest.fixture
async def capped(make_hs_config: MakeConfig) -> AsyncIterator[Harness]:
    h = await start_harness([make_hs_config("capped.test", limits={"max_concurrent_requests": 1})])
    yield h
    await h.close()


def _get(h: Harness, path: str, user: TestUser) -> asyncio.Task[Response]:
    return asyncio.ensure_future(h.request("GET", f"{C}{path}", token=user.token))


def _hold_room_builds(hs: HomeServer, monkeypatch: pytest.MonkeyPatch) -> asyncio.Event:
    """Sync builds wait, mid-build, until the returned event is set."""
    gate = asyncio.Event()
    builder = hs.sync.room_builder
    build = builder.build

    async def held_build(**kwargs: Any) -> Any:
        await gate.wait()
        return await build(**kwargs)

    monkeypatch.setattr(builder, "build", held_build)
    return gate


async def test_a_sync_being_built_holds_a_request_slot(
    capped: Harness, monkeypatch: pytest.MonkeyPatch
) -> None:
    hs = capped.hs
    alice = await make_user(capped, "alice")
    gate = _hold_room_builds(hs, monkeypatch)
    sync = _get(capped, "/sync?timeout=0&full_state=true", alice)
    await until(lambda: hs.request_slots.running == 1, "the build to take the slot")
    whoami = _get(capped, "/account/whoami", alice)
    await until(lambda: hs.request_slots.queued == 1, "whoami to queue")
    assert not sync.done() and not whoami.done()
    gate.set()
    assert (await sync).status == 200
    assert (await whoami).status == 200
    assert hs.request_slots.running == 0


async def test_a_long_poll_waits_without_a_slot_and_builds_with_one(capped: Harness) -> None:
    hs = capped.hs
    alice = await make_user(capped, "alice")
    first = await capped.request("GET", f"{C}/sync?timeout=0", token=alice.token)
    since = first.json["next_batch"]
    async with hs.request_slots.slot():
        poll = _get(capped, f"/sync?since={since}&timeout=10000", alice)
        await until(lambda: hs.notifier.waiter_count == 1, "the long-poll to wait")
        # Waiting for news with every slot taken: nothing queued for one.
        assert hs.request_slots.queued == 0
    await advance(11)
    resp = await poll
    assert resp.status == 200
    assert resp.json["next_batch"] == since


async def test_over_the_cap_and_its_queue_a_request_or_sync_gets_429_unread(
    capped: Harness,
) -> None:
    hs = capped.hs
    alice = await make_user(capped, "alice")
    async with hs.request_slots.slot():
        queued = [_get(capped, "/account/whoami", alice) for _ in range(QUEUE_PER_SLOT)]
        await until(lambda: hs.request_slots.queued == QUEUE_PER_SLOT, "a full queue")
        sync = await capped.request("GET", f"{C}/sync?timeout=0&full_state=true", token=alice.token)
        # Refused before the body is read: not a 400 for its bad JSON.
        post = await capped.request("POST", f"{C}/createRoom", body=b"{not json", token=alice.token)
        for resp in (sync, post):
            assert resp.status == 429, resp.json
            assert resp.json["errcode"] == "M_LIMIT_EXCEEDED"
            assert resp.json["retry_after_ms"] == RETRY_AFTER_MS
        assert not any(task.done() for task in queued)
    assert [r.status for r in await asyncio.gather(*queued)] == [200] * QUEUE_PER_SLOT
    after = await capped.request("GET", f"{C}/sync?timeout=0&full_state=true", token=alice.token)
    assert after.status == 200
