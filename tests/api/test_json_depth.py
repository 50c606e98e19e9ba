"""JSON nested too deeply is refused at the door, on every endpoint that
stores it, so nothing a client stores can break another user's /sync
(both engines)."""

from __future__ import annotations

from typing import Any

import orjson
import pytest

from hamlet.api.request import MAX_JSON_DEPTH
from tests.support.harness import Harness
from tests.support.users import TestUser, make_user
from tests.user_streams.helpers import call, public_room


def deep(levels: int) -> dict[str, Any]:
    """An object `levels` levels deep."""
    value: dict[str, Any] = {}
    for _ in range(levels - 1):
        value = {"a": value}
    return value


DEEP = "__deep__"


def deep_text(levels: int) -> bytes:
    """An object `levels` levels deep, as JSON (orjson would not encode it)."""
    return b'{"a":' * (levels - 1) + b"{}" + b"}" * (levels - 1)


def bodies(victim: TestUser, room: str) -> list[tuple[str, str, Any]]:
    """Requests with `DEEP` where the deep content goes."""
    user = "@mallory:test.local"
    content = DEEP
    return [
        ("PUT", f"/rooms/{room}/send/m.room.message/t1", {"body": "x", "deep": content}),
        ("PUT", f"/rooms/{room}/state/m.custom/k", {"deep": content}),
        ("POST", "/createRoom", {"creation_content": {"deep": content}}),
        ("POST", "/createRoom", {"initial_state": [{"type": "m.x", "content": content}]}),
        ("PUT", f"/user/{user}/account_data/m.deep", {"deep": content}),
        ("PUT", f"/user/{user}/rooms/{room}/account_data/m.deep", {"deep": content}),
        ("POST", f"/user/{user}/filter", {"room": {"timeline": {"deep": content}}}),
        ("POST", "/keys/upload", {"one_time_keys": {"signed_curve25519:AAAA": content}}),
        ("PUT", "/sendToDevice/m.deep/t1", {"messages": {victim.user_id: {"*": content}}}),
        ("PUT", "/pushrules/global/override/deep", {"actions": [], "conditions": [content]}),
    ]


async def sync_ok(harness: Harness, user: TestUser, since: str | None = None) -> dict[str, Any]:
    path = "/sync" if since is None else f"/sync?since={since}&timeout=0"
    resp = await call(harness, "GET", path, user)
    assert resp.status == 200, resp.json
    result: dict[str, Any] = resp.json
    return result


@pytest.mark.parametrize("levels", [250, 600])
async def test_deep_json_is_refused_and_nothing_is_stored(harness: Harness, levels: int) -> None:
    mallory = await make_user(harness, "mallory")
    victim = await make_user(harness, "victim")
    room = await public_room(harness, mallory, victim)
    before = await sync_ok(harness, victim)
    rooms_before = await call(harness, "GET", "/joined_rooms", mallory)

    for method, path, template in bodies(victim, room):
        body = orjson.dumps(template).replace(orjson.dumps(DEEP), deep_text(levels))
        resp = await call(harness, method, path, mallory, body=body)
        assert (resp.status, resp.json.get("errcode")) == (400, "M_BAD_JSON"), path

    after = await sync_ok(harness, victim, before["next_batch"])
    assert "to_device" not in after or after["to_device"]["events"] == []
    timeline = after.get("rooms", {}).get("join", {}).get(room, {}).get("timeline", {})
    assert all(e["type"] == "m.room.member" for e in timeline.get("events", []))
    assert (await call(harness, "GET", "/joined_rooms", mallory)).json == rooms_before.json
    for path in (
        f"/user/{mallory.user_id}/account_data/m.deep",
        f"/user/{mallory.user_id}/rooms/{room}/account_data/m.deep",
        "/pushrules/global/override/deep",
        f"/rooms/{room}/state/m.custom/k",
    ):
        assert (await call(harness, "GET", path, mallory)).status == 404, path
    resp = await call(harness, "POST", "/keys/upload", mallory, {})
    assert resp.json["one_time_key_counts"].get("signed_curve25519", 0) == 0
    await sync_ok(harness, victim)


async def test_json_at_the_limit_is_served_through_sync(harness: Harness) -> None:
    """Content as deep as the door lets through still encodes once wrapped
    in /sync's envelopes, for every member of the room and the recipient."""
    mallory = await make_user(harness, "mallory")
    victim = await make_user(harness, "victim")
    room = await public_room(harness, mallory, victim)
    before = await sync_ok(harness, victim)
    # The request body itself is one level more than its content here.
    content = deep(MAX_JSON_DEPTH - 1)
    resp = await call(harness, "PUT", f"/rooms/{room}/send/m.room.message/t1", mallory, content)
    assert resp.status == 200, resp.json
    message = {"messages": {victim.user_id: {"*": deep(MAX_JSON_DEPTH - 3)}}}
    resp = await call(harness, "PUT", "/sendToDevice/m.deep/t1", mallory, message)
    assert resp.status == 200, resp.json

    after = await sync_ok(harness, victim, before["next_batch"])
    assert [e["type"] for e in after["to_device"]["events"]] == ["m.deep"]
    events = after["rooms"]["join"][room]["timeline"]["events"]
    assert events[-1]["content"] == content
    await sync_ok(harness, victim)
    await sync_ok(harness, mallory)
    # One level more is refused.
    resp = await call(harness, "PUT", f"/rooms/{room}/send/m.room.message/t2", mallory, deep(101))
    assert (resp.status, resp.json["errcode"]) == (400, "M_BAD_JSON")


async def test_deep_sync_filter_is_refused(harness: Harness) -> None:
    alice = await make_user(harness, "alice")
    resp = await call(
        harness, "GET", "/sync?filter=" + "%7B%22a%22%3A" * 300 + "1" + "%7D" * 300, alice
    )
    assert (resp.status, resp.json["errcode"]) == (400, "M_BAD_JSON")
