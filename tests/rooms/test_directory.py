"""Room aliases, room directory visibility and /publicRooms."""

from __future__ import annotations

from typing import Any
from urllib.parse import urlencode

import pytest

from tests.rooms.helpers import (
    V3,
    assert_error,
    create_room,
    join,
    put_state,
    q,
)
from tests.rooms.reading_support import unlimited_harness
from tests.support.harness import Harness, Response
from tests.support.users import TestUser, make_user


@pytest.fixture
async def harness(make_hs_config):  # type: ignore[no-untyped-def]
    async for h in unlimited_harness(make_hs_config):
        yield h


async def put_alias(harness: Harness, user: TestUser, alias: str, room_id: Any) -> Response:
    return await harness.request(
        "PUT", f"{V3}/directory/room/{q(alias)}", json={"room_id": room_id}, token=user.token
    )


async def set_visibility(
    harness: Harness, user: TestUser, room_id: str, visibility: str
) -> Response:
    return await harness.request(
        "PUT",
        f"{V3}/directory/list/room/{q(room_id)}",
        json={"visibility": visibility},
        token=user.token,
    )


async def test_alias_lifecycle(harness: Harness) -> None:
    alice = await make_user(harness, "alice")
    room_id = await create_room(harness, alice)
    alias = "#lobby:test.local"
    assert (await put_alias(harness, alice, alias, room_id)).status == 200
    resp = await harness.request("GET", f"{V3}/directory/room/{q(alias)}")
    assert resp.status == 200
    assert resp.json == {"room_id": room_id, "servers": ["test.local"]}

    resp = await put_alias(harness, alice, alias, room_id)
    assert_error(resp, 409, "M_UNKNOWN")

    resp = await harness.request("GET", f"{V3}/rooms/{q(room_id)}/aliases", token=alice.token)
    assert resp.json == {"aliases": [alias]}

    resp = await harness.request("DELETE", f"{V3}/directory/room/{q(alias)}", token=alice.token)
    assert resp.status == 200
    resp = await harness.request("GET", f"{V3}/directory/room/{q(alias)}")
    assert_error(resp, 404, "M_NOT_FOUND")
    resp = await harness.request("DELETE", f"{V3}/directory/room/{q(alias)}", token=alice.token)
    assert_error(resp, 404, "M_NOT_FOUND")


async def test_alias_refusals(harness: Harness) -> None:
    alice = await make_user(harness, "alice")
    eve = await make_user(harness, "eve")
    room_id = await create_room(harness, alice)
    assert_error(await put_alias(harness, alice, "lobby", room_id), 400, "M_INVALID_PARAM")
    assert_error(
        await put_alias(harness, alice, "#lobby:elsewhere.example", room_id), 400, "M_INVALID_PARAM"
    )
    assert_error(
        await put_alias(harness, alice, "#" + "x" * 250 + ":test.local", room_id),
        400,
        "M_INVALID_PARAM",
    )
    assert_error(await put_alias(harness, alice, "#a:test.local", "!nope:test.local"), 404)
    resp = await harness.request(
        "PUT", f"{V3}/directory/room/{q('#a:test.local')}", json={}, token=alice.token
    )
    assert_error(resp, 400)
    # Not in the room.
    assert_error(await put_alias(harness, eve, "#eve:test.local", room_id), 403, "M_FORBIDDEN")
    resp = await harness.request("GET", f"{V3}/directory/room/{q('#ghost:test.local')}")
    assert_error(resp, 404, "M_NOT_FOUND")
    resp = await harness.request("GET", f"{V3}/directory/room/{q('ghost')}")
    assert_error(resp, 400, "M_INVALID_PARAM")
    resp = await harness.request("GET", f"{V3}/rooms/{q(room_id)}/aliases", token=eve.token)
    assert_error(resp, 403, "M_FORBIDDEN")


async def test_alias_delete_permissions(harness: Harness) -> None:
    alice = await make_user(harness, "alice")
    bob = await make_user(harness, "bob")
    carol = await make_user(harness, "carol")
    admin = await make_user(harness, "root", admin=True)
    room_id = await create_room(harness, alice, preset="public_chat")
    for user in (bob, carol):
        assert (await join(harness, user, room_id)).status == 200
    # Bob (an ordinary member) may create an alias and delete his own.
    assert (await put_alias(harness, bob, "#bob:test.local", room_id)).status == 200
    assert (await put_alias(harness, bob, "#bob2:test.local", room_id)).status == 200
    assert (await put_alias(harness, bob, "#bob3:test.local", room_id)).status == 200
    resp = await harness.request(
        "DELETE", f"{V3}/directory/room/{q('#bob:test.local')}", token=carol.token
    )
    assert_error(resp, 403, "M_FORBIDDEN")
    resp = await harness.request(
        "DELETE", f"{V3}/directory/room/{q('#bob:test.local')}", token=bob.token
    )
    assert resp.status == 200
    # The room admin may delete anyone's alias, and so may a server admin.
    resp = await harness.request(
        "DELETE", f"{V3}/directory/room/{q('#bob2:test.local')}", token=alice.token
    )
    assert resp.status == 200
    resp = await harness.request(
        "DELETE", f"{V3}/directory/room/{q('#bob3:test.local')}", token=admin.token
    )
    assert resp.status == 200


async def test_deleting_canonical_alias_updates_state(harness: Harness) -> None:
    alice = await make_user(harness, "alice")
    room_id = await create_room(harness, alice)
    alias = "#main:test.local"
    assert (await put_alias(harness, alice, alias, room_id)).status == 200
    resp = await put_state(harness, alice, room_id, "m.room.canonical_alias", {"alias": alias})
    assert resp.status == 200
    resp = await harness.request("DELETE", f"{V3}/directory/room/{q(alias)}", token=alice.token)
    assert resp.status == 200
    resp = await harness.request(
        "GET", f"{V3}/rooms/{q(room_id)}/state/m.room.canonical_alias/", token=alice.token
    )
    assert resp.status == 200 and "alias" not in resp.json


async def test_room_aliases_world_readable(harness: Harness) -> None:
    alice = await make_user(harness, "alice")
    eve = await make_user(harness, "eve")
    room_id = await create_room(harness, alice, room_alias_name="open")
    await put_state(
        harness,
        alice,
        room_id,
        "m.room.history_visibility",
        {"history_visibility": "world_readable"},
    )
    resp = await harness.request("GET", f"{V3}/rooms/{q(room_id)}/aliases", token=eve.token)
    assert resp.status == 200 and resp.json == {"aliases": ["#open:test.local"]}


async def test_directory_visibility(harness: Harness) -> None:
    alice = await make_user(harness, "alice")
    bob = await make_user(harness, "bob")
    eve = await make_user(harness, "eve")
    admin = await make_user(harness, "root", admin=True)
    room_id = await create_room(harness, alice, preset="public_chat")
    assert (await join(harness, bob, room_id)).status == 200
    url = f"{V3}/directory/list/room/{q(room_id)}"
    assert (await harness.request("GET", url)).json == {"visibility": "private"}
    assert_error(await set_visibility(harness, bob, room_id, "public"), 403, "M_FORBIDDEN")
    assert_error(await set_visibility(harness, eve, room_id, "public"), 403, "M_FORBIDDEN")
    assert_error(await set_visibility(harness, alice, room_id, "hidden"), 400, "M_INVALID_PARAM")
    assert (await set_visibility(harness, alice, room_id, "public")).status == 200
    assert (await harness.request("GET", url)).json == {"visibility": "public"}
    assert (await set_visibility(harness, admin, room_id, "private")).status == 200
    assert (await harness.request("GET", url)).json == {"visibility": "private"}
    resp = await harness.request("GET", f"{V3}/directory/list/room/{q('!nope:test.local')}")
    assert_error(resp, 404, "M_NOT_FOUND")
    assert_error(await set_visibility(harness, alice, "!nope:test.local", "public"), 404)

    # Bob gets the canonical alias power level: now he may publish.
    resp = await put_state(
        harness,
        alice,
        room_id,
        "m.room.power_levels",
        {"users": {alice.user_id: 100}, "events": {"m.room.canonical_alias": 0}},
    )
    assert resp.status == 200, resp.json
    assert (await set_visibility(harness, bob, room_id, "public")).status == 200


async def public_rooms(
    harness: Harness, user: TestUser | None, body: dict[str, Any] | None = None, **params: Any
) -> Response:
    url = f"{V3}/publicRooms"
    if params:
        url += "?" + urlencode({k: str(v) for k, v in params.items()})
    token = user.token if user else None
    if body is None:
        return await harness.request("GET", url, token=token)
    return await harness.request("POST", url, json=body, token=token)


async def test_public_rooms_listing_and_search(harness: Harness) -> None:
    alice = await make_user(harness, "alice")
    bob = await make_user(harness, "bob")
    big = await create_room(
        harness,
        alice,
        visibility="public",
        name="Big Room",
        topic="cats and dogs",
        room_alias_name="big",
    )
    assert (await join(harness, bob, big)).status == 200
    small = await create_room(harness, alice, visibility="public", name="Small")
    await create_room(harness, alice, name="Hidden cats")  # not published
    await put_state(harness, alice, small, "m.room.avatar", {"url": "mxc://test.local/av"})
    await put_state(
        harness,
        alice,
        small,
        "m.room.history_visibility",
        {"history_visibility": "world_readable"},
    )

    resp = await public_rooms(harness, alice)
    assert resp.status == 200, resp.json
    assert resp.json["total_room_count_estimate"] == 2
    assert [r["room_id"] for r in resp.json["chunk"]] == [big, small]
    first = resp.json["chunk"][0]
    assert first["name"] == "Big Room"
    assert first["topic"] == "cats and dogs"
    assert first["canonical_alias"] == "#big:test.local"
    assert first["num_joined_members"] == 2
    assert first["join_rule"] == "public"
    assert first["world_readable"] is False
    assert first["guest_can_join"] is False
    second = resp.json["chunk"][1]
    assert second["avatar_url"] == "mxc://test.local/av"
    assert second["world_readable"] is True
    assert "next_batch" not in resp.json and "prev_batch" not in resp.json

    for term, expected in (("CATS", [big]), ("#big", [big]), ("small", [small]), ("zz", [])):
        resp = await public_rooms(harness, alice, {"filter": {"generic_search_term": term}})
        assert resp.status == 200
        assert [r["room_id"] for r in resp.json["chunk"]] == expected, term

    resp = await public_rooms(harness, alice, {"filter": {"room_types": ["m.space"]}})
    assert resp.json["chunk"] == []
    resp = await public_rooms(harness, alice, {"filter": {"room_types": [None]}})
    assert len(resp.json["chunk"]) == 2

    resp = await public_rooms(harness, alice, server="test.local")
    assert resp.status == 200 and len(resp.json["chunk"]) == 2
    # Another server's list is asked over federation: unreachable here.
    assert_error(await public_rooms(harness, alice, server="other.example"), 502, "M_UNKNOWN")


async def test_public_rooms_pagination(harness: Harness) -> None:
    alice = await make_user(harness, "alice")
    others = [await make_user(harness, f"u{i}") for i in range(3)]
    rooms = []
    for i in range(7):
        room_id = await create_room(harness, alice, visibility="public", name=f"r{i}")
        rooms.append(room_id)
    # Room i has i % 4 extra members.
    for i, room_id in enumerate(rooms):
        for user in others[: i % 4]:
            assert (await join(harness, user, room_id)).status == 200
    counts = {room_id: 1 + i % 4 for i, room_id in enumerate(rooms)}
    expected = sorted(rooms, key=lambda r: (-counts[r], r))

    seen: list[str] = []
    since = None
    pages: list[dict[str, Any]] = []
    while True:
        body: dict[str, Any] = {"limit": 3}
        if since:
            body["since"] = since
        resp = await public_rooms(harness, alice, body)
        assert resp.status == 200, resp.json
        pages.append(resp.json)
        seen += [r["room_id"] for r in resp.json["chunk"]]
        assert all(r["num_joined_members"] == counts[r["room_id"]] for r in resp.json["chunk"])
        since = resp.json.get("next_batch")
        if since is None:
            break
    assert seen == expected
    assert len(pages) == 3
    # prev_batch goes back a page.
    resp = await public_rooms(harness, alice, limit=3, since=pages[2]["prev_batch"])
    assert [r["room_id"] for r in resp.json["chunk"]] == expected[3:6]
    assert resp.json["next_batch"] and resp.json["prev_batch"]
    resp = await public_rooms(harness, alice, limit=3, since=resp.json["prev_batch"])
    assert [r["room_id"] for r in resp.json["chunk"]] == expected[:3]
    assert "prev_batch" not in resp.json
    assert_error(await public_rooms(harness, alice, since="garbage!"), 400, "M_INVALID_PARAM")


async def test_public_rooms_auth(harness: Harness) -> None:
    resp = await public_rooms(harness, None)
    assert_error(resp, 401, "M_MISSING_TOKEN")
    resp = await public_rooms(harness, None, {})
    assert_error(resp, 401, "M_MISSING_TOKEN")


@pytest.fixture
async def open_harness(make_hs_config):  # type: ignore[no-untyped-def]
    async for h in unlimited_harness(make_hs_config, allow_public_rooms_without_auth=True):
        yield h


async def test_public_rooms_without_auth_when_allowed(open_harness: Harness) -> None:
    alice = await make_user(open_harness, "alice")
    room_id = await create_room(open_harness, alice, visibility="public")
    resp = await public_rooms(open_harness, None)
    assert resp.status == 200
    assert [r["room_id"] for r in resp.json["chunk"]] == [room_id]
    # A bad token is still refused.
    resp = await open_harness.request("GET", f"{V3}/publicRooms", token="nonsense")
    assert_error(resp, 401, "M_UNKNOWN_TOKEN")
