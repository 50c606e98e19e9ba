"""Users reporting events to the server admins, and the admins reading the reports."""

from __future__ import annotations

import logging
from typing import Any

from hamlet.handlers.common.errors import InvalidParamError, NotFoundError
from hamlet.handlers.history.reader import RoomReader
from hamlet.handlers.rooms.state import StateHandler
from hamlet.runtime.clock import Clock
from hamlet.storage.stores.event_reports import EventReport, EventReportStore
from hamlet.storage.stores.events import EventsStore

logger = logging.getLogger(__name__)

MAX_REASON_LENGTH = 1000


class EventReportsHandler:
    def __init__(
        self,
        *,
        clock: Clock,
        store: EventReportStore,
        room_reader: RoomReader,
        state: StateHandler,
        events: EventsStore,
    ) -> None:
        self._clock = clock
        self.store = store
        self._room_reader = room_reader
        self._state = state
        self._events = events

    async def report(self, user_id: str, room_id: str, event_id: str, body: dict[str, Any]) -> None:
        reason = body.get("reason")
        if reason is not None and (not isinstance(reason, str) or len(reason) > MAX_REASON_LENGTH):
            raise InvalidParamError("Param 'reason' must be a string")
        score = body.get("score")
        if score is not None and (
            isinstance(score, bool) or not isinstance(score, int) or not -100 <= score <= 0
        ):
            raise InvalidParamError("Param 'score' must be an integer between 0 and -100")
        try:
            stored = await self._room_reader.get_event_for_user(user_id, room_id, event_id)
        except NotFoundError:
            raise NotFoundError(
                "Unable to report event: it does not exist or you aren't able to see it."
            ) from None
        report_id = await self.store.add(
            received_ts=self._clock.time_msec(),
            room_id=room_id,
            event_id=event_id,
            user_id=user_id,
            sender=stored.event.sender,
            reason=reason,
            score=score,
        )
        logger.info("%s reported %s in %s (report %d)", user_id, event_id, room_id, report_id)

    async def _report_json(self, report: EventReport) -> dict[str, Any]:
        name_event = await self._state.get_current_state_event(report.room_id, "m.room.name", "")
        alias_event = await self._state.get_current_state_event(
            report.room_id, "m.room.canonical_alias", ""
        )
        name = name_event.content.get("name") if name_event is not None else None
        alias = alias_event.content.get("alias") if alias_event is not None else None
        return {
            "id": report.id,
            "received_ts": report.received_ts,
            "room_id": report.room_id,
            "name": name if isinstance(name, str) else None,
            "event_id": report.event_id,
            "user_id": report.user_id,
            "reason": report.reason,
            "score": report.score,
            "sender": report.sender,
            "canonical_alias": alias if isinstance(alias, str) else None,
        }

    async def list_reports(
        self,
        *,
        start: int,
        limit: int,
        backwards: bool,
        room_id: str | None,
        user_id: str | None,
        sender: str | None,
    ) -> dict[str, Any]:
        reports, total = await self.store.list(
            start=start,
            limit=limit,
            backwards=backwards,
            room_id=room_id,
            user_id=user_id,
            sender=sender,
        )
        result: dict[str, Any] = {
            "event_reports": [await self._report_json(r) for r in reports],
            "total": total,
        }
        if start + len(reports) < total:
            result["next_token"] = start + len(reports)
        return result

    async def get_report(self, report_id: int) -> dict[str, Any]:
        report = await self.store.get(report_id)
        if report is None:
            raise NotFoundError("Event report not found")
        result = await self._report_json(report)
        stored = await self._events.get_event(report.event_id)
        result["event_json"] = stored.event.get_pdu_json() if stored is not None else None
        return result

    async def delete_report(self, report_id: int) -> None:
        if not await self.store.delete(report_id):
            raise NotFoundError("Event report not found")
