"""What clients assume about the `state` block of a limited /sync timeline.

The spec: `state` is the room state at the *start* of the timeline. A client
(matrix-js-sdk) seeds its start-of-timeline state from it and replays the
timeline on top; an event superseded inside the timeline must still be there.
"""

from __future__ import annotations

import json
from urllib.parse import quote

from tests.support.harness import Harness
from tests.support.users import make_user

C = "/_matrix/client/v3"


async def test_limited_timeline_state_is_state_at_its_start(harness: Harness) -> None:
    alice = await make_user(harness, "alice")
    resp = await harness.request(
        "POST", f"{C}/createRoom", json={"name": "First"}, token=alice.token
    )
    assert resp.status == 200, resp.json
    room_id = resp.json["room_id"]
    for n, (kind, content) in enumerate(
        [
            ("m.room.message", {"msgtype": "m.text", "body": "one"}),
            ("m.room.message", {"msgtype": "m.text", "body": "two"}),
        ]
    ):
        resp = await harness.request(
            "PUT", f"{C}/rooms/{room_id}/send/{kind}/t{n}", json=content, token=alice.token
        )
        assert resp.status == 200, resp.json
    resp = await harness.request(
        "PUT", f"{C}/rooms/{room_id}/state/m.room.name", json={"name": "Second"}, token=alice.token
    )
    assert resp.status == 200, resp.json
    resp = await harness.request(
        "PUT",
        f"{C}/rooms/{room_id}/send/m.room.message/t9",
        json={"msgtype": "m.text", "body": "three"},
        token=alice.token,
    )
    assert resp.status == 200, resp.json

    sync_filter = quote(json.dumps({"room": {"timeline": {"limit": 3}}}))
    resp = await harness.request("GET", f"{C}/sync?filter={sync_filter}", token=alice.token)
    assert resp.status == 200, resp.json
    room = resp.json["rooms"]["join"][room_id]
    assert room["timeline"]["limited"] is True
    timeline = [
        (e["type"], e["content"].get("body") or e["content"].get("name"))
        for e in room["timeline"]["events"]
    ]
    assert timeline == [
        ("m.room.message", "two"),
        ("m.room.name", "Second"),
        ("m.room.message", "three"),
    ]
    state = {(e["type"], e["state_key"]): e for e in room["state"]["events"]}
    # The name as it was when the timeline starts, not the one it changes to.
    assert state[("m.room.name", "")]["content"] == {"name": "First"}
    assert ("m.room.create", "") in state
    assert ("m.room.member", alice.user_id) in state
    # Nothing in `state` is also in the timeline.
    timeline_ids = {e["event_id"] for e in room["timeline"]["events"]}
    assert not timeline_ids & {e["event_id"] for e in room["state"]["events"]}
