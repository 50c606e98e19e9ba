"""Joining rooms across servers: `/make_join` + `/send_join` (v2).

Resident side (a room of ours): `make_join` answers a join event template
built on the room's forward extremities and current state, refused (403)
when the auth rules would refuse the join; `send_join` takes the joining
server's signed event, checks it is that server's user's own join, hands it
to the room DAG and answers the state before it with its auth chain.

Joining side (`join`): ask each candidate server in turn for a template,
build and sign the event as our own, send it, check every returned event's
signatures, then store the auth chain and state as outliers (oldest first)
and the join on top of that state. From then on the room is ours too: our
events go out through the federation sender, theirs come in over `/send`.
"""

from __future__ import annotations

import logging
from collections.abc import Collection, Mapping, Sequence
from typing import Any, Final, Protocol

from hamlet.core.auth_rules import auth_check, auth_types_for_event
from hamlet.core.canonical_json import JsonDict
from hamlet.core.crypto import SigningKey, check_content_hash
from hamlet.core.errors import CoreError, EventFormatError
from hamlet.core.events import Event, build_event
from hamlet.core.ids import RoomAlias, RoomID, get_domain_from_id
from hamlet.core.room_versions import SUPPORTED_ROOM_VERSIONS, RoomVersion, get_room_version
from hamlet.handlers.common.errors import BadJsonError, ForbiddenError, MatrixError, NotFoundError
from hamlet.handlers.federation.keyring import KeyFetchTransport
from hamlet.handlers.federation.room_reads import pdus_of
from hamlet.handlers.rooms.federated_events import FederatedEventHandler
from hamlet.handlers.rooms.persistence import EventPersister
from hamlet.handlers.rooms.state import StateHandler
from hamlet.runtime.clock import Clock
from hamlet.storage.stores.events import EventsStore
from hamlet.storage.stores.rooms import RoomsStore

logger = logging.getLogger(__name__)

FEDERATION_V1: Final = "/_matrix/federation/v1"
FEDERATION_V2: Final = "/_matrix/federation/v2"
MEMBER: Final = "m.room.member"
#: State plus auth chain a `send_join` answer may bring: larger rooms exist,
#: but a hostile server must not make us store millions of events.
MAX_JOIN_EVENTS: Final = 50_000
#: Servers tried for one join.
MAX_CANDIDATES: Final = 5


class JoinTransport(KeyFetchTransport, Protocol):
    """What joining needs of the federation client: the keyring's requests
    and `put_json`."""

    async def put_json(
        self,
        destination: str,
        path: str,
        body: JsonDict,
        *,
        timeout_ms: int | None = None,
    ) -> JsonDict: ...


class AliasQueries(Protocol):
    async def room_alias(self, alias: str, domain: str) -> JsonDict: ...


class EventSignatures(Protocol):
    async def verify_event_signatures(
        self, pdu: Mapping[str, Any], room_version: RoomVersion
    ) -> None: ...


class FederationJoins:
    def __init__(
        self,
        *,
        server_name: str,
        signing_key: SigningKey,
        clock: Clock,
        events: EventsStore,
        rooms: RoomsStore,
        state: StateHandler,
        persister: EventPersister,
        federated: FederatedEventHandler,
        signatures: EventSignatures,
        queries: AliasQueries,
        transport: JoinTransport,
    ) -> None:
        self._queries = queries
        self._server_name = server_name
        self._signing_key = signing_key
        self._clock = clock
        self._events = events
        self._rooms = rooms
        self._state = state
        self._persister = persister
        self._federated = federated
        self._signatures = signatures
        self._transport = transport

    # --- resident side ---

    async def make_join(
        self, origin: str, room_id: str, user_id: str, versions: Collection[str]
    ) -> JsonDict:
        if get_domain_from_id(user_id) != origin:
            raise ForbiddenError("Cannot make a join for another server's user")
        room = await self._rooms.get_room(room_id)
        if room is None:
            raise NotFoundError("Unknown room")
        if room.room_version not in versions:
            raise MatrixError(
                400,
                "M_INCOMPATIBLE_ROOM_VERSION",
                "Your homeserver does not support the features required to join this room",
                room_version=room.room_version,
            )
        version = get_room_version(room.room_version)
        extremities = await self._persister.extremities(room_id)
        current = await self._state.get_current_state(room_id)
        content = {"membership": "join"}
        wanted = auth_types_for_event(version, MEMBER, user_id, user_id, content)
        auth_state = {k: current[k] for k in wanted if k in current}
        template = build_event(
            version,
            room_id=room_id,
            sender=user_id,
            type=MEMBER,
            content=content,
            state_key=user_id,
            prev_events=[x.event_id for x in extremities],
            auth_events=sorted(e.event_id for e in auth_state.values()),
            depth=max((x.depth for x in extremities), default=0) + 1,
            origin_server_ts=self._clock.time_msec(),
            server_name=origin,
            signing_key=self._signing_key,
        )
        try:
            auth_check(version, template, auth_state)
        except CoreError as e:
            raise ForbiddenError(f"You are not allowed to join this room: {e}") from None
        pdu = template.get_pdu_json(include_unsigned=False)
        for key in ("hashes", "signatures"):
            pdu.pop(key, None)
        return {"room_version": room.room_version, "event": pdu}

    async def send_join(self, origin: str, room_id: str, event_id: str, pdu: Any) -> JsonDict:
        room = await self._rooms.get_room(room_id)
        if room is None:
            raise NotFoundError("Unknown room")
        version = get_room_version(room.room_version)
        if not isinstance(pdu, Mapping):
            raise BadJsonError("The join event must be an object")
        try:
            event = Event.from_pdu(pdu, version)
        except EventFormatError as e:
            raise BadJsonError(f"Malformed join event: {e}") from None
        if event.event_id != event_id or event.room_id != room_id:
            raise BadJsonError("The event is not the one the path names")
        if (
            event.type != MEMBER
            or event.state_key != event.sender
            or event.content.get("membership") != "join"
            or get_domain_from_id(event.sender) != origin
        ):
            raise ForbiddenError("Not a join of the sending server's own user")
        await self._signatures.verify_event_signatures(pdu, version)
        if not check_content_hash(pdu):
            raise ForbiddenError("The join event's content hash does not match")
        stored = await self._federated.persist_event(event)
        if not stored.in_timeline:
            raise ForbiddenError(f"The join was refused: {stored.rejected_reason or 'soft-failed'}")
        state_ids = list((await self._persister.state_ids_before(stored)).values())
        chain = await self._events.get_auth_chain_ids([*state_ids, event.event_id])
        return {
            "origin": self._server_name,
            "state": await pdus_of(self._events, state_ids),
            "auth_chain": await pdus_of(self._events, chain),
            "event": event.get_pdu_json(include_unsigned=False),
            "members_omitted": False,
        }

    # --- joining side ---

    async def locate(self, target: str, via: Sequence[str]) -> tuple[str, list[str]] | None:
        """For a client's join: the room and the servers to join through when
        it is another server's room we are not in; None when it is ours."""
        # Malformed targets and our own rooms and aliases take the local
        # path, which answers them (400, 404) as before federation.
        if target.startswith("#"):
            if not RoomAlias.is_valid(target):
                return None
            domain = RoomAlias.from_string(target).domain
            if domain == self._server_name:
                return None
            found = await self._queries.room_alias(target, domain)
            return str(found["room_id"]), [*found["servers"], *via]
        if not RoomID.is_valid(target) or get_domain_from_id(target) == self._server_name:
            return None
        if await self._rooms.get_room(target) is not None:
            return None
        # Before v12 a room ID names the server that made the room.
        return target, [*via, get_domain_from_id(target)]

    async def join(self, user_id: str, room_id: str, servers: Sequence[str]) -> str:
        """Join `user_id` to a room of other servers; returns the join's event ID."""
        candidates = [s for s in dict.fromkeys(servers) if s != self._server_name]
        if not candidates:
            raise NotFoundError("No known servers to join the room through")
        last: MatrixError | None = None
        for server in candidates[:MAX_CANDIDATES]:
            try:
                return await self._join_via(server, user_id, room_id)
            except MatrixError as e:
                logger.info("Joining %s through %s failed: %s", room_id, server, e.message)
                last = e
        assert last is not None
        raise last

    async def _join_via(self, server: str, user_id: str, room_id: str) -> str:
        versions = sorted(SUPPORTED_ROOM_VERSIONS)
        answer = await self._remote(
            self._transport.get_json(
                server, f"{FEDERATION_V1}/make_join/{room_id}/{user_id}", {"ver": versions}
            )
        )
        version_id, template = answer.get("room_version", "1"), answer.get("event")
        if version_id not in SUPPORTED_ROOM_VERSIONS or not isinstance(template, Mapping):
            raise MatrixError(502, "M_UNKNOWN", f"{server} answered make_join with nonsense")
        version = get_room_version(version_id)
        event = self._build_join(version, user_id, room_id, template)
        answer = await self._remote(
            self._transport.put_json(
                server,
                f"{FEDERATION_V2}/send_join/{room_id}/{event.event_id}",
                event.get_pdu_json(include_unsigned=False),
            )
        )
        state, chain = answer.get("state"), answer.get("auth_chain")
        if not isinstance(state, list) or not isinstance(chain, list):
            raise MatrixError(502, "M_UNKNOWN", f"{server} answered send_join with nonsense")
        if len(state) + len(chain) > MAX_JOIN_EVENTS:
            raise MatrixError(502, "M_UNKNOWN", f"{server} sent too large a room state")
        state_events = await self._checked(version, state)
        chain_events = await self._checked(version, chain)
        await self._store_outliers(state_events, chain_events)
        ids = {(e.type, e.state_key or ""): e.event_id for e in state_events}
        stored = await self._federated.persist_event(event, state=ids)
        if not stored.in_timeline:
            raise ForbiddenError(f"Our own join was refused: {stored.rejected_reason}")
        return event.event_id

    def _build_join(
        self, version: RoomVersion, user_id: str, room_id: str, template: Mapping[str, Any]
    ) -> Event:
        prev, auth, depth = (
            template.get("prev_events"),
            template.get("auth_events"),
            template.get("depth"),
        )
        if (
            template.get("room_id") != room_id
            or template.get("sender") != user_id
            or not isinstance(prev, list)
            or not isinstance(auth, list)
            or not isinstance(depth, int)
        ):
            raise MatrixError(502, "M_UNKNOWN", "The join template does not fit the request")
        try:
            return build_event(
                version,
                room_id=room_id,
                sender=user_id,
                type=MEMBER,
                content={"membership": "join"},
                state_key=user_id,
                prev_events=[p if isinstance(p, str) else p[0] for p in prev],
                auth_events=[a if isinstance(a, str) else a[0] for a in auth],
                depth=depth,
                origin_server_ts=self._clock.time_msec(),
                server_name=self._server_name,
                signing_key=self._signing_key,
            )
        except (EventFormatError, IndexError, TypeError) as e:
            raise MatrixError(502, "M_UNKNOWN", f"The join template is malformed: {e}") from None

    async def _checked(self, version: RoomVersion, pdus: list[Any]) -> list[Event]:
        """Events of an answer with valid format and signatures; a bad one
        fails the join through this server (another may do better)."""
        out: list[Event] = []
        for pdu in pdus:
            if not isinstance(pdu, Mapping):
                raise MatrixError(502, "M_UNKNOWN", "send_join answered a non-event")
            try:
                event = Event.from_pdu(pdu, version)
            except EventFormatError as e:
                raise MatrixError(
                    502, "M_UNKNOWN", f"send_join answered a bad event: {e}"
                ) from None
            await self._signatures.verify_event_signatures(pdu, version)
            out.append(event)
        return out

    async def _store_outliers(self, state: list[Event], chain: list[Event]) -> None:
        """Every event of the state and auth chain, each after its auth events."""
        pending = {e.event_id: e for e in [*chain, *state]}
        await self._federated.persist_outliers(
            sorted(pending.values(), key=lambda e: (e.depth, e.event_id))
        )

    @staticmethod
    async def _remote(request: Any) -> JsonDict:
        try:
            answer: JsonDict = await request
        except MatrixError:
            raise
        except Exception as e:
            raise MatrixError(502, "M_UNKNOWN", f"The remote server failed: {e}") from None
        if not isinstance(answer, Mapping):
            raise MatrixError(502, "M_UNKNOWN", "The remote server answered a non-object")
        return answer
