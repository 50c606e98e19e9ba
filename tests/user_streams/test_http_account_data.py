"""Account data, tags and filters over HTTP; stream positions across a restart."""

from __future__ import annotations

from urllib.parse import quote

from hamlet.handlers.user_streams.account_data import AccountDataEntry
from hamlet.homeserver import HomeServer
from tests.support.harness import Harness, start_harness
from tests.support.users import make_user
from tests.user_streams.helpers import call, public_room

ROOM = "!somewhere:test.local"


async def test_global_account_data(harness: Harness) -> None:
    alice = await make_user(harness, "alice")
    bob = await make_user(harness, "bob")
    me = quote(alice.user_id)
    resp = await call(harness, "GET", f"/user/{me}/account_data/org.example", alice)
    assert resp.status == 404 and resp.json["errcode"] == "M_NOT_FOUND"
    pos = harness.hs.account_data.current_position()
    resp = await call(harness, "PUT", f"/user/{me}/account_data/org.example", alice, {"a": 1})
    assert resp.status == 200 and resp.json == {}
    resp = await call(harness, "GET", f"/user/{me}/account_data/org.example", alice)
    assert resp.status == 200 and resp.json == {"a": 1}
    resp = await call(harness, "PUT", f"/user/{me}/account_data/org.example", alice, {"a": 2})
    updates = await harness.hs.account_data.get_updates(alice.user_id, pos)
    assert updates.global_events == [AccountDataEntry("org.example", {"a": 2})]
    assert updates.room_events == {}
    assert (await harness.hs.account_data.get_updates(bob.user_id, 0)).global_events == []

    # Refusals.
    resp = await call(harness, "PUT", f"/user/{me}/account_data/org.example", bob, {"b": 1})
    assert resp.status == 403 and resp.json["errcode"] == "M_FORBIDDEN"
    resp = await call(harness, "GET", f"/user/{me}/account_data/org.example", bob)
    assert resp.status == 403
    for server_owned in ("m.fully_read", "m.push_rules"):
        resp = await call(harness, "PUT", f"/user/{me}/account_data/{server_owned}", alice, {})
        assert resp.status == 405 and resp.json["errcode"] == "M_BAD_JSON"
    resp = await call(harness, "PUT", f"/user/{me}/account_data/x", alice, body=b"{oops")
    assert resp.status == 400 and resp.json["errcode"] == "M_NOT_JSON"
    resp = await call(harness, "PUT", f"/user/{me}/account_data/x", alice, [1, 2])
    assert resp.status == 400 and resp.json["errcode"] == "M_BAD_JSON"
    resp = await call(harness, "GET", f"/user/{me}/account_data/x", None)
    assert resp.status == 401


async def test_room_account_data_and_tags(harness: Harness) -> None:
    alice = await make_user(harness, "alice")
    bob = await make_user(harness, "bob")
    me = quote(alice.user_id)
    base = f"/user/{me}/rooms/{ROOM}"
    pos = harness.hs.account_data.current_position()
    resp = await call(harness, "PUT", f"{base}/account_data/org.example", alice, {"r": True})
    assert resp.status == 200
    resp = await call(harness, "GET", f"{base}/account_data/org.example", alice)
    assert resp.json == {"r": True}
    resp = await call(harness, "GET", f"{base}/account_data/org.missing", alice)
    assert resp.status == 404
    resp = await call(harness, "PUT", f"/user/{me}/rooms/not-a-room/account_data/x", alice, {})
    assert resp.status == 400 and resp.json["errcode"] == "M_INVALID_PARAM"
    resp = await call(harness, "GET", f"/user/{me}/rooms/not-a-room/account_data/x", alice)
    assert resp.status == 400 and resp.json["errcode"] == "M_INVALID_PARAM"
    resp = await call(harness, "PUT", f"{base}/account_data/m.fully_read", alice, {})
    assert resp.status == 405
    resp = await call(harness, "PUT", f"{base}/account_data/org.example", bob, {})
    assert resp.status == 403

    # Tags.
    resp = await call(harness, "GET", f"{base}/tags", alice)
    assert resp.status == 200 and resp.json == {"tags": {}}
    resp = await call(harness, "PUT", f"{base}/tags/m.favourite", alice, {"order": 0.5})
    assert resp.status == 200 and resp.json == {}
    resp = await call(harness, "PUT", f"{base}/tags/{quote('u.work/stuff', safe='')}", alice, {})
    assert resp.status == 200
    resp = await call(harness, "GET", f"{base}/tags", alice)
    assert resp.json == {"tags": {"m.favourite": {"order": 0.5}, "u.work/stuff": {}}}
    for bad in (1.5, -0.1, "0.5", True):
        resp = await call(harness, "PUT", f"{base}/tags/m.lowpriority", alice, {"order": bad})
        assert resp.status == 400, bad
    resp = await call(harness, "PUT", f"{base}/tags/m.lowpriority", alice, body=b"nope")
    assert resp.status == 400 and resp.json["errcode"] == "M_NOT_JSON"
    resp = await call(harness, "PUT", f"{base}/tags/m.favourite", bob, {})
    assert resp.status == 403
    resp = await call(harness, "GET", f"{base}/tags", bob)
    assert resp.status == 403
    resp = await call(harness, "DELETE", f"{base}/tags/m.favourite", alice)
    assert resp.status == 200
    resp = await call(harness, "GET", f"{base}/tags", alice)
    assert resp.json == {"tags": {"u.work/stuff": {}}}

    updates = await harness.hs.account_data.get_updates(alice.user_id, pos)
    assert updates.global_events == []
    assert updates.room_events[ROOM] == [
        AccountDataEntry("org.example", {"r": True}),
        AccountDataEntry("m.tag", {"tags": {"u.work/stuff": {}}}),
    ]


async def test_filters(harness: Harness) -> None:
    alice = await make_user(harness, "alice")
    bob = await make_user(harness, "bob")
    me = quote(alice.user_id)
    definition = {"room": {"timeline": {"limit": 5}}, "presence": {"not_types": ["*"]}}
    resp = await call(harness, "POST", f"/user/{me}/filter", alice, definition)
    assert resp.status == 200 and resp.json == {"filter_id": "0"}
    resp = await call(harness, "POST", f"/user/{me}/filter", alice, {})
    assert resp.json == {"filter_id": "1"}
    resp = await call(harness, "POST", f"/user/{quote(bob.user_id)}/filter", bob, {})
    assert resp.json == {"filter_id": "0"}  # numbered per user
    resp = await call(harness, "GET", f"/user/{me}/filter/0", alice)
    assert resp.status == 200 and resp.json == definition
    parsed = await harness.hs.filters.get_filter(alice.user_id, "0")
    assert parsed.room.timeline_limit == 5

    for missing in ("7", "abc", "-1"):
        resp = await call(harness, "GET", f"/user/{me}/filter/{missing}", alice)
        assert resp.status == 404 and resp.json["errcode"] == "M_NOT_FOUND"
    resp = await call(harness, "GET", f"/user/{me}/filter/0", bob)
    assert resp.status == 403
    resp = await call(harness, "POST", f"/user/{me}/filter", bob, {})
    assert resp.status == 403
    resp = await call(harness, "POST", f"/user/{me}/filter", alice, {"room": {"rooms": "!x"}})
    assert resp.status == 400 and resp.json["errcode"] == "M_BAD_JSON"
    resp = await call(harness, "POST", f"/user/{me}/filter", alice, body=b"{")
    assert resp.status == 400 and resp.json["errcode"] == "M_NOT_JSON"


async def test_stream_positions_survive_a_restart(make_hs_config) -> None:  # type: ignore[no-untyped-def]
    config = make_hs_config()
    harness = await start_harness([config])
    try:
        alice = await make_user(harness, "alice")
        me = quote(alice.user_id)
        room = await public_room(harness, alice)
        for i in range(3):
            resp = await call(harness, "PUT", f"/user/{me}/account_data/t{i}", alice, {"i": i})
            assert resp.status == 200
        resp = await call(harness, "PUT", f"/user/{me}/rooms/{room}/tags/m.favourite", alice, {})
        assert resp.status == 200
        await harness.hs.to_device.send(
            alice.user_id, alice.device_id, "txn", "m.test", {alice.user_id: {"X": {"a": 1}}}
        )
        before = harness.hs.notifier.current_token()
        # Deliver and delete the to-device message: its id must not be reused.
        await harness.hs.to_device.delete_delivered(alice.user_id, "X", before.to_device)
    finally:
        await harness.close()
    assert before.account_data == 4 and before.to_device == 1

    hs = HomeServer(config)
    await hs.setup()
    try:
        after = hs.notifier.current_token()
        assert after.account_data == before.account_data
        assert after.to_device == before.to_device
        assert after.receipts == before.receipts
        assert after.typing == 0 and after.presence == 0
        # Nothing changed since the old token, and the old token is not "ahead".
        assert (await hs.account_data.get_updates(alice.user_id, before.account_data)) == (
            await hs.account_data.get_updates("@nobody:test.local", 0)
        )
        assert not hs.notifier.has_change(alice.user_id, [room], before)
        stream_id = await hs.account_data.set_global(alice.user_id, "t9", {})
        assert stream_id == before.account_data + 1
        await hs.to_device.send(
            alice.user_id, alice.device_id, "txn2", "m.test", {alice.user_id: {"X": {"b": 2}}}
        )
        events, upto = await hs.to_device.get_updates(alice.user_id, "X", before.to_device)
        assert events == [{"sender": alice.user_id, "type": "m.test", "content": {"b": 2}}]
        assert upto == before.to_device + 1
    finally:
        await hs.shutdown()
