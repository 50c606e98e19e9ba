"""One sending pipeline: every path that makes an event meets the same policies.

Each test is a path that used to slip past a policy: state events and
invites from shadow-banned users, joins through PUT state, createRoom,
state events and redactions outside `rc_message`; and the policies every
path shares (admins and the server's own actions exempt, idempotent state,
transaction IDs on redactions).
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest

from tests.conftest import advance
from tests.rooms.helpers import (
    V3,
    assert_error,
    count_events,
    create_room,
    get_event,
    get_state_event,
    join,
    member_content,
    put_state,
    q,
    redact,
    send,
    send_ok,
)
from tests.rooms.reading_support import FAST, NO_LIMITS
from tests.support.harness import Harness, Response, start_harness
from tests.support.users import TestUser, make_user

ADMIN_V1 = "/_synapse/admin/v1"
GENEROUS = FAST
#: rc_message: three at once, then one every 10 seconds.
STRICT_MESSAGES = {"per_second": 0.1, "burst_count": 3}


async def _start(make_hs_config: Any, **overrides: Any) -> Harness:
    return await start_harness([make_hs_config(**{**NO_LIMITS, **overrides})])


@pytest.fixture
async def open_hs(make_hs_config: Any) -> AsyncIterator[Harness]:
    h = await _start(make_hs_config)
    yield h
    await h.close()


@pytest.fixture
async def strict_hs(make_hs_config: Any) -> AsyncIterator[Harness]:
    h = await _start(make_hs_config, rc_message=STRICT_MESSAGES)
    yield h
    await h.close()


def assert_limited(resp: Response) -> None:
    assert_error(resp, 429, "M_LIMIT_EXCEEDED")
    retry_ms = resp.json["retry_after_ms"]
    assert isinstance(retry_ms, int) and retry_ms > 0
    assert int(resp.headers["Retry-After"]) >= retry_ms // 1000


async def shadow_ban(h: Harness, admin: TestUser, user: TestUser) -> None:
    resp = await h.request("POST", f"{ADMIN_V1}/users/{user.user_id}/shadow_ban", token=admin.token)
    assert resp.status == 200, resp.json


def ok_id(resp: Response) -> str:
    assert resp.status == 200, resp.json
    event_id: str = resp.json["event_id"]
    return event_id


# --- shadow bans ---


async def test_shadow_banned_state_event_is_not_seen(open_hs: Harness) -> None:
    h = open_hs
    admin = await make_user(h, "admin", admin=True)
    alice = await make_user(h, "alice")
    bob = await make_user(h, "bob")
    room_id = await create_room(
        h, admin, preset="public_chat", power_level_content_override={"state_default": 0}
    )
    for user in (alice, bob):
        assert (await join(h, user, room_id)).status == 200
    await shadow_ban(h, admin, alice)
    before = h.hs.event_creator.current_stream

    fake = ok_id(await put_state(h, alice, room_id, "m.room.topic", {"topic": "spam"}))
    assert fake.startswith("$")
    assert_error(await get_state_event(h, bob, room_id, "m.room.topic"), 404, "M_NOT_FOUND")
    assert_error(await get_event(h, bob, room_id, fake), 404)
    assert h.hs.event_creator.current_stream == before
    # A redaction of someone else's event: nothing is redacted.
    target = await send_ok(h, bob, room_id, "keep me")
    before = h.hs.event_creator.current_stream
    assert ok_id(await redact(h, alice, room_id, target, "r1")).startswith("$")
    seen = await get_event(h, bob, room_id, target)
    assert seen.status == 200 and seen.json["content"]["body"] == "keep me"
    # A retried transaction gets the same (fake) answer a real one would.
    first = ok_id(await send(h, alice, room_id, txn="same"))
    assert ok_id(await send(h, alice, room_id, txn="same")) == first
    assert h.hs.event_creator.current_stream == before


async def test_shadow_banned_invites_are_dropped(open_hs: Harness) -> None:
    h = open_hs
    admin = await make_user(h, "admin", admin=True)
    alice = await make_user(h, "alice")
    carol = await make_user(h, "carol")
    dave = await make_user(h, "dave")
    room_id = await create_room(h, admin, preset="public_chat")
    assert (await join(h, alice, room_id)).status == 200
    await shadow_ban(h, admin, alice)

    resp = await h.request(
        "POST",
        f"{V3}/rooms/{q(room_id)}/invite",
        json={"user_id": carol.user_id},
        token=alice.token,
    )
    assert resp.status == 200 and resp.json == {}
    fake = ok_id(
        await put_state(h, alice, room_id, "m.room.member", {"membership": "invite"}, dave.user_id)
    )
    assert fake.startswith("$")
    for user in (carol, dave):
        assert await h.hs.rooms_store.get_membership(room_id, user.user_id) is None
    # createRoom makes the room, without its invites.
    own_room = await create_room(h, alice, invite=[carol.user_id])
    assert await h.hs.rooms_store.get_membership(own_room, carol.user_id) is None
    joined = await h.hs.rooms_store.get_membership(own_room, alice.user_id)
    assert joined is not None and joined.membership == "join"
    # Leaving is not affected.
    leave = await h.request("POST", f"{V3}/rooms/{q(room_id)}/leave", json={}, token=alice.token)
    assert leave.status == 200
    gone = await h.hs.rooms_store.get_membership(room_id, alice.user_id)
    assert gone is not None and gone.membership == "leave"


async def test_shadow_banned_alias_deletion_leaves_canonical_alias(open_hs: Harness) -> None:
    """The alias goes; the canonical alias event it would cause is dropped (Synapse)."""
    h = open_hs
    admin = await make_user(h, "admin", admin=True)
    alice = await make_user(h, "alice")
    room_id = await create_room(h, alice, room_alias_name="spot")
    await shadow_ban(h, admin, alice)
    alias = "#spot:test.local"
    resp = await h.request("DELETE", f"{V3}/directory/room/{q(alias)}", token=alice.token)
    assert resp.status == 200, resp.json
    assert await h.hs.rooms_store.get_alias(alias) is None
    canonical = await h.hs.room_state.get_current_state_event(room_id, "m.room.canonical_alias", "")
    assert canonical is not None and canonical.content == {"alias": alias}


# --- rate limits on every path ---


async def test_put_state_join_counts_against_rc_joins(make_hs_config: Any) -> None:
    h = await _start(make_hs_config, rc_joins={"local": {"per_second": 0.01, "burst_count": 1}})
    try:
        admin = await make_user(h, "admin", admin=True)
        alice = await make_user(h, "alice")
        rooms = [await create_room(h, admin, preset="public_chat") for _ in range(3)]
        assert (await join(h, alice, rooms[0])).status == 200
        assert_limited(await join(h, alice, rooms[1]))
        join_by_put = await put_state(
            h, alice, rooms[2], "m.room.member", {"membership": "join"}, alice.user_id
        )
        assert_limited(join_by_put)
        assert await h.hs.rooms_store.get_membership(rooms[2], alice.user_id) is None
        # A join event of someone already joined (a new per-room name) is no new join.
        renamed = await put_state(
            h,
            alice,
            rooms[0],
            "m.room.member",
            {"membership": "join", "displayname": "Alice in room 0"},
            alice.user_id,
        )
        assert renamed.status == 200, renamed.json
        content = await member_content(h, admin, rooms[0], alice.user_id)
        assert content is not None and content["displayname"] == "Alice in room 0"
        # Admins are exempt.
        root = await make_user(h, "root", admin=True)
        assert (await join(h, root, rooms[1])).status == 200
        by_put = await put_state(
            h, root, rooms[2], "m.room.member", {"membership": "join"}, root.user_id
        )
        assert by_put.status == 200
    finally:
        await h.close()


async def test_put_state_invite_counts_against_rc_invites(make_hs_config: Any) -> None:
    h = await _start(
        make_hs_config,
        rc_invites={
            "per_room": GENEROUS,
            "per_user": GENEROUS,
            "per_issuer": {"per_second": 0.01, "burst_count": 1},
        },
    )
    try:
        alice = await make_user(h, "alice")
        bob = await make_user(h, "bob")
        carol = await make_user(h, "carol")
        room_id = await create_room(h, alice)
        invited = await h.request(
            "POST",
            f"{V3}/rooms/{q(room_id)}/invite",
            json={"user_id": bob.user_id},
            token=alice.token,
        )
        assert invited.status == 200
        assert_limited(
            await put_state(
                h, alice, room_id, "m.room.member", {"membership": "invite"}, carol.user_id
            )
        )
        assert await h.hs.rooms_store.get_membership(room_id, carol.user_id) is None
    finally:
        await h.close()


async def test_create_room_rate_limited(strict_hs: Harness) -> None:
    h = strict_hs
    alice = await make_user(h, "alice")
    for _ in range(3):
        await create_room(h, alice)
    before = await h.hs.rooms_store.get_rooms_for_user(alice.user_id)
    assert_limited(await h.request("POST", f"{V3}/createRoom", json={}, token=alice.token))
    assert len(await h.hs.rooms_store.get_rooms_for_user(alice.user_id)) == len(before)
    # A refused body costs nothing: it is checked before the limit.
    await advance(10)
    bad = await h.request(
        "POST", f"{V3}/createRoom", json={"room_version": "nope"}, token=alice.token
    )
    assert_error(bad, 400, "M_UNSUPPORTED_ROOM_VERSION")
    await create_room(h, alice)


async def test_state_events_rate_limited(strict_hs: Harness) -> None:
    h = strict_hs
    alice = await make_user(h, "alice")
    room_id = await create_room(h, alice)
    await advance(10)  # the createRoom leaks away
    for i in range(3):
        ok_id(await put_state(h, alice, room_id, "m.room.topic", {"topic": f"t{i}"}))
    events = await count_events(h, room_id)
    assert_limited(await put_state(h, alice, room_id, "m.room.topic", {"topic": "t3"}))
    assert await count_events(h, room_id) == events
    await advance(10)
    ok_id(await put_state(h, alice, room_id, "m.room.topic", {"topic": "t3"}))


async def test_redactions_rate_limited(strict_hs: Harness) -> None:
    h = strict_hs
    alice = await make_user(h, "alice")
    room_id = await create_room(h, alice)
    await advance(10)
    targets = [await send_ok(h, alice, room_id, str(i)) for i in range(3)]
    await advance(30)
    redactions = [ok_id(await redact(h, alice, room_id, t, f"r{t}")) for t in targets]
    assert_limited(await redact(h, alice, room_id, targets[0], "another"))
    # A retried redaction answers with the first, limit or not.
    assert ok_id(await redact(h, alice, room_id, targets[0], f"r{targets[0]}")) == redactions[0]


async def test_upgrade_rate_limited_and_shadow_banned(strict_hs: Harness) -> None:
    h = strict_hs
    admin = await make_user(h, "admin", admin=True)
    alice = await make_user(h, "alice")
    rooms = [await create_room(h, alice) for _ in range(2)]

    async def upgrade(room_id: str, version: str = "10") -> Response:
        return await h.request(
            "POST",
            f"{V3}/rooms/{q(room_id)}/upgrade",
            json={"new_version": version},
            token=alice.token,
        )

    replaced = await upgrade(rooms[0])
    assert replaced.status == 200, replaced.json
    assert_limited(await upgrade(rooms[1]))
    await advance(10)
    await shadow_ban(h, admin, alice)
    fake = await upgrade(rooms[1])
    assert fake.status == 200, fake.json
    assert await h.hs.rooms_store.get_room(fake.json["replacement_room"]) is None
    await advance(10)
    fake = await upgrade(rooms[1], "12")
    # Shaped as a v12 room ID would be: no server name.
    assert fake.status == 200 and ":" not in fake.json["replacement_room"], fake.json
    tombstone = await h.hs.room_state.get_current_state_event(rooms[1], "m.room.tombstone", "")
    assert tombstone is None


async def test_admins_exempt_everywhere(strict_hs: Harness) -> None:
    h = strict_hs
    admin = await make_user(h, "admin", admin=True)
    rooms = [await create_room(h, admin) for _ in range(5)]
    room_id = rooms[0]
    for i in range(5):
        ok_id(await put_state(h, admin, room_id, "m.room.topic", {"topic": f"t{i}"}))
    targets = [await send_ok(h, admin, room_id, str(i)) for i in range(5)]
    for target in targets:
        ok_id(await redact(h, admin, room_id, target, f"r{target}"))


async def test_server_actions_exempt(make_hs_config: Any) -> None:
    """Admin API and server notices act for users who are themselves limited."""
    never = {"per_second": 0, "burst_count": 10}
    h = await _start(
        make_hs_config,
        rc_message=never,
        rc_joins={"local": never, "remote": never},
        server_notices={"system_mxid_localpart": "notices"},
    )
    try:
        admin = await make_user(h, "admin", admin=True)
        alice = await make_user(h, "alice")
        room_id = await create_room(h, admin)
        assert_limited(await h.request("POST", f"{V3}/createRoom", json={}, token=alice.token))
        resp = await h.request(
            "POST",
            f"{ADMIN_V1}/join/{q(room_id)}",
            json={"user_id": alice.user_id},
            token=admin.token,
        )
        assert resp.status == 200, resp.json
        joined = await h.hs.rooms_store.get_membership(room_id, alice.user_id)
        assert joined is not None and joined.membership == "join"
        notice = await h.request(
            "POST",
            f"{ADMIN_V1}/send_server_notice",
            json={"user_id": alice.user_id, "content": {"msgtype": "m.text", "body": "hi"}},
            token=admin.token,
        )
        assert notice.status == 200, notice.json
    finally:
        await h.close()


# --- idempotent state and transaction IDs ---


async def test_identical_state_returns_the_existing_event(strict_hs: Harness) -> None:
    h = strict_hs
    admin = await make_user(h, "admin", admin=True)
    alice = await make_user(h, "alice")
    room_id = await create_room(
        h, admin, preset="public_chat", power_level_content_override={"state_default": 0}
    )
    assert (await join(h, alice, room_id)).status == 200
    first = ok_id(await put_state(h, alice, room_id, "m.room.topic", {"topic": "same"}))
    events = await count_events(h, room_id)
    # Repeats make nothing and cost nothing: more than the burst, all answered.
    for _ in range(5):
        assert ok_id(await put_state(h, alice, room_id, "m.room.topic", {"topic": "same"})) == first
    assert await count_events(h, room_id) == events
    # Other content, or another sender, is a new event.
    second = ok_id(await put_state(h, alice, room_id, "m.room.topic", {"topic": "other"}))
    by_admin = ok_id(await put_state(h, admin, room_id, "m.room.topic", {"topic": "other"}))
    assert len({first, second, by_admin}) == 3


async def test_redaction_txn_ids(open_hs: Harness) -> None:
    h = open_hs
    alice = await make_user(h, "alice")
    room_id = await create_room(h, alice)
    target = await send_ok(h, alice, room_id, "oops")
    first = ok_id(await redact(h, alice, room_id, target, "t1", {"reason": "typo"}))
    events = await count_events(h, room_id)
    assert ok_id(await redact(h, alice, room_id, target, "t1", {"reason": "typo"})) == first
    assert await count_events(h, room_id) == events
    # The same transaction ID from another device is another transaction.
    other = await h.hs.registration.create_login(alice.user_id, None, None)
    second_device = TestUser(alice.user_id, other["access_token"], other["device_id"])
    assert ok_id(await redact(h, second_device, room_id, target, "t1")) != first
    assert await count_events(h, room_id) == events + 1
