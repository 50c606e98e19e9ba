"""The redaction algorithms of room versions 1-12."""

from __future__ import annotations

from typing import Any

import pytest

from hamlet.core.redaction import redact
from hamlet.core.room_versions import KNOWN_ROOM_VERSIONS, get_room_version

V10 = KNOWN_ROOM_VERSIONS["10"]
V11 = KNOWN_ROOM_VERSIONS["11"]

ESSENTIAL = {
    "event_id": "$e",
    "room_id": "!r:x",
    "sender": "@s:x",
    "hashes": {"sha256": "h"},
    "signatures": {"x": {"ed25519:1": "s"}},
    "depth": 4,
    "prev_events": ["$p"],
    "auth_events": ["$a"],
    "origin_server_ts": 10,
}
V10_ONLY_TOP = {"origin": "x", "membership": "join", "prev_state": []}


def _event(type: str, content: dict[str, Any], **extra: Any) -> dict[str, Any]:
    return {
        **ESSENTIAL,
        **V10_ONLY_TOP,
        "type": type,
        "state_key": "",
        "content": content,
        "unsigned": {"age": 5},
        "redacts": "$r",
        "custom": 1,
        **extra,
    }


def test_top_level_keys_v10() -> None:
    out = redact(_event("m.room.message", {"body": "x"}), V10)
    assert out == {
        **ESSENTIAL,
        **V10_ONLY_TOP,
        "type": "m.room.message",
        "state_key": "",
        "content": {},
    }


def test_top_level_keys_v11() -> None:
    out = redact(_event("m.room.message", {"body": "x"}), V11)
    assert out == {**ESSENTIAL, "type": "m.room.message", "state_key": "", "content": {}}


MEMBER_CONTENT = {
    "membership": "join",
    "displayname": "D",
    "avatar_url": "mxc://x/y",
    "join_authorised_via_users_server": "@a:x",
    "third_party_invite": {"display_name": "e", "signed": {"mxid": "@s:x", "token": "t"}},
}
PL_CONTENT = {
    "ban": 50,
    "events": {"m.room.name": 50},
    "events_default": 0,
    "invite": 0,
    "kick": 50,
    "redact": 50,
    "state_default": 50,
    "users": {"@s:x": 100},
    "users_default": 0,
    "notifications": {"room": 50},
    "historical": 100,
}

CASES = [
    # (type, content, v10 kept content, v11 kept content)
    (
        "m.room.member",
        MEMBER_CONTENT,
        {"membership": "join", "join_authorised_via_users_server": "@a:x"},
        {
            "membership": "join",
            "join_authorised_via_users_server": "@a:x",
            "third_party_invite": {"signed": {"mxid": "@s:x", "token": "t"}},
        },
    ),
    (
        "m.room.create",
        {"creator": "@s:x", "room_version": "10", "m.federate": False, "type": "m.space"},
        {"creator": "@s:x"},
        {"creator": "@s:x", "room_version": "10", "m.federate": False, "type": "m.space"},
    ),
    (
        "m.room.join_rules",
        {"join_rule": "restricted", "allow": [{"type": "m.room_membership"}], "x": 1},
        {"join_rule": "restricted", "allow": [{"type": "m.room_membership"}]},
        {"join_rule": "restricted", "allow": [{"type": "m.room_membership"}]},
    ),
    (
        "m.room.power_levels",
        PL_CONTENT,
        {k: v for k, v in PL_CONTENT.items() if k not in ("invite", "notifications", "historical")},
        {k: v for k, v in PL_CONTENT.items() if k not in ("notifications", "historical")},
    ),
    (
        "m.room.history_visibility",
        {"history_visibility": "shared", "x": 1},
        {"history_visibility": "shared"},
        {"history_visibility": "shared"},
    ),
    ("m.room.redaction", {"redacts": "$t", "reason": "spam"}, {}, {"redacts": "$t"}),
    ("m.room.name", {"name": "secret"}, {}, {}),
    ("m.room.aliases", {"aliases": ["#a:x"]}, {}, {}),
]


@pytest.mark.parametrize(("type", "content", "v10", "v11"), CASES, ids=[c[0] for c in CASES])
def test_content_rules(
    type: str, content: dict[str, Any], v10: dict[str, Any], v11: dict[str, Any]
) -> None:
    assert redact(_event(type, content), V10)["content"] == v10
    assert redact(_event(type, content), V11)["content"] == v11


def test_member_third_party_invite_without_signed_dropped_in_v11() -> None:
    content = {"membership": "invite", "third_party_invite": {"display_name": "e"}}
    assert redact(_event("m.room.member", content), V11)["content"] == {"membership": "invite"}


def test_redact_does_not_mutate_input() -> None:
    event = _event("m.room.create", {"creator": "@s:x", "extra": {"deep": 1}})
    out = redact(event, V11)
    out["content"]["extra"]["deep"] = 2
    assert event["content"]["extra"]["deep"] == 1
    assert "unsigned" in event


_PL_V1_KEPT = {
    k: v for k, v in PL_CONTENT.items() if k not in ("invite", "notifications", "historical")
}
_JOIN_RULES = {"join_rule": "restricted", "allow": [{"type": "m.room_membership"}], "x": 1}
_CREATE = {"creator": "@s:x", "room_version": "1", "m.federate": False}

# Per event type, the content each room version keeps (index = version - 1).
VERSION_TABLE: list[tuple[str, dict[str, Any], list[dict[str, Any]]]] = [
    (
        "m.room.member",
        MEMBER_CONTENT,
        [{"membership": "join"}] * 8
        + [{"membership": "join", "join_authorised_via_users_server": "@a:x"}] * 2
        + [
            {
                "membership": "join",
                "join_authorised_via_users_server": "@a:x",
                "third_party_invite": {"signed": {"mxid": "@s:x", "token": "t"}},
            }
        ]
        * 2,
    ),
    ("m.room.create", _CREATE, [{"creator": "@s:x"}] * 10 + [_CREATE] * 2),
    (
        "m.room.join_rules",
        _JOIN_RULES,
        [{"join_rule": "restricted"}] * 7
        + [{"join_rule": "restricted", "allow": [{"type": "m.room_membership"}]}] * 5,
    ),
    (
        "m.room.power_levels",
        PL_CONTENT,
        [_PL_V1_KEPT] * 10 + [{**_PL_V1_KEPT, "invite": 0}] * 2,
    ),
    ("m.room.aliases", {"aliases": ["#a:x"], "x": 1}, [{"aliases": ["#a:x"]}] * 5 + [{}] * 7),
    (
        "m.room.history_visibility",
        {"history_visibility": "shared", "x": 1},
        [{"history_visibility": "shared"}] * 12,
    ),
    ("m.room.redaction", {"redacts": "$t", "reason": "r"}, [{}] * 10 + [{"redacts": "$t"}] * 2),
    ("m.room.name", {"name": "secret"}, [{}] * 12),
]


@pytest.mark.parametrize("version", range(1, 13))
@pytest.mark.parametrize(("type", "content", "kept"), VERSION_TABLE, ids=lambda v: str(v)[:20])
def test_content_kept_per_version(
    version: int, type: str, content: dict[str, Any], kept: list[dict[str, Any]]
) -> None:
    rv = get_room_version(str(version))
    assert redact(_event(type, content), rv)["content"] == kept[version - 1]


@pytest.mark.parametrize("version", range(1, 13))
def test_top_level_keys_per_version(version: int) -> None:
    out = redact(_event("m.room.message", {"body": "x"}), get_room_version(str(version)))
    top = {**ESSENTIAL, "type": "m.room.message", "state_key": "", "content": {}}
    assert out == (top if version >= 11 else {**top, **V10_ONLY_TOP})
