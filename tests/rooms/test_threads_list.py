"""`GET /_matrix/client/v1/rooms/{roomId}/threads`: the thread roots of a room."""

from __future__ import annotations

from typing import Any
from urllib.parse import urlencode

import pytest

from tests.rooms.helpers import (
    V3,
    assert_error,
    create_room,
    join,
    membership_action,
    put_state,
    q,
    send_ok,
)
from tests.rooms.reading_support import unlimited_harness
from tests.rooms.test_relations import redact, send_rel
from tests.support.harness import Harness, Response
from tests.support.users import TestUser, make_user

V1 = "/_matrix/client/v1"


@pytest.fixture
async def harness(make_hs_config):  # type: ignore[no-untyped-def]
    async for h in unlimited_harness(make_hs_config):
        yield h


async def threads(harness: Harness, user: TestUser, room_id: str, **params: Any) -> Response:
    url = f"{V1}/rooms/{q(room_id)}/threads"
    if params:
        url += "?" + urlencode({k: str(v) for k, v in params.items()})
    return await harness.request("GET", url, token=user.token)


async def all_roots(harness: Harness, user: TestUser, room_id: str, **params: Any) -> list[str]:
    seen: list[str] = []
    token = None
    while True:
        if token:
            params["from"] = token
        resp = await threads(harness, user, room_id, **params)
        assert resp.status == 200, resp.json
        seen += [e["event_id"] for e in resp.json["chunk"]]
        token = resp.json.get("next_batch")
        if token is None:
            return seen


async def test_threads_ordered_by_latest_activity_with_aggregations(harness: Harness) -> None:
    alice = await make_user(harness, "alice")
    bob = await make_user(harness, "bob")
    room_id = await create_room(harness, alice, preset="public_chat")
    assert (await join(harness, bob, room_id)).status == 200
    roots = [await send_ok(harness, alice, room_id, f"root {i}") for i in range(4)]
    await send_ok(harness, alice, room_id, "not a thread")
    await send_rel(harness, bob, room_id, roots[0], "m.thread", "a")
    await send_rel(harness, alice, room_id, roots[2], "m.thread", "b")
    await send_rel(harness, bob, room_id, roots[1], "m.thread", "c")
    latest = await send_rel(harness, bob, room_id, roots[0], "m.thread", "d")
    # Other relations do not make threads.
    await send_rel(harness, bob, room_id, roots[3], "m.reference", "ref")

    resp = await threads(harness, alice, room_id)
    assert resp.status == 200, resp.json
    chunk = resp.json["chunk"]
    assert [e["event_id"] for e in chunk] == [roots[0], roots[1], roots[2]]
    assert "next_batch" not in resp.json
    first = chunk[0]
    assert first["room_id"] == room_id and first["content"]["body"] == "root 0"
    summary = first["unsigned"]["m.relations"]["m.thread"]
    assert summary["count"] == 2
    assert summary["latest_event"]["event_id"] == latest
    assert summary["current_user_participated"] is True  # alice sent the root

    # Pagination, one at a time, sees every thread once, in the same order.
    assert await all_roots(harness, alice, room_id, limit=1) == [roots[0], roots[1], roots[2]]
    assert await all_roots(harness, alice, room_id, limit=2) == [roots[0], roots[1], roots[2]]

    # New activity moves a thread to the front.
    await send_rel(harness, alice, room_id, roots[2], "m.thread", "e")
    assert await all_roots(harness, alice, room_id) == [roots[2], roots[0], roots[1]]


async def test_threads_participated(harness: Harness) -> None:
    alice = await make_user(harness, "alice")
    bob = await make_user(harness, "bob")
    room_id = await create_room(harness, alice, preset="public_chat")
    assert (await join(harness, bob, room_id)).status == 200
    by_alice = await send_ok(harness, alice, room_id, "alice's root")
    by_bob = await send_ok(harness, bob, room_id, "bob's root")
    other = await send_ok(harness, alice, room_id, "another")
    await send_rel(harness, alice, room_id, by_alice, "m.thread")
    await send_rel(harness, bob, room_id, by_bob, "m.thread")
    await send_rel(harness, alice, room_id, other, "m.thread")
    await send_rel(harness, alice, room_id, by_bob, "m.thread")
    # Bob replied to alice's thread earlier; bob started his own.
    await send_rel(harness, bob, room_id, by_alice, "m.thread")

    assert await all_roots(harness, bob, room_id, include="participated") == [by_alice, by_bob]
    assert await all_roots(harness, bob, room_id, include="participated", limit=1) == [
        by_alice,
        by_bob,
    ]
    assert await all_roots(harness, bob, room_id, include="all") == [by_alice, by_bob, other]
    assert_error(await threads(harness, bob, room_id, include="mine"), 400, "M_INVALID_PARAM")


async def test_threads_redacted_replies_and_invalid_roots(harness: Harness) -> None:
    alice = await make_user(harness, "alice")
    room_id = await create_room(harness, alice)
    root = await send_ok(harness, alice, room_id, "root")
    only_reply = await send_rel(harness, alice, room_id, root, "m.thread")
    other = await send_ok(harness, alice, room_id, "other root")
    await send_rel(harness, alice, room_id, other, "m.thread")
    assert await all_roots(harness, alice, room_id) == [other, root]
    # A thread whose every reply is redacted is no thread.
    await redact(harness, alice, room_id, only_reply)
    assert await all_roots(harness, alice, room_id) == [other]


async def test_threads_visibility(harness: Harness) -> None:
    alice = await make_user(harness, "alice")
    bob = await make_user(harness, "bob")
    eve = await make_user(harness, "eve")
    room_id = await create_room(harness, alice, preset="public_chat")
    resp = await put_state(
        harness, alice, room_id, "m.room.history_visibility", {"history_visibility": "joined"}
    )
    assert resp.status == 200
    early = await send_ok(harness, alice, room_id, "before bob")
    await send_rel(harness, alice, room_id, early, "m.thread")
    assert (await join(harness, bob, room_id)).status == 200
    late = await send_ok(harness, alice, room_id, "after bob")
    await send_rel(harness, alice, room_id, late, "m.thread")

    assert await all_roots(harness, alice, room_id) == [late, early]
    # Bob joined after the first root: it is not visible to him.
    assert await all_roots(harness, bob, room_id) == [late]
    assert await all_roots(harness, bob, room_id, limit=1) == [late]

    # Non-members may not look.
    assert_error(await threads(harness, eve, room_id), 403, "M_FORBIDDEN")
    assert_error(await threads(harness, eve, "!unknown:test.local"), 403, "M_FORBIDDEN")

    # A departed member keeps what they saw, not what came after.
    resp = await membership_action(harness, bob, room_id, "leave")
    assert resp.status == 200
    after_leave = await send_ok(harness, alice, room_id, "after bob left")
    await send_rel(harness, alice, room_id, after_leave, "m.thread")
    assert await all_roots(harness, bob, room_id) == [late]

    # Bad tokens and limits.
    assert_error(await threads(harness, alice, room_id, **{"from": "x"}), 400, "M_INVALID_PARAM")
    assert_error(await threads(harness, alice, room_id, limit=-1), 400, "M_INVALID_PARAM")
    resp = await harness.request("GET", f"{V3}/rooms/{q(room_id)}/threads", token=alice.token)
    assert_error(resp, 404, "M_UNRECOGNIZED")
