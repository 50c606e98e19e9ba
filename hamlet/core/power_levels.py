"""Power level lookups over a room's auth state.

``auth_state`` everywhere maps ``(event type, state key)`` to an
:class:`~hamlet.core.events.Event`.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from typing import Any

from hamlet.core.events import Event
from hamlet.core.room_versions import RoomVersion

StateKey = tuple[str, str]
AuthState = Mapping[StateKey, Event]

CREATE_KEY: StateKey = ("m.room.create", "")
POWER_LEVELS_KEY: StateKey = ("m.room.power_levels", "")
JOIN_RULES_KEY: StateKey = ("m.room.join_rules", "")

#: Defaults from the m.room.power_levels schema (used when a key is absent).
DEFAULT_BAN = 50
DEFAULT_KICK = 50
DEFAULT_REDACT = 50
DEFAULT_INVITE = 0
DEFAULT_USERS = 0
DEFAULT_EVENTS = 0
DEFAULT_STATE = 50
DEFAULT_NOTIFICATION_ROOM = 50
CREATOR_LEVEL_WITHOUT_POWER_LEVELS = 100
#: v12 creators' "infinite" level: above every level canonical JSON can express.
CREATOR_POWER_LEVEL = 2**53

_NAMED_DEFAULTS = {
    "ban": DEFAULT_BAN,
    "kick": DEFAULT_KICK,
    "redact": DEFAULT_REDACT,
    "invite": DEFAULT_INVITE,
    "users_default": DEFAULT_USERS,
    "events_default": DEFAULT_EVENTS,
    "state_default": DEFAULT_STATE,
}


def as_int(value: Any, default: int) -> int:
    """``value`` if it is an integer (not a bool), else ``default``."""
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    return default


#: Before v10 a level may be a string: base 10 digits, one optional sign,
#: surrounding whitespace (ASCII digits only, as the spec's examples).
_LEGACY_LEVEL_RE = re.compile(r"\s*[+-]?[0-9]+\s*")
_LEVEL_NAMES = (*_NAMED_DEFAULTS, "invite")
_LEVEL_MAPS = ("events", "notifications", "users")


def parse_legacy_level(value: Any) -> Any:
    """A pre-v10 power level value as an integer when the spec says it is one.

    Strings of the spec's integer format are parsed; floats (v1-v5, which
    do not enforce canonical JSON) are truncated. Anything else, including
    non-finite floats, is returned unchanged for the caller to refuse.
    """
    if isinstance(value, str) and _LEGACY_LEVEL_RE.fullmatch(value):
        return int(value.strip())
    if isinstance(value, float) and math.isfinite(value):
        return int(value)
    return value


def normalise_power_levels(
    content: Mapping[str, Any], room_version: RoomVersion
) -> Mapping[str, Any]:
    """``content`` with pre-v10 stringy/floaty levels turned into integers.

    From v10 the auth rules only admit integers, so content is returned as is.
    """
    if room_version.integer_power_levels:
        return content
    out = dict(content)
    for name in _LEVEL_NAMES:
        if name in out:
            out[name] = parse_legacy_level(out[name])
    for name in _LEVEL_MAPS:
        value = out.get(name)
        if isinstance(value, Mapping):
            out[name] = {k: parse_legacy_level(v) for k, v in value.items()}
    return out


def get_room_creator(create_event: Event) -> str:
    """The room creator: v11 uses the create event's sender, v10 ``content.creator``."""
    if create_event.room_version.creator_from_sender:
        return create_event.sender
    creator = create_event.content.get("creator")
    return creator if isinstance(creator, str) else create_event.sender


def get_room_creators(create_event: Event) -> frozenset[str]:
    """The room creators: from v12 the sender plus ``additional_creators``."""
    if not create_event.room_version.room_id_from_create_event:
        return frozenset({get_room_creator(create_event)})
    extra = create_event.content.get("additional_creators")
    others = [u for u in extra if isinstance(u, str)] if isinstance(extra, list) else []
    return frozenset({create_event.sender, *others})


def get_power_levels_content(auth_state: AuthState) -> Mapping[str, Any] | None:
    """The ``m.room.power_levels`` content, or None when the room has none."""
    event = auth_state.get(POWER_LEVELS_KEY)
    return normalise_power_levels(event.content, event.room_version) if event is not None else None


def get_named_level(power_levels: Mapping[str, Any] | None, name: str) -> int:
    """``ban``, ``kick``, ``redact``, ``invite``, ``*_default`` with spec defaults."""
    default = _NAMED_DEFAULTS[name]
    if power_levels is None:
        return default
    return as_int(power_levels.get(name), default)


def get_user_power_level(user_id: str, auth_state: AuthState) -> int:
    """A user's power level: ``users`` entry, else ``users_default``.

    Without a power levels event the creator has 100 and everyone else 0.
    From v12 the creators outrank everyone, whatever the power levels say.
    """
    create = auth_state.get(CREATE_KEY)
    if (
        create is not None
        and create.room_version.room_id_from_create_event
        and user_id in get_room_creators(create)
    ):
        return CREATOR_POWER_LEVEL
    power_levels = get_power_levels_content(auth_state)
    if power_levels is not None:
        users = power_levels.get("users")
        default = get_named_level(power_levels, "users_default")
        if isinstance(users, Mapping) and user_id in users:
            return as_int(users[user_id], default)
        return default
    if create is not None and get_room_creator(create) == user_id:
        return CREATOR_LEVEL_WITHOUT_POWER_LEVELS
    return DEFAULT_USERS


def get_required_level(
    event_type: str, is_state: bool, power_levels: Mapping[str, Any] | None
) -> int:
    """Level needed to send an event: ``events[type]``, else state/events default."""
    if power_levels is None:
        return DEFAULT_STATE if is_state else DEFAULT_EVENTS
    events = power_levels.get("events")
    default = get_named_level(power_levels, "state_default" if is_state else "events_default")
    if isinstance(events, Mapping) and event_type in events:
        return as_int(events[event_type], default)
    return default


def get_notification_level(power_levels: Mapping[str, Any] | None, key: str = "room") -> int:
    """Level needed for a notification key (``room`` -> ``@room``, default 50)."""
    default = DEFAULT_NOTIFICATION_ROOM
    if power_levels is None:
        return default
    notifications = power_levels.get("notifications")
    if isinstance(notifications, Mapping):
        return as_int(notifications.get(key), default)
    return default


def user_can_send(user_id: str, event_type: str, is_state: bool, auth_state: AuthState) -> bool:
    """True if the user's level reaches the level required for this event type."""
    required = get_required_level(event_type, is_state, get_power_levels_content(auth_state))
    return get_user_power_level(user_id, auth_state) >= required
