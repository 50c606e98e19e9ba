"""A user of one tenant joins another tenant's restricted room: the
resident server vouches (`join_authorised_via_users_server`, its own
signature on the join) when the user is in an allowed room it knows, and
refuses with the spec's errors when it cannot."""

from __future__ import annotations

from typing import Any
from urllib.parse import quote

import pytest

from hamlet.core.room_versions import get_room_version
from tests.conftest import settle
from tests.federation.inbound_support import client, signed_request
from tests.federation.two_servers import V1, V2, A, B, h
from tests.support.federation import HarnessTransport
from tests.support.harness import Harness
from tests.support.users import TestUser, make_user

__all__ = ["h"]


def _restricted(rule: str, *allowed: str) -> dict[str, Any]:
    content = {
        "join_rule": rule,
        "allow": [{"type": "m.room_membership", "room_id": r} for r in allowed],
    }
    return {"type": "m.room.join_rules", "content": content}


async def _room(h: Harness, owner: TestUser, **body: Any) -> str:
    resp = await client(h, B, "POST", "/createRoom", owner, body)
    assert resp.status == 200, resp.json
    room: str = resp.json["room_id"]
    return room


async def _space_and_club(h: Harness, owner: TestUser, rule: str = "restricted") -> tuple[str, str]:
    """A public room, and a room only its members may join."""
    space = await _room(h, owner, preset="public_chat")
    club = await _room(h, owner, preset="private_chat", initial_state=[_restricted(rule, space)])
    return space, club


async def _join(h: Harness, user: TestUser, room: str) -> tuple[int, Any]:
    resp = await client(h, A, "POST", f"/join/{quote(room)}?via={B}", user, {})
    return resp.status, resp.json


@pytest.mark.parametrize("rule", ["restricted", "knock_restricted"])
async def test_a_member_of_an_allowed_room_joins_through_the_resident(
    h: Harness, rule: str
) -> None:
    bob = await make_user(h, "bob", host=B)
    alice = await make_user(h, "alice", host=A)
    carol = await make_user(h, "carol", host=A)
    space, club = await _space_and_club(h, bob, rule)

    # Carol is in no allowed room: b.test refuses, her server passes it on.
    assert await _join(h, carol, club) == (
        403,
        {
            "errcode": "M_FORBIDDEN",
            "error": "You do not belong to any of the required rooms/spaces to join this room.",
        },
    )
    assert (await _join(h, alice, space))[0] == 200
    status, body = await _join(h, alice, club)
    assert status == 200, body

    for host, user in ((A, alice), (B, bob)):
        members = await client(h, host, "GET", f"/rooms/{club}/joined_members", user)
        assert set(members.json["joined"]) == {alice.user_id, bob.user_id}, host
    member = await client(h, A, "GET", f"/rooms/{club}/state/m.room.member/{alice.user_id}", alice)
    assert member.json["join_authorised_via_users_server"] == bob.user_id
    # Both servers hold the join as b.test signed it too.
    for name in (A, B):
        stored = await h.servers[name].room_state.get_current_state_event(
            club, "m.room.member", alice.user_id
        )
        assert stored is not None and set(stored.signatures) == {A, B}, name


async def test_restricted_joins_the_resident_cannot_vouch_for(h: Harness) -> None:
    bob = await make_user(h, "bob", host=B)
    dan = await make_user(h, "dan", host=B)
    alice = await make_user(h, "alice", host=A)
    space = await _room(h, bob, preset="public_chat")
    # An allowed room b.test is not in: it cannot tell whether alice is in it.
    elsewhere = await _room(
        h, bob, preset="private_chat", initial_state=[_restricted("restricted", "!far:c.test")]
    )
    status, body = await _join(h, alice, elsewhere)
    assert (status, body["errcode"]) == (400, "M_UNABLE_TO_AUTHORISE_JOIN")

    # No member of b.test left in the room may invite.
    powers = {"users": {bob.user_id: 100, dan.user_id: 50}, "invite": 100}
    weak = await _room(
        h,
        bob,
        preset="private_chat",
        initial_state=[_restricted("restricted", space)],
        power_level_content_override=powers,
        invite=[dan.user_id],
    )
    assert (await client(h, B, "POST", f"/join/{weak}", dan, {})).status == 200
    assert (await client(h, B, "POST", f"/rooms/{weak}/leave", bob, {})).status == 200
    assert (await _join(h, alice, space))[0] == 200
    status, body = await _join(h, alice, weak)
    assert (status, body["errcode"]) == (400, "M_UNABLE_TO_GRANT_JOIN")


async def test_send_join_checks_the_authorising_user(h: Harness) -> None:
    bob = await make_user(h, "bob", host=B)
    alice = await make_user(h, "alice", host=A)
    space, club = await _space_and_club(h, bob)
    assert (await _join(h, alice, space))[0] == 200
    made = await signed_request(
        h, A, B, "GET", f"{V1}/make_join/{club}/{alice.user_id}?ver=10&ver=11"
    )
    assert made.status == 200, made.json
    assert made.json["event"]["content"] == {
        "membership": "join",
        "join_authorised_via_users_server": bob.user_id,
    }
    # Built as a joining server would, then tampered with.
    builder = h.servers[A].federation_joins.membership_events
    version = get_room_version(made.json["room_version"])
    foreign = {"membership": "join", "join_authorised_via_users_server": "@eve:a.test"}
    event = builder.build(version, alice.user_id, club, made.json["event"], foreign)
    resp = await signed_request(
        h,
        A,
        B,
        "PUT",
        f"{V2}/send_join/{club}/{event.event_id}",
        content=event.get_pdu_json(include_unsigned=False),
    )
    assert (resp.status, resp.json["errcode"]) == (400, "M_INVALID_PARAM")
    # Alice left the allowed room since make_join: b.test no longer vouches.
    content = made.json["event"]["content"]
    event = builder.build(version, alice.user_id, club, made.json["event"], content)
    assert (await client(h, A, "POST", f"/rooms/{space}/leave", alice, {})).status == 200
    await settle()
    resp = await signed_request(
        h,
        A,
        B,
        "PUT",
        f"{V2}/send_join/{club}/{event.event_id}",
        content=event.get_pdu_json(include_unsigned=False),
    )
    assert (resp.status, resp.json["errcode"]) == (403, "M_FORBIDDEN")
    members = await client(h, B, "GET", f"/rooms/{club}/joined_members", bob)
    assert set(members.json["joined"]) == {bob.user_id}


async def test_a_restricted_join_the_resident_did_not_sign_fails(
    h: Harness, transport: HarnessTransport
) -> None:
    bob = await make_user(h, "bob", host=B)
    alice = await make_user(h, "alice", host=A)
    space, club = await _space_and_club(h, bob)
    assert (await _join(h, alice, space))[0] == 200

    def unsign(destination: str, path: str, answer: Any) -> Any:
        if "/send_join/" not in path or "event" not in answer:
            return answer
        event = answer["event"]
        return {**answer, "event": {**event, "signatures": {A: event["signatures"][A]}}}

    transport.tamper = unsign
    status, body = await _join(h, alice, club)
    # Not the keyring's 401, which would tell alice's client its token is bad.
    assert (status, body["errcode"]) == (502, "M_UNKNOWN")
    assert await h.servers[A].rooms_store.get_membership(club, alice.user_id) is None
