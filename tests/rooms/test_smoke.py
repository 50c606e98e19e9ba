from __future__ import annotations

from tests.support.harness import Harness
from tests.support.users import make_user


async def test_create_send_read(harness: Harness) -> None:
    alice = await make_user(harness, "alice")
    resp = await harness.request(
        "POST", "/_matrix/client/v3/createRoom", json={"name": "Hi"}, token=alice.token
    )
    assert resp.status == 200, resp.json
    room_id = resp.json["room_id"]
    resp = await harness.request(
        "PUT",
        f"/_matrix/client/v3/rooms/{room_id}/send/m.room.message/t1",
        json={"msgtype": "m.text", "body": "hello"},
        token=alice.token,
    )
    assert resp.status == 200, resp.json
    event_id = resp.json["event_id"]
    resp = await harness.request(
        "GET", f"/_matrix/client/v3/rooms/{room_id}/event/{event_id}", token=alice.token
    )
    assert resp.status == 200, resp.json
    assert resp.json["content"]["body"] == "hello"
    assert resp.json["unsigned"]["transaction_id"] == "t1"
    resp = await harness.request(
        "GET", f"/_matrix/client/v3/rooms/{room_id}/state", token=alice.token
    )
    assert resp.status == 200
    types = {e["type"] for e in resp.json}
    assert {"m.room.create", "m.room.member", "m.room.power_levels", "m.room.name"} <= types
