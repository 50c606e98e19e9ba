"""Presence and send-to-device over HTTP."""

from __future__ import annotations

import asyncio
from urllib.parse import quote

from tests.conftest import advance
from tests.support.harness import Harness, start_harness
from tests.support.users import make_user
from tests.user_streams.helpers import call, public_room


async def test_presence(harness: Harness) -> None:
    alice = await make_user(harness, "alice")
    bob = await make_user(harness, "bob")
    eve = await make_user(harness, "eve")
    await public_room(harness, alice, bob)
    path = f"/presence/{quote(alice.user_id)}/status"
    resp = await call(harness, "GET", path, alice)
    assert resp.status == 200 and resp.json == {"presence": "offline"}
    resp = await call(harness, "PUT", path, alice, {"presence": "online", "status_msg": "hi"})
    assert resp.status == 200 and resp.json == {}
    resp = await call(harness, "GET", path, bob)
    assert resp.status == 200
    assert resp.json["presence"] == "online"
    assert resp.json["status_msg"] == "hi"
    assert resp.json["currently_active"] is True
    assert resp.json["last_active_ago"] >= 0
    # Not sharing a room: 403. Someone else's presence: 403. Bad values: 400.
    resp = await call(harness, "GET", path, eve)
    assert resp.status == 403 and resp.json["errcode"] == "M_FORBIDDEN"
    resp = await call(harness, "PUT", path, bob, {"presence": "online"})
    assert resp.status == 403
    resp = await call(harness, "PUT", path, alice, {"presence": "dancing"})
    assert resp.status == 400
    resp = await call(harness, "PUT", path, alice, {"status_msg": "no state"})
    assert resp.status == 400
    resp = await call(harness, "PUT", path, alice, body=b"{")
    assert resp.status == 400 and resp.json["errcode"] == "M_NOT_JSON"

    updates = await harness.hs.presence.get_updates(bob.user_id, 0)
    assert [s.user_id for s in updates.states] == [alice.user_id]
    # Idle for 5 minutes while "syncing": unavailable; then offline once syncs stop.
    async with harness.hs.presence.syncing(alice.user_id, "online"):
        await advance(5 * 60 + 6)
        resp = await call(harness, "GET", path, bob)
        assert resp.json["presence"] == "unavailable"
    await advance(36)
    resp = await call(harness, "GET", path, bob)
    assert resp.json["presence"] == "offline"


async def test_presence_disabled(make_hs_config) -> None:  # type: ignore[no-untyped-def]
    harness = await start_harness([make_hs_config(presence={"enabled": False})])
    try:
        alice = await make_user(harness, "alice")
        path = f"/presence/{quote(alice.user_id)}/status"
        resp = await call(harness, "PUT", path, alice, {"presence": "online"})
        assert resp.status == 200
        resp = await call(harness, "GET", path, alice)
        assert resp.status == 200 and resp.json["presence"] == "offline"
        assert (await harness.hs.presence.get_updates(alice.user_id, 0)).states == []
    finally:
        await harness.close()


async def test_send_to_device(harness: Harness) -> None:
    alice = await make_user(harness, "alice")
    bob = await make_user(harness, "bob")
    hs = harness.hs
    # A second device for bob, to check "*".
    login2 = await hs.registration.create_login(bob.user_id, "BOB2", None)
    assert login2["device_id"] == "BOB2"
    start = hs.notifier.current_token()

    # Bob waits; alice's message wakes him.
    waiting = asyncio.ensure_future(hs.notifier.wait_for_change(bob.user_id, [], start, 30))
    await advance(0)
    body = {"messages": {bob.user_id: {bob.device_id: {"n": 1}, "*": {"n": 2}}}}
    resp = await call(harness, "PUT", "/sendToDevice/m.test/t1", alice, body)
    assert resp.status == 200 and resp.json == {}
    assert await waiting is True
    first = hs.to_device.current_position()
    # Retrying the same txn id delivers nothing new.
    resp = await call(harness, "PUT", "/sendToDevice/m.test/t1", alice, body)
    assert resp.status == 200
    events, upto = await hs.to_device.get_updates(bob.user_id, bob.device_id, 0)
    assert events == [{"sender": alice.user_id, "type": "m.test", "content": {"n": 2}}]
    events2, _ = await hs.to_device.get_updates(bob.user_id, "BOB2", 0)
    assert events2 == [{"sender": alice.user_id, "type": "m.test", "content": {"n": 2}}]
    assert await hs.to_device.get_updates(alice.user_id, alice.device_id, 0) == ([], upto)

    # A new txn id is a new message; the limit caps a batch and says where it stopped.
    for i in range(3):
        resp = await call(
            harness,
            "PUT",
            f"/sendToDevice/m.test/n{i}",
            alice,
            {"messages": {bob.user_id: {bob.device_id: {"i": i}}}},
        )
    batch, batch_upto = await hs.to_device.get_updates(bob.user_id, bob.device_id, 0, limit=2)
    assert [e["content"] for e in batch] == [{"n": 2}, {"i": 0}]
    rest, rest_upto = await hs.to_device.get_updates(bob.user_id, bob.device_id, batch_upto)
    assert [e["content"] for e in rest] == [{"i": 1}, {"i": 2}]
    assert rest_upto == hs.to_device.current_position() > first
    # Delivered messages are deleted once the client syncs past them.
    assert await hs.to_device.delete_delivered(bob.user_id, bob.device_id, batch_upto) == 2
    again, _ = await hs.to_device.get_updates(bob.user_id, bob.device_id, 0)
    assert [e["content"] for e in again] == [{"i": 1}, {"i": 2}]
    assert len((await hs.to_device.get_updates(bob.user_id, "BOB2", 0))[0]) == 1

    # Refusals.
    resp = await call(harness, "PUT", "/sendToDevice/m.test/bad", alice, {"messages": []})
    assert resp.status == 400
    resp = await call(harness, "PUT", "/sendToDevice/m.test/bad", alice, {})
    assert resp.status == 400
    resp = await call(harness, "PUT", "/sendToDevice/m.test/bad", alice, body=b"[")
    assert resp.status == 400 and resp.json["errcode"] == "M_NOT_JSON"
    resp = await call(harness, "PUT", "/sendToDevice/m.test/bad", None, {"messages": {}})
    assert resp.status == 401
