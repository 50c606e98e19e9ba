"""An initial sync builds all joined rooms together (a few queries in all);
each room must come out exactly as the room-by-room path builds it.

Rooms cover what the batched steps each decide: state replaced inside the
timeline, history hidden by visibility (so much that the first page is not
enough), a redaction, unread and highlighted events after a receipt, the
user's own events, lazy-loaded members, a filtered timeline, an empty
timeline limit, and rooms joined since the last sync in an incremental one.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest

from hamlet.config import HomeServerConfig
from hamlet.core.filters import RoomFilter, parse_filter
from hamlet.handlers.common.streams import StreamToken, SyncScope
from hamlet.handlers.sync.results import JoinedRoom, RoomsResult
from hamlet.handlers.sync.rooms import RoomWindow
from tests.support.harness import Harness
from tests.support.users import TestUser, make_user
from tests.sync.helpers import fast_harness
from tests.user_streams.helpers import call, public_room, send_text


@pytest.fixture
async def h(make_hs_config: Callable[..., HomeServerConfig]) -> AsyncIterator[Harness]:
    async with fast_harness(make_hs_config) as h:
        yield h


async def put_state(h: Harness, user: TestUser, room: str, kind: str, content: Any) -> None:
    resp = await call(h, "PUT", f"/rooms/{room}/state/{kind}/", user, content)
    assert resp.status == 200, resp.body


def without_age(events: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Events with `unsigned.age` dropped: it moves with the clock between two builds."""
    out = []
    for event in events:
        copy = dict(event)
        copy["unsigned"] = {k: v for k, v in event.get("unsigned", {}).items() if k != "age"}
        out.append(copy)
    return out


async def build(
    h: Harness, scope: SyncScope, since: StreamToken | None, upto: StreamToken, f: RoomFilter
) -> RoomsResult:
    """The rooms of a /sync v3 without news from other streams."""
    return await h.hs.sync.room_builder.build(
        scope=scope,
        since=since,
        now=upto,
        full_state=since is None,
        room_filter=f,
        room_account_data={},
        other_news=(),
    )


def comparable(room: JoinedRoom) -> tuple[Any, ...]:
    t = room.timeline
    return (
        without_age(t.events),
        t.limited,
        t.prev_batch,
        without_age(room.state),
        room.unread,
        room.summary,
    )


async def rooms_of_every_kind(h: Harness, alice: TestUser) -> list[str]:
    bob = await make_user(h, "bob")
    carol = await make_user(h, "carol")
    dave = await make_user(h, "dave")
    rooms = []

    # State replaced inside the timeline; a redaction; a highlight; a receipt.
    room = await public_room(h, bob, alice, carol)
    await put_state(h, bob, room, "m.room.name", {"name": "Old"})
    read = await send_text(h, alice, room, "mine")
    resp = await call(h, "POST", f"/rooms/{room}/receipt/m.read/{read}", alice, {})
    assert resp.status == 200
    await put_state(h, bob, room, "m.room.name", {"name": "New"})
    gone = await send_text(h, carol, room, "to redact")
    resp = await call(h, "PUT", f"/rooms/{room}/redact/{gone}/r1", carol, {})
    assert resp.status == 200
    await send_text(h, bob, room, f"hello {alice.user_id}")
    for n in range(4):
        await send_text(h, carol, room, f"chatter {n}")
    rooms.append(room)

    # History only for those joined: what came before alice joined is hidden,
    # more of it than the first page holds.
    room = await public_room(h, bob, carol, dave)
    await put_state(h, bob, room, "m.room.history_visibility", {"history_visibility": "joined"})
    for n in range(30):
        await send_text(h, carol, room, f"before {n}")
    resp = await call(h, "POST", f"/join/{room}", alice, {})
    assert resp.status == 200
    await send_text(h, dave, room, "after")
    rooms.append(room)

    # A quiet room alice created: only state, all hers.
    rooms.append(await public_room(h, alice))
    return rooms


@pytest.mark.parametrize(
    "filter_json",
    [
        {},
        {"room": {"timeline": {"limit": 3}}},
        {"room": {"state": {"lazy_load_members": True}, "timeline": {"limit": 4}}},
        {"room": {"timeline": {"types": ["m.room.message"], "limit": 2}}},
        {"room": {"state": {"types": ["m.room.name"]}, "timeline": {"limit": 5}}},
    ],
)
async def test_initial_sync_rooms_match_the_room_by_room_build(
    h: Harness, filter_json: dict[str, Any]
) -> None:
    alice = await make_user(h, "alice")
    rooms = await rooms_of_every_kind(h, alice)
    hs = h.hs
    upto = hs.notifier.current_token()
    scope = SyncScope(alice.user_id, alice.device_id, frozenset(rooms))
    room_filter = parse_filter(filter_json).room
    builder = hs.sync.room_builder
    built = await build(h, scope, None, upto, room_filter)
    assert set(built.join) == set(rooms)
    window = RoomWindow.from_filter(room_filter)
    for room in rooms:
        one = await builder.joined_room(scope, room, None, upto, window)
        assert one is not None
        assert comparable(built.join[room]) == comparable(one), room


async def test_rooms_joined_since_the_last_sync_match_too(h: Harness) -> None:
    alice = await make_user(h, "alice")
    bob = await make_user(h, "bob")
    first = await public_room(h, bob, alice)
    since = h.hs.notifier.current_token()
    later = await public_room(h, bob)
    for n in range(3):
        await send_text(h, bob, later, f"before alice {n}")
    resp = await call(h, "POST", f"/join/{later}", alice, {})
    assert resp.status == 200
    await send_text(h, bob, later, "welcome")
    await send_text(h, bob, first, "in the old room")
    hs = h.hs
    upto = hs.notifier.current_token()
    scope = SyncScope(alice.user_id, alice.device_id, frozenset({first, later}))
    builder = hs.sync.room_builder
    room_filter = parse_filter({}).room
    built = await build(h, scope, since, upto, room_filter)
    fresh = await builder.joined_room(
        scope, later, since, upto, RoomWindow.from_filter(room_filter)
    )
    assert fresh is not None and fresh.timeline.limited
    assert comparable(built.join[later]) == comparable(fresh)
    # The room alice was already in stays incremental.
    old = built.join[first]
    assert [e["content"].get("body") for e in old.timeline.events] == ["in the old room"]
    assert not old.timeline.limited
    assert isinstance(old.timeline.prev_batch, StreamToken)
