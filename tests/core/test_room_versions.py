"""Room versions 1-12: their switches, event IDs and PDU shapes."""

from __future__ import annotations

import base64
import hashlib
from typing import Any

import pytest

from hamlet.core.canonical_json import encode_canonical_json
from hamlet.core.errors import EventFormatError, UnsupportedRoomVersionError
from hamlet.core.events import Event, build_event, compute_event_id, validate_pdu
from hamlet.core.redaction import redact
from hamlet.core.room_versions import (
    DEFAULT_ROOM_VERSION,
    KNOWN_ROOM_VERSIONS,
    SUPPORTED_ROOM_VERSIONS,
    RoomVersion,
    get_room_version,
)
from hamlet.core.state_res import resolve_state

from .helpers import KEY

ALL = [SUPPORTED_ROOM_VERSIONS[str(n)] for n in range(1, 13)]


def test_supported_and_creatable_sets() -> None:
    assert list(SUPPORTED_ROOM_VERSIONS) == [str(n) for n in range(1, 13)]
    assert set(KNOWN_ROOM_VERSIONS) == {"10", "11", "12"}
    assert DEFAULT_ROOM_VERSION == "10"
    for identifier, rv in SUPPORTED_ROOM_VERSIONS.items():
        assert rv.identifier == identifier
        assert get_room_version(identifier) is rv
    with pytest.raises(UnsupportedRoomVersionError):
        get_room_version("13")


def _column(attr: str) -> list[Any]:
    return [getattr(rv, attr) for rv in ALL]


@pytest.mark.parametrize(
    ("attr", "expected"),
    [
        ("event_id_format", ["opaque"] * 2 + ["reference_hash"] + ["reference_hash_urlsafe"] * 9),
        (
            "redaction_rules",
            ["v1"] * 5 + ["v6", "v6", "v8", "v9", "v9", "v11", "v11"],
        ),
        ("strict_canonical_json", [False] * 5 + [True] * 7),
        ("limit_notifications_power_levels", [False] * 5 + [True] * 7),
        ("special_case_aliases_auth", [True] * 5 + [False] * 7),
        ("redaction_in_auth_rules", [True] * 2 + [False] * 10),
        ("enforce_key_validity", [False] * 4 + [True] * 8),
        ("knock_join_rule", [False] * 6 + [True] * 6),
        ("restricted_join_rule", [False] * 7 + [True] * 5),
        ("knock_restricted_join_rule", [False] * 9 + [True] * 3),
        ("integer_power_levels", [False] * 9 + [True] * 3),
        ("creator_from_sender", [False] * 10 + [True] * 2),
        ("redacts_in_content", [False] * 10 + [True] * 2),
        ("include_origin", [True] * 10 + [False] * 2),
        ("room_id_from_create_event", [False] * 11 + [True]),
        ("state_res", ["v1"] + ["v2"] * 10 + ["v2.1"]),
    ],
)
def test_version_switches(attr: str, expected: list[Any]) -> None:
    assert _column(attr) == expected


def _pdu(rv: RoomVersion, depth: int = 3) -> dict[str, Any]:
    refs: list[Any]
    if rv.event_id_format == "opaque":
        refs = [["$prev:example.org", {"sha256": "abc"}]]
    else:
        refs = ["$prev"]
    pdu: dict[str, Any] = {
        "type": "m.room.message",
        "room_id": "!r:example.org",
        "sender": "@u:example.org",
        "origin": "example.org",
        "content": {"body": "hi"},
        "depth": depth,
        "origin_server_ts": 1000,
        "prev_events": refs,
        "auth_events": refs,
        "hashes": {"sha256": "aGFzaA"},
        "signatures": {"example.org": {"ed25519:1": "c2ln"}},
        "unsigned": {"age": 4},
    }
    if rv.event_id_format == "opaque":
        pdu["event_id"] = "$abc123:example.org"
    return pdu


def _spec_reference_hash(pdu: dict[str, Any], rv: RoomVersion) -> bytes:
    # The spec's rules spelled out: redact, drop signatures and unsigned,
    # canonical JSON, SHA-256.
    redacted = redact(pdu, rv)
    redacted.pop("signatures", None)
    redacted.pop("unsigned", None)
    return hashlib.sha256(encode_canonical_json(redacted)).digest()


@pytest.mark.parametrize("rv", ALL[:2], ids=lambda rv: f"v{rv.identifier}")
def test_v1_v2_event_id_is_carried_in_the_pdu(rv: RoomVersion) -> None:
    pdu = _pdu(rv)
    validate_pdu(pdu, rv)
    event = Event.from_pdu(pdu, rv)
    assert event.event_id == "$abc123:example.org"
    assert compute_event_id(pdu, rv) == "$abc123:example.org"
    assert event.prev_events == ["$prev:example.org"]
    assert event.auth_events == ["$prev:example.org"]
    # The ID is part of the PDU sent on (and of its hashes), not stripped.
    assert event.get_pdu_json()["event_id"] == "$abc123:example.org"
    assert event.get_client_event()["event_id"] == "$abc123:example.org"


@pytest.mark.parametrize("rv", ALL[:2], ids=lambda rv: f"v{rv.identifier}")
@pytest.mark.parametrize(
    "change",
    [
        {"event_id": None},
        {"event_id": "$nodomain"},
        {"event_id": 5},
        {"prev_events": ["$prev:example.org"]},
        {"auth_events": [["$a:example.org"]]},
        {"auth_events": [["$a:example.org", "hash"]]},
        {"prev_events": [["nodollar:example.org", {}]]},
    ],
)
def test_v1_v2_pdu_shape_refused(rv: RoomVersion, change: dict[str, Any]) -> None:
    pdu = _pdu(rv)
    for key, value in change.items():
        if value is None:
            pdu.pop(key)
        else:
            pdu[key] = value
    with pytest.raises(EventFormatError):
        validate_pdu(pdu, rv)


@pytest.mark.parametrize("rv", ALL[2:], ids=lambda rv: f"v{rv.identifier}")
def test_v3_plus_refuses_v1_reference_pairs(rv: RoomVersion) -> None:
    pdu = _pdu(rv)
    pdu["prev_events"] = [["$prev:example.org", {"sha256": "abc"}]]
    with pytest.raises(EventFormatError):
        validate_pdu(pdu, rv)


def _pdu_whose_hash_needs_both_alphabets(rv: RoomVersion) -> tuple[dict[str, Any], bytes]:
    for depth in range(1, 500):
        pdu = _pdu(rv, depth)
        digest = _spec_reference_hash(pdu, rv)
        standard = base64.b64encode(digest).decode()
        if "+" in standard and "/" in standard:
            return pdu, digest
    raise AssertionError("no suitable depth found")


@pytest.mark.parametrize("rv", ALL[2:], ids=lambda rv: f"v{rv.identifier}")
def test_reference_hash_event_ids(rv: RoomVersion) -> None:
    pdu, digest = _pdu_whose_hash_needs_both_alphabets(rv)
    if rv.event_id_format == "reference_hash":
        expected = "$" + base64.b64encode(digest).decode().rstrip("=")
    else:
        expected = "$" + base64.urlsafe_b64encode(digest).decode().rstrip("=")
    event = Event.from_pdu(pdu, rv)
    assert event.event_id == expected == compute_event_id(pdu, rv)
    assert "event_id" not in event.get_pdu_json()
    # Unsigned data, signatures and non-essential content do not change the ID.
    pdu["unsigned"] = {"age": 99}
    pdu["signatures"] = {"other.org": {"ed25519:2": "eHl6"}}
    pdu["content"] = {"body": "changed"}
    assert compute_event_id(pdu, rv) == expected


def test_v3_and_v4_ids_differ_only_in_alphabet() -> None:
    v3, v4 = ALL[2], ALL[3]
    pdu, _ = _pdu_whose_hash_needs_both_alphabets(v3)
    v3_id = compute_event_id(pdu, v3)
    v4_id = compute_event_id(pdu, v4)
    assert v3_id != v4_id
    assert v3_id.replace("+", "-").replace("/", "_") == v4_id


@pytest.mark.parametrize("rv", ALL, ids=lambda rv: f"v{rv.identifier}")
def test_floats_allowed_only_before_v6(rv: RoomVersion) -> None:
    pdu = _pdu(rv)
    pdu["content"] = {"body": "hi", "n": 1.0}
    if rv.strict_canonical_json:
        with pytest.raises(EventFormatError):
            validate_pdu(pdu, rv)
    else:
        validate_pdu(pdu, rv)
    # A non-integral float cannot be hashed in any version.
    pdu["content"] = {"body": "hi", "n": 1.5}
    with pytest.raises(EventFormatError):
        validate_pdu(pdu, rv)


def test_v1_v2_events_are_not_built_locally() -> None:
    with pytest.raises(UnsupportedRoomVersionError):
        build_event(
            ALL[0],
            room_id="!r:example.org",
            sender="@u:example.org",
            type="m.room.message",
            content={},
            prev_events=[],
            auth_events=[],
            depth=1,
            origin_server_ts=1,
            server_name="example.org",
            signing_key=KEY,
        )


def test_state_res_v1_leaves_out_conflicts_between_unknown_events() -> None:
    sets = [{("m.room.name", ""): "$a"}, {("m.room.name", ""): "$b"}]
    assert resolve_state(ALL[0], sets, {}) == {}
    # A single state set needs no algorithm.
    assert resolve_state(ALL[0], sets[:1], {}) == sets[0]
