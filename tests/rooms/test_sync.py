"""GET /sync: sections, tokens, filters, long-polling and its edge cases, on both engines."""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import AsyncIterator, Callable
from typing import Any
from urllib.parse import quote

import pytest

from hamlet.config import HomeServerConfig
from hamlet.handlers.common.streams import StreamToken
from tests.conftest import advance, settle
from tests.support.harness import Harness, RecordingHandler, start_harness
from tests.support.users import TestUser, make_user

C = "/_matrix/client/v3"
FAST = {"per_second": 1000, "burst_count": 1000}


@pytest.fixture
async def h(make_hs_config: Callable[..., HomeServerConfig]) -> AsyncIterator[Harness]:
    harness = await start_harness([make_hs_config(rc_message=FAST)])
    yield harness
    await harness.close()


async def sync(h: Harness, user: TestUser, query: str = "") -> dict[str, Any]:
    resp = await h.request("GET", f"{C}/sync{query}", token=user.token)
    assert resp.status == 200, resp.json
    body: dict[str, Any] = resp.json
    return body


def f(obj: dict[str, Any]) -> str:
    return quote(json.dumps(obj))


async def create_room(h: Harness, user: TestUser, **body: Any) -> str:
    resp = await h.request("POST", f"{C}/createRoom", json=body, token=user.token)
    assert resp.status == 200, resp.json
    room_id: str = resp.json["room_id"]
    return room_id


async def send(h: Harness, user: TestUser, room_id: str, body: str, txn: str) -> str:
    resp = await h.request(
        "PUT",
        f"{C}/rooms/{room_id}/send/m.room.message/{txn}",
        json={"msgtype": "m.text", "body": body},
        token=user.token,
    )
    assert resp.status == 200, resp.json
    event_id: str = resp.json["event_id"]
    return event_id


async def test_bad_tokens_are_400(h: Harness) -> None:
    alice = await make_user(h, "alice")
    first = await sync(h, alice)
    token = StreamToken.parse(first["next_batch"])
    future = token.copy_and_replace("events", token.events + 1000).to_string()
    for since in (future, "garbage", "s1_", "s-1_0_0_0_0_0_0"):
        resp = await h.request("GET", f"{C}/sync?since={quote(since)}", token=alice.token)
        assert (resp.status, resp.json["errcode"]) == (400, "M_INVALID_PARAM"), since
    for query in ("?timeout=-5", "?timeout=abc", "?set_presence=busy", "?full_state=maybe"):
        resp = await h.request("GET", f"{C}/sync{query}", token=alice.token)
        assert resp.status == 400, query
    resp = await h.request("GET", f"{C}/sync?filter=%7Bnope", token=alice.token)
    assert (resp.status, resp.json["errcode"]) == (400, "M_NOT_JSON")
    resp = await h.request("GET", f"{C}/sync?filter=12345", token=alice.token)
    assert resp.status == 404
    resp = await h.request("GET", f"{C}/sync")
    assert resp.status == 401


async def test_initial_sync_sections(h: Harness) -> None:
    alice = await make_user(h, "alice")
    bob = await make_user(h, "bob")
    carol = await make_user(h, "carol")
    room = await create_room(h, alice, name="Chat", invite=[bob.user_id, carol.user_id])
    await h.request("POST", f"{C}/join/{room}", token=bob.token)
    await send(h, alice, room, "hi", "t1")
    await h.request(
        "PUT", f"{C}/user/{alice.user_id}/account_data/m.direct", json={"x": 1}, token=alice.token
    )
    body = await sync(h, alice)
    assert set(body) >= {"next_batch", "rooms", "account_data", "presence", "to_device"}
    assert body["device_lists"] == {"changed": [], "left": []}
    joined = body["rooms"]["join"][room]
    types = [e["type"] for e in joined["timeline"]["events"]]
    assert types[-1] == "m.room.message"
    assert joined["timeline"]["events"][-1]["unsigned"]["transaction_id"] == "t1"
    # State plus timeline together describe the whole room.
    state_types = {e["type"] for e in joined["state"]["events"]}
    assert "m.room.create" in state_types | set(types)
    assert joined["summary"]["m.joined_member_count"] == 2
    assert joined["summary"]["m.invited_member_count"] == 1
    assert set(joined["summary"]["m.heroes"]) == {bob.user_id, carol.user_id}
    assert {"type": "m.direct", "content": {"x": 1}} in body["account_data"]["events"]

    invited = (await sync(h, carol))["rooms"]["invite"][room]["invite_state"]["events"]
    kinds = {(e["type"], e["state_key"]) for e in invited}
    assert ("m.room.name", "") in kinds and ("m.room.member", carol.user_id) in kinds
    assert all(set(e) == {"type", "state_key", "content", "sender"} for e in invited)

    # Bob's message counts as unread for alice until she reads it.
    await send(h, bob, room, "are you there?", "b1")
    joined = (await sync(h, alice))["rooms"]["join"][room]
    assert joined["unread_notifications"]["notification_count"] >= 1


async def test_timeline_limit_prev_batch_and_messages_agree(h: Harness) -> None:
    alice = await make_user(h, "alice")
    room = await create_room(h, alice)
    sent = [await send(h, alice, room, f"m{i}", f"t{i}") for i in range(15)]
    body = await sync(h, alice, "?filter=" + f({"room": {"timeline": {"limit": 5}}}))
    timeline = body["rooms"]["join"][room]["timeline"]
    assert timeline["limited"] is True
    assert [e["event_id"] for e in timeline["events"]] == sent[-5:]
    resp = await h.request(
        "GET",
        f"{C}/rooms/{room}/messages?dir=b&limit=10&from={timeline['prev_batch']}",
        token=alice.token,
    )
    assert resp.status == 200, resp.json
    earlier = [e["event_id"] for e in resp.json["chunk"]]
    assert earlier == list(reversed(sent[:10]))


async def test_incremental_sync_and_filters(h: Harness) -> None:
    alice = await make_user(h, "alice")
    bob = await make_user(h, "bob")
    room = await create_room(h, alice, preset="public_chat")
    other = await create_room(h, alice, preset="public_chat")
    await h.request("POST", f"{C}/join/{room}", token=bob.token)
    since = (await sync(h, alice))["next_batch"]
    await send(h, bob, room, "from bob", "b1")
    await send(h, alice, room, "from alice", "a1")
    await h.request(
        "PUT", f"{C}/rooms/{room}/state/m.room.topic", json={"topic": "t"}, token=alice.token
    )
    body = await sync(h, alice, f"?since={since}")
    assert set(body["rooms"]["join"]) == {room}, "a room where nothing happened is left out"
    timeline = body["rooms"]["join"][room]["timeline"]
    assert [e["type"] for e in timeline["events"]] == [
        "m.room.message",
        "m.room.message",
        "m.room.topic",
    ]
    assert timeline["limited"] is False

    filtered = await sync(
        h,
        alice,
        f"?since={since}&filter="
        + f({"room": {"timeline": {"types": ["m.room.message"], "senders": [bob.user_id]}}}),
    )
    events = filtered["rooms"]["join"][room]["timeline"]["events"]
    assert [e["content"]["body"] for e in events] == ["from bob"]
    not_types = await sync(
        h,
        alice,
        f"?since={since}&filter=" + f({"room": {"timeline": {"not_types": ["m.room.message"]}}}),
    )
    assert [e["type"] for e in not_types["rooms"]["join"][room]["timeline"]["events"]] == [
        "m.room.topic"
    ]
    only_other = await sync(h, alice, "?filter=" + f({"room": {"rooms": [other]}}))
    assert set(only_other["rooms"]["join"]) == {other}
    # A stored filter by id works like an inline one.
    resp = await h.request(
        "POST",
        f"{C}/user/{alice.user_id}/filter",
        json={"room": {"rooms": [other]}},
        token=alice.token,
    )
    by_id = await sync(h, alice, f"?filter={resp.json['filter_id']}")
    assert set(by_id["rooms"]["join"]) == {other}


async def test_lazy_loading_members(h: Harness) -> None:
    alice = await make_user(h, "alice")
    users = [await make_user(h, f"u{i}") for i in range(4)]
    room = await create_room(h, alice, preset="public_chat")
    for user in users:
        await h.request("POST", f"{C}/join/{room}", token=user.token)
    for i in range(12):
        await send(h, alice, room, f"m{i}", f"t{i}")
    lazy = {"room": {"state": {"lazy_load_members": True}, "timeline": {"limit": 5}}}
    body = await sync(h, users[0], "?filter=" + f(lazy))
    members = {
        e["state_key"]
        for e in body["rooms"]["join"][room]["state"]["events"]
        if e["type"] == "m.room.member"
    }
    assert members <= {alice.user_id, users[0].user_id}
    full = await sync(h, users[0], "?filter=" + f({"room": {"timeline": {"limit": 5}}}))
    all_members = {
        e["state_key"]
        for e in full["rooms"]["join"][room]["state"]["events"]
        if e["type"] == "m.room.member"
    }
    assert {u.user_id for u in users} <= all_members


async def test_leave_and_full_state(h: Harness) -> None:
    alice = await make_user(h, "alice")
    bob = await make_user(h, "bob")
    room = await create_room(h, alice, preset="public_chat")
    await h.request("POST", f"{C}/join/{room}", token=bob.token)
    since = (await sync(h, bob))["next_batch"]
    await send(h, alice, room, "before you go", "a1")
    await h.request(
        "POST", f"{C}/rooms/{room}/kick", json={"user_id": bob.user_id}, token=alice.token
    )
    await send(h, alice, room, "after", "a2")
    body = await sync(h, bob, f"?since={since}")
    assert room not in body["rooms"]["join"]
    left = body["rooms"]["leave"][room]["timeline"]["events"]
    bodies = [e["content"].get("body") for e in left]
    assert "before you go" in bodies and "after" not in bodies
    assert left[-1]["type"] == "m.room.member" and left[-1]["content"]["membership"] == "leave"
    # Initial syncs show left rooms only when asked.
    assert room not in (await sync(h, bob))["rooms"]["leave"]
    with_leave = await sync(h, bob, "?filter=" + f({"room": {"include_leave": True}}))
    assert room in with_leave["rooms"]["leave"]

    full = await sync(h, alice, f"?since={since}&full_state=true")
    state_types = {e["type"] for e in full["rooms"]["join"][room]["state"]["events"]}
    assert {"m.room.create", "m.room.power_levels", "m.room.join_rules"} <= state_types


async def test_long_poll_wakes_on_events_and_times_out_cleanly(
    h: Harness, log_records: RecordingHandler
) -> None:
    alice = await make_user(h, "alice")
    bob = await make_user(h, "bob")
    room = await create_room(h, alice, preset="public_chat")
    await h.request("POST", f"{C}/join/{room}", token=bob.token)
    since = (await sync(h, bob))["next_batch"]

    # Nothing relevant happens: the long poll returns empty at its timeout.
    other = await create_room(h, alice)
    await send(h, alice, other, "not for bob", "x")
    poll = asyncio.ensure_future(sync(h, bob, f"?since={since}&timeout=30000"))
    await settle()
    assert h.hs.notifier.waiter_count == 1, "bob's sync is not waiting"
    assert not poll.done(), "an unrelated room woke bob's sync"
    await advance(31)
    body = await poll
    assert body["rooms"]["join"] == {}
    assert body["rooms"]["invite"] == {} and body["rooms"]["leave"] == {}

    # The request's context survived the timeout: its access line names it.
    lines = [
        r
        for r in log_records.records
        if r.name == "hamlet.access" and "/sync" in r.getMessage() and "timeout" not in r.args[-1]  # type: ignore[index, operator]
    ]
    assert lines and all(
        r.server_name == "test.local" and r.request.startswith("GET-")  # type: ignore[attr-defined]
        for r in lines
    )

    # Something relevant: the long poll returns at once with it.
    since = body["next_batch"]
    poll = asyncio.ensure_future(sync(h, bob, f"?since={since}&timeout=30000"))
    await settle()
    assert h.hs.notifier.waiter_count == 1, "bob's sync is not waiting"
    await send(h, alice, room, "wake up", "w")
    await settle()
    assert poll.done(), "the event did not wake bob's sync"
    body = await poll
    events = body["rooms"]["join"][room]["timeline"]["events"]
    assert [e["content"]["body"] for e in events] == ["wake up"]

    # An invite wakes the invitee, who is in no room of the inviter yet.
    carol = await make_user(h, "carol")
    since = (await sync(h, carol))["next_batch"]
    poll = asyncio.ensure_future(sync(h, carol, f"?since={since}&timeout=30000"))
    await settle()
    assert h.hs.notifier.waiter_count == 1, "carol's sync is not waiting"
    await h.request(
        "POST", f"{C}/rooms/{room}/invite", json={"user_id": carol.user_id}, token=alice.token
    )
    await settle()
    assert poll.done(), "the invite did not wake carol's sync"
    body = await poll
    assert room in body["rooms"]["invite"]


async def test_to_device_and_presence_in_sync(h: Harness) -> None:
    alice = await make_user(h, "alice")
    bob = await make_user(h, "bob")
    room = await create_room(h, alice, preset="public_chat")
    await h.request("POST", f"{C}/join/{room}", token=bob.token)
    since = (await sync(h, bob))["next_batch"]
    resp = await h.request(
        "PUT",
        f"{C}/sendToDevice/m.test/txn1",
        json={"messages": {bob.user_id: {bob.device_id: {"hello": "bob"}}}},
        token=alice.token,
    )
    assert resp.status == 200
    await h.request(
        "PUT",
        f"{C}/presence/{alice.user_id}/status",
        json={"presence": "online"},
        token=alice.token,
    )
    body = await sync(h, bob, f"?since={since}")
    assert body["to_device"]["events"] == [
        {"sender": alice.user_id, "type": "m.test", "content": {"hello": "bob"}}
    ]
    presence = [e for e in body["presence"]["events"] if e["sender"] == alice.user_id]
    assert presence and presence[-1]["content"]["presence"] == "online"
    # Delivered messages are gone once the client syncs past them.
    again = await sync(h, bob, f"?since={body['next_batch']}")
    assert again["to_device"]["events"] == []


async def test_tokens_survive_a_restart(h: Harness) -> None:
    alice = await make_user(h, "alice")
    room = await create_room(h, alice)
    await send(h, alice, room, "before", "t1")
    since = (await sync(h, alice))["next_batch"]
    await h.restart()
    await send(h, alice, room, "after", "t2")
    body = await sync(h, alice, f"?since={since}")
    events = body["rooms"]["join"][room]["timeline"]["events"]
    assert [e["content"]["body"] for e in events] == ["after"]


async def test_sync_logs_under_its_request(h: Harness, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO)
    alice = await make_user(h, "alice")
    await sync(h, alice)
    access = [r for r in caplog.records if r.name == "hamlet.access" and "/sync" in r.getMessage()]
    assert access and access[0].server_name == "test.local"  # type: ignore[attr-defined]
