"""POST /search for room events, end to end on both engines."""

from __future__ import annotations

from typing import Any
from urllib.parse import quote

import pytest

from hamlet.storage.stores import search as search_store
from tests.rooms.helpers import (
    V3,
    assert_error,
    create_room,
    join,
    membership_action,
    put_state,
    redact,
    send,
    send_ok,
)
from tests.rooms.reading_support import unlimited_harness
from tests.support.harness import Harness, Response
from tests.support.users import TestUser, make_user


@pytest.fixture
async def harness(make_hs_config):  # type: ignore[no-untyped-def]
    async for h in unlimited_harness(make_hs_config):
        yield h


async def search(
    harness: Harness, user: TestUser, term: str, next_batch: str | None = None, **criteria: Any
) -> Response:
    path = f"{V3}/search"
    if next_batch is not None:
        path += f"?next_batch={quote(next_batch)}"
    body = {"search_categories": {"room_events": {"search_term": term, **criteria}}}
    return await harness.request("POST", path, json=body, token=user.token)


async def search_ok(harness: Harness, user: TestUser, term: str, **criteria: Any) -> dict[str, Any]:
    resp = await search(harness, user, term, **criteria)
    assert resp.status == 200, resp.json
    room_events: dict[str, Any] = resp.json["search_categories"]["room_events"]
    return room_events


def bodies(found: dict[str, Any]) -> list[str]:
    return [r["result"]["content"]["body"] for r in found["results"]]


async def test_finds_messages_names_and_topics_with_stemming(harness: Harness) -> None:
    alice = await make_user(harness, "alice")
    room = await create_room(harness, alice, name="Martian embassy", topic="Martians only")
    await send_ok(harness, alice, room, "The martians are running")
    await send_ok(harness, alice, room, "nothing to see here")
    found = await search_ok(harness, alice, "martian run")
    assert bodies(found) == ["The martians are running"]
    assert found["count"] == 1
    assert {"martians", "running"} <= set(found["highlights"])
    result = found["results"][0]
    assert result["result"]["room_id"] == room and result["rank"] > 0
    assert result["context"] == {}
    everywhere = await search_ok(harness, alice, "martians")
    kinds = {r["result"]["type"] for r in everywhere["results"]}
    assert kinds == {"m.room.message", "m.room.name", "m.room.topic"}
    only_names = await search_ok(harness, alice, "martians", keys=["content.name"])
    assert [r["result"]["content"]["name"] for r in only_names["results"]] == ["Martian embassy"]


async def test_rank_and_recent_order(harness: Harness) -> None:
    alice = await make_user(harness, "alice")
    room = await create_room(harness, alice)
    long_text = "cheese " + " ".join(f"filler{i}" for i in range(60))
    await send_ok(harness, alice, room, "cheese cheese cheese")
    await send_ok(harness, alice, room, long_text)
    await send_ok(harness, alice, room, "some cheese")
    by_rank = await search_ok(harness, alice, "cheese")
    assert bodies(by_rank)[0] == "cheese cheese cheese"
    assert bodies(by_rank)[-1] == long_text
    ranks = [r["rank"] for r in by_rank["results"]]
    assert ranks == sorted(ranks, reverse=True)
    recent = await search_ok(harness, alice, "cheese", order_by="recent")
    assert bodies(recent) == ["some cheese", long_text, "cheese cheese cheese"]


@pytest.mark.parametrize("order_by", ["recent", "rank"])
async def test_pages_never_repeat_or_skip(harness: Harness, order_by: str) -> None:
    alice = await make_user(harness, "alice")
    room = await create_room(harness, alice)
    sent = [f"apple {'pie ' * (i % 4)}number {i}" for i in range(25)]
    for body in sent:
        await send_ok(harness, alice, room, body)
    seen: list[str] = []
    token: str | None = None
    pages = 0
    while True:
        resp = await search(harness, alice, "apple", token, order_by=order_by, filter={"limit": 10})
        assert resp.status == 200, resp.json
        found = resp.json["search_categories"]["room_events"]
        seen.extend(bodies(found))
        pages += 1
        # A message arriving mid-pagination joins no page of this search.
        await send_ok(harness, alice, room, f"apple late {pages}")
        token = found.get("next_batch")
        if token is None:
            break
        assert pages < 10
    assert pages == 3
    assert sorted(seen) == sorted(sent)
    assert len(seen) == len(set(seen))


async def test_filters(harness: Harness) -> None:
    alice = await make_user(harness, "alice")
    bob = await make_user(harness, "bob")
    room1 = await create_room(harness, alice, preset="public_chat")
    room2 = await create_room(harness, alice, preset="public_chat")
    assert (await join(harness, bob, room1)).status == 200
    await send_ok(harness, alice, room1, "banana from alice in one")
    await send_ok(harness, bob, room1, "banana from bob in one")
    await send_ok(harness, alice, room2, "banana from alice in two")
    url = await send(
        harness,
        alice,
        room2,
        {"msgtype": "m.file", "body": "banana attachment", "url": "mxc://a/b"},
    )
    assert url.status == 200
    assert set(bodies(await search_ok(harness, alice, "banana", filter={"rooms": [room1]}))) == {
        "banana from alice in one",
        "banana from bob in one",
    }
    not_one = await search_ok(harness, alice, "banana", filter={"not_rooms": [room1]})
    assert set(bodies(not_one)) == {"banana from alice in two", "banana attachment"}
    by_bob = await search_ok(harness, alice, "banana", filter={"senders": [bob.user_id]})
    assert bodies(by_bob) == ["banana from bob in one"]
    not_bob = await search_ok(harness, alice, "banana", filter={"not_senders": [bob.user_id]})
    assert len(not_bob["results"]) == 3
    files = await search_ok(harness, alice, "banana", filter={"contains_url": True})
    assert bodies(files) == ["banana attachment"]
    no_types = await search_ok(harness, alice, "banana", filter={"types": ["m.room.name"]})
    assert no_types["results"] == []
    # Lists too long for one SQL statement are applied after it.
    many = [room1, *(f"!r{i}:test.local" for i in range(300))]
    long_list = await search_ok(harness, alice, "banana", filter={"rooms": many})
    assert len(long_list["results"]) == 2
    senders = [bob.user_id, *(f"@u{i}:test.local" for i in range(300))]
    by_many = await search_ok(harness, alice, "banana", filter={"not_senders": senders})
    assert len(by_many["results"]) == 3
    limited = await search_ok(harness, alice, "banana", filter={"limit": 2}, order_by="recent")
    assert len(limited["results"]) == 2 and "next_batch" in limited


async def test_event_context_with_profiles(harness: Harness) -> None:
    alice = await make_user(harness, "alice")
    room = await create_room(harness, alice)
    for i in range(4):
        await send_ok(harness, alice, room, f"before {i}")
    await send_ok(harness, alice, room, "the needle")
    for i in range(4):
        await send_ok(harness, alice, room, f"after {i}")
    found = await search_ok(
        harness,
        alice,
        "needle",
        event_context={"before_limit": 2, "after_limit": 3, "include_profile": True},
    )
    context = found["results"][0]["context"]
    assert [e["content"]["body"] for e in context["events_before"]] == ["before 3", "before 2"]
    assert [e["content"]["body"] for e in context["events_after"]] == [
        "after 0",
        "after 1",
        "after 2",
    ]
    assert context["start"] and context["end"]
    assert context["profile_info"] == {alice.user_id: {"displayname": "alice", "avatar_url": None}}
    page = await harness.request(
        "GET",
        f"{V3}/rooms/{quote(room, safe='')}/messages?dir=f&limit=1&from={context['end']}",
        token=alice.token,
    )
    assert [e["content"]["body"] for e in page.json["chunk"]] == ["after 3"]


async def test_include_state_and_groupings(harness: Harness) -> None:
    alice = await make_user(harness, "alice")
    bob = await make_user(harness, "bob")
    room1 = await create_room(harness, alice, preset="public_chat", name="First")
    room2 = await create_room(harness, alice, preset="public_chat")
    assert (await join(harness, bob, room2)).status == 200
    await send_ok(harness, alice, room1, "grape one")
    await send_ok(harness, bob, room2, "grape two")
    await send_ok(harness, alice, room2, "grape three")
    found = await search_ok(
        harness,
        alice,
        "grape",
        order_by="recent",
        include_state=True,
        groupings={"group_by": [{"key": "room_id"}, {"key": "sender"}]},
        filter={"limit": 2},
    )
    assert bodies(found) == ["grape three", "grape two"]
    assert set(found["state"]) == {room2}
    assert ("m.room.create", "") in {(e["type"], e["state_key"]) for e in found["state"][room2]}
    rooms = found["groups"]["room_id"]
    assert rooms[room2]["results"] == [r["result"]["event_id"] for r in found["results"]]
    assert rooms[room2]["order"] == 1
    senders = found["groups"]["sender"]
    assert set(senders) == {alice.user_id, bob.user_id}
    # The group's token continues within its room only: room1's match never shows.
    more = await search(harness, alice, "grape", rooms[room2]["next_batch"], order_by="recent")
    assert more.status == 200, more.json
    assert bodies(more.json["search_categories"]["room_events"]) == []
    rest = await search(harness, alice, "grape", found["next_batch"], order_by="recent")
    assert bodies(rest.json["search_categories"]["room_events"]) == ["grape one"]


async def test_redacted_event_disappears(harness: Harness) -> None:
    alice = await make_user(harness, "alice")
    room = await create_room(harness, alice)
    event_id = await send_ok(harness, alice, room, "secret plans")
    await send_ok(harness, alice, room, "public plans")
    assert (await redact(harness, alice, room, event_id, "r1")).status == 200
    assert bodies(await search_ok(harness, alice, "plans")) == ["public plans"]
    assert (await search_ok(harness, alice, "secret"))["count"] == 0


async def test_left_room_hides_events_after_leaving(harness: Harness) -> None:
    alice = await make_user(harness, "alice")
    bob = await make_user(harness, "bob")
    room = await create_room(harness, alice, preset="public_chat")
    assert (await join(harness, bob, room)).status == 200
    await send_ok(harness, alice, room, "kiwi before leaving")
    await send_ok(harness, alice, room, "kiwi just before")
    assert (await membership_action(harness, bob, room, "leave")).status == 200
    await send_ok(harness, alice, room, "kiwi after leaving")
    found = await search_ok(
        harness,
        bob,
        "kiwi",
        order_by="recent",
        event_context={"before_limit": 5, "after_limit": 5},
        include_state=True,
    )
    assert bodies(found) == ["kiwi just before", "kiwi before leaving"]
    after = found["results"][0]["context"]["events_after"]
    assert all("after leaving" not in e.get("content", {}).get("body", "") for e in after)
    state_members = {
        e["state_key"]: e["content"]["membership"]
        for e in found["state"][room]
        if e["type"] == "m.room.member"
    }
    assert state_members[bob.user_id] == "leave"


async def test_history_visibility_before_joining(harness: Harness) -> None:
    alice = await make_user(harness, "alice")
    bob = await make_user(harness, "bob")
    room = await create_room(harness, alice, preset="public_chat")
    vis = await put_state(
        harness, alice, room, "m.room.history_visibility", {"history_visibility": "joined"}
    )
    assert vis.status == 200
    await send_ok(harness, alice, room, "mango before bob")
    assert (await join(harness, bob, room)).status == 200
    await send_ok(harness, alice, room, "mango with bob")
    found = await search_ok(
        harness, bob, "mango", event_context={"before_limit": 10, "after_limit": 0}
    )
    assert bodies(found) == ["mango with bob"]
    before = found["results"][0]["context"]["events_before"]
    assert all("before bob" not in e.get("content", {}).get("body", "") for e in before)


async def test_private_room_of_others_never_leaks(harness: Harness) -> None:
    alice = await make_user(harness, "alice")
    eve = await make_user(harness, "eve")
    private = await create_room(harness, alice, preset="private_chat")
    await send_ok(harness, alice, private, "papaya secret")
    mine = await create_room(harness, eve)
    await send_ok(harness, eve, mine, "papaya mine")
    found = await search_ok(harness, eve, "papaya", filter={"rooms": [private, mine]})
    assert bodies(found) == ["papaya mine"]
    assert found["count"] == 1
    bad_group = await search(
        harness, eve, "papaya", order_by="recent", groupings={"group_by": [{"key": "room_id"}]}
    )
    assert private not in bad_group.json["search_categories"]["room_events"].get("groups", {}).get(
        "room_id", {}
    )


HOSTILE = [
    '"',
    '"unbalanced quote',
    "*",
    "cat*",
    "NEAR(cat dog)",
    "cat OR",
    "OR cat",
    "-cat",
    "- -",
    "cat -dog",
    "cat AND NOT dog",
    "^cat",
    "cat:dog",
    "col:cat",
    "!!cat & | <->",
    "'; DROP TABLE events; --",
    "\x00cat",
    "(((",
    "",
    "   ",
    "ünïcödé 猫",
]


async def test_hostile_queries_never_fail(harness: Harness) -> None:
    alice = await make_user(harness, "alice")
    room = await create_room(harness, alice)
    await send_ok(harness, alice, room, "cat and dog")
    await send_ok(harness, alice, room, "ünïcödé 猫")
    for term in HOSTILE:
        for order_by in ("rank", "recent"):
            resp = await search(harness, alice, term, order_by=order_by)
            assert resp.status == 200, (term, resp.json)
    assert bodies(await search_ok(harness, alice, "cat -dog")) == []
    assert bodies(await search_ok(harness, alice, "NEAR(cat dog)")) == []
    assert bodies(await search_ok(harness, alice, '"cat and"')) == ["cat and dog"]
    assert bodies(await search_ok(harness, alice, "parrot OR dog")) == ["cat and dog"]
    too_long = await search(harness, alice, "a" * 100_000)
    assert_error(too_long, 400, "M_INVALID_PARAM")
    too_many = await search(harness, alice, " ".join(["cat"] * 40))
    assert_error(too_many, 400, "M_INVALID_PARAM")


async def test_bad_requests(harness: Harness) -> None:
    alice = await make_user(harness, "alice")
    url = f"{V3}/search"
    cases: list[tuple[Any, str]] = [
        ({}, "M_MISSING_PARAM"),
        ({"search_categories": []}, "M_BAD_JSON"),
        ({"search_categories": {}}, "M_MISSING_PARAM"),
        ({"search_categories": {"room_events": {}}}, "M_MISSING_PARAM"),
        ({"search_categories": {"room_events": {"search_term": 5}}}, "M_BAD_JSON"),
    ]
    criteria: list[tuple[dict[str, Any], str]] = [
        ({"order_by": "random"}, "M_INVALID_PARAM"),
        ({"keys": ["content.secret"]}, "M_BAD_JSON"),
        ({"keys": "content.body"}, "M_BAD_JSON"),
        ({"filter": {"limit": -1}}, "M_BAD_JSON"),
        ({"filter": "nope"}, "M_BAD_JSON"),
        ({"event_context": {"before_limit": -1}}, "M_BAD_JSON"),
        ({"event_context": {"include_profile": "yes"}}, "M_BAD_JSON"),
        ({"groupings": {"group_by": [{"key": "type"}]}}, "M_INVALID_PARAM"),
        ({"include_state": "yes"}, "M_BAD_JSON"),
    ]
    for extra, errcode in criteria:
        body = {"search_categories": {"room_events": {"search_term": "x", **extra}}}
        cases.append((body, errcode))
    for body, errcode in cases:
        resp = await harness.request("POST", url, json=body, token=alice.token)
        assert_error(resp, 400, errcode)
    for token in ["garbage", "!!!", "a" * 5000, "WzEsMiwzXQ", "WyJyYW5rIiwtMSwwLDAsbnVsbF0"]:
        resp = await search(harness, alice, "x", token)
        assert_error(resp, 400, "M_INVALID_PARAM")
    room = await create_room(harness, alice)
    for i in range(12):
        await send_ok(harness, alice, room, f"x {i}")
    first = await search_ok(harness, alice, "x", order_by="recent")
    wrong_order = await search(harness, alice, "x", first["next_batch"], order_by="rank")
    assert_error(wrong_order, 400, "M_INVALID_PARAM")
    unauthenticated = await harness.request("POST", url, json={})
    assert_error(unauthenticated, 401, "M_MISSING_TOKEN")


async def test_work_is_bounded_and_pages_stay_exact(
    harness: Harness, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(search_store, "RANK_WINDOW", 6)
    monkeypatch.setattr(search_store, "COUNT_CAP", 4)
    alice = await make_user(harness, "alice")
    room = await create_room(harness, alice)
    # The best match is the oldest: outside the window of the newest six.
    await send_ok(harness, alice, room, "plum plum plum")
    sent = [f"plum {'filler ' * i}end" for i in range(8)]
    for body in sent:
        await send_ok(harness, alice, room, body)
    seen: list[str] = []
    ranks: list[float] = []
    token: str | None = None
    while True:
        resp = await search(harness, alice, "plum", token, filter={"limit": 4})
        found = resp.json["search_categories"]["room_events"]
        assert found["count"] == 4
        seen.extend(bodies(found))
        ranks.extend(r["rank"] for r in found["results"])
        token = found.get("next_batch")
        if token is None:
            break
    # Rank order covers the newest six matches, best first, each once.
    assert sorted(seen) == sorted(sent[2:])
    assert ranks == sorted(ranks, reverse=True)
    recent = await search_ok(harness, alice, "plum", order_by="recent", filter={"limit": 20})
    assert len(recent["results"]) == 9
