"""Knocking on rooms across servers: `/make_knock` + `/send_knock` (v1).

Resident side (a room of ours, version 7 or later): `make_knock` answers a
knock template, refused (403) when the auth rules would refuse the knock;
`send_knock` takes the knocking server's signed event, checks it is that
server's user's own knock, hands it to the room DAG and answers the room's
stripped state (`knock_room_state`: full PDUs, as the spec asks from v1.16,
the create event first) so the knocker's client can show the room. Our
members then see the knock like a local one, in the timeline and state.

Knocking side (`knock`): a local user's knock on a room we are not in goes
through `make_knock` / `send_knock` to the candidate servers in turn. The
knock is kept out of band (an outlier listed with the user's rooms, with
the stripped state the resident server answered) so the user's /sync lists
the room under `rooms.knock`.
"""

from __future__ import annotations

import logging
from collections.abc import Collection, Mapping, Sequence
from typing import Any, Final

from hamlet.core.canonical_json import JsonDict, encode_canonical_json
from hamlet.core.crypto import check_content_hash
from hamlet.core.errors import EventFormatError
from hamlet.core.events import Event
from hamlet.core.room_versions import RoomVersion, get_room_version
from hamlet.handlers.common.errors import MatrixError
from hamlet.handlers.federation.joins import candidate_servers
from hamlet.handlers.federation.membership_events import (
    FEDERATION_V1,
    MembershipEvents,
    incompatible_version,
)
from hamlet.handlers.sync.rooms import STRIPPED_STATE_TYPES

logger = logging.getLogger(__name__)

MEMBER: Final = "m.room.member"
CREATE: Final = "m.room.create"

#: Entries of a `knock_room_state` answer kept (the spec's types are 8).
MAX_KNOCK_STATE: Final = 32
#: Bytes of one kept entry: a hostile server must not fill our database.
MAX_STRIPPED_EVENT_BYTES: Final = 65_536


class FederationKnocks:
    def __init__(self, *, membership_events: MembershipEvents) -> None:
        self._m = membership_events

    # --- resident side ---

    async def make_knock(
        self, origin: str, room_id: str, user_id: str, versions: Collection[str]
    ) -> JsonDict:
        room = await self._m.room(room_id, versions)
        if not get_room_version(room.room_version).knock_join_rule:
            raise incompatible_version(room.room_version)
        template = await self._m.template(origin, room, user_id, {"membership": "knock"})
        return self._m.template_answer(room, template)

    async def send_knock(self, origin: str, room_id: str, event_id: str, pdu: Any) -> JsonDict:
        event = await self._m.received(origin, room_id, event_id, pdu, "knock")
        if not event.room_version.knock_join_rule:
            raise incompatible_version(event.room_version.identifier)
        await self._m.persist_received(event)
        current = await self._m.state.get_current_state(room_id)
        # The create event first: some servers read the room's version there.
        shown = sorted(
            (k, e) for k, e in current.items() if k[0] in STRIPPED_STATE_TYPES and k[0] != MEMBER
        )
        create = [e for k, e in shown if k[0] == CREATE]
        others = [e for k, e in shown if k[0] != CREATE]
        return {
            "knock_room_state": [e.get_pdu_json(include_unsigned=False) for e in create + others]
        }

    # --- knocking side ---

    async def knock(
        self, user_id: str, room_id: str, servers: Sequence[str], content: Mapping[str, Any]
    ) -> str:
        """`user_id` knocks on a room of other servers with `content` (reason,
        profile); returns the knock's event ID."""
        last: MatrixError | None = None
        for server in candidate_servers(self._m.server_name, servers):
            try:
                return await self._knock_via(server, user_id, room_id, content)
            except MatrixError as e:
                logger.info("Knocking on %s through %s failed: %s", room_id, server, e.message)
                last = e
        assert last is not None
        raise last

    async def _knock_via(
        self, server: str, user_id: str, room_id: str, content: Mapping[str, Any]
    ) -> str:
        version, template = await self._m.ask_template(server, "make_knock", room_id, user_id)
        if not version.knock_join_rule:
            raise incompatible_version(version.identifier)
        event = self._m.build(
            version, user_id, room_id, template, {**content, "membership": "knock"}
        )
        answer = await self._m.send(
            server, f"{FEDERATION_V1}/send_knock/{room_id}/{event.event_id}", event
        )
        # Servers before spec v1.16 may still name it as MSC2403 did.
        state = answer.get("knock_room_state", answer.get("knock_state_events"))
        if not isinstance(state, list):
            raise MatrixError(502, "M_UNKNOWN", f"{server} answered send_knock with nonsense")
        kept = await self._kept_state(version, room_id, state)
        await self._m.persister.persist_out_of_band(event, [*kept, own_stripped(event)])
        return event.event_id

    async def _kept_state(
        self, version: RoomVersion, room_id: str, entries: list[Any]
    ) -> list[JsonDict]:
        """The entries of `knock_room_state` to show, bounded. Full PDUs must
        be of this room, properly signed and hashed (so a v12 create event
        must hash to the room ID); stripped ones, as servers before spec
        v1.16 send, are kept as they are."""
        kept: list[JsonDict] = []
        for pdu in entries[: 2 * MAX_KNOCK_STATE]:
            if len(kept) >= MAX_KNOCK_STATE:
                break
            entry = stripped_entry(pdu)
            if entry is None:
                continue
            if "signatures" in pdu and not await self._authentic(version, room_id, pdu):
                logger.info(
                    "Dropped a badly signed %s from %s's knock state", entry["type"], room_id
                )
                continue
            kept.append(entry)
        return kept

    async def _authentic(self, version: RoomVersion, room_id: str, pdu: Mapping[str, Any]) -> bool:
        try:
            event = Event.from_pdu(pdu, version)
        except EventFormatError:
            return False
        # The signatures cover the redacted event: the hash covers the content shown.
        if event.room_id != room_id or not check_content_hash(pdu):
            return False
        try:
            await self._m.signatures.verify_event_signatures(pdu, version)
        except MatrixError:
            return False
        return True


def stripped_entry(pdu: Any) -> JsonDict | None:
    """The stripped form of one entry of a remote answer (a full PDU or
    already stripped), None when malformed or too large to keep."""
    if not isinstance(pdu, Mapping):
        return None
    entry = {k: pdu.get(k) for k in ("type", "state_key", "sender", "content")}
    if not (
        isinstance(entry["type"], str)
        and isinstance(entry["state_key"], str)
        and isinstance(entry["sender"], str)
        and isinstance(entry["content"], Mapping)
    ):
        return None
    try:
        size = len(encode_canonical_json(entry))
    except (TypeError, ValueError):
        return None
    return entry if size <= MAX_STRIPPED_EVENT_BYTES else None


def own_stripped(event: Event) -> JsonDict:
    """A member event as the last entry of its out-of-band stripped state."""
    return {
        "type": event.type,
        "state_key": event.state_key,
        "sender": event.sender,
        "content": dict(event.content),
    }
