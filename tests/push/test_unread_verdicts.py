"""Unread counts keep each event's verdict between syncs, but only while the
rules and the room context it was judged by stay the same."""

from __future__ import annotations

from urllib.parse import quote

from tests.support.harness import Harness
from tests.support.users import TestUser, make_user
from tests.user_streams.helpers import call, public_room, send_text


async def counts(harness: Harness, user: TestUser, room_id: str) -> tuple[int, int]:
    resp = await call(harness, "GET", "/sync", user)
    assert resp.status == 200, resp.json
    unread = resp.json["rooms"]["join"][room_id]["unread_notifications"]
    return unread["notification_count"], unread["highlight_count"]


async def test_new_power_levels_change_what_highlights(harness: Harness) -> None:
    alice = await make_user(harness, "alice")
    bob = await make_user(harness, "bob")
    carol = await make_user(harness, "carol")
    room = await public_room(harness, alice, bob, carol)
    resp = await call(
        harness,
        "PUT",
        f"/rooms/{room}/send/m.room.message/t1",
        carol,
        {"msgtype": "m.text", "body": "@room news"},
    )
    assert resp.status == 200, resp.json
    # Carol may not notify the whole room: a plain message.
    assert await counts(harness, bob, room) == (1, 0)
    # Judged again from the cache: the same answer.
    assert await counts(harness, bob, room) == (1, 0)
    path = f"/rooms/{room}/state/m.room.power_levels/"
    resp = await call(harness, "GET", path, alice)
    assert resp.status == 200, resp.json
    levels = resp.json
    levels["users"][carol.user_id] = 50
    resp = await call(harness, "PUT", path, alice, levels)
    assert resp.status == 200, resp.json
    # Now she may: the same unread message is judged again and highlights.
    assert await counts(harness, bob, room) == (1, 1)


async def test_changed_rules_judge_unread_events_again(harness: Harness) -> None:
    alice = await make_user(harness, "alice")
    bob = await make_user(harness, "bob")
    room = await public_room(harness, alice, bob)
    await send_text(harness, alice, room, "plain-news")
    assert await counts(harness, bob, room) == (1, 0)
    path = f"/pushrules/global/sender/{quote(alice.user_id)}"
    resp = await call(harness, "PUT", path, bob, {"actions": []})
    assert resp.status == 200, resp.json
    assert await counts(harness, bob, room) == (0, 0)
    resp = await call(harness, "DELETE", path, bob)
    assert resp.status == 200, resp.json
    assert await counts(harness, bob, room) == (1, 0)
