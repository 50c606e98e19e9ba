"""Outliers stored together (a join's state and auth chain): each checked
against its auth events as when stored one by one, in one write."""

from __future__ import annotations

import pytest

from hamlet.core.events import Event
from hamlet.handlers.rooms.federated_events import MissingEventsError
from tests.rooms.helpers import create_room
from tests.rooms.remote_support import RemoteServer
from tests.support.harness import Harness
from tests.support.users import make_user

MESSAGE = {"msgtype": "m.text", "body": "hi"}


async def _room_with_bob(harness: Harness) -> tuple[str, RemoteServer]:
    alice = await make_user(harness, "alice")
    room_id = await create_room(harness, alice, preset="public_chat")
    remote = RemoteServer()
    await remote.join(harness.hs, room_id, "bob")
    return room_id, remote


async def _rejected_name_and_its_dependant(
    harness: Harness, room_id: str, remote: RemoteServer
) -> tuple[Event, Event]:
    """A name change bob may not make, and a message naming it as an auth event."""
    hs, bob = harness.hs, remote.user("bob")
    name = await remote.make(hs, room_id, bob, "m.room.name", {"name": "x"}, state_key="")
    dependant = await remote.make(
        hs, room_id, bob, "m.room.message", MESSAGE, extra_auth=[name.event_id]
    )
    return name, dependant


async def test_each_is_checked_against_its_auth_events_the_batch_included(
    harness: Harness,
) -> None:
    room_id, remote = await _room_with_bob(harness)
    hs = harness.hs
    extremities = await hs.events_store.get_forward_extremities(room_id)
    fine = await remote.make(hs, room_id, remote.user("bob"), "m.room.message", MESSAGE)
    already = await remote.make(
        hs, room_id, remote.user("bob"), "m.room.message", {**MESSAGE, "body": "kept"}
    )
    first = await remote.send(hs, already, outlier=True)
    name, dependant = await _rejected_name_and_its_dependant(harness, room_id, remote)

    stored = await hs.federated_events.persist_outliers([name, dependant, fine, already])

    assert [s.event.event_id for s in stored] == [
        e.event_id for e in (name, dependant, fine, already)
    ]
    assert stored[0].rejected_reason is not None
    assert stored[1].rejected_reason == f"auth event {name.event_id} was rejected"
    assert stored[2].rejected_reason is None and stored[2].outlier
    assert stored[3] == first
    for event, expected in zip((name, dependant, fine), stored[:3], strict=True):
        kept = await hs.events_store.get_events([event.event_id], include_rejected=True)
        assert kept[event.event_id].outlier
        assert kept[event.event_id].rejected_reason == expected.rejected_reason
    # Outliers move neither the timeline nor the state.
    assert await hs.events_store.get_forward_extremities(room_id) == extremities


async def test_an_auth_event_after_its_dependant_stores_nothing(harness: Harness) -> None:
    room_id, remote = await _room_with_bob(harness)
    hs = harness.hs
    name, dependant = await _rejected_name_and_its_dependant(harness, room_id, remote)

    with pytest.raises(MissingEventsError) as caught:
        await hs.federated_events.persist_outliers([dependant, name])

    assert caught.value.missing == [name.event_id]
    ids = [name.event_id, dependant.event_id]
    assert await hs.events_store.get_events(ids, include_rejected=True) == {}
