"""Sending events and state, reading state and single events, concurrency and rate limits."""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import AsyncIterator
from typing import Any

import pytest

from hamlet.homeserver import HomeServer
from tests.rooms.helpers import (
    V3,
    assert_error,
    count_events,
    create_room,
    get_event,
    get_state,
    get_state_event,
    join,
    membership_action,
    put_state,
    q,
    send,
    send_ok,
    state_map,
)
from tests.support.harness import Harness, start_harness
from tests.support.users import TestUser, make_user

MSG = {"msgtype": "m.text", "body": "hello"}


async def restart(harness: Harness) -> HomeServer:
    """Shut the homeserver down and serve a new one built on the same config."""
    old = harness.hs
    config = old.config
    harness.registry.remove(config.server_name)
    await old.shutdown()
    new = HomeServer(config)
    await new.setup()
    await new.start()
    harness.registry.add(new)
    harness.servers[config.server_name] = new
    return new


async def second_device(harness: Harness, user: TestUser) -> TestUser:
    login = await harness.hs.registration.create_login(user.user_id, None, None)
    return TestUser(user.user_id, login["access_token"], login["device_id"])


# --- sending messages ---


async def test_send_and_read_back(harness: Harness) -> None:
    alice = await make_user(harness, "alice")
    room_id = await create_room(harness, alice)
    resp = await send(harness, alice, room_id, MSG, txn="abc")
    assert resp.status == 200, resp.json
    event_id = resp.json["event_id"]
    assert event_id.startswith("$")
    resp = await get_event(harness, alice, room_id, event_id)
    assert resp.status == 200, resp.json
    ev = resp.json
    assert ev["type"] == "m.room.message" and ev["content"] == MSG
    assert ev["sender"] == alice.user_id and ev["room_id"] == room_id
    assert ev["event_id"] == event_id and "state_key" not in ev
    assert isinstance(ev["origin_server_ts"], int)
    assert ev["unsigned"]["transaction_id"] == "abc"
    assert ev["unsigned"]["age"] >= 0
    for key in ("auth_events", "prev_events", "hashes", "signatures", "depth"):
        assert key not in ev


async def test_txn_idempotent(harness: Harness) -> None:
    alice = await make_user(harness, "alice")
    room_id = await create_room(harness, alice)
    first = await send(harness, alice, room_id, MSG, txn="same")
    assert first.status == 200
    before = await count_events(harness, room_id)
    again = await send(harness, alice, room_id, MSG, txn="same")
    assert again.status == 200 and again.json == first.json
    # Reused with a different body: still the first event (as Synapse).
    other = await send(harness, alice, room_id, {"msgtype": "m.text", "body": "else"}, txn="same")
    assert other.status == 200 and other.json == first.json
    other = await send(harness, alice, room_id, {"x": 1}, event_type="m.custom", txn="same")
    assert other.status == 200 and other.json == first.json
    assert await count_events(harness, room_id) == before


async def test_txn_idempotent_across_restart(harness: Harness) -> None:
    alice = await make_user(harness, "alice")
    room_id = await create_room(harness, alice)
    first = await send(harness, alice, room_id, MSG, txn="survives")
    assert first.status == 200
    before = await count_events(harness, room_id)
    await restart(harness)
    again = await send(harness, alice, room_id, MSG, txn="survives")
    assert again.status == 200, again.json
    assert again.json == first.json
    assert await count_events(harness, room_id) == before
    # The restarted server carries on the room's DAG.
    resp = await send(harness, alice, room_id, MSG, txn="after")
    assert resp.status == 200
    stored = await harness.hs.events_store.get_event(resp.json["event_id"])
    first_stored = await harness.hs.events_store.get_event(first.json["event_id"])
    assert stored is not None and first_stored is not None
    assert stored.event.prev_events == [first.json["event_id"]]
    assert stored.event.depth == first_stored.event.depth + 1
    assert stored.stream_ordering > first_stored.stream_ordering


async def test_txn_scoped_to_device_and_room(harness: Harness) -> None:
    alice = await make_user(harness, "alice")
    alice2 = await second_device(harness, alice)
    room_id = await create_room(harness, alice)
    other_room = await create_room(harness, alice)
    first = await send(harness, alice, room_id, MSG, txn="t")
    second = await send(harness, alice2, room_id, MSG, txn="t")
    assert first.status == second.status == 200
    assert first.json["event_id"] != second.json["event_id"]
    # The transaction id is shown only to the device that sent it.
    resp = await get_event(harness, alice, room_id, second.json["event_id"])
    assert "transaction_id" not in resp.json["unsigned"]
    resp = await get_event(harness, alice2, room_id, second.json["event_id"])
    assert resp.json["unsigned"]["transaction_id"] == "t"
    # Another room is another transaction.
    third = await send(harness, alice, other_room, MSG, txn="t")
    assert third.status == 200
    assert third.json["event_id"] not in (first.json["event_id"], second.json["event_id"])
    resp = await get_event(harness, alice, other_room, third.json["event_id"])
    assert resp.status == 200 and resp.json["room_id"] == other_room


async def test_txn_retry_not_rate_limited_or_refused(make_hs_config: Any) -> None:
    """A retried transaction answers with the original event, before limits or checks."""
    h = await start_harness([make_hs_config(rc_message={"per_second": 0.1, "burst_count": 1})])
    try:
        alice = await make_user(h, "alice")
        room_id = await create_room(h, alice)
        await asyncio.get_running_loop().advance(10)  # type: ignore[attr-defined]
        first = await send(h, alice, room_id, MSG, txn="once")
        assert first.status == 200
        again = await send(h, alice, room_id, MSG, txn="once")
        assert again.status == 200 and again.json == first.json
    finally:
        await h.close()


async def test_send_refusals(harness: Harness) -> None:
    alice = await make_user(harness, "alice")
    bob = await make_user(harness, "bob")
    room_id = await create_room(harness, alice, preset="public_chat")
    # Non-member.
    assert_error(await send(harness, bob, room_id), 403, "M_FORBIDDEN")
    # Left.
    assert (await join(harness, bob, room_id)).status == 200
    assert (await send(harness, bob, room_id)).status == 200
    assert (await membership_action(harness, bob, room_id, "leave")).status == 200
    assert_error(await send(harness, bob, room_id), 403, "M_FORBIDDEN")
    # Invited only.
    carol = await make_user(harness, "carol")
    await membership_action(harness, alice, room_id, "invite", {"user_id": carol.user_id})
    assert_error(await send(harness, carol, room_id), 403, "M_FORBIDDEN")
    # Unknown room; malformed room id.
    assert_error(await send(harness, alice, f"!nope:{harness.hs.server_name}"), 404, "M_NOT_FOUND")
    assert_error(await send(harness, alice, "nope"), 400)
    # No token.
    resp = await harness.request("PUT", f"{V3}/rooms/{q(room_id)}/send/m.room.message/x", json=MSG)
    assert_error(resp, 401, "M_MISSING_TOKEN")


@pytest.mark.parametrize(
    ("raw", "errcode"),
    [
        (b"[1, 2]", "M_BAD_JSON"),
        (b'"a string"', "M_BAD_JSON"),
        (b"null", "M_BAD_JSON"),
        (b"{not json", "M_NOT_JSON"),
        (b"", "M_NOT_JSON"),
        (b'{"big": 9007199254740993}', "M_BAD_JSON"),
        (b'{"f": 1.5}', "M_BAD_JSON"),
    ],
)
async def test_send_invalid_content(harness: Harness, raw: bytes, errcode: str) -> None:
    alice = await make_user(harness, "alice")
    room_id = await create_room(harness, alice)
    before = await count_events(harness, room_id)
    resp = await harness.request(
        "PUT", f"{V3}/rooms/{q(room_id)}/send/m.room.message/bad", body=raw, token=alice.token
    )
    assert_error(resp, 400, errcode)
    assert await count_events(harness, room_id) == before
    # The txn id was not used up by the failure.
    resp = await send(harness, alice, room_id, MSG, txn="bad")
    assert resp.status == 200


async def test_send_too_large(harness: Harness) -> None:
    alice = await make_user(harness, "alice")
    room_id = await create_room(harness, alice)
    before = await count_events(harness, room_id)
    resp = await send(harness, alice, room_id, {"msgtype": "m.text", "body": "x" * 70000})
    assert_error(resp, 413, "M_TOO_LARGE")
    resp = await send(harness, alice, room_id, {"x": 1}, event_type="t" * 300)
    assert resp.status in (400, 413)
    assert_error(resp, resp.status)
    assert await count_events(harness, room_id) == before


async def test_events_default_refuses_message(harness: Harness) -> None:
    alice = await make_user(harness, "alice")
    bob = await make_user(harness, "bob")
    room_id = await create_room(
        harness,
        alice,
        preset="public_chat",
        power_level_content_override={"events_default": 10, "events": {"m.reaction": 0}},
    )
    assert (await join(harness, bob, room_id)).status == 200
    assert_error(await send(harness, bob, room_id), 403, "M_FORBIDDEN")
    resp = await send(harness, bob, room_id, {"k": 1}, event_type="m.reaction")
    assert resp.status == 200, resp.json
    assert (await send(harness, alice, room_id)).status == 200


# --- state ---


async def test_put_and_get_state(harness: Harness) -> None:
    alice = await make_user(harness, "alice")
    room_id = await create_room(harness, alice)
    # Without a state key, with an empty one and with a trailing slash.
    resp = await harness.request(
        "PUT",
        f"{V3}/rooms/{q(room_id)}/state/m.room.name",
        json={"name": "One"},
        token=alice.token,
    )
    assert resp.status == 200, resp.json
    first_id = resp.json["event_id"]
    resp = await harness.request(
        "GET", f"{V3}/rooms/{q(room_id)}/state/m.room.name", token=alice.token
    )
    assert resp.status == 200 and resp.json == {"name": "One"}
    resp = await harness.request(
        "PUT",
        f"{V3}/rooms/{q(room_id)}/state/m.room.name/",
        json={"name": "Two"},
        token=alice.token,
    )
    assert resp.status == 200, resp.json
    second_id = resp.json["event_id"]
    resp = await harness.request(
        "GET", f"{V3}/rooms/{q(room_id)}/state/m.room.name/", token=alice.token
    )
    assert resp.status == 200 and resp.json == {"name": "Two"}
    # With a state key.
    resp = await put_state(harness, alice, room_id, "org.example.thing", {"a": 1}, "key/with/slash")
    assert resp.status == 200, resp.json
    resp = await get_state_event(harness, alice, room_id, "org.example.thing", "key/with/slash")
    assert resp.status == 200 and resp.json == {"a": 1}
    resp = await harness.request(
        "GET", f"{V3}/rooms/{q(room_id)}/state/m.room.name/?format=event", token=alice.token
    )
    assert resp.status == 200 and resp.json["event_id"] == second_id
    # prev_content on the state change.
    resp = await get_event(harness, alice, room_id, second_id)
    assert resp.status == 200
    assert resp.json["unsigned"]["prev_content"] == {"name": "One"}
    assert resp.json["unsigned"]["replaces_state"] == first_id
    assert resp.json["state_key"] == ""
    resp = await get_event(harness, alice, room_id, first_id)
    assert "prev_content" not in resp.json["unsigned"]


async def test_state_not_found(harness: Harness) -> None:
    alice = await make_user(harness, "alice")
    room_id = await create_room(harness, alice)
    resp = await get_state_event(harness, alice, room_id, "m.room.name")
    assert_error(resp, 404, "M_NOT_FOUND")
    resp = await get_state_event(harness, alice, room_id, "m.room.member", "@x:y")
    assert_error(resp, 404, "M_NOT_FOUND")
    resp = await get_state(harness, alice, f"!nope:{harness.hs.server_name}")
    assert_error(resp, 404)
    resp = await get_state_event(harness, alice, f"!nope:{harness.hs.server_name}", "m.room.name")
    assert_error(resp, 404)


async def test_state_power_levels(harness: Harness) -> None:
    alice = await make_user(harness, "alice")
    bob = await make_user(harness, "bob")
    room_id = await create_room(harness, alice, preset="public_chat")
    assert (await join(harness, bob, room_id)).status == 200
    before = await count_events(harness, room_id)
    resp = await put_state(harness, bob, room_id, "m.room.name", {"name": "mine"})
    assert_error(resp, 403, "M_FORBIDDEN")
    resp = await put_state(
        harness, bob, room_id, "m.room.power_levels", {"users": {bob.user_id: 100}}
    )
    assert_error(resp, 403, "M_FORBIDDEN")
    # State keyed by another user's ID is that user's.
    resp = await put_state(harness, alice, room_id, "org.example.x", {}, bob.user_id)
    assert_error(resp, 403)
    # Malformed power levels content is refused as bad JSON.
    resp = await put_state(
        harness, alice, room_id, "m.room.power_levels", {"users": {bob.user_id: "50"}}
    )
    assert_error(resp, 400, "M_BAD_JSON")
    resp = await put_state(harness, alice, room_id, "m.room.power_levels", {"ban": True})
    assert_error(resp, 400, "M_BAD_JSON")
    assert await count_events(harness, room_id) == before
    # alice raises bob; now he may.
    resp = await put_state(
        harness,
        alice,
        room_id,
        "m.room.power_levels",
        {"users": {alice.user_id: 100, bob.user_id: 50}},
    )
    assert resp.status == 200, resp.json
    resp = await put_state(harness, bob, room_id, "m.room.name", {"name": "mine"})
    assert resp.status == 200, resp.json
    # Non-member cannot set state.
    carol = await make_user(harness, "carol")
    resp = await put_state(harness, carol, room_id, "m.room.topic", {"topic": "x"})
    assert_error(resp, 403)
    resp = await put_state(
        harness, alice, f"!nope:{harness.hs.server_name}", "m.room.topic", {"topic": "x"}
    )
    assert_error(resp, 404)
    resp = await harness.request(
        "PUT", f"{V3}/rooms/{q(room_id)}/state/m.room.topic", body=b"[]", token=alice.token
    )
    assert_error(resp, 400, "M_BAD_JSON")


async def test_full_state_visibility(harness: Harness) -> None:
    alice = await make_user(harness, "alice")
    bob = await make_user(harness, "bob")
    carol = await make_user(harness, "carol")
    room_id = await create_room(harness, alice, preset="public_chat", name="Before")
    # Non-member: 403.
    assert_error(await get_state(harness, bob, room_id), 403, "M_FORBIDDEN")
    assert_error(await get_state_event(harness, bob, room_id, "m.room.name"), 403)
    assert (await join(harness, bob, room_id)).status == 200
    state = await state_map(harness, bob, room_id)
    assert state[("m.room.name", "")]["content"] == {"name": "Before"}
    assert (await membership_action(harness, bob, room_id, "leave")).status == 200
    assert (
        await put_state(harness, alice, room_id, "m.room.name", {"name": "After"})
    ).status == 200
    assert (await join(harness, carol, room_id)).status == 200
    # bob sees the state as of his leaving.
    state = await state_map(harness, bob, room_id)
    assert state[("m.room.name", "")]["content"] == {"name": "Before"}
    assert state[("m.room.member", bob.user_id)]["content"]["membership"] == "leave"
    assert ("m.room.member", carol.user_id) not in state
    resp = await get_state_event(harness, bob, room_id, "m.room.name")
    assert resp.json == {"name": "Before"}
    # Members see the current state.
    state = await state_map(harness, alice, room_id)
    assert state[("m.room.name", "")]["content"] == {"name": "After"}
    # Invited but not joined: 403.
    dave = await make_user(harness, "dave")
    await membership_action(harness, alice, room_id, "invite", {"user_id": dave.user_id})
    assert_error(await get_state(harness, dave, room_id), 403)
    # World readable rooms are readable by anyone.
    assert (
        await put_state(
            harness,
            alice,
            room_id,
            "m.room.history_visibility",
            {"history_visibility": "world_readable"},
        )
    ).status == 200
    eve = await make_user(harness, "eve")
    assert (await get_state(harness, eve, room_id)).status == 200


async def test_canonical_alias_validation(harness: Harness) -> None:
    alice = await make_user(harness, "alice")
    server = harness.hs.server_name
    room_id = await create_room(harness, alice, room_alias_name="mine")
    await create_room(harness, alice, room_alias_name="other")
    resp = await put_state(
        harness, alice, room_id, "m.room.canonical_alias", {"alias": f"#other:{server}"}
    )
    assert_error(resp, 400, "M_BAD_ALIAS")
    resp = await put_state(
        harness, alice, room_id, "m.room.canonical_alias", {"alias": f"#missing:{server}"}
    )
    assert_error(resp, 400, "M_BAD_ALIAS")
    resp = await put_state(
        harness,
        alice,
        room_id,
        "m.room.canonical_alias",
        {"alias": f"#mine:{server}", "alt_aliases": [f"#other:{server}"]},
    )
    assert_error(resp, 400, "M_BAD_ALIAS")
    resp = await put_state(
        harness, alice, room_id, "m.room.canonical_alias", {"alias": "not an alias"}
    )
    assert_error(resp, 400)
    resp = await put_state(harness, alice, room_id, "m.room.canonical_alias", {"alias": 5})
    assert_error(resp, 400)
    resp = await put_state(
        harness, alice, room_id, "m.room.canonical_alias", {"alias": f"#mine:{server}"}
    )
    assert resp.status == 200, resp.json
    resp = await put_state(harness, alice, room_id, "m.room.canonical_alias", {})
    assert resp.status == 200, resp.json


# --- single events ---


async def test_get_event_errors_and_visibility(harness: Harness) -> None:
    alice = await make_user(harness, "alice")
    bob = await make_user(harness, "bob")
    room_id = await create_room(harness, alice, preset="public_chat")
    other_room = await create_room(harness, alice, preset="public_chat")
    event_id = await send_ok(harness, alice, room_id)
    assert_error(await get_event(harness, alice, room_id, "$unknown"), 404, "M_NOT_FOUND")
    # An event of another room, asked for under this room.
    assert_error(await get_event(harness, alice, other_room, event_id), 404, "M_NOT_FOUND")
    # bob is not in the room (shared history): invisible.
    assert_error(await get_event(harness, bob, room_id, event_id), 404)
    assert (await join(harness, bob, room_id)).status == 200
    resp = await get_event(harness, bob, room_id, event_id)
    assert resp.status == 200
    assert "transaction_id" not in resp.json["unsigned"]
    assert_error(await get_event(harness, alice, f"!nope:{harness.hs.server_name}", event_id), 404)


async def test_joined_history_visibility_hides_earlier_events(harness: Harness) -> None:
    alice = await make_user(harness, "alice")
    bob = await make_user(harness, "bob")
    room_id = await create_room(
        harness,
        alice,
        preset="public_chat",
        initial_state=[
            {"type": "m.room.history_visibility", "content": {"history_visibility": "joined"}}
        ],
    )
    early = await send_ok(harness, alice, room_id, "early")
    assert (await join(harness, bob, room_id)).status == 200
    late = await send_ok(harness, alice, room_id, "late")
    assert_error(await get_event(harness, bob, room_id, early), 404)
    assert (await get_event(harness, bob, room_id, late)).status == 200


# --- concurrency ---


@pytest.fixture
async def fast_harness(make_hs_config: Any) -> AsyncIterator[Harness]:
    h = await start_harness([make_hs_config(rc_message={"per_second": 1000, "burst_count": 1000})])
    yield h
    await h.close()


async def test_concurrent_sends_make_a_line(fast_harness: Harness) -> None:
    h = fast_harness
    alice = await make_user(h, "alice")
    room_id = await create_room(h, alice)
    responses = await asyncio.gather(
        *(
            send(h, alice, room_id, {"msgtype": "m.text", "body": str(i)}, txn=f"c{i}")
            for i in range(50)
        )
    )
    assert all(r.status == 200 for r in responses), [r.json for r in responses]
    ids = [r.json["event_id"] for r in responses]
    assert len(set(ids)) == 50
    events = await h.hs.room_history_store.get_room_events(
        room_id, after=None, before=None, limit=1000, backwards=False
    )
    assert {e.event.event_id for e in events} >= set(ids)
    streams = [e.stream_ordering for e in events]
    assert len(set(streams)) == len(streams) and streams == sorted(streams)
    for prev, cur in itertools.pairwise(events):
        assert cur.event.prev_events == [prev.event.event_id]
        assert cur.event.depth == prev.event.depth + 1
    assert events[0].event.type == "m.room.create" and events[0].event.prev_events == []


async def test_concurrent_sends_into_two_rooms(fast_harness: Harness) -> None:
    h = fast_harness
    alice = await make_user(h, "alice")
    bob = await make_user(h, "bob")
    r1 = await create_room(h, alice)
    r2 = await create_room(h, bob)
    responses = await asyncio.gather(
        *(
            send(h, user, room, {"msgtype": "m.text", "body": str(i)}, txn=f"x{i}")
            for i in range(25)
            for user, room in ((alice, r1), (bob, r2))
        )
    )
    assert all(r.status == 200 for r in responses)
    all_streams: list[int] = []
    for room in (r1, r2):
        events = await h.hs.room_history_store.get_room_events(
            room, after=None, before=None, limit=1000, backwards=False
        )
        assert len(events) == await count_events(h, room)
        for prev, cur in itertools.pairwise(events):
            assert cur.event.prev_events == [prev.event.event_id]
            assert cur.event.depth == prev.event.depth + 1
        all_streams += [e.stream_ordering for e in events]
    assert len(set(all_streams)) == len(all_streams)
    assert h.hs.event_creator.current_stream == max(all_streams)


# --- rate limits ---


async def test_message_rate_limit(make_hs_config: Any) -> None:
    h = await start_harness([make_hs_config(rc_message={"per_second": 0.1, "burst_count": 2})])
    try:
        alice = await make_user(h, "alice")
        admin = await make_user(h, "admin", admin=True)
        room_id = await create_room(h, alice)
        admin_room = await create_room(h, admin)
        # createRoom counted against rc_message too; let it leak away.
        await asyncio.get_running_loop().advance(10)  # type: ignore[attr-defined]
        assert (await send(h, alice, room_id)).status == 200
        assert (await send(h, alice, room_id)).status == 200
        resp = await send(h, alice, room_id)
        assert_error(resp, 429, "M_LIMIT_EXCEEDED")
        assert isinstance(resp.json["retry_after_ms"], int) and resp.json["retry_after_ms"] > 0
        assert int(resp.headers["Retry-After"]) >= 1
        await asyncio.get_running_loop().advance(30)  # type: ignore[attr-defined]
        assert (await send(h, alice, room_id)).status == 200
        # Admins are exempt.
        for _ in range(5):
            assert (await send(h, admin, admin_room)).status == 200
    finally:
        await h.close()


async def test_message_rate_zero_never_allows(make_hs_config: Any) -> None:
    h = await start_harness([make_hs_config(rc_message={"per_second": 0, "burst_count": 10})])
    try:
        alice = await make_user(h, "alice")
        admin = await make_user(h, "admin", admin=True)
        # alice could not create a room either: an (exempt) admin makes one she joins.
        room_id = await create_room(h, admin, preset="public_chat")
        assert_error(
            await h.request("POST", f"{V3}/createRoom", json={}, token=alice.token),
            429,
            "M_LIMIT_EXCEEDED",
        )
        assert (await join(h, alice, room_id)).status == 200
        resp = await send(h, alice, room_id)
        assert_error(resp, 429, "M_LIMIT_EXCEEDED")
        await asyncio.get_running_loop().advance(3600)  # type: ignore[attr-defined]
        assert_error(await send(h, alice, room_id), 429, "M_LIMIT_EXCEEDED")
    finally:
        await h.close()


# --- odd input never makes a 500 ---


async def test_odd_input_gets_matrix_errors(harness: Harness) -> None:
    alice = await make_user(harness, "alice")
    room_id = await create_room(harness, alice, preset="public_chat")
    event_id = await send_ok(harness, alice, room_id)
    server = harness.hs.server_name
    rid = q(room_id)
    long = "x" * 300
    cases: list[tuple[str, str, Any]] = [
        ("GET", f"/rooms/{q('!a' + chr(0) + ':' + server)}/state", None),
        ("GET", f"/rooms/{q('!' + long + ':' + server)}/state", None),
        ("GET", f"/rooms/{rid}/event/{q('$a' + chr(0))}", None),
        ("GET", f"/rooms/{rid}/event/{q(long)}", None),
        ("GET", f"/rooms/{rid}/state/m.room.member/{q(chr(0))}", None),
        ("GET", f"/rooms/{rid}/members?membership=nonsense", None),
        ("GET", f"/rooms/{rid}/members?at=s1", None),
        ("GET", f"/rooms/{rid}/members?at=s{'9' * 40}_0_0_0_0_0_0", None),
        ("PUT", f"/rooms/{rid}/state/org.x/{q(long)}", {}),
        ("PUT", f"/rooms/{rid}/state/{q(long)}", {}),
        ("PUT", f"/rooms/{rid}/send/{q(long)}/t1", {}),
        ("PUT", f"/rooms/{rid}/send/m.room.message/{q(chr(0))}", {}),
        ("PUT", f"/rooms/{rid}/state/m.room.member/{q('@bad')}", {"membership": "join"}),
        ("PUT", f"/rooms/{rid}/state/m.room.member/{q(alice.user_id)}", {}),
        ("PUT", f"/rooms/{rid}/redact/{q(event_id)}/r1", ["x"]),
        ("PUT", f"/rooms/{rid}/redact/{q('$' + chr(0))}/r2", {}),
        ("POST", f"/join/{q('#')}", {}),
        ("POST", f"/join/{q('!' + chr(0) + ':' + server)}", {}),
        ("POST", f"/join/{q('#a' + chr(0) + ':' + server)}", {}),
        ("POST", f"/rooms/{rid}/join", ["x"]),
        ("POST", f"/rooms/{rid}/invite", []),
        ("POST", f"/rooms/{rid}/invite", {"user_id": "@a" + chr(0) + ":" + server}),
        ("POST", f"/rooms/{rid}/ban", {"user_id": "@x:y", "reason": {}}),
        ("POST", f"/rooms/{rid}/kick", {"user_id": long}),
        ("POST", f"/rooms/{q('!' + chr(0) + ':' + server)}/forget", {}),
        ("POST", "/createRoom", {"invite": ["@" + long + ":" + server]}),
        ("POST", "/createRoom", {"room_alias_name": long}),
        ("POST", "/createRoom", {"room_alias_name": "a" + chr(0)}),
        ("POST", "/createRoom", {"name": "x" * 70000}),
        ("POST", "/createRoom", {"initial_state": [{"type": long, "content": {}}]}),
        ("POST", "/createRoom", {"creation_content": {"room_version": 5}}),
        ("POST", "/createRoom", {"initial_state": [{"type": "a" + chr(0), "content": {}}]}),
        (
            "POST",
            "/createRoom",
            {"initial_state": [{"type": "a", "state_key": chr(0), "content": {}}]},
        ),
        ("POST", "/createRoom", {"power_level_content_override": {"users": []}}),
    ]
    failures = []
    for method, path, body in cases:
        resp = await harness.request(method, V3 + path, json=body, token=alice.token)
        if resp.status >= 500:
            failures.append((method, path, repr(body)[:80], resp.status))
        elif resp.status >= 400:
            assert_error(resp, resp.status)
    assert not failures, failures


async def test_put_same_state_again_is_idempotent(harness: Harness) -> None:
    alice = await make_user(harness, "alice")
    bob = await make_user(harness, "bob")
    room_id = await create_room(harness, alice, preset="public_chat")
    first = await put_state(harness, alice, room_id, "m.room.topic", {"topic": "t"})
    assert first.status == 200
    before = await count_events(harness, room_id)
    again = await put_state(harness, alice, room_id, "m.room.topic", {"topic": "t"})
    assert again.status == 200 and again.json == first.json
    assert await count_events(harness, room_id) == before
    # Other content, or another sender, is a new event.
    other = await put_state(harness, alice, room_id, "m.room.topic", {"topic": "u"})
    assert other.status == 200 and other.json != first.json
    resp = await put_state(
        harness,
        alice,
        room_id,
        "m.room.power_levels",
        {"users": {alice.user_id: 100, bob.user_id: 50}},
    )
    assert resp.status == 200
    assert (await join(harness, bob, room_id)).status == 200
    by_bob = await put_state(harness, bob, room_id, "m.room.topic", {"topic": "u"})
    assert by_bob.status == 200 and by_bob.json != other.json
    # A non-member cannot learn anything this way.
    carol = await make_user(harness, "carol")
    assert_error(await put_state(harness, carol, room_id, "m.room.topic", {"topic": "u"}), 403)
