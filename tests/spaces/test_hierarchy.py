"""GET /_matrix/client/v1/rooms/{roomId}/hierarchy and its admin twin."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import pytest

from tests.conftest import advance
from tests.rooms.helpers import assert_error, create_room, get_state_event, join, put_state
from tests.spaces.support import add_child, create_space, hierarchy, ok, sh, walk_pages
from tests.support.harness import Harness
from tests.support.users import TestUser, make_user

__all__ = ["sh"]

REMOTE = "!unknown:elsewhere.example"


@dataclass
class Tree:
    alice: TestUser
    bob: TestUser
    admin: TestUser
    space: str
    sub: str
    room_a: str
    room_b: str
    private: str
    hidden: str
    no_via: str


async def build_tree(h: Harness) -> Tree:
    """
    space (public space)
      a        order "a", suggested          (public room)
      sub      order "b"                     (public space)
        b                                    (public room)
        space                                (a cycle back to the root)
        a                                    (a duplicate)
      private  order "c"                     (invite-only space, bob can't see)
        hidden                               (public room reachable only via private)
      !unknown:elsewhere.example  order "d"  (a room this server doesn't know)
      no_via                                 (child event without via: not a child)
    """
    alice = await make_user(h, "alice")
    bob = await make_user(h, "bob")
    admin = await make_user(h, "root", admin=True)
    space = await create_space(h, alice, "The Space", topic="everything")
    sub = await create_space(h, alice, "Sub Space")
    room_a = await create_room(h, alice, preset="public_chat", name="Room A")
    room_b = await create_room(h, alice, preset="public_chat", name="Room B")
    private = await create_space(h, alice, "Private", preset="private_chat")
    hidden = await create_room(h, alice, preset="public_chat", name="Hidden")
    no_via = await create_room(h, alice, preset="public_chat", name="No via")
    await add_child(h, alice, space, room_a, order="a", suggested=True)
    await add_child(h, alice, space, sub, order="b")
    await add_child(h, alice, space, private, order="c")
    await add_child(h, alice, space, REMOTE, order="d")
    await add_child(h, alice, space, no_via, via=[])
    await add_child(h, alice, sub, room_b)
    await advance(1)
    await add_child(h, alice, sub, space)
    await advance(1)
    await add_child(h, alice, sub, room_a)
    await add_child(h, alice, private, hidden)
    return Tree(alice, bob, admin, space, sub, room_a, room_b, private, hidden, no_via)


@pytest.fixture
async def tree(sh: Harness) -> Tree:
    return await build_tree(sh)


def ids(body: dict[str, Any]) -> list[str]:
    return [r["room_id"] for r in body["rooms"]]


async def test_client_hierarchy_lists_what_the_user_may_see(sh: Harness, tree: Tree) -> None:
    body = ok(await hierarchy(sh, tree.bob, tree.space))
    # Depth-first, children in `order`; the private space (and what is only
    # reachable through it), the remote room and the via-less child are absent.
    assert ids(body) == [tree.space, tree.room_a, tree.sub, tree.room_b]
    assert "next_batch" not in body
    root = body["rooms"][0]
    assert root["name"] == "The Space"
    assert root["topic"] == "everything"
    assert root["room_type"] == "m.space"
    assert root["join_rule"] == "public"
    assert root["num_joined_members"] == 1
    assert root["world_readable"] is False
    assert root["guest_can_join"] is False
    children = root["children_state"]
    assert [c["state_key"] for c in children] == [tree.room_a, tree.sub, tree.private, REMOTE]
    for child in children:
        assert child["type"] == "m.space.child"
        assert child["sender"] == tree.alice.user_id
        assert isinstance(child["origin_server_ts"], int)
        assert set(child) == {"type", "state_key", "content", "sender", "origin_server_ts"}
    assert children[0]["content"] == {"via": ["test.local"], "order": "a", "suggested": True}
    room_a = body["rooms"][1]
    assert room_a["name"] == "Room A"
    assert "room_type" not in room_a
    assert room_a["children_state"] == []
    # The sub-space's children are ordered by timestamp; the cycle and the
    # duplicate don't list a room twice.
    sub = body["rooms"][2]
    assert [c["state_key"] for c in sub["children_state"]] == [
        tree.room_b,
        tree.space,
        tree.room_a,
    ]


async def test_admin_hierarchy_lists_every_local_room(sh: Harness, tree: Tree) -> None:
    body = ok(await hierarchy(sh, tree.admin, tree.space, admin=True))
    assert ids(body) == [
        tree.space,
        tree.room_a,
        tree.sub,
        tree.room_b,
        tree.private,
        tree.hidden,
    ]
    private = body["rooms"][4]
    assert private["name"] == "Private"
    assert private["join_rule"] == "invite"
    assert [c["state_key"] for c in private["children_state"]] == [tree.hidden]


async def test_members_and_invitees_see_private_rooms(sh: Harness, tree: Tree) -> None:
    resp = await sh.request(
        "POST",
        f"/_matrix/client/v3/rooms/{tree.private}/invite",
        json={"user_id": tree.bob.user_id},
        token=tree.alice.token,
    )
    ok(resp)
    body = ok(await hierarchy(sh, tree.bob, tree.space))
    assert ids(body) == [
        tree.space,
        tree.room_a,
        tree.sub,
        tree.room_b,
        tree.private,
        tree.hidden,
    ]
    body = ok(await hierarchy(sh, tree.alice, tree.space))
    assert tree.private in ids(body)


@pytest.mark.parametrize("limit", [1, 2])
async def test_pagination_returns_every_room_once(sh: Harness, tree: Tree, limit: int) -> None:
    pages = await walk_pages(sh, tree.bob, tree.space, limit=limit)
    assert all(len(page) == limit for page in pages[:-1])
    assert 1 <= len(pages[-1]) <= limit
    flat = [room for page in pages for room in page]
    assert flat == [tree.space, tree.room_a, tree.sub, tree.room_b]

    admin_pages = await walk_pages(sh, tree.admin, tree.space, admin=True, limit=limit)
    admin_flat = [room for page in admin_pages for room in page]
    assert admin_flat == [
        tree.space,
        tree.room_a,
        tree.sub,
        tree.room_b,
        tree.private,
        tree.hidden,
    ]


async def test_pagination_survives_a_new_child_before_the_position(sh: Harness, tree: Tree) -> None:
    first = ok(await hierarchy(sh, tree.bob, tree.space, limit=2))
    assert ids(first) == [tree.space, tree.room_a]
    extra = await create_room(sh, tree.alice, preset="public_chat")
    await add_child(sh, tree.alice, tree.space, extra, order="0")
    rest = ok(await hierarchy(sh, tree.bob, tree.space, limit=10, from_token=first["next_batch"]))
    # Resumes after the last room it returned, not at a count.
    assert ids(rest) == [tree.sub, tree.room_b]


async def test_suggested_only(sh: Harness, tree: Tree) -> None:
    body = ok(await hierarchy(sh, tree.bob, tree.space, suggested_only=True))
    assert ids(body) == [tree.space, tree.room_a]
    assert [c["state_key"] for c in body["rooms"][0]["children_state"]] == [tree.room_a]


async def test_max_depth(sh: Harness, tree: Tree) -> None:
    body = ok(await hierarchy(sh, tree.bob, tree.space, max_depth=0))
    assert ids(body) == [tree.space]
    # The root still shows its children events.
    assert len(body["rooms"][0]["children_state"]) == 4
    body = ok(await hierarchy(sh, tree.bob, tree.space, max_depth=1))
    assert ids(body) == [tree.space, tree.room_a, tree.sub]
    body = ok(await hierarchy(sh, tree.admin, tree.space, admin=True, max_depth=1))
    assert ids(body) == [tree.space, tree.room_a, tree.sub, tree.private]


async def test_bad_parameters(sh: Harness, tree: Tree) -> None:
    assert_error(await hierarchy(sh, tree.bob, tree.space, limit=0), 400, "M_INVALID_PARAM")
    assert_error(await hierarchy(sh, tree.bob, tree.space, max_depth=-1), 400, "M_INVALID_PARAM")
    assert_error(await hierarchy(sh, tree.bob, tree.space, limit="x"), 400, "M_INVALID_PARAM")
    for token in ("garbage", "abc.def", "", "!!!.???"):
        resp = await hierarchy(sh, tree.bob, tree.space, from_token=token)
        if token == "":
            # An empty `from` is no token at all... but it isn't valid either.
            assert resp.status == 400
            continue
        assert_error(resp, 400, "M_INVALID_PARAM")
    page = ok(await hierarchy(sh, tree.bob, tree.space, limit=1))
    token = page["next_batch"]
    # A tampered token is refused.
    encoded, _, sig = token.partition(".")
    assert_error(
        await hierarchy(sh, tree.bob, tree.space, from_token=encoded + "." + sig[::-1]),
        400,
        "M_INVALID_PARAM",
    )
    # The token belongs to these parameters, this root and this user.
    assert_error(
        await hierarchy(sh, tree.bob, tree.space, limit=1, max_depth=1, from_token=token),
        400,
        "M_INVALID_PARAM",
    )
    assert_error(
        await hierarchy(sh, tree.bob, tree.space, suggested_only=True, from_token=token),
        400,
        "M_INVALID_PARAM",
    )
    assert_error(await hierarchy(sh, tree.bob, tree.sub, from_token=token), 400, "M_INVALID_PARAM")
    assert_error(
        await hierarchy(sh, tree.alice, tree.space, from_token=token), 400, "M_INVALID_PARAM"
    )
    assert_error(
        await hierarchy(sh, tree.admin, tree.space, admin=True, from_token=token),
        400,
        "M_INVALID_PARAM",
    )
    # limit may change between pages.
    ok(await hierarchy(sh, tree.bob, tree.space, limit=3, from_token=token))


async def test_root_the_user_cannot_see_is_forbidden(sh: Harness, tree: Tree) -> None:
    assert_error(await hierarchy(sh, tree.bob, tree.private), 403, "M_FORBIDDEN")
    assert_error(await hierarchy(sh, tree.bob, "!nope:test.local"), 403, "M_FORBIDDEN")
    assert_error(await hierarchy(sh, tree.bob, REMOTE), 403, "M_FORBIDDEN")
    assert_error(await hierarchy(sh, tree.admin, REMOTE, admin=True), 404, "M_NOT_FOUND")
    resp = await sh.request("GET", f"/_matrix/client/v1/rooms/{tree.space}/hierarchy")
    assert_error(resp, 401, "M_MISSING_TOKEN")
    assert_error(await hierarchy(sh, tree.bob, tree.space, admin=True), 403, "M_FORBIDDEN")


async def test_world_readable_and_knock_rooms_are_listed(sh: Harness, tree: Tree) -> None:
    readable = await create_room(
        sh,
        tree.alice,
        preset="private_chat",
        initial_state=[
            {
                "type": "m.room.history_visibility",
                "content": {"history_visibility": "world_readable"},
            }
        ],
    )
    knock = await create_room(
        sh,
        tree.alice,
        preset="private_chat",
        initial_state=[{"type": "m.room.join_rules", "content": {"join_rule": "knock"}}],
    )
    await add_child(sh, tree.alice, tree.space, readable, order="e")
    await add_child(sh, tree.alice, tree.space, knock, order="f")
    body = ok(await hierarchy(sh, tree.bob, tree.space))
    assert ids(body)[-2:] == [readable, knock]
    assert body["rooms"][-2]["world_readable"] is True
    assert body["rooms"][-1]["join_rule"] == "knock"


async def test_child_order_rules(sh: Harness) -> None:
    alice = await make_user(sh, "alice")
    space = await create_space(sh, alice, "Ordered")
    rooms = [await create_room(sh, alice, preset="public_chat") for _ in range(5)]
    await add_child(sh, alice, space, rooms[0])  # no order, oldest
    await advance(1)
    await add_child(sh, alice, space, rooms[1], order="\x7e")
    await advance(1)
    await add_child(sh, alice, space, rooms[2], order=" ")
    await advance(1)
    await add_child(sh, alice, space, rooms[3], order="x" * 51)  # too long: ignored
    await advance(1)
    await add_child(sh, alice, space, rooms[4], order="\u00e9")  # outside 0x20-0x7E
    body = ok(await hierarchy(sh, alice, space, max_depth=0))
    order = [c["state_key"] for c in body["rooms"][0]["children_state"]]
    assert order == [rooms[2], rooms[1], rooms[0], rooms[3], rooms[4]]


async def test_space_parent_is_plain_state(sh: Harness, tree: Tree) -> None:
    content = {"via": ["test.local"], "canonical": True}
    ok(await put_state(sh, tree.alice, tree.room_a, "m.space.parent", content, tree.space))
    resp = await get_state_event(sh, tree.alice, tree.room_a, "m.space.parent", tree.space)
    assert ok(resp) == content
    ok(await join(sh, tree.bob, tree.room_a))
    resp = await get_state_event(sh, tree.bob, tree.room_a, "m.space.parent", tree.space)
    assert ok(resp) == content
