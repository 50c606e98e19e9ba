"""Building, serialising and validating events."""

from __future__ import annotations

import hashlib
from typing import Any

import pytest

from hamlet.core.canonical_json import encode_canonical_json
from hamlet.core.crypto import check_content_hash
from hamlet.core.errors import EventFormatError, EventTooLargeError, UnsupportedRoomVersionError
from hamlet.core.events import (
    MAX_PDU_SIZE,
    Event,
    build_event,
    compute_event_id,
    validate_pdu,
    verify_event_signature,
)
from hamlet.core.redaction import redact
from hamlet.core.room_versions import (
    DEFAULT_ROOM_VERSION,
    KNOWN_ROOM_VERSIONS,
    RoomVersion,
    get_room_version,
)
from hamlet.core.unpadded_base64 import encode_base64_urlsafe

from .helpers import KEY

V10 = KNOWN_ROOM_VERSIONS["10"]
V11 = KNOWN_ROOM_VERSIONS["11"]
BOTH = pytest.mark.parametrize("rv", [V10, V11], ids=["v10", "v11"])


def _build(rv: RoomVersion, **overrides: Any) -> Event:
    args: dict[str, Any] = {
        "room_id": "!r:example.org",
        "sender": "@u:example.org",
        "type": "m.room.message",
        "content": {"body": "hi", "msgtype": "m.text"},
        "prev_events": ["$prev"],
        "auth_events": ["$a1", "$a2"],
        "depth": 5,
        "origin_server_ts": 1234,
        "server_name": "example.org",
        "signing_key": KEY,
    }
    args.update(overrides)
    return build_event(rv, **args)


def test_room_versions() -> None:
    assert DEFAULT_ROOM_VERSION == "10"
    assert set(KNOWN_ROOM_VERSIONS) == {"10", "11", "12"}
    assert get_room_version("11") is V11
    assert V11.creator_from_sender and not V10.creator_from_sender
    with pytest.raises(UnsupportedRoomVersionError):
        get_room_version("13")


@BOTH
def test_built_event_id_hash_and_signature(rv: RoomVersion) -> None:
    event = _build(rv)
    pdu = event.get_pdu_json()
    assert "event_id" not in pdu
    assert check_content_hash(pdu)
    verify_event_signature(pdu, rv, "example.org", {KEY.key_id: KEY.verify_key})
    # event ID is the URL-safe reference hash of the redacted, signature-less PDU
    redacted = redact(pdu, rv)
    del redacted["signatures"]
    expected = "$" + encode_base64_urlsafe(hashlib.sha256(encode_canonical_json(redacted)).digest())
    assert event.event_id == expected == compute_event_id(pdu, rv)
    assert "+" not in event.event_id and "/" not in event.event_id and "=" not in event.event_id
    # round trip through the untrusted constructor
    again = Event.from_pdu(pdu, rv)
    assert again.event_id == event.event_id and again == event


@BOTH
def test_accessors(rv: RoomVersion) -> None:
    event = _build(rv)
    assert event.room_id == "!r:example.org"
    assert event.type == "m.room.message"
    assert event.sender == "@u:example.org"
    assert event.state_key is None and not event.is_state()
    assert event.content == {"body": "hi", "msgtype": "m.text"}
    assert event.origin_server_ts == 1234
    assert event.prev_events == ["$prev"]
    assert event.auth_events == ["$a1", "$a2"]
    assert event.depth == 5
    assert event.redacts is None
    assert event.unsigned == {}
    state = _build(rv, type="m.room.topic", content={"topic": "t"}, state_key="")
    assert state.is_state() and state.state_key == ""


def test_origin_only_in_v10() -> None:
    assert _build(V10).get_pdu_json()["origin"] == "example.org"
    assert "origin" not in _build(V11).get_pdu_json()


def test_redacts_location_per_version() -> None:
    v10 = _build(V10, type="m.room.redaction", content={}, redacts="$target")
    assert v10.get_pdu_json()["redacts"] == "$target"
    assert "redacts" not in v10.content
    assert v10.redacts == "$target"
    v11 = _build(V11, type="m.room.redaction", content={}, redacts="$target")
    assert "redacts" not in v11.get_pdu_json()
    assert v11.content["redacts"] == "$target"
    assert v11.redacts == "$target"
    # Client format carries redacts in both places for compatibility.
    for event in (v10, v11):
        client = event.get_client_event()
        assert client["redacts"] == "$target"
        assert client["content"]["redacts"] == "$target"


def test_client_event_shape() -> None:
    event = _build(V10, type="m.room.name", content={"name": "n"}, state_key="")
    event = event.with_unsigned({"age_ts": 1000, "transaction_id": "t1"})
    client = event.get_client_event(now_ms=1500)
    assert client == {
        "content": {"name": "n"},
        "event_id": event.event_id,
        "origin_server_ts": 1234,
        "room_id": "!r:example.org",
        "sender": "@u:example.org",
        "state_key": "",
        "type": "m.room.name",
        "unsigned": {"age": 500, "transaction_id": "t1"},
    }
    assert "room_id" not in event.get_client_event(include_room_id=False)
    fed = event.get_client_event("federation")
    assert fed["event_id"] == event.event_id
    assert fed["hashes"] == event.hashes and "signatures" in fed
    # unsigned does not change the event ID
    assert (
        event.event_id
        == _build(V10, type="m.room.name", content={"name": "n"}, state_key="").event_id
    )


def test_event_is_immutable_from_outside() -> None:
    content = {"body": "hi"}
    event = _build(V10, content=content)
    content["body"] = "changed"
    assert event.content["body"] == "hi"
    pdu = event.get_pdu_json()
    pdu["content"]["body"] = "changed"
    assert event.content["body"] == "hi"


def test_event_too_large() -> None:
    with pytest.raises(EventTooLargeError):
        _build(V10, content={"body": "x" * MAX_PDU_SIZE})
    # just under the limit is fine
    base = len(encode_canonical_json(_build(V10, content={"body": ""}).get_pdu_json()))
    _build(V10, content={"body": "x" * (MAX_PDU_SIZE - base)})
    with pytest.raises(EventTooLargeError):
        _build(V10, content={"body": "x" * (MAX_PDU_SIZE - base + 1)})


@pytest.mark.parametrize(
    "overrides",
    [
        {"type": "t" * 256},
        {"type": "m.room.topic", "content": {}, "state_key": "s" * 256},
        {"sender": "@" + "u" * 250 + ":example.org"},
        {"room_id": "!" + "r" * 250 + ":example.org"},
    ],
)
def test_field_size_limits(overrides: dict[str, Any]) -> None:
    with pytest.raises(EventTooLargeError):
        _build(V10, **overrides)


@pytest.mark.parametrize(
    "overrides",
    [
        {"content": {"value": 1.5}},
        {"content": {"value": 2**53}},
        {"sender": "not-a-user"},
        {"room_id": "no-sigil"},
        {"type": "m.room.redaction", "content": {}},
        {"type": "m.room.member", "content": {"membership": "join"}},
        {"type": "m.room.member", "content": {}, "state_key": "@u:example.org"},
    ],
)
def test_bad_events_rejected(overrides: dict[str, Any]) -> None:
    with pytest.raises(EventFormatError):
        _build(V10, **overrides)


@pytest.mark.parametrize(
    ("key", "value"),
    [
        ("type", 5),
        ("content", []),
        ("depth", -1),
        ("depth", True),
        ("prev_events", "x"),
        ("auth_events", [1]),
        ("hashes", {}),
        ("origin_server_ts", "now"),
        ("state_key", 3),
    ],
)
def test_validate_pdu_field_types(key: str, value: Any) -> None:
    pdu = _build(V10).get_pdu_json()
    pdu[key] = value
    with pytest.raises(EventFormatError):
        validate_pdu(pdu, V10)


def test_missing_field_rejected() -> None:
    pdu = _build(V11).get_pdu_json()
    del pdu["sender"]
    with pytest.raises(EventFormatError):
        Event.from_pdu(pdu, V11)
