"""The redaction algorithms of room versions 1-12."""

from __future__ import annotations

import copy
from collections.abc import Mapping
from typing import Any

from hamlet.core.canonical_json import JsonDict
from hamlet.core.room_versions import RoomVersion

_V1_TOP_LEVEL = frozenset(
    {
        "event_id",
        "type",
        "room_id",
        "sender",
        "state_key",
        "content",
        "hashes",
        "signatures",
        "depth",
        "prev_events",
        "prev_state",
        "auth_events",
        "origin",
        "origin_server_ts",
        "membership",
    }
)

_V11_TOP_LEVEL = frozenset(
    {
        "event_id",
        "type",
        "room_id",
        "sender",
        "state_key",
        "content",
        "hashes",
        "signatures",
        "depth",
        "prev_events",
        "auth_events",
        "origin_server_ts",
    }
)

_POWER_LEVEL_KEYS_V1 = (
    "ban",
    "events",
    "events_default",
    "kick",
    "redact",
    "state_default",
    "users",
    "users_default",
)

_V1_CONTENT: dict[str, tuple[str, ...]] = {
    "m.room.member": ("membership",),
    "m.room.create": ("creator",),
    "m.room.join_rules": ("join_rule",),
    "m.room.power_levels": _POWER_LEVEL_KEYS_V1,
    "m.room.aliases": ("aliases",),
    "m.room.history_visibility": ("history_visibility",),
}
_V6_CONTENT = {k: v for k, v in _V1_CONTENT.items() if k != "m.room.aliases"}
_V8_CONTENT = {**_V6_CONTENT, "m.room.join_rules": ("join_rule", "allow")}
_V9_CONTENT = {
    **_V8_CONTENT,
    "m.room.member": ("membership", "join_authorised_via_users_server"),
}

_V11_CONTENT: dict[str, tuple[str, ...]] = {
    "m.room.member": ("membership", "join_authorised_via_users_server"),
    "m.room.join_rules": ("join_rule", "allow"),
    "m.room.power_levels": (*_POWER_LEVEL_KEYS_V1, "invite"),
    "m.room.history_visibility": ("history_visibility",),
    "m.room.redaction": ("redacts",),
}


_CONTENT_BY_RULES: dict[str, dict[str, tuple[str, ...]]] = {
    "v1": _V1_CONTENT,
    "v6": _V6_CONTENT,
    "v8": _V8_CONTENT,
    "v9": _V9_CONTENT,
}


def _redact_content(event_type: str, content: Mapping[str, Any], rules: str) -> JsonDict:
    if rules == "v11":
        if event_type == "m.room.create":
            return copy.deepcopy(dict(content))
        allowed = _V11_CONTENT.get(event_type, ())
    else:
        allowed = _CONTENT_BY_RULES[rules].get(event_type, ())
    out: JsonDict = {k: copy.deepcopy(content[k]) for k in allowed if k in content}
    if rules == "v11" and event_type == "m.room.member":
        tpi = content.get("third_party_invite")
        if isinstance(tpi, Mapping) and "signed" in tpi:
            out["third_party_invite"] = {"signed": copy.deepcopy(tpi["signed"])}
    return out


def redact(event: Mapping[str, Any], room_version: RoomVersion) -> JsonDict:
    """Return a redacted copy of an event dict (PDU or client format).

    Top-level keys outside the version's allow-list are dropped and ``content``
    is cut down to the keys the event type keeps. ``unsigned`` is dropped too
    (the caller may re-add ``redacted_because`` when serving to clients).
    """
    rules = room_version.redaction_rules
    allowed_top = _V11_TOP_LEVEL if rules == "v11" else _V1_TOP_LEVEL
    out: JsonDict = {k: copy.deepcopy(v) for k, v in event.items() if k in allowed_top}
    content = event.get("content")
    event_type = event.get("type")
    if isinstance(content, Mapping) and isinstance(event_type, str):
        out["content"] = _redact_content(event_type, content, rules)
    else:
        out["content"] = {}
    return out
