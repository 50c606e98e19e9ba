"""What another server may read of a room's DAG: `/event`, `/state`,
`/state_ids`, `/event_auth`, `/backfill` and `/get_missing_events`.

Only a server with a joined member in the room (or any server, for a
world-readable room) may ask, and an event is served to it only where the
room's history visibility at that event lets the server see it: always for
`world_readable` and `shared`, and for `invited` / `joined` only when one of
its users was invited or joined at that point (as Synapse filters events
for servers). The state at an event is the state *before* it, resolved
over its prev_events as the DAG stores them.
"""

from __future__ import annotations

from collections.abc import Collection
from typing import Any, Final

from hamlet.core.canonical_json import JsonDict
from hamlet.core.ids import get_domain_from_id
from hamlet.handlers.common.errors import ForbiddenError, InvalidParamError, NotFoundError
from hamlet.handlers.federation.server_acl import ServerAcls
from hamlet.handlers.rooms.persistence import EventPersister
from hamlet.handlers.rooms.state import StateHandler
from hamlet.runtime.clock import Clock
from hamlet.storage.stores.events import EventsStore, StoredEvent
from hamlet.storage.stores.rooms import RoomsStore

HISTORY_KEY: Final = ("m.room.history_visibility", "")
MEMBER: Final = "m.room.member"
#: Events one answer may carry: a state and its auth chain can be large,
#: but not unbounded.
MAX_EVENTS: Final = 20_000
#: `/backfill` and `/get_missing_events` answer at most this many events
#: (Synapse caps both at 100), from at most this many starting points.
MAX_WALK: Final = 100
MAX_STARTS: Final = 20
#: Events one walk may look at, visible or not: a server that may see little
#: of a long history must not make us read all of it.
MAX_VISITED: Final = 1_000


class FederationRoomReads:
    def __init__(
        self,
        *,
        server_name: str,
        clock: Clock,
        events: EventsStore,
        rooms: RoomsStore,
        state: StateHandler,
        persister: EventPersister,
        acls: ServerAcls,
    ) -> None:
        self._server_name = server_name
        self._clock = clock
        self._events = events
        self._rooms = rooms
        self._state = state
        self._persister = persister
        self._acls = acls

    async def event(self, origin: str, event_id: str) -> JsonDict:
        stored = await self._visible_event(origin, None, event_id)
        return self._answer(pdus=[_pdu(stored)])

    async def state_ids(self, origin: str, room_id: str, event_id: str) -> JsonDict:
        ids = await self._state_before(origin, room_id, event_id)
        chain = await self._events.get_auth_chain_ids(ids)
        return {"pdu_ids": sorted(ids), "auth_chain_ids": sorted(chain)}

    async def state(self, origin: str, room_id: str, event_id: str) -> JsonDict:
        ids = await self._state_before(origin, room_id, event_id)
        chain = await self._events.get_auth_chain_ids(ids)
        return {
            "pdus": await self._pdus(ids),
            "auth_chain": await self._pdus(chain),
            "origin": self._server_name,
        }

    async def event_auth(self, origin: str, room_id: str, event_id: str) -> JsonDict:
        await self._visible_event(origin, room_id, event_id)
        chain = await self._events.get_auth_chain_ids([event_id])
        return {"auth_chain": await self._pdus(chain)}

    async def backfill(self, origin: str, room_id: str, starts: list[str], limit: int) -> JsonDict:
        """Up to `limit` events walking back from `starts` (themselves included)."""
        walked = await self._walk(origin, room_id, starts, set(), limit, include_starts=True)
        return self._answer(pdus=[_pdu(s) for s in walked])

    async def missing_events(
        self,
        origin: str,
        room_id: str,
        earliest: list[str],
        latest: list[str],
        limit: int,
        min_depth: int,
    ) -> JsonDict:
        """Events between `earliest` and `latest` (neither included), newest
        first walking back, oldest first in the answer."""
        walked = await self._walk(
            origin, room_id, latest, set(earliest), limit, include_starts=False
        )
        kept = [s for s in walked if s.event.depth >= min_depth]
        return {"events": [_pdu(s) for s in reversed(kept)]}

    async def _walk(
        self,
        origin: str,
        room_id: str,
        starts: list[str],
        stop: set[str],
        limit: int,
        *,
        include_starts: bool,
    ) -> list[StoredEvent]:
        """Breadth-first along prev_events, newest depth first, skipping what
        `origin` may not see; at most `limit` (capped) events."""
        if not starts or len(starts) > MAX_STARTS or len(stop) > MAX_STARTS:
            raise InvalidParamError(f"Between 1 and {MAX_STARTS} events to start from")
        await self._check_in_room(origin, room_id)
        limit = max(0, min(limit, MAX_WALK))
        seen = set(starts) | stop
        frontier = list(starts) if include_starts else await self._prevs(starts, seen)
        out: list[StoredEvent] = []
        visited = 0
        while frontier and len(out) < limit and visited < MAX_VISITED:
            frontier = frontier[: MAX_VISITED - visited]
            visited += len(frontier)
            found = await self._events.get_events(frontier)
            batch = sorted(
                (s for s in found.values() if s.event.room_id == room_id),
                key=lambda s: (s.event.depth, s.event.event_id),
                reverse=True,
            )
            for stored in batch:
                if len(out) < limit and await self._server_may_see(origin, stored):
                    out.append(stored)
            frontier = await self._prevs([s.event.event_id for s in batch], seen)
        return out

    async def _prevs(self, event_ids: list[str], seen: set[str]) -> list[str]:
        prevs = await self._events.get_prev_events(event_ids)
        fresh = list(dict.fromkeys(p for ids in prevs.values() for p in ids if p not in seen))
        seen.update(fresh)
        return fresh

    # --- checks ---

    async def _visible_event(self, origin: str, room_id: str | None, event_id: str) -> StoredEvent:
        stored = await self._events.get_event(event_id)
        if stored is None or (room_id is not None and stored.event.room_id != room_id):
            raise NotFoundError("Event not found")
        if room_id is None:
            # `/event/{eventId}` names no room for the route to check.
            await self._acls.check(origin, stored.event.room_id)
        await self._check_in_room(origin, stored.event.room_id)
        if not await self._server_may_see(origin, stored):
            raise ForbiddenError("Host not allowed to see this event")
        return stored

    async def _check_in_room(self, origin: str, room_id: str) -> None:
        if origin in await self._rooms.get_joined_hosts(room_id):
            return
        current = await self._state.get_current_state(room_id, {HISTORY_KEY})
        history = current.get(HISTORY_KEY)
        if history is None or history.content.get("history_visibility") != "world_readable":
            raise ForbiddenError("Host not in room.")

    async def _server_may_see(self, origin: str, stored: StoredEvent) -> bool:
        state = await self._state.get_state_after(stored)
        history = state.get(HISTORY_KEY)
        visibility = history.content.get("history_visibility") if history else "shared"
        if visibility in ("world_readable", "shared"):
            return True
        allowed = ("invite", "join") if visibility == "invited" else ("join",)
        return any(
            key[0] == MEMBER
            and get_domain_from_id(key[1]) == origin
            and event.content.get("membership") in allowed
            for key, event in state.items()
        )

    async def _state_before(self, origin: str, room_id: str, event_id: str) -> list[str]:
        stored = await self._visible_event(origin, room_id, event_id)
        return list((await self._persister.state_ids_before(stored)).values())

    # --- answers ---

    async def _pdus(self, event_ids: Collection[str]) -> list[JsonDict]:
        return await pdus_of(self._events, event_ids)

    def _answer(self, **fields: Any) -> JsonDict:
        return {"origin": self._server_name, "origin_server_ts": self._clock.time_msec(), **fields}


async def pdus_of(events: EventsStore, event_ids: Collection[str]) -> list[JsonDict]:
    """The stored, not rejected events among `event_ids` in PDU form, for an answer."""
    if len(event_ids) > MAX_EVENTS:
        raise ForbiddenError("The answer would be too large")
    found = await events.get_events(list(event_ids))
    return [_pdu(found[e]) for e in sorted(found)]


def _pdu(stored: StoredEvent) -> JsonDict:
    return stored.event.get_pdu_json(include_unsigned=False)
