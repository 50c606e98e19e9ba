"""A stranger's to-device messages are bounded: size, count, rate, queue, /sync bytes."""

from __future__ import annotations

import itertools
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import pytest

from tests.conftest import advance
from tests.support.harness import Harness, Response, start_harness
from tests.support.users import TestUser, make_user
from tests.user_streams.helpers import call

GENEROUS = {"per_second": 1000, "burst_count": 100_000}
_txn = itertools.count()


@asynccontextmanager
async def served(make_hs_config: Any, **overrides: Any) -> AsyncIterator[Harness]:
    config: dict[str, Any] = {"rc_to_device": GENEROUS, **overrides}
    h = await start_harness([make_hs_config(**config)])
    try:
        yield h
    finally:
        await h.close()


@pytest.fixture
async def limited(make_hs_config: Any) -> AsyncIterator[Harness]:
    async with served(
        make_hs_config,
        limits={
            "max_to_device_message_size": 1000,
            "max_to_device_messages_per_request": 3,
            "max_to_device_queue_per_sender": 3,
            "max_to_device_queue_per_device": 5,
            "max_to_device_sync_bytes": 2500,
        },
    ) as h:
        yield h


async def send(
    h: Harness, sender: TestUser, messages: dict[str, Any], event_type: str = "m.test"
) -> Response:
    path = f"/sendToDevice/{event_type}/t{next(_txn)}"
    return await call(h, "PUT", path, sender, {"messages": messages})


async def send_one(h: Harness, sender: TestUser, target: TestUser, content: Any) -> int:
    return (await send(h, sender, {target.user_id: {target.device_id: content}})).status


async def sync_to_device(h: Harness, user: TestUser, since: str | None) -> tuple[list[Any], str]:
    query = "timeout=0" + (f"&since={since}" if since else "")
    resp = await call(h, "GET", f"/sync?{query}", user)
    assert resp.status == 200, resp.body
    return resp.json["to_device"]["events"], resp.json["next_batch"]


async def drain(h: Harness, user: TestUser) -> list[list[Any]]:
    """Every /sync's to-device batch until one comes back empty."""
    batches: list[list[Any]] = []
    since = None
    for _ in range(20):
        events, since = await sync_to_device(h, user, since)
        if not events:
            return batches
        batches.append(events)
    raise AssertionError("to-device messages never ran out")


async def test_message_size_and_request_count(limited: Harness) -> None:
    alice = await make_user(limited, "alice")
    bob = await make_user(limited, "bob")
    resp = await send(limited, alice, {bob.user_id: {bob.device_id: {"pad": "x" * 2000}}})
    assert resp.status == 413 and resp.json["errcode"] == "M_TOO_LARGE"
    many = {bob.user_id: {f"D{i}": {"i": i} for i in range(4)}}
    resp = await send(limited, alice, many)
    assert resp.status == 413 and resp.json["errcode"] == "M_TOO_LARGE"
    assert await drain(limited, bob) == []
    resp = await send(limited, alice, {bob.user_id: {bob.device_id: {"pad": "x" * 900}}})
    assert resp.status == 200, resp.body
    assert [len(b) for b in await drain(limited, bob)] == [1]


async def test_queue_caps_per_sender_and_device(limited: Harness) -> None:
    alice = await make_user(limited, "alice")
    carol = await make_user(limited, "carol")
    bob = await make_user(limited, "bob")
    for i in range(5):
        assert await send_one(limited, alice, bob, {"a": i}) == 200
    # Alice may keep only her 3 newest; carol fills the device up to 5, then is dropped.
    for i in range(3):
        assert await send_one(limited, carol, bob, {"c": i}) == 200
    batches = await drain(limited, bob)
    got = [e["content"] for batch in batches for e in batch]
    assert got == [{"a": 2}, {"a": 3}, {"a": 4}, {"c": 0}, {"c": 1}]
    # Once delivered, there is room again.
    assert await send_one(limited, carol, bob, {"c": 9}) == 200
    batches = await drain(limited, bob)
    assert [e["content"] for batch in batches for e in batch] == [{"c": 9}]


async def test_sync_carries_a_byte_budget(limited: Harness) -> None:
    alice = await make_user(limited, "alice")
    bob = await make_user(limited, "bob")
    carol = await make_user(limited, "carol")
    for sender in (alice, carol):
        for _ in range(2):
            message = {"pad": "y" * 950}
            assert await send_one(limited, sender, bob, message) == 200
    # 2500 bytes fit two of these ~960-byte messages per /sync, and nothing is lost.
    batches = await drain(limited, bob)
    assert [len(b) for b in batches] == [2, 2]
    assert [e["sender"] for b in batches for e in b] == [alice.user_id] * 2 + [carol.user_id] * 2


async def test_sync_always_makes_progress(make_hs_config: Any) -> None:
    async with served(make_hs_config, limits={"max_to_device_sync_bytes": 100}) as h:
        alice = await make_user(h, "alice")
        bob = await make_user(h, "bob")
        for i in range(3):
            message = {"pad": "z" * 500, "i": i}
            assert await send_one(h, alice, bob, message) == 200
        batches = await drain(h, bob)
        assert [[e["content"]["i"] for e in b] for b in batches] == [[0], [1], [2]]


async def test_rc_to_device_counts_messages(make_hs_config: Any) -> None:
    async with served(make_hs_config, rc_to_device={"per_second": 0.5, "burst_count": 4}) as h:
        alice = await make_user(h, "alice")
        bob = await make_user(h, "bob")
        three = {bob.user_id: {f"D{i}": {} for i in range(3)}}
        assert (await send(h, alice, three)).status == 200
        resp = await send(h, alice, three)
        assert resp.status == 429 and resp.json["errcode"] == "M_LIMIT_EXCEEDED"
        # Bob can still message alice: the limit is the sender's.
        assert (await send(h, bob, {alice.user_id: {alice.device_id: {}}})).status == 200
        # Three more messages need six seconds at 0.5 per second.
        await advance(6)
        assert (await send(h, alice, three)).status == 200


async def test_rc_key_requests_drops_the_excess(make_hs_config: Any) -> None:
    async with served(make_hs_config, rc_key_requests={"per_second": 0.01, "burst_count": 2}) as h:
        alice = await make_user(h, "alice")
        others = [await make_user(h, name) for name in ("bob", "carol", "dan")]
        body = {"action": "request", "request_id": "r1", "requesting_device_id": "X"}
        messages = {u.user_id: {u.device_id: body} for u in others}
        resp = await send(h, alice, messages, event_type="m.room_key_request")
        assert resp.status == 200, resp.body
        delivered = [len((await sync_to_device(h, u, None))[0]) for u in others]
        assert sorted(delivered) == [0, 1, 1]
        # Other message types are not affected.
        assert (await send(h, alice, messages)).status == 200
        for user in others:
            assert (await sync_to_device(h, user, None))[0]
