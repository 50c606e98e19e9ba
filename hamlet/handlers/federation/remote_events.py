"""Events of a room's DAG fetched from another server, checked and bounded.

What the gap filler (`missing_events.py`) and backfill (`backfill.py`) share:
asking a server (`/get_missing_events`, `/backfill`, `/event_auth`,
`/state_ids`, `/state`, `/event`), checking every event of an answer
(format, room, signatures; a wrong content hash keeps it redacted) and
storing auth and state events as outliers, each after its auth events.

Every fetch draws on a `FetchBudget`: a deadline (each request's timeout is
what is left of it, at most `REQUEST_TIMEOUT_MS`), a number of events and
of bytes taken from answers, and a number of state fetches. An answer that
is not what was asked, or a budget spent, is a `FetchError`, which callers
turn into a refused PDU or an unfilled gap, never a server error.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Final, Protocol, TypeGuard
from urllib.parse import quote

import orjson

from hamlet.core.canonical_json import JsonDict
from hamlet.core.crypto import check_content_hash
from hamlet.core.errors import EventFormatError
from hamlet.core.events import Event
from hamlet.core.power_levels import CREATE_KEY, StateKey
from hamlet.core.redaction import redact
from hamlet.core.room_versions import RoomVersion
from hamlet.handlers.common.errors import MatrixError
from hamlet.handlers.federation.keyring import KeyFetchTransport
from hamlet.handlers.rooms.federated_events import FederatedEventHandler
from hamlet.runtime.clock import Clock
from hamlet.storage.stores.events import EventsStore

logger = logging.getLogger(__name__)

FEDERATION_V1: Final = "/_matrix/federation/v1"
#: Longest one request may take (less when the budget has less left).
REQUEST_TIMEOUT_MS: Final = 10_000
#: Missing state events fetched one by one (`/event`) up to this many;
#: beyond it the whole state is asked for at once (`/state`).
MAX_SINGLE_FETCHES: Final = 20


class FetchError(Exception):
    """Another server did not give what was asked, or the budget is spent."""


class EventSignatures(Protocol):
    async def verify_event_signatures(
        self, pdu: Mapping[str, Any], room_version: RoomVersion
    ) -> None: ...


class FetchTransport(KeyFetchTransport, Protocol):
    """What fetching needs of the federation client: the keyring's requests,
    posts with a timeout too."""

    async def post_json(
        self, destination: str, path: str, body: JsonDict, *, timeout_ms: int | None = None
    ) -> JsonDict: ...


async def check_pdu(
    signatures: EventSignatures, pdu: Mapping[str, Any], version: RoomVersion
) -> Event:
    """The event of a received PDU whose format and signatures hold; kept
    redacted when its content hash fails (the signatures cover the redacted
    form). Raises `EventFormatError` or a `MatrixError` (bad signature)."""
    event = Event.from_pdu(pdu, version)
    await signatures.verify_event_signatures(pdu, version)
    if not check_content_hash(pdu):
        logger.info("%s fails its content hash: kept redacted", event.event_id)
        event = Event.from_pdu(redact(pdu, version), version)
    return event


@dataclass(slots=True)
class FetchBudget:
    """What one unit of work (an inbound transaction, one /messages
    backfill) may spend on fetching."""

    clock: Clock
    deadline: float
    events: int
    bytes: int
    state_fetches: int

    @classmethod
    def start(
        cls, clock: Clock, *, seconds: float, events: int, size: int, state_fetches: int
    ) -> FetchBudget:
        return cls(clock, clock.monotonic() + seconds, events, size, state_fetches)

    def timeout_ms(self) -> int:
        left = int((self.deadline - self.clock.monotonic()) * 1000)
        if left <= 0:
            raise FetchError("out of time")
        return min(left, REQUEST_TIMEOUT_MS)

    def take(self, pdus: Sequence[Any]) -> None:
        size = len(orjson.dumps(list(pdus)))
        if len(pdus) > self.events or size > self.bytes:
            self.events = self.bytes = 0
            raise FetchError("answer beyond what may be fetched")
        self.events -= len(pdus)
        self.bytes -= size

    def take_state_fetch(self) -> None:
        if self.state_fetches <= 0:
            raise FetchError("no state fetches left")
        self.state_fetches -= 1


class RemoteEvents:
    def __init__(
        self,
        *,
        transport: FetchTransport,
        signatures: EventSignatures,
        events: EventsStore,
        federated: FederatedEventHandler,
    ) -> None:
        self._transport = transport
        self._signatures = signatures
        self._events = events
        self._federated = federated

    async def get(
        self, budget: FetchBudget, server: str, path: str, args: Mapping[str, Any] | None = None
    ) -> JsonDict:
        timeout = budget.timeout_ms()
        return await _answer(
            server, self._transport.get_json(server, path, args, timeout_ms=timeout)
        )

    async def post(self, budget: FetchBudget, server: str, path: str, body: JsonDict) -> JsonDict:
        timeout = budget.timeout_ms()
        return await _answer(
            server, self._transport.post_json(server, path, body, timeout_ms=timeout)
        )

    async def checked(
        self, budget: FetchBudget, room_id: str, version: RoomVersion, pdus: Any, limit: int
    ) -> list[Event]:
        """The good events among at most `limit` PDUs of an answer; bad ones are skipped."""
        if not isinstance(pdus, list):
            raise FetchError("the answer holds no list of events")
        pdus = pdus[:limit]
        budget.take(pdus)
        out: dict[str, Event] = {}
        for pdu in pdus:
            if not isinstance(pdu, Mapping) or pdu.get("room_id") != room_id:
                logger.info("Skipping a fetched event of another room, or not an event")
                continue
            try:
                event = await check_pdu(self._signatures, pdu, version)
            except (EventFormatError, MatrixError) as e:
                logger.info("Skipping a fetched event that fails its checks: %s", e)
                continue
            out[event.event_id] = event
        return list(out.values())

    async def store_outliers(self, events: Sequence[Event]) -> None:
        """Store each event without state, after its auth events (by depth),
        in one write; when some auth events stay missing, one by one, leaving
        out those that lack theirs."""
        ordered = sorted(events, key=lambda e: (e.depth, e.event_id))
        try:
            await self._federated.persist_outliers(ordered)
            return
        except MatrixError as e:
            logger.info("Storing fetched events one by one: %s", e.message)
        for event in ordered:
            try:
                await self._federated.persist_event(event, outlier=True)
            except MatrixError as e:
                logger.info("Not storing fetched %s: %s", event.event_id, e.message)

    async def fetch_auth_chain(
        self, budget: FetchBudget, server: str, version: RoomVersion, event: Event
    ) -> None:
        """Store the auth chain of `event` as `server` has it (`/event_auth`)."""
        room, eid = quote(event.room_id, safe=""), quote(event.event_id, safe="")
        answer = await self.get(budget, server, f"{FEDERATION_V1}/event_auth/{room}/{eid}")
        chain = await self.checked(
            budget, event.room_id, version, answer.get("auth_chain"), budget.events
        )
        await self.store_outliers(await self._unknown(chain))

    async def fetch_state_before(
        self, budget: FetchBudget, server: str, version: RoomVersion, event: Event
    ) -> dict[StateKey, str]:
        """The state before `event` as `server` has it, every event of it
        (and of its auth chain) stored: `/state_ids`, then what we lack by
        `/event`, or `/state` when that is many."""
        budget.take_state_fetch()
        room = quote(event.room_id, safe="")
        answer = await self.get(
            budget, server, f"{FEDERATION_V1}/state_ids/{room}", {"event_id": event.event_id}
        )
        pdu_ids, chain_ids = answer.get("pdu_ids"), answer.get("auth_chain_ids")
        if not _str_list(pdu_ids) or not _str_list(chain_ids):
            raise FetchError("/state_ids answered no lists of event IDs")
        wanted = list(dict.fromkeys([*pdu_ids, *chain_ids]))
        if len(wanted) > budget.events:
            raise FetchError("the state is larger than may be fetched")
        known = await self._events.get_events(wanted, include_rejected=True)
        missing = [e for e in wanted if e not in known]
        if len(missing) > MAX_SINGLE_FETCHES:
            whole = await self.get(
                budget, server, f"{FEDERATION_V1}/state/{room}", {"event_id": event.event_id}
            )
            fetched: list[Event] = []
            for key in ("pdus", "auth_chain"):
                fetched += await self.checked(
                    budget, event.room_id, version, whole.get(key), budget.events
                )
            wanted_set = set(missing)
            await self.store_outliers([e for e in fetched if e.event_id in wanted_set])
        else:
            await self.store_outliers(
                [await self._fetch_one(budget, server, version, event.room_id, e) for e in missing]
            )
        stored = await self._events.get_events(pdu_ids, include_rejected=True)
        state: dict[StateKey, str] = {}
        for event_id in pdu_ids:
            found = stored.get(event_id)
            if found is None or found.event.state_key is None:
                raise FetchError(f"state event {event_id} could not be stored")
            state[(found.event.type, found.event.state_key)] = event_id
        if CREATE_KEY not in state:
            raise FetchError("the state has no create event")
        return state

    async def _fetch_one(
        self, budget: FetchBudget, server: str, version: RoomVersion, room_id: str, event_id: str
    ) -> Event:
        answer = await self.get(budget, server, f"{FEDERATION_V1}/event/{quote(event_id, safe='')}")
        events = await self.checked(budget, room_id, version, answer.get("pdus"), 1)
        if not events or events[0].event_id != event_id:
            raise FetchError(f"{server} did not answer event {event_id}")
        return events[0]

    async def _unknown(self, events: Sequence[Event]) -> list[Event]:
        known = await self._events.get_events([e.event_id for e in events], include_rejected=True)
        return [e for e in events if e.event_id not in known]


def _str_list(value: Any) -> TypeGuard[list[str]]:
    return isinstance(value, list) and all(isinstance(v, str) for v in value)


async def _answer(server: str, request: Awaitable[Any]) -> JsonDict:
    try:
        answer = await request
    except Exception as e:
        # Any failure of the other server (unreachable, an error status, a
        # timeout) only means this fetch did not work.
        raise FetchError(f"{server} failed: {e}") from None
    if not isinstance(answer, Mapping):
        raise FetchError(f"{server} answered a non-object")
    return dict(answer)
