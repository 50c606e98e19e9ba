"""Restricted rooms whose allow list names a space held by another server:
three tenants, the space on c.test and the restricted room on b.test.

A server vouches for a join only with what it holds of the allowed space:
b.test, once in the space over federation, lets its own members in; while
it is not, it answers other servers' users M_UNABLE_TO_AUTHORISE_JOIN and
their server asks the next resident, which can tell."""

from __future__ import annotations

from typing import Any
from urllib.parse import quote

import pytest

from tests.conftest import settle
from tests.federation.conftest import StartServers
from tests.federation.inbound_support import client, signed_request
from tests.federation.two_servers import V1, A, B, start_federating
from tests.support.federation import HarnessTransport
from tests.support.harness import Harness, Response
from tests.support.users import TestUser, make_user

C = "c.test"


@pytest.fixture
async def h(
    make_hs_config: Any, start_servers: StartServers, transport: HarnessTransport
) -> Harness:
    configs = (make_hs_config(A), make_hs_config(B), make_hs_config(C))
    return await start_federating(start_servers, transport, *configs)


async def _room(h: Harness, host: str, owner: TestUser, **body: Any) -> str:
    resp = await client(h, host, "POST", "/createRoom", owner, body)
    assert resp.status == 200, resp.json
    room: str = resp.json["room_id"]
    return room


async def _space_and_club(
    h: Harness, cat: TestUser, bob: TestUser, rule: str, **body: Any
) -> tuple[str, str]:
    """A space of c.test's, and a room of b.test's only its members may join."""
    space = await _room(h, C, cat, preset="public_chat", creation_content={"type": "m.space"})
    allow = [{"type": "m.room_membership", "room_id": space}]
    rules = {"type": "m.room.join_rules", "content": {"join_rule": rule, "allow": allow}}
    club = await _room(
        h, B, bob, preset="private_chat", room_version="10", initial_state=[rules], **body
    )
    return space, club


async def _join(h: Harness, host: str, user: TestUser, room: str, *via: str) -> tuple[int, Any]:
    query = "&".join(f"via={v}" for v in via)
    resp = await client(h, host, "POST", f"/join/{quote(room)}?{query}", user, {})
    await settle()
    return resp.status, resp.json


async def _joined(h: Harness, host: str, user: TestUser, room: str) -> set[str]:
    resp = await client(h, host, "GET", f"/rooms/{room}/joined_members", user)
    assert resp.status == 200, resp.json
    return set(resp.json["joined"])


@pytest.mark.parametrize("rule", ["restricted", "knock_restricted"])
async def test_joins_to_a_room_restricted_to_a_remote_space(
    h: Harness, transport: HarnessTransport, rule: str
) -> None:
    cat = await make_user(h, "cat", host=C)
    bob = await make_user(h, "bob", host=B)
    bea = await make_user(h, "bea", host=B)
    alice = await make_user(h, "alice", host=A)
    space, club = await _space_and_club(h, cat, bob, rule, invite=[cat.user_id])
    await settle()
    # c.test is in the club by invitation; b.test is not in the space.
    assert (await _join(h, C, cat, club, B))[0] == 200
    assert (await _join(h, A, alice, space, C))[0] == 200

    # b.test cannot tell whether alice is in the space: 400, not 403.
    status, body = await _join(h, A, alice, club, B)
    assert (status, body["errcode"]) == (400, "M_UNABLE_TO_AUTHORISE_JOIN"), body

    # Asked through both, a.test goes on to c.test, which holds the space.
    transport.requests.clear()
    status, body = await _join(h, A, alice, club, B, C)
    assert status == 200, body
    asked = [d for m, d, p in transport.requests if "/make_join/" in p]
    assert asked == [B, C]
    member = await client(h, A, "GET", f"/rooms/{club}/state/m.room.member/{alice.user_id}", alice)
    assert member.json["join_authorised_via_users_server"] == cat.user_id
    everyone = {alice.user_id, bob.user_id, cat.user_id}
    for host, user in ((A, alice), (B, bob), (C, cat)):
        assert await _joined(h, host, user, club) == everyone, host

    # b.test's own user outside the space: b.test knows it is no member,
    # and lists the restricted room only to members of the space.
    status, body = await _join(h, B, bea, club)
    assert (status, body["errcode"]) == (403, "M_FORBIDDEN"), body
    if rule == "restricted":
        assert (await _hierarchy(h, bea, club)).status == 403
    # In the space over federation, b.test's view of it lets her in.
    assert (await _join(h, B, bea, space, C))[0] == 200
    resp = await _hierarchy(h, bea, club)
    assert resp.status == 200, resp.json
    assert [(r["room_id"], r["join_rule"]) for r in resp.json["rooms"]] == [(club, rule)]
    status, body = await _join(h, B, bea, club)
    assert status == 200, body
    member = await client(h, B, "GET", f"/rooms/{club}/state/m.room.member/{bea.user_id}", bea)
    assert member.json["join_authorised_via_users_server"] == bob.user_id
    for host, user in ((A, alice), (B, bob), (C, cat)):
        assert await _joined(h, host, user, club) == {*everyone, bea.user_id}, host

    # Other servers learn which room grants access, to filter for their users.
    resp = await signed_request(h, A, B, "GET", f"{V1}/hierarchy/{quote(club)}")
    assert resp.status == 200, resp.json
    assert resp.json["room"]["allowed_room_ids"] == [space]


async def _hierarchy(h: Harness, user: TestUser, room: str) -> Response:
    path = f"/_matrix/client/v1/rooms/{quote(room)}/hierarchy"
    return await h.request("GET", path, token=user.token, host=B)


async def test_a_space_we_left_no_longer_vouches(h: Harness) -> None:
    """Once none of our users is in the allowed space, what we hold of its
    members is stale: we send the joining server elsewhere."""
    cat = await make_user(h, "cat", host=C)
    bob = await make_user(h, "bob", host=B)
    bea = await make_user(h, "bea", host=B)
    dan = await make_user(h, "dan", host=A)
    space, club = await _space_and_club(h, cat, bob, "restricted")
    assert (await _join(h, B, bea, space, C))[0] == 200
    assert (await _join(h, A, dan, space, C))[0] == 200
    assert dan.user_id in await _joined(h, B, bea, space)
    assert (await client(h, B, "POST", f"/rooms/{space}/leave", bea, {})).status == 200
    await settle()
    # b.test does not hear of this: it is no longer in the space.
    assert (await client(h, A, "POST", f"/rooms/{space}/leave", dan, {})).status == 200
    await settle()
    stale = await h.servers[B].rooms_store.get_membership(space, dan.user_id)
    assert stale is not None and stale.membership == "join"

    status, body = await _join(h, A, dan, club, B)
    assert (status, body["errcode"]) == (400, "M_UNABLE_TO_AUTHORISE_JOIN"), body
    assert await _joined(h, B, bob, club) == {bob.user_id}
