"""A user of one tenant joins another tenant's room over federation
(make_join / send_join v2, every request signed and checked), and messages
then flow both ways through the senders and /send."""

from __future__ import annotations

from typing import Any
from urllib.parse import quote

import pytest

from tests.conftest import advance, settle
from tests.federation.conftest import StartServers
from tests.federation.inbound_support import client, sync
from tests.federation.two_servers import V1, A, B, h
from tests.support.federation import HarnessTransport, RemoteError
from tests.support.harness import Harness
from tests.support.users import TestUser, make_user

__all__ = ["h"]


async def _say(h: Harness, host: str, user: TestUser, room: str, txn_id: str, text: str) -> None:
    resp = await client(
        h,
        host,
        "PUT",
        f"/rooms/{room}/send/m.room.message/{txn_id}",
        user,
        {"msgtype": "m.text", "body": text},
    )
    assert resp.status == 200, resp.json


def _bodies(body: Any, room: str) -> list[str]:
    room_body = body["rooms"]["join"].get(room, {})
    events = room_body.get("timeline", {}).get("events", [])
    return [e["content"]["body"] for e in events if e["type"] == "m.room.message"]


async def test_join_by_alias_then_messages_both_ways(h: Harness) -> None:
    bob = await make_user(h, "bob", host=B)
    alice = await make_user(h, "alice", host=A)
    resp = await client(
        h, B, "POST", "/createRoom", bob, {"preset": "public_chat", "room_alias_name": "hall"}
    )
    room = resp.json["room_id"]
    await _say(h, B, bob, room, "b0", "before alice")

    joined = await client(h, A, "POST", f"/join/{quote('#hall:b.test')}", alice, {})
    assert joined.status == 200, joined.json
    assert joined.json["room_id"] == room
    # Both servers see both members.
    for host, user in ((A, alice), (B, bob)):
        members = await client(h, host, "GET", f"/rooms/{room}/joined_members", user)
        assert set(members.json["joined"]) == {alice.user_id, bob.user_id}, host

    start_a = (await sync(h, A, alice))["next_batch"]
    start_b = (await sync(h, B, bob))["next_batch"]
    await _say(h, B, bob, room, "b1", "hello alice")
    await settle()
    assert _bodies(await sync(h, A, alice, start_a), room) == ["hello alice"]
    await _say(h, A, alice, room, "a1", "hi bob")
    await settle()
    assert _bodies(await sync(h, B, bob, start_b), room) == ["hello alice", "hi bob"]


async def test_joins_that_must_fail(h: Harness, transport: HarnessTransport) -> None:
    bob = await make_user(h, "bob", host=B)
    alice = await make_user(h, "alice", host=A)
    resp = await client(h, B, "POST", "/createRoom", bob, {"preset": "private_chat"})
    private = resp.json["room_id"]
    # An invite-only room: make_join refuses, so the client's join fails.
    refused = await client(h, A, "POST", f"/join/{private}", alice, {})
    assert refused.status >= 400 and refused.status != 500
    members = await client(h, B, "GET", f"/rooms/{private}/joined_members", bob)
    assert set(members.json["joined"]) == {bob.user_id}
    # make_join for another server's user, and for a room version A lacks.
    out = transport.signed_by(A, h.servers[A].signing_key)
    with pytest.raises(RemoteError) as wrong_user:
        await out.get_json(B, f"{V1}/make_join/{private}/{bob.user_id}", {"ver": ["10"]})
    assert wrong_user.value.status == 403
    resp = await client(h, B, "POST", "/createRoom", bob, {"preset": "public_chat"})
    public = resp.json["room_id"]
    with pytest.raises(RemoteError) as old:
        await out.get_json(B, f"{V1}/make_join/{public}/{alice.user_id}", {"ver": ["1"]})
    assert old.value.status == 400
    # An unknown room on a server that does not exist.
    nowhere = await client(h, A, "POST", f"/join/{quote('!nothing:nowhere.test')}", alice, {})
    assert nowhere.status >= 400 and nowhere.status != 500
    # A v12 room ID names no server: without `via` there is nobody to ask.
    no_via = await client(h, A, "POST", f"/join/{quote('!' + 'x' * 43)}", alice, {})
    assert (no_via.status, no_via.json["errcode"]) == (404, "M_NOT_FOUND")
    malformed = await client(h, A, "POST", f"/join/{quote('!')}?via={B}", alice, {})
    assert (malformed.status, malformed.json["errcode"]) == (400, "M_INVALID_PARAM")


async def test_rc_joins_remote_limits_joins_over_federation(
    make_hs_config: Any, start_servers: StartServers, transport: HarnessTransport
) -> None:
    limit = {"rc_joins": {"remote": {"per_second": 0.1, "burst_count": 1}}}
    h = await start_servers(make_hs_config(A, **limit), make_hs_config(B))
    bob = await make_user(h, "bob", host=B)
    alice = await make_user(h, "alice", host=A)
    rooms = []
    for _ in range(2):
        resp = await client(h, B, "POST", "/createRoom", bob, {"preset": "public_chat"})
        rooms.append(resp.json["room_id"])
    joined = await client(h, A, "POST", f"/join/{rooms[0]}", alice, {})
    assert joined.status == 200, joined.json
    refused = await client(h, A, "POST", f"/join/{rooms[1]}", alice, {})
    assert (refused.status, refused.json["errcode"]) == (429, "M_LIMIT_EXCEEDED")
    assert 0 < refused.json["retry_after_ms"] <= 10_000
    # Nothing was asked of B for the refused join.
    assert transport.count("GET", B, f"{V1}/make_join/{rooms[1]}") == 0
    # Local joins have limits of their own.
    resp = await client(h, A, "POST", "/createRoom", alice, {"preset": "public_chat"})
    carol = await make_user(h, "carol", host=A)
    local = await client(h, A, "POST", f"/join/{resp.json['room_id']}", carol, {})
    assert local.status == 200, local.json
    await advance(10)
    joined = await client(h, A, "POST", f"/join/{rooms[1]}", alice, {})
    assert joined.status == 200, joined.json
