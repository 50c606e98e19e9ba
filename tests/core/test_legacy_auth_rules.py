"""Authorization differences of room versions 1-9."""

from __future__ import annotations

from typing import Any

import pytest

from hamlet.core.auth_rules import auth_check
from hamlet.core.errors import EventAuthError
from hamlet.core.events import Event
from hamlet.core.power_levels import (
    AuthState,
    get_power_levels_content,
    get_user_power_level,
    parse_legacy_level,
)
from hamlet.core.room_versions import SUPPORTED_ROOM_VERSIONS, RoomVersion

from .helpers import Room

V = SUPPORTED_ROOM_VERSIONS
ROOM = "!room:test"


def _opaque(
    rv: RoomVersion,
    event_id: str,
    type: str,
    sender: str,
    content: dict[str, Any],
    state_key: str | None = None,
    **extra: Any,
) -> Event:
    pdu: dict[str, Any] = {
        "event_id": event_id,
        "type": type,
        "room_id": ROOM,
        "sender": sender,
        "content": content,
        "depth": 1,
        "origin_server_ts": 1,
        "prev_events": [],
        "auth_events": [],
        "hashes": {"sha256": "aGFzaA"},
        "signatures": {},
        **extra,
    }
    if state_key is not None:
        pdu["state_key"] = state_key
    return Event(pdu, rv)


def _v1_state(rv: RoomVersion, **power: Any) -> AuthState:
    alice = "@alice:test"
    events = [
        _opaque(rv, "$c:test", "m.room.create", alice, {"creator": alice}, ""),
        _opaque(rv, "$m1:test", "m.room.member", alice, {"membership": "join"}, alice),
        _opaque(
            rv, "$m2:test", "m.room.member", "@bob:other", {"membership": "join"}, "@bob:other"
        ),
        _opaque(rv, "$pl:test", "m.room.power_levels", alice, {"users": {alice: 100}, **power}, ""),
    ]
    return {(e.type, e.state_key or ""): e for e in events}


@pytest.mark.parametrize("rv", [V["1"], V["2"]], ids=["v1", "v2"])
def test_v1_v2_redaction_by_event_id_domain(rv: RoomVersion) -> None:
    state = _v1_state(rv)
    own = _opaque(rv, "$r1:other", "m.room.redaction", "@bob:other", {}, redacts="$x:other")
    auth_check(rv, own, state)
    foreign = _opaque(rv, "$r2:other", "m.room.redaction", "@bob:other", {}, redacts="$x:test")
    with pytest.raises(EventAuthError):
        auth_check(rv, foreign, state)
    # The redact level is enough whatever the domains.
    moderator = _opaque(rv, "$r3:test", "m.room.redaction", "@alice:test", {}, redacts="$x:other")
    auth_check(rv, moderator, state)


def test_v3_plus_leave_redactions_to_handling_redactions() -> None:
    room = Room(V["3"])
    room.standard()
    room.set_member("@bob:other", "@bob:other", "join")
    redaction = room.make("m.room.redaction", "@bob:other", {}, redacts="$someone:test")
    auth_check(V["3"], redaction, room.state)


@pytest.mark.parametrize("version", ["3", "4", "5"])
def test_aliases_rule_before_v6(version: str) -> None:
    rv = V[version]
    room = Room(rv)
    room.standard()
    # Not even a member: the rule allows any server to publish its own aliases.
    own = room.make("m.room.aliases", "@eve:elsewhere", {"aliases": ["#a:elsewhere"]}, "elsewhere")
    auth_check(rv, own, room.state)
    other = room.make("m.room.aliases", "@eve:elsewhere", {"aliases": ["#a:test"]}, "test")
    with pytest.raises(EventAuthError):
        auth_check(rv, other, room.state)


def test_aliases_rule_v1_needs_state_key() -> None:
    rv = V["1"]
    event = _opaque(rv, "$al:test", "m.room.aliases", "@alice:test", {"aliases": []})
    with pytest.raises(EventAuthError):
        auth_check(rv, event, _v1_state(rv))


@pytest.mark.parametrize("version", ["6", "10"])
def test_aliases_are_ordinary_state_from_v6(version: str) -> None:
    rv = V[version]
    room = Room(rv)
    room.standard()
    event = room.make("m.room.aliases", "@eve:elsewhere", {"aliases": []}, "elsewhere")
    with pytest.raises(EventAuthError):
        auth_check(rv, event, room.state)


@pytest.mark.parametrize(
    ("value", "parsed"),
    [
        ("100", 100),
        ("000100", 100),
        ("+100", 100),
        ("-100", -100),
        (" 00100 ", 100),
        (" +100 ", 100),
        (50.57, 50),
        (5.114698e4, 51146),
        ("1.5", "1.5"),
        ("1e3", "1e3"),
        ("++1", "++1"),
        ("", ""),
        ("\u0661", "\u0661"),
        (float("inf"), float("inf")),
    ],
)
def test_parse_legacy_level(value: Any, parsed: Any) -> None:
    assert parse_legacy_level(value) == parsed


@pytest.mark.parametrize("version", ["3", "9"])
def test_stringy_power_levels_before_v10(version: str) -> None:
    rv = V[version]
    room = Room(rv)
    room.standard(ban=" 40 ", events={"m.room.name": "+60"}, users_default="0")
    pl = room.state[("m.room.power_levels", "")]
    room.send(
        "m.room.power_levels",
        room.creator,
        {**pl.content, "users": {room.creator: "100", "@bob:test": "60"}},
        "",
    )
    room.set_member("@bob:test", "@bob:test", "join")
    assert get_user_power_level("@bob:test", room.state) == 60
    content = get_power_levels_content(room.state)
    assert content is not None and content["ban"] == 40
    name = room.make("m.room.name", "@bob:test", {"name": "n"}, "")
    auth_check(rv, name, room.state)
    # Bob (60) may not raise anyone, stringly, above his own level.
    raise_ = room.make("m.room.power_levels", "@bob:test", {"users": {"@bob:test": "61"}}, "")
    with pytest.raises(EventAuthError):
        auth_check(rv, raise_, room.state)
    bad = room.make("m.room.power_levels", room.creator, {"users": {room.creator: "lots"}}, "")
    with pytest.raises(EventAuthError):
        auth_check(rv, bad, room.state)


def test_stringy_power_levels_refused_from_v10() -> None:
    rv = V["10"]
    room = Room(rv)
    room.standard()
    event = room.make("m.room.power_levels", room.creator, {"users": {room.creator: "100"}}, "")
    with pytest.raises(EventAuthError):
        auth_check(rv, event, room.state)
