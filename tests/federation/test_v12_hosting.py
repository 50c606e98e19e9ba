"""A room version 12 room made on b.test, joined from a.test over
federation (make_join / send_join, every request signed and checked) by
alias and by ID with `via`; then messages and state flow both ways."""

from __future__ import annotations

from typing import Any
from urllib.parse import quote

from tests.conftest import settle
from tests.federation.inbound_support import client, sync
from tests.federation.two_servers import A, B, h
from tests.support.harness import Harness
from tests.support.users import TestUser, make_user

__all__ = ["h"]


async def _ok(h: Harness, host: str, method: str, path: str, user: TestUser, body: Any) -> Any:
    resp = await client(h, host, method, path, user, body)
    assert resp.status == 200, (host, path, resp.json)
    return resp.json


def _bodies(body: Any, room: str) -> list[str]:
    events = body["rooms"]["join"].get(room, {}).get("timeline", {}).get("events", [])
    return [e["content"]["body"] for e in events if e["type"] == "m.room.message"]


async def test_v12_room_hosted_for_another_server(h: Harness) -> None:
    bob = await make_user(h, "bob", host=B)
    alice = await make_user(h, "alice", host=A)
    carol = await make_user(h, "carol", host=A)
    made = await _ok(
        h,
        B,
        "POST",
        "/createRoom",
        bob,
        {"room_version": "12", "preset": "public_chat", "room_alias_name": "twelve"},
    )
    room = made["room_id"]
    assert ":" not in room

    joined = await _ok(h, A, "POST", f"/join/{quote('#twelve:b.test')}", alice, {})
    assert joined["room_id"] == room
    joined = await _ok(h, A, "POST", f"/join/{room}?server_name={B}", carol, {})
    assert joined["room_id"] == room
    await settle()
    stored = await h.servers[A].rooms_store.get_room(room)
    assert stored is not None and stored.room_version == "12"
    everyone = {alice.user_id, bob.user_id, carol.user_id}
    for host, user in ((A, alice), (B, bob)):
        members = await _ok(h, host, "GET", f"/rooms/{room}/joined_members", user, None)
        assert set(members["joined"]) == everyone, host
        state = await _ok(h, host, "GET", f"/rooms/{room}/state/m.room.create", user, None)
        assert state == {"room_version": "12"}

    start_a = (await sync(h, A, alice))["next_batch"]
    start_b = (await sync(h, B, bob))["next_batch"]
    await _ok(h, B, "PUT", f"/rooms/{room}/send/m.room.message/b1", bob, _text("hello a"))
    await settle()
    assert _bodies(await sync(h, A, alice, start_a), room) == ["hello a"]
    await _ok(h, A, "PUT", f"/rooms/{room}/send/m.room.message/a1", alice, _text("hi b"))
    await settle()
    assert _bodies(await sync(h, B, bob, start_b), room) == ["hello a", "hi b"]

    # State both ways: the creator raises alice (never listing himself),
    # alice names the room from a.test, bob sets the topic from b.test.
    pl = await _ok(h, B, "GET", f"/rooms/{room}/state/m.room.power_levels", bob, None)
    pl["users"] = {alice.user_id: 50}
    await _ok(h, B, "PUT", f"/rooms/{room}/state/m.room.power_levels", bob, pl)
    await settle()
    await _ok(h, A, "PUT", f"/rooms/{room}/state/m.room.name", alice, {"name": "From A"})
    await _ok(h, B, "PUT", f"/rooms/{room}/state/m.room.topic", bob, {"topic": "From B"})
    await settle()
    for host, user in ((A, carol), (B, bob)):
        name = await _ok(h, host, "GET", f"/rooms/{room}/state/m.room.name", user, None)
        topic = await _ok(h, host, "GET", f"/rooms/{room}/state/m.room.topic", user, None)
        assert (name, topic) == ({"name": "From A"}, {"topic": "From B"}), host
    # The creator's power holds on a.test too: alice cannot kick him.
    kick = await client(h, A, "POST", f"/rooms/{room}/kick", alice, {"user_id": bob.user_id})
    assert kick.status == 403, kick.json


def _text(body: str) -> dict[str, str]:
    return {"msgtype": "m.text", "body": body}
