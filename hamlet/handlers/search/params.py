"""The body of `POST /search` and its `next_batch` tokens, checked and bounded."""

from __future__ import annotations

import base64
import binascii
from dataclasses import dataclass
from typing import Any

import orjson

from hamlet.core.errors import FilterError
from hamlet.core.filters import RoomEventFilter, parse_room_event_filter
from hamlet.core.search_query import KEY_TYPES, SearchQuery, SearchQueryError, parse_search_query
from hamlet.handlers.common.errors import BadJsonError, InvalidParamError, MissingParamError

DEFAULT_LIMIT = 10
#: Results per page at most (the filter's `limit` is clamped to it).
MAX_LIMIT = 100
DEFAULT_CONTEXT = 5
#: Context events on each side of a result at most.
MAX_CONTEXT = 20
GROUP_KEYS = ("room_id", "sender")
_MAX_TOKEN_CHARS = 1024


@dataclass(frozen=True, slots=True)
class EventContext:
    before_limit: int
    after_limit: int
    include_profile: bool


@dataclass(frozen=True, slots=True)
class SearchRequest:
    query: SearchQuery
    search_term: str
    types: tuple[str, ...]
    event_filter: RoomEventFilter | None
    by_rank: bool
    limit: int
    context: EventContext | None
    include_state: bool
    group_by: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class BatchToken:
    """Where a page ended: the search's snapshot, the last (rank, stream)
    returned, and the group (key, value) it was confined to, if any."""

    by_rank: bool
    upto: int
    rank: float
    stream: int
    group: tuple[str, str] | None = None

    def encode(self) -> str:
        group = list(self.group) if self.group is not None else None
        raw = orjson.dumps(
            ["rank" if self.by_rank else "recent", self.upto, self.rank, self.stream, group]
        )
        return base64.urlsafe_b64encode(raw).decode().rstrip("=")

    @staticmethod
    def decode(text: str) -> BatchToken:
        bad = InvalidParamError("Invalid next_batch token")
        if len(text) > _MAX_TOKEN_CHARS:
            raise bad
        try:
            value = orjson.loads(base64.urlsafe_b64decode(text + "=" * (-len(text) % 4)))
        except (binascii.Error, ValueError):
            raise bad from None
        if not isinstance(value, list) or len(value) != 5:
            raise bad
        order, upto, rank, stream, group = value
        if (
            order not in ("rank", "recent")
            or not _is_int(upto)
            or not _is_int(stream)
            or not isinstance(rank, (int, float))
            or isinstance(rank, bool)
        ):
            raise bad
        scope: tuple[str, str] | None = None
        if group is not None:
            if (
                not isinstance(group, list)
                or len(group) != 2
                or group[0] not in GROUP_KEYS
                or not isinstance(group[1], str)
            ):
                raise bad
            scope = (group[0], group[1])
        return BatchToken(order == "rank", upto, float(rank), stream, scope)


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and 0 <= value < 2**53


def _object(value: Any, name: str) -> dict[str, Any]:
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise BadJsonError(f"'{name}' must be an object")
    return value


def _bool(body: dict[str, Any], key: str, name: str) -> bool:
    value = body.get(key, False)
    if not isinstance(value, bool):
        raise BadJsonError(f"'{name}' must be a boolean")
    return value


def _context_limit(body: dict[str, Any], key: str) -> int:
    value = body.get(key, DEFAULT_CONTEXT)
    if not isinstance(value, int) or isinstance(value, bool) or value < 0:
        raise BadJsonError(f"'event_context.{key}' must be a non-negative integer")
    return min(value, MAX_CONTEXT)


def parse_search_request(body: dict[str, Any]) -> SearchRequest:
    """The `room_events` criteria of a search body; 400 for anything malformed."""
    if "search_categories" not in body:
        raise MissingParamError("Missing param: search_categories")
    categories = _object(body["search_categories"], "search_categories")
    if "room_events" not in categories:
        raise MissingParamError("Missing param: search_categories.room_events")
    criteria = _object(categories["room_events"], "room_events")
    term = criteria.get("search_term")
    if term is None:
        raise MissingParamError("Missing param: search_term")
    if not isinstance(term, str):
        raise BadJsonError("'search_term' must be a string")
    try:
        query = parse_search_query(term)
    except SearchQueryError as e:
        raise InvalidParamError(str(e)) from None
    keys = criteria.get("keys", list(KEY_TYPES))
    if not isinstance(keys, list) or not all(isinstance(k, str) and k in KEY_TYPES for k in keys):
        raise BadJsonError(f"'keys' must be a list of {', '.join(KEY_TYPES)}")
    types = tuple(dict.fromkeys(KEY_TYPES[k] for k in keys))
    event_filter: RoomEventFilter | None = None
    if criteria.get("filter") is not None:
        try:
            event_filter = parse_room_event_filter(criteria["filter"], "filter.")
        except FilterError as e:
            raise BadJsonError(f"Invalid filter: {e}") from None
    order_by = criteria.get("order_by", "rank")
    if order_by not in ("rank", "recent"):
        raise InvalidParamError("'order_by' must be 'rank' or 'recent'")
    context: EventContext | None = None
    if criteria.get("event_context") is not None:
        raw = _object(criteria["event_context"], "event_context")
        context = EventContext(
            _context_limit(raw, "before_limit"),
            _context_limit(raw, "after_limit"),
            _bool(raw, "include_profile", "event_context.include_profile"),
        )
    groupings = _object(criteria.get("groupings"), "groupings")
    group_by = groupings.get("group_by", [])
    if not isinstance(group_by, list) or not all(
        isinstance(g, dict) and g.get("key") in GROUP_KEYS for g in group_by
    ):
        raise InvalidParamError("'groupings.group_by' entries must have a key room_id or sender")
    limit = DEFAULT_LIMIT
    if event_filter is not None and event_filter.limit is not None:
        limit = min(event_filter.limit, MAX_LIMIT)
    return SearchRequest(
        query=query,
        search_term=term,
        types=types,
        event_filter=event_filter,
        by_rank=order_by == "rank",
        limit=limit,
        context=context,
        include_state=_bool(criteria, "include_state", "include_state"),
        group_by=tuple(dict.fromkeys(str(g["key"]) for g in group_by)),
    )
