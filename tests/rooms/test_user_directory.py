"""POST /user_directory/search: who may find whom."""

from __future__ import annotations

from typing import Any

import pytest

from tests.rooms.helpers import V3, assert_error, create_room, join, membership_action, q
from tests.rooms.reading_support import unlimited_harness
from tests.support.harness import Harness, Response
from tests.support.users import TestUser, make_user


@pytest.fixture
async def harness(make_hs_config):  # type: ignore[no-untyped-def]
    async for h in unlimited_harness(make_hs_config):
        yield h


async def search(harness: Harness, user: TestUser, term: str, **extra: Any) -> Response:
    return await harness.request(
        "POST",
        f"{V3}/user_directory/search",
        json={"search_term": term, **extra},
        token=user.token,
    )


async def found(harness: Harness, user: TestUser, term: str) -> list[str]:
    resp = await search(harness, user, term)
    assert resp.status == 200, resp.json
    return [r["user_id"] for r in resp.json["results"]]


async def set_name(harness: Harness, user: TestUser, name: str) -> None:
    resp = await harness.request(
        "PUT",
        f"{V3}/profile/{q(user.user_id)}/displayname",
        json={"displayname": name},
        token=user.token,
    )
    assert resp.status == 200


async def test_sharing_rules(harness: Harness) -> None:
    alice = await make_user(harness, "alice")
    bob = await make_user(harness, "bob")
    carol = await make_user(harness, "carol")
    dave = await make_user(harness, "dave")
    await set_name(harness, carol, "Carol Jones")
    await set_name(harness, dave, "Dave Jones")

    # Nobody shares anything yet.
    assert await found(harness, alice, "jones") == []

    # A private room shared with carol.
    private = await create_room(harness, alice, invite=[carol.user_id])
    assert (await join(harness, carol, private)).status == 200
    assert await found(harness, alice, "jones") == [carol.user_id]
    # Invited but not joined is not sharing.
    await membership_action(harness, alice, private, "invite", {"user_id": bob.user_id})
    assert await found(harness, alice, "bob") == []

    # Dave in a public room (join rule public): everyone finds him.
    public = await create_room(harness, dave, preset="public_chat")
    assert sorted(await found(harness, alice, "jones")) == sorted([carol.user_id, dave.user_id])
    assert await found(harness, bob, "dave") == [dave.user_id]
    # ...but bob does not find carol, who only shares a private room with alice.
    assert await found(harness, bob, "carol") == []

    # When dave leaves the public room he is no longer findable.
    assert (await membership_action(harness, dave, public, "leave")).status == 200
    assert await found(harness, bob, "dave") == []


async def alice_and_robert(harness: Harness) -> tuple[TestUser, TestUser]:
    """Alice, and bobby_tables ("Robert Tables") in a public room of hers."""
    alice = await make_user(harness, "alice")
    bob = await make_user(harness, "bobby_tables")
    room_id = await create_room(harness, alice, preset="public_chat")
    assert (await join(harness, bob, room_id)).status == 200
    await set_name(harness, bob, "Robert Tables")
    return alice, bob


async def test_matching(harness: Harness) -> None:
    alice, bob = await alice_and_robert(harness)
    # Localpart prefix, display name word prefix, case-insensitive, several words.
    for term in ("bob", "BOBBY_T", "rob", "tab", "robert tab", "  Tables "):
        assert await found(harness, alice, term) == [bob.user_id], term
    for term in ("obby", "ables", "robert x", "%", "_"):
        assert await found(harness, alice, term) == [], term
    resp = await search(harness, alice, "rob")
    assert resp.json == {
        "results": [{"user_id": bob.user_id, "display_name": "Robert Tables"}],
        "limited": False,
    }


async def test_limit_and_limited(harness: Harness) -> None:
    alice = await make_user(harness, "alice")
    room_id = await create_room(harness, alice, preset="public_chat")
    users = [await make_user(harness, f"sam{i}") for i in range(12)]
    for user in users:
        assert (await join(harness, user, room_id)).status == 200
    resp = await search(harness, alice, "sam")
    assert len(resp.json["results"]) == 10 and resp.json["limited"] is True
    resp = await search(harness, alice, "sam", limit=20)
    assert len(resp.json["results"]) == 12 and resp.json["limited"] is False
    # An exact match comes first.
    resp = await search(harness, alice, "sam11", limit=1)
    assert resp.json["results"][0]["user_id"] == users[11].user_id


async def test_deactivated_excluded(harness: Harness) -> None:
    alice = await make_user(harness, "alice")
    bob = await make_user(harness, "bob")
    room_id = await create_room(harness, alice, preset="public_chat")
    assert (await join(harness, bob, room_id)).status == 200
    assert await found(harness, alice, "bob") == [bob.user_id]
    await harness.hs.account_store.set_deactivated(bob.user_id, True)
    assert await found(harness, alice, "bob") == []


async def test_bad_requests(harness: Harness) -> None:
    alice = await make_user(harness, "alice")
    resp = await harness.request("POST", f"{V3}/user_directory/search", json={}, token=alice.token)
    assert_error(resp, 400, "M_MISSING_PARAM")
    assert_error(await search(harness, alice, "x", limit="ten"), 400)
    resp = await harness.request(
        "POST", f"{V3}/user_directory/search", json={"search_term": 3}, token=alice.token
    )
    assert_error(resp, 400)
    resp = await harness.request("POST", f"{V3}/user_directory/search", json={"search_term": "a"})
    assert_error(resp, 401, "M_MISSING_TOKEN")


async def test_huge_terms(harness: Harness) -> None:
    """Terms past a LIKE pattern's or a statement's limits are answered, not 500s."""
    alice, bob = await alice_and_robert(harness)
    assert_error(await search(harness, alice, "b" * 100_000), 400, "M_INVALID_PARAM")
    assert_error(await search(harness, alice, "a " * 20_000), 400, "M_INVALID_PARAM")
    # Many words within the length: the first few decide.
    assert await found(harness, alice, "rob " * 200) == [bob.user_id]
    assert await found(harness, alice, " ".join(f"w{i}" for i in range(150))) == []
    assert await found(harness, alice, "b" * 1000) == []


@pytest.fixture
async def search_all(make_hs_config):  # type: ignore[no-untyped-def]
    async for h in unlimited_harness(make_hs_config, user_directory={"search_all_users": True}):
        yield h


async def test_search_all_users(search_all: Harness) -> None:
    alice = await make_user(search_all, "alice")
    bob = await make_user(search_all, "bob")
    assert await found(search_all, alice, "bob") == [bob.user_id]
    await search_all.hs.account_store.set_deactivated(bob.user_id, True)
    assert await found(search_all, alice, "bob") == []
