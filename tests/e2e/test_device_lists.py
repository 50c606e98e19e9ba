"""The device list stream: /sync's device_lists and /keys/changes."""

from __future__ import annotations

import asyncio

from tests.conftest import advance, settle
from tests.e2e.helpers import Ed25519, call, device_keys, one_time_keys, shared_room, sync
from tests.support.harness import Harness
from tests.support.users import make_user


async def test_sync_wakes_and_names_a_user_whose_keys_changed(harness: Harness) -> None:
    alice = await make_user(harness, "alice")
    bob = await make_user(harness, "bob")
    carol = await make_user(harness, "carol")  # shares no room with alice
    await shared_room(harness, alice, bob)
    initial = await sync(harness, bob)
    assert initial["device_lists"] == {"changed": [], "left": []}
    since = initial["next_batch"]
    carol_since = (await sync(harness, carol))["next_batch"]

    loop = asyncio.get_running_loop()
    started = loop.time()
    poll = asyncio.ensure_future(sync(harness, bob, f"?since={since}&timeout=30000"))
    carol_poll = asyncio.ensure_future(sync(harness, carol, f"?since={carol_since}&timeout=2000"))
    await settle()
    assert harness.hs.notifier.waiter_count == 2, "the syncs are not waiting"
    assert not poll.done()
    key = Ed25519()
    resp = await call(
        harness, "POST", "/keys/upload", alice, {"device_keys": device_keys(alice, key)}
    )
    assert resp.status == 200
    await settle()
    assert poll.done(), "the long poll was not woken"
    body = await poll
    assert loop.time() - started < 30, "the long poll was not woken"
    assert body["device_lists"] == {"changed": [alice.user_id], "left": []}
    # Carol's sync is not woken, and does not hear of alice.
    assert not carol_poll.done()
    await advance(3)
    assert carol_poll.done(), "carol's sync did not time out"
    carol_body = await carol_poll
    assert carol_body["device_lists"] == {"changed": [], "left": []}

    # /keys/changes over the same range agrees; an empty range has nothing.
    after = body["next_batch"]
    resp = await call(harness, "GET", f"/keys/changes?from={since}&to={after}", bob)
    assert resp.status == 200 and resp.json == {"changed": [alice.user_id], "left": []}
    resp = await call(harness, "GET", f"/keys/changes?from={after}&to={after}", bob)
    assert resp.json == {"changed": [], "left": []}
    # Uploading only one-time keys changes no device list.
    await call(
        harness,
        "POST",
        "/keys/upload",
        alice,
        {"one_time_keys": one_time_keys(key, alice, range(2))},
    )
    resp = await call(harness, "GET", f"/sync?since={after}", bob)
    assert resp.json["device_lists"] == {"changed": [], "left": []}
    # Bad parameters.
    for query in ("", f"?from={since}", "?from=x&to=y"):
        resp = await call(harness, "GET", f"/keys/changes{query}", bob)
        assert resp.status == 400, query

    # A new device, a rename and a deleted device are changes too.
    for action in ("login", "rename", "logout"):
        before = (await sync(harness, bob))["next_batch"]
        if action == "login":
            login = await harness.hs.registration.create_login(alice.user_id, "ALICE2", None)
        elif action == "rename":
            await call(harness, "PUT", "/devices/ALICE2", alice, {"display_name": "new"})
        else:
            await harness.request("POST", "/_matrix/client/v3/logout", token=login["access_token"])
        got = await sync(harness, bob, f"?since={before}")
        assert got["device_lists"]["changed"] == [alice.user_id], action


async def test_sharing_rooms_changes_and_left(harness: Harness) -> None:
    alice = await make_user(harness, "alice")
    bob = await make_user(harness, "bob")
    carol = await make_user(harness, "carol")
    room = await shared_room(harness, alice, bob)
    since = (await sync(harness, carol))["next_batch"]
    alice_since = (await sync(harness, alice))["next_batch"]

    # Carol joins: she now shares a room with alice and bob, who see her too.
    resp = await call(harness, "POST", f"/rooms/{room}/join", carol, {})
    assert resp.status == 200
    body = await sync(harness, carol, f"?since={since}")
    assert body["device_lists"] == {"changed": sorted([alice.user_id, bob.user_id]), "left": []}
    alice_body = await sync(harness, alice, f"?since={alice_since}")
    assert alice_body["device_lists"] == {"changed": [carol.user_id], "left": []}

    # A profile change is no new sharing.
    since = body["next_batch"]
    alice_since = alice_body["next_batch"]
    await call(harness, "PUT", f"/profile/{carol.user_id}/displayname", carol, {"displayname": "C"})
    assert (await sync(harness, alice, f"?since={alice_since}"))["device_lists"]["changed"] == []

    # A second shared room with bob only; then carol leaves the first.
    other = await shared_room(harness, bob, carol)
    since = (await sync(harness, carol))["next_batch"]
    alice_since = (await sync(harness, alice))["next_batch"]
    resp = await call(harness, "POST", f"/rooms/{room}/leave", carol, {})
    assert resp.status == 200
    body = await sync(harness, carol, f"?since={since}")
    assert body["device_lists"] == {"changed": [], "left": [alice.user_id]}
    alice_body = await sync(harness, alice, f"?since={alice_since}")
    assert alice_body["device_lists"] == {"changed": [], "left": [carol.user_id]}
    # Alice's key changes no longer reach carol.
    since = body["next_batch"]
    await call(
        harness, "POST", "/keys/upload", alice, {"device_keys": device_keys(alice, Ed25519())}
    )
    assert (await sync(harness, carol, f"?since={since}"))["device_lists"]["changed"] == []

    # Bob leaves the other room: he still shares `room` with alice only.
    since = (await sync(harness, carol))["next_batch"]
    await call(harness, "POST", f"/rooms/{other}/leave", bob, {})
    assert (await sync(harness, carol, f"?since={since}"))["device_lists"] == {
        "changed": [],
        "left": [bob.user_id],
    }


async def test_position_survives_restart(harness: Harness) -> None:
    alice = await make_user(harness, "alice")
    bob = await make_user(harness, "bob")
    await shared_room(harness, alice, bob)
    await call(
        harness, "POST", "/keys/upload", alice, {"device_keys": device_keys(alice, Ed25519())}
    )
    since = (await sync(harness, bob))["next_batch"]
    position = harness.hs.device_lists.current_position()
    assert position > 0
    hs = await harness.restart()
    assert hs.device_lists.current_position() == position
    await call(
        harness, "POST", "/keys/upload", alice, {"device_keys": device_keys(alice, Ed25519())}
    )
    assert hs.device_lists.current_position() == position + 1
    body = await sync(harness, bob, f"?since={since}")
    assert body["device_lists"]["changed"] == [alice.user_id]
