"""The stream providers driven directly, as a second consumer (sliding sync) will:
its own rooms, timeline limit and required state, typed results, no /sync."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable

import pytest

from hamlet.config import HomeServerConfig
from hamlet.handlers.common.streams import STREAM_NAMES, StreamProvider, SyncScope
from hamlet.handlers.e2ee.device_lists import DeviceListChanges
from hamlet.handlers.sync.rooms import RoomWindow
from hamlet.handlers.user_streams.typing import RoomTyping
from tests.support.harness import Harness
from tests.support.users import make_user
from tests.sync.helpers import fast_harness
from tests.user_streams.helpers import call, public_room, send_text


@pytest.fixture
async def h(make_hs_config: Callable[..., HomeServerConfig]) -> AsyncIterator[Harness]:
    async with fast_harness(make_hs_config) as h:
        yield h


async def test_one_room_with_its_own_window(h: Harness) -> None:
    alice = await make_user(h, "alice")
    bob = await make_user(h, "bob")
    room = await public_room(h, alice, bob)
    resp = await call(h, "PUT", f"/rooms/{room}/state/m.room.name/", alice, {"name": "Den"})
    assert resp.status == 200
    hs = h.hs
    before = hs.notifier.current_token()
    for text in ("one", "two", "three"):
        await send_text(h, alice, room, text)
    upto = hs.notifier.current_token()
    scope = SyncScope(bob.user_id, bob.device_id, frozenset({room}))
    provider = hs.sync.room_builder

    window = RoomWindow(timeline_limit=2, required_state=frozenset({("m.room.name", "")}))
    first = await provider.joined_room(scope, room, None, upto, window)
    assert first is not None
    assert [e["content"]["body"] for e in first.timeline.events] == ["two", "three"]
    assert first.timeline.limited
    assert [(e["type"], e["content"]) for e in first.state] == [("m.room.name", {"name": "Den"})]
    assert first.summary.joined_member_count == 2
    assert first.unread.notification_count == 3

    # Incremental, another window: all members' state, a larger limit.
    members = RoomWindow(timeline_limit=10, required_state=frozenset({("m.room.member", "*")}))
    later = await provider.joined_room(scope, room, before, upto, members)
    assert later is not None
    assert [e["content"]["body"] for e in later.timeline.events] == ["one", "two", "three"]
    assert not later.timeline.limited and later.state == []
    assert later.timeline.prev_batch.events == before.events

    # A room the user is not in answers None, not someone else's view.
    carol = await make_user(h, "carol")
    assert await provider.joined_room(SyncScope(carol.user_id, None), room, None, upto, window) is (
        None
    )


async def test_room_keyed_streams_answer_for_the_scope_rooms_only(h: Harness) -> None:
    alice = await make_user(h, "alice")
    bob = await make_user(h, "bob")
    watched = await public_room(h, alice, bob)
    other = await public_room(h, alice, bob)
    hs = h.hs
    since = hs.notifier.current_token()
    for room in (watched, other):
        path = f"/rooms/{room}/typing/{alice.user_id}"
        resp = await call(h, "PUT", path, alice, {"typing": True, "timeout": 5000})
        assert resp.status == 200
    event_id = await send_text(h, alice, watched, "read me")
    before_receipt = hs.notifier.current_token()
    resp = await call(h, "POST", f"/rooms/{watched}/receipt/m.read/{event_id}", bob, {})
    assert resp.status == 200
    upto = hs.notifier.current_token()
    scope = SyncScope(bob.user_id, bob.device_id, frozenset({watched}))

    typing = await hs.typing.changes(scope, since, upto)
    assert typing == {watched: RoomTyping((alice.user_id,))}
    receipts = await hs.receipts.changes(scope, since, upto)
    assert [(r.event_id, r.user_id) for r in receipts[watched].receipts] == [
        (event_id, bob.user_id)
    ]
    assert set(receipts) == {watched}
    # A receipt past `upto` waits for the consumer's next token.
    assert await hs.receipts.changes(scope, since, before_receipt) == {}
    # Device lists: nothing on an initial read (the client asks for keys then).
    assert await hs.device_lists.changes(scope, None, upto) == DeviceListChanges()
    account = await hs.account_data.changes(scope, None, upto)
    assert account.global_events == [] and account.room_events == {}


async def test_every_stream_has_one_provider(h: Harness) -> None:
    alice = await make_user(h, "alice")
    bob = await make_user(h, "bob")
    room = await public_room(h, alice)
    resp = await call(h, "POST", f"/rooms/{room}/invite", alice, {"user_id": bob.user_id})
    assert resp.status == 200
    hs = h.hs
    providers: list[StreamProvider[object]] = [
        hs.sync.room_builder,
        hs.typing,
        hs.receipts,
        hs.account_data,
        hs.sync.to_device,
        hs.presence,
        hs.device_lists,
    ]
    assert [p.name for p in providers] == list(STREAM_NAMES)
    now = hs.notifier.current_token()
    assert [p.current_position() for p in providers] == [now.get(n) for n in STREAM_NAMES]
    # The events provider on its own: bob's invite, as typed stripped state.
    rooms = await hs.sync.room_builder.changes(SyncScope(bob.user_id, None), None, now)
    assert list(rooms.invite) == [room] and rooms.join == {}
    stripped = rooms.invite[room].stripped_state
    assert (stripped[-1].type, stripped[-1].state_key) == ("m.room.member", bob.user_id)
    assert stripped[-1].content["membership"] == "invite"
    # Incrementally from now there is nothing new for him.
    assert (await hs.sync.room_builder.changes(SyncScope(bob.user_id, None), now, now)).invite == {}
