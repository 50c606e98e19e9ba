"""Invites across servers: `/invite` (v2), both sides.

Invited side (`on_invite`): another server asks us to countersign an
invite of one of our users. The event must be that server's user's invite
of an existing local user, correctly hashed and signed, in a room version
we support; we sign it and, unless we are in the room (the invite then
reaches us again through /send), store it out of band with the stripped
state the inviter gave (`invite_room_state`, at most `MAX_INVITE_STATE`
entries, stripped as knocks' are), so the invitee sees it in /sync.

Inviting side (`countersigned`): `EventCreator` hands us a local user's
invite of another server's user before storing it; the invitee's server
signs it and its signature is checked and added. The federation sender
then sends it to the room's servers as any local event, but not to the
invitee's server, which has it from /invite.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any, Final, Protocol

from hamlet.core.canonical_json import JsonDict
from hamlet.core.crypto import check_content_hash
from hamlet.core.errors import EventFormatError
from hamlet.core.events import Event
from hamlet.core.ids import UserID, get_domain_from_id
from hamlet.core.redaction import redact
from hamlet.core.room_versions import SUPPORTED_ROOM_VERSIONS, get_room_version
from hamlet.handlers.common.errors import (
    BadJsonError,
    ForbiddenError,
    InvalidParamError,
    MatrixError,
    NotFoundError,
)
from hamlet.handlers.federation.knocks import own_stripped, stripped_entry
from hamlet.handlers.federation.membership_events import (
    FEDERATION_V2,
    MEMBER,
    MembershipEvents,
    incompatible_version,
    remote,
)
from hamlet.handlers.sync.rooms import STRIPPED_STATE_TYPES
from hamlet.storage.stores.accounts import AccountStore
from hamlet.storage.stores.events import EventsStore

logger = logging.getLogger(__name__)

#: A room's stripped state is a handful of events; Synapse sends eight types at most.
MAX_INVITE_STATE: Final = 50


class ServerSignatures(Protocol):
    async def verify_json_for_server(
        self, server_name: str, obj: Mapping[str, Any], min_valid_until_ms: int
    ) -> None: ...


def received_stripped_state(raw: Any, room_id: str) -> list[JsonDict]:
    """The stripped events of a received `invite_room_state` (absent: none):
    stripped or full PDUs (Matrix 1.16), those of another room or malformed
    left out; more than `MAX_INVITE_STATE` is 400."""
    if raw is None:
        return []
    if not isinstance(raw, list):
        raise InvalidParamError("invite_room_state must be a list")
    if len(raw) > MAX_INVITE_STATE:
        raise InvalidParamError(f"invite_room_state has more than {MAX_INVITE_STATE} events")
    kept = []
    for pdu in raw:
        entry = stripped_entry(pdu)
        # A full PDU names its room (a v12 create event does not): another room's is a lie.
        if entry is not None and pdu.get("room_id", room_id) == room_id:
            kept.append(entry)
    return kept


class FederationInvites:
    def __init__(
        self,
        *,
        membership_events: MembershipEvents,
        accounts: AccountStore,
        events: EventsStore,
        keyring: ServerSignatures,
    ) -> None:
        self._m = membership_events
        self._server_name = membership_events.server_name
        self._accounts = accounts
        self._events = events
        self._keyring = keyring

    # --- invited side ---

    async def on_invite(self, origin: str, room_id: str, event_id: str, body: JsonDict) -> JsonDict:
        version_id = body.get("room_version")
        if not isinstance(version_id, str):
            raise BadJsonError("room_version must be a string")
        if version_id not in SUPPORTED_ROOM_VERSIONS:
            raise incompatible_version(version_id)
        version = get_room_version(version_id)
        pdu = body.get("event")
        if not isinstance(pdu, Mapping):
            raise BadJsonError("event must be an object")
        try:
            event = Event.from_pdu(pdu, version)
        except EventFormatError as e:
            raise InvalidParamError(str(e)) from None
        stripped = received_stripped_state(body.get("invite_room_state"), room_id)
        invitee = self._check_invite(origin, room_id, event_id, event)
        account = await self._accounts.get_user(invitee)
        if account is None:
            raise NotFoundError("Unknown user")
        if account.deactivated:
            raise ForbiddenError("The invitee's account is deactivated")
        try:
            await self._m.signatures.verify_event_signatures(pdu, version)
        except MatrixError as e:
            raise InvalidParamError(f"The invite's signatures do not verify: {e.message}") from None
        if not check_content_hash(pdu):
            raise InvalidParamError("The invite's content hash does not match")
        signed = self._m.co_signed(event)
        if not await self._resident(room_id):
            await self._m.persister.persist_out_of_band(signed, [*stripped, own_stripped(signed)])
        return {"event": signed.get_pdu_json(include_unsigned=False)}

    def _check_invite(self, origin: str, room_id: str, event_id: str, event: Event) -> str:
        """The invitee, when `event` is `origin`'s user's invite of one of ours."""
        if event.event_id != event_id or event.room_id != room_id:
            raise InvalidParamError("The event is not the one the path names")
        if event.type != MEMBER or event.content.get("membership") != "invite":
            raise InvalidParamError("Not an invite")
        if get_domain_from_id(event.sender) != origin:
            raise InvalidParamError("The invite's sender is not a user of the sending server")
        invitee = event.state_key or ""
        if not UserID.is_valid(invitee) or get_domain_from_id(invitee) != self._server_name:
            raise InvalidParamError("The invitee is not a user of this server")
        return invitee

    # --- inviting side ---

    async def countersigned(self, event: Event) -> Event:
        """`event` (our user's invite of another server's user) signed by the
        invitee's server too; that server's refusal is the client's answer."""
        assert event.state_key is not None
        server = get_domain_from_id(event.state_key)
        version = event.room_version
        body = {
            "room_version": version.identifier,
            "event": event.get_pdu_json(include_unsigned=False),
            "invite_room_state": await self._invite_room_state(event.room_id),
        }
        path = f"{FEDERATION_V2}/invite/{event.room_id}/{event.event_id}"
        answer = await remote(server, self._m.transport.put_json(server, path, body))
        returned = answer.get("event")
        signatures = returned.get("signatures") if isinstance(returned, Mapping) else None
        theirs = signatures.get(server) if isinstance(signatures, Mapping) else None
        if not isinstance(theirs, Mapping):
            raise MatrixError(502, "M_UNKNOWN", f"{server} did not sign the invite")
        pdu = event.get_pdu_json(include_unsigned=False)
        pdu["signatures"] = {**pdu["signatures"], server: dict(theirs)}
        # Their signature must be over this very event (its redacted form).
        try:
            await self._keyring.verify_json_for_server(
                server, redact(pdu, version), event.origin_server_ts
            )
        except MatrixError as e:
            raise MatrixError(
                502, "M_UNKNOWN", f"{server} signed the invite wrongly: {e.message}"
            ) from None
        return Event(pdu, version)

    async def _invite_room_state(self, room_id: str) -> list[JsonDict]:
        """The room's stripped-state types as full PDUs (Matrix 1.16 wants PDUs)."""
        current = await self._m.state.get_current_state(room_id)
        return [
            e.get_pdu_json(include_unsigned=False)
            for (kind, _key), e in sorted(current.items())
            if kind in STRIPPED_STATE_TYPES
        ]

    async def received_invite(self, user_id: str, room_id: str) -> Event | None:
        """The invite `user_id` holds to a room we are not in, if that is
        their membership there (to join or reject through its sender's server)."""
        membership = await self._m.rooms.get_membership(room_id, user_id)
        if membership is None or membership.membership != "invite":
            return None
        if await self._resident(room_id):
            return None
        if await self._m.rooms.get_out_of_band_state(membership.event_id) is None:
            return None
        found = await self._events.get_events([membership.event_id])
        stored = found.get(membership.event_id)
        return stored.event if stored is not None else None

    async def _resident(self, room_id: str) -> bool:
        """Whether a local user is joined: the room's events then reach us through /send."""
        return self._server_name in await self._m.rooms.get_joined_hosts(room_id)
