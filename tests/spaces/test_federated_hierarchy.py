"""Spaces across two tenants: the federation `/hierarchy` served, and used by
the client `/hierarchy` for child rooms this server is not in; the admin
hierarchy never asks another server."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest

from tests.conftest import advance
from tests.federation.inbound_support import signed_request
from tests.rooms.helpers import q
from tests.spaces.support import ADMIN_V1, LIMITS, V1_CLIENT, ok
from tests.support.federation import HarnessTransport, homeservers_fetching_with
from tests.support.harness import Harness, start_harness
from tests.support.users import TestUser, make_user

A, B = "spc-a.test", "spc-b.test"
V3 = "/_matrix/client/v3"
FED_HIERARCHY = "/_matrix/federation/v1/hierarchy"


@pytest.fixture
async def net() -> AsyncIterator[HarnessTransport]:
    transport = HarnessTransport()
    with homeservers_fetching_with(transport):
        yield transport


@pytest.fixture
async def h(make_hs_config: Any, net: HarnessTransport) -> AsyncIterator[Harness]:
    harness = await start_harness([make_hs_config(A, **LIMITS), make_hs_config(B, **LIMITS)])
    net.harness = harness
    yield harness
    await harness.close()


async def _room(h: Harness, host: str, user: TestUser, **body: Any) -> str:
    resp = await h.request("POST", f"{V3}/createRoom", json=body, token=user.token, host=host)
    room_id: str = ok(resp)["room_id"]
    return room_id


async def _space(h: Harness, host: str, user: TestUser, name: str, preset: str) -> str:
    return await _room(
        h, host, user, name=name, preset=preset, creation_content={"type": "m.space"}
    )


async def _child(h: Harness, host: str, user: TestUser, parent: str, child: str, via: str) -> None:
    path = f"{V3}/rooms/{q(parent)}/state/m.space.child/{q(child)}"
    ok(await h.request("PUT", path, json={"via": [via]}, token=user.token, host=host))


async def _hierarchy(
    h: Harness, host: str, user: TestUser, room: str, *, admin: bool = False
) -> list[dict[str, Any]]:
    base = ADMIN_V1 if admin else V1_CLIENT
    resp = await h.request("GET", f"{base}/rooms/{q(room)}/hierarchy", token=user.token, host=host)
    rooms: list[dict[str, Any]] = ok(resp)["rooms"]
    return rooms


async def _tree(h: Harness) -> dict[str, str]:
    """On A: a space of alice's. On B, its children: a public room, an
    invite-only room, and a public space with a public room of its own."""
    alice = await make_user(h, "alice", host=A)
    bob = await make_user(h, "bob", host=B)
    ids = {
        "space": await _space(h, A, alice, "Home", "public_chat"),
        "public": await _room(h, B, bob, name="Over there", topic="remote", preset="public_chat"),
        "private": await _room(h, B, bob, name="Secret", preset="private_chat"),
        "subspace": await _space(h, B, bob, "B's space", "public_chat"),
        "deep": await _room(h, B, bob, name="Deep", preset="public_chat"),
    }
    await _child(h, B, bob, ids["subspace"], ids["deep"], B)
    await _child(h, B, bob, ids["subspace"], ids["private"], B)
    for name in ("public", "private", "subspace"):
        await _child(h, A, alice, ids["space"], ids[name], B)
    return ids


async def test_client_hierarchy_includes_remote_children(h: Harness, net: HarnessTransport) -> None:
    ids = await _tree(h)
    alice = await make_user(h, "alice2", host=A)
    rooms = await _hierarchy(h, A, alice, ids["space"])
    by_id = {r["room_id"]: r for r in rooms}
    # The private room is nobody's to see here; the rest in walk order.
    assert [r["room_id"] for r in rooms] == [
        ids["space"],
        ids["public"],
        ids["subspace"],
        ids["deep"],
    ]
    remote = by_id[ids["public"]]
    assert remote["name"] == "Over there" and remote["topic"] == "remote"
    assert remote["num_joined_members"] == 1 and remote["join_rule"] == "public"
    assert remote["children_state"] == [] and "allowed_room_ids" not in remote
    sub = by_id[ids["subspace"]]
    assert sub["room_type"] == "m.space"
    assert {c["state_key"] for c in sub["children_state"]} == {ids["deep"], ids["private"]}

    # Each child of the space is asked for once (B answers 404 for the
    # private room); the deep room's summary came with the subspace's answer.
    asked = net.count("GET", B, FED_HIERARCHY)
    assert asked == 3
    # Cached briefly: a second walk asks nothing; after a minute it asks again.
    await _hierarchy(h, A, alice, ids["space"])
    assert net.count("GET", B, FED_HIERARCHY) == asked
    await advance(61)
    await _hierarchy(h, A, alice, ids["space"])
    assert net.count("GET", B, FED_HIERARCHY) == 2 * asked


async def test_unreachable_servers_leave_their_rooms_out(h: Harness, net: HarnessTransport) -> None:
    ids = await _tree(h)
    alice = await make_user(h, "carol", host=A)
    net.down.add(B)
    rooms = await _hierarchy(h, A, alice, ids["space"])
    assert [r["room_id"] for r in rooms] == [ids["space"]]


async def test_admin_hierarchy_never_asks_another_server(h: Harness, net: HarnessTransport) -> None:
    ids = await _tree(h)
    admin = await make_user(h, "root", admin=True, host=A)
    before = list(net.requests)
    rooms = await _hierarchy(h, A, admin, ids["space"], admin=True)
    assert [r["room_id"] for r in rooms] == [ids["space"]]
    assert net.requests == before


async def test_federation_hierarchy_answers_what_the_server_may_see(h: Harness) -> None:
    ids = await _tree(h)
    answer = await signed_request(h, A, B, "GET", f"{FED_HIERARCHY}/{q(ids['subspace'])}")
    body = ok(answer)
    assert body["room"]["room_id"] == ids["subspace"]
    assert body["room"]["room_type"] == "m.space"
    assert len(body["room"]["children_state"]) == 2
    assert [c["room_id"] for c in body["children"]] == [ids["deep"]]
    assert "children_state" not in body["children"][0]
    assert body["inaccessible_children"] == [ids["private"]]
    # A room A may not see is unknown to it; so is one B does not have.
    for room in (ids["private"], "!nowhere:spc-b.test"):
        resp = await signed_request(h, A, B, "GET", f"{FED_HIERARCHY}/{q(room)}")
        assert resp.status == 404 and resp.json["errcode"] == "M_NOT_FOUND"
    # suggested_only: no child is suggested.
    answer = await signed_request(
        h, A, B, "GET", f"{FED_HIERARCHY}/{q(ids['subspace'])}?suggested_only=true"
    )
    assert ok(answer)["room"]["children_state"] == [] and ok(answer)["children"] == []
    # Unsigned: refused.
    unsigned = await h.request("GET", f"{FED_HIERARCHY}/{q(ids['subspace'])}", host=B)
    assert unsigned.status == 401
