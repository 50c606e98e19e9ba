"""Typing, receipts and read markers over HTTP (the harness runs on both engines)."""

from __future__ import annotations

import asyncio
from urllib.parse import quote

from hamlet.api.client.sync_json import receipts_content
from hamlet.handlers.user_streams.account_data import AccountDataEntry
from tests.conftest import advance
from tests.support.harness import Harness
from tests.support.users import make_user
from tests.user_streams.helpers import call, public_room, send_text


async def test_typing(harness: Harness) -> None:
    alice = await make_user(harness, "alice")
    bob = await make_user(harness, "bob")
    eve = await make_user(harness, "eve")
    room = await public_room(harness, alice, bob)
    path = f"/rooms/{room}/typing/{quote(alice.user_id)}"
    resp = await call(harness, "PUT", path, alice, {"typing": True, "timeout": 5000})
    assert resp.status == 200 and resp.json == {}
    typing = harness.hs.typing
    assert typing.get_updates([room], 0)[room].user_ids == (alice.user_id,)
    # Someone else's typing: 403. Not in the room: 403.
    resp = await call(harness, "PUT", path, bob, {"typing": True, "timeout": 5000})
    assert resp.status == 403 and resp.json["errcode"] == "M_FORBIDDEN"
    resp = await call(
        harness, "PUT", f"/rooms/{room}/typing/{quote(eve.user_id)}", eve, {"typing": True}
    )
    assert resp.status == 403
    # Bad bodies.
    resp = await call(harness, "PUT", path, alice, body=b"{not json")
    assert resp.status == 400 and resp.json["errcode"] == "M_NOT_JSON"
    resp = await call(harness, "PUT", path, alice, {"typing": "yes"})
    assert resp.status == 400
    resp = await call(harness, "PUT", path, alice, {"timeout": 5})
    assert resp.status == 400
    # Expiry on virtual time.
    await advance(6)
    assert typing.typing_users(room) == []
    resp = await call(harness, "PUT", path, None, {"typing": True})
    assert resp.status == 401


async def test_receipts_and_private_receipts(harness: Harness) -> None:
    alice = await make_user(harness, "alice")
    bob = await make_user(harness, "bob")
    eve = await make_user(harness, "eve")
    room = await public_room(harness, alice, bob)
    ev1 = await send_text(harness, alice, room, "one")
    ev2 = await send_text(harness, alice, room, "two")
    receipts = harness.hs.receipts
    start = receipts.current_position()

    resp = await call(harness, "POST", f"/rooms/{room}/receipt/m.read/{ev1}", bob, {})
    assert resp.status == 200 and resp.json == {}
    resp = await call(
        harness, "POST", f"/rooms/{room}/receipt/m.read/{ev2}", bob, {"thread_id": "main"}
    )
    assert resp.status == 200
    # Alice's private receipt does not wake Bob's sync.
    notifier = harness.hs.notifier
    since = notifier.current_token()
    bob_waits = asyncio.ensure_future(notifier.wait_for_change(bob.user_id, [room], since, 30))
    await advance(0)
    resp = await call(harness, "POST", f"/rooms/{room}/receipt/m.read.private/{ev2}", alice, {})
    assert resp.status == 200
    assert notifier.has_change(alice.user_id, [], since)
    await advance(1)
    assert not bob_waits.done()
    bob_waits.cancel()
    assert receipts.current_position() == start + 3

    as_bob = await receipts.get_updates(bob.user_id, [room], start)
    content = receipts_content(as_bob[room])
    assert as_bob[room].type == "m.receipt"
    assert set(content[ev1]["m.read"]) == {bob.user_id}
    assert "thread_id" not in content[ev1]["m.read"][bob.user_id]
    assert content[ev2]["m.read"][bob.user_id]["thread_id"] == "main"
    assert isinstance(content[ev2]["m.read"][bob.user_id]["ts"], int)
    assert "m.read.private" not in content[ev2]  # alice's private receipt
    as_alice = await receipts.get_updates(alice.user_id, [room], start)
    alice_content = receipts_content(as_alice[room])
    assert alice_content[ev2]["m.read.private"] == {
        alice.user_id: alice_content[ev2]["m.read.private"][alice.user_id]
    }
    # Incremental: only what moved; moving bob's unthreaded receipt replaces it.
    pos = receipts.current_position()
    assert await receipts.get_updates(bob.user_id, [room], pos) == {}
    resp = await call(harness, "POST", f"/rooms/{room}/receipt/m.read/{ev2}", bob, {})
    changed = await receipts.get_updates(bob.user_id, [room], pos)
    assert list(receipts_content(changed[room])) == [ev2]
    everything = await receipts.get_updates(bob.user_id, [room], 0)
    assert ev1 not in receipts_content(
        everything[room]
    )  # linearized: one row per (type, user, thread)

    # Refusals.
    resp = await call(harness, "POST", f"/rooms/{room}/receipt/m.read/{ev1}", eve, {})
    assert resp.status == 403
    resp = await call(harness, "POST", f"/rooms/{room}/receipt/m.bogus/{ev1}", bob, {})
    assert resp.status == 400
    resp = await call(
        harness, "POST", f"/rooms/{room}/receipt/m.read/{ev1}", bob, {"thread_id": ""}
    )
    assert resp.status == 400 and resp.json["errcode"] == "M_INVALID_PARAM"
    resp = await call(
        harness, "POST", f"/rooms/{room}/receipt/m.fully_read/{ev1}", bob, {"thread_id": "main"}
    )
    assert resp.status == 400 and resp.json["errcode"] == "M_INVALID_PARAM"
    resp = await call(harness, "POST", f"/rooms/{room}/receipt/m.read/{ev1}", bob, body=b"[")
    assert resp.status == 400 and resp.json["errcode"] == "M_NOT_JSON"


async def test_read_markers(harness: Harness) -> None:
    alice = await make_user(harness, "alice")
    room = await public_room(harness, alice)
    ev = await send_text(harness, alice, room, "hi")
    data = harness.hs.account_data
    pos = data.current_position()
    resp = await call(
        harness,
        "POST",
        f"/rooms/{room}/read_markers",
        alice,
        {"m.fully_read": ev, "m.read": ev, "m.read.private": ev},
    )
    assert resp.status == 200, resp.json
    resp = await call(
        harness,
        "GET",
        f"/user/{quote(alice.user_id)}/rooms/{room}/account_data/m.fully_read",
        alice,
    )
    assert resp.status == 200 and resp.json == {"event_id": ev}
    updates = await data.get_updates(alice.user_id, pos)
    assert updates.room_events[room] == [AccountDataEntry("m.fully_read", {"event_id": ev})]
    receipts = await harness.hs.receipts.get_updates(alice.user_id, [room], 0)
    assert set(receipts_content(receipts[room])[ev]) == {"m.read", "m.read.private"}
    # m.fully_read through /receipt is the read marker too.
    ev2 = await send_text(harness, alice, room, "again")
    resp = await call(harness, "POST", f"/rooms/{room}/receipt/m.fully_read/{ev2}", alice, {})
    assert resp.status == 200
    resp = await call(
        harness,
        "GET",
        f"/user/{quote(alice.user_id)}/rooms/{room}/account_data/m.fully_read",
        alice,
    )
    assert resp.json == {"event_id": ev2}
    resp = await call(harness, "POST", f"/rooms/{room}/read_markers", alice, {"m.read": 5})
    assert resp.status == 400
