"""The rooms side of the admin API: listing, inspecting, blocking, joining, room admins."""

from __future__ import annotations

import pytest

from tests.rooms.helpers import (
    V3,
    assert_error,
    create_room,
    get_state_event,
    join,
    put_state,
    q,
    send_ok,
)
from tests.spaces.support import ADMIN_V1, ADMIN_V2, ok, sh
from tests.support.harness import Harness, Response
from tests.support.users import TestUser, make_user

__all__ = ["sh"]

UNKNOWN = "!unknown:test.local"


async def get(h: Harness, user: TestUser, path: str) -> Response:
    return await h.request("GET", ADMIN_V1 + path, token=user.token)


@pytest.fixture
async def admin(sh: Harness) -> TestUser:
    return await make_user(sh, "admin", admin=True)


@pytest.fixture
async def alice(sh: Harness) -> TestUser:
    return await make_user(sh, "alice")


@pytest.fixture
async def bob(sh: Harness) -> TestUser:
    return await make_user(sh, "bob")


async def test_every_endpoint_refuses_non_admins(
    sh: Harness, alice: TestUser, admin: TestUser
) -> None:
    room = await create_room(sh, alice, name="Mine")
    event_id = await send_ok(sh, alice, room)
    r = q(room)
    calls = [
        ("GET", f"{ADMIN_V1}/rooms", None),
        ("GET", f"{ADMIN_V1}/rooms/{r}", None),
        ("GET", f"{ADMIN_V1}/rooms/{r}/members", None),
        ("GET", f"{ADMIN_V1}/rooms/{r}/state", None),
        ("GET", f"{ADMIN_V1}/rooms/{r}/messages", None),
        ("GET", f"{ADMIN_V1}/rooms/{r}/context/{q(event_id)}", None),
        ("GET", f"{ADMIN_V1}/rooms/{r}/hierarchy", None),
        ("GET", f"{ADMIN_V1}/rooms/{r}/block", None),
        ("PUT", f"{ADMIN_V1}/rooms/{r}/block", {"block": True}),
        ("POST", f"{ADMIN_V1}/join/{r}", {"user_id": alice.user_id}),
        ("POST", f"{ADMIN_V1}/rooms/{r}/make_room_admin", {}),
        ("DELETE", f"{ADMIN_V1}/rooms/{r}", {}),
        ("DELETE", f"{ADMIN_V2}/rooms/{r}", {}),
        ("GET", f"{ADMIN_V2}/rooms/{r}/delete_status", None),
        ("GET", f"{ADMIN_V2}/rooms/delete_status/abc", None),
    ]
    for method, path, body in calls:
        resp = await sh.request(method, path, json=body, token=alice.token)
        assert_error(resp, 403, "M_FORBIDDEN")
        resp = await sh.request(method, path, json=body)
        assert_error(resp, 401, "M_MISSING_TOKEN")
    # Nothing happened.
    assert ok(await get(sh, admin, f"/rooms/{r}/block")) == {"block": False}
    assert ok(await get(sh, admin, f"/rooms/{r}"))["joined_members"] == 1


async def test_list_rooms(sh: Harness, admin: TestUser, alice: TestUser, bob: TestUser) -> None:
    zed = await create_room(sh, alice, name="Zed room", preset="public_chat", visibility="public")
    ant = await create_room(
        sh,
        alice,
        name="ant hill",
        room_alias_name="colony",
        initial_state=[
            {"type": "m.room.encryption", "content": {"algorithm": "m.megolm.v1.aes-sha2"}}
        ],
    )
    unnamed = await create_room(
        sh, bob, room_version="11", creation_content={"type": "m.space", "m.federate": False}
    )
    ok(await join(sh, bob, zed))

    body = ok(await get(sh, admin, "/rooms"))
    assert body["offset"] == 0
    assert body["total_rooms"] == 3
    assert "next_batch" not in body and "prev_batch" not in body
    # By name (the default), rooms without one last.
    assert [r["room_id"] for r in body["rooms"]] == [ant, zed, unnamed]
    by_id = {r["room_id"]: r for r in body["rooms"]}
    assert by_id[zed] == {
        "room_id": zed,
        "name": "Zed room",
        "canonical_alias": None,
        "joined_members": 2,
        "joined_local_members": 2,
        "version": "10",
        "creator": alice.user_id,
        "encryption": None,
        "federatable": True,
        "public": True,
        "join_rules": "public",
        "guest_access": None,
        "history_visibility": "shared",
        "state_events": by_id[zed]["state_events"],
        "room_type": None,
    }
    assert by_id[zed]["state_events"] >= 6
    assert by_id[ant]["canonical_alias"] == "#colony:test.local"
    assert by_id[ant]["encryption"] == "m.megolm.v1.aes-sha2"
    assert by_id[ant]["public"] is False
    assert by_id[ant]["join_rules"] == "invite"
    assert by_id[unnamed]["room_type"] == "m.space"
    assert by_id[unnamed]["federatable"] is False
    assert by_id[unnamed]["version"] == "11"
    assert by_id[unnamed]["creator"] == bob.user_id

    async def listed(query: str) -> list[str]:
        return [r["room_id"] for r in ok(await get(sh, admin, f"/rooms?{query}"))["rooms"]]

    assert await listed("dir=b") == [unnamed, zed, ant]
    # Largest first; ties by room ID in the same direction (as Synapse).
    assert await listed("order_by=joined_members") == [zed, *sorted([ant, unnamed], reverse=True)]
    assert (await listed("order_by=joined_members&dir=b"))[-1] == zed
    assert (await listed("order_by=canonical_alias"))[0] == ant
    assert (await listed("order_by=creator"))[-1] == unnamed
    assert (await listed("order_by=version"))[0] == unnamed
    assert (await listed("order_by=public"))[-1] == zed
    assert (await listed("order_by=encryption"))[0] == ant
    for order_by in (
        "name",
        "alphabetical",
        "size",
        "joined_local_members",
        "federatable",
        "join_rules",
        "guest_access",
        "history_visibility",
        "state_events",
    ):
        assert sorted(await listed(f"order_by={order_by}")) == sorted([ant, zed, unnamed])

    # Search: the name (any case), the alias' local part, the room ID.
    assert await listed("search_term=ZED") == [zed]
    assert await listed("search_term=colon") == [ant]
    assert await listed(f"search_term={q(unnamed[1:8])}") == [unnamed]
    assert await listed("search_term=nothing-like-this") == []
    assert await listed("public_rooms=true") == [zed]
    assert await listed("public_rooms=false") == [ant, unnamed]
    assert await listed("empty_rooms=true") == []

    # Pagination.
    page = ok(await get(sh, admin, "/rooms?limit=1"))
    assert [r["room_id"] for r in page["rooms"]] == [ant]
    assert page["next_batch"] == 1 and "prev_batch" not in page
    page = ok(await get(sh, admin, "/rooms?limit=1&from=1"))
    assert [r["room_id"] for r in page["rooms"]] == [zed]
    assert page["offset"] == 1 and page["next_batch"] == 2 and page["prev_batch"] == 0
    page = ok(await get(sh, admin, "/rooms?limit=2&from=2"))
    assert [r["room_id"] for r in page["rooms"]] == [unnamed]
    assert "next_batch" not in page and page["prev_batch"] == 0

    for query in ("order_by=colour", "dir=x", "from=-1", "limit=-5", "limit=x", "search_term="):
        assert_error(await get(sh, admin, f"/rooms?{query}"), 400, "M_INVALID_PARAM")


async def test_room_details_members_and_state(
    sh: Harness, admin: TestUser, alice: TestUser, bob: TestUser
) -> None:
    room = await create_room(
        sh, alice, name="Details", topic="all of them", preset="public_chat", invite=[bob.user_id]
    )
    ok(await put_state(sh, alice, room, "m.room.avatar", {"url": "mxc://test.local/pic"}))
    ok(await join(sh, bob, room))
    r = q(room)
    details = ok(await get(sh, admin, f"/rooms/{r}"))
    assert details["room_id"] == room
    assert details["name"] == "Details"
    assert details["topic"] == "all of them"
    assert details["avatar"] == "mxc://test.local/pic"
    assert details["joined_members"] == 2
    assert details["joined_local_members"] == 2
    assert details["joined_local_devices"] == 2
    assert details["forgotten"] is False
    assert details["join_rules"] == "public"
    for key in ("version", "creator", "encryption", "federatable", "public", "state_events"):
        assert key in details

    members = ok(await get(sh, admin, f"/rooms/{r}/members"))
    assert members == {"members": sorted([alice.user_id, bob.user_id]), "total": 2}

    state = ok(await get(sh, admin, f"/rooms/{r}/state"))["state"]
    types = {(e["type"], e["state_key"]) for e in state}
    assert ("m.room.create", "") in types
    assert ("m.room.member", bob.user_id) in types
    assert all("event_id" in e and "content" in e for e in state)
    names = ok(await get(sh, admin, f"/rooms/{r}/state?type=m.room.member"))["state"]
    assert {e["state_key"] for e in names} == {alice.user_id, bob.user_id}

    # Every local user forgot the room.
    for user in (alice, bob):
        ok(await sh.request("POST", f"{V3}/rooms/{r}/leave", json={}, token=user.token))
        ok(await sh.request("POST", f"{V3}/rooms/{r}/forget", json={}, token=user.token))
    details = ok(await get(sh, admin, f"/rooms/{r}"))
    assert details["forgotten"] is True
    assert details["joined_members"] == 0

    for path in ("", "/members", "/state", "/messages", "/context/$nope", "/hierarchy"):
        assert_error(await get(sh, admin, f"/rooms/{q(UNKNOWN)}{path}"), 404, "M_NOT_FOUND")
    assert_error(await get(sh, admin, "/rooms/not-a-room/members"), 400, "M_INVALID_PARAM")


async def test_messages_and_context_regardless_of_membership(
    sh: Harness, admin: TestUser, alice: TestUser
) -> None:
    room = await create_room(sh, alice, preset="private_chat")
    sent = [await send_ok(sh, alice, room, f"message {i}") for i in range(5)]
    r = q(room)
    # The client API refuses the admin, who is not in the room...
    resp = await sh.request("GET", f"{V3}/rooms/{r}/messages?dir=b", token=admin.token)
    assert resp.status == 403
    # ...the admin API does not.
    body = ok(await get(sh, admin, f"/rooms/{r}/messages?dir=b&limit=3"))
    assert [e["event_id"] for e in body["chunk"]] == sent[::-1][:3]
    assert "end" in body and "start" in body
    more = ok(await get(sh, admin, f"/rooms/{r}/messages?dir=b&limit=2&from={body['end']}"))
    assert [e["event_id"] for e in more["chunk"]] == [sent[1], sent[0]]
    # Forwards from the start (the default direction), with a filter.
    flt = q('{"types": ["m.room.message"]}')
    forwards = ok(await get(sh, admin, f"/rooms/{r}/messages?limit=10&filter={flt}"))
    assert [e["event_id"] for e in forwards["chunk"]] == sent
    assert_error(await get(sh, admin, f"/rooms/{r}/messages?dir=up"), 400, "M_INVALID_PARAM")
    assert_error(await get(sh, admin, f"/rooms/{r}/messages?from=zz"), 400, "M_INVALID_PARAM")

    context = ok(await get(sh, admin, f"/rooms/{r}/context/{q(sent[2])}?limit=2"))
    assert context["event"]["event_id"] == sent[2]
    assert [e["event_id"] for e in context["events_before"]] == [sent[1]]
    assert [e["event_id"] for e in context["events_after"]] == [sent[3]]
    assert any(e["type"] == "m.room.create" for e in context["state"])
    assert "start" in context and "end" in context
    assert_error(await get(sh, admin, f"/rooms/{r}/context/{q('$missing')}"), 404, "M_NOT_FOUND")


async def test_block_and_unblock(
    sh: Harness, admin: TestUser, alice: TestUser, bob: TestUser
) -> None:
    room = await create_room(sh, alice, preset="public_chat")
    path = f"{ADMIN_V1}/rooms/{q(room)}/block"
    assert ok(await sh.request("GET", path, token=admin.token)) == {"block": False}
    assert ok(await sh.request("PUT", path, json={"block": True}, token=admin.token)) == {
        "block": True
    }
    assert ok(await sh.request("GET", path, token=admin.token)) == {
        "block": True,
        "user_id": admin.user_id,
    }
    assert_error(await join(sh, bob, room), 403, "M_FORBIDDEN")
    invite = await sh.request(
        "POST", f"{V3}/rooms/{q(room)}/invite", json={"user_id": bob.user_id}, token=alice.token
    )
    assert_error(invite, 403, "M_FORBIDDEN")
    listed = ok(await sh.request("GET", f"{ADMIN_V1}/rooms/{q(room)}", token=admin.token))
    assert listed["room_id"] == room

    assert ok(await sh.request("PUT", path, json={"block": False}, token=admin.token)) == {
        "block": False
    }
    assert ok(await sh.request("GET", path, token=admin.token)) == {"block": False}
    ok(await join(sh, bob, room))

    # A room this server doesn't know can be blocked ahead of time.
    unknown_path = f"{ADMIN_V1}/rooms/{q(UNKNOWN)}/block"
    ok(await sh.request("PUT", unknown_path, json={"block": True}, token=admin.token))
    assert ok(await sh.request("GET", unknown_path, token=admin.token))["block"] is True

    assert_error(await sh.request("PUT", path, json={}, token=admin.token), 400, "M_MISSING_PARAM")
    assert_error(
        await sh.request("PUT", path, json={"block": "yes"}, token=admin.token), 400, "M_BAD_JSON"
    )
    bad = f"{ADMIN_V1}/rooms/not-a-room/block"
    assert_error(await sh.request("GET", bad, token=admin.token), 400, "M_INVALID_PARAM")


async def test_force_join(sh: Harness, admin: TestUser, alice: TestUser, bob: TestUser) -> None:
    public = await create_room(sh, alice, preset="public_chat", room_alias_name="square")
    private = await create_room(sh, alice, preset="private_chat")
    mine = await create_room(sh, admin, preset="private_chat")

    def join_path(room: str) -> str:
        return f"{ADMIN_V1}/join/{q(room)}"

    body = ok(
        await sh.request(
            "POST",
            join_path("#square:test.local"),
            json={"user_id": bob.user_id},
            token=admin.token,
        )
    )
    assert body == {"room_id": public}
    content = ok(await get_state_event(sh, alice, public, "m.room.member", bob.user_id))
    assert content["membership"] == "join"

    # A private room the admin is in (with invite power): invite, then join.
    ok(await sh.request("POST", join_path(mine), json={"user_id": bob.user_id}, token=admin.token))
    content = ok(await get_state_event(sh, admin, mine, "m.room.member", bob.user_id))
    assert content["membership"] == "join"

    # A private room the admin is not in: the admin can't invite.
    resp = await sh.request(
        "POST", join_path(private), json={"user_id": bob.user_id}, token=admin.token
    )
    assert_error(resp, 403, "M_FORBIDDEN")

    async def refused(room: str, body: object, status: int, errcode: str) -> None:
        resp = await sh.request("POST", join_path(room), json=body, token=admin.token)
        assert_error(resp, status, errcode)

    await refused(public, {}, 400, "M_MISSING_PARAM")
    await refused(public, {"user_id": "@nobody:test.local"}, 404, "M_NOT_FOUND")
    await refused(public, {"user_id": "@someone:elsewhere.example"}, 400, "M_INVALID_PARAM")
    await refused(public, {"user_id": "not a user"}, 400, "M_INVALID_PARAM")
    await refused(UNKNOWN, {"user_id": bob.user_id}, 404, "M_NOT_FOUND")
    await refused("#nowhere:test.local", {"user_id": bob.user_id}, 404, "M_NOT_FOUND")


async def test_make_room_admin(
    sh: Harness, admin: TestUser, alice: TestUser, bob: TestUser
) -> None:
    room = await create_room(sh, alice, preset="private_chat")
    path = f"{ADMIN_V1}/rooms/{q(room)}/make_room_admin"
    assert ok(await sh.request("POST", path, json={}, token=admin.token)) == {}
    pl = ok(await get_state_event(sh, alice, room, "m.room.power_levels"))
    assert pl["users"][admin.user_id] == 100
    member = ok(await get_state_event(sh, alice, room, "m.room.member", admin.user_id))
    assert member["membership"] == "invite"
    ok(await join(sh, admin, room))

    # Another user, by alias, in a public room: no invite needed.
    public = await create_room(sh, alice, preset="public_chat", room_alias_name="townhall")
    alias_path = f"{ADMIN_V1}/rooms/{q('#townhall:test.local')}/make_room_admin"
    body = {"user_id": bob.user_id}
    assert ok(await sh.request("POST", alias_path, json=body, token=admin.token)) == {}
    pl = ok(await get_state_event(sh, alice, public, "m.room.power_levels"))
    assert pl["users"][bob.user_id] == 100
    # Bob may join a public room himself: no invite was sent.
    resp = await get_state_event(sh, alice, public, "m.room.member", bob.user_id)
    assert resp.status == 404

    # No local admin left in the room.
    lonely = await create_room(sh, alice, preset="public_chat")
    ok(await sh.request("POST", f"{V3}/rooms/{q(lonely)}/leave", json={}, token=alice.token))
    lonely_path = f"{ADMIN_V1}/rooms/{q(lonely)}/make_room_admin"
    resp = await sh.request("POST", lonely_path, json={}, token=admin.token)
    assert resp.status == 400
    unknown_path = f"{ADMIN_V1}/rooms/{q(UNKNOWN)}/make_room_admin"
    assert_error(await sh.request("POST", unknown_path, json={}, token=admin.token), 404)
    resp = await sh.request("POST", path, json={"user_id": 5}, token=admin.token)
    assert_error(resp, 400, "M_INVALID_PARAM")
