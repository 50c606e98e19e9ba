"""Sliding sync: a retried request is answered again, a superseded pos is
unknown, list and subscription configs combine, and unread counts follow
push rules."""

from __future__ import annotations

from tests.sliding_sync.helpers import ALL, slide
from tests.support.harness import Harness
from tests.support.users import make_user
from tests.sync.helpers import body
from tests.user_streams.helpers import public_room, send_text


async def test_a_retry_is_answered_again_and_a_superseded_pos_is_unknown(h: Harness) -> None:
    alice = await make_user(h, "alice")
    room = await public_room(h, alice)
    first = body(await slide(h, alice, {"lists": {"all": ALL}}))
    event_id = await send_text(h, alice, room, "news")
    second = body(await slide(h, alice, {"lists": {"all": ALL}}, pos=first["pos"]))
    # The client lost that answer and asks again with the same pos: same news.
    again = body(await slide(h, alice, {"lists": {"all": ALL}}, pos=first["pos"]))
    for answer in (second, again):
        assert [e["event_id"] for e in answer["rooms"][room]["timeline"]] == [event_id]
    # Once the client moves on from the retry's pos, the older one is gone.
    body(await slide(h, alice, {"lists": {"all": ALL}}, pos=again["pos"]))
    resp = await slide(h, alice, {"lists": {"all": ALL}}, pos=first["pos"])
    assert (resp.status, resp.json["errcode"]) == (400, "M_UNKNOWN_POS")


async def test_list_and_subscription_configs_combine(h: Harness) -> None:
    alice = await make_user(h, "alice")
    room = await public_room(h, alice)
    for i in range(6):
        await send_text(h, alice, room, f"m{i}")
    req = {
        "lists": {
            "all": {
                "ranges": [[0, 9]],
                "timeline_limit": 1,
                "required_state": [["m.room.create", ""]],
            }
        },
        "room_subscriptions": {
            room: {"timeline_limit": 4, "required_state": [["m.room.join_rules", ""]]}
        },
    }
    answer = body(await slide(h, alice, req))["rooms"][room]
    # The larger timeline_limit and the union of required_state win.
    assert [e["content"]["body"] for e in answer["timeline"]] == ["m2", "m3", "m4", "m5"]
    assert {e["type"] for e in answer["required_state"]} == {
        "m.room.create",
        "m.room.join_rules",
    }


async def test_unread_counts_follow_push_rules(h: Harness) -> None:
    alice = await make_user(h, "alice")
    bob = await make_user(h, "bob")
    room = await public_room(h, alice, bob)
    first = body(await slide(h, alice, {"lists": {"all": ALL}}))
    await send_text(h, bob, room, "plain")
    await send_text(h, bob, room, f"hey {alice.user_id}")
    answer = body(await slide(h, alice, {"lists": {"all": ALL}}, pos=first["pos"]))
    counts = answer["rooms"][room]
    assert (counts["notification_count"], counts["highlight_count"]) == (2, 1)
