"""Typing and presence handlers with fake room Protocols, on virtual time."""

from __future__ import annotations

import asyncio

import pytest

from hamlet.api.client.sync_json import presence_json
from hamlet.handlers.common.errors import MatrixError
from hamlet.handlers.common.notifier import Notifier
from hamlet.handlers.user_streams.presence import PresenceHandler
from hamlet.handlers.user_streams.typing import RoomTyping, TypingHandler
from hamlet.runtime.clock import Clock
from tests.conftest import advance

ROOM = "!room:hs.test"
ALICE = "@alice:hs.test"
BOB = "@bob:hs.test"
EVE = "@eve:hs.test"


class FakeRooms:
    """Alice and Bob share ROOM; Eve is alone."""

    async def is_joined(self, user_id: str, room_id: str) -> bool:
        return room_id == ROOM and user_id in (ALICE, BOB)

    async def users_sharing_rooms(self, user_id: str) -> set[str]:
        return {ALICE, BOB} if user_id in (ALICE, BOB) else set()


async def test_typing_expires_on_the_clock() -> None:
    clock = Clock("hs.test")
    notifier = Notifier(clock)
    typing = TypingHandler(clock, notifier, FakeRooms())
    await typing.set_typing(ALICE, ALICE, ROOM, True, 10_000)
    assert typing.current_position() == 1
    updates = typing.get_updates([ROOM, "!other:hs.test"], 0)
    assert updates == {ROOM: RoomTyping((ALICE,))}
    assert typing.get_updates([ROOM], 1) == {}
    await advance(9)
    assert typing.typing_users(ROOM) == [ALICE]
    # Typing again pushes the expiry back without a new stream position.
    await typing.set_typing(ALICE, ALICE, ROOM, True, 10_000)
    assert typing.current_position() == 1
    await advance(9)
    assert typing.typing_users(ROOM) == [ALICE]
    await advance(2)
    assert typing.typing_users(ROOM) == []
    assert typing.current_position() == 2
    assert typing.get_updates([ROOM], 1) == {ROOM: RoomTyping(())}
    assert clock.pending_count() == 0
    # A token from before a restart gets the current state.
    assert ROOM in typing.get_updates([ROOM], 999)
    await clock.shutdown()


async def test_typing_refusals() -> None:
    clock = Clock("hs.test")
    typing = TypingHandler(clock, Notifier(clock), FakeRooms())
    with pytest.raises(MatrixError) as info:
        await typing.set_typing(ALICE, BOB, ROOM, True, 1000)
    assert info.value.status == 403
    with pytest.raises(MatrixError) as info:
        await typing.set_typing(EVE, EVE, ROOM, True, 1000)
    assert info.value.status == 403
    await typing.set_typing(ALICE, ALICE, ROOM, True, 1000)
    await typing.set_typing(ALICE, ALICE, ROOM, False, 0)
    assert typing.typing_users(ROOM) == []
    await typing.shutdown()
    await clock.shutdown()


async def test_presence_idle_then_offline() -> None:
    clock = Clock("hs.test")
    notifier = Notifier(clock)
    presence = PresenceHandler(clock, notifier, FakeRooms())
    presence.start()
    await presence.set_state_from_sync(ALICE, None)
    assert presence.get_state(ALICE).state == "online"
    # Bob shares a room with her and sees it; Eve does not.
    bob_events = presence_json(await presence.get_updates(BOB, 0))
    assert [e["sender"] for e in bob_events] == [ALICE]
    assert bob_events[0]["content"]["presence"] == "online"
    assert bob_events[0]["content"]["currently_active"] is True
    assert (await presence.get_updates(EVE, 0)).states == []
    with pytest.raises(MatrixError) as info:
        await presence.get_presence_for(EVE, ALICE)
    assert info.value.status == 403

    # She keeps syncing (a sync in flight), but does nothing for 5 minutes.
    async with presence.syncing(ALICE, "online"):
        pos = presence.current_position()
        await advance(5 * 60 + 10)
        assert presence.get_state(ALICE).state == "unavailable"
        changed = presence_json(await presence.get_updates(BOB, pos))
        assert changed[0]["content"]["presence"] == "unavailable"
        assert changed[0]["content"]["last_active_ago"] >= 5 * 60 * 1000
    # Her syncs stop: 30 s later she is offline.
    await advance(40)
    assert presence.get_state(ALICE).state == "offline"
    # Offline users are left out of an initial sync.
    assert (await presence.get_updates(BOB, 0)).states == []
    await clock.shutdown()


async def test_presence_disabled() -> None:
    clock = Clock("hs.test")
    presence = PresenceHandler(clock, Notifier(clock), FakeRooms(), enabled=False)
    presence.start()
    await presence.set_presence(ALICE, ALICE, "online", "hi")
    await presence.set_state_from_sync(ALICE, "online")
    assert (await presence.get_presence_for(ALICE, ALICE))["presence"] == "offline"
    assert (await presence.get_updates(BOB, 0)).states == []
    assert presence.current_position() == 0
    assert clock.pending_count() == 0
    await clock.shutdown()


class HeldRooms(FakeRooms):
    """Everyone shares ROOM; a lookup for Alice waits while `held` is clear."""

    def __init__(self) -> None:
        self.held = asyncio.Event()
        self.held.set()

    async def users_sharing_rooms(self, user_id: str) -> set[str]:
        if user_id == ALICE:
            await self.held.wait()
        return {ALICE, BOB}


async def test_a_timeout_sweep_never_writes_back_a_state_changed_meanwhile() -> None:
    clock = Clock("hs.test")
    rooms = HeldRooms()
    presence = PresenceHandler(clock, Notifier(clock), rooms)
    await presence.set_state_from_sync(ALICE, None)
    await presence.set_state_from_sync(BOB, None)
    async with presence.syncing(ALICE, "online"), presence.syncing(BOB, "online"):
        await advance(5 * 60 + 10)
        # The sweep idles Alice and waits on her room lookup; meanwhile Bob
        # says he is online and busy.
        rooms.held.clear()
        sweep = asyncio.create_task(presence.check_timeouts())
        await asyncio.sleep(0)
        assert presence.get_state(ALICE).state == "unavailable"
        await presence.set_presence(BOB, BOB, "online", "busy")
        rooms.held.set()
        await sweep
    bob = presence.get_state(BOB)
    assert (bob.state, bob.status_msg) == ("online", "busy")
    await clock.shutdown()
