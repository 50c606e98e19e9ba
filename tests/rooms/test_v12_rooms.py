"""Room version 12 rooms made and used locally, through HTTP, on both engines.

A v12 room's ID is `!` and its create event's reference hash (no server
name), its creators (the sender and `additional_creators`) outrank everyone
and are never listed in the power levels.
"""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from tests.rooms.helpers import (
    V3,
    assert_error,
    create_room,
    get_state_event,
    join,
    membership_action,
    put_state,
    q,
    redact,
    send_ok,
    state_map,
    upgrade,
)
from tests.sliding_sync.helpers import ALL, slide
from tests.spaces.support import ADMIN_V1, V1_CLIENT, add_child, create_space, ok, sh
from tests.support.harness import Harness
from tests.support.users import TestUser, make_user

__all__ = ["sh"]


async def get(h: Harness, user: TestUser, path: str) -> Any:
    return ok(await h.request("GET", path, token=user.token))


def assert_hash_room_id(room_id: str, create: dict[str, Any]) -> None:
    assert ":" not in room_id
    assert room_id == "!" + create["event_id"][1:]


async def test_create_v12_room(sh: Harness) -> None:
    alice = await make_user(sh, "alice")
    caps = await get(sh, alice, f"{V3}/capabilities")
    assert caps["capabilities"]["m.room_versions"]["available"]["12"] == "stable"
    assert caps["capabilities"]["m.room_versions"]["default"] == "10"

    room_id = await create_room(sh, alice, room_version="12", name="Twelve")
    state = await state_map(sh, alice, room_id)
    create = state[("m.room.create", "")]
    assert_hash_room_id(room_id, create)
    assert create["content"] == {"room_version": "12"}
    pl = state[("m.room.power_levels", "")]["content"]
    assert pl["users"] == {}
    assert pl["events"]["m.room.tombstone"] == 150
    assert state[("m.room.name", "")]["content"] == {"name": "Twelve"}
    room = await sh.hs.rooms_store.get_room(room_id)
    assert room is not None and room.room_version == "12" and room.creator == alice.user_id
    # The stored create event carries no room_id; every other event does.
    stored = await sh.hs.event_cache.get(create["event_id"])
    assert stored is not None and "room_id" not in stored.event.get_pdu_json()
    # The default stays v10.
    other = await create_room(sh, alice)
    assert other.endswith(":test.local")


async def test_alike_rooms_in_one_millisecond_get_distinct_ids(sh: Harness) -> None:
    alice = await make_user(sh, "alice")
    # Virtual time stands still: both create events would hash alike.
    first = await create_room(sh, alice, room_version="12")
    second = await create_room(sh, alice, room_version="12")
    # Alike requests at once: planned alike, the later one moves on.
    at_once = await asyncio.gather(
        *(create_room(sh, alice, room_version="12", name="same") for _ in range(3))
    )
    rooms = {first, second, *at_once}
    assert len(rooms) == 5
    for room_id in rooms:
        create = (await state_map(sh, alice, room_id))[("m.room.create", "")]
        assert_hash_room_id(room_id, create)


async def test_creators_outrank_everyone(sh: Harness) -> None:
    alice = await make_user(sh, "alice")
    bob = await make_user(sh, "bob")
    carol = await make_user(sh, "carol")
    room_id = await create_room(
        sh,
        alice,
        room_version="12",
        preset="public_chat",
        creation_content={"additional_creators": [bob.user_id]},
        power_level_content_override={"users": {carol.user_id: 100}},
    )
    create = (await state_map(sh, alice, room_id))[("m.room.create", "")]
    assert create["content"]["additional_creators"] == [bob.user_id]
    for user in (bob, carol):
        assert (await join(sh, user, room_id)).status == 200
    # Carol at 100 cannot kick a creator nor list one in the power levels.
    resp = await membership_action(sh, carol, room_id, "kick", {"user_id": bob.user_id})
    assert_error(resp, 403, "M_FORBIDDEN")
    pl = {"users": {carol.user_id: 100, alice.user_id: 100}}
    assert_error(await put_state(sh, carol, room_id, "m.room.power_levels", pl), 403)
    # The additional creator can kick Carol, whatever her level.
    resp = await membership_action(sh, bob, room_id, "kick", {"user_id": carol.user_id})
    assert resp.status == 200, resp.json
    # Only creators (150) may replace the room.
    tomb = {"body": "gone", "replacement_room": "!x"}
    assert (await put_state(sh, bob, room_id, "m.room.tombstone", tomb)).status == 200


async def test_trusted_private_chat_invitees_are_creators(sh: Harness) -> None:
    alice = await make_user(sh, "alice")
    bob = await make_user(sh, "bob")
    room_id = await create_room(
        sh, alice, room_version="12", preset="trusted_private_chat", invite=[bob.user_id]
    )
    state = await state_map(sh, alice, room_id)
    assert state[("m.room.create", "")]["content"]["additional_creators"] == [bob.user_id]
    assert state[("m.room.power_levels", "")]["content"]["users"] == {}
    assert state[("m.room.member", bob.user_id)]["content"]["membership"] == "invite"


@pytest.mark.parametrize(
    "body",
    [
        {"power_level_content_override": {"users": {"@alice:test.local": 100}}},
        {
            "creation_content": {"additional_creators": ["@bob:test.local"]},
            "initial_state": [
                {"type": "m.room.power_levels", "content": {"users": {"@bob:test.local": 50}}}
            ],
        },
        {"creation_content": {"additional_creators": "@bob:test.local"}},
        {"creation_content": {"additional_creators": ["not a user"]}},
    ],
)
async def test_creators_in_power_levels_are_refused(sh: Harness, body: Any) -> None:
    alice = await make_user(sh, "alice")
    before = await sh.hs.rooms_store.count_rooms()
    resp = await sh.request(
        "POST", f"{V3}/createRoom", json={"room_version": "12", **body}, token=alice.token
    )
    assert_error(resp, 400, "M_BAD_JSON")
    assert await sh.hs.rooms_store.count_rooms() == before


async def test_client_paths_with_a_serverless_room_id(sh: Harness) -> None:
    alice = await make_user(sh, "alice")
    bob = await make_user(sh, "bob", admin=True)
    room_id = await create_room(
        sh, alice, room_version="12", preset="public_chat", room_alias_name="twelve"
    )
    r = q(room_id)
    alias = ok(await sh.request("GET", f"{V3}/directory/room/{q('#twelve:test.local')}"))
    assert alias["room_id"] == room_id
    body = {"room_id": room_id}
    resp = await sh.request(
        "PUT", f"{V3}/directory/room/{q('#other:test.local')}", json=body, token=alice.token
    )
    assert resp.status == 200, resp.json
    assert (await join(sh, bob, "#other:test.local")).status == 200
    assert room_id in (await get(sh, bob, f"{V3}/joined_rooms"))["joined_rooms"]

    first = await send_ok(sh, alice, room_id, "one")
    second = await send_ok(sh, bob, room_id, "two")
    resp = await put_state(sh, alice, room_id, "m.room.topic", {"topic": "t"})
    assert resp.status == 200, resp.json
    topic = await get_state_event(sh, bob, room_id, "m.room.topic")
    assert topic.json == {"topic": "t"}
    assert (await redact(sh, alice, room_id, second, "r1")).status == 200

    members = await get(sh, bob, f"{V3}/rooms/{r}/joined_members")
    assert set(members["joined"]) == {alice.user_id, bob.user_id}
    chunk = (await get(sh, bob, f"{V3}/rooms/{r}/members"))["chunk"]
    assert {e["state_key"] for e in chunk} == {alice.user_id, bob.user_id}
    messages = (await get(sh, bob, f"{V3}/rooms/{r}/messages?dir=b&limit=20"))["chunk"]
    assert [e["event_id"] for e in messages if e["type"] == "m.room.message"][-1] == first
    assert all(e["room_id"] == room_id for e in messages)
    context = await get(sh, bob, f"{V3}/rooms/{r}/context/{q(first)}")
    assert context["event"]["event_id"] == first
    receipt = f"{V3}/rooms/{r}/receipt/m.read/{q(first)}"
    assert (await sh.request("POST", receipt, json={}, token=bob.token)).status == 200
    data = f"{V3}/user/{q(bob.user_id)}/rooms/{r}/account_data/x.test"
    assert (await sh.request("PUT", data, json={"a": 1}, token=bob.token)).status == 200
    assert await get(sh, bob, data) == {"a": 1}
    typing = f"{V3}/rooms/{r}/typing/{q(bob.user_id)}"
    body = {"typing": True, "timeout": 1000}
    assert (await sh.request("PUT", typing, json=body, token=bob.token)).status == 200

    synced = await get(sh, bob, f"{V3}/sync")
    joined = synced["rooms"]["join"][room_id]
    assert first in [e["event_id"] for e in joined["timeline"]["events"]]
    assert joined["account_data"]["events"] == [{"type": "x.test", "content": {"a": 1}}]
    sliding = ok(await slide(sh, bob, {"lists": {"all": ALL}}))
    assert room_id in sliding["rooms"]
    assert sliding["rooms"][room_id]["required_state"][0]["type"] == "m.room.create"

    space = await create_space(sh, alice, "Space", room_version="12")
    await add_child(sh, alice, space, room_id)
    rooms = (await get(sh, alice, f"{V1_CLIENT}/rooms/{q(space)}/hierarchy"))["rooms"]
    assert [x["room_id"] for x in rooms] == [space, room_id]
    assert rooms[1]["room_version"] == "12"

    details = await get(sh, bob, f"{ADMIN_V1}/rooms/{r}")
    assert details["room_id"] == room_id and details["version"] == "12"
    assert details["creator"] == alice.user_id
    admin_members = await get(sh, bob, f"{ADMIN_V1}/rooms/{r}/members")
    assert set(admin_members["members"]) == {alice.user_id, bob.user_id}

    assert (await membership_action(sh, bob, room_id, "leave")).status == 200
    assert (await membership_action(sh, bob, room_id, "forget")).status == 200


@pytest.mark.parametrize("old_version", ["10", "12"])
async def test_upgrade_to_v12(sh: Harness, old_version: str) -> None:
    alice = await make_user(sh, "alice")
    bob = await make_user(sh, "bob")
    carol = await make_user(sh, "carol")
    # Listed in a v10 room's power levels, not in a v12 room's.
    users = {bob.user_id: 50} if old_version == "12" else {alice.user_id: 100, bob.user_id: 50}
    old = await create_room(
        sh,
        alice,
        room_version=old_version,
        preset="public_chat",
        room_alias_name="up",
        power_level_content_override={"users": users},
    )
    assert (await join(sh, bob, old)).status == 200
    body = {"new_version": "12", "additional_creators": [carol.user_id]}
    assert_error(await upgrade(sh, bob, old, body), 403, "M_FORBIDDEN")
    resp = await upgrade(sh, alice, old, body)
    assert resp.status == 200, resp.json
    new = resp.json["replacement_room"]

    state = await state_map(sh, alice, new)
    create = state[("m.room.create", "")]
    assert_hash_room_id(new, create)
    assert create["content"]["predecessor"]["room_id"] == old
    assert create["content"]["additional_creators"] == [carol.user_id]
    assert state[("m.room.power_levels", "")]["content"]["users"] == {bob.user_id: 50}
    tombstone = await get_state_event(sh, alice, old, "m.room.tombstone")
    assert tombstone.json["replacement_room"] == new
    alias = ok(await sh.request("GET", f"{V3}/directory/room/{q('#up:test.local')}"))
    assert alias["room_id"] == new
    assert (await join(sh, bob, new)).status == 200
    await send_ok(sh, bob, new, "moved")


@pytest.mark.parametrize("creators", ["@bob:test.local", ["bad"], [1]])
async def test_upgrade_refuses_bad_additional_creators(sh: Harness, creators: Any) -> None:
    alice = await make_user(sh, "alice")
    room_id = await create_room(sh, alice)
    body = {"new_version": "12", "additional_creators": creators}
    assert_error(await upgrade(sh, alice, room_id, body), 400, "M_INVALID_PARAM")
    tomb = await get_state_event(sh, alice, room_id, "m.room.tombstone")
    assert tomb.status == 404
