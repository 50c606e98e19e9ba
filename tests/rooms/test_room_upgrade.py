"""`POST /rooms/{roomId}/upgrade`: the replacement room, the tombstone, aliases, power levels."""

from __future__ import annotations

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
    send,
    send_ok,
    state_map,
    upgrade,
)
from tests.rooms.reading_support import unlimited_harness
from tests.support.harness import Harness
from tests.support.users import TestUser, make_user


@pytest.fixture
async def harness(make_hs_config):  # type: ignore[no-untyped-def]
    async for h in unlimited_harness(make_hs_config):
        yield h


async def upgrade_ok(harness: Harness, user: TestUser, room_id: str, version: str = "11") -> str:
    resp = await upgrade(harness, user, room_id, {"new_version": version})
    assert resp.status == 200, resp.json
    new_room: str = resp.json["replacement_room"]
    assert new_room != room_id and new_room.startswith("!") and new_room.endswith(":test.local")
    return new_room


async def content(harness: Harness, user: TestUser, room_id: str, event_type: str) -> Any:
    resp = await get_state_event(harness, user, room_id, event_type)
    assert resp.status == 200, (event_type, resp.json)
    return resp.json


async def test_upgrade_copies_state_and_tombstones_old_room(harness: Harness) -> None:
    alice = await make_user(harness, "alice")
    bob = await make_user(harness, "bob")
    mallory = await make_user(harness, "mallory")
    old = await create_room(
        harness,
        alice,
        room_version="10",
        preset="public_chat",
        name="Old name",
        topic="Old topic",
        room_alias_name="town",
        initial_state=[
            {"type": "m.room.avatar", "content": {"url": "mxc://test.local/avatar"}},
            {"type": "m.room.encryption", "content": {"algorithm": "m.megolm.v1.aes-sha2"}},
            {"type": "m.room.server_acl", "content": {"allow": ["*"], "deny": ["evil.example"]}},
            {"type": "m.room.guest_access", "content": {"guest_access": "forbidden"}},
            {"type": "org.example.custom", "content": {"not": "copied"}},
        ],
    )
    assert (await join(harness, bob, old)).status == 200
    assert (await join(harness, mallory, old)).status == 200
    resp = await membership_action(
        harness, alice, old, "ban", {"user_id": mallory.user_id, "reason": "spam"}
    )
    assert resp.status == 200
    resp = await harness.request(
        "PUT",
        f"{V3}/directory/room/{q('#alt:test.local')}",
        json={"room_id": old},
        token=alice.token,
    )
    assert resp.status == 200, resp.json
    assert (
        await put_state(
            harness,
            alice,
            old,
            "m.room.canonical_alias",
            {"alias": "#town:test.local", "alt_aliases": ["#alt:test.local"]},
        )
    ).status == 200
    resp = await harness.request(
        "PUT",
        f"{V3}/directory/list/room/{q(old)}",
        json={"visibility": "public"},
        token=alice.token,
    )
    assert resp.status == 200
    last_before = await send_ok(harness, bob, old, "last words")
    old_pl = await content(harness, alice, old, "m.room.power_levels")

    new = await upgrade_ok(harness, alice, old, "11")

    # The replacement room's create event.
    create = (await state_map(harness, alice, new))[("m.room.create", "")]
    assert create["sender"] == alice.user_id
    assert create["content"]["room_version"] == "11"
    assert create["content"]["predecessor"] == {"room_id": old, "event_id": last_before}
    assert "creator" not in create["content"]  # v11
    assert "type" not in create["content"]

    # Copied state.
    assert await content(harness, alice, new, "m.room.name") == {"name": "Old name"}
    assert await content(harness, alice, new, "m.room.topic") == {"topic": "Old topic"}
    assert await content(harness, alice, new, "m.room.join_rules") == {"join_rule": "public"}
    hv = await content(harness, alice, new, "m.room.history_visibility")
    assert hv == {"history_visibility": "shared"}
    ga = await content(harness, alice, new, "m.room.guest_access")
    assert ga == {"guest_access": "forbidden"}
    avatar = await content(harness, alice, new, "m.room.avatar")
    assert avatar == {"url": "mxc://test.local/avatar"}
    encryption = await content(harness, alice, new, "m.room.encryption")
    assert encryption == {"algorithm": "m.megolm.v1.aes-sha2"}
    acl = await content(harness, alice, new, "m.room.server_acl")
    assert acl == {"allow": ["*"], "deny": ["evil.example"]}
    assert await content(harness, alice, new, "m.room.power_levels") == old_pl
    new_state = await state_map(harness, alice, new)
    assert ("org.example.custom", "") not in new_state
    # Bans follow; nobody else is moved or invited.
    assert new_state[("m.room.member", mallory.user_id)]["content"]["membership"] == "ban"
    assert new_state[("m.room.member", mallory.user_id)]["content"]["reason"] == "spam"
    assert ("m.room.member", bob.user_id) not in new_state
    members = {k[1] for k, e in new_state.items() if k[0] == "m.room.member"}
    assert members == {alice.user_id, mallory.user_id}

    # The tombstone and the restricted old room.
    tombstone = await content(harness, bob, old, "m.room.tombstone")
    assert tombstone == {"body": "This room has been replaced", "replacement_room": new}
    restricted = await content(harness, bob, old, "m.room.power_levels")
    assert restricted["events_default"] == 50 and restricted["invite"] == 50
    assert_error(await send(harness, bob, old), 403, "M_FORBIDDEN")
    await send_ok(harness, alice, old, "admins may still speak")

    # Aliases and the canonical alias moved; so did the directory listing.
    for alias in ("#town:test.local", "#alt:test.local"):
        resp = await harness.request("GET", f"{V3}/directory/room/{q(alias)}")
        assert resp.json["room_id"] == new, alias
    canonical = await content(harness, alice, new, "m.room.canonical_alias")
    assert canonical == {"alias": "#town:test.local", "alt_aliases": ["#alt:test.local"]}
    old_canonical = await content(harness, alice, old, "m.room.canonical_alias")
    assert "alias" not in old_canonical and not old_canonical.get("alt_aliases")
    resp = await harness.request("GET", f"{V3}/directory/list/room/{q(old)}")
    assert resp.json == {"visibility": "private"}
    resp = await harness.request("GET", f"{V3}/directory/list/room/{q(new)}")
    assert resp.json == {"visibility": "public"}

    # Members follow the tombstone themselves; a banned user cannot.
    assert (await join(harness, bob, new)).status == 200
    await send_ok(harness, bob, new, "hello again")
    assert_error(await join(harness, mallory, new), 403)

    # The new room shows up as a join in alice's sync with its predecessor.
    resp = await harness.request("GET", f"{V3}/sync", token=alice.token)
    assert new in resp.json["rooms"]["join"]


async def test_upgrader_raised_then_restored(harness: Harness) -> None:
    alice = await make_user(harness, "alice")
    bob = await make_user(harness, "bob")
    old = await create_room(
        harness,
        alice,
        room_version="11",
        preset="public_chat",
        power_level_content_override={
            "events": {"m.room.tombstone": 60, "m.room.power_levels": 100, "m.room.name": 100}
        },
    )
    assert (await join(harness, bob, old)).status == 200
    pl = await content(harness, alice, old, "m.room.power_levels")
    pl["users"][bob.user_id] = 60
    assert (await put_state(harness, alice, old, "m.room.power_levels", pl)).status == 200
    assert (await put_state(harness, alice, old, "m.room.name", {"name": "n"})).status == 200

    new = await upgrade_ok(harness, bob, old, "10")
    create = (await state_map(harness, bob, new))[("m.room.create", "")]
    assert create["content"]["creator"] == bob.user_id  # v10
    assert create["content"]["room_version"] == "10"
    assert await content(harness, bob, new, "m.room.name") == {"name": "n"}
    final = await content(harness, bob, new, "m.room.power_levels")
    assert final == pl
    assert final["users"][bob.user_id] == 60

    # Bob was raised to 100 for the copy (the name needs 100), then restored.
    resp = await harness.request(
        "GET", f"{V3}/rooms/{q(new)}/messages?dir=f&limit=50", token=bob.token
    )
    levels = [
        e["content"]["users"][bob.user_id]
        for e in resp.json["chunk"]
        if e["type"] == "m.room.power_levels"
    ]
    assert levels == [100, 60]
    # Bob could not raise the old room's levels (they need 100): the upgrade still succeeds.
    tombstone = await content(harness, alice, old, "m.room.tombstone")
    assert tombstone["replacement_room"] == new


async def test_upgrade_space_copies_children(harness: Harness) -> None:
    alice = await make_user(harness, "alice")
    child = await create_room(harness, alice)
    removed = await create_room(harness, alice)
    space = await create_room(
        harness,
        alice,
        creation_content={"type": "m.space"},
        initial_state=[
            {"type": "m.space.child", "state_key": child, "content": {"via": ["test.local"]}},
            {"type": "m.space.child", "state_key": removed, "content": {}},
        ],
    )
    new = await upgrade_ok(harness, alice, space)
    state = await state_map(harness, alice, new)
    assert state[("m.room.create", "")]["content"]["type"] == "m.space"
    assert state[("m.space.child", child)]["content"] == {"via": ["test.local"]}
    assert ("m.space.child", removed) not in state


async def test_upgrade_refusals(harness: Harness) -> None:
    alice = await make_user(harness, "alice")
    bob = await make_user(harness, "bob")
    eve = await make_user(harness, "eve")
    room_id = await create_room(harness, alice, preset="public_chat")
    assert (await join(harness, bob, room_id)).status == 200

    assert_error(await upgrade(harness, bob, room_id, {"new_version": "11"}), 403, "M_FORBIDDEN")
    assert_error(await upgrade(harness, eve, room_id, {"new_version": "11"}), 403, "M_FORBIDDEN")
    for version in ("1", "9", "13", 11, None):
        resp = await upgrade(harness, alice, room_id, {"new_version": version})
        assert_error(resp, 400, "M_UNSUPPORTED_ROOM_VERSION")
    assert_error(await upgrade(harness, alice, room_id, {}), 400, "M_MISSING_PARAM")
    resp = await upgrade(harness, alice, "!missing:test.local", {"new_version": "11"})
    assert_error(resp, 404, "M_NOT_FOUND")
    assert_error(await upgrade(harness, alice, "bad", {"new_version": "11"}), 400)
    resp = await harness.request(
        "POST", f"{V3}/rooms/{q(room_id)}/upgrade", json={"new_version": "11"}
    )
    assert_error(resp, 401, "M_MISSING_TOKEN")
    # Nothing was changed by the refusals.
    state = await state_map(harness, alice, room_id)
    assert ("m.room.tombstone", "") not in state
