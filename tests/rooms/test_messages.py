"""GET /rooms/{roomId}/messages and /context/{eventId}: pagination, filters, visibility."""

from __future__ import annotations

from typing import Any
from urllib.parse import urlencode

import orjson
import pytest

from hamlet.handlers.common.streams import StreamToken
from hamlet.handlers.history.pagination import make_pagination_token, parse_pagination_token
from tests.rooms.helpers import (
    V3,
    assert_error,
    create_room,
    join,
    membership_action,
    put_state,
    q,
    send,
    send_ok,
)
from tests.rooms.reading_support import unlimited_harness
from tests.support.harness import Harness, Response
from tests.support.users import TestUser, make_user


@pytest.fixture
async def harness(make_hs_config):  # type: ignore[no-untyped-def]
    async for h in unlimited_harness(make_hs_config):
        yield h


async def messages(harness: Harness, user: TestUser, room_id: str, **params: Any) -> Response:
    query = {k: (orjson.dumps(v).decode() if k == "filter" else str(v)) for k, v in params.items()}
    return await harness.request(
        "GET", f"{V3}/rooms/{q(room_id)}/messages?{urlencode(query)}", token=user.token
    )


async def page_all(
    harness: Harness, user: TestUser, room_id: str, direction: str, limit: int, **params: Any
) -> tuple[list[dict[str, Any]], int]:
    """Follow `end` until it disappears; returns every event and the number of pages."""
    out: list[dict[str, Any]] = []
    token: str | None = None
    pages = 0
    while True:
        extra = dict(params)
        if token is not None:
            extra["from"] = token
        resp = await messages(harness, user, room_id, dir=direction, limit=limit, **extra)
        assert resp.status == 200, resp.json
        pages += 1
        out.extend(resp.json["chunk"])
        if token is not None:
            assert resp.json["start"] == token
        token = resp.json.get("end")
        if token is None:
            return out, pages
        assert pages < 100


def bodies(events: list[dict[str, Any]]) -> list[str]:
    return [e["content"]["body"] for e in events if e["type"] == "m.room.message"]


async def test_token_format() -> None:
    assert make_pagination_token(42) == "t42"
    assert parse_pagination_token("t42") == 42
    assert parse_pagination_token(StreamToken(events=7, typing=3).to_string()) == 7


async def test_backwards_and_forwards_pagination_every_event_once(harness: Harness) -> None:
    alice = await make_user(harness, "alice")
    room_id = await create_room(harness, alice)
    sent = [f"m{i}" for i in range(23)]
    for body in sent:
        await send_ok(harness, alice, room_id, body)

    backwards, pages = await page_all(harness, alice, room_id, "b", 5)
    assert bodies(backwards) == list(reversed(sent))
    ids = [e["event_id"] for e in backwards]
    assert len(ids) == len(set(ids))
    assert backwards[-1]["type"] == "m.room.create"
    assert pages > 5

    forwards, _ = await page_all(harness, alice, room_id, "f", 4)
    assert [e["event_id"] for e in forwards] == list(reversed(ids))
    # Every event the room has, exactly once.
    total = await harness.hs.db.fetchval(
        "t", "SELECT COUNT(*) FROM events WHERE room_id = ?", room_id
    )
    assert len(forwards) == int(total)


async def test_default_limit_and_shape(harness: Harness) -> None:
    alice = await make_user(harness, "alice")
    room_id = await create_room(harness, alice)
    for i in range(15):
        await send_ok(harness, alice, room_id, f"x{i}")
    resp = await messages(harness, alice, room_id)
    assert resp.status == 200, resp.json
    assert len(resp.json["chunk"]) == 10
    assert bodies(resp.json["chunk"])[:2] == ["x14", "x13"]
    assert "start" in resp.json and "end" in resp.json
    assert "state" not in resp.json
    event = resp.json["chunk"][0]
    assert event["room_id"] == room_id and "age" in event["unsigned"]
    assert "transaction_id" in event["unsigned"]  # own event, same device


async def test_to_token_and_from_sync_token(harness: Harness) -> None:
    alice = await make_user(harness, "alice")
    room_id = await create_room(harness, alice)
    await send_ok(harness, alice, room_id, "before")
    middle = harness.hs.event_creator.current_stream
    for body in ("a", "b", "c"):
        await send_ok(harness, alice, room_id, body)
    # Backwards from now down to the middle point: only the later events.
    resp = await messages(harness, alice, room_id, dir="b", to=make_pagination_token(middle))
    assert bodies(resp.json["chunk"]) == ["c", "b", "a"]
    assert "end" not in resp.json
    # A /sync token works as `from`.
    sync_token = StreamToken(events=middle).to_string()
    resp = await messages(harness, alice, room_id, dir="f", **{"from": sync_token})
    assert bodies(resp.json["chunk"]) == ["a", "b", "c"]
    resp = await messages(harness, alice, room_id, dir="b", limit=3, **{"from": sync_token})
    assert bodies(resp.json["chunk"])[0] == "before"


async def test_bad_parameters(harness: Harness) -> None:
    alice = await make_user(harness, "alice")
    room_id = await create_room(harness, alice)
    for params in (
        {"from": "garbage"},
        {"from": "t12x"},
        {"to": "s1_x"},
        {"dir": "sideways"},
        {"limit": "ten"},
        {"limit": "-1"},
    ):
        resp = await harness.request(
            "GET", f"{V3}/rooms/{q(room_id)}/messages?{urlencode(params)}", token=alice.token
        )
        assert_error(resp, 400, "M_INVALID_PARAM")
    resp = await harness.request(
        "GET", f"{V3}/rooms/{q(room_id)}/messages?filter=%7Bnot-json", token=alice.token
    )
    assert_error(resp, 400, "M_INVALID_PARAM")
    resp = await messages(harness, alice, room_id, filter={"types": "m.room.message"})
    assert_error(resp, 400, "M_INVALID_PARAM")
    resp = await harness.request("GET", f"{V3}/rooms/{q(room_id)}/messages")
    assert_error(resp, 401, "M_MISSING_TOKEN")


async def test_limit_capped(harness: Harness) -> None:
    alice = await make_user(harness, "alice")
    room_id = await create_room(harness, alice)
    resp = await messages(harness, alice, room_id, limit=100000)
    assert resp.status == 200
    assert resp.json["chunk"][-1]["type"] == "m.room.create"
    assert "end" not in resp.json


async def test_filters(harness: Harness) -> None:
    alice = await make_user(harness, "alice")
    bob = await make_user(harness, "bob")
    room_id = await create_room(harness, alice, preset="public_chat")
    assert (await join(harness, bob, room_id)).status == 200
    await send_ok(harness, alice, room_id, "a1")
    await send_ok(harness, bob, room_id, "b1")
    await send(harness, alice, room_id, {"msgtype": "m.image", "body": "pic", "url": "mxc://x/y"})
    await send(harness, bob, room_id, {"k": 1}, event_type="org.example.custom")
    await send_ok(harness, alice, room_id, "a2")

    resp = await messages(harness, alice, room_id, filter={"senders": [bob.user_id]})
    assert {e["sender"] for e in resp.json["chunk"]} == {bob.user_id}
    resp = await messages(
        harness, alice, room_id, filter={"types": ["m.room.message"], "not_senders": [bob.user_id]}
    )
    assert bodies(resp.json["chunk"]) == ["a2", "pic", "a1"]
    resp = await messages(harness, alice, room_id, filter={"types": ["org.example.*"]})
    assert [e["type"] for e in resp.json["chunk"]] == ["org.example.custom"]
    resp = await messages(harness, alice, room_id, filter={"not_types": ["m.room.*"]})
    assert [e["type"] for e in resp.json["chunk"]] == ["org.example.custom"]
    resp = await messages(harness, alice, room_id, filter={"contains_url": True})
    assert bodies(resp.json["chunk"]) == ["pic"]
    resp = await messages(
        harness, alice, room_id, filter={"contains_url": False, "types": ["m.room.message"]}
    )
    assert bodies(resp.json["chunk"]) == ["a2", "b1", "a1"]

    # A filtered walk still pages through every matching event exactly once.
    events, _ = await page_all(
        harness, alice, room_id, "b", 1, filter={"types": ["m.room.message"]}
    )
    assert bodies(events) == ["a2", "pic", "b1", "a1"]


async def test_lazy_load_members(harness: Harness) -> None:
    alice = await make_user(harness, "alice")
    bob = await make_user(harness, "bob")
    carol = await make_user(harness, "carol")
    room_id = await create_room(harness, alice, preset="public_chat")
    for user in (bob, carol):
        assert (await join(harness, user, room_id)).status == 200
    await send_ok(harness, carol, room_id, "c")
    await send_ok(harness, bob, room_id, "b")
    resp = await messages(
        harness,
        alice,
        room_id,
        limit=1,
        filter={"lazy_load_members": True, "types": ["m.room.message"]},
    )
    assert bodies(resp.json["chunk"]) == ["b"]
    state = resp.json["state"]
    assert [(e["type"], e["state_key"]) for e in state] == [("m.room.member", bob.user_id)]


async def test_visibility_non_member_and_world_readable(harness: Harness) -> None:
    alice = await make_user(harness, "alice")
    eve = await make_user(harness, "eve")
    room_id = await create_room(harness, alice, preset="public_chat")
    await send_ok(harness, alice, room_id, "secret")
    resp = await messages(harness, eve, room_id)
    assert_error(resp, 403, "M_FORBIDDEN")
    resp = await messages(harness, eve, "!nonexistent:test.local")
    assert_error(resp, 403, "M_FORBIDDEN")

    resp = await put_state(
        harness,
        alice,
        room_id,
        "m.room.history_visibility",
        {"history_visibility": "world_readable"},
    )
    assert resp.status == 200
    await send_ok(harness, alice, room_id, "public")
    resp = await messages(harness, eve, room_id)
    assert resp.status == 200, resp.json
    # Visibility is judged at each event: "secret" was sent while history was shared.
    assert bodies(resp.json["chunk"]) == ["public"]
    assert resp.json["chunk"][-1]["type"] == "m.room.history_visibility"
    assert "end" not in resp.json


async def test_visibility_joined_shared_invited(harness: Harness) -> None:
    alice = await make_user(harness, "alice")
    bob = await make_user(harness, "bob")
    room_id = await create_room(harness, alice)
    await send_ok(harness, alice, room_id, "shared-before-invite")
    await put_state(
        harness, alice, room_id, "m.room.history_visibility", {"history_visibility": "joined"}
    )
    await send_ok(harness, alice, room_id, "joined-before-invite")
    await put_state(
        harness, alice, room_id, "m.room.history_visibility", {"history_visibility": "invited"}
    )
    await send_ok(harness, alice, room_id, "invited-before-invite")
    resp = await membership_action(harness, alice, room_id, "invite", {"user_id": bob.user_id})
    assert resp.status == 200
    await send_ok(harness, alice, room_id, "after-invite")

    # Invited: sees from the invite onwards (history_visibility invited).
    resp = await messages(harness, bob, room_id, limit=50)
    assert resp.status == 200, resp.json
    assert bodies(resp.json["chunk"]) == ["after-invite"]

    assert (await join(harness, bob, room_id)).status == 200
    await send_ok(harness, alice, room_id, "after-join")
    resp = await messages(harness, bob, room_id, limit=50)
    # Joined now: "shared" history is visible again, "joined"/"invited" periods are not.
    assert bodies(resp.json["chunk"]) == ["after-join", "after-invite", "shared-before-invite"]


async def test_user_who_left_sees_history_until_leave(harness: Harness) -> None:
    alice = await make_user(harness, "alice")
    bob = await make_user(harness, "bob")
    room_id = await create_room(harness, alice, preset="public_chat")
    assert (await join(harness, bob, room_id)).status == 200
    await send_ok(harness, alice, room_id, "while-joined")
    assert (await membership_action(harness, bob, room_id, "leave")).status == 200
    await send_ok(harness, alice, room_id, "after-leave-1")
    await send_ok(harness, alice, room_id, "after-leave-2")

    resp = await messages(harness, bob, room_id, limit=50)
    assert resp.status == 200, resp.json
    chunk = resp.json["chunk"]
    assert bodies(chunk) == ["while-joined"]
    assert chunk[0]["type"] == "m.room.member" and chunk[0]["state_key"] == bob.user_id
    assert chunk[0]["content"]["membership"] == "leave"
    # Forwards, too, stops at the leave.
    events, _ = await page_all(harness, bob, room_id, "f", 3)
    assert bodies(events) == ["while-joined"]
    assert events[-1]["content"].get("membership") == "leave"


async def test_context(harness: Harness) -> None:
    alice = await make_user(harness, "alice")
    room_id = await create_room(harness, alice)
    ids = [await send_ok(harness, alice, room_id, f"c{i}") for i in range(9)]
    target = ids[4]
    resp = await harness.request(
        "GET", f"{V3}/rooms/{q(room_id)}/context/{q(target)}?limit=4", token=alice.token
    )
    assert resp.status == 200, resp.json
    body = resp.json
    assert body["event"]["event_id"] == target
    assert [e["event_id"] for e in body["events_before"]] == [ids[3], ids[2]]
    assert [e["event_id"] for e in body["events_after"]] == [ids[5], ids[6]]
    state_types = {e["type"] for e in body["state"]}
    assert {"m.room.create", "m.room.member", "m.room.power_levels"} <= state_types

    # `start` continues backwards from events_before, `end` forwards from events_after.
    resp = await messages(harness, alice, room_id, dir="b", limit=2, **{"from": body["start"]})
    assert [e["event_id"] for e in resp.json["chunk"]] == [ids[1], ids[0]]
    resp = await messages(harness, alice, room_id, dir="f", limit=5, **{"from": body["end"]})
    assert [e["event_id"] for e in resp.json["chunk"]] == [ids[7], ids[8]]

    resp = await harness.request(
        "GET",
        f"{V3}/rooms/{q(room_id)}/context/{q(target)}?"
        + urlencode({"limit": 10, "filter": orjson.dumps({"lazy_load_members": True}).decode()}),
        token=alice.token,
    )
    assert resp.status == 200
    members = [e["state_key"] for e in resp.json["state"] if e["type"] == "m.room.member"]
    assert members == [alice.user_id]


async def test_context_refusals(harness: Harness) -> None:
    alice = await make_user(harness, "alice")
    eve = await make_user(harness, "eve")
    room_id = await create_room(harness, alice)
    other_room = await create_room(harness, alice)
    event_id = await send_ok(harness, alice, room_id)
    resp = await harness.request(
        "GET", f"{V3}/rooms/{q(room_id)}/context/{q(event_id)}", token=eve.token
    )
    assert_error(resp, 403, "M_FORBIDDEN")
    resp = await harness.request(
        "GET", f"{V3}/rooms/{q(other_room)}/context/{q(event_id)}", token=alice.token
    )
    assert_error(resp, 404, "M_NOT_FOUND")
    resp = await harness.request(
        "GET", f"{V3}/rooms/{q(room_id)}/context/{q('$nope')}", token=alice.token
    )
    assert_error(resp, 404, "M_NOT_FOUND")
    resp = await harness.request(
        "GET", f"{V3}/rooms/{q(room_id)}/context/{q(event_id)}?limit=x", token=alice.token
    )
    assert_error(resp, 400, "M_INVALID_PARAM")


async def test_context_hidden_event_after_leave(harness: Harness) -> None:
    alice = await make_user(harness, "alice")
    bob = await make_user(harness, "bob")
    room_id = await create_room(harness, alice, preset="public_chat")
    assert (await join(harness, bob, room_id)).status == 200
    seen = await send_ok(harness, alice, room_id, "seen")
    assert (await membership_action(harness, bob, room_id, "leave")).status == 200
    unseen = await send_ok(harness, alice, room_id, "unseen")
    resp = await harness.request(
        "GET", f"{V3}/rooms/{q(room_id)}/context/{q(unseen)}", token=bob.token
    )
    assert_error(resp, 404, "M_NOT_FOUND")
    resp = await harness.request(
        "GET", f"{V3}/rooms/{q(room_id)}/context/{q(seen)}", token=bob.token
    )
    assert resp.status == 200
    after = resp.json["events_after"]
    assert [e["type"] for e in after] == ["m.room.member"]
