"""Simplified sliding sync (MSC4186) over HTTP: lists, pos, long-poll, bad input."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

import pytest

from hamlet.config import HomeServerConfig
from hamlet.handlers.sliding_sync import connections
from tests.conftest import advance, settle
from tests.sliding_sync.helpers import ALL, slide
from tests.support.harness import Harness
from tests.support.users import make_user
from tests.sync.helpers import body, fast_harness
from tests.user_streams.helpers import call, public_room, send_text


async def test_versions_advertises_it(h: Harness) -> None:
    resp = await h.request("GET", "/_matrix/client/versions")
    assert resp.json["unstable_features"]["org.matrix.simplified_msc3575"] is True


async def test_initial_list_orders_rooms_by_recency(h: Harness) -> None:
    alice = await make_user(h, "alice")
    older = await public_room(h, alice)
    newer = await public_room(h, alice)
    await send_text(h, alice, older, "bump")
    got = body(await slide(h, alice, {"lists": {"all": ALL}}))
    assert got["lists"] == {"all": {"count": 2}}
    rooms = got["rooms"]
    assert set(rooms) == {older, newer}
    assert rooms[older]["bump_stamp"] > rooms[newer]["bump_stamp"]
    room = rooms[older]
    assert room["initial"] is True
    assert room["membership"] == "join"
    assert room["timeline"][-1]["content"]["body"] == "bump"
    assert room["joined_count"] == 1 and room["invited_count"] == 0
    assert [e["type"] for e in room["required_state"]] == ["m.room.create"]
    assert "prev_batch" in room and room["num_live"] == 0
    # Only the first room of the ordering in a one-room range.
    one = {"ranges": [[0, 0]], "timeline_limit": 1}
    got = body(await slide(h, alice, {"lists": {"top": one}}))
    assert list(got["rooms"]) == [older]
    assert got["lists"] == {"top": {"count": 2}}


async def test_incremental_sends_only_the_room_with_news(h: Harness) -> None:
    alice = await make_user(h, "alice")
    quiet = await public_room(h, alice)
    busy = await public_room(h, alice)
    first = body(await slide(h, alice, {"lists": {"all": ALL}}))
    assert set(first["rooms"]) == {quiet, busy}
    event_id = await send_text(h, alice, busy, "news")
    second = body(await slide(h, alice, {"lists": {"all": ALL}}, pos=first["pos"]))
    assert list(second["rooms"]) == [busy]
    room = second["rooms"][busy]
    assert "initial" not in room
    assert [e["event_id"] for e in room["timeline"]] == [event_id]
    assert room["num_live"] == 1
    # Nothing new: nothing sent; the newest pos still works and so does a retry of it.
    third = body(await slide(h, alice, {"lists": {"all": ALL}}, pos=second["pos"]))
    assert third["rooms"] == {}
    retry = body(await slide(h, alice, {"lists": {"all": ALL}}, pos=second["pos"]))
    assert retry["rooms"] == {}


async def test_long_poll_is_woken_by_a_message(h: Harness) -> None:
    alice = await make_user(h, "alice")
    bob = await make_user(h, "bob")
    room = await public_room(h, alice, bob)
    first = body(await slide(h, alice, {"lists": {"all": ALL}}))
    poll = asyncio.ensure_future(
        slide(h, alice, {"lists": {"all": ALL}}, pos=first["pos"], wait_ms=30000)
    )
    await settle()
    assert not poll.done()
    assert h.hs.sliding_sync.active_syncs == 1
    event_id = await send_text(h, bob, room, "wake")
    got = body(await poll)
    assert [e["event_id"] for e in got["rooms"][room]["timeline"]] == [event_id]


async def test_long_poll_times_out_empty(h: Harness) -> None:
    alice = await make_user(h, "alice")
    await public_room(h, alice)
    first = body(await slide(h, alice, {"lists": {"all": ALL}}))
    poll = asyncio.ensure_future(
        slide(h, alice, {"lists": {"all": ALL}}, pos=first["pos"], wait_ms=10000)
    )
    await settle()
    assert not poll.done()
    await advance(11)
    got = body(await poll)
    assert got["rooms"] == {}
    assert got["pos"] != first["pos"]


async def test_unknown_and_malformed_pos(h: Harness) -> None:
    alice = await make_user(h, "alice")
    bob = await make_user(h, "bob")
    resp = await slide(h, alice, {}, pos="deadbeef_12345")
    assert (resp.status, resp.json["errcode"]) == (400, "M_UNKNOWN_POS")
    resp = await slide(h, alice, {}, pos="not a pos")
    assert (resp.status, resp.json["errcode"]) == (400, "M_INVALID_PARAM")
    # Another user's (or connection's) pos is unknown to this one.
    mine = body(await slide(h, alice, {"lists": {"all": ALL}}))["pos"]
    resp = await slide(h, bob, {}, pos=mine)
    assert (resp.status, resp.json["errcode"]) == (400, "M_UNKNOWN_POS")
    resp = await slide(h, alice, {"conn_id": "other"}, pos=mine)
    assert resp.json["errcode"] == "M_UNKNOWN_POS"


@pytest.mark.parametrize(
    "req",
    [
        [],
        {"lists": []},
        {"lists": {"a": {"ranges": [[5, 1]]}}},
        {"lists": {"a": {"ranges": [[-1, 3]]}}},
        {"lists": {"a": {"ranges": [[0, 10**12]]}}},
        {"lists": {"a": {"ranges": [[0, "9"]]}}},
        {"lists": {"a": {"ranges": [[0]]}}},
        {"lists": {"a": {"ranges": [[0, 1]] * 11}}},
        {"lists": {"a": {"timeline_limit": -1}}},
        {"lists": {"a": {"timeline_limit": True}}},
        {"lists": {"a": {"required_state": [["m.room.name"]]}}},
        {"lists": {"a": {"required_state": "all"}}},
        {"lists": {str(i): {"ranges": [[0, 1]]} for i in range(101)}},
        {"room_subscriptions": {"!r:x": 3}},
        {"extensions": {"to_device": {"enabled": "yes"}}},
        {"conn_id": 7},
    ],
)
async def test_bad_input_is_a_400(h: Harness, req: Any) -> None:
    alice = await make_user(h, "alice")
    resp = await slide(h, alice, req)
    assert resp.status == 400, resp.body
    assert resp.json["errcode"] in ("M_BAD_JSON", "M_INVALID_PARAM", "M_NOT_JSON")
    resp = await slide(h, alice, {}, wait_ms=-5)
    assert resp.status == 400


async def test_required_state_wildcards_and_me(h: Harness) -> None:
    alice = await make_user(h, "alice")
    bob = await make_user(h, "bob")
    room = await public_room(h, alice, bob)
    await send_text(h, alice, room, "hi")

    async def state_of(required: list[list[str]]) -> set[tuple[str, str]]:
        spec = {"ranges": [[0, 0]], "timeline_limit": 0, "required_state": required}
        got = body(await slide(h, alice, {"lists": {"l": spec}}))
        return {(e["type"], e["state_key"]) for e in got["rooms"][room]["required_state"]}

    members = {("m.room.member", alice.user_id), ("m.room.member", bob.user_id)}
    assert await state_of([["m.room.member", "*"]]) == members
    assert await state_of([["m.room.member", "$ME"]]) == {("m.room.member", alice.user_id)}
    everything = await state_of([["*", "*"]])
    assert members | {("m.room.create", ""), ("m.room.power_levels", "")} <= everything
    assert await state_of([]) == set()


async def test_invite_shows_invite_state(h: Harness) -> None:
    alice = await make_user(h, "alice")
    bob = await make_user(h, "bob")
    resp = await call(h, "POST", "/createRoom", alice, {"name": "Secret"})
    room = resp.json["room_id"]
    resp = await call(h, "POST", f"/rooms/{room}/invite", alice, {"user_id": bob.user_id})
    assert resp.status == 200, resp.json
    got = body(await slide(h, bob, {"lists": {"all": ALL}}))
    invite = got["rooms"][room]
    assert invite["membership"] == "invite"
    assert invite["name"] == "Secret"
    types = {e["type"] for e in invite["invite_state"]}
    assert {"m.room.create", "m.room.name", "m.room.member"} <= types
    assert "timeline" not in invite


async def test_room_subscription_and_extensions(h: Harness) -> None:
    alice = await make_user(h, "alice")
    listed = await public_room(h, alice)
    subscribed = await public_room(h, alice)
    await send_text(h, alice, listed, "newest")
    req = {
        "lists": {"top": {"ranges": [[0, 0]], "timeline_limit": 1}},
        "room_subscriptions": {
            subscribed: {"timeline_limit": 2, "required_state": [["m.room.create", ""]]},
            "!unknown:test.local": {"timeline_limit": 1},
        },
        "extensions": {
            "to_device": {"enabled": True},
            "e2ee": {"enabled": True},
            "account_data": {"enabled": True},
        },
    }
    got = body(await slide(h, alice, req))
    assert set(got["rooms"]) == {listed, subscribed}
    assert len(got["rooms"][subscribed]["timeline"]) == 2
    ext = got["extensions"]
    assert ext["to_device"]["events"] == [] and ext["to_device"]["next_batch"]
    assert "device_one_time_keys_count" in ext["e2ee"]
    assert any(e["type"] == "m.push_rules" for e in ext["account_data"]["global"])


async def test_to_device_extension_delivers_and_confirms(h: Harness) -> None:
    alice = await make_user(h, "alice")
    bob = await make_user(h, "bob")
    req = {"extensions": {"to_device": {"enabled": True}}}
    first = body(await slide(h, alice, req))
    messages = {alice.user_id: {alice.device_id: {"hello": "there"}}}
    resp = await call(h, "PUT", "/sendToDevice/m.test/t1", bob, {"messages": messages})
    assert resp.status == 200, resp.json
    got = body(await slide(h, alice, req, pos=first["pos"], wait_ms=30000))
    ext = got["extensions"]["to_device"]
    assert [(e["sender"], e["content"]) for e in ext["events"]] == [
        (bob.user_id, {"hello": "there"})
    ]
    # Confirmed with its `since`, the message is not sent again.
    req["extensions"]["to_device"]["since"] = ext["next_batch"]
    again = body(await slide(h, alice, req, pos=got["pos"]))
    assert again["extensions"]["to_device"]["events"] == []
    bad = {"extensions": {"to_device": {"enabled": True, "since": "x1"}}}
    resp = await slide(h, alice, bad, pos=again["pos"])
    assert resp.json["errcode"] == "M_INVALID_PARAM"


async def test_room_back_in_range_gets_what_it_missed(h: Harness) -> None:
    alice = await make_user(h, "alice")
    other = await public_room(h, alice)
    room = await public_room(h, alice)
    top = {"lists": {"top": {"ranges": [[0, 0]], "timeline_limit": 10}}}
    got = body(await slide(h, alice, top))
    assert list(got["rooms"]) == [room]
    await send_text(h, alice, other, "other moves up")
    got = body(await slide(h, alice, top, pos=got["pos"]))
    assert list(got["rooms"]) == [other]
    # Out of range, the room gets a topic (no bump), then a message (back on top):
    # the connection gets both, not only what came after its last response.
    resp = await call(h, "PUT", f"/rooms/{room}/state/m.room.topic", alice, {"topic": "t"})
    assert resp.status == 200, resp.json
    topic = resp.json["event_id"]
    message = await send_text(h, alice, room, "back")
    got = body(await slide(h, alice, top, pos=got["pos"]))
    assert list(got["rooms"]) == [room]
    assert "initial" not in got["rooms"][room]
    assert [e["event_id"] for e in got["rooms"][room]["timeline"]] == [topic, message]


async def test_leaving_a_room_is_sent_once(h: Harness) -> None:
    alice = await make_user(h, "alice")
    bob = await make_user(h, "bob")
    room = await public_room(h, alice, bob)
    first = body(await slide(h, bob, {"lists": {"all": ALL}}))
    assert room in first["rooms"]
    resp = await call(h, "POST", f"/rooms/{room}/leave", bob, {})
    assert resp.status == 200, resp.json
    got = body(await slide(h, bob, {"lists": {"all": ALL}}, pos=first["pos"]))
    left = got["rooms"][room]
    assert left["membership"] == "leave"
    assert left["timeline"][-1]["content"]["membership"] == "leave"
    assert got["lists"] == {"all": {"count": 0}}
    again = body(await slide(h, bob, {"lists": {"all": ALL}}, pos=got["pos"]))
    assert again["rooms"] == {}


async def test_pos_survives_a_restart(h: Harness) -> None:
    alice = await make_user(h, "alice")
    quiet = await public_room(h, alice)
    busy = await public_room(h, alice)
    req = {"lists": {"all": ALL}, "conn_id": "main"}
    first = body(await slide(h, alice, req))
    assert set(first["rooms"]) == {quiet, busy}
    second = body(await slide(h, alice, req, pos=first["pos"]))
    event_id = await send_text(h, alice, busy, "while down")
    await h.restart()
    # A new process over the same database: only what changed, not everything afresh.
    got = body(await slide(h, alice, req, pos=second["pos"]))
    assert list(got["rooms"]) == [busy]
    assert "initial" not in got["rooms"][busy]
    assert [e["event_id"] for e in got["rooms"][busy]["timeline"]] == [event_id]
    # The state reached before the restart is still retryable, the one after is newest.
    retry = body(await slide(h, alice, req, pos=second["pos"]))
    assert list(retry["rooms"]) == [busy]
    assert body(await slide(h, alice, req, pos=retry["pos"]))["rooms"] == {}
    # A retry superseded the response the client never got; the first pos is gone.
    for stale in (got["pos"], first["pos"]):
        resp = await slide(h, alice, req, pos=stale)
        assert (resp.status, resp.json["errcode"]) == (400, "M_UNKNOWN_POS")
    # Another connection or user cannot use it.
    resp = await slide(h, alice, {"conn_id": "other"}, pos=retry["pos"])
    assert resp.json["errcode"] == "M_UNKNOWN_POS"


async def test_stored_rows_stay_about_one_per_room(h: Harness) -> None:
    alice = await make_user(h, "alice")
    rooms = [await public_room(h, alice) for _ in range(3)]
    req = {"lists": {"all": ALL}}
    pos = body(await slide(h, alice, req))["pos"]
    for i in range(10):
        await send_text(h, alice, rooms[i % 3], f"m{i}")
        pos = body(await slide(h, alice, req, pos=pos))["pos"]
    # Rows of the last response plus, per room, the one it shadows until next time.
    assert await h.hs.sliding_sync.connections.count_rows(pos) <= 4
    await send_text(h, alice, rooms[0], "last")
    got = body(await slide(h, alice, req, pos=pos))
    assert list(got["rooms"]) == [rooms[0]]


async def test_lazy_members_are_the_timeline_senders(h: Harness) -> None:
    alice = await make_user(h, "alice")
    bob = await make_user(h, "bob")
    carol = await make_user(h, "carol")
    room = await public_room(h, alice, bob, carol)
    await send_text(h, bob, room, "from bob")
    spec = {"ranges": [[0, 0]], "timeline_limit": 1, "required_state": [["m.room.member", "$LAZY"]]}
    got = body(await slide(h, alice, {"lists": {"l": spec}}))
    members = {e["state_key"] for e in got["rooms"][room]["required_state"]}
    assert members == {bob.user_id, alice.user_id}


async def test_an_invite_wakes_a_long_poll(h: Harness) -> None:
    alice = await make_user(h, "alice")
    bob = await make_user(h, "bob")
    first = body(await slide(h, bob, {"lists": {"all": ALL}}))
    assert first["rooms"] == {}
    poll = asyncio.ensure_future(
        slide(h, bob, {"lists": {"all": ALL}}, pos=first["pos"], wait_ms=30000)
    )
    await settle()
    assert not poll.done()
    room = await public_room(h, alice)
    resp = await call(h, "POST", f"/rooms/{room}/invite", alice, {"user_id": bob.user_id})
    assert resp.status == 200, resp.json
    got = body(await poll)
    assert got["rooms"][room]["membership"] == "invite"
    assert got["lists"] == {"all": {"count": 1}}


async def test_connections_per_user_are_capped(h: Harness) -> None:
    alice = await make_user(h, "alice")
    first = body(await slide(h, alice, {"conn_id": "c0"}))["pos"]
    kept = body(await slide(h, alice, {"conn_id": "c1"}))["pos"]
    for i in range(2, 11):
        body(await slide(h, alice, {"conn_id": f"c{i}"}))
    await h.restart()
    # The least recently used of 11 was dropped, in the database too.
    resp = await slide(h, alice, {"conn_id": "c0"}, pos=first)
    assert resp.json["errcode"] == "M_UNKNOWN_POS"
    assert body(await slide(h, alice, {"conn_id": "c1"}, pos=kept))["pos"]


async def test_concurrent_requests_per_user_are_capped(
    make_hs_config: Callable[..., HomeServerConfig],
) -> None:
    async with fast_harness(make_hs_config, limits={"max_concurrent_syncs_per_user": 2}) as h:
        alice = await make_user(h, "alice")
        await public_room(h, alice)
        pos = body(await slide(h, alice, {"lists": {"all": ALL}}))["pos"]
        # Two distinct computations (the timeouts differ) fill the cap.
        polls = [
            asyncio.ensure_future(slide(h, alice, {"lists": {"all": ALL}}, pos=pos, wait_ms=wait))
            for wait in (30000, 30001)
        ]
        await settle()
        assert h.hs.sliding_sync.computations == 2
        resp = await slide(h, alice, {"lists": {"all": ALL}}, pos=pos, wait_ms=30002)
        assert (resp.status, resp.json["errcode"]) == (429, "M_LIMIT_EXCEEDED")
        # A duplicate of a running one still joins it.
        dup = asyncio.ensure_future(
            slide(h, alice, {"lists": {"all": ALL}}, pos=pos, wait_ms=30000)
        )
        await settle()
        assert (h.hs.sliding_sync.active_syncs, h.hs.sliding_sync.computations) == (3, 2)
        await advance(31)
        for poll in [*polls, dup]:
            assert body(await poll)["rooms"] == {}


async def test_identical_requests_share_one_computation(h: Harness) -> None:
    alice = await make_user(h, "alice")
    bob = await make_user(h, "bob")
    room = await public_room(h, alice, bob)
    req = {"lists": {"all": ALL}, "extensions": {"typing": {"enabled": True}}}
    pos = body(await slide(h, alice, req))["pos"]
    # The same body with its keys in another order is the same request.
    reordered = {"extensions": {"typing": {"enabled": True}}, "lists": {"all": ALL}}
    polls = [
        asyncio.ensure_future(slide(h, alice, reordered if i % 2 else req, pos=pos, wait_ms=30000))
        for i in range(20)
    ]
    await settle()
    assert (h.hs.sliding_sync.active_syncs, h.hs.sliding_sync.computations) == (20, 1)
    # One client giving up does not cancel it for the others.
    polls[0].cancel()
    await settle()
    assert h.hs.sliding_sync.computations == 1
    event_id = await send_text(h, bob, room, "for all")
    answers = [body(await poll) for poll in polls[1:]]
    assert len({a["pos"] for a in answers}) == 1
    for got in answers:
        assert [e["event_id"] for e in got["rooms"][room]["timeline"]] == [event_id]
    assert h.hs.sliding_sync.computations == 0
    # The shared pos works for all of them; other bodies are other computations.
    again = body(await slide(h, alice, req, pos=answers[0]["pos"]))
    assert again["rooms"] == {}


async def test_rooms_per_connection_are_capped(h: Harness, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(connections, "MAX_ROOMS_PER_CONNECTION", 2)
    alice = await make_user(h, "alice")
    rooms = [await public_room(h, alice) for _ in range(3)]
    top = {"lists": {"top": {"ranges": [[0, 0]], "timeline_limit": 1}}}
    pos = body(await slide(h, alice, top))["pos"]
    for room in rooms:
        await send_text(h, alice, room, "up")
        got = body(await slide(h, alice, top, pos=pos))
        assert list(got["rooms"]) == [room]
        pos = got["pos"]
    # The room sent longest ago was forgotten: it comes back afresh.
    await send_text(h, alice, rooms[0], "again")
    got = body(await slide(h, alice, top, pos=pos))
    assert got["rooms"][rooms[0]]["initial"] is True
    # Kept rooms and drop markers of the last two responses, no more.
    assert await h.hs.sliding_sync.connections.count_rows(got["pos"]) <= 2 * 2 + 2


async def test_a_connection_started_again_meanwhile_leaves_nothing_behind(h: Harness) -> None:
    alice = await make_user(h, "alice")
    await public_room(h, alice)
    req = {"conn_id": "main", "lists": {"all": ALL}}
    first = body(await slide(h, alice, req))["pos"]
    poll = asyncio.ensure_future(slide(h, alice, req, pos=first, wait_ms=10000))
    await settle()
    # The client starts the connection again while its long-poll waits.
    again = body(await slide(h, alice, req))["pos"]
    await advance(11)
    stale = body(await poll)["pos"]
    assert await h.hs.sliding_sync.connections.count_rows(stale) == 0
    for pos in (first, stale):
        resp = await slide(h, alice, req, pos=pos)
        assert (resp.status, resp.json["errcode"]) == (400, "M_UNKNOWN_POS")
    assert body(await slide(h, alice, req, pos=again))["rooms"] == {}
