"""Which remote servers are in a room: the destinations of its events and EDUs.

Read from current membership (the servers of joined members, ours left
out), each with the stream ordering of its earliest current join, so an
event is sent only to servers that were in the room when it was made.
Cached per room, so a local-only room costs a dict lookup per event; the
sender drops a room's entry whenever a membership event lands in it.
`JoinedHosts` is the seam: the room DAG's own host tracking can replace
`MembershipHosts` without the sender changing.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Protocol

from hamlet.core.ids import is_valid_server_name
from hamlet.runtime.lru import LruCache

ROOMS_CACHED = 10_000


def server_of(user_id: str) -> str:
    """The server part of a user ID ('' if it has none)."""
    return user_id.partition(":")[2]


class JoinedUsers(Protocol):
    async def joined_members(self, room_id: str) -> list[tuple[str, int]]:
        """(user ID, stream ordering of their join) of the room's joined members."""
        ...


class JoinedHosts(Protocol):
    def cached(self, room_id: str) -> Mapping[str, int] | None:
        """The room's remote servers if known without I/O, else None."""
        ...

    async def remote_hosts(self, room_id: str) -> Mapping[str, int]:
        """Each remote server in the room, with the stream ordering since which it is."""
        ...

    def invalidate(self, room_id: str) -> None: ...

    def clear(self) -> None: ...


class MembershipHosts:
    def __init__(self, server_name: str, members: JoinedUsers) -> None:
        self._server_name = server_name
        self._members = members
        self._cache: LruCache[str, Mapping[str, int]] = LruCache(ROOMS_CACHED)
        # Bumped by every invalidation: a lookup that raced one is not cached.
        self._epoch = 0

    def cached(self, room_id: str) -> Mapping[str, int] | None:
        return self._cache.get(room_id)

    async def remote_hosts(self, room_id: str) -> Mapping[str, int]:
        cached = self._cache.get(room_id)
        if cached is not None:
            return cached
        epoch = self._epoch
        hosts: dict[str, int] = {}
        for user_id, since in await self._members.joined_members(room_id):
            domain = server_of(user_id)
            # A member ID from a remote event names where we connect: only real server names.
            if domain != self._server_name and is_valid_server_name(domain):
                hosts[domain] = min(since, hosts.get(domain, since))
        if epoch == self._epoch:
            self._cache.set(room_id, hosts)
        return hosts

    def invalidate(self, room_id: str) -> None:
        self._epoch += 1
        self._cache.pop(room_id)

    def clear(self) -> None:
        self._epoch += 1
        self._cache.clear()

    def __len__(self) -> int:
        return len(self._cache)
