"""Rooms of a space that live on other servers, as their `/hierarchy` answers describe them.

A remote server's answer is hostile input: only the summary fields the spec
names are kept, each of the right type and bounded in size, and at most
`MAX_CHILDREN` children. What is kept is what the client hierarchy shows.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Final, Protocol

from hamlet.core.ids import MAX_ID_LENGTH, is_valid_server_name

SPACE_CHILD: Final = "m.space.child"
ROOM_TYPE_SPACE: Final = "m.space"
#: Children of one remote room kept (the local walk's own bound).
MAX_CHILDREN: Final = 1000
#: `via` servers kept per child, and tried per remote room.
MAX_VIA: Final = 10
#: Longest string of a summary passed on (names, topics, aliases, URLs).
MAX_TEXT: Final = 1000
MAX_ALLOWED_ROOMS: Final = 50

_TEXT_FIELDS: Final = (
    "name",
    "topic",
    "canonical_alias",
    "avatar_url",
    "join_rule",
    "room_type",
    "room_version",
    "encryption",
)
_BOOL_FIELDS: Final = ("world_readable", "guest_can_join")
_INVALID_ORDER: Final = re.compile(r"[^\x20-\x7E]")


def _is_room_id(value: str) -> bool:
    """`!` and an opaque part (with `:server` up to room version 11, without
    from 12), printable, at most 255 bytes."""
    return (
        value.startswith("!")
        and len(value) > 1
        and len(value.encode()) <= MAX_ID_LENGTH
        and value.isprintable()
        and " " not in value
    )


def child_order_key(
    content: Mapping[str, Any], origin_server_ts: int, state_key: str
) -> tuple[bool, str, int, str]:
    """The spec's child order: valid `order` strings first (by code point),
    then timestamp, then room ID."""
    order = content.get("order")
    if not isinstance(order, str) or len(order) > 50 or _INVALID_ORDER.search(order):
        order = None
    return order is None, order or "", origin_server_ts, state_key


def valid_via(content: Mapping[str, Any]) -> tuple[str, ...]:
    """A child's `via` servers (empty if it names none validly: no child)."""
    via = content.get("via")
    if not isinstance(via, list) or not via or not all(isinstance(v, str) for v in via):
        return ()
    return tuple(v for v in via[:MAX_VIA] if is_valid_server_name(v))


@dataclass(frozen=True, slots=True)
class ChildLink:
    room_id: str
    via: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class RemoteRoom:
    """A room summarised by another server."""

    room_id: str
    #: The checked summary, `children_state` included (empty for a child
    #: summarised only through its parent's answer).
    summary: Mapping[str, Any]

    @property
    def room_type(self) -> str | None:
        value = self.summary.get("room_type")
        return value if isinstance(value, str) else None

    @property
    def children(self) -> list[ChildLink]:
        if self.room_type != ROOM_TYPE_SPACE:
            return []
        links = [
            (child_order_key(c["content"], c["origin_server_ts"], c["state_key"]), c)
            for c in self.summary.get("children_state", [])
        ]
        links.sort(key=lambda pair: pair[0])
        return [ChildLink(c["state_key"], valid_via(c["content"])) for _key, c in links]

    def client_summary(self) -> dict[str, Any]:
        """What the client `/hierarchy` lists: the summary without what
        only servers need."""
        out = {k: v for k, v in self.summary.items() if k != "allowed_room_ids"}
        out.setdefault("children_state", [])
        return out


@dataclass(frozen=True, slots=True)
class RemoteAnswer:
    """A remote server's `/hierarchy` answer, checked."""

    room: RemoteRoom
    #: Its children's summaries, by room ID.
    children: Mapping[str, RemoteRoom]
    inaccessible: frozenset[str]


@dataclass(slots=True)
class RequestBudget:
    """Requests to other servers one client walk may still make."""

    remaining: int

    def take(self) -> bool:
        if self.remaining <= 0:
            return False
        self.remaining -= 1
        return True


class RemoteSpaces(Protocol):
    """Asks other servers for the hierarchy of a room this server is not in."""

    async def fetch(
        self, room_id: str, via: Sequence[str], suggested_only: bool, budget: RequestBudget
    ) -> RemoteAnswer | None:
        """The checked answer of the first of `via` that gives one (cached
        briefly), or None. Each request made is taken from `budget`; none is
        made once it is spent."""
        ...


def _child_state(raw: Any) -> dict[str, Any] | None:
    if not isinstance(raw, Mapping) or raw.get("type") != SPACE_CHILD:
        return None
    state_key, content = raw.get("state_key"), raw.get("content")
    sender, ts = raw.get("sender"), raw.get("origin_server_ts")
    if not isinstance(state_key, str) or not _is_room_id(state_key):
        return None
    if not isinstance(content, Mapping) or not valid_via(content):
        return None
    if not isinstance(sender, str) or len(sender) > 255:
        return None
    if not isinstance(ts, int) or isinstance(ts, bool):
        return None
    kept: dict[str, Any] = {"via": list(valid_via(content))}
    order = content.get("order")
    if isinstance(order, str) and len(order) <= 50:
        kept["order"] = order
    if content.get("suggested") is True:
        kept["suggested"] = True
    return {
        "type": SPACE_CHILD,
        "state_key": state_key,
        "content": kept,
        "sender": sender,
        "origin_server_ts": ts,
    }


def clean_summary(raw: Any, *, with_children: bool) -> dict[str, Any] | None:
    """The summary fields of `raw` that have the spec's types; None if it
    has no valid `room_id`."""
    if not isinstance(raw, Mapping):
        return None
    room_id = raw.get("room_id")
    if not isinstance(room_id, str) or not _is_room_id(room_id):
        return None
    out: dict[str, Any] = {"room_id": room_id}
    for key in _TEXT_FIELDS:
        value = raw.get(key)
        if isinstance(value, str) and len(value) <= MAX_TEXT:
            out[key] = value
    for key in _BOOL_FIELDS:
        out[key] = raw.get(key) is True
    members = raw.get("num_joined_members")
    if isinstance(members, int) and not isinstance(members, bool) and members >= 0:
        out["num_joined_members"] = members
    else:
        out["num_joined_members"] = 0
    allowed = raw.get("allowed_room_ids")
    if isinstance(allowed, list):
        out["allowed_room_ids"] = [
            r for r in allowed[:MAX_ALLOWED_ROOMS] if isinstance(r, str) and _is_room_id(r)
        ]
    if with_children:
        children = raw.get("children_state")
        states = children[:MAX_CHILDREN] if isinstance(children, list) else []
        out["children_state"] = [c for c in map(_child_state, states) if c is not None]
    return out


def parse_answer(room_id: str, raw: Any, suggested_only: bool) -> RemoteAnswer | None:
    """A remote `/hierarchy` answer for `room_id`, checked; None if unusable."""
    if not isinstance(raw, Mapping):
        return None
    room = clean_summary(raw.get("room"), with_children=True)
    if room is None or room["room_id"] != room_id:
        return None
    if suggested_only:
        room["children_state"] = [
            c for c in room["children_state"] if c["content"].get("suggested") is True
        ]
    listed = {c["state_key"] for c in room["children_state"]}
    children: dict[str, RemoteRoom] = {}
    raw_children = raw.get("children")
    for raw_child in raw_children[:MAX_CHILDREN] if isinstance(raw_children, list) else []:
        child = clean_summary(raw_child, with_children=False)
        if child is not None and child["room_id"] in listed:
            children[child["room_id"]] = RemoteRoom(child["room_id"], child)
    raw_inaccessible = raw.get("inaccessible_children")
    inaccessible = frozenset(
        r
        for r in (raw_inaccessible[:MAX_CHILDREN] if isinstance(raw_inaccessible, list) else [])
        if isinstance(r, str) and r in listed
    )
    return RemoteAnswer(RemoteRoom(room_id, room), children, inaccessible)
