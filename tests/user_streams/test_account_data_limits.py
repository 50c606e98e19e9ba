"""A user's account data is bounded in total, and /sync (v3 and sliding) carries
it in pages within a byte budget, the rest in the next sync, nothing lost."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest

from tests.sliding_sync.helpers import slide
from tests.support.harness import Harness, Response, start_harness
from tests.support.users import TestUser, make_user
from tests.user_streams.helpers import call

LIMITS = {
    "max_account_data_size": 1000,
    "max_account_data_total_size": 2500,
    "max_account_data_sync_bytes": 1200,
}
ROOM = "!r:test.local"


@pytest.fixture
async def h(make_hs_config: Any) -> AsyncIterator[Harness]:
    harness = await start_harness([make_hs_config(limits=LIMITS)])
    yield harness
    await harness.close()


async def put(h: Harness, user: TestUser, path: str, content: Any) -> Response:
    return await call(h, "PUT", f"/user/{user.user_id}{path}", user, content)


def padded(n: int, i: int) -> dict[str, Any]:
    """Content of about `n` characters of JSON."""
    return {"i": i, "pad": "p" * (n - 20)}


async def test_total_size_is_capped(h: Harness) -> None:
    alice = await make_user(h, "alice")
    for i in range(2):
        assert (await put(h, alice, f"/account_data/a.{i}", padded(900, i))).status == 200
    resp = await put(h, alice, "/account_data/a.2", padded(900, 2))
    assert resp.status == 403 and resp.json["errcode"] == "M_LIMIT_EXCEEDED", resp.body
    resp = await put(h, alice, f"/rooms/{ROOM}/account_data/a.2", padded(900, 2))
    assert resp.status == 403 and resp.json["errcode"] == "M_LIMIT_EXCEEDED", resp.body
    resp = await put(h, alice, f"/rooms/{ROOM}/tags/u.t", {"pad": "t" * 800})
    assert resp.status == 403 and resp.json["errcode"] == "M_LIMIT_EXCEEDED", resp.body
    # Nothing refused was stored; what was stored is intact.
    got = await call(h, "GET", f"/user/{alice.user_id}/account_data/a.2", alice)
    assert got.status == 404
    got = await call(h, "GET", f"/user/{alice.user_id}/account_data/a.1", alice)
    assert got.json == padded(900, 1)
    # Replacing an entry counts its new size, not both; a smaller one frees room.
    assert (await put(h, alice, "/account_data/a.1", padded(950, 1))).status == 200
    assert (await put(h, alice, "/account_data/a.1", {"small": True})).status == 200
    assert (await put(h, alice, "/account_data/a.2", padded(900, 2))).status == 200
    # Another user has a cap of their own; push rules are not counted against it.
    bob = await make_user(h, "bob")
    assert (await put(h, bob, "/account_data/b.0", padded(900, 0))).status == 200
    rule = {"actions": ["notify"], "pattern": "x" * 900}
    resp = await call(h, "PUT", "/pushrules/global/content/big", alice, rule)
    assert resp.status == 200, resp.body


async def sync_once(h: Harness, user: TestUser, query: str) -> tuple[list[int], str]:
    """The `i` of the global and room account data one /sync brings, and its next_batch."""
    resp = await call(h, "GET", f"/sync?{query}", user)
    assert resp.status == 200, resp.body
    got = resp.json
    events = got.get("account_data", {}).get("events", [])
    for room in got.get("rooms", {}).get("join", {}).values():
        events += room.get("account_data", {}).get("events", [])
    return sorted(e["content"]["i"] for e in events if "i" in e["content"]), got["next_batch"]


async def sync_pages(h: Harness, user: TestUser, n: int) -> list[list[int]]:
    """`n` syncs' account data, then checks that nothing is left. The syncs
    after the first long-poll: one with a page left behind must answer at once."""
    pages = []
    page, since = await sync_once(h, user, "timeout=0")
    pages.append(page)
    for _ in range(n - 1):
        page, since = await sync_once(h, user, f"timeout=10000&since={since}")
        pages.append(page)
    assert (await sync_once(h, user, f"timeout=0&since={since}"))[0] == []
    return pages


async def test_sync_pages_account_data(h: Harness) -> None:
    alice = await make_user(h, "alice")
    resp = await call(h, "POST", "/createRoom", alice, {})
    room = resp.json["room_id"]
    for i in range(3):
        path = f"/rooms/{room}/account_data/r.{i}" if i == 1 else f"/account_data/g.{i}"
        assert (await put(h, alice, path, padded(700, i))).status == 200
    # 1200 bytes per sync: one ~700-byte entry each, in the order written,
    # global and room account data alike.
    assert await sync_pages(h, alice, 3) == [[0], [1], [2]]


async def test_sync_always_makes_progress(make_hs_config: Any) -> None:
    harness = await start_harness(
        [make_hs_config(limits={**LIMITS, "max_account_data_sync_bytes": 100})]
    )
    try:
        alice = await make_user(harness, "alice")
        for i in range(2):
            assert (await put(harness, alice, f"/account_data/g.{i}", padded(500, i))).status == 200
        assert await sync_pages(harness, alice, 2) == [[0], [1]]
    finally:
        await harness.close()


async def test_sliding_sync_pages_account_data(h: Harness) -> None:
    alice = await make_user(h, "alice")
    for i in range(3):
        assert (await put(h, alice, f"/account_data/g.{i}", padded(700, i))).status == 200
    req = {"extensions": {"account_data": {"enabled": True}}}

    async def page(pos: str | None, wait_ms: int | None) -> tuple[list[int], str]:
        resp = await slide(h, alice, req, pos, wait_ms)
        assert resp.status == 200, resp.body
        events = resp.json["extensions"]["account_data"].get("global", [])
        return sorted(e["content"]["i"] for e in events if "i" in e["content"]), resp.json["pos"]

    seen, pos = await page(None, None)
    pages = [seen]
    for _ in range(2):
        seen, pos = await page(pos, 10000)
        pages.append(seen)
    assert pages == [[0], [1], [2]]
    assert (await page(pos, 0))[0] == []
