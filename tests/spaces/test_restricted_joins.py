"""Joining `restricted` and `knock_restricted` rooms through membership of another room."""

from __future__ import annotations

import pytest

from tests.rooms.helpers import (
    V3,
    assert_error,
    create_room,
    get_state_event,
    join,
    put_state,
    q,
)
from tests.spaces.support import add_child, create_space, hierarchy, ok, sh
from tests.support.harness import Harness
from tests.support.users import make_user

__all__ = ["sh"]


def restricted(rule: str, *allowed: str) -> dict[str, object]:
    return {
        "join_rule": rule,
        "allow": [{"type": "m.room_membership", "room_id": r} for r in allowed],
    }


@pytest.mark.parametrize("version", ["10", "11"])
@pytest.mark.parametrize("rule", ["restricted", "knock_restricted"])
async def test_members_of_an_allowed_room_may_join(sh: Harness, version: str, rule: str) -> None:
    alice = await make_user(sh, "alice")
    bob = await make_user(sh, "bob")
    carol = await make_user(sh, "carol")
    space = await create_space(sh, alice, "Space", room_version=version)
    other = await create_room(sh, alice, preset="public_chat", room_version=version)
    room = await create_room(
        sh,
        alice,
        preset="private_chat",
        room_version=version,
        initial_state=[{"type": "m.room.join_rules", "content": restricted(rule, other, space)}],
    )
    # Nobody but alice may invite.
    pl = ok(await get_state_event(sh, alice, room, "m.room.power_levels"))
    pl["invite"] = 50
    ok(await put_state(sh, alice, room, "m.room.power_levels", pl))

    # Carol is in none of the allowed rooms.
    assert_error(await join(sh, carol, room), 403, "M_FORBIDDEN")

    ok(await join(sh, bob, space))
    ok(await join(sh, bob, room))
    member = ok(await get_state_event(sh, alice, room, "m.room.member", bob.user_id))
    assert member["membership"] == "join"
    assert member["join_authorised_via_users_server"] == alice.user_id

    # Leaving the allowed room takes the right away again.
    ok(await sh.request("POST", f"{V3}/rooms/{q(room)}/leave", json={}, token=bob.token))
    ok(await sh.request("POST", f"{V3}/rooms/{q(space)}/leave", json={}, token=bob.token))
    assert_error(await join(sh, bob, room), 403, "M_FORBIDDEN")


async def test_a_client_cannot_name_its_own_authoriser(sh: Harness) -> None:
    alice = await make_user(sh, "alice")
    carol = await make_user(sh, "carol")
    space = await create_space(sh, alice, "Space")
    room = await create_room(
        sh,
        alice,
        preset="private_chat",
        initial_state=[{"type": "m.room.join_rules", "content": restricted("restricted", space)}],
    )
    resp = await put_state(
        sh,
        carol,
        room,
        "m.room.member",
        {"membership": "join", "join_authorised_via_users_server": alice.user_id},
        carol.user_id,
    )
    assert_error(resp, 403, "M_FORBIDDEN")


async def test_invited_users_join_without_an_authoriser(sh: Harness) -> None:
    alice = await make_user(sh, "alice")
    carol = await make_user(sh, "carol")
    space = await create_space(sh, alice, "Space")
    room = await create_room(
        sh,
        alice,
        preset="private_chat",
        initial_state=[{"type": "m.room.join_rules", "content": restricted("restricted", space)}],
    )
    ok(
        await sh.request(
            "POST",
            f"{V3}/rooms/{q(room)}/invite",
            json={"user_id": carol.user_id},
            token=alice.token,
        )
    )
    ok(await join(sh, carol, room))
    member = ok(await get_state_event(sh, alice, room, "m.room.member", carol.user_id))
    assert "join_authorised_via_users_server" not in member


async def test_no_local_member_can_vouch(sh: Harness) -> None:
    alice = await make_user(sh, "alice")
    bob = await make_user(sh, "bob")
    space = await create_space(sh, alice, "Space")
    room = await create_room(
        sh,
        alice,
        preset="private_chat",
        initial_state=[{"type": "m.room.join_rules", "content": restricted("restricted", space)}],
    )
    ok(await join(sh, bob, space))
    # The only member who could invite has left.
    ok(await sh.request("POST", f"{V3}/rooms/{q(room)}/leave", json={}, token=alice.token))
    assert_error(await join(sh, bob, room), 400, "M_UNABLE_TO_GRANT_JOIN")


async def test_hierarchy_lists_restricted_rooms_to_members_of_allowed_rooms(sh: Harness) -> None:
    alice = await make_user(sh, "alice")
    bob = await make_user(sh, "bob")
    carol = await make_user(sh, "carol")
    space = await create_space(sh, alice, "Space")
    room = await create_room(
        sh,
        alice,
        preset="private_chat",
        initial_state=[{"type": "m.room.join_rules", "content": restricted("restricted", space)}],
    )
    await add_child(sh, alice, space, room)
    ok(await join(sh, bob, space))
    ok(await join(sh, carol, space))
    body = ok(await hierarchy(sh, bob, space))
    assert [r["room_id"] for r in body["rooms"]] == [space, room]
    assert body["rooms"][1]["join_rule"] == "restricted"
    ok(await sh.request("POST", f"{V3}/rooms/{q(space)}/leave", json={}, token=carol.token))
    # Carol left the space: it is still public, but the restricted room is gone.
    body = ok(await hierarchy(sh, carol, space))
    assert [r["room_id"] for r in body["rooms"]] == [space]
