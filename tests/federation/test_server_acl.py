"""`m.room.server_acl` between tenants of one harness: once a room's ACL
denies a server, its PDUs there are refused, its typing and receipts there
ignored, and its room-scoped requests answered 403, while an allowed server
goes on as before."""

from __future__ import annotations

from typing import Any
from urllib.parse import quote

import pytest

from tests.conftest import settle
from tests.federation.conftest import StartServers
from tests.federation.inbound_support import client, ephemeral, send_txn, signed_request, sync, txn
from tests.support.federation import HarnessTransport, RemoteError
from tests.support.harness import Harness
from tests.support.users import TestUser, make_user

A, B, C = "acl-a.test", "acl-b.test", "acl-c.test"
V1 = "/_matrix/federation/v1"


@pytest.fixture
async def h(
    make_hs_config: Any, start_servers: StartServers, transport: HarnessTransport
) -> Harness:
    h = await start_servers(make_hs_config(A), make_hs_config(B), make_hs_config(C))
    for name in (A, B, C):
        hs = h.servers[name]
        hs.federation_sender.attach_transport(transport.signed_by(name, hs.signing_key))
    return h


async def _say(h: Harness, host: str, user: TestUser, room: str, txn_id: str, text: str) -> str:
    body = {"msgtype": "m.text", "body": text}
    resp = await client(h, host, "PUT", f"/rooms/{room}/send/m.room.message/{txn_id}", user, body)
    assert resp.status == 200, resp.json
    event_id: str = resp.json["event_id"]
    return event_id


async def _messages(h: Harness, host: str, user: TestUser, room: str) -> list[str]:
    resp = await client(h, host, "GET", f"/rooms/{room}/messages?dir=b&limit=50", user)
    assert resp.status == 200, resp.json
    return [e["content"]["body"] for e in resp.json["chunk"] if e["type"] == "m.room.message"]


async def _send_when_idle(
    transport: HarnessTransport, h: Harness, origin: str, body: Any
) -> dict[str, Any]:
    """A transaction to B by hand, once `origin`'s own sender (whose retries
    run on virtual time) has none in flight there."""
    for attempt in range(10):
        try:
            return await send_txn(transport, h, origin, B, f"by-hand-{attempt}", body)
        except RemoteError as e:
            if e.status != 429:
                raise
            await settle()
    raise AssertionError("B stayed busy with the origin's transactions")


async def _room_with_remotes(h: Harness) -> tuple[str, TestUser, TestUser, TestUser]:
    bob = await make_user(h, "bob", host=B)
    alice = await make_user(h, "alice", host=A)
    carol = await make_user(h, "carol", host=C)
    resp = await client(
        h, B, "POST", "/createRoom", bob, {"preset": "public_chat", "room_alias_name": "aclroom"}
    )
    room = resp.json["room_id"]
    for host, user in ((A, alice), (C, carol)):
        joined = await client(h, host, "POST", f"/join/{quote('#aclroom:' + B)}", user, {})
        assert joined.status == 200, joined.json
    await settle()
    return room, bob, alice, carol


async def _room_reads(h: Harness, origin: str, room: str, event_id: str, user: str) -> list[int]:
    """Statuses of every room-scoped read and join route asked by `origin`."""
    gets = [
        f"{V1}/state_ids/{room}?event_id={quote(event_id)}",
        f"{V1}/state/{room}?event_id={quote(event_id)}",
        f"{V1}/event_auth/{room}/{quote(event_id)}",
        f"{V1}/backfill/{room}?v={quote(event_id)}&limit=5",
        f"{V1}/event/{quote(event_id)}",
        f"{V1}/make_join/{room}/{quote(user)}?ver=10",
    ]
    statuses = []
    for path in gets:
        resp = await signed_request(h, origin, B, "GET", path)
        statuses.append(resp.status)
        if resp.status == 403:
            assert resp.json["errcode"] == "M_FORBIDDEN", path
    body = {"earliest_events": [], "latest_events": [event_id], "limit": 5}
    missing = await signed_request(
        h, origin, B, "POST", f"{V1}/get_missing_events/{room}", content=body
    )
    statuses.append(missing.status)
    return statuses


async def test_denied_server_is_refused_everywhere(h: Harness, transport: HarnessTransport) -> None:
    room, bob, alice, carol = await _room_with_remotes(h)
    probe = await _say(h, B, bob, room, "b0", "before the acl")
    await settle()
    assert all(s != 403 for s in await _room_reads(h, A, room, probe, alice.user_id))

    acl = {"allow": ["*"], "deny": ["ACL-A.test"], "allow_ip_literals": False}
    resp = await client(h, B, "PUT", f"/rooms/{room}/state/m.room.server_acl/", bob, acl)
    assert resp.status == 200, resp.json
    await settle()

    # A's messages no longer reach B; C's do.
    denied = await _say(h, A, alice, room, "a1", "from a denied server")
    await _say(h, C, carol, room, "c1", "from an allowed server")
    await settle()
    assert await _messages(h, B, bob, room) == [
        "from an allowed server",
        "before the acl",
    ]
    # Sent again by hand: the per-PDU answer names the ACL.
    pdu = await h.servers[A].events_store.get_event(denied)
    assert pdu is not None
    answer = await _send_when_idle(
        transport, h, A, txn(A, pdus=[pdu.event.get_pdu_json(include_unsigned=False)])
    )
    assert answer["pdus"] == {denied: {"error": "Server is banned from room"}}

    # Room-scoped reads and joins: 403 M_FORBIDDEN for A, not for C.
    assert set(await _room_reads(h, A, room, probe, alice.user_id)) == {403}
    assert 403 not in await _room_reads(h, C, room, probe, carol.user_id)

    # A's typing and receipts in the room are ignored; C's count.
    since = (await sync(h, B, bob))["next_batch"]
    edus = [
        {
            "edu_type": "m.typing",
            "content": {"room_id": room, "user_id": alice.user_id, "typing": True},
        },
        {
            "edu_type": "m.receipt",
            "content": {
                room: {"m.read": {alice.user_id: {"event_ids": [probe], "data": {"ts": 1}}}}
            },
        },
    ]
    await _send_when_idle(transport, h, A, txn(A, edus=edus))
    carol_typing = {"room_id": room, "user_id": carol.user_id, "typing": True}
    await _send_when_idle(
        transport, h, C, txn(C, edus=[{"edu_type": "m.typing", "content": carol_typing}])
    )
    body = await sync(h, B, bob, since)
    assert [e["content"]["user_ids"] for e in ephemeral(body, room, "m.typing")] == [
        [carol.user_id]
    ]
    receipts = ephemeral(body, room, "m.receipt")
    assert all(alice.user_id not in str(r["content"]) for r in receipts)


async def test_acl_without_allow_denies_everyone_and_lifting_it_restores(
    h: Harness,
) -> None:
    room, bob, alice, carol = await _room_with_remotes(h)
    probe = await _say(h, B, bob, room, "b0", "probe")
    resp = await client(h, B, "PUT", f"/rooms/{room}/state/m.room.server_acl/", bob, {"deny": []})
    assert resp.status == 200, resp.json
    for origin, user in ((A, alice), (C, carol)):
        assert set(await _room_reads(h, origin, room, probe, user.user_id)) == {403}
    # A new ACL event is compiled afresh: nobody is denied any more.
    resp = await client(
        h, B, "PUT", f"/rooms/{room}/state/m.room.server_acl/", bob, {"allow": ["acl-*.test"]}
    )
    assert resp.status == 200, resp.json
    assert 403 not in await _room_reads(h, A, room, probe, alice.user_id)
