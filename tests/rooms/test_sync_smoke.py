from __future__ import annotations

import asyncio

from tests.conftest import settle
from tests.support.harness import Harness
from tests.support.users import make_user


async def test_sync_initial_and_incremental(harness: Harness) -> None:
    alice = await make_user(harness, "alice")
    bob = await make_user(harness, "bob")
    resp = await harness.request(
        "POST", "/_matrix/client/v3/createRoom", json={"invite": [bob.user_id]}, token=alice.token
    )
    room_id = resp.json["room_id"]
    resp = await harness.request("GET", "/_matrix/client/v3/sync", token=bob.token)
    assert resp.status == 200, resp.json
    assert room_id in resp.json["rooms"]["invite"]
    since = resp.json["next_batch"]
    resp = await harness.request(
        "POST", f"/_matrix/client/v3/rooms/{room_id}/join", token=bob.token
    )
    assert resp.status == 200, resp.json
    resp = await harness.request("GET", f"/_matrix/client/v3/sync?since={since}", token=bob.token)
    assert room_id in resp.json["rooms"]["join"], resp.json
    since = resp.json["next_batch"]

    poll = asyncio.ensure_future(
        harness.request(
            "GET", f"/_matrix/client/v3/sync?since={since}&timeout=30000", token=bob.token
        )
    )
    await settle()
    assert harness.hs.notifier.waiter_count == 1, "bob's sync is not waiting"
    await harness.request(
        "PUT",
        f"/_matrix/client/v3/rooms/{room_id}/send/m.room.message/x1",
        json={"msgtype": "m.text", "body": "hi bob"},
        token=alice.token,
    )
    resp = await poll
    events = resp.json["rooms"]["join"][room_id]["timeline"]["events"]
    assert [e["content"].get("body") for e in events] == ["hi bob"]
