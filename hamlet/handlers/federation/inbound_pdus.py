"""The PDU half of an inbound transaction: check each PDU and hand it to the room DAG.

Per the spec's checks on receipt: a PDU of a room we do not know is left out
of the answer (as Synapse); one that is malformed, or whose signatures do
not verify, is answered with an error and never stored; one whose content
hash is wrong is stored redacted. The DAG (`FederatedEventHandler`) then
authorises it against its auth events and the state before it (rejected)
and against the current state (soft-failed).

A PDU whose prev_events or auth events we lack has them fetched from its
origin first (`missing_events.py`: `/get_missing_events`, else the state
before it by `/state_ids`; `/event_auth`), within one budget per
transaction; when that fails it is answered with an error naming them and
not stored, rather than stored with guessed state.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from typing import Any

from hamlet.core.canonical_json import JsonDict
from hamlet.core.errors import EventFormatError
from hamlet.core.events import compute_event_id
from hamlet.core.room_versions import RoomVersion, get_room_version
from hamlet.handlers.common.errors import MatrixError
from hamlet.handlers.federation.missing_events import GapFiller
from hamlet.handlers.federation.remote_events import EventSignatures, FetchBudget, check_pdu
from hamlet.handlers.rooms.federated_events import MissingEventsError
from hamlet.storage.stores.rooms import RoomRow, RoomsStore

logger = logging.getLogger(__name__)


class InboundPdus:
    def __init__(self, rooms: RoomsStore, signatures: EventSignatures, gaps: GapFiller) -> None:
        self._rooms = rooms
        self._signatures = signatures
        self._gaps = gaps

    async def handle_pdus(self, origin: str, pdus: Sequence[Any]) -> dict[str, JsonDict]:
        results: dict[str, JsonDict] = {}
        budget = self._gaps.budget()
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
            results[event_id] = await self._handle(origin, pdu, version, event_id, budget)
        return results

    async def _handle(
        self,
        origin: str,
        pdu: Mapping[str, Any],
        version: RoomVersion,
        event_id: str,
        budget: FetchBudget,
    ) -> JsonDict:
        try:
            event = await check_pdu(self._signatures, pdu, version)
        except EventFormatError as e:
            return _refused(origin, event_id, f"Malformed event: {e}")
        except MatrixError as e:
            return _refused(origin, event_id, f"Bad signature: {e.message}")
        try:
            stored = await self._gaps.persist_pdu(origin, event, budget)
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
