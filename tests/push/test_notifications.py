"""GET /notifications: what notified a user, newest first, with only=highlight,
pagination, the read flag from receipts, and history visibility."""

from __future__ import annotations

from typing import Any

from tests.push.gateway_support import call, eventually, room_of, say
from tests.support.harness import Harness, start_harness
from tests.support.users import TestUser, make_user


async def notifications(harness: Harness, user: TestUser, query: str = "") -> Any:
    resp = await call(harness, "GET", f"/notifications{query}", user)
    assert resp.status == 200, resp.json
    return resp.json


def evaluated(harness: Harness) -> bool:
    return harness.hs.push_evaluator.idle


async def test_notifications_highlight_and_pages(harness: Harness) -> None:
    alice = await make_user(harness, "alice")
    bob = await make_user(harness, "bob")
    carol = await make_user(harness, "carol")
    room_id = await room_of(harness, alice, bob, carol)
    sent = [
        await say(harness, alice, room_id, "one"),
        await say(harness, alice, room_id, "bob: two"),
        await say(harness, alice, room_id, "three"),
    ]
    await eventually(lambda: evaluated(harness))
    everything = await notifications(harness, bob)
    got = everything["notifications"]
    assert [n["event"]["event_id"] for n in got] == sent[::-1]
    first = got[0]
    assert first["room_id"] == room_id
    assert first["read"] is False
    assert first["actions"] == ["notify"]
    assert isinstance(first["ts"], int)
    assert first["event"]["content"]["body"] == "three"
    assert "room_id" not in first["event"]
    assert got[1]["actions"] == [
        "notify",
        {"set_tweak": "sound", "value": "default"},
        {"set_tweak": "highlight"},
    ]
    assert everything["next_token"] is not None

    highlights = await notifications(harness, bob, "?only=highlight")
    assert [n["event"]["event_id"] for n in highlights["notifications"]] == [sent[1]]

    page = await notifications(harness, bob, "?limit=2")
    assert [n["event"]["event_id"] for n in page["notifications"]] == sent[:0:-1]
    rest = await notifications(harness, bob, f"?limit=2&from={page['next_token']}")
    assert [n["event"]["event_id"] for n in rest["notifications"]] == [sent[0]]
    end = await notifications(harness, bob, f"?from={rest['next_token']}")
    assert end == {"notifications": [], "next_token": None}

    # The sender is not notified of their own messages.
    assert (await notifications(harness, alice))["notifications"] == []


async def test_read_flag_follows_receipts(harness: Harness) -> None:
    alice = await make_user(harness, "alice")
    bob = await make_user(harness, "bob")
    room_id = await room_of(harness, alice, bob)
    first = await say(harness, alice, room_id, "one")
    await say(harness, alice, room_id, "two")
    await eventually(lambda: evaluated(harness))
    resp = await call(harness, "POST", f"/rooms/{room_id}/receipt/m.read/{first}", bob, {})
    assert resp.status == 200
    got = (await notifications(harness, bob))["notifications"]
    assert [n["read"] for n in got] == [False, True]


async def test_left_room_history_is_not_served(harness: Harness) -> None:
    alice = await make_user(harness, "alice")
    bob = await make_user(harness, "bob")
    room_id = await room_of(harness, alice, bob)
    resp = await call(
        harness,
        "PUT",
        f"/rooms/{room_id}/state/m.room.history_visibility",
        alice,
        {"history_visibility": "joined"},
    )
    assert resp.status == 200
    await say(harness, alice, room_id, "seen")
    await eventually(lambda: evaluated(harness))
    assert len((await notifications(harness, bob))["notifications"]) == 1
    assert (await call(harness, "POST", f"/rooms/{room_id}/leave", bob, {})).status == 200
    await say(harness, alice, room_id, "after leaving")
    await eventually(lambda: evaluated(harness))
    bodies = [
        n["event"]["content"]["body"] for n in (await notifications(harness, bob))["notifications"]
    ]
    assert bodies == ["seen"]


async def test_bad_parameters_are_400(harness: Harness) -> None:
    bob = await make_user(harness, "bob")
    for query in ("?from=abc", "?from=-1", "?limit=x", "?limit=-5", "?from=" + "9" * 30):
        resp = await call(harness, "GET", f"/notifications{query}", bob)
        assert resp.status == 400 and resp.json["errcode"] == "M_INVALID_PARAM", query
    resp = await harness.request("GET", "/_matrix/client/v3/notifications")
    assert resp.status == 401


async def test_large_room_is_evaluated_without_stalling(make_hs_config) -> None:  # type: ignore[no-untyped-def]
    """Every member's rules are evaluated in a background job that yields:
    a request made meanwhile is answered."""
    fast = {"per_second": 1000, "burst_count": 1000}
    harness = await start_harness(
        [make_hs_config(rc_joins={"local": fast}, rc_joins_per_room=fast)]
    )
    try:
        await _large_room(harness)
    finally:
        await harness.close()


async def _large_room(harness: Harness) -> None:
    alice = await make_user(harness, "alice")
    members = [await make_user(harness, f"u{i}") for i in range(120)]
    room_id = await room_of(harness, alice, *members)
    await eventually(lambda: evaluated(harness))
    await say(harness, alice, room_id, "to everyone")
    resp = await call(harness, "GET", "/account/whoami", alice)
    assert resp.status == 200
    await eventually(lambda: evaluated(harness))
    for member in (members[0], members[-1]):
        got = (await notifications(harness, member))["notifications"]
        assert got[0]["event"]["content"]["body"] == "to everyone"
