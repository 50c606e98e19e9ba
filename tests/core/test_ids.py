"""Identifier parsing."""

from __future__ import annotations

import pytest

from hamlet.core.errors import InvalidIdError
from hamlet.core.ids import (
    RoomAlias,
    RoomID,
    UserID,
    generate_room_id,
    get_domain_from_id,
    is_valid_event_id,
    is_valid_localpart,
    is_valid_server_name,
    is_valid_user_id,
    parse_server_name,
)


@pytest.mark.parametrize(
    "name",
    [
        "matrix.org",
        "matrix.org:8888",
        "1.2.3.4",
        "1.2.3.4:1234",
        "[1234:5678::abcd]",
        "[1234:5678::abcd]:5678",
        "localhost",
    ],
)
def test_valid_server_names(name: str) -> None:
    assert is_valid_server_name(name)


@pytest.mark.parametrize(
    "name",
    [
        "",
        "matrix.org:",
        "matrix.org:abc",
        "matrix.org:123456",
        "[1234",
        "a_b.org",
        "ex ample",
        "[::1]x",
    ],
)
def test_invalid_server_names(name: str) -> None:
    assert not is_valid_server_name(name)


def test_parse_server_name() -> None:
    assert parse_server_name("example.org:8448") == ("example.org", 8448)
    assert parse_server_name("[::1]") == ("[::1]", None)


def test_user_id() -> None:
    user = UserID.from_string("@alice:example.org")
    assert (user.localpart, user.domain) == ("alice", "example.org")
    assert user.to_string() == str(user) == "@alice:example.org"
    assert user.is_strictly_valid()
    historical = UserID.from_string("@Alice!:example.org")
    assert not historical.is_strictly_valid()
    assert is_valid_user_id("@Alice!:example.org")
    assert not is_valid_user_id("@Alice!:example.org", strict=True)


@pytest.mark.parametrize(
    "bad",
    [
        "alice:example.org",
        "@alice",
        "@alice:",
        "@al\x00ice:x.org",
        "@a:bad_domain",
        "@" + "a" * 250 + ":x.org",
    ],
)
def test_bad_user_ids(bad: str) -> None:
    with pytest.raises(InvalidIdError):
        UserID.from_string(bad)


def test_localpart_grammar() -> None:
    assert is_valid_localpart("a-z0.9_=/+")
    for bad in ["", "Alice", "a b", "a:b", "é", "a*"]:
        assert not is_valid_localpart(bad)


def test_room_ids_and_aliases() -> None:
    assert RoomID.from_string("!abc:example.org").domain == "example.org"
    assert RoomAlias.from_string("#room:example.org").localpart == "room"
    with pytest.raises(InvalidIdError):
        RoomID.from_string("#abc:example.org")
    with pytest.raises(InvalidIdError):
        RoomAlias.from_string("#room")
    assert RoomID.is_valid("!a:b.c") and not RoomID.is_valid("!nodomain")


def test_event_ids_and_domain() -> None:
    assert is_valid_event_id("$abc")
    assert not is_valid_event_id("abc") and not is_valid_event_id("$")
    assert not is_valid_event_id("$" + "a" * 255)
    assert get_domain_from_id("@a:b.c:8448") == "b.c:8448"
    with pytest.raises(InvalidIdError):
        get_domain_from_id("@nodomain")


def test_generate_room_id() -> None:
    room_id = generate_room_id("example.org")
    parsed = RoomID.from_string(room_id)
    assert parsed.domain == "example.org"
    assert len(parsed.localpart) == 18 and parsed.localpart.isalpha()
    assert generate_room_id("example.org") != room_id
