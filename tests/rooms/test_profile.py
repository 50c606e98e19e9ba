"""Profiles: reading and setting display names and avatars, and their spread into rooms."""

from __future__ import annotations

from typing import Any
from urllib.parse import urlencode

import orjson
import pytest

from tests.rooms.helpers import V3, assert_error, create_room, join, member_content, q
from tests.rooms.reading_support import unlimited_harness
from tests.support.harness import Harness, Response
from tests.support.users import TestUser, make_user


@pytest.fixture
async def harness(make_hs_config):  # type: ignore[no-untyped-def]
    async for h in unlimited_harness(make_hs_config):
        yield h


async def put_field(
    harness: Harness, user: TestUser, target: str, field: str, value: Any
) -> Response:
    return await harness.request(
        "PUT", f"{V3}/profile/{q(target)}/{field}", json={field: value}, token=user.token
    )


async def get_profile(harness: Harness, target: str, token: str | None = None) -> Response:
    return await harness.request("GET", f"{V3}/profile/{q(target)}", token=token)


async def test_get_and_set(harness: Harness) -> None:
    alice = await make_user(harness, "alice")
    resp = await get_profile(harness, alice.user_id)
    assert resp.status == 200
    assert resp.json == {"displayname": "alice"}  # registration sets the localpart

    resp = await put_field(harness, alice, alice.user_id, "displayname", "Alice A.")
    assert resp.status == 200 and resp.json == {}
    resp = await put_field(harness, alice, alice.user_id, "avatar_url", "mxc://test.local/abc")
    assert resp.status == 200

    resp = await get_profile(harness, alice.user_id, alice.token)
    assert resp.json == {"displayname": "Alice A.", "avatar_url": "mxc://test.local/abc"}
    resp = await harness.request("GET", f"{V3}/profile/{q(alice.user_id)}/displayname")
    assert resp.status == 200 and resp.json == {"displayname": "Alice A."}
    resp = await harness.request("GET", f"{V3}/profile/{q(alice.user_id)}/avatar_url")
    assert resp.json == {"avatar_url": "mxc://test.local/abc"}

    # Clearing the avatar: the field is gone.
    resp = await put_field(harness, alice, alice.user_id, "avatar_url", "")
    assert resp.status == 200
    resp = await harness.request("GET", f"{V3}/profile/{q(alice.user_id)}/avatar_url")
    assert_error(resp, 404, "M_NOT_FOUND")
    assert (await get_profile(harness, alice.user_id)).json == {"displayname": "Alice A."}


async def test_refusals(harness: Harness) -> None:
    alice = await make_user(harness, "alice")
    bob = await make_user(harness, "bob")
    assert_error(await get_profile(harness, "@nobody:test.local"), 404, "M_NOT_FOUND")
    # Other servers' users are asked of their server, which cannot be
    # reached here (tests/federation covers the rest).
    assert_error(await get_profile(harness, "@someone:remote.example"), 502, "M_UNKNOWN")
    resp = await harness.request("GET", f"{V3}/profile/{q('@nobody:test.local')}/displayname")
    assert_error(resp, 404, "M_NOT_FOUND")
    assert_error(await get_profile(harness, "not-a-user"), 400)

    resp = await put_field(harness, bob, alice.user_id, "displayname", "Bob was here")
    assert_error(resp, 403, "M_FORBIDDEN")
    resp = await put_field(harness, alice, alice.user_id, "displayname", "x" * 257)
    assert_error(resp, 400)
    resp = await put_field(harness, alice, alice.user_id, "displayname", "x" * 256)
    assert resp.status == 200
    resp = await put_field(harness, alice, alice.user_id, "displayname", 12)
    assert_error(resp, 400)
    resp = await harness.request(
        "PUT", f"{V3}/profile/{q(alice.user_id)}/displayname", json={}, token=alice.token
    )
    assert_error(resp, 400, "M_MISSING_PARAM")
    resp = await harness.request(
        "PUT", f"{V3}/profile/{q(alice.user_id)}/displayname", json={"displayname": "x"}
    )
    assert_error(resp, 401, "M_MISSING_TOKEN")


async def test_admin_may_set_others(harness: Harness) -> None:
    admin = await make_user(harness, "root", admin=True)
    bob = await make_user(harness, "bob")
    resp = await put_field(harness, admin, bob.user_id, "displayname", "Robert")
    assert resp.status == 200
    assert (await get_profile(harness, bob.user_id)).json["displayname"] == "Robert"


async def test_change_updates_member_event_in_every_joined_room(harness: Harness) -> None:
    alice = await make_user(harness, "alice")
    bob = await make_user(harness, "bob")
    rooms = [await create_room(harness, alice, preset="public_chat") for _ in range(3)]
    for room_id in rooms:
        assert (await join(harness, bob, room_id)).status == 200
    left_room = await create_room(harness, alice, preset="public_chat")
    assert (await join(harness, bob, left_room)).status == 200
    resp = await harness.request(
        "POST", f"{V3}/rooms/{q(left_room)}/leave", json={}, token=bob.token
    )
    assert resp.status == 200

    resp = await put_field(harness, bob, bob.user_id, "displayname", "Bobby")
    assert resp.status == 200
    resp = await put_field(harness, bob, bob.user_id, "avatar_url", "mxc://test.local/bob")
    assert resp.status == 200
    for room_id in rooms:
        content = await member_content(harness, alice, room_id, bob.user_id)
        assert content == {
            "membership": "join",
            "displayname": "Bobby",
            "avatar_url": "mxc://test.local/bob",
        }
    content = await member_content(harness, alice, left_room, bob.user_id)
    assert content is not None and content["membership"] == "leave"
    assert "displayname" not in content

    # Each change is a new join event in the room's timeline.
    resp = await harness.request(
        "GET",
        f"{V3}/rooms/{q(rooms[0])}/messages?"
        + urlencode({"filter": orjson.dumps({"senders": [bob.user_id]}).decode()}),
        token=alice.token,
    )
    changes = [e["content"] for e in resp.json["chunk"]]
    assert changes == [
        {"membership": "join", "displayname": "Bobby", "avatar_url": "mxc://test.local/bob"},
        {"membership": "join", "displayname": "Bobby"},
        {"membership": "join", "displayname": "bob"},
    ]
    assert resp.json["chunk"][0]["unsigned"]["prev_content"] == changes[1]
    # Setting the same value again makes no new event.
    before = await harness.hs.db.fetchval("t", "SELECT COUNT(*) FROM events")
    assert (await put_field(harness, bob, bob.user_id, "displayname", "Bobby")).status == 200
    assert await harness.hs.db.fetchval("t", "SELECT COUNT(*) FROM events") == before


@pytest.fixture
async def locked(make_hs_config):  # type: ignore[no-untyped-def]
    async for h in unlimited_harness(
        make_hs_config,
        enable_set_displayname=False,
        enable_set_avatar_url=False,
        require_auth_for_profile_requests=True,
        limit_profile_requests_to_users_who_share_rooms=True,
    ):
        yield h


async def test_config_switches(locked: Harness) -> None:
    harness = locked
    alice = await make_user(harness, "alice")
    bob = await make_user(harness, "bob")
    resp = await put_field(harness, alice, alice.user_id, "displayname", "New")
    assert_error(resp, 403, "M_FORBIDDEN")
    resp = await put_field(harness, alice, alice.user_id, "avatar_url", "mxc://a/b")
    assert_error(resp, 403, "M_FORBIDDEN")
    assert_error(await get_profile(harness, alice.user_id), 401, "M_MISSING_TOKEN")
    assert (await get_profile(harness, alice.user_id, alice.token)).status == 200
    assert_error(await get_profile(harness, alice.user_id, bob.token), 403, "M_FORBIDDEN")
    room_id = await create_room(harness, alice, preset="public_chat")
    assert (await join(harness, bob, room_id)).status == 200
    assert (await get_profile(harness, alice.user_id, bob.token)).status == 200
