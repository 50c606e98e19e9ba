"""What matrix-js-sdk (Element's library) assumes of a homeserver.

Each test pins a behaviour js-sdk 37 was seen to rely on against a live
Hamlet; the comment says what the client does with it.
"""

from __future__ import annotations

import json
from urllib.parse import quote

from tests.support.harness import Harness
from tests.support.users import make_user

C = "/_matrix/client/v3"


async def test_room_joined_after_an_invite_comes_down_limited(harness: Harness) -> None:
    """js-sdk sets a known room's back-pagination token only on a `limited`
    timeline; a room it knew from the invite and then joined would otherwise
    paginate with no `from` and get the events it already has again.
    Synapse marks every newly joined room `limited`."""
    alice = await make_user(harness, "alice")
    bob = await make_user(harness, "bob")
    resp = await harness.request(
        "POST", f"{C}/createRoom", json={"invite": [bob.user_id]}, token=alice.token
    )
    assert resp.status == 200, resp.json
    room_id = resp.json["room_id"]

    sync_filter = quote(json.dumps({"room": {"timeline": {"limit": 50}}}))
    resp = await harness.request("GET", f"{C}/sync?filter={sync_filter}", token=bob.token)
    assert resp.status == 200, resp.json
    assert room_id in resp.json["rooms"]["invite"]
    since = resp.json["next_batch"]

    resp = await harness.request("POST", f"{C}/join/{room_id}", json={}, token=bob.token)
    assert resp.status == 200, resp.json
    resp = await harness.request(
        "GET", f"{C}/sync?filter={sync_filter}&since={since}", token=bob.token
    )
    assert resp.status == 200, resp.json
    timeline = resp.json["rooms"]["join"][room_id]["timeline"]
    # Every event of the room fits in the limit, yet the timeline is limited.
    assert timeline["events"][0]["type"] == "m.room.create"
    assert timeline["limited"] is True
    # prev_batch points before the first event: paginating from it is empty.
    resp = await harness.request(
        "GET",
        f"{C}/rooms/{room_id}/messages?dir=b&from={timeline['prev_batch']}",
        token=bob.token,
    )
    assert resp.status == 200, resp.json
    assert resp.json["chunk"] == []

    # The next incremental sync, with nothing new joined, is not limited.
    resp = await harness.request(
        "GET", f"{C}/sync?filter={sync_filter}&since={since}", token=bob.token
    )
    since = resp.json["next_batch"]
    resp = await harness.request(
        "PUT",
        f"{C}/rooms/{room_id}/send/m.room.message/t1",
        json={"msgtype": "m.text", "body": "hi"},
        token=alice.token,
    )
    assert resp.status == 200, resp.json
    resp = await harness.request(
        "GET", f"{C}/sync?filter={sync_filter}&since={since}", token=bob.token
    )
    assert resp.status == 200, resp.json
    timeline = resp.json["rooms"]["join"][room_id]["timeline"]
    assert [e["type"] for e in timeline["events"]] == ["m.room.message"]
    assert timeline["limited"] is False
