"""Joining, inviting, leaving, kicking, banning, forgetting and member lists over HTTP."""

from __future__ import annotations

from tests.rooms.helpers import (
    V3,
    assert_error,
    count_events,
    create_room,
    join,
    member_content,
    membership_action,
    put_state,
    q,
    send_ok,
)
from tests.support.harness import Harness
from tests.support.users import TestUser, make_user


async def joined_rooms(harness: Harness, user: TestUser) -> list[str]:
    resp = await harness.request("GET", f"{V3}/joined_rooms", token=user.token)
    assert resp.status == 200, resp.json
    rooms: list[str] = resp.json["joined_rooms"]
    return rooms


async def test_join_public_room_by_id_and_both_endpoints(harness: Harness) -> None:
    alice = await make_user(harness, "alice")
    bob = await make_user(harness, "bob")
    carol = await make_user(harness, "carol")
    room_id = await create_room(harness, alice, preset="public_chat")
    resp = await join(harness, bob, room_id)
    assert resp.status == 200 and resp.json == {"room_id": room_id}
    resp = await membership_action(harness, carol, room_id, "join")
    assert resp.status == 200 and resp.json == {"room_id": room_id}
    assert await joined_rooms(harness, bob) == [room_id]
    assert await joined_rooms(harness, carol) == [room_id]
    # Joining again is harmless and makes no new event.
    before = await member_content(harness, alice, room_id, bob.user_id)
    resp = await join(harness, bob, room_id)
    assert resp.status == 200
    assert await member_content(harness, alice, room_id, bob.user_id) == before


async def test_join_with_reason(harness: Harness) -> None:
    alice = await make_user(harness, "alice")
    bob = await make_user(harness, "bob")
    room_id = await create_room(harness, alice, preset="public_chat")
    resp = await harness.request(
        "POST", f"{V3}/join/{q(room_id)}", json={"reason": "hello"}, token=bob.token
    )
    assert resp.status == 200, resp.json
    content = await member_content(harness, alice, room_id, bob.user_id)
    assert content == {"membership": "join", "reason": "hello"} or (
        content is not None and content["reason"] == "hello"
    )


async def test_join_by_alias(harness: Harness) -> None:
    alice = await make_user(harness, "alice")
    bob = await make_user(harness, "bob")
    room_id = await create_room(harness, alice, preset="public_chat", room_alias_name="hall")
    resp = await join(harness, bob, f"#hall:{harness.hs.server_name}")
    assert resp.status == 200 and resp.json == {"room_id": room_id}


async def test_join_unknown(harness: Harness) -> None:
    bob = await make_user(harness, "bob")
    resp = await join(harness, bob, f"!nope:{harness.hs.server_name}")
    assert_error(resp, 404, "M_NOT_FOUND")
    resp = await membership_action(harness, bob, f"!nope:{harness.hs.server_name}", "join")
    assert_error(resp, 404, "M_NOT_FOUND")
    resp = await join(harness, bob, f"#nope:{harness.hs.server_name}")
    assert_error(resp, 404, "M_NOT_FOUND")
    resp = await join(harness, bob, "not-a-room")
    assert_error(resp, 400)
    resp = await join(harness, bob, "#bad alias")
    assert_error(resp, 400)


async def test_invite_only_room(harness: Harness) -> None:
    alice = await make_user(harness, "alice")
    bob = await make_user(harness, "bob")
    room_id = await create_room(harness, alice, preset="private_chat")
    resp = await join(harness, bob, room_id)
    assert_error(resp, 403, "M_FORBIDDEN")
    assert await member_content(harness, alice, room_id, bob.user_id) is None

    resp = await membership_action(
        harness, alice, room_id, "invite", {"user_id": bob.user_id, "reason": "come"}
    )
    assert resp.status == 200 and resp.json == {}
    content = await member_content(harness, alice, room_id, bob.user_id)
    assert content is not None
    assert content["membership"] == "invite" and content["reason"] == "come"
    resp = await join(harness, bob, room_id)
    assert resp.status == 200, resp.json
    assert await joined_rooms(harness, bob) == [room_id]


async def test_reject_invite(harness: Harness) -> None:
    alice = await make_user(harness, "alice")
    bob = await make_user(harness, "bob")
    room_id = await create_room(harness, alice, invite=[bob.user_id])
    resp = await membership_action(harness, bob, room_id, "leave", {"reason": "no thanks"})
    assert resp.status == 200 and resp.json == {}
    content = await member_content(harness, alice, room_id, bob.user_id)
    assert content == {"membership": "leave", "reason": "no thanks"}
    resp = await join(harness, bob, room_id)
    assert_error(resp, 403)


async def test_invite_errors(harness: Harness) -> None:
    alice = await make_user(harness, "alice")
    bob = await make_user(harness, "bob")
    carol = await make_user(harness, "carol")
    room_id = await create_room(harness, alice, preset="public_chat")
    # Not in the room: 403.
    resp = await membership_action(harness, bob, room_id, "invite", {"user_id": carol.user_id})
    assert_error(resp, 403, "M_FORBIDDEN")
    # Without the invite power level (public_chat: invite 50): 403.
    assert (await join(harness, bob, room_id)).status == 200
    resp = await membership_action(harness, bob, room_id, "invite", {"user_id": carol.user_id})
    assert_error(resp, 403, "M_FORBIDDEN")
    # Inviting someone already joined: 403.
    resp = await membership_action(harness, alice, room_id, "invite", {"user_id": bob.user_id})
    assert_error(resp, 403)
    # Bad bodies.
    resp = await membership_action(harness, alice, room_id, "invite", {})
    assert_error(resp, 400, "M_MISSING_PARAM")
    resp = await membership_action(harness, alice, room_id, "invite", {"user_id": 5})
    assert_error(resp, 400, "M_BAD_JSON")
    resp = await membership_action(harness, alice, room_id, "invite", {"user_id": "carol"})
    assert_error(resp, 400)
    resp = await membership_action(
        harness, alice, room_id, "invite", {"user_id": carol.user_id, "reason": 5}
    )
    assert_error(resp, 400, "M_BAD_JSON")
    resp = await membership_action(
        harness, alice, f"!nope:{harness.hs.server_name}", "invite", {"user_id": carol.user_id}
    )
    assert_error(resp, 404, "M_NOT_FOUND")


async def test_leave(harness: Harness) -> None:
    alice = await make_user(harness, "alice")
    bob = await make_user(harness, "bob")
    room_id = await create_room(harness, alice, preset="public_chat")
    # Never in the room: 403.
    resp = await membership_action(harness, bob, room_id, "leave")
    assert_error(resp, 403, "M_FORBIDDEN")
    assert (await join(harness, bob, room_id)).status == 200
    resp = await membership_action(harness, bob, room_id, "leave", {"reason": "bye"})
    assert resp.status == 200 and resp.json == {}
    assert await joined_rooms(harness, bob) == []
    content = await member_content(harness, alice, room_id, bob.user_id)
    assert content == {"membership": "leave", "reason": "bye"}
    # Leaving again the same way is a no-op (as Synapse); nothing new is stored.
    before = await count_events(harness, room_id)
    resp = await membership_action(harness, bob, room_id, "leave", {"reason": "bye"})
    assert resp.status == 200, resp.json
    assert await count_events(harness, room_id) == before
    # A different leave when already gone: 403.
    resp = await membership_action(harness, bob, room_id, "leave")
    assert_error(resp, 403)
    resp = await membership_action(harness, bob, f"!nope:{harness.hs.server_name}", "leave")
    assert_error(resp, 404, "M_NOT_FOUND")
    # An empty body is fine.
    assert (await join(harness, bob, room_id)).status == 200
    resp = await harness.request("POST", f"{V3}/rooms/{q(room_id)}/leave", token=bob.token)
    assert resp.status == 200, resp.json


async def test_kick_and_rejoin_public_room(harness: Harness) -> None:
    alice = await make_user(harness, "alice")
    bob = await make_user(harness, "bob")
    room_id = await create_room(harness, alice, preset="public_chat")
    assert (await join(harness, bob, room_id)).status == 200
    # bob (PL 0) cannot kick alice.
    resp = await membership_action(harness, bob, room_id, "kick", {"user_id": alice.user_id})
    assert_error(resp, 403, "M_FORBIDDEN")
    resp = await membership_action(
        harness, alice, room_id, "kick", {"user_id": bob.user_id, "reason": "spam"}
    )
    assert resp.status == 200 and resp.json == {}
    state = await harness.request(
        "GET",
        f"{V3}/rooms/{q(room_id)}/state/m.room.member/{q(bob.user_id)}",
        token=alice.token,
        headers={},
    )
    assert state.json == {"membership": "leave", "reason": "spam"}
    assert await joined_rooms(harness, bob) == []
    # Kicking someone not in the room: 403.
    resp = await membership_action(harness, alice, room_id, "kick", {"user_id": bob.user_id})
    assert_error(resp, 403)
    resp = await join(harness, bob, room_id)
    assert resp.status == 200, resp.json
    assert await joined_rooms(harness, bob) == [room_id]
    resp = await membership_action(harness, alice, room_id, "kick", {})
    assert_error(resp, 400, "M_MISSING_PARAM")


async def test_ban_unban_join(harness: Harness) -> None:
    alice = await make_user(harness, "alice")
    bob = await make_user(harness, "bob")
    carol = await make_user(harness, "carol")
    room_id = await create_room(harness, alice, preset="public_chat")
    assert (await join(harness, bob, room_id)).status == 200
    assert (await join(harness, carol, room_id)).status == 200
    # Without power: 403.
    resp = await membership_action(harness, carol, room_id, "ban", {"user_id": bob.user_id})
    assert_error(resp, 403, "M_FORBIDDEN")
    resp = await membership_action(
        harness, alice, room_id, "ban", {"user_id": bob.user_id, "reason": "rude"}
    )
    assert resp.status == 200 and resp.json == {}
    content = await member_content(harness, alice, room_id, bob.user_id)
    assert content == {"membership": "ban", "reason": "rude"}
    assert await joined_rooms(harness, bob) == []
    # Banned: cannot join, cannot be invited, cannot leave.
    resp = await join(harness, bob, room_id)
    assert_error(resp, 403)
    resp = await membership_action(harness, alice, room_id, "invite", {"user_id": bob.user_id})
    assert_error(resp, 403)
    resp = await membership_action(harness, bob, room_id, "leave")
    assert_error(resp, 403)
    # Kicking a banned user does not unban them.
    resp = await membership_action(harness, alice, room_id, "kick", {"user_id": bob.user_id})
    assert_error(resp, 403)
    assert (await member_content(harness, alice, room_id, bob.user_id) or {}).get(
        "membership"
    ) == "ban"
    # carol cannot unban.
    resp = await membership_action(harness, carol, room_id, "unban", {"user_id": bob.user_id})
    assert_error(resp, 403)
    resp = await membership_action(
        harness, alice, room_id, "unban", {"user_id": bob.user_id, "reason": "sorry"}
    )
    assert resp.status == 200 and resp.json == {}
    content = await member_content(harness, alice, room_id, bob.user_id)
    assert content == {"membership": "leave", "reason": "sorry"}
    resp = await join(harness, bob, room_id)
    assert resp.status == 200, resp.json


async def test_unban_of_unbanned_user_is_refused(harness: Harness) -> None:
    """/unban must not turn into a kick of a joined user."""
    alice = await make_user(harness, "alice")
    bob = await make_user(harness, "bob")
    room_id = await create_room(harness, alice, preset="public_chat")
    assert (await join(harness, bob, room_id)).status == 200
    resp = await membership_action(harness, alice, room_id, "unban", {"user_id": bob.user_id})
    assert_error(resp, 403)
    assert await joined_rooms(harness, bob) == [room_id]


async def test_ban_user_never_in_room(harness: Harness) -> None:
    alice = await make_user(harness, "alice")
    bob = await make_user(harness, "bob")
    room_id = await create_room(harness, alice, preset="public_chat")
    resp = await membership_action(harness, alice, room_id, "ban", {"user_id": bob.user_id})
    assert resp.status == 200, resp.json
    assert_error(await join(harness, bob, room_id), 403)


async def test_ban_peer_of_equal_power_refused(harness: Harness) -> None:
    alice = await make_user(harness, "alice")
    bob = await make_user(harness, "bob")
    room_id = await create_room(
        harness,
        alice,
        preset="public_chat",
        power_level_content_override={"users": {alice.user_id: 100, bob.user_id: 100}},
    )
    assert (await join(harness, bob, room_id)).status == 200
    resp = await membership_action(harness, bob, room_id, "ban", {"user_id": alice.user_id})
    assert_error(resp, 403)
    resp = await membership_action(harness, bob, room_id, "kick", {"user_id": alice.user_id})
    assert_error(resp, 403)


async def test_forget(harness: Harness) -> None:
    alice = await make_user(harness, "alice")
    bob = await make_user(harness, "bob")
    room_id = await create_room(harness, alice, preset="public_chat")
    assert (await join(harness, bob, room_id)).status == 200
    resp = await membership_action(harness, bob, room_id, "forget")
    assert_error(resp, 400)
    assert (await membership_action(harness, bob, room_id, "leave")).status == 200
    resp = await membership_action(harness, bob, room_id, "forget")
    assert resp.status == 200 and resp.json == {}
    membership = await harness.hs.rooms_store.get_membership(room_id, bob.user_id)
    assert membership is not None and membership.forgotten
    # Forgetting a room never joined.
    carol = await make_user(harness, "carol")
    resp = await membership_action(harness, carol, room_id, "forget")
    assert resp.status in (200, 404), resp.json
    if resp.status != 200:
        assert_error(resp, 404)


async def test_put_member_state(harness: Harness) -> None:
    """m.room.member through PUT /state goes through the membership rules too."""
    alice = await make_user(harness, "alice")
    bob = await make_user(harness, "bob")
    room_id = await create_room(harness, alice, preset="public_chat")
    # alice cannot make bob join.
    resp = await put_state(
        harness, alice, room_id, "m.room.member", {"membership": "join"}, bob.user_id
    )
    assert_error(resp, 403)
    resp = await put_state(
        harness, bob, room_id, "m.room.member", {"membership": "join"}, bob.user_id
    )
    assert resp.status == 200, resp.json
    # Changing one's displayname in the room.
    resp = await put_state(
        harness,
        bob,
        room_id,
        "m.room.member",
        {"membership": "join", "displayname": "Bobby"},
        bob.user_id,
    )
    assert resp.status == 200, resp.json
    content = await member_content(harness, alice, room_id, bob.user_id)
    assert content is not None and content["displayname"] == "Bobby"
    resp = await put_state(
        harness, bob, room_id, "m.room.member", {"membership": "nonsense"}, bob.user_id
    )
    assert_error(resp, 400)
    resp = await put_state(harness, bob, room_id, "m.room.member", {"membership": 3}, bob.user_id)
    assert_error(resp, 400)
    resp = await put_state(harness, bob, room_id, "m.room.member", {"membership": "join"}, "")
    assert_error(resp, 400)


async def test_members_and_joined_members(harness: Harness) -> None:
    from hamlet.handlers.common.streams import StreamToken

    alice = await make_user(harness, "alice")
    bob = await make_user(harness, "bob")
    carol = await make_user(harness, "carol")
    dave = await make_user(harness, "dave")
    room_id = await create_room(harness, alice, preset="public_chat")
    assert (await join(harness, bob, room_id)).status == 200
    token = StreamToken(events=harness.hs.event_creator.current_stream).to_string()
    assert (await join(harness, carol, room_id)).status == 200
    assert (
        await membership_action(harness, alice, room_id, "invite", {"user_id": dave.user_id})
    ).status == 200
    assert (await membership_action(harness, bob, room_id, "leave")).status == 200

    async def members(query: str = "", user: TestUser = alice) -> dict[str, str]:
        resp = await harness.request(
            "GET", f"{V3}/rooms/{q(room_id)}/members{query}", token=user.token
        )
        assert resp.status == 200, resp.json
        return {e["state_key"]: e["content"]["membership"] for e in resp.json["chunk"]}

    assert await members() == {
        alice.user_id: "join",
        carol.user_id: "join",
        dave.user_id: "invite",
        bob.user_id: "leave",
    }
    assert await members("?membership=join") == {alice.user_id: "join", carol.user_id: "join"}
    assert await members("?not_membership=join") == {
        dave.user_id: "invite",
        bob.user_id: "leave",
    }
    assert await members(f"?at={token}") == {alice.user_id: "join", bob.user_id: "join"}
    assert await members(f"?at={token}&membership=join") == {
        alice.user_id: "join",
        bob.user_id: "join",
    }
    # bob left: he sees the members as of his leaving.
    assert await members(user=bob) == {
        alice.user_id: "join",
        carol.user_id: "join",
        dave.user_id: "invite",
        bob.user_id: "leave",
    }
    assert (await join(harness, carol, room_id)).status == 200  # no-op
    resp = await harness.request(
        "GET", f"{V3}/rooms/{q(room_id)}/members?at=garbage", token=alice.token
    )
    assert_error(resp, 400)
    eve = await make_user(harness, "eve")
    resp = await harness.request("GET", f"{V3}/rooms/{q(room_id)}/members", token=eve.token)
    assert_error(resp, 403)
    resp = await harness.request(
        "GET", f"{V3}/rooms/{q('!nope:' + harness.hs.server_name)}/members", token=eve.token
    )
    assert_error(resp, 404)

    resp = await harness.request(
        "GET", f"{V3}/rooms/{q(room_id)}/joined_members", token=carol.token
    )
    assert resp.status == 200, resp.json
    assert set(resp.json["joined"]) == {alice.user_id, carol.user_id}
    for info in resp.json["joined"].values():
        assert set(info) <= {"display_name", "avatar_url"}
        assert all(isinstance(v, str) for v in info.values())
    resp = await harness.request("GET", f"{V3}/rooms/{q(room_id)}/joined_members", token=eve.token)
    assert_error(resp, 403)
    resp = await harness.request("GET", f"{V3}/rooms/{q(room_id)}/joined_members", token=bob.token)
    assert_error(resp, 403)


async def test_joined_rooms(harness: Harness) -> None:
    alice = await make_user(harness, "alice")
    bob = await make_user(harness, "bob")
    assert await joined_rooms(harness, alice) == []
    r1 = await create_room(harness, alice, preset="public_chat")
    r2 = await create_room(harness, alice, invite=[bob.user_id])
    assert sorted(await joined_rooms(harness, alice)) == sorted([r1, r2])
    assert await joined_rooms(harness, bob) == []  # invited is not joined
    assert (await join(harness, bob, r2)).status == 200
    assert await joined_rooms(harness, bob) == [r2]
    resp = await harness.request("GET", f"{V3}/joined_rooms")
    assert_error(resp, 401, "M_MISSING_TOKEN")


async def test_member_sends_after_joining(harness: Harness) -> None:
    alice = await make_user(harness, "alice")
    bob = await make_user(harness, "bob")
    room_id = await create_room(harness, alice, preset="public_chat")
    assert (await join(harness, bob, room_id)).status == 200
    await send_ok(harness, bob, room_id)
