"""Concurrent /sync of one user: identical requests share one computation,
distinct ones are capped (`limits.max_concurrent_syncs_per_user`)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from typing import Any
from urllib.parse import quote

import pytest

from hamlet.config import HomeServerConfig
from hamlet.homeserver import HomeServer
from tests.conftest import advance, settle
from tests.support.harness import Harness, RecordingHandler, Response
from tests.support.users import TestUser, make_user
from tests.sync.helpers import C, body, fast_harness, long_polls, unpooled, until
from tests.user_streams.helpers import public_room, send_text


@pytest.fixture
async def h(make_hs_config: Callable[..., HomeServerConfig]) -> AsyncIterator[Harness]:
    # Account data past the default sync budget: a full sync over a megabyte.
    limits = {"max_concurrent_syncs_per_user": 3, "max_account_data_sync_bytes": 4 * 1024**2}
    async with fast_harness(make_hs_config, limits=limits) as h:
        yield h


def waiting(hs: HomeServer, requests: int, computations: int) -> Callable[[], bool]:
    return lambda: (
        hs.sync.active_syncs == requests
        and hs.sync.computations == computations
        and hs.notifier.waiter_count == computations
    )


async def polls_then_message(
    h: Harness,
    get: Callable[..., Any],
    user: TestUser,
    sender: TestUser,
    room: str,
    n: int,
    text: str,
) -> tuple[list[Response], int]:
    """`n` identical long-polls, then one message: the responses, and the
    database transactions from the message until all work it started has
    finished (the send's own included, background work too: the computation
    it wakes starts before the send's response is back, so only the whole is
    the same from run to run)."""
    hs = h.hs
    polls = await long_polls(get, user, n)
    await until(waiting(hs, n, 1), f"{n} syncs waiting on one computation")
    before = hs.db.total_txns
    await send_text(h, sender, room, text)
    responses = await asyncio.gather(*polls)
    await settle()
    return responses, hs.db.total_txns - before


async def test_identical_long_polls_share_one_computation(h: Harness) -> None:
    alice = await make_user(h, "alice")
    bob = await make_user(h, "bob")
    room = await public_room(h, alice, bob)
    async with unpooled(h) as get:
        # Warm the caches, then measure what one sync costs per wake.
        await polls_then_message(h, get, bob, alice, room, 1, "warm-up")
        (single,), one_sync_txns = await polls_then_message(h, get, bob, alice, room, 1, "one")
        assert one_sync_txns > 0
        responses, shared_txns = await polls_then_message(h, get, bob, alice, room, 200, "many")
    bodies = [body(r) for r in responses]
    assert len({b["next_batch"] for b in bodies}) == 1
    timelines = [b["rooms"]["join"][room]["timeline"]["events"] for b in bodies]
    assert all([e["content"]["body"] for e in t] == ["many"] for t in timelines)
    single_timeline = body(single)["rooms"]["join"][room]["timeline"]["events"]
    assert [e["content"]["body"] for e in single_timeline] == ["one"]
    # 200 requests cost the database what one does (the same message sent
    # besides): a single computation per wake.
    assert shared_txns == one_sync_txns
    assert h.hs.sync.active_syncs == 0 and h.hs.sync.computations == 0


async def test_a_disconnecting_client_does_not_break_the_others(
    h: Harness, log_records: RecordingHandler
) -> None:
    alice = await make_user(h, "alice")
    bob = await make_user(h, "bob")
    room = await public_room(h, alice, bob)
    hs = h.hs
    async with unpooled(h) as get:
        polls = await long_polls(get, bob, 3)
        await until(waiting(hs, 3, 1), "three syncs waiting")
        # The first client to arrive (the one that started the computation) leaves.
        polls[0].cancel()
        await until(waiting(hs, 2, 1), "the server to notice the disconnect")
        await send_text(h, alice, room, "still there?")
        rest = [body(r) for r in await asyncio.gather(*polls[1:])]
    assert rest[0] == rest[1]
    assert [e["content"]["body"] for e in rest[0]["rooms"]["join"][room]["timeline"]["events"]] == [
        "still there?"
    ]
    assert polls[0].cancelled()
    # Each request kept its own logging context: one access line each, under
    # its own name, the one that left as 499; the shared work was no one's.
    access = [
        (r, r.args)
        for r in log_records.records
        if r.name == "hamlet.access" and isinstance(r.args, tuple) and r.args[-1] == f"{C}/sync"
    ]
    assert sorted(int(str(args[8])) for _r, args in access) == [200, 200, 200, 499]
    names = {r.request for r, _args in access}  # type: ignore[attr-defined]
    assert len(names) == 4 and all(n.startswith("GET-") for n in names)


async def test_when_every_client_leaves_the_computation_stops(h: Harness) -> None:
    bob = await make_user(h, "bob")
    hs = h.hs
    async with unpooled(h) as get:
        polls = await long_polls(get, bob, 2)
        await until(waiting(hs, 2, 1), "two syncs waiting")
        for poll in polls:
            poll.cancel()
        await until(waiting(hs, 0, 0), "the computation to be dropped")
        # Nothing is left behind to answer a later identical request wrongly.
        (later,) = await long_polls(get, bob, 1)
        await until(waiting(hs, 1, 1), "a fresh computation")
        await advance(31)
        assert body(await later)["next_batch"]


async def test_distinct_syncs_over_the_cap_get_429(h: Harness) -> None:
    bob = await make_user(h, "bob")
    hs = h.hs
    async with unpooled(h) as get:
        since = body(await get(f"{C}/sync", bob.token))["next_batch"]
        # Different timeouts: different requests, one computation each.
        polls = [
            asyncio.ensure_future(get(f"{C}/sync?since={quote(since)}&timeout={t}", bob.token))
            for t in (30000, 30001, 30002)
        ]
        await until(waiting(hs, 3, 3), "three distinct syncs")
        refused = await get(f"{C}/sync?since={quote(since)}&timeout=30003", bob.token)
        assert refused.status == 429
        assert refused.headers["Retry-After"] == "1"
        error = refused.body.decode()
        assert '"errcode":"M_LIMIT_EXCEEDED"' in error and '"retry_after_ms":' in error
        # A duplicate of a running one is not a new sync: it shares, within the cap.
        duplicate = asyncio.ensure_future(
            get(f"{C}/sync?since={quote(since)}&timeout=30000", bob.token)
        )
        await until(waiting(hs, 4, 3), "the duplicate to join")
        # Another user is not limited by bob's syncs.
        alice = await make_user(h, "alice")
        assert (await get(f"{C}/sync", alice.token)).status == 200
        await advance(31)
        answered = [body(r) for r in await asyncio.gather(*polls, duplicate)]
    assert answered[0]["next_batch"] == answered[3]["next_batch"]
    assert hs.sync.computations == 0


async def test_identical_full_syncs_of_a_large_account_encode_once_and_stream_whole(
    h: Harness, monkeypatch: pytest.MonkeyPatch
) -> None:
    from hamlet.api.client import sync as sync_api

    alice = await make_user(h, "alice")
    pad = "y" * 60_000
    for i in range(30):
        resp = await h.request(
            "PUT",
            f"{C}/user/{quote(alice.user_id)}/account_data/big.{i}",
            token=alice.token,
            json={"pad": pad},
        )
        assert resp.status == 200, resp.json
    encodes: list[int] = []
    real = sync_api.sync_response

    def counted(result: Any) -> dict[str, Any]:
        encodes.append(1)
        return real(result)

    monkeypatch.setattr(sync_api, "sync_response", counted)
    # Hold the computation until all five requests wait on it.
    release = asyncio.Event()
    compute = h.hs.sync._sync

    async def held(request: Any) -> Any:
        await release.wait()
        return await compute(request)

    monkeypatch.setattr(h.hs.sync, "_sync", held)
    async with unpooled(h) as get:
        path = f"{C}/sync?full_state=true"
        polls = [asyncio.ensure_future(get(path, alice.token)) for _ in range(5)]
        hs = h.hs
        await until(
            lambda: hs.sync.active_syncs == 5 and hs.sync.computations == 1,
            "five full syncs waiting on one computation",
        )
        release.set()
        responses = await asyncio.gather(*polls)
    # Over a megabyte each, sent in chunks, yet whole and identical.
    assert all(len(r.body) > 1_800_000 for r in responses)
    assert all(int(r.headers["Content-Length"]) == len(r.body) for r in responses)
    assert len({r.body for r in responses}) == 1
    events = body(responses[0])["account_data"]["events"]
    assert sorted(e["type"] for e in events if e["type"].startswith("big.")) == sorted(
        f"big.{i}" for i in range(30)
    )
    assert len(encodes) == 1
