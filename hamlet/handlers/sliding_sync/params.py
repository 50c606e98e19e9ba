"""The body of a sliding sync request (MSC4186), checked and bounded.

Every count and size a client picks here turns into queries and memory,
so each is capped; anything malformed is a 400, never a 500.
"""

from __future__ import annotations

from collections.abc import Hashable
from dataclasses import dataclass
from typing import Any, Final

from hamlet.handlers.common.errors import BadJsonError, InvalidParamError

MAX_LISTS: Final = 100
MAX_RANGES_PER_LIST: Final = 10
#: The highest index a range may reach: more rooms than anyone is in.
MAX_RANGE_INDEX: Final = 100_000
MAX_SUBSCRIPTIONS: Final = 100
MAX_REQUIRED_STATE: Final = 100
MAX_TIMELINE_LIMIT: Final = 100
MAX_NAME_LENGTH: Final = 255
MAX_CONN_ID_LENGTH: Final = 100
#: Entries in a filter's list (`spaces`, `tags`, `room_types` ...) and in an
#: extension's `lists` / `rooms`.
MAX_FILTER_ENTRIES: Final = 100
#: An extension's `lists` / `rooms` entry that means "all of them".
ALL: Final = "*"

#: `required_state` placeholders: the requester, and the senders of the timeline.
ME: Final = "$ME"
LAZY: Final = "$LAZY"


@dataclass(frozen=True, slots=True)
class RoomParams:
    """What the client wants of each room of a list or subscription."""

    timeline_limit: int
    required_state: frozenset[tuple[str, str]]

    def merge(self, other: RoomParams) -> RoomParams:
        """A room in several lists gets the most any of them asks for."""
        return RoomParams(
            max(self.timeline_limit, other.timeline_limit),
            self.required_state | other.required_state,
        )


@dataclass(frozen=True, slots=True)
class ListFilters:
    """A list's filters, ANDed; None is "not filtered on this"."""

    is_dm: bool | None = None
    spaces: frozenset[str] | None = None
    is_encrypted: bool | None = None
    is_invite: bool | None = None
    #: `None` in these stands for rooms without a type.
    room_types: frozenset[str | None] | None = None
    not_room_types: frozenset[str | None] | None = None
    room_name_like: str | None = None
    tags: frozenset[str] | None = None
    not_tags: frozenset[str] | None = None


NO_FILTERS: Final = ListFilters()


@dataclass(frozen=True, slots=True)
class ListParams:
    ranges: tuple[tuple[int, int], ...]
    room: RoomParams
    filters: ListFilters = NO_FILTERS


@dataclass(frozen=True, slots=True)
class ExtensionScope:
    """Which rooms an extension covers (as Synapse): those of the named lists
    and of the named subscriptions, `*` for all; None names none."""

    lists: frozenset[str] | None = frozenset({ALL})
    rooms: frozenset[str] | None = frozenset({ALL})


@dataclass(frozen=True, slots=True)
class SlidingSyncParams:
    conn_id: str | None
    lists: dict[str, ListParams]
    subscriptions: dict[str, RoomParams]
    to_device: bool
    to_device_since: str | None
    e2ee: bool
    account_data: bool
    unsubscribe_rooms: frozenset[str] = frozenset()
    receipts: ExtensionScope | None = None
    typing: ExtensionScope | None = None

    def sharing_key(self) -> Hashable:
        """Equal for bodies asking for the same (whatever the order of keys)."""
        return (
            self.conn_id,
            tuple(sorted(self.lists.items())),
            tuple(sorted(self.subscriptions.items())),
            self.to_device,
            self.to_device_since,
            self.e2ee,
            self.account_data,
            self.unsubscribe_rooms,
            self.receipts,
            self.typing,
        )


def _object(value: Any, where: str) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise BadJsonError(f"{where} must be an object")
    return value


def _int(value: Any, where: str, low: int, high: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise BadJsonError(f"{where} must be an integer")
    if not low <= value <= high:
        raise InvalidParamError(f"{where} must be between {low} and {high}")
    return value


def _string(value: Any, where: str, max_length: int = MAX_NAME_LENGTH) -> str:
    if not isinstance(value, str):
        raise BadJsonError(f"{where} must be a string")
    if len(value) > max_length:
        raise InvalidParamError(f"{where} is longer than {max_length} characters")
    return value


def _room_params(data: dict[str, Any], where: str) -> RoomParams:
    limit = _int(data.get("timeline_limit", 0), f"{where}.timeline_limit", 0, 1 << 31)
    raw = data.get("required_state", [])
    if not isinstance(raw, list):
        raise BadJsonError(f"{where}.required_state must be a list")
    if len(raw) > MAX_REQUIRED_STATE:
        raise InvalidParamError(f"{where}.required_state: at most {MAX_REQUIRED_STATE} entries")
    pairs: set[tuple[str, str]] = set()
    for i, pair in enumerate(raw):
        if not isinstance(pair, list) or len(pair) != 2:
            raise BadJsonError(f"{where}.required_state[{i}] must be [type, state_key]")
        pairs.add((_string(pair[0], f"{where}.required_state"), _string(pair[1], where)))
    return RoomParams(min(limit, MAX_TIMELINE_LIMIT), frozenset(pairs))


def _bool(value: Any, where: str) -> bool | None:
    if value is not None and not isinstance(value, bool):
        raise BadJsonError(f"{where} must be a boolean")
    return value


def _strings(value: Any, where: str, *, nulls: bool = False) -> frozenset[Any] | None:
    """A list of strings (and, with `nulls`, nulls) or null."""
    if value is None:
        return None
    if not isinstance(value, list):
        raise BadJsonError(f"{where} must be a list")
    if len(value) > MAX_FILTER_ENTRIES:
        raise InvalidParamError(f"{where}: at most {MAX_FILTER_ENTRIES} entries")
    return frozenset(
        None if item is None and nulls else _string(item, f"{where} entry") for item in value
    )


def _filters(value: Any, where: str) -> ListFilters:
    if value is None:
        return NO_FILTERS
    data = _object(value, where)
    name_like = data.get("room_name_like")
    return ListFilters(
        is_dm=_bool(data.get("is_dm"), f"{where}.is_dm"),
        spaces=_strings(data.get("spaces"), f"{where}.spaces"),
        is_encrypted=_bool(data.get("is_encrypted"), f"{where}.is_encrypted"),
        is_invite=_bool(data.get("is_invite"), f"{where}.is_invite"),
        room_types=_strings(data.get("room_types"), f"{where}.room_types", nulls=True),
        not_room_types=_strings(data.get("not_room_types"), f"{where}.not_room_types", nulls=True),
        room_name_like=None if name_like is None else _string(name_like, f"{where}.room_name_like"),
        tags=_strings(data.get("tags"), f"{where}.tags"),
        not_tags=_strings(data.get("not_tags"), f"{where}.not_tags"),
    )


def _list(data: dict[str, Any], where: str) -> ListParams:
    raw = data.get("ranges", [])
    if not isinstance(raw, list):
        raise BadJsonError(f"{where}.ranges must be a list")
    if len(raw) > MAX_RANGES_PER_LIST:
        raise InvalidParamError(f"{where} has more than {MAX_RANGES_PER_LIST} ranges")
    ranges: list[tuple[int, int]] = []
    for rng in raw:
        if not isinstance(rng, list) or len(rng) != 2:
            raise BadJsonError(f"{where}.ranges entries must be [start, end]")
        start = _int(rng[0], f"{where}.ranges start", 0, MAX_RANGE_INDEX)
        end = _int(rng[1], f"{where}.ranges end", 0, MAX_RANGE_INDEX)
        if end < start:
            raise InvalidParamError(f"{where} has a range that ends before it starts")
        ranges.append((start, end))
    return ListParams(
        tuple(ranges), _room_params(data, where), _filters(data.get("filters"), f"{where}.filters")
    )


def _enabled(extensions: dict[str, Any], name: str) -> dict[str, Any] | None:
    if name not in extensions:
        return None
    ext = _object(extensions[name], f"extensions.{name}")
    enabled = ext.get("enabled", False)
    if not isinstance(enabled, bool):
        raise BadJsonError(f"extensions.{name}.enabled must be a boolean")
    return ext if enabled else None


def _scope(ext: dict[str, Any] | None, name: str) -> ExtensionScope | None:
    if ext is None:
        return None
    where = f"extensions.{name}"
    default = frozenset({ALL})
    lists = _strings(ext["lists"], f"{where}.lists") if "lists" in ext else default
    rooms = _strings(ext["rooms"], f"{where}.rooms") if "rooms" in ext else default
    return ExtensionScope(lists, rooms)


def parse_params(body: dict[str, Any]) -> SlidingSyncParams:
    conn_id = body.get("conn_id")
    if conn_id is not None:
        conn_id = _string(conn_id, "conn_id", MAX_CONN_ID_LENGTH)
    lists_raw = _object(body.get("lists", {}), "lists")
    if len(lists_raw) > MAX_LISTS:
        raise InvalidParamError(f"At most {MAX_LISTS} lists")
    lists = {
        _string(name, "list name"): _list(_object(data, f"lists.{name}"), f"lists.{name}")
        for name, data in lists_raw.items()
    }
    subs_raw = _object(body.get("room_subscriptions", {}), "room_subscriptions")
    if len(subs_raw) > MAX_SUBSCRIPTIONS:
        raise InvalidParamError(f"At most {MAX_SUBSCRIPTIONS} room subscriptions")
    subscriptions = {
        _string(room_id, "room id"): _room_params(
            _object(data, "room_subscriptions entry"), "room_subscriptions"
        )
        for room_id, data in subs_raw.items()
    }
    unsubscribe = _strings(body.get("unsubscribe_rooms"), "unsubscribe_rooms") or frozenset()
    extensions = _object(body.get("extensions", {}), "extensions")
    to_device = _enabled(extensions, "to_device")
    since = None
    if to_device is not None and to_device.get("since") is not None:
        since = _string(to_device["since"], "extensions.to_device.since")
    return SlidingSyncParams(
        conn_id=conn_id,
        lists=lists,
        subscriptions=subscriptions,
        to_device=to_device is not None,
        to_device_since=since,
        e2ee=_enabled(extensions, "e2ee") is not None,
        account_data=_enabled(extensions, "account_data") is not None,
        unsubscribe_rooms=unsubscribe,
        receipts=_scope(_enabled(extensions, "receipts"), "receipts"),
        typing=_scope(_enabled(extensions, "typing"), "typing"),
    )
