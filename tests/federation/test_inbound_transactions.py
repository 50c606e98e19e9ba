"""Inbound `/send` transactions between tenants of one harness: every request
is X-Matrix signed with the origin's real key and checked by the
destination, which fetches that key over the same harness transport."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from tests.conftest import advance, settle
from tests.federation.conftest import StartServers
from tests.federation.inbound_support import (
    SEND,
    HeldPdus,
    client,
    ephemeral,
    send_message,
    send_txn,
    shared_room,
    signed_request,
    sync,
    txn,
)
from tests.federation.outbox_support import join_remote
from tests.support.federation import HarnessTransport, RemoteError
from tests.support.harness import Harness
from tests.support.users import make_user

A, B, C = "a.test", "b.test", "c.test"
ALICE = "@alice:a.test"
CAROL = "@carol:c.test"


@pytest.fixture
async def h(make_hs_config: Any, start_servers: StartServers) -> Harness:
    return await start_servers(make_hs_config(A), make_hs_config(B), make_hs_config(C))


def typing(room_id: str, user_id: str, on: bool = True) -> dict[str, Any]:
    return {
        "edu_type": "m.typing",
        "content": {"room_id": room_id, "user_id": user_id, "typing": on},
    }


def receipt(room_id: str, user_id: str, event_id: str) -> dict[str, Any]:
    content = {room_id: {"m.read": {user_id: {"event_ids": [event_id], "data": {"ts": 1}}}}}
    return {"edu_type": "m.receipt", "content": content}


def presence(user_id: str, state: str = "online") -> dict[str, Any]:
    push = {"user_id": user_id, "presence": state, "last_active_ago": 5, "currently_active": True}
    return {"edu_type": "m.presence", "content": {"push": [push]}}


async def test_typing_from_a_remote_user_reaches_local_sync(
    h: Harness, transport: HarnessTransport
) -> None:
    bob = await make_user(h, "bob", host=B)
    room = await shared_room(h, B, bob, ALICE)
    first = await sync(h, B, bob)
    answer = await send_txn(transport, h, A, B, "t1", txn(A, edus=[typing(room, ALICE)]))
    assert answer == {"pdus": {}}
    body = await sync(h, B, bob, first["next_batch"])
    assert [e["content"]["user_ids"] for e in ephemeral(body, room, "m.typing")] == [[ALICE]]
    await send_txn(transport, h, A, B, "t2", txn(A, edus=[typing(room, ALICE, False)]))
    body = await sync(h, B, bob, body["next_batch"])
    assert [e["content"]["user_ids"] for e in ephemeral(body, room, "m.typing")] == [[]]


async def test_remote_typing_times_out_without_renewal(
    h: Harness, transport: HarnessTransport
) -> None:
    bob = await make_user(h, "bob", host=B)
    room = await shared_room(h, B, bob, ALICE)
    await send_txn(transport, h, A, B, "t1", txn(A, edus=[typing(room, ALICE)]))
    assert h.servers[B].typing.typing_users(room) == [ALICE]
    await advance(61)
    assert h.servers[B].typing.typing_users(room) == []


async def test_receipt_and_presence_from_a_remote_user_reach_local_sync(
    h: Harness, transport: HarnessTransport
) -> None:
    bob = await make_user(h, "bob", host=B)
    room = await shared_room(h, B, bob, ALICE)
    event_id = await send_message(h, B, bob, room)
    first = await sync(h, B, bob)
    edus = [receipt(room, ALICE, event_id), presence(ALICE)]
    await send_txn(transport, h, A, B, "t1", txn(A, edus=edus))
    body = await sync(h, B, bob, first["next_batch"])
    receipts = ephemeral(body, room, "m.receipt")
    assert receipts and receipts[0]["content"][event_id]["m.read"][ALICE]["ts"] > 0
    states = {e["sender"]: e["content"] for e in body["presence"]["events"]}
    assert states[ALICE]["presence"] == "online"
    assert states[ALICE]["currently_active"] is True


async def test_remote_presence_goes_offline_when_its_server_falls_silent(
    h: Harness, transport: HarnessTransport
) -> None:
    bob = await make_user(h, "bob", host=B)
    await shared_room(h, B, bob, ALICE)
    await send_txn(transport, h, A, B, "t1", txn(A, edus=[presence(ALICE)]))
    hs_b = h.servers[B]
    assert hs_b.presence.get_state(ALICE).state == "online"
    # Local timeouts (idle, not syncing) do not apply to a remote user...
    await advance(10 * 60)
    assert hs_b.presence.get_state(ALICE).state == "online"
    # ...but a server that says nothing for half an hour is not believed.
    await advance(25 * 60)
    assert hs_b.presence.get_state(ALICE).state == "offline"


async def test_a_server_speaks_only_for_its_own_users_in_their_rooms(
    h: Harness, transport: HarnessTransport
) -> None:
    bob = await make_user(h, "bob", host=B)
    room = await shared_room(h, B, bob, ALICE, CAROL)
    lonely = await shared_room(h, B, bob)
    hs_b = h.servers[B]
    event_id = await send_message(h, B, bob, room)
    first = await sync(h, B, bob)
    forged = [
        # a.test about c.test's user, who is in the room
        typing(room, CAROL),
        receipt(room, CAROL, event_id),
        presence(CAROL),
        # a.test's own user, in a room she is not in
        typing(lonely, ALICE),
        receipt(lonely, ALICE, event_id),
        # and garbage, skipped without spoiling the rest
        {"edu_type": "m.typing", "content": {"room_id": 5}},
        {"edu_type": "m.typing"},
        "not an edu",
        {"edu_type": "org.example.unknown", "content": {}},
    ]
    answer = await send_txn(transport, h, A, B, "t1", txn(A, edus=forged))
    assert answer == {"pdus": {}}
    body = await sync(h, B, bob, first["next_batch"])
    assert ephemeral(body, room, "m.typing") == []
    assert ephemeral(body, room, "m.receipt") == []
    assert ephemeral(body, lonely, "m.typing") == []
    assert all(e["sender"] != CAROL for e in body.get("presence", {}).get("events", []))
    assert hs_b.typing.typing_users(room) == []
    # c.test itself may speak for carol.
    await send_txn(transport, h, C, B, "t1", txn(C, edus=[typing(room, CAROL)]))
    assert hs_b.typing.typing_users(room) == [CAROL]


async def test_presence_of_users_sharing_no_room_is_dropped(
    h: Harness, transport: HarnessTransport
) -> None:
    await send_txn(transport, h, A, B, "t1", txn(A, edus=[presence(ALICE)]))
    assert h.servers[B].presence.get_state(ALICE).state == "offline"


async def test_an_answered_transaction_is_not_applied_again(
    h: Harness, transport: HarnessTransport
) -> None:
    bob = await make_user(h, "bob", host=B)
    room = await shared_room(h, B, bob, ALICE)
    hs_b = h.servers[B]
    await send_txn(transport, h, A, B, "t1", txn(A, edus=[typing(room, ALICE)]))
    await send_txn(transport, h, A, B, "t2", txn(A, edus=[typing(room, ALICE, False)]))
    # A retry of t1 (its answer was lost on the way back) is answered again, not replayed.
    assert await send_txn(transport, h, A, B, "t1", txn(A, edus=[typing(room, ALICE)])) == {
        "pdus": {}
    }
    assert hs_b.typing.typing_users(room) == []
    # Transaction IDs are per origin: c.test's t1 is its own.
    await join_remote(hs_b, room, CAROL)
    await send_txn(transport, h, C, B, "t1", txn(C, edus=[typing(room, CAROL)]))
    assert hs_b.typing.typing_users(room) == [CAROL]


async def test_an_unsigned_pdu_is_answered_with_an_error_and_not_stored(
    h: Harness, transport: HarnessTransport
) -> None:
    bob = await make_user(h, "bob", host=B)
    room = await shared_room(h, B, bob, ALICE)
    pdu = {
        "room_id": room,
        "sender": ALICE,
        "type": "m.room.message",
        "content": {"body": "hi"},
        "depth": 5,
        "prev_events": [],
        "auth_events": [],
        "origin_server_ts": 1,
        "hashes": {"sha256": "x"},
        "signatures": {},
    }
    unknown_room = dict(pdu, room_id="!nowhere:a.test")
    answer = await send_txn(transport, h, A, B, "t1", txn(A, pdus=[pdu, unknown_room, "junk"]))
    [(event_id, result)] = answer["pdus"].items()
    assert event_id.startswith("$")
    assert "error" in result
    # Nothing was stored.
    resp = await client(h, B, "GET", f"/rooms/{room}/event/{event_id}", bob)
    assert resp.status == 404


async def test_one_transaction_per_origin_at_a_time(
    h: Harness, transport: HarnessTransport
) -> None:
    held = HeldPdus()
    h.servers[B].federation_transactions.set_pdu_handler(held)
    pdu = {"event_id": "$e:a.test", "room_id": "!r:b.test"}
    first = asyncio.ensure_future(send_txn(transport, h, A, B, "t1", txn(A, pdus=[pdu])))
    await held.entered.wait()
    # Another transaction from the same origin meanwhile: 429.
    with pytest.raises(RemoteError) as refused:
        await send_txn(transport, h, A, B, "t2", txn(A))
    assert refused.value.status == 429
    # The same one again (the sender timed out and retried) waits for the first run.
    retry = asyncio.ensure_future(send_txn(transport, h, A, B, "t1", txn(A, pdus=[pdu])))
    # Another origin is not held up.
    assert await send_txn(transport, h, C, B, "t1", txn(C)) == {"pdus": {}}
    held.release.set()
    assert await first == await retry == {"pdus": {"$e:a.test": {}}}
    assert held.calls == 1
    await settle()
    assert await send_txn(transport, h, A, B, "t2", txn(A)) == {"pdus": {}}


async def test_bad_transactions_are_400s(h: Harness) -> None:
    async def put(content: Any = None, *, body: bytes | None = None, txn_id: str = "t1") -> Any:
        resp = await signed_request(h, A, B, "PUT", f"{SEND}/{txn_id}", content=content, body=body)
        return resp.status, resp.json.get("errcode")

    assert await put(body=b"{not json") == (400, "M_NOT_JSON")
    assert await put([1, 2]) == (400, "M_BAD_JSON")
    assert await put(txn(C)) == (400, "M_BAD_JSON")  # origin is not who signed
    assert await put({"origin_server_ts": 1, "pdus": []}) == (400, "M_BAD_JSON")
    assert await put(dict(txn(A), pdus={"a": 1})) == (400, "M_BAD_JSON")
    assert await put(dict(txn(A), edus="x")) == (400, "M_BAD_JSON")
    assert await put(dict(txn(A), origin_server_ts="now")) == (400, "M_BAD_JSON")
    assert await put(txn(A, pdus=[{}] * 51)) == (400, "M_BAD_JSON")
    assert await put(txn(A, edus=[{}] * 101)) == (400, "M_BAD_JSON")
    assert await put(txn(A), txn_id="x" * 256) == (400, "M_BAD_JSON")
    # At the limits it is fine.
    assert await put(txn(A, pdus=[{}] * 50, edus=[{}] * 100)) == (200, None)
    # Unsigned: 401.
    resp = await h.request("PUT", f"{SEND}/t9", json=txn(A), host=B)
    assert (resp.status, resp.json["errcode"]) == (401, "M_UNAUTHORIZED")
