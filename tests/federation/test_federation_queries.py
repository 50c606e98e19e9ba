"""Profiles, room aliases and public room lists across tenants: the client
API of one asks the federation API of the other, with signed requests."""

from __future__ import annotations

from typing import Any
from urllib.parse import quote

import pytest

from tests.conftest import advance
from tests.federation.conftest import StartServers
from tests.federation.inbound_support import client, signed_request
from tests.support.federation import HarnessTransport
from tests.support.harness import Harness
from tests.support.users import TestUser, make_user

A, B, C = "a.test", "b.test", "c.test"
QUERY = "/_matrix/federation/v1/query"
PUBLIC_ROOMS = "/_matrix/federation/v1/publicRooms"


@pytest.fixture
async def h(make_hs_config: Any, start_servers: StartServers) -> Harness:
    return await start_servers(
        make_hs_config(A, allow_public_rooms_over_federation=True),
        make_hs_config(B),
        make_hs_config(C, allow_profile_lookup_over_federation=False),
    )


def error(resp: Any) -> tuple[int, str]:
    return resp.status, resp.json.get("errcode")


async def set_name(h: Harness, host: str, user: TestUser, name: str) -> None:
    path = f"/profile/{quote(user.user_id)}/displayname"
    resp = await client(h, host, "PUT", path, user, {"displayname": name})
    assert resp.status == 200, resp.json


async def test_remote_profiles_both_ways(h: Harness, transport: HarnessTransport) -> None:
    alice = await make_user(h, "alice", host=A)
    bob = await make_user(h, "bob", host=B)
    await set_name(h, A, alice, "Alice")
    await set_name(h, B, bob, "Bob")
    resp = await client(h, B, "GET", f"/profile/{quote(alice.user_id)}", bob)
    assert (resp.status, resp.json) == (200, {"displayname": "Alice"})
    resp = await client(h, A, "GET", f"/profile/{quote(bob.user_id)}/displayname", alice)
    assert (resp.status, resp.json) == (200, {"displayname": "Bob"})
    resp = await client(h, A, "GET", f"/profile/{quote(bob.user_id)}/avatar_url", alice)
    assert error(resp) == (404, "M_NOT_FOUND")


async def test_remote_profiles_are_cached_briefly(h: Harness, transport: HarnessTransport) -> None:
    alice = await make_user(h, "alice", host=A)
    bob = await make_user(h, "bob", host=B)
    await set_name(h, A, alice, "Alice")
    path = f"/profile/{quote(alice.user_id)}"
    assert (await client(h, B, "GET", path, bob)).json == {"displayname": "Alice"}
    await set_name(h, A, alice, "Alicia")
    assert (await client(h, B, "GET", path, bob)).json == {"displayname": "Alice"}
    assert transport.count("GET", A, f"{QUERY}/profile") == 1
    await advance(61)
    assert (await client(h, B, "GET", path, bob)).json == {"displayname": "Alicia"}


async def test_remote_profile_errors(h: Harness, transport: HarnessTransport) -> None:
    bob = await make_user(h, "bob", host=B)
    await make_user(h, "carol", host=C)
    resp = await client(h, B, "GET", f"/profile/{quote('@nobody:a.test')}", bob)
    assert error(resp) == (404, "M_NOT_FOUND")
    # c.test does not share profiles over federation.
    resp = await client(h, B, "GET", f"/profile/{quote('@carol:c.test')}", bob)
    assert error(resp) == (403, "M_FORBIDDEN")
    transport.down.add(A)
    resp = await client(h, B, "GET", f"/profile/{quote('@alice:a.test')}", bob)
    assert error(resp) == (502, "M_UNKNOWN")


async def test_query_profile_serves_only_our_users(h: Harness) -> None:
    alice = await make_user(h, "alice", host=A)
    await set_name(h, A, alice, "Alice")

    async def query(args: str) -> Any:
        return await signed_request(h, B, A, "GET", f"{QUERY}/profile?{args}")

    resp = await query(f"user_id={quote(alice.user_id)}&field=displayname")
    assert (resp.status, resp.json) == (200, {"displayname": "Alice"})
    resp = await query(f"user_id={quote(alice.user_id)}&field=avatar_url")
    assert (resp.status, resp.json) == (200, {})
    assert error(await query(f"user_id={quote(alice.user_id)}&field=x")) == (404, "M_NOT_FOUND")
    assert error(await query(f"user_id={quote('@bob:b.test')}")) == (400, "M_INVALID_PARAM")
    assert error(await query(f"user_id={quote('@ghost:a.test')}")) == (404, "M_NOT_FOUND")
    assert error(await query("user_id=nonsense")) == (400, "M_INVALID_PARAM")
    assert error(await query("field=displayname")) == (400, "M_MISSING_PARAM")
    resp = await h.request("GET", f"{QUERY}/profile?user_id={quote(alice.user_id)}", host=A)
    assert error(resp) == (401, "M_UNAUTHORIZED")


async def test_aliases_resolve_across_tenants(h: Harness, transport: HarnessTransport) -> None:
    alice = await make_user(h, "alice", host=A)
    bob = await make_user(h, "bob", host=B)
    resp = await client(h, A, "POST", "/createRoom", alice, {"room_alias_name": "hall"})
    room_id = resp.json["room_id"]
    resp = await client(h, B, "GET", f"/directory/room/{quote('#hall:a.test')}", bob)
    assert (resp.status, resp.json) == (200, {"room_id": room_id, "servers": [A]})
    resp = await client(h, B, "GET", f"/directory/room/{quote('#nope:a.test')}", bob)
    assert error(resp) == (404, "M_NOT_FOUND")
    transport.down.add(A)
    resp = await client(h, B, "GET", f"/directory/room/{quote('#hall:a.test')}", bob)
    assert error(resp) == (502, "M_UNKNOWN")


async def test_query_directory_serves_only_our_aliases(h: Harness) -> None:
    alice = await make_user(h, "alice", host=A)
    await client(h, A, "POST", "/createRoom", alice, {"room_alias_name": "hall"})

    async def query(alias: str) -> Any:
        return await signed_request(h, B, A, "GET", f"{QUERY}/directory?room_alias={quote(alias)}")

    resp = await query("#hall:a.test")
    assert resp.status == 200 and resp.json["servers"] == [A]
    assert error(await query("#hall:b.test")) == (400, "M_INVALID_PARAM")
    assert error(await query("#gone:a.test")) == (404, "M_NOT_FOUND")
    resp = await signed_request(h, B, A, "GET", f"{QUERY}/directory")
    assert error(resp) == (400, "M_MISSING_PARAM")


async def publish(h: Harness, host: str, owner: TestUser, name: str) -> str:
    body = {"visibility": "public", "name": name, "preset": "public_chat"}
    resp = await client(h, host, "POST", "/createRoom", owner, body)
    assert resp.status == 200, resp.json
    room_id: str = resp.json["room_id"]
    return room_id


async def test_public_rooms_across_tenants(h: Harness, transport: HarnessTransport) -> None:
    alice = await make_user(h, "alice", host=A)
    bob = await make_user(h, "bob", host=B)
    garden = await publish(h, A, alice, "Garden")
    await publish(h, A, alice, "Cellar")
    resp = await client(h, B, "GET", f"/publicRooms?server={A}&limit=1", bob)
    assert resp.status == 200, resp.json
    assert len(resp.json["chunk"]) == 1 and "next_batch" in resp.json
    assert resp.json["total_room_count_estimate"] == 2
    search = {"filter": {"generic_search_term": "garden"}}
    resp = await client(h, B, "POST", f"/publicRooms?server={A}", bob, search)
    assert [r["room_id"] for r in resp.json["chunk"]] == [garden]
    assert transport.count("POST", A, PUBLIC_ROOMS) == 1
    # Listing another server's rooms is never anonymous.
    resp = await h.request("GET", f"/_matrix/client/v3/publicRooms?server={A}", host=B)
    assert error(resp) == (401, "M_MISSING_TOKEN")
    resp = await client(h, B, "GET", "/publicRooms?server=not%20a%20server", bob)
    assert error(resp) == (400, "M_INVALID_PARAM")


async def test_public_rooms_over_federation_can_be_off(
    h: Harness, transport: HarnessTransport
) -> None:
    bob = await make_user(h, "bob", host=B)
    alice = await make_user(h, "alice", host=A)
    await publish(h, B, bob, "Kitchen")
    resp = await client(h, A, "GET", f"/publicRooms?server={B}", alice)
    assert error(resp) == (403, "M_FORBIDDEN")
    resp = await signed_request(h, A, B, "GET", PUBLIC_ROOMS)
    assert error(resp) == (403, "M_FORBIDDEN")
    resp = await signed_request(h, A, B, "POST", PUBLIC_ROOMS, content={})
    assert error(resp) == (403, "M_FORBIDDEN")
    transport.down.add(B)
    resp = await client(h, A, "GET", f"/publicRooms?server={B}", alice)
    assert error(resp) == (502, "M_UNKNOWN")


async def test_federation_public_rooms_validates_its_input(h: Harness) -> None:
    resp = await signed_request(h, B, A, "GET", f"{PUBLIC_ROOMS}?limit=x")
    assert error(resp) == (400, "M_INVALID_PARAM")
    resp = await signed_request(h, B, A, "POST", PUBLIC_ROOMS, content={"limit": "x"})
    assert error(resp) == (400, "M_INVALID_PARAM")
    resp = await signed_request(h, B, A, "POST", PUBLIC_ROOMS, content={"filter": "x"})
    assert error(resp) == (400, "M_INVALID_PARAM")
    resp = await signed_request(h, B, A, "GET", f"{PUBLIC_ROOMS}?limit=0")
    assert (resp.status, resp.json["chunk"]) == (200, [])
