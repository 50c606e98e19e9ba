"""Filter parsing and matching."""

from __future__ import annotations

from typing import Any

import pytest

from hamlet.core.errors import FilterError
from hamlet.core.filters import (
    DEFAULT_FILTER,
    DEFAULT_TIMELINE_LIMIT,
    apply_event_fields,
    parse_filter,
    type_matches,
)

MSG = {"type": "m.room.message", "sender": "@a:x", "room_id": "!r:x", "content": {"body": "b"}}
IMG = {"type": "m.room.message", "sender": "@b:x", "room_id": "!s:x", "content": {"url": "mxc://x"}}
NAME = {"type": "m.room.name", "sender": "@a:x", "room_id": "!r:x", "content": {"name": "n"}}


def test_full_filter_parses() -> None:
    f = parse_filter(
        {
            "event_fields": ["type", "content.body"],
            "event_format": "federation",
            "presence": {"not_types": ["*"]},
            "account_data": {"types": ["m.push_rules"], "limit": 3},
            "room": {
                "rooms": ["!r:x"],
                "not_rooms": ["!s:x"],
                "include_leave": True,
                "timeline": {
                    "limit": 20,
                    "types": ["m.room.*"],
                    "not_senders": ["@b:x"],
                    "lazy_load_members": True,
                    "include_redundant_members": True,
                    "unread_thread_notifications": True,
                },
                "state": {"lazy_load_members": True, "contains_url": False},
                "ephemeral": {"types": ["m.receipt"]},
                "account_data": {"not_types": ["m.tag"]},
            },
        }
    )
    assert f.event_fields == ("type", "content.body")
    assert f.event_format == "federation"
    assert f.room.include_leave and f.room.timeline_limit == 20
    assert f.room.timeline.lazy_load_members and f.room.timeline.include_redundant_members
    assert f.room.timeline.unread_thread_notifications
    assert f.room.state.contains_url is False
    assert f.account_data.limit == 3
    assert not f.presence.matches({"type": "m.presence", "sender": "@a:x"})
    assert f.room.matches_room("!r:x") and not f.room.matches_room("!s:x")
    assert not f.room.matches_room("!t:x")
    assert f.room.timeline.matches(MSG) and not f.room.timeline.matches(IMG)


def test_defaults() -> None:
    f = parse_filter({})
    assert f == DEFAULT_FILTER
    assert f.room.timeline_limit == DEFAULT_TIMELINE_LIMIT == 10
    assert f.event_format == "client" and f.event_fields is None
    assert f.room.timeline.matches(MSG) and f.room.matches_room("!any:x")
    assert not f.room.include_leave


def test_type_wildcards() -> None:
    assert type_matches("m.room.message", ["m.*"])
    assert type_matches("m.room.message", ["*.message"])
    assert type_matches("m.room.message", ["m.room.message"])
    assert not type_matches("m.room.message", ["m.room"])
    assert not type_matches("m.room.message", ["m.call.*"])
    assert type_matches("m.room.message", ["m*e"])
    assert not type_matches("m.room.message", ["m?room.message"])
    assert not type_matches("mXroom", ["m.room"])


def test_not_types_wins_over_types() -> None:
    f = parse_filter({"room": {"timeline": {"types": ["m.*"], "not_types": ["m.room.name"]}}})
    assert f.room.timeline.matches(MSG)
    assert not f.room.timeline.matches(NAME)


def test_senders_and_rooms() -> None:
    f = parse_filter(
        {
            "room": {
                "timeline": {
                    "senders": ["@a:x", "@b:x"],
                    "not_senders": ["@b:x"],
                    "rooms": ["!r:x", "!s:x"],
                    "not_rooms": ["!r:x"],
                }
            }
        }
    )
    assert not f.room.timeline.matches(MSG)  # room excluded
    assert not f.room.timeline.matches(IMG)  # sender excluded
    other = dict(MSG, room_id="!s:x")
    assert f.room.timeline.matches(other)
    assert not f.room.timeline.matches(dict(other, sender="@c:x"))


def test_contains_url() -> None:
    with_url = parse_filter({"room": {"timeline": {"contains_url": True}}}).room.timeline
    without = parse_filter({"room": {"timeline": {"contains_url": False}}}).room.timeline
    assert with_url.matches(IMG) and not with_url.matches(MSG)
    assert without.matches(MSG) and not without.matches(IMG)
    assert with_url.filter([MSG, IMG, NAME]) == [IMG]


def test_matches_objects_with_attributes() -> None:
    class E:
        type = "m.room.message"
        sender = "@a:x"
        room_id = "!r:x"
        content: dict[str, Any] = {}

    f = parse_filter({"room": {"timeline": {"types": ["m.room.message"]}}})
    assert f.room.timeline.matches(E())


@pytest.mark.parametrize(
    "body",
    [
        [],
        {"event_format": "xml"},
        {"event_fields": "type"},
        {"event_fields": [1]},
        {"room": []},
        {"room": {"timeline": {"limit": 0}}},
        {"room": {"timeline": {"limit": "5"}}},
        {"room": {"timeline": {"limit": True}}},
        {"room": {"timeline": {"types": "m.room.message"}}},
        {"room": {"timeline": {"senders": ["a:x"]}}},
        {"room": {"rooms": ["r:x"]}},
        {"room": {"include_leave": "yes"}},
        {"room": {"state": {"lazy_load_members": 1}}},
        {"presence": {"not_senders": [5]}},
    ],
)
def test_bad_filters(body: Any) -> None:
    with pytest.raises(FilterError):
        parse_filter(body)


def test_bad_filter_message_names_the_field() -> None:
    with pytest.raises(FilterError, match=r"room\.timeline\.limit"):
        parse_filter({"room": {"timeline": {"limit": -1}}})


def test_apply_event_fields() -> None:
    event = {"type": "t", "content": {"body": "b", "other": 1, "a.b": 2}, "sender": "@a:x"}
    assert apply_event_fields(event, ["type", "content.body", "content.a\\.b", "missing.x"]) == {
        "type": "t",
        "content": {"body": "b", "a.b": 2},
    }
