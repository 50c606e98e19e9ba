"""Initial state for ``/createRoom`` presets, following Synapse's choices."""

from __future__ import annotations

import copy
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from hamlet.core.canonical_json import JsonDict
from hamlet.core.errors import EventFormatError

PRIVATE_CHAT = "private_chat"
TRUSTED_PRIVATE_CHAT = "trusted_private_chat"
PUBLIC_CHAT = "public_chat"


@dataclass(frozen=True, slots=True)
class Preset:
    """What a createRoom preset implies."""

    name: str
    join_rule: str
    history_visibility: str
    guest_can_join: bool
    invitees_are_admins: bool
    power_level_overrides: dict[str, Any] = field(default_factory=dict)


PRESETS: dict[str, Preset] = {
    PRIVATE_CHAT: Preset(PRIVATE_CHAT, "invite", "shared", True, False, {"invite": 0}),
    TRUSTED_PRIVATE_CHAT: Preset(
        TRUSTED_PRIVATE_CHAT, "invite", "shared", True, True, {"invite": 0}
    ),
    PUBLIC_CHAT: Preset(PUBLIC_CHAT, "public", "shared", False, False, {}),
}


def get_preset(name: str) -> Preset:
    """Look up a preset by name; raises :class:`EventFormatError` for unknown names."""
    try:
        return PRESETS[name]
    except KeyError:
        raise EventFormatError(f"{name!r} is not a valid preset") from None


def preset_for_visibility(visibility: str | None) -> str:
    """The spec default when no preset is given: public -> public_chat, else private_chat."""
    return PUBLIC_CHAT if visibility == "public" else PRIVATE_CHAT


def default_power_levels_content(
    creator: str,
    preset: str,
    invitees: Iterable[str] = (),
    override: dict[str, Any] | None = None,
    *,
    creators_outrank: bool = False,
) -> JsonDict:
    """The ``m.room.power_levels`` content a new room gets (Synapse's defaults).

    Preset overrides apply first (``invite: 0`` for the private presets),
    then the client's ``power_level_content_override``, key by key.
    `creators_outrank` (v12): the creators, and the invitees a trusted
    private chat makes creators, have unbounded power and may not be listed,
    and only they may replace the room (tombstone at 150).
    """
    config = get_preset(preset)
    users: dict[str, int] = {} if creators_outrank else {creator: 100}
    if config.invitees_are_admins and not creators_outrank:
        for invitee in invitees:
            users[invitee] = 100
    content: JsonDict = {
        "users": users,
        "users_default": 0,
        "events": {
            "m.room.name": 50,
            "m.room.power_levels": 100,
            "m.room.history_visibility": 100,
            "m.room.canonical_alias": 50,
            "m.room.avatar": 50,
            "m.room.tombstone": 150 if creators_outrank else 100,
            "m.room.server_acl": 100,
            "m.room.encryption": 100,
        },
        "events_default": 0,
        "state_default": 50,
        "ban": 50,
        "kick": 50,
        "redact": 50,
        "invite": 50,
        "historical": 100,
    }
    content.update(copy.deepcopy(config.power_level_overrides))
    if override:
        content.update(copy.deepcopy(override))
    return content


def preset_initial_state(preset: str) -> list[tuple[str, str, JsonDict]]:
    """``(type, state_key, content)`` for join rules, history visibility, guest access."""
    config = get_preset(preset)
    state: list[tuple[str, str, JsonDict]] = [
        ("m.room.join_rules", "", {"join_rule": config.join_rule}),
        ("m.room.history_visibility", "", {"history_visibility": config.history_visibility}),
    ]
    if config.guest_can_join:
        state.append(("m.room.guest_access", "", {"guest_access": "can_join"}))
    return state
