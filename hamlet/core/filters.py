"""Client filters (``/user/{userId}/filter``, ``/sync?filter=``, ``/messages?filter=``)."""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from functools import lru_cache
from typing import Any, Literal, TypeVar

from hamlet.core.errors import FilterError
from hamlet.core.json_paths import split_path

DEFAULT_TIMELINE_LIMIT = 10

T = TypeVar("T")


@lru_cache(maxsize=1024)
def _glob_regex(pattern: str) -> re.Pattern[str]:
    return re.compile(
        "".join(".*" if part == "*" else re.escape(part) for part in re.split(r"(\*)", pattern))
        + r"\Z",
        re.DOTALL,
    )


def type_matches(event_type: str, patterns: Iterable[str]) -> bool:
    """True if ``event_type`` matches any pattern (``*`` matches any sequence)."""
    for pattern in patterns:
        if "*" in pattern:
            if _glob_regex(pattern).match(event_type):
                return True
        elif pattern == event_type:
            return True
    return False


def _fields(event: Any) -> tuple[str | None, str | None, str | None, Mapping[str, Any]]:
    """(type, sender, room_id, content) from a dict or an object with those attributes."""
    if isinstance(event, Mapping):
        content = event.get("content")
        return (
            event.get("type"),
            event.get("sender"),
            event.get("room_id"),
            content if isinstance(content, Mapping) else {},
        )
    content = getattr(event, "content", None)
    return (
        getattr(event, "type", None),
        getattr(event, "sender", None),
        getattr(event, "room_id", None),
        content if isinstance(content, Mapping) else {},
    )


@dataclass(frozen=True, slots=True)
class EventFilter:
    """``EventFilter``: limit, types/not_types (with ``*``), senders/not_senders."""

    limit: int | None = None
    types: tuple[str, ...] | None = None
    not_types: tuple[str, ...] = ()
    senders: tuple[str, ...] | None = None
    not_senders: tuple[str, ...] = ()

    def _matches_common(self, event_type: str | None, sender: str | None) -> bool:
        if event_type is not None:
            if type_matches(event_type, self.not_types):
                return False
            if self.types is not None and not type_matches(event_type, self.types):
                return False
        elif self.types is not None:
            return False
        if sender is not None and sender in self.not_senders:
            return False
        return not (self.senders is not None and sender not in self.senders)

    def matches(self, event: Any) -> bool:
        """Does a dict (or object) with ``type``/``sender`` pass this filter?"""
        event_type, sender, _, _ = _fields(event)
        return self._matches_common(event_type, sender)

    def filter(self, events: Iterable[T]) -> list[T]:
        """The matching events, in order (``limit`` is not applied)."""
        return [e for e in events if self.matches(e)]


@dataclass(frozen=True, slots=True)
class RoomEventFilter(EventFilter):
    """``RoomEventFilter``: adds rooms, contains_url and lazy-loading switches."""

    rooms: tuple[str, ...] | None = None
    not_rooms: tuple[str, ...] = ()
    contains_url: bool | None = None
    lazy_load_members: bool = False
    include_redundant_members: bool = False
    unread_thread_notifications: bool = False

    def matches(self, event: Any) -> bool:
        event_type, sender, room_id, content = _fields(event)
        if not self._matches_common(event_type, sender):
            return False
        if room_id is not None:
            if room_id in self.not_rooms:
                return False
            if self.rooms is not None and room_id not in self.rooms:
                return False
        if self.contains_url is not None:
            has_url = isinstance(content.get("url"), str)
            if has_url != self.contains_url:
                return False
        return True


@dataclass(frozen=True, slots=True)
class RoomFilter:
    """``RoomFilter``: which rooms, and a RoomEventFilter per section."""

    rooms: tuple[str, ...] | None = None
    not_rooms: tuple[str, ...] = ()
    include_leave: bool = False
    timeline: RoomEventFilter = RoomEventFilter()
    state: RoomEventFilter = RoomEventFilter()
    ephemeral: RoomEventFilter = RoomEventFilter()
    account_data: RoomEventFilter = RoomEventFilter()

    def matches_room(self, room_id: str) -> bool:
        """Applied before the per-section filters."""
        if room_id in self.not_rooms:
            return False
        return self.rooms is None or room_id in self.rooms

    @property
    def timeline_limit(self) -> int:
        """The timeline limit, :data:`DEFAULT_TIMELINE_LIMIT` when unset."""
        return self.timeline.limit if self.timeline.limit is not None else DEFAULT_TIMELINE_LIMIT


@dataclass(frozen=True, slots=True)
class Filter:
    """A whole client filter."""

    event_fields: tuple[str, ...] | None = None
    event_format: Literal["client", "federation"] = "client"
    presence: EventFilter = EventFilter()
    account_data: EventFilter = EventFilter()
    room: RoomFilter = RoomFilter()


DEFAULT_FILTER = Filter()


# --- parsing ---


def _obj(value: Any, where: str) -> Mapping[str, Any]:
    if value is None:
        return {}
    if not isinstance(value, Mapping):
        raise FilterError(f"'{where}' must be an object")
    return value


def _str_list(
    data: Mapping[str, Any], key: str, where: str, prefix: str = ""
) -> tuple[str, ...] | None:
    if key not in data or data[key] is None:
        return None
    value = data[key]
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise FilterError(f"'{where}{key}' must be a list of strings")
    if prefix and not all(v.startswith(prefix) for v in value):
        raise FilterError(f"'{where}{key}' entries must start with {prefix!r}")
    return tuple(value)


def _bool(data: Mapping[str, Any], key: str, where: str) -> bool | None:
    value = data.get(key)
    if value is None:
        return None
    if not isinstance(value, bool):
        raise FilterError(f"'{where}{key}' must be a boolean")
    return value


def _limit(data: Mapping[str, Any], where: str) -> int | None:
    value = data.get("limit")
    if value is None:
        return None
    if not isinstance(value, int) or isinstance(value, bool) or value < 1:
        raise FilterError(f"'{where}limit' must be an integer greater than 0")
    return value


def parse_event_filter(value: Any, where: str = "") -> EventFilter:
    """Parse an ``EventFilter`` object. Raises :class:`FilterError`."""
    data = _obj(value, where.rstrip(".") or "filter")
    return EventFilter(
        limit=_limit(data, where),
        types=_str_list(data, "types", where),
        not_types=_str_list(data, "not_types", where) or (),
        senders=_str_list(data, "senders", where, "@"),
        not_senders=_str_list(data, "not_senders", where, "@") or (),
    )


def parse_room_event_filter(value: Any, where: str = "") -> RoomEventFilter:
    """Parse a ``RoomEventFilter`` object. Raises :class:`FilterError`."""
    base = parse_event_filter(value, where)
    data = _obj(value, where.rstrip(".") or "filter")
    return RoomEventFilter(
        limit=base.limit,
        types=base.types,
        not_types=base.not_types,
        senders=base.senders,
        not_senders=base.not_senders,
        rooms=_str_list(data, "rooms", where, "!"),
        not_rooms=_str_list(data, "not_rooms", where, "!") or (),
        contains_url=_bool(data, "contains_url", where),
        lazy_load_members=bool(_bool(data, "lazy_load_members", where)),
        include_redundant_members=bool(_bool(data, "include_redundant_members", where)),
        unread_thread_notifications=bool(_bool(data, "unread_thread_notifications", where)),
    )


def parse_filter(value: Any) -> Filter:
    """Parse a whole filter definition. Raises :class:`FilterError` with a clear message."""
    if not isinstance(value, Mapping):
        raise FilterError("filter must be a JSON object")
    event_format = value.get("event_format", "client")
    if event_format not in ("client", "federation"):
        raise FilterError("'event_format' must be 'client' or 'federation'")
    room = _obj(value.get("room"), "room")
    return Filter(
        event_fields=_str_list(value, "event_fields", ""),
        event_format=event_format,
        presence=parse_event_filter(value.get("presence"), "presence."),
        account_data=parse_event_filter(value.get("account_data"), "account_data."),
        room=RoomFilter(
            rooms=_str_list(room, "rooms", "room.", "!"),
            not_rooms=_str_list(room, "not_rooms", "room.", "!") or (),
            include_leave=bool(_bool(room, "include_leave", "room.")),
            timeline=parse_room_event_filter(room.get("timeline"), "room.timeline."),
            state=parse_room_event_filter(room.get("state"), "room.state."),
            ephemeral=parse_room_event_filter(room.get("ephemeral"), "room.ephemeral."),
            account_data=parse_room_event_filter(room.get("account_data"), "room.account_data."),
        ),
    )


# --- event_fields ---


def apply_event_fields(event: Mapping[str, Any], fields: Iterable[str]) -> dict[str, Any]:
    """Keep only the listed dot-separated paths of a client-format event."""
    out: dict[str, Any] = {}
    for path in fields:
        parts = split_path(path)
        source: Any = event
        for part in parts:
            if not isinstance(source, Mapping) or part not in source:
                break
            source = source[part]
        else:
            target = out
            for part in parts[:-1]:
                target = target.setdefault(part, {})
            target[parts[-1]] = source
    return out
