"""Joining rooms across servers: `/make_join` + `/send_join` (v2).

Resident side (a room of ours): `make_join` answers a join event template
built on the room's forward extremities and current state, refused (403)
when the auth rules would refuse the join; `send_join` takes the joining
server's signed event, checks it is that server's user's own join, hands it
to the room DAG and answers the state before it with its auth chain.

Restricted rooms (`restricted`, `knock_restricted`): the joining server
cannot see the allow list's rooms, so we vouch. `make_join` names a local
member who may invite in `join_authorised_via_users_server` once the user
is in an allowed room we know (403 if not; 400 M_UNABLE_TO_AUTHORISE_JOIN
when we are not in every allowed room and so cannot tell; 400
M_UNABLE_TO_GRANT_JOIN when no local member may invite), and `send_join`
checks again, adds our signature and answers the signed event as `event`.

Joining side (`join`): ask each candidate server in turn for a template,
build and sign the event as our own (keeping the template's authorising
user), send it, check every returned event's signatures, then store the
auth chain and state as outliers (oldest first) and the join on top of
that state, as the resident server co-signed it for a restricted room.
From then on the room is ours too: our events go out through the
federation sender, theirs come in over `/send`.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Collection, Mapping, Sequence
from typing import Any, Final, Protocol

from hamlet.core.canonical_json import JsonDict
from hamlet.core.event_signatures import AUTHORISING_USER
from hamlet.core.events import Event
from hamlet.core.ids import RoomAlias, RoomID, get_domain_from_id
from hamlet.core.room_versions import RoomVersion, get_room_version
from hamlet.handlers.common.errors import (
    ForbiddenError,
    InvalidParamError,
    MatrixError,
    NotFoundError,
)
from hamlet.handlers.federation.membership_events import (
    FEDERATION_V2,
    EventSignatures,
    JoinTransport,
    MembershipEvents,
)
from hamlet.handlers.federation.room_reads import pdus_of
from hamlet.handlers.spaces.hierarchy import RestrictedJoins
from hamlet.storage.stores.events import EventsStore

__all__ = ["EventSignatures", "FederationJoins", "JoinTransport"]

logger = logging.getLogger(__name__)

#: State plus auth chain a `send_join` answer may bring: larger rooms exist,
#: but a hostile server must not make us store millions of events.
MAX_JOIN_EVENTS: Final = 50_000
#: A room ID from room version 12: `!` and the create event's hash, no server.
HASH_ROOM_ID: Final = re.compile(r"![A-Za-z0-9_\-]{1,254}")
#: Servers tried for one join.
MAX_CANDIDATES: Final = 5


class AliasQueries(Protocol):
    async def room_alias(self, alias: str, domain: str) -> JsonDict: ...


def candidate_servers(own: str, servers: Sequence[str]) -> list[str]:
    """The servers to try, in order, without us: 404 when there are none."""
    candidates = [s for s in dict.fromkeys(servers) if s != own]
    if not candidates:
        raise NotFoundError("No known servers to reach the room through")
    return candidates[:MAX_CANDIDATES]


class FederationJoins:
    def __init__(
        self,
        *,
        membership_events: MembershipEvents,
        events: EventsStore,
        queries: AliasQueries,
    ) -> None:
        self.membership_events = membership_events
        self._server_name = membership_events.server_name
        self._events = events
        self._rooms = membership_events.rooms
        self._queries = queries
        self._restricted = RestrictedJoins(
            server_name=self._server_name, rooms=self._rooms, state=membership_events.state
        )

    # --- resident side ---

    async def make_join(
        self, origin: str, room_id: str, user_id: str, versions: Collection[str]
    ) -> JsonDict:
        room = await self.membership_events.room(room_id, versions)
        content: dict[str, Any] = {"membership": "join"}
        authoriser = await self._authoriser(room_id, get_room_version(room.room_version), user_id)
        if authoriser is not None:
            content[AUTHORISING_USER] = authoriser
        template = await self.membership_events.template(origin, room, user_id, content)
        return self.membership_events.template_answer(room, template)

    async def _authoriser(self, room_id: str, version: RoomVersion, user_id: str) -> str | None:
        """Our member who vouches for `user_id`'s join, None when the room is
        not restricted or the user needs nobody (already in or invited)."""
        current = await self._rooms.get_membership(room_id, user_id)
        if current is not None and current.membership in ("join", "invite"):
            return None
        return await self._restricted.authoriser_for_join(room_id, version, user_id)

    async def send_join(self, origin: str, room_id: str, event_id: str, pdu: Any) -> JsonDict:
        event = await self.membership_events.received(origin, room_id, event_id, pdu, "join")
        authoriser = event.content.get(AUTHORISING_USER)
        if authoriser is not None:
            if not isinstance(authoriser, str) or not authoriser.endswith(":" + self._server_name):
                raise InvalidParamError("Cannot authorise a join on behalf of another server")
            # The allow list may have changed, or the user left the allowed
            # room, since make_join; the auth rules check the authoriser.
            await self._authoriser(room_id, event.room_version, event.sender)
            event = self.membership_events.co_signed(event)
        stored = await self.membership_events.persist_received(event)
        state_ids = list((await self.membership_events.persister.state_ids_before(stored)).values())
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
        """For a client's join or knock: the room and the servers to reach it
        through when it is another server's room no local user is in; None
        when it is ours or one of our users is in it (a local join then)."""
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
        if HASH_ROOM_ID.fullmatch(target):
            # From v12 a room ID names no server: only `via` can.
            if await self._resident(target):
                return None
            return target, list(via)
        if not RoomID.is_valid(target) or get_domain_from_id(target) == self._server_name:
            return None
        if await self._resident(target):
            return None
        # Before v12 a room ID names the server that made the room.
        return target, [*via, get_domain_from_id(target)]

    async def _resident(self, room_id: str) -> bool:
        """A local user is in the room. When none is (never was, or all
        left), what we hold of it is stale and joining goes through its
        servers, whose state replaces ours."""
        return self._server_name in await self._rooms.get_joined_hosts(room_id)

    async def join(self, user_id: str, room_id: str, servers: Sequence[str]) -> str:
        """Join `user_id` to a room of other servers; returns the join's event ID."""
        last: MatrixError | None = None
        for server in candidate_servers(self._server_name, servers):
            try:
                return await self._join_via(server, user_id, room_id)
            except MatrixError as e:
                logger.info("Joining %s through %s failed: %s", room_id, server, e.message)
                last = e
        assert last is not None
        raise last

    async def _join_via(self, server: str, user_id: str, room_id: str) -> str:
        version, template = await self.membership_events.ask_template(
            server, "make_join", room_id, user_id
        )
        content: dict[str, Any] = {"membership": "join"}
        template_content = template.get("content")
        if version.restricted_join_rule and isinstance(template_content, Mapping):
            authoriser = template_content.get(AUTHORISING_USER)
            if isinstance(authoriser, str):
                content[AUTHORISING_USER] = authoriser
        event = self.membership_events.build(version, user_id, room_id, template, content)
        answer = await self.membership_events.send(
            server, f"{FEDERATION_V2}/send_join/{room_id}/{event.event_id}", event
        )
        state, chain = answer.get("state"), answer.get("auth_chain")
        if not isinstance(state, list) or not isinstance(chain, list):
            raise MatrixError(502, "M_UNKNOWN", f"{server} answered send_join with nonsense")
        if len(state) + len(chain) > MAX_JOIN_EVENTS:
            raise MatrixError(502, "M_UNKNOWN", f"{server} sent too large a room state")
        if AUTHORISING_USER in content:
            # Only the authorising server's signature makes the join valid;
            # signatures leave the event ID as it was.
            signed = await self.membership_events.checked(version, answer.get("event"), "send_join")
            if signed.event_id != event.event_id:
                raise MatrixError(502, "M_UNKNOWN", f"{server} answered another join event")
            event = signed
        state_events = [
            await self.membership_events.checked(version, pdu, "send_join") for pdu in state
        ]
        chain_events = [
            await self.membership_events.checked(version, pdu, "send_join") for pdu in chain
        ]
        await self._store_outliers(state_events, chain_events)
        ids = {(e.type, e.state_key or ""): e.event_id for e in state_events}
        stored = await self.membership_events.federated.persist_event(
            event, state=ids, own_join=True
        )
        if not stored.in_timeline:
            raise ForbiddenError(f"Our own join was refused: {stored.rejected_reason}")
        return event.event_id

    async def _store_outliers(self, state: list[Event], chain: list[Event]) -> None:
        """Every event of the state and auth chain, each after its auth events."""
        pending = {e.event_id: e for e in [*chain, *state]}
        await self.membership_events.federated.persist_outliers(
            sorted(pending.values(), key=lambda e: (e.depth, e.event_id))
        )
