"""Sliding sync list filters over HTTP, as Synapse applies them (plus `spaces`
and `room_name_like`, which Synapse 1.163 answers with a 500)."""

from __future__ import annotations

from typing import Any
from urllib.parse import quote

import pytest

from tests.sliding_sync.helpers import slide
from tests.support.harness import Harness
from tests.support.users import TestUser, make_user
from tests.sync.helpers import body
from tests.user_streams.helpers import call, public_room


async def create(h: Harness, user: TestUser, **fields: Any) -> str:
    resp = await call(h, "POST", "/createRoom", user, fields)
    assert resp.status == 200, resp.json
    room_id: str = resp.json["room_id"]
    return room_id


async def listed(h: Harness, user: TestUser, filters: Any) -> tuple[int, set[str]]:
    spec = {"ranges": [[0, 49]], "timeline_limit": 0, "filters": filters}
    got = body(await slide(h, user, {"lists": {"l": spec}}))
    return got["lists"]["l"]["count"], set(got["rooms"])


async def set_direct(h: Harness, user: TestUser, content: dict[str, Any]) -> None:
    path = f"/user/{quote(user.user_id)}/account_data/m.direct"
    resp = await call(h, "PUT", path, user, content)
    assert resp.status == 200, resp.json


async def two_rooms(h: Harness) -> tuple[TestUser, TestUser, str, str]:
    alice = await make_user(h, "alice")
    bob = await make_user(h, "bob")
    return alice, bob, await public_room(h, alice, bob), await public_room(h, alice, bob)


async def test_is_dm_follows_m_direct(h: Harness) -> None:
    alice, bob, dm, group = await two_rooms(h)
    await set_direct(h, alice, {bob.user_id: [dm], "junk": "not a list"})
    assert await listed(h, alice, {"is_dm": True}) == (1, {dm})
    assert await listed(h, alice, {"is_dm": False}) == (1, {group})
    got = body(await slide(h, alice, {"lists": {"all": {"ranges": [[0, 9]]}}}))
    assert got["rooms"][dm]["is_dm"] is True
    assert "is_dm" not in got["rooms"][group]


async def test_is_encrypted_and_is_invite(h: Harness) -> None:
    alice = await make_user(h, "alice")
    bob = await make_user(h, "bob")
    encryption = {
        "type": "m.room.encryption",
        "state_key": "",
        "content": {"algorithm": "m.megolm.v1.aes-sha2"},
    }
    secret = await create(h, bob, initial_state=[encryption])
    plain = await create(h, bob)
    invited = await create(h, alice)
    for room in (secret, plain):
        resp = await call(h, "POST", f"/rooms/{room}/invite", bob, {"user_id": alice.user_id})
        assert resp.status == 200, resp.json
    resp = await call(h, "POST", f"/rooms/{plain}/join", alice, {})
    assert resp.status == 200, resp.json
    resp = await call(h, "POST", f"/rooms/{secret}/join", alice, {})
    assert resp.status == 200, resp.json
    resp = await call(h, "POST", f"/rooms/{invited}/invite", alice, {"user_id": bob.user_id})
    assert resp.status == 200, resp.json
    assert await listed(h, alice, {"is_encrypted": True}) == (1, {secret})
    assert await listed(h, alice, {"is_encrypted": False}) == (2, {plain, invited})
    assert await listed(h, bob, {"is_invite": True}) == (1, {invited})
    assert await listed(h, bob, {"is_invite": False}) == (2, {secret, plain})
    # Filters are ANDed.
    assert await listed(h, bob, {"is_invite": False, "is_encrypted": False}) == (1, {plain})


async def test_room_types_with_null_for_no_type(h: Harness) -> None:
    alice = await make_user(h, "alice")
    space = await create(h, alice, creation_content={"type": "m.space"})
    room = await create(h, alice)
    other = await create(h, alice, creation_content={"type": "org.example.kind"})
    assert await listed(h, alice, {"room_types": ["m.space"]}) == (1, {space})
    assert await listed(h, alice, {"room_types": [None]}) == (1, {room})
    assert await listed(h, alice, {"room_types": [None, "m.space"]}) == (2, {room, space})
    assert await listed(h, alice, {"not_room_types": ["m.space"]}) == (2, {room, other})
    assert await listed(h, alice, {"not_room_types": [None]}) == (2, {space, other})
    # not_room_types wins over room_types.
    both = {"room_types": ["m.space", None], "not_room_types": ["m.space"]}
    assert await listed(h, alice, both) == (1, {room})


async def test_tags_and_not_tags(h: Harness) -> None:
    alice = await make_user(h, "alice")
    favourite = await public_room(h, alice)
    low = await public_room(h, alice)
    both = await public_room(h, alice)
    plain = await public_room(h, alice)
    for room, tags in (
        (favourite, ["m.favourite"]),
        (low, ["m.lowpriority"]),
        (both, ["m.favourite", "m.lowpriority"]),
    ):
        for tag in tags:
            path = f"/user/{quote(alice.user_id)}/rooms/{room}/tags/{tag}"
            resp = await call(h, "PUT", path, alice, {})
            assert resp.status == 200, resp.json
    assert await listed(h, alice, {"tags": ["m.favourite"]}) == (2, {favourite, both})
    assert await listed(h, alice, {"not_tags": ["m.lowpriority"]}) == (2, {favourite, plain})
    # not_tags takes priority over tags.
    mixed = {"tags": ["m.favourite"], "not_tags": ["m.lowpriority"]}
    assert await listed(h, alice, mixed) == (1, {favourite})
    # A tag removed no longer matches.
    path = f"/user/{quote(alice.user_id)}/rooms/{favourite}/tags/m.favourite"
    assert (await call(h, "DELETE", path, alice)).status == 200
    assert await listed(h, alice, {"tags": ["m.favourite"]}) == (1, {both})


async def test_spaces_are_direct_children_with_via(h: Harness) -> None:
    alice = await make_user(h, "alice")
    bob = await make_user(h, "bob")
    space = await create(h, alice, creation_content={"type": "m.space"})
    child = await public_room(h, alice)
    removed = await public_room(h, alice)
    grandchild = await public_room(h, alice)
    sub = await create(h, alice, creation_content={"type": "m.space"})
    await public_room(h, alice)
    for parent, room, via in (
        (space, child, ["test.local"]),
        (space, removed, []),
        (space, sub, ["test.local"]),
        (sub, grandchild, ["test.local"]),
    ):
        path = f"/rooms/{parent}/state/m.space.child/{room}"
        resp = await call(h, "PUT", path, alice, {"via": via})
        assert resp.status == 200, resp.json
    assert await listed(h, alice, {"spaces": [space]}) == (2, {child, sub})
    assert await listed(h, alice, {"spaces": [space, sub]}) == (3, {child, sub, grandchild})
    assert await listed(h, alice, {"spaces": ["!unknown:test.local"]}) == (0, set())
    # A space the user is not joined to names no rooms for them.
    await public_room(h, bob)
    resp = await call(h, "POST", f"/rooms/{child}/invite", alice, {"user_id": bob.user_id})
    assert resp.status == 200, resp.json
    assert await listed(h, bob, {"spaces": [space]}) == (0, set())


async def test_room_name_like(h: Harness) -> None:
    alice = await make_user(h, "alice")
    apollo = await create(h, alice, name="Project Apollo")
    await create(h, alice, name="Lunch")
    await create(h, alice)
    assert await listed(h, alice, {"room_name_like": "apollo"}) == (1, {apollo})
    assert await listed(h, alice, {"room_name_like": "zzz"}) == (0, set())


async def test_ranges_index_the_filtered_list(h: Harness) -> None:
    alice = await make_user(h, "alice")
    spaces = [await create(h, alice, creation_content={"type": "m.space"}) for _ in range(3)]
    for _ in range(3):
        await create(h, alice)
    spec = {"ranges": [[0, 0]], "timeline_limit": 0, "filters": {"room_types": ["m.space"]}}
    got = body(await slide(h, alice, {"lists": {"s": spec}}))
    assert got["lists"] == {"s": {"count": 3}}
    assert list(got["rooms"]) == [spaces[-1]]


@pytest.mark.parametrize(
    "filters",
    [
        [],
        {"is_dm": "yes"},
        {"is_encrypted": 1},
        {"room_types": "m.space"},
        {"room_types": [1]},
        {"not_room_types": [{}]},
        {"spaces": [None]},
        {"tags": ["x" * 300]},
        {"not_tags": ["t"] * 101},
        {"room_name_like": 5},
    ],
)
async def test_bad_filters_are_a_400(h: Harness, filters: Any) -> None:
    alice = await make_user(h, "alice")
    resp = await slide(h, alice, {"lists": {"l": {"ranges": [[0, 1]], "filters": filters}}})
    assert resp.status == 400, resp.body
    assert resp.json["errcode"] in ("M_BAD_JSON", "M_INVALID_PARAM")


async def test_what_synapse_answers_with_a_500_is_a_200(h: Harness) -> None:
    """Synapse 1.163 500s on `spaces`, `room_name_like`, `["*", ""]` and a list
    without `ranges` together with extensions."""
    alice = await make_user(h, "alice")
    room = await create(h, alice, name="Somewhere")
    req = {
        "lists": {
            "no_ranges": {"timeline_limit": 1},
            "stars": {"ranges": [[0, 0]], "required_state": [["*", ""]]},
            "spaces": {"ranges": [[0, 0]], "filters": {"spaces": [room]}},
            "named": {"ranges": [[0, 0]], "filters": {"room_name_like": "where"}},
        },
        "extensions": {
            "to_device": {"enabled": True},
            "e2ee": {"enabled": True},
            "account_data": {"enabled": True},
            "receipts": {"enabled": True},
            "typing": {"enabled": True},
        },
    }
    got = body(await slide(h, alice, req))
    assert got["lists"] == {
        "no_ranges": {"count": 1},
        "stars": {"count": 1},
        "spaces": {"count": 0},
        "named": {"count": 1},
    }
    state = {(e["type"], e["state_key"]) for e in got["rooms"][room]["required_state"]}
    assert ("m.room.name", "") in state and ("m.room.create", "") in state
    assert all(key == "" for _, key in state)


async def test_a_dm_change_is_sent_to_a_connection(h: Harness) -> None:
    alice, bob, dm, group = await two_rooms(h)
    await set_direct(h, alice, {bob.user_id: [dm]})
    req = {"lists": {"all": {"ranges": [[0, 9]], "timeline_limit": 1}}}
    first = body(await slide(h, alice, req))
    assert first["rooms"][dm]["is_dm"] is True and "is_dm" not in first["rooms"][group]
    await set_direct(h, alice, {bob.user_id: [group]})
    await h.restart()
    got = body(await slide(h, alice, req, pos=first["pos"]))
    assert {r: room["is_dm"] for r, room in got["rooms"].items()} == {dm: False, group: True}
    assert all(room["timeline"] == [] for room in got["rooms"].values())
    assert body(await slide(h, alice, req, pos=got["pos"]))["rooms"] == {}
