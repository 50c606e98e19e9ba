from __future__ import annotations

from tests.support.harness import Harness
from tests.support.users import make_user


async def test_versions(harness: Harness) -> None:
    resp = await harness.request("GET", "/_matrix/client/versions")
    assert resp.status == 200
    assert "v1.1" in resp.json["versions"]


async def test_what_the_later_versions_promise_is_served(harness: Harness) -> None:
    versions = (await harness.request("GET", "/_matrix/client/versions")).json["versions"]
    assert {"v1.7", "v1.8", "v1.10", "v1.11"} <= set(versions)
    alice = await make_user(harness, "alice")
    # v1.7: create a media ID first, upload to it later.
    created = await harness.request("POST", "/_matrix/media/v1/create", token=alice.token)
    assert created.status == 200 and created.json["content_uri"].startswith("mxc://")
    # v1.8: room version 11 can be created.
    room = await harness.request(
        "POST", "/_matrix/client/v3/createRoom", json={"room_version": "11"}, token=alice.token
    )
    assert room.status == 200, room.json
    # v1.10: relations may recurse.
    room_id = room.json["room_id"]
    sent = await harness.request(
        "PUT",
        f"/_matrix/client/v3/rooms/{room_id}/send/m.room.message/t1",
        json={"msgtype": "m.text", "body": "root"},
        token=alice.token,
    )
    path = f"/_matrix/client/v1/rooms/{room_id}/relations/{sent.json['event_id']}?recurse=true"
    relations = await harness.request("GET", path, token=alice.token)
    assert relations.status == 200 and relations.json["chunk"] == []
    # v1.11: authenticated media.
    config = await harness.request("GET", "/_matrix/client/v1/media/config", token=alice.token)
    assert config.status == 200 and "m.upload.size" in config.json
