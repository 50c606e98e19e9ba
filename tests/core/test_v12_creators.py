"""Room version 12: room IDs from the create event, creators' infinite power."""

from __future__ import annotations

from typing import Any

import pytest

from hamlet.core.auth_rules import auth_check, auth_types_for_event, check_auth_events
from hamlet.core.errors import EventAuthError, EventFormatError
from hamlet.core.events import Event, add_hashes_and_signatures, validate_pdu
from hamlet.core.power_levels import CREATE_KEY, CREATOR_POWER_LEVEL, get_user_power_level
from hamlet.core.room_versions import SUPPORTED_ROOM_VERSIONS

from .helpers import KEY, Room

V12 = SUPPORTED_ROOM_VERSIONS["12"]
ALICE, BOB, CAROL = "@alice:test", "@bob:test", "@carol:test"


def _create_pdu(**content: Any) -> dict[str, Any]:
    pdu: dict[str, Any] = {
        "type": "m.room.create",
        "state_key": "",
        "sender": ALICE,
        "content": {"room_version": "12", **content},
        "depth": 1,
        "origin_server_ts": 1000,
        "prev_events": [],
        "auth_events": [],
    }
    return add_hashes_and_signatures(pdu, V12, "test", KEY)


def _room(**create_content: Any) -> Room:
    create = Event.from_pdu(_create_pdu(**create_content), V12)
    room = Room(V12, ALICE)
    room.room_id = create.room_id
    room.apply(create)
    room.set_member(ALICE, ALICE, "join")
    room.send("m.room.power_levels", ALICE, {"users": {BOB: 50}}, "")
    room.send("m.room.join_rules", ALICE, {"join_rule": "public"}, "")
    return room


def test_room_id_is_the_create_event_reference_hash() -> None:
    pdu = _create_pdu()
    validate_pdu(pdu, V12)
    create = Event.from_pdu(pdu, V12)
    assert create.room_id == "!" + create.event_id[1:]
    assert ":" not in create.room_id
    auth_check(V12, create, {})
    with_room_id = add_hashes_and_signatures({**pdu, "room_id": "!r:test"}, V12, "test", KEY)
    with pytest.raises(EventFormatError):
        validate_pdu(with_room_id, V12)
    with pytest.raises(EventAuthError):
        auth_check(V12, Event(with_room_id, V12), {})


@pytest.mark.parametrize("extra", ["@bob:test", [5], ["not a user"]])
def test_additional_creators_must_be_user_ids(extra: Any) -> None:
    create = Event(_create_pdu(additional_creators=extra), V12)
    with pytest.raises(EventAuthError):
        auth_check(V12, create, {})


def test_create_event_is_not_an_auth_event() -> None:
    room = _room()
    assert CREATE_KEY not in auth_types_for_event(V12, "m.room.message", None, ALICE, {})
    event = room.make("m.room.message", ALICE, {"body": "hi"})
    check_auth_events(V12, event, [room.state[("m.room.member", ALICE)]])
    with pytest.raises(EventAuthError):
        check_auth_events(V12, event, [room.state[CREATE_KEY]])


def test_event_in_another_room_refused() -> None:
    room = _room()
    stray = room.make("m.room.message", ALICE, {"body": "hi"}, room_id="!elsewhere")
    with pytest.raises(EventAuthError):
        auth_check(V12, stray, room.state)


def test_creators_have_infinite_power() -> None:
    room = _room(additional_creators=[CAROL])
    assert get_user_power_level(ALICE, room.state) == CREATOR_POWER_LEVEL
    assert get_user_power_level(CAROL, room.state) == CREATOR_POWER_LEVEL
    assert get_user_power_level(BOB, room.state) == 50
    room.set_member(BOB, BOB, "join")
    # Bob (50) cannot kick a creator who is not even listed in the power levels.
    room.set_member(CAROL, CAROL, "join")
    with pytest.raises(EventAuthError):
        auth_check(V12, room.member(BOB, CAROL, "leave"), room.state)
    auth_check(V12, room.member(CAROL, BOB, "ban"), room.state)


@pytest.mark.parametrize("creator", [ALICE, CAROL])
def test_creators_cannot_be_listed_in_power_levels(creator: str) -> None:
    room = _room(additional_creators=[CAROL])
    event = room.make("m.room.power_levels", ALICE, {"users": {creator: 100}}, "")
    with pytest.raises(EventAuthError):
        auth_check(V12, event, room.state)
    auth_check(V12, room.make("m.room.power_levels", ALICE, {"users": {BOB: 100}}, ""), room.state)
