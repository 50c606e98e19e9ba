"""The PDU half of an inbound transaction: check each PDU and hand it to the room DAG.

Per the spec's checks on receipt: a PDU of a room we do not know is left out
of the answer (as Synapse); one that is malformed, or whose signatures do
not verify, is answered with an error and never stored; one whose content
hash is wrong is stored redacted. The DAG (`FederatedEventHandler`) then
authorises it against its auth events and the state before it (rejected)
and against the current state (soft-failed).

A PDU whose prev_events or auth events we lack is answered with an error
naming them: fetching them (`/get_missing_events`, `/state_ids`,
`/event_auth`) is not built yet, so such a PDU is not stored rather than
stored with guessed state.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from typing import Any, Protocol

from hamlet.core.canonical_json import JsonDict
from hamlet.core.crypto import check_content_hash
from hamlet.core.errors import EventFormatError
from hamlet.core.events import Event, compute_event_id
from hamlet.core.redaction import redact
from hamlet.core.room_versions import RoomVersion, get_room_version
from hamlet.handlers.common.errors import MatrixError
from hamlet.handlers.rooms.federated_events import FederatedEventHandler, MissingEventsError
from hamlet.storage.stores.rooms import RoomRow, RoomsStore

logger = logging.getLogger(__name__)


class EventSignatures(Protocol):
    async def verify_event_signatures(
        self, pdu: Mapping[str, Any], room_version: RoomVersion
    ) -> None: ...


class InboundPdus:
    def __init__(
        self, rooms: RoomsStore, signatures: EventSignatures, events: FederatedEventHandler
    ) -> None:
        self._rooms = rooms
        self._signatures = signatures
        self._events = events

    async def handle_pdus(self, origin: str, pdus: Sequence[Any]) -> dict[str, JsonDict]:
        results: dict[str, JsonDict] = {}
        # A transaction's PDUs are mostly of one room: look each room up once.
        rooms: dict[str, RoomRow | None] = {}
        for pdu in pdus:
            room_id = pdu.get("room_id") if isinstance(pdu, Mapping) else None
            if isinstance(room_id, str) and room_id not in rooms:
                rooms[room_id] = await self._rooms.get_room(room_id)
            room = rooms.get(room_id) if isinstance(room_id, str) else None
            if room is None:
                logger.info("Ignoring PDU from %s for unknown room %r", origin, room_id)
                continue
            version = get_room_version(room.room_version)
            try:
                event_id = compute_event_id(pdu, version)
            except EventFormatError as e:
                logger.info("Ignoring malformed PDU from %s: %s", origin, e)
                continue
            results[event_id] = await self._handle(origin, pdu, version, event_id)
        return results

    async def _handle(
        self, origin: str, pdu: Mapping[str, Any], version: RoomVersion, event_id: str
    ) -> JsonDict:
        try:
            event = Event.from_pdu(pdu, version)
            await self._signatures.verify_event_signatures(pdu, version)
            if not check_content_hash(pdu):
                # The signatures cover the redacted form, which is what we keep.
                logger.info(
                    "PDU %s from %s fails its content hash: kept redacted", event_id, origin
                )
                event = Event.from_pdu(redact(pdu, version), version)
        except EventFormatError as e:
            return _refused(origin, event_id, f"Malformed event: {e}")
        except MatrixError as e:
            return _refused(origin, event_id, f"Bad signature: {e.message}")
        try:
            stored = await self._events.persist_event(event)
        except MissingEventsError as e:
            return _refused(origin, event_id, f"Missing events: {', '.join(e.missing[:10])}")
        except MatrixError as e:
            return _refused(origin, event_id, e.message)
        if stored.rejected_reason is not None:
            return _refused(origin, event_id, f"Rejected: {stored.rejected_reason}")
        return {}


def _refused(origin: str, event_id: str, why: str) -> JsonDict:
    logger.info("PDU %s from %s not accepted: %s", event_id, origin, why)
    return {"error": why}
