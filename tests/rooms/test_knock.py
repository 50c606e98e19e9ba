"""Knocking (`POST /knock/{roomIdOrAlias}`) end to end: sync, accept, deny, rescind."""

from __future__ import annotations

from typing import Any

import pytest

from tests.rooms.helpers import (
    V3,
    assert_error,
    create_room,
    join,
    member_content,
    membership_action,
    put_state,
    q,
    send_ok,
)
from tests.rooms.reading_support import unlimited_harness
from tests.support.harness import Harness, Response
from tests.support.users import TestUser, make_user


@pytest.fixture
async def harness(make_hs_config):  # type: ignore[no-untyped-def]
    async for h in unlimited_harness(make_hs_config):
        yield h


async def knock(
    harness: Harness, user: TestUser, room: str, body: Any = None, query: str = ""
) -> Response:
    return await harness.request(
        "POST",
        f"{V3}/knock/{q(room)}{query}",
        json=body if body is not None else {},
        token=user.token,
    )


async def sync(harness: Harness, user: TestUser, since: str | None = None) -> dict[str, Any]:
    path = f"{V3}/sync" + (f"?since={since}" if since else "")
    resp = await harness.request("GET", path, token=user.token)
    assert resp.status == 200, resp.json
    body: dict[str, Any] = resp.json
    return body


async def knock_room(harness: Harness, admin: TestUser, join_rule: str = "knock") -> str:
    return await create_room(
        harness,
        admin,
        name="Knock knock",
        topic="who's there",
        initial_state=[
            {"type": "m.room.join_rules", "state_key": "", "content": {"join_rule": join_rule}}
        ],
    )


async def test_knock_appears_in_sync_for_knocker_and_members(harness: Harness) -> None:
    alice = await make_user(harness, "alice")
    bob = await make_user(harness, "bob")
    room_id = await knock_room(harness, alice)
    since = (await sync(harness, bob))["next_batch"]
    alice_since = (await sync(harness, alice))["next_batch"]

    resp = await knock(
        harness, bob, room_id, {"reason": "let me in"}, "?server_name=test.local&via=test.local"
    )
    assert resp.status == 200, resp.json
    assert resp.json == {"room_id": room_id}
    content = await member_content(harness, alice, room_id, bob.user_id)
    assert content is not None
    assert content["membership"] == "knock"
    assert content["reason"] == "let me in"

    for body in (await sync(harness, bob, since), await sync(harness, bob)):
        rooms = body["rooms"]
        assert room_id in rooms["knock"], rooms
        assert room_id not in rooms["join"] and room_id not in rooms["invite"]
        events = rooms["knock"][room_id]["knock_state"]["events"]
        by_type = {(e["type"], e["state_key"]): e for e in events}
        assert by_type[("m.room.name", "")]["content"] == {"name": "Knock knock"}
        assert by_type[("m.room.join_rules", "")]["content"] == {"join_rule": "knock"}
        assert ("m.room.create", "") in by_type
        own = by_type[("m.room.member", bob.user_id)]
        assert own["content"]["membership"] == "knock"
        assert own["sender"] == bob.user_id
        assert events[-1] is own
        # Stripped state: no event ids, signatures or timestamps.
        assert all(set(e) == {"type", "state_key", "content", "sender"} for e in events)

    timeline = (await sync(harness, alice, alice_since))["rooms"]["join"][room_id]["timeline"]
    knocks = [
        e
        for e in timeline["events"]
        if e["type"] == "m.room.member" and e["state_key"] == bob.user_id
    ]
    assert [e["content"]["membership"] for e in knocks] == ["knock"]


async def test_knock_by_alias_and_accept_by_invite(harness: Harness) -> None:
    alice = await make_user(harness, "alice")
    bob = await make_user(harness, "bob")
    room_id = await create_room(
        harness,
        alice,
        room_alias_name="knockers",
        initial_state=[
            {"type": "m.room.join_rules", "state_key": "", "content": {"join_rule": "knock"}}
        ],
    )
    resp = await knock(harness, bob, "#knockers:test.local")
    assert resp.status == 200, resp.json
    assert resp.json["room_id"] == room_id
    since = (await sync(harness, bob))["next_batch"]

    # A knocker cannot just join a knock room...
    assert_error(await join(harness, bob, room_id), 403, "M_FORBIDDEN")
    # ...but an invite accepts the knock.
    resp = await membership_action(harness, alice, room_id, "invite", {"user_id": bob.user_id})
    assert resp.status == 200, resp.json
    rooms = (await sync(harness, bob, since))["rooms"]
    assert room_id in rooms["invite"]
    assert room_id not in rooms["knock"]
    resp = await join(harness, bob, room_id)
    assert resp.status == 200, resp.json
    await send_ok(harness, bob, room_id, "thanks")


async def test_deny_knock_by_kick(harness: Harness) -> None:
    alice = await make_user(harness, "alice")
    bob = await make_user(harness, "bob")
    room_id = await knock_room(harness, alice)
    assert (await knock(harness, bob, room_id)).status == 200
    since = (await sync(harness, bob))["next_batch"]
    resp = await membership_action(
        harness, alice, room_id, "kick", {"user_id": bob.user_id, "reason": "no"}
    )
    assert resp.status == 200, resp.json
    content = await member_content(harness, alice, room_id, bob.user_id)
    assert content is not None and content["membership"] == "leave"
    rooms = (await sync(harness, bob, since))["rooms"]
    assert room_id in rooms["leave"]
    assert room_id not in rooms["knock"]
    # After a denial the user may knock again.
    assert (await knock(harness, bob, room_id)).status == 200


async def test_rescind_knock_with_leave(harness: Harness) -> None:
    alice = await make_user(harness, "alice")
    bob = await make_user(harness, "bob")
    room_id = await knock_room(harness, alice, "knock_restricted")
    assert (await knock(harness, bob, room_id)).status == 200
    resp = await membership_action(harness, bob, room_id, "leave")
    assert resp.status == 200, resp.json
    content = await member_content(harness, alice, room_id, bob.user_id)
    assert content is not None and content["membership"] == "leave"
    assert room_id not in (await sync(harness, bob))["rooms"]["knock"]


async def test_knock_refused(harness: Harness) -> None:
    alice = await make_user(harness, "alice")
    bob = await make_user(harness, "bob")
    carol = await make_user(harness, "carol")
    # Invite-only and public rooms do not take knocks.
    private = await create_room(harness, alice)
    assert_error(await knock(harness, bob, private), 403, "M_FORBIDDEN")
    public = await create_room(harness, alice, preset="public_chat")
    assert_error(await knock(harness, bob, public), 403, "M_FORBIDDEN")

    room_id = await knock_room(harness, alice)
    # Members, invitees and banned users cannot knock.
    assert_error(await knock(harness, alice, room_id), 403)
    resp = await membership_action(harness, alice, room_id, "invite", {"user_id": carol.user_id})
    assert resp.status == 200
    assert_error(await knock(harness, carol, room_id), 403)
    resp = await membership_action(harness, alice, room_id, "ban", {"user_id": bob.user_id})
    assert resp.status == 200
    assert_error(await knock(harness, bob, room_id), 403)

    assert_error(await knock(harness, carol, "!nowhere:test.local"), 404, "M_NOT_FOUND")
    assert_error(await knock(harness, carol, "#nowhere:test.local"), 404, "M_NOT_FOUND")
    assert_error(await knock(harness, carol, "nonsense"), 400, "M_INVALID_PARAM")
    assert_error(await knock(harness, carol, room_id, {"reason": 5}), 400, "M_BAD_JSON")
    resp = await harness.request("POST", f"{V3}/knock/{q(room_id)}", json={})
    assert_error(resp, 401, "M_MISSING_TOKEN")


async def test_power_to_accept_and_deny(harness: Harness) -> None:
    alice = await make_user(harness, "alice")
    bob = await make_user(harness, "bob")
    mallory = await make_user(harness, "mallory")
    room_id = await create_room(
        harness,
        alice,
        preset="public_chat",
        power_level_content_override={"invite": 50},
    )
    assert (await join(harness, mallory, room_id)).status == 200
    resp = await put_state(harness, alice, room_id, "m.room.join_rules", {"join_rule": "knock"})
    assert resp.status == 200
    assert (await knock(harness, bob, room_id)).status == 200
    # An ordinary member can neither accept nor deny.
    resp = await membership_action(harness, mallory, room_id, "invite", {"user_id": bob.user_id})
    assert_error(resp, 403)
    resp = await membership_action(harness, mallory, room_id, "kick", {"user_id": bob.user_id})
    assert_error(resp, 403)
    content = await member_content(harness, alice, room_id, bob.user_id)
    assert content is not None and content["membership"] == "knock"
