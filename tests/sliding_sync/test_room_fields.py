"""Sliding sync room fields and connection behaviour over HTTP: bump_stamp,
name/avatar/heroes, counts, unsubscribe_rooms, expanded timelines and state."""

from __future__ import annotations

from tests.sliding_sync.helpers import slide
from tests.support.harness import Harness
from tests.support.users import make_user
from tests.sync.helpers import body
from tests.user_streams.helpers import call, public_room, send_text

ONE = {"ranges": [[0, 0]], "timeline_limit": 1}


async def test_bump_stamp_moves_on_messages_not_on_state_or_reactions(h: Harness) -> None:
    alice = await make_user(h, "alice")
    room = await public_room(h, alice)

    async def stamp() -> int:
        got = body(await slide(h, alice, {"lists": {"l": ONE}}))
        value: int = got["rooms"][room]["bump_stamp"]
        return value

    created = await stamp()
    message = await send_text(h, alice, room, "hello")
    after_message = await stamp()
    assert after_message > created
    resp = await call(h, "PUT", f"/rooms/{room}/state/m.room.topic", alice, {"topic": "t"})
    assert resp.status == 200, resp.json
    reaction = {"m.relates_to": {"rel_type": "m.annotation", "event_id": message, "key": "+1"}}
    resp = await call(h, "PUT", f"/rooms/{room}/send/m.reaction/r1", alice, reaction)
    assert resp.status == 200, resp.json
    assert await stamp() == after_message
    resp = await call(h, "PUT", f"/rooms/{room}/send/m.sticker/s1", alice, {"body": "s"})
    assert resp.status == 200, resp.json
    assert await stamp() > after_message


async def test_name_avatar_heroes_and_counts(h: Harness) -> None:
    alice = await make_user(h, "alice")
    bob = await make_user(h, "bob")
    carol = await make_user(h, "carol")
    room = await public_room(h, alice, bob)
    path = f"/rooms/{room}/state/m.room.member/{bob.user_id}"
    resp = await call(h, "GET", path, bob)
    member = dict(resp.json, displayname="Bobby", avatar_url="mxc://test.local/bob")
    assert (await call(h, "PUT", path, bob, member)).status == 200
    resp = await call(h, "POST", f"/rooms/{room}/invite", alice, {"user_id": carol.user_id})
    assert resp.status == 200, resp.json
    got = body(await slide(h, alice, {"lists": {"l": ONE}}))["rooms"][room]
    assert (got["joined_count"], got["invited_count"]) == (2, 1)
    assert "name" not in got and "avatar" not in got
    heroes = {hero["user_id"]: hero for hero in got["heroes"]}
    assert heroes[bob.user_id] == {
        "user_id": bob.user_id,
        "displayname": "Bobby",
        "avatar_url": "mxc://test.local/bob",
    }
    assert carol.user_id in heroes and alice.user_id not in heroes
    resp = await call(h, "PUT", f"/rooms/{room}/state/m.room.name", alice, {"name": "Den"})
    assert resp.status == 200, resp.json
    avatar = {"url": "mxc://test.local/den"}
    resp = await call(h, "PUT", f"/rooms/{room}/state/m.room.avatar", alice, avatar)
    assert resp.status == 200, resp.json
    got = body(await slide(h, alice, {"lists": {"l": ONE}}))["rooms"][room]
    assert (got["name"], got["avatar"]) == ("Den", "mxc://test.local/den")
    assert "heroes" not in got
    invite = body(await slide(h, carol, {"lists": {"l": ONE}}))["rooms"][room]
    assert (invite["name"], invite["avatar"]) == ("Den", "mxc://test.local/den")


async def test_unsubscribed_room_comes_back_afresh(h: Harness) -> None:
    alice = await make_user(h, "alice")
    room = await public_room(h, alice)
    await send_text(h, alice, room, "one")
    sub = {"room_subscriptions": {room: {"timeline_limit": 5}}}
    first = body(await slide(h, alice, sub))
    assert first["rooms"][room]["initial"] is True
    # Still subscribed: nothing new, nothing sent.
    again = body(await slide(h, alice, sub, pos=first["pos"]))
    assert again["rooms"] == {}
    gone = body(await slide(h, alice, {"unsubscribe_rooms": [room]}, pos=again["pos"]))
    assert gone["rooms"] == {}
    await send_text(h, alice, room, "two")
    quiet = body(await slide(h, alice, {}, pos=gone["pos"]))
    assert quiet["rooms"] == {}
    back = body(await slide(h, alice, sub, pos=quiet["pos"]))
    room_json = back["rooms"][room]
    assert room_json["initial"] is True
    assert [e["content"].get("body") for e in room_json["timeline"]][-2:] == ["one", "two"]
    # Unsubscribing from a room a list still holds keeps it (and a bad list is a 400).
    listed = {"lists": {"l": ONE}, "unsubscribe_rooms": [room]}
    kept = body(await slide(h, alice, listed, pos=back["pos"]))
    assert kept["rooms"] == {}
    resp = await slide(h, alice, {"unsubscribe_rooms": "all"}, pos=kept["pos"])
    assert resp.status == 400


async def test_bigger_timeline_limit_expands_at_once(h: Harness) -> None:
    alice = await make_user(h, "alice")
    room = await public_room(h, alice)
    sent = [await send_text(h, alice, room, f"m{i}") for i in range(4)]
    small = {"lists": {"l": {"ranges": [[0, 0]], "timeline_limit": 1}}}
    first = body(await slide(h, alice, small))
    assert [e["event_id"] for e in first["rooms"][room]["timeline"]] == sent[-1:]
    big = {
        "lists": {"l": {"ranges": [[0, 0]], "timeline_limit": 1}},
        "room_subscriptions": {room: {"timeline_limit": 3}},
    }
    got = body(await slide(h, alice, big, pos=first["pos"]))
    expanded = got["rooms"][room]
    assert expanded["unstable_expanded_timeline"] is True
    assert "initial" not in expanded
    assert [e["event_id"] for e in expanded["timeline"]] == sent[-3:]
    assert expanded["num_live"] == 0 and expanded["limited"] is True
    # Same parameters again: nothing; a new event with them is not expanded.
    assert body(await slide(h, alice, big, pos=got["pos"]))["rooms"] == {}
    new = await send_text(h, alice, room, "new")
    got = body(await slide(h, alice, big, pos=got["pos"]))
    room_json = got["rooms"][room]
    assert "unstable_expanded_timeline" not in room_json
    assert [e["event_id"] for e in room_json["timeline"]] == [new]
    # Smaller again: nothing resent.
    assert body(await slide(h, alice, small, pos=got["pos"]))["rooms"] == {}


async def test_more_required_state_is_sent_at_once(h: Harness) -> None:
    alice = await make_user(h, "alice")
    room = await public_room(h, alice)
    resp = await call(h, "PUT", f"/rooms/{room}/state/m.room.topic", alice, {"topic": "t"})
    assert resp.status == 200, resp.json
    base = {"ranges": [[0, 0]], "timeline_limit": 1, "required_state": [["m.room.create", ""]]}
    first = body(await slide(h, alice, {"lists": {"l": base}}))
    assert {e["type"] for e in first["rooms"][room]["required_state"]} == {"m.room.create"}
    more = dict(base, required_state=[["m.room.create", ""], ["m.room.topic", ""]])
    got = body(await slide(h, alice, {"lists": {"l": more}}, pos=first["pos"]))
    room_json = got["rooms"][room]
    assert "initial" not in room_json and room_json["timeline"] == []
    assert [e["type"] for e in room_json["required_state"]] == ["m.room.topic"]
    assert body(await slide(h, alice, {"lists": {"l": more}}, pos=got["pos"]))["rooms"] == {}


async def test_incremental_required_state_is_the_changes(h: Harness) -> None:
    alice = await make_user(h, "alice")
    bob = await make_user(h, "bob")
    carol = await make_user(h, "carol")
    room = await public_room(h, alice, bob, carol)
    spec = {
        "ranges": [[0, 0]],
        "timeline_limit": 1,
        "required_state": [["m.room.topic", ""], ["m.room.member", "$LAZY"]],
    }
    first = body(await slide(h, alice, {"lists": {"l": spec}}))
    resp = await call(h, "PUT", f"/rooms/{room}/state/m.room.topic", alice, {"topic": "new"})
    assert resp.status == 200, resp.json
    resp = await call(h, "PUT", f"/rooms/{room}/state/m.room.name", alice, {"name": "unasked"})
    assert resp.status == 200, resp.json
    for _ in range(3):
        await send_text(h, bob, room, "many")
    got = body(await slide(h, alice, {"lists": {"l": spec}}, pos=first["pos"]))
    room_json = got["rooms"][room]
    assert room_json["limited"] is True
    state = {(e["type"], e["state_key"]): e for e in room_json["required_state"]}
    # The changed topic (though not in the timeline), the sender's member event;
    # not unchanged or unasked-for state, not carol who sent nothing.
    assert set(state) == {("m.room.topic", ""), ("m.room.member", bob.user_id)}
    assert state[("m.room.topic", "")]["content"] == {"topic": "new"}


async def test_kicked_and_banned_rooms_stay_listed_left_rooms_do_not(h: Harness) -> None:
    alice = await make_user(h, "alice")
    bob = await make_user(h, "bob")
    kicked = await public_room(h, alice, bob)
    banned = await public_room(h, alice, bob)
    left = await public_room(h, alice, bob)
    resp = await call(h, "PUT", f"/rooms/{kicked}/state/m.room.name", alice, {"name": "Then"})
    assert resp.status == 200, resp.json
    all_rooms = {"lists": {"all": {"ranges": [[0, 9]], "timeline_limit": 3}}}
    first = body(await slide(h, bob, all_rooms))
    assert first["lists"]["all"]["count"] == 3
    resp = await call(h, "POST", f"/rooms/{kicked}/kick", alice, {"user_id": bob.user_id})
    assert resp.status == 200, resp.json
    resp = await call(h, "POST", f"/rooms/{banned}/ban", alice, {"user_id": bob.user_id})
    assert resp.status == 200, resp.json
    resp = await call(h, "POST", f"/rooms/{left}/leave", bob, {})
    assert resp.status == 200, resp.json
    resp = await call(h, "PUT", f"/rooms/{kicked}/state/m.room.name", alice, {"name": "Later"})
    assert resp.status == 200, resp.json
    got = body(await slide(h, bob, all_rooms, pos=first["pos"]))
    # The user's own leave is told once and drops out; kicks and bans stay.
    assert got["lists"]["all"]["count"] == 2
    assert {r: got["rooms"][r]["membership"] for r in got["rooms"]} == {
        kicked: "leave",
        banned: "ban",
        left: "leave",
    }
    kick = got["rooms"][kicked]
    assert "initial" not in kick
    assert kick["timeline"][-1]["content"]["membership"] == "leave"
    assert kick["timeline"][-1]["sender"] == alice.user_id
    assert kick["name"] == "Then"
    # Nothing after the kick reaches them; a new connection lists them afresh.
    await send_text(h, alice, kicked, "after")
    assert body(await slide(h, bob, all_rooms, pos=got["pos"]))["rooms"] == {}
    fresh = body(await slide(h, bob, {**all_rooms, "conn_id": "new"}))
    assert set(fresh["rooms"]) == {kicked, banned}
    assert fresh["rooms"][kicked]["initial"] is True
    assert fresh["rooms"][kicked]["timeline"][-1]["content"]["membership"] == "leave"


async def test_knocked_room_shows_its_stripped_state(h: Harness) -> None:
    alice = await make_user(h, "alice")
    bob = await make_user(h, "bob")
    resp = await call(h, "POST", "/createRoom", alice, {"name": "Door", "room_version": "10"})
    room = resp.json["room_id"]
    rules = {"join_rule": "knock"}
    resp = await call(h, "PUT", f"/rooms/{room}/state/m.room.join_rules", alice, rules)
    assert resp.status == 200, resp.json
    resp = await call(h, "POST", f"/knock/{room}", bob, {})
    assert resp.status == 200, resp.json
    got = body(await slide(h, bob, {"lists": {"all": {"ranges": [[0, 9]]}}}))
    knock = got["rooms"][room]
    assert (knock["membership"], knock["name"]) == ("knock", "Door")
    assert "m.room.create" in {e["type"] for e in knock["invite_state"]}
    assert "timeline" not in knock
