"""`GET /_matrix/client/v1/rooms/{roomId}/timestamp_to_event` (jump to date)."""

from __future__ import annotations

import asyncio
from typing import Any
from urllib.parse import urlencode

import pytest

from tests.rooms.helpers import (
    assert_error,
    create_room,
    get_event,
    join,
    membership_action,
    put_state,
    q,
    send_ok,
)
from tests.rooms.reading_support import unlimited_harness
from tests.support.harness import Harness, Response
from tests.support.users import TestUser, make_user

V1 = "/_matrix/client/v1"


@pytest.fixture
async def harness(make_hs_config):  # type: ignore[no-untyped-def]
    async for h in unlimited_harness(make_hs_config):
        yield h


async def advance(seconds: float) -> None:
    await asyncio.get_running_loop().advance(seconds)  # type: ignore[attr-defined]


async def lookup(harness: Harness, user: TestUser, room_id: str, **params: Any) -> Response:
    url = f"{V1}/rooms/{q(room_id)}/timestamp_to_event?" + urlencode(
        {k: str(v) for k, v in params.items()}
    )
    return await harness.request("GET", url, token=user.token)


async def ts_of(harness: Harness, user: TestUser, room_id: str, event_id: str) -> int:
    resp = await get_event(harness, user, room_id, event_id)
    assert resp.status == 200, resp.json
    ts: int = resp.json["origin_server_ts"]
    return ts


async def test_closest_event_in_each_direction(harness: Harness) -> None:
    alice = await make_user(harness, "alice")
    room_id = await create_room(harness, alice)
    await advance(60)
    first = await send_ok(harness, alice, room_id, "first")
    await advance(60)
    second = await send_ok(harness, alice, room_id, "second")
    await advance(60)
    t1 = await ts_of(harness, alice, room_id, first)
    t2 = await ts_of(harness, alice, room_id, second)
    assert t2 - t1 >= 59_000

    mid = t1 + 30_000
    resp = await lookup(harness, alice, room_id, ts=mid, dir="f")
    assert resp.status == 200, resp.json
    assert resp.json == {"event_id": second, "origin_server_ts": t2}
    resp = await lookup(harness, alice, room_id, ts=mid, dir="b")
    assert resp.json == {"event_id": first, "origin_server_ts": t1}
    # An exact hit is found in both directions.
    for direction in ("f", "b"):
        resp = await lookup(harness, alice, room_id, ts=t1, dir=direction)
        assert resp.json["event_id"] == first
    # dir defaults to forwards (as Synapse).
    assert (await lookup(harness, alice, room_id, ts=mid)).json["event_id"] == second

    assert_error(await lookup(harness, alice, room_id, ts=t2 + 1, dir="f"), 404, "M_NOT_FOUND")
    resp = await lookup(harness, alice, room_id, ts=0, dir="b")
    assert_error(resp, 404, "M_NOT_FOUND")
    # The room's first event is the oldest one can jump to.
    resp = await lookup(harness, alice, room_id, ts=0, dir="f")
    assert resp.status == 200
    create = resp.json["event_id"]
    assert (await get_event(harness, alice, room_id, create)).json["type"] == "m.room.create"


async def test_bad_params(harness: Harness) -> None:
    alice = await make_user(harness, "alice")
    room_id = await create_room(harness, alice)
    assert_error(await lookup(harness, alice, room_id, dir="f"), 400, "M_MISSING_PARAM")
    assert_error(await lookup(harness, alice, room_id, ts="soon", dir="f"), 400, "M_INVALID_PARAM")
    assert_error(await lookup(harness, alice, room_id, ts=1, dir="x"), 400, "M_INVALID_PARAM")
    resp = await harness.request("GET", f"{V1}/rooms/{q(room_id)}/timestamp_to_event?ts=1&dir=f")
    assert_error(resp, 401, "M_MISSING_TOKEN")


async def test_out_of_range_integers(harness: Harness) -> None:
    """Integers past what a column holds, and digits that are not ASCII, are
    400 M_INVALID_PARAM on every integer query parameter, not 500s."""
    alice = await make_user(harness, "alice")
    room_id = await create_room(harness, alice)
    for bad in (10**23, -(10**23), 2**53, "\u0661\u0662", "1_000", " 5", "+5", "0x10"):
        resp = await lookup(harness, alice, room_id, ts=bad, dir="f")
        assert_error(resp, 400, "M_INVALID_PARAM")
    big = 10**30
    for path in (
        f"/_matrix/client/v3/rooms/{q(room_id)}/messages?dir=b&limit={big}",
        f"/_matrix/client/v3/sync?timeout={big}",
        f"/_matrix/client/v1/rooms/{q(room_id)}/threads?limit={big}",
        f"/_matrix/client/v1/rooms/{q(room_id)}/hierarchy?max_depth={big}",
        f"/_matrix/client/v3/rooms/{q(room_id)}/messages?dir=b&from=t{big}",
    ):
        resp = await harness.request("GET", path, token=alice.token)
        assert_error(resp, 400, "M_INVALID_PARAM")
    # The largest exact integer is fine.
    resp = await lookup(harness, alice, room_id, ts=2**53 - 1, dir="b")
    assert resp.status == 200, resp.json


async def test_visibility_enforced(harness: Harness) -> None:
    alice = await make_user(harness, "alice")
    bob = await make_user(harness, "bob")
    eve = await make_user(harness, "eve")
    room_id = await create_room(harness, alice, preset="public_chat")
    resp = await put_state(
        harness, alice, room_id, "m.room.history_visibility", {"history_visibility": "joined"}
    )
    assert resp.status == 200
    await advance(60)
    hidden = await send_ok(harness, alice, room_id, "before bob")
    t_hidden = await ts_of(harness, alice, room_id, hidden)
    await advance(60)
    assert (await join(harness, bob, room_id)).status == 200
    await advance(60)
    seen = await send_ok(harness, alice, room_id, "with bob")
    await advance(60)

    # Alice finds the early message; bob skips past it to the first he may see.
    resp = await lookup(harness, alice, room_id, ts=t_hidden, dir="f")
    assert resp.json["event_id"] == hidden
    resp = await lookup(harness, bob, room_id, ts=t_hidden, dir="f")
    assert resp.status == 200
    found = resp.json["event_id"]
    assert found != hidden
    assert (await get_event(harness, bob, room_id, found)).status == 200
    # Backwards from just after the hidden message, bob sees nothing but
    # (at most) his own membership, never the hidden message.
    resp = await lookup(harness, bob, room_id, ts=t_hidden + 1, dir="b")
    assert resp.status == 404 or resp.json["event_id"] != hidden

    assert_error(await lookup(harness, eve, room_id, ts=t_hidden, dir="f"), 403, "M_FORBIDDEN")

    # After leaving, bob cannot reach what came later.
    assert (await membership_action(harness, bob, room_id, "leave")).status == 200
    await advance(60)
    later = await send_ok(harness, alice, room_id, "after bob")
    t_later = await ts_of(harness, alice, room_id, later)
    assert (await lookup(harness, alice, room_id, ts=t_later, dir="f")).json["event_id"] == later
    assert_error(await lookup(harness, bob, room_id, ts=t_later, dir="f"), 404, "M_NOT_FOUND")
    resp = await lookup(harness, bob, room_id, ts=t_later, dir="b")
    assert resp.status == 200
    assert resp.json["event_id"] != later
    t_seen = await ts_of(harness, alice, room_id, seen)
    assert resp.json["origin_server_ts"] >= t_seen
