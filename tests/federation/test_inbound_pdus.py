"""Inbound PDUs over `/send`: a remote server's signed events are checked
and join the room's DAG; bad ones are refused and never served (both
engines, every request X-Matrix signed and every key fetched for real)."""

from __future__ import annotations

from typing import Any

import pytest

from hamlet.core.events import Event
from tests.federation.conftest import StartServers
from tests.federation.inbound_support import SEND, client, send_txn, signed_request, sync, txn
from tests.rooms.remote_support import RemoteServer
from tests.support.federation import HarnessTransport
from tests.support.harness import Harness
from tests.support.users import TestUser, make_user

A, B = "a.test", "b.test"
ALICE = "@alice:a.test"


@pytest.fixture
async def h(make_hs_config: Any, start_servers: StartServers) -> Harness:
    return await start_servers(make_hs_config(A), make_hs_config(B))


async def _room_on_b(h: Harness) -> tuple[TestUser, str, RemoteServer]:
    bob = await make_user(h, "bob", host=B)
    resp = await client(h, B, "POST", "/createRoom", bob, {"preset": "public_chat"})
    assert resp.status == 200, resp.json
    # Events A's server signs with its real key, built on B's room as A would.
    return bob, resp.json["room_id"], RemoteServer(server_name=A, key=h.servers[A].signing_key)


async def _send(h: Harness, transport: HarnessTransport, txn_id: str, *events: Any) -> Any:
    pdus = [e.get_pdu_json(include_unsigned=False) if isinstance(e, Event) else e for e in events]
    answer = await send_txn(transport, h, A, B, txn_id, txn(A, pdus=pdus))
    return answer["pdus"]


async def _alice_joins(
    h: Harness, transport: HarnessTransport, room: str, remote: RemoteServer
) -> Event:
    """Alice of A joins B's public room by a PDU A sends."""
    join = await remote.make(
        h.servers[B], room, ALICE, "m.room.member", {"membership": "join"}, state_key=ALICE
    )
    assert await _send(h, transport, "t1", join) == {join.event_id: {}}
    return join


def _timeline(body: Any, room_id: str) -> list[Any]:
    return body["rooms"]["join"][room_id]["timeline"]["events"]


async def test_a_remote_join_and_message_reach_local_sync(
    h: Harness, transport: HarnessTransport
) -> None:
    bob, room, remote = await _room_on_b(h)
    hs_b = h.servers[B]
    join = await _alice_joins(h, transport, room, remote)
    message = await remote.make(
        hs_b, room, ALICE, "m.room.message", {"msgtype": "m.text", "body": "hello from a"}
    )
    assert await _send(h, transport, "t2", message) == {message.event_id: {}}
    events = _timeline(await sync(h, B, bob), room)
    assert [e["event_id"] for e in events][-2:] == [join.event_id, message.event_id]
    assert events[-1]["content"]["body"] == "hello from a"
    assert await hs_b.rooms_store.get_joined_hosts(room) == {A, B}
    # Bob's reply points at alice's message: the DAG took it as the head.
    resp = await client(
        h,
        B,
        "PUT",
        f"/rooms/{room}/send/m.room.message/r1",
        bob,
        {"msgtype": "m.text", "body": "hi"},
    )
    reply = await hs_b.events_store.get_event(resp.json["event_id"])
    assert reply is not None and reply.event.prev_events == [message.event_id]


async def test_bad_pdus_are_refused_and_never_served(
    h: Harness, transport: HarnessTransport
) -> None:
    bob, room, remote = await _room_on_b(h)
    hs_b = h.servers[B]
    await _alice_joins(h, transport, room, remote)

    # A signature that does not verify.
    forged = await remote.make(hs_b, room, ALICE, "m.room.message", {"body": "x"})
    pdu = forged.get_pdu_json(include_unsigned=False)
    pdu["signatures"] = {A: {remote.key.key_id: "A" * 86}}
    # Someone else's user, signed only by A.
    impostor = await remote.make(hs_b, room, "@mallory:b.test", "m.room.message", {"body": "y"})
    # Changing state it has no power for: rejected by the auth rules.
    coup = await remote.make(
        hs_b, room, ALICE, "m.room.power_levels", {"users": {ALICE: 100}}, state_key=""
    )
    # A prev_event B has never seen.
    orphan = await remote.make(
        hs_b, room, ALICE, "m.room.message", {"body": "z"}, prev_events=["$" + "x" * 43], depth=10
    )
    answer = await _send(h, transport, "t2", pdu, impostor, coup, orphan, "junk", {"room_id": 5})
    assert set(answer) == {forged.event_id, impostor.event_id, coup.event_id, orphan.event_id}
    assert all("error" in result for result in answer.values()), answer
    assert "Missing events" in answer[orphan.event_id]["error"]
    for event_id in answer:
        resp = await client(h, B, "GET", f"/rooms/{room}/event/{event_id}", bob)
        assert resp.status == 404, event_id
    power = await client(h, B, "GET", f"/rooms/{room}/state/m.room.power_levels", bob)
    assert ALICE not in power.json["users"]


async def test_content_that_fails_its_hash_is_kept_redacted(
    h: Harness, transport: HarnessTransport
) -> None:
    bob, room, remote = await _room_on_b(h)
    hs_b = h.servers[B]
    await _alice_joins(h, transport, room, remote)
    message = await remote.make(hs_b, room, ALICE, "m.room.message", {"body": "original"})
    pdu = message.get_pdu_json(include_unsigned=False)
    pdu["content"] = {"body": "tampered in transit"}
    assert await _send(h, transport, "t2", pdu) == {message.event_id: {}}
    served = _timeline(await sync(h, B, bob), room)[-1]
    assert served["event_id"] == message.event_id
    assert served["content"] == {}


async def test_hostile_transactions_leave_the_room_working(
    h: Harness, transport: HarnessTransport
) -> None:
    """No 500, nothing stored, and a valid PDU after them is still accepted."""
    bob, room, remote = await _room_on_b(h)
    hs_b = h.servers[B]
    await _alice_joins(h, transport, room, remote)
    message = await remote.make(hs_b, room, ALICE, "m.room.message", {"body": "one of many"})
    flood = [message.get_pdu_json(include_unsigned=False)] * 10_000
    resp = await signed_request(h, A, B, "PUT", f"{SEND}/flood", content=txn(A, pdus=flood))
    assert (resp.status, resp.json["errcode"]) == (400, "M_BAD_JSON")
    assert await hs_b.events_store.get_event(message.event_id) is None
    # Garbage bodies, and PDUs that are not objects or not events.
    for body in (b"\xff\xfe", b'{"origin": "a.test", "pdus": [', b"[]" * 1000, b"null"):
        resp = await signed_request(h, A, B, "PUT", f"{SEND}/g{len(body)}", body=body)
        assert resp.status == 400 and resp.json["errcode"] in ("M_NOT_JSON", "M_BAD_JSON")
    shapeless: list[Any] = [
        None,
        7,
        [],
        "x" * 1000,
        {"room_id": room},
        {"room_id": room, "depth": "x"},
    ]
    resp = await signed_request(h, A, B, "PUT", f"{SEND}/junk", content=txn(A, pdus=shapeless))
    assert resp.status == 200, resp.json
    assert all("error" in result for result in resp.json["pdus"].values())
    # A PDU of a server that is not the transaction's origin.
    other = RemoteServer(server_name="c.test")
    stray = await other.make(hs_b, room, "@carol:c.test", "m.room.message", {"body": "stray"})
    assert "error" in (await _send(h, transport, "t3", stray))[stray.event_id]
    # After all that the room takes A's next event.
    after = await remote.make(hs_b, room, ALICE, "m.room.message", {"body": "after"})
    assert await _send(h, transport, "t4", after) == {after.event_id: {}}
    assert _timeline(await sync(h, B, bob), room)[-1]["event_id"] == after.event_id
