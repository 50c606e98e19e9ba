"""State resolution v2 (and v12's changes) on small forked rooms built by hand."""

from __future__ import annotations

import dataclasses
from typing import Any

import pytest

from hamlet.core.auth_rules import auth_types_for_event
from hamlet.core.events import Event, build_event
from hamlet.core.power_levels import StateKey
from hamlet.core.room_versions import (
    ROOM_VERSION_10,
    ROOM_VERSION_11,
    ROOM_VERSION_12,
    RoomVersion,
)
from hamlet.core.state_res import _Resolver, is_power_event, resolve_state
from tests.core.helpers import KEY

ALICE, BOB, EVE = "@alice:test", "@bob:test", "@eve:test"
V12_RULES = dataclasses.replace(ROOM_VERSION_11, state_res="v2.1")
VERSIONS = [ROOM_VERSION_10, ROOM_VERSION_11, V12_RULES, ROOM_VERSION_12]


class Dag:
    """A room whose events name their auth events from the state they build on."""

    def __init__(self, version: RoomVersion) -> None:
        self.version = version
        self.events: dict[str, Event] = {}
        self.ts = 0
        # From v12 the room ID is the create event's hash (set once it exists).
        self.room_id = "!room:test"

    def add(
        self,
        state: dict[StateKey, str],
        type: str,
        sender: str,
        content: dict[str, Any],
        state_key: str | None = None,
        *,
        ts: int | None = None,
    ) -> tuple[Event, dict[StateKey, str]]:
        """Build an event on top of ``state``; return it and the state after it."""
        self.ts += 1
        wanted = auth_types_for_event(self.version, type, state_key, sender, content)
        auth = sorted(state[key] for key in wanted if key in state)
        event = build_event(
            self.version,
            room_id=self.room_id,
            sender=sender,
            type=type,
            content=content,
            state_key=state_key,
            prev_events=[],
            auth_events=auth,
            depth=self.ts,
            origin_server_ts=self.ts if ts is None else ts,
            server_name="test",
            signing_key=KEY,
        )
        self.events[event.event_id] = event
        if type == "m.room.create":
            self.room_id = event.room_id
        after = dict(state)
        if state_key is not None:
            after[(type, state_key)] = event.event_id
        return event, after

    def base(self, join_rule: str = "public") -> dict[StateKey, str]:
        """create, Alice joins, power levels (Alice 100, Bob 50), join rules, Bob joins."""
        content: dict[str, Any] = {"room_version": self.version.identifier}
        if not self.version.creator_from_sender:
            content["creator"] = ALICE
        _, s = self.add({}, "m.room.create", ALICE, content, "")
        _, s = self.add(s, "m.room.member", ALICE, {"membership": "join"}, ALICE)
        _, s = self.add(s, "m.room.power_levels", ALICE, self.levels(bob=50), "")
        _, s = self.add(s, "m.room.join_rules", ALICE, {"join_rule": join_rule}, "")
        _, s = self.add(s, "m.room.member", BOB, {"membership": "join"}, BOB)
        return s

    def levels(self, **users: int) -> dict[str, Any]:
        # A v12 creator outranks everyone and is never listed.
        creator = {} if self.version.room_id_from_create_event else {ALICE: 100}
        return {"users": {**creator, **{f"@{k}:test": v for k, v in users.items()}}}

    def resolve(self, *states: dict[StateKey, str], rejected: frozenset[str] = frozenset()):  # type: ignore[no-untyped-def]
        return resolve_state(self.version, list(states), self.events, rejected)


@pytest.mark.parametrize("version", VERSIONS, ids=lambda v: f"v{v.identifier}-{v.state_res}")
class TestScenarios:
    def test_demotion_undoes_concurrent_state_from_the_demoted(self, version: RoomVersion) -> None:
        dag = Dag(version)
        base = dag.base()
        demote, fork1 = dag.add(base, "m.room.power_levels", ALICE, dag.levels(bob=0), "")
        _, fork2 = dag.add(base, "m.room.topic", BOB, {"topic": "mine"}, "")

        resolved = dag.resolve(fork1, fork2)

        assert resolved[("m.room.power_levels", "")] == demote.event_id
        assert ("m.room.topic", "") not in resolved
        assert resolved == dag.resolve(fork2, fork1), "order of the state sets must not matter"

    def test_join_rule_change_beats_concurrent_join(self, version: RoomVersion) -> None:
        dag = Dag(version)
        base = dag.base()
        closing, fork1 = dag.add(base, "m.room.join_rules", ALICE, {"join_rule": "invite"}, "")
        _, fork2 = dag.add(base, "m.room.member", EVE, {"membership": "join"}, EVE)

        resolved = dag.resolve(fork1, fork2)

        assert resolved[("m.room.join_rules", "")] == closing.event_id
        assert ("m.room.member", EVE) not in resolved

    def test_later_topic_by_equal_power_wins(self, version: RoomVersion) -> None:
        dag = Dag(version)
        base = dag.base()
        _, fork1 = dag.add(base, "m.room.topic", ALICE, {"topic": "first"}, "", ts=100)
        later, fork2 = dag.add(base, "m.room.topic", ALICE, {"topic": "second"}, "", ts=200)

        assert dag.resolve(fork1, fork2)[("m.room.topic", "")] == later.event_id
        assert dag.resolve(fork2, fork1)[("m.room.topic", "")] == later.event_id

    def test_kick_by_higher_power_beats_counter_kick(self, version: RoomVersion) -> None:
        dag = Dag(version)
        base = dag.base()
        kick_bob, fork1 = dag.add(base, "m.room.member", ALICE, {"membership": "leave"}, BOB)
        # Bob (50) cannot kick Alice (100) anyway; his concurrent topic must fall with him.
        _, fork2 = dag.add(base, "m.room.topic", BOB, {"topic": "still here"}, "")

        resolved = dag.resolve(fork1, fork2)

        assert resolved[("m.room.member", BOB)] == kick_bob.event_id
        assert ("m.room.topic", "") not in resolved

    def test_unconflicted_state_is_kept(self, version: RoomVersion) -> None:
        dag = Dag(version)
        base = dag.base()
        name, base = dag.add(base, "m.room.name", ALICE, {"name": "kept"}, "")
        _, fork1 = dag.add(base, "m.room.topic", ALICE, {"topic": "a"}, "")
        _, fork2 = dag.add(base, "m.room.topic", BOB, {"topic": "b"}, "")

        resolved = dag.resolve(fork1, fork2)

        assert resolved[("m.room.name", "")] == name.event_id
        for key, event_id in base.items():
            if key != ("m.room.topic", ""):
                assert resolved[key] == event_id

    def test_three_way_fork_is_deterministic(self, version: RoomVersion) -> None:
        dag = Dag(version)
        base = dag.base()
        forks = [
            dag.add(base, "m.room.topic", sender, {"topic": sender}, "", ts=50)[1]
            for sender in (ALICE, BOB, ALICE)
        ]
        first = dag.resolve(*forks)
        assert dag.resolve(*reversed(forks)) == first
        assert dag.resolve(forks[1], forks[2], forks[0]) == first


def test_one_state_set_is_returned_as_is() -> None:
    dag = Dag(ROOM_VERSION_10)
    base = dag.base()
    assert resolve_state(ROOM_VERSION_10, [base], dag.events) == base
    assert resolve_state(ROOM_VERSION_10, [], dag.events) == {}


def test_unknown_events_are_left_out() -> None:
    dag = Dag(ROOM_VERSION_10)
    base = dag.base()
    fork = dict(base)
    fork[("m.room.topic", "")] = "$never-seen"
    resolved = dag.resolve(base, fork)
    assert ("m.room.topic", "") not in resolved


def test_rejected_auth_events_are_not_used() -> None:
    """Where the state lacks a key, the event's own auth event fills in, unless rejected."""
    dag = Dag(ROOM_VERSION_10)
    base = dag.base()
    topic, _ = dag.add(base, "m.room.topic", BOB, {"topic": "t"}, "")
    bob_join = base[("m.room.member", BOB)]

    trusting = _Resolver(ROOM_VERSION_10, dag.events, frozenset())
    assert trusting._iterative_auth_checks({}, [topic.event_id]) == {
        ("m.room.topic", ""): topic.event_id
    }
    wary = _Resolver(ROOM_VERSION_10, dag.events, frozenset({bob_join}))
    assert wary._iterative_auth_checks({}, [topic.event_id]) == {}


def test_power_events() -> None:
    dag = Dag(ROOM_VERSION_10)
    base = dag.base()
    kick, _ = dag.add(base, "m.room.member", ALICE, {"membership": "leave"}, BOB)
    leave, _ = dag.add(base, "m.room.member", BOB, {"membership": "leave"}, BOB)
    topic, _ = dag.add(base, "m.room.topic", ALICE, {"topic": "t"}, "")
    assert is_power_event(kick)
    assert not is_power_event(leave)
    assert not is_power_event(topic)
    assert is_power_event(dag.events[base[("m.room.power_levels", "")]])
    assert is_power_event(dag.events[base[("m.room.join_rules", "")]])


def test_long_auth_chains_do_not_recurse() -> None:
    dag = Dag(ROOM_VERSION_10)
    state = dag.base()
    for i in range(3000):
        _, state = dag.add(state, "m.room.power_levels", ALICE, dag.levels(bob=i % 60), "")
    resolver = _Resolver(ROOM_VERSION_10, dag.events, frozenset())
    chain = resolver.auth_chain(state[("m.room.power_levels", "")])
    assert len(chain) >= 3000


def test_conflicted_subgraph_takes_in_events_between_conflicted_ones() -> None:
    dag = Dag(V12_RULES)
    base = dag.base()
    pl1, s1 = dag.add(base, "m.room.power_levels", ALICE, dag.levels(bob=60), "")
    middle, s2 = dag.add(s1, "m.room.power_levels", ALICE, dag.levels(bob=70), "")
    pl3, _ = dag.add(s2, "m.room.power_levels", ALICE, dag.levels(bob=80), "")
    resolver = _Resolver(V12_RULES, dag.events, frozenset())
    subgraph = resolver._conflicted_subgraph({pl1.event_id, pl3.event_id})
    assert middle.event_id in subgraph
    assert base[("m.room.create", "")] not in subgraph


@pytest.mark.parametrize("version", VERSIONS, ids=lambda v: f"v{v.identifier}-{v.state_res}")
def test_a_given_auth_difference_needs_only_the_conflicted_auth_chains(
    version: RoomVersion,
) -> None:
    """What the persister does: the auth difference from stored chains, and
    only the states' events plus the conflicted and power levels events'
    auth chains handed over."""
    dag = Dag(version)
    base = dag.base()
    _, base = dag.add(base, "m.room.member", EVE, {"membership": "join"}, EVE)
    _, base = dag.add(base, "m.room.member", EVE, {"membership": "leave"}, EVE)
    _, fork1 = dag.add(base, "m.room.power_levels", ALICE, dag.levels(bob=0), "")
    _, fork1 = dag.add(fork1, "m.room.name", ALICE, {"name": "one"}, "")
    _, fork2 = dag.add(base, "m.room.topic", BOB, {"topic": "two"}, "")
    _, fork2 = dag.add(fork2, "m.room.name", BOB, {"name": "two"}, "")
    full = _Resolver(version, dag.events, frozenset())
    chains = [set().union(*(full.auth_chain(e) for e in s.values())) for s in (fork1, fork2)]
    difference = (chains[0] | chains[1]) - (chains[0] & chains[1])
    conflicted = {e for k, e in fork1.items() if fork2.get(k) != e}
    conflicted |= {e for k, e in fork2.items() if fork1.get(k) != e}
    levels = {fork1[("m.room.power_levels", "")], fork2[("m.room.power_levels", "")]}
    needed = {*fork1.values(), *fork2.values()}
    for event_id in conflicted | levels:
        needed |= full.auth_chain(event_id)
    assert needed < set(dag.events)  # eve's old join is left out

    some = {e: dag.events[e] for e in needed}
    expected = dag.resolve(fork1, fork2)
    assert resolve_state(version, [fork1, fork2], some, auth_difference=difference) == expected
