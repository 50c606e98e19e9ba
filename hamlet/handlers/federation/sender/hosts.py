"""Which remote servers are in a room: the destinations of its events and EDUs.

Read from the room's latest memberships (ours left out): each server with
a joined member, with the stream ordering of its earliest current join, so
an event goes only to servers that were in the room when it was made; and
each server whose members have all left, with when the last one left, so
an event made before that still reaches it (the worker may read the room
after the leave). Cached per room, so a local-only room costs a dict
lookup per event; the sender drops a room's entry whenever a membership
event lands in it. `JoinedHosts` is the seam: the room DAG's own host
tracking (state at each event) can replace `MembershipHosts`.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Protocol

from hamlet.core.ids import is_valid_server_name
from hamlet.runtime.lru import LruCache

ROOMS_CACHED = 10_000
GONE = frozenset({"leave", "ban"})


def server_of(user_id: str) -> str:
    """The server part of a user ID ('' if it has none)."""
    return user_id.partition(":")[2]


@dataclass(frozen=True, slots=True)
class RoomHosts:
    #: server -> stream ordering of the earliest join of its joined members
    joined: Mapping[str, int] = field(default_factory=dict)
    #: server with no joined member -> stream ordering of its members' last leave
    departed: Mapping[str, int] = field(default_factory=dict)

    def at(self, stream_ordering: int) -> set[str]:
        """The servers an event at `stream_ordering` goes to."""
        hosts = {h for h, since in self.joined.items() if since < stream_ordering}
        hosts.update(h for h, until in self.departed.items() if until > stream_ordering)
        return hosts


class RoomMembers(Protocol):
    async def room_members(self, room_id: str) -> list[tuple[str, str, int]]:
        """(user ID, membership, its stream ordering) of everyone with a membership."""
        ...


class JoinedHosts(Protocol):
    def cached(self, room_id: str) -> RoomHosts | None:
        """The room's remote servers if known without I/O, else None."""
        ...

    async def remote_hosts(self, room_id: str) -> RoomHosts: ...

    def invalidate(self, room_id: str) -> None: ...

    def clear(self) -> None: ...


class MembershipHosts:
    def __init__(self, server_name: str, members: RoomMembers) -> None:
        self._server_name = server_name
        self._members = members
        self._cache: LruCache[str, RoomHosts] = LruCache(ROOMS_CACHED)
        # Bumped by every invalidation: a lookup that raced one is not cached.
        self._epoch = 0

    def cached(self, room_id: str) -> RoomHosts | None:
        return self._cache.get(room_id)

    async def remote_hosts(self, room_id: str) -> RoomHosts:
        cached = self._cache.get(room_id)
        if cached is not None:
            return cached
        epoch = self._epoch
        joined: dict[str, int] = {}
        departed: dict[str, int] = {}
        for user_id, membership, ordering in await self._members.room_members(room_id):
            domain = server_of(user_id)
            # Member IDs come from remote events and name where we connect.
            if domain == self._server_name or not is_valid_server_name(domain):
                continue
            if membership == "join":
                joined[domain] = min(ordering, joined.get(domain, ordering))
            elif membership in GONE:
                departed[domain] = max(ordering, departed.get(domain, ordering))
        hosts = RoomHosts(joined, {h: o for h, o in departed.items() if h not in joined})
        if epoch == self._epoch:
            self._cache.set(room_id, hosts)
        return hosts

    def invalidate(self, room_id: str) -> None:
        self._epoch += 1
        self._cache.pop(room_id)

    def clear(self) -> None:
        self._epoch += 1
        self._cache.clear()
