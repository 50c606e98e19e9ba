"""POST /createRoom end to end, on both storage engines."""

from __future__ import annotations

from typing import Any

import pytest

from hamlet.core.filters import RoomEventFilter
from tests.rooms.helpers import (
    V3,
    assert_error,
    create_room,
    get_state_event,
    join,
    member_content,
    state_map,
)
from tests.support.harness import Harness
from tests.support.users import make_user


async def test_default_room_is_private_chat(harness: Harness) -> None:
    alice = await make_user(harness, "alice")
    room_id = await create_room(harness, alice)
    state = await state_map(harness, alice, room_id)
    assert state[("m.room.join_rules", "")]["content"] == {"join_rule": "invite"}
    assert state[("m.room.history_visibility", "")]["content"] == {"history_visibility": "shared"}
    assert state[("m.room.guest_access", "")]["content"] == {"guest_access": "can_join"}
    assert state[("m.room.member", alice.user_id)]["content"]["membership"] == "join"
    pl = state[("m.room.power_levels", "")]["content"]
    assert pl["users"] == {alice.user_id: 100}
    assert pl["invite"] == 0
    create = state[("m.room.create", "")]
    assert create["sender"] == alice.user_id
    assert create["content"]["room_version"] == "10"
    assert create["content"]["creator"] == alice.user_id
    room = await harness.hs.rooms_store.get_room(room_id)
    assert room is not None and not room.is_public


async def test_public_chat_preset(harness: Harness) -> None:
    alice = await make_user(harness, "alice")
    room_id = await create_room(harness, alice, preset="public_chat")
    state = await state_map(harness, alice, room_id)
    assert state[("m.room.join_rules", "")]["content"] == {"join_rule": "public"}
    assert ("m.room.guest_access", "") not in state
    assert state[("m.room.power_levels", "")]["content"]["invite"] == 50
    # The preset alone does not publish the room in the directory.
    room = await harness.hs.rooms_store.get_room(room_id)
    assert room is not None and not room.is_public


async def test_public_visibility_implies_public_chat(harness: Harness) -> None:
    alice = await make_user(harness, "alice")
    bob = await make_user(harness, "bob")
    room_id = await create_room(harness, alice, visibility="public")
    state = await state_map(harness, alice, room_id)
    assert state[("m.room.join_rules", "")]["content"] == {"join_rule": "public"}
    room = await harness.hs.rooms_store.get_room(room_id)
    assert room is not None and room.is_public
    resp = await join(harness, bob, room_id)
    assert resp.status == 200, resp.json


async def test_private_visibility_with_public_preset(harness: Harness) -> None:
    alice = await make_user(harness, "alice")
    room_id = await create_room(harness, alice, visibility="private", preset="public_chat")
    state = await state_map(harness, alice, room_id)
    assert state[("m.room.join_rules", "")]["content"] == {"join_rule": "public"}
    room = await harness.hs.rooms_store.get_room(room_id)
    assert room is not None and not room.is_public


async def test_private_chat_with_invites(harness: Harness) -> None:
    alice = await make_user(harness, "alice")
    bob = await make_user(harness, "bob")
    room_id = await create_room(harness, alice, preset="private_chat", invite=[bob.user_id])
    content = await member_content(harness, alice, room_id, bob.user_id)
    assert content is not None and content["membership"] == "invite"
    assert "is_direct" not in content
    state = await state_map(harness, alice, room_id)
    assert state[("m.room.power_levels", "")]["content"]["users"] == {alice.user_id: 100}
    assert state[("m.room.member", bob.user_id)]["sender"] == alice.user_id
    resp = await join(harness, bob, room_id)
    assert resp.status == 200, resp.json


async def test_trusted_private_chat_invitees_are_admins(harness: Harness) -> None:
    alice = await make_user(harness, "alice")
    bob = await make_user(harness, "bob")
    carol = await make_user(harness, "carol")
    room_id = await create_room(
        harness,
        alice,
        preset="trusted_private_chat",
        invite=[bob.user_id, carol.user_id],
        is_direct=True,
    )
    state = await state_map(harness, alice, room_id)
    assert state[("m.room.power_levels", "")]["content"]["users"] == {
        alice.user_id: 100,
        bob.user_id: 100,
        carol.user_id: 100,
    }
    assert state[("m.room.join_rules", "")]["content"] == {"join_rule": "invite"}
    for user in (bob, carol):
        content = state[("m.room.member", user.user_id)]["content"]
        assert content["membership"] == "invite"
        assert content["is_direct"] is True


async def test_name_and_topic(harness: Harness) -> None:
    alice = await make_user(harness, "alice")
    room_id = await create_room(harness, alice, name="The Room", topic="About things")
    resp = await get_state_event(harness, alice, room_id, "m.room.name")
    assert resp.status == 200 and resp.json == {"name": "The Room"}
    resp = await get_state_event(harness, alice, room_id, "m.room.topic")
    assert resp.status == 200 and resp.json["topic"] == "About things"


async def test_room_alias_name(harness: Harness) -> None:
    alice = await make_user(harness, "alice")
    bob = await make_user(harness, "bob")
    resp = await harness.request(
        "POST",
        f"{V3}/createRoom",
        json={"room_alias_name": "lobby", "preset": "public_chat"},
        token=alice.token,
    )
    assert resp.status == 200, resp.json
    room_id = resp.json["room_id"]
    alias = f"#lobby:{harness.hs.server_name}"
    assert resp.json.get("room_alias") in (None, alias)
    assert await harness.hs.rooms_store.get_alias(alias) == (room_id, alice.user_id)
    resp = await get_state_event(harness, alice, room_id, "m.room.canonical_alias")
    assert resp.status == 200 and resp.json["alias"] == alias
    # Joining by alias works.
    resp = await join(harness, bob, alias)
    assert resp.status == 200 and resp.json == {"room_id": room_id}

    # Taken: 400 M_ROOM_IN_USE, and no second room is made.
    resp = await harness.request(
        "POST", f"{V3}/createRoom", json={"room_alias_name": "lobby"}, token=bob.token
    )
    assert_error(resp, 400, "M_ROOM_IN_USE")
    resp = await harness.request("GET", f"{V3}/joined_rooms", token=bob.token)
    assert resp.json["joined_rooms"] == [room_id]


@pytest.mark.parametrize("alias_name", ["", "a:b", "has space", "tab\there", 5])
async def test_invalid_room_alias_name(harness: Harness, alias_name: Any) -> None:
    alice = await make_user(harness, "alice")
    resp = await harness.request(
        "POST", f"{V3}/createRoom", json={"room_alias_name": alias_name}, token=alice.token
    )
    assert_error(resp, 400)
    resp = await harness.request("GET", f"{V3}/joined_rooms", token=alice.token)
    assert resp.json["joined_rooms"] == []


async def test_initial_state_overrides_preset(harness: Harness) -> None:
    alice = await make_user(harness, "alice")
    bob = await make_user(harness, "bob")
    room_id = await create_room(
        harness,
        alice,
        preset="private_chat",
        initial_state=[
            {"type": "m.room.join_rules", "state_key": "", "content": {"join_rule": "public"}},
            {"type": "m.room.history_visibility", "content": {"history_visibility": "joined"}},
            {"type": "org.example.custom", "state_key": "k", "content": {"x": 1}},
        ],
    )
    state = await state_map(harness, alice, room_id)
    assert state[("m.room.join_rules", "")]["content"] == {"join_rule": "public"}
    assert state[("m.room.history_visibility", "")]["content"] == {"history_visibility": "joined"}
    assert state[("org.example.custom", "k")]["content"] == {"x": 1}
    # Only one join rules event was sent (the preset's was skipped).
    events = await harness.hs.room_history_store.get_room_events(
        room_id,
        after=None,
        before=None,
        limit=100,
        backwards=False,
        event_filter=RoomEventFilter(types=("m.room.join_rules",)),
    )
    assert len(events) == 1
    resp = await join(harness, bob, room_id)
    assert resp.status == 200, resp.json


async def test_space_creation_content(harness: Harness) -> None:
    alice = await make_user(harness, "alice")
    room_id = await create_room(
        harness, alice, creation_content={"type": "m.space", "m.federate": False}
    )
    room = await harness.hs.rooms_store.get_room(room_id)
    assert room is not None and room.room_type == "m.space"
    state = await state_map(harness, alice, room_id)
    create = state[("m.room.create", "")]["content"]
    assert create["type"] == "m.space"
    assert create["m.federate"] is False


async def test_power_level_content_override(harness: Harness) -> None:
    alice = await make_user(harness, "alice")
    bob = await make_user(harness, "bob")
    room_id = await create_room(
        harness,
        alice,
        preset="public_chat",
        power_level_content_override={
            "events_default": 20,
            "users": {alice.user_id: 100, bob.user_id: 30},
        },
    )
    state = await state_map(harness, alice, room_id)
    pl = state[("m.room.power_levels", "")]["content"]
    assert pl["events_default"] == 20
    assert pl["users"] == {alice.user_id: 100, bob.user_id: 30}
    assert pl["state_default"] == 50


@pytest.mark.parametrize("version", ["10", "11"])
async def test_room_versions(harness: Harness, version: str) -> None:
    alice = await make_user(harness, "alice")
    room_id = await create_room(harness, alice, room_version=version)
    state = await state_map(harness, alice, room_id)
    create = state[("m.room.create", "")]["content"]
    assert create["room_version"] == version
    if version == "11":
        assert "creator" not in create
    else:
        assert create["creator"] == alice.user_id
    room = await harness.hs.rooms_store.get_room(room_id)
    assert room is not None and room.room_version == version and room.creator == alice.user_id


@pytest.mark.parametrize("version", ["1", "9", "12345", 10, ""])
async def test_unsupported_room_version(harness: Harness, version: Any) -> None:
    alice = await make_user(harness, "alice")
    resp = await harness.request(
        "POST", f"{V3}/createRoom", json={"room_version": version}, token=alice.token
    )
    assert_error(resp, 400, "M_UNSUPPORTED_ROOM_VERSION")


@pytest.mark.parametrize(
    "body",
    [
        {"name": 5},
        {"topic": ["x"]},
        {"visibility": "secret"},
        {"preset": "nope"},
        {"preset": 7},
        {"creation_content": "x"},
        {"power_level_content_override": []},
        {"initial_state": {}},
        {"initial_state": [{"type": "m.room.name"}]},
        {"initial_state": [{"type": 3, "content": {}}]},
        {"initial_state": [{"type": "a", "state_key": 1, "content": {}}]},
        {"is_direct": "yes"},
        {"invite": "@bob:test.local"},
        {"invite": ["not-a-user"]},
    ],
)
async def test_bad_bodies(harness: Harness, body: dict[str, Any]) -> None:
    alice = await make_user(harness, "alice")
    resp = await harness.request("POST", f"{V3}/createRoom", json=body, token=alice.token)
    assert_error(resp, 400)
    assert resp.json["errcode"] in ("M_BAD_JSON", "M_INVALID_PARAM"), resp.json
    resp = await harness.request("GET", f"{V3}/joined_rooms", token=alice.token)
    assert resp.json["joined_rooms"] == []


async def test_body_not_json_or_not_object(harness: Harness) -> None:
    alice = await make_user(harness, "alice")
    resp = await harness.request("POST", f"{V3}/createRoom", body=b"{nope", token=alice.token)
    assert_error(resp, 400, "M_NOT_JSON")
    resp = await harness.request("POST", f"{V3}/createRoom", json=[1, 2], token=alice.token)
    assert_error(resp, 400, "M_BAD_JSON")


async def test_no_auth(harness: Harness) -> None:
    resp = await harness.request("POST", f"{V3}/createRoom", json={})
    assert_error(resp, 401, "M_MISSING_TOKEN")
    resp = await harness.request("POST", f"{V3}/createRoom", json={}, token="bogus")
    assert_error(resp, 401, "M_UNKNOWN_TOKEN")


async def test_bad_power_level_override_makes_no_room(harness: Harness) -> None:
    """An override the auth rules refuse is a 400, not a half-made room."""
    alice = await make_user(harness, "alice")
    resp = await harness.request(
        "POST",
        f"{V3}/createRoom",
        json={"power_level_content_override": {"ban": "fifty"}},
        token=alice.token,
    )
    assert_error(resp, 400)
    resp = await harness.request("GET", f"{V3}/joined_rooms", token=alice.token)
    assert resp.json["joined_rooms"] == []


async def test_bad_initial_state_makes_no_room(harness: Harness) -> None:
    alice = await make_user(harness, "alice")
    for entry in (
        {"type": "m.room.create", "content": {"room_version": "10", "creator": "@x:y"}},
        {"type": "m.room.power_levels", "content": {"users": {"bad id": 100}}},
    ):
        resp = await harness.request(
            "POST", f"{V3}/createRoom", json={"initial_state": [entry]}, token=alice.token
        )
        assert_error(resp, 400)
    resp = await harness.request("GET", f"{V3}/joined_rooms", token=alice.token)
    assert resp.json["joined_rooms"] == []


async def test_creator_in_invite_list_is_ignored(harness: Harness) -> None:
    alice = await make_user(harness, "alice")
    room_id = await create_room(harness, alice, invite=[alice.user_id])
    content = await member_content(harness, alice, room_id, alice.user_id)
    assert content is not None and content["membership"] == "join"


async def test_oversized_initial_content_is_refused_before_the_room_exists(
    harness: Harness,
) -> None:
    alice = await make_user(harness, "bigtopic")
    before = await harness.hs.rooms_store.count_rooms()
    for body in (
        {"topic": "x" * 70_000},
        {"name": "n" * 70_000},
        {"initial_state": [{"type": "org.example.big", "content": {"v": "y" * 70_000}}]},
    ):
        resp = await harness.request(
            "POST", "/_matrix/client/v3/createRoom", json=body, token=alice.token
        )
        assert (resp.status, resp.json["errcode"]) == (413, "M_TOO_LARGE")
    assert await harness.hs.rooms_store.count_rooms() == before
