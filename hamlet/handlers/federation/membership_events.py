"""What joins, leaves and knocks across servers share: the `make_*` / `send_*` handshake.

Resident side: a template for another server's user built on the room's
forward extremities and current state (refused when the auth rules would
refuse it), and the received signed event checked to be that server's own
user's membership before it goes to the room DAG, then relayed to the
room's other servers (the sending server knows only us). We answer only
while a local user is in the room: our copy of a room we left is stale.

Other side: ask a server for a template, build and sign our own event
from it, and send it back; a remote server's failure becomes a Matrix
error (its own 4xx, 502 otherwise).
"""

from __future__ import annotations

from collections.abc import Awaitable, Collection, Mapping
from typing import Any, Final, Protocol

from hamlet.core.auth_rules import auth_check, auth_types_for_event
from hamlet.core.canonical_json import JsonDict
from hamlet.core.crypto import SigningKey, check_content_hash, sign_json
from hamlet.core.errors import CoreError, EventFormatError
from hamlet.core.events import Event, build_event
from hamlet.core.ids import get_domain_from_id
from hamlet.core.power_levels import CREATE_KEY
from hamlet.core.redaction import redact
from hamlet.core.room_versions import SUPPORTED_ROOM_VERSIONS, RoomVersion, get_room_version
from hamlet.handlers.common.errors import BadJsonError, ForbiddenError, MatrixError, NotFoundError
from hamlet.handlers.federation.keyring import KeyFetchTransport
from hamlet.handlers.rooms.federated_events import FederatedEventHandler
from hamlet.handlers.rooms.persistence import EventPersister
from hamlet.handlers.rooms.state import StateHandler
from hamlet.runtime.clock import Clock
from hamlet.storage.stores.events import StoredEvent
from hamlet.storage.stores.rooms import RoomRow, RoomsStore

FEDERATION_V1: Final = "/_matrix/federation/v1"
FEDERATION_V2: Final = "/_matrix/federation/v2"
MEMBER: Final = "m.room.member"
StateKey = tuple[str, str]


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


class EventSignatures(Protocol):
    async def verify_event_signatures(
        self, pdu: Mapping[str, Any], room_version: RoomVersion
    ) -> None: ...


def incompatible_version(room_version: str) -> MatrixError:
    return MatrixError(
        400,
        "M_INCOMPATIBLE_ROOM_VERSION",
        "Your homeserver does not support the features required to join this room",
        room_version=room_version,
    )


class Relay(Protocol):
    async def relay(self, stored: StoredEvent, origin: str) -> None:
        """Send another server's event to the room's other servers."""
        ...


class MembershipEvents:
    def __init__(
        self,
        *,
        server_name: str,
        signing_key: SigningKey,
        clock: Clock,
        rooms: RoomsStore,
        state: StateHandler,
        persister: EventPersister,
        federated: FederatedEventHandler,
        signatures: EventSignatures,
        transport: JoinTransport,
    ) -> None:
        self.server_name = server_name
        self.signing_key = signing_key
        self.clock = clock
        self.rooms = rooms
        self.state = state
        self.persister = persister
        self.federated = federated
        self.signatures = signatures
        self.transport = transport
        self._relay: Relay | None = None

    def attach_relay(self, relay: Relay) -> None:
        """The federation sender (built after us) relays accepted events."""
        self._relay = relay

    # --- resident side ---

    async def room(self, room_id: str, versions: Collection[str] | None = None) -> RoomRow:
        """Our room `room_id`: 404 when unknown, 403 when no local user is
        in it (as Synapse), 400 when `versions` lacks its version."""
        room = await self.rooms.get_room(room_id)
        if room is None:
            raise NotFoundError("Unknown room")
        if self.server_name not in await self.rooms.get_joined_hosts(room_id):
            raise ForbiddenError("Host not in room")
        if versions is not None and room.room_version not in versions:
            raise incompatible_version(room.room_version)
        return room

    async def template(
        self, origin: str, room: RoomRow, user_id: str, content: Mapping[str, Any]
    ) -> Event:
        """`user_id`'s membership event built on the room's current state and
        extremities, signed by us for the auth check only: 403 when the auth
        rules refuse it."""
        if get_domain_from_id(user_id) != origin:
            raise ForbiddenError("Cannot make a membership event for another server's user")
        version = get_room_version(room.room_version)
        extremities = await self.persister.extremities(room.room_id)
        current = await self.state.get_current_state(room.room_id)
        wanted = auth_types_for_event(version, MEMBER, user_id, user_id, content)
        template = build_event(
            version,
            room_id=room.room_id,
            sender=user_id,
            type=MEMBER,
            content=content,
            state_key=user_id,
            prev_events=[x.event_id for x in extremities],
            auth_events=sorted(current[k].event_id for k in wanted if k in current),
            depth=max((x.depth for x in extremities), default=0) + 1,
            origin_server_ts=self.clock.time_msec(),
            server_name=origin,
            signing_key=self.signing_key,
        )
        # From v12 the create event is the room ID, not an auth event, but
        # the rules still read it.
        auth_state = {k: current[k] for k in {*wanted, CREATE_KEY} if k in current}
        try:
            auth_check(version, self.co_signed(template), auth_state)
        except CoreError as e:
            membership = content.get("membership")
            raise ForbiddenError(f"You are not allowed to {membership} this room: {e}") from None
        return template

    @staticmethod
    def template_answer(room: RoomRow, template: Event) -> JsonDict:
        pdu = template.get_pdu_json(include_unsigned=False)
        for key in ("hashes", "signatures"):
            pdu.pop(key, None)
        return {"room_version": room.room_version, "event": pdu}

    def co_signed(self, event: Event) -> Event:
        """`event` with our signature added (the event ID does not change)."""
        pdu = event.get_pdu_json(include_unsigned=False)
        version = event.room_version
        signed = sign_json(redact(pdu, version), self.server_name, self.signing_key)
        return Event.from_pdu({**pdu, "signatures": signed["signatures"]}, version)

    async def received(
        self, origin: str, room_id: str, event_id: str, pdu: Any, membership: str
    ) -> Event:
        """The sending server's own user's `membership` event, well formed;
        its signatures are checked by `persist_received`."""
        room = await self.room(room_id)
        version = get_room_version(room.room_version)
        if not isinstance(pdu, Mapping):
            raise BadJsonError(f"The {membership} event must be an object")
        try:
            event = Event.from_pdu(pdu, version)
        except EventFormatError as e:
            raise BadJsonError(f"Malformed {membership} event: {e}") from None
        if event.event_id != event_id or event.room_id != room_id:
            raise BadJsonError("The event is not the one the path names")
        if (
            event.type != MEMBER
            or event.state_key != event.sender
            or event.content.get("membership") != membership
            or get_domain_from_id(event.sender) != origin
        ):
            raise ForbiddenError(f"Not a {membership} of the sending server's own user")
        return event

    async def persist_received(self, event: Event) -> StoredEvent:
        """Check signatures and hash, then hand the event to the room DAG:
        403 unless it lands in the timeline."""
        pdu = event.get_pdu_json(include_unsigned=False)
        await self.signatures.verify_event_signatures(pdu, event.room_version)
        if not check_content_hash(pdu):
            raise ForbiddenError("The event's content hash does not match")
        stored = await self.federated.persist_event(event)
        if not stored.in_timeline:
            raise ForbiddenError(
                f"The event was refused: {stored.rejected_reason or 'soft-failed'}"
            )
        if self._relay is not None:
            await self._relay.relay(stored, get_domain_from_id(event.sender))
        return stored

    # --- the other side ---

    async def ask_template(
        self, server: str, kind: str, room_id: str, user_id: str
    ) -> tuple[RoomVersion, Mapping[str, Any]]:
        """`kind` ("make_join", "make_knock"): the room's version and the template."""
        answer = await remote(
            server,
            self.transport.get_json(
                server,
                f"{FEDERATION_V1}/{kind}/{room_id}/{user_id}",
                {"ver": sorted(SUPPORTED_ROOM_VERSIONS)},
            ),
        )
        version_id, template = answer.get("room_version", "1"), answer.get("event")
        if version_id not in SUPPORTED_ROOM_VERSIONS or not isinstance(template, Mapping):
            raise MatrixError(502, "M_UNKNOWN", f"{server} answered {kind} with nonsense")
        return get_room_version(version_id), template

    def build(
        self,
        version: RoomVersion,
        user_id: str,
        room_id: str,
        template: Mapping[str, Any],
        content: Mapping[str, Any],
    ) -> Event:
        """Our own signed event from a remote template."""
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
            raise MatrixError(502, "M_UNKNOWN", "The template does not fit the request")
        try:
            return build_event(
                version,
                room_id=room_id,
                sender=user_id,
                type=MEMBER,
                content=content,
                state_key=user_id,
                prev_events=[p if isinstance(p, str) else p[0] for p in prev],
                auth_events=[a if isinstance(a, str) else a[0] for a in auth],
                depth=depth,
                origin_server_ts=self.clock.time_msec(),
                server_name=self.server_name,
                signing_key=self.signing_key,
            )
        except (EventFormatError, IndexError, TypeError) as e:
            raise MatrixError(502, "M_UNKNOWN", f"The template is malformed: {e}") from None

    async def send(self, server: str, path: str, event: Event) -> JsonDict:
        return await remote(
            server,
            self.transport.put_json(server, path, event.get_pdu_json(include_unsigned=False)),
        )

    async def checked(self, version: RoomVersion, pdu: Any, what: str) -> Event:
        """A remote answer's event with valid format and signatures; a bad one
        fails the request through this server (another may do better)."""
        if not isinstance(pdu, Mapping):
            raise MatrixError(502, "M_UNKNOWN", f"{what} answered a non-event")
        try:
            event = Event.from_pdu(pdu, version)
        except EventFormatError as e:
            raise MatrixError(502, "M_UNKNOWN", f"{what} answered a bad event: {e}") from None
        try:
            await self.signatures.verify_event_signatures(pdu, version)
        except MatrixError as e:
            # Not the keyring's 401: that would tell our client its token is bad.
            raise MatrixError(
                502, "M_UNKNOWN", f"{what} answered a badly signed event: {e}"
            ) from None
        return event


async def remote(server: str, request: Awaitable[Any]) -> JsonDict:
    """A remote server's answer; its refusal (400, 403, 404) is passed on as
    it came, anything else is a 502."""
    try:
        answer = await request
    except MatrixError:
        raise
    except Exception as e:
        status, errcode = getattr(e, "status", None), getattr(e, "errcode", None)
        # Not 401 or 429: those are about us, and would mislead our client.
        if status in (400, 403, 404):
            message = getattr(e, "error", None) or f"{server} refused the request"
            code = errcode if isinstance(errcode, str) else "M_UNKNOWN"
            raise MatrixError(status, code, str(message)) from None
        raise MatrixError(502, "M_UNKNOWN", f"The remote server failed: {e}") from None
    if not isinstance(answer, Mapping):
        raise MatrixError(502, "M_UNKNOWN", "The remote server answered a non-object")
    return dict(answer)
