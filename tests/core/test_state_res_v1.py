"""Room version 1's original state resolution, on hand-made forks."""

from __future__ import annotations

import hashlib
from typing import Any

from hamlet.core.events import Event
from hamlet.core.power_levels import StateKey
from hamlet.core.room_versions import SUPPORTED_ROOM_VERSIONS
from hamlet.core.state_res import resolve_state

V1 = SUPPORTED_ROOM_VERSIONS["1"]
ALICE, BOB, CAROL = "@alice:test", "@bob:test", "@carol:test"
PL: StateKey = ("m.room.power_levels", "")
TOPIC: StateKey = ("m.room.topic", "")


class Room:
    def __init__(self) -> None:
        self.events: dict[str, Event] = {}
        self.state: dict[StateKey, str] = {}
        self.n = 0
        self.add("m.room.create", ALICE, {"creator": ALICE}, "", depth=1)
        self.add("m.room.member", ALICE, {"membership": "join"}, ALICE, depth=2)
        self.add("m.room.power_levels", ALICE, levels(bob=50, carol=50), "", depth=3)
        self.add("m.room.join_rules", ALICE, {"join_rule": "public"}, "", depth=4)
        self.add("m.room.member", BOB, {"membership": "join"}, BOB, depth=5)
        self.add("m.room.member", CAROL, {"membership": "join"}, CAROL, depth=6)

    def add(
        self,
        type: str,
        sender: str,
        content: dict[str, Any],
        state_key: str,
        *,
        depth: int,
        on: dict[StateKey, str] | None = None,
        event_id: str | None = None,
    ) -> dict[StateKey, str]:
        """A state event at `depth` on state `on` (default: the room's); the state after it."""
        base = self.state if on is None else on
        self.n += 1
        pdu = {
            "event_id": event_id or f"${self.n}:test",
            "type": type,
            "room_id": "!r:test",
            "sender": sender,
            "content": content,
            "state_key": state_key,
            "depth": depth,
            "origin_server_ts": self.n,
            "prev_events": [],
            "auth_events": [[e, {"sha256": "aGFzaA"}] for e in base.values()],
            "hashes": {"sha256": "aGFzaA"},
            "signatures": {},
        }
        event = Event(pdu, V1)
        self.events[event.event_id] = event
        after = {**base, (type, state_key): event.event_id}
        if on is None:
            self.state = after
        return after

    def resolve(self, *states: dict[StateKey, str]) -> dict[StateKey, str]:
        return resolve_state(V1, states, self.events)


def levels(**users: int) -> dict[str, Any]:
    return {"users": {ALICE: 100, **{f"@{k}:test": v for k, v in users.items()}}}


def test_a_key_only_some_states_have_is_no_conflict() -> None:
    room = Room()
    with_topic = room.add("m.room.topic", BOB, {"topic": "t"}, "", depth=7, on=room.state)
    resolved = room.resolve(room.state, with_topic)
    assert resolved[TOPIC] == with_topic[TOPIC]
    assert resolved == with_topic


def test_other_conflicts_go_to_the_deepest_event_allowed() -> None:
    room = Room()
    base = dict(room.state)
    shallow = room.add("m.room.topic", ALICE, {"topic": "a"}, "", depth=7, on=base)
    deep = room.add("m.room.topic", BOB, {"topic": "b"}, "", depth=9, on=base)
    assert room.resolve(shallow, deep)[TOPIC] == deep[TOPIC]
    assert room.resolve(deep, shallow)[TOPIC] == deep[TOPIC]

    # The deepest one is not allowed in the resolved state: the next one is.
    outsider = room.add("m.room.topic", "@eve:test", {"topic": "e"}, "", depth=12, on=base)
    assert room.resolve(shallow, outsider)[TOPIC] == shallow[TOPIC]


def test_equal_depths_go_to_the_smallest_sha1_of_the_event_id() -> None:
    room = Room()
    base = dict(room.state)
    one = room.add("m.room.topic", ALICE, {"topic": "1"}, "", depth=7, on=base, event_id="$x:test")
    two = room.add("m.room.topic", BOB, {"topic": "2"}, "", depth=7, on=base, event_id="$y:test")
    digest = {e: hashlib.sha1(e.encode()).hexdigest() for e in ("$x:test", "$y:test")}
    expected = min(digest, key=lambda e: digest[e])
    assert room.resolve(one, two)[TOPIC] == expected


def test_power_levels_walk_from_the_shallowest_while_each_is_allowed() -> None:
    room = Room()
    base = dict(room.state)
    # Alice raises carol to 75 in one fork; in the other bob lowers her to 40.
    first = room.add("m.room.power_levels", ALICE, levels(bob=50, carol=75), "", depth=7, on=base)
    second = room.add("m.room.power_levels", BOB, levels(bob=50, carol=40), "", depth=8, on=base)
    # Bob may not lower carol from 75 (above his own 50) once the first applies.
    assert room.resolve(first, second)[PL] == first[PL]

    allowed = room.add("m.room.power_levels", ALICE, levels(bob=50, carol=10), "", depth=9, on=base)
    assert room.resolve(first, allowed)[PL] == allowed[PL]


def test_membership_conflicts_are_judged_after_power_levels() -> None:
    room = Room()
    base = dict(room.state)
    # Bob loses his power to kick in one fork; in the other he kicks carol.
    demoted = room.add("m.room.power_levels", ALICE, levels(bob=0, carol=50), "", depth=7, on=base)
    kick = room.add("m.room.member", BOB, {"membership": "leave"}, CAROL, depth=8, on=base)
    resolved = room.resolve(demoted, kick)
    assert resolved[PL] == demoted[PL]
    # Carol's membership conflicts only between her join and the kick:
    # walking from the shallower join, the kick is not allowed at bob's new level.
    assert resolved[("m.room.member", CAROL)] == base[("m.room.member", CAROL)]
