"""GET /notifications: the events that notified a user, newest first."""

from __future__ import annotations

from typing import Any, Final

from hamlet.handlers.common.errors import MatrixError
from hamlet.handlers.history.serializer import EventSerializer
from hamlet.handlers.history.visibility import VisibilityHandler
from hamlet.handlers.push.delivery import EventSource
from hamlet.storage.stores.pushers import PushersStore

DEFAULT_LIMIT: Final = 50
MAX_LIMIT: Final = 500


def parse_from(token: str | None) -> int | None:
    """The `from` token: the stream position of the last notification served."""
    if token is None:
        return None
    if not token.isascii() or not token.isdigit() or len(token) > 18:
        raise MatrixError(400, "M_INVALID_PARAM", "Query parameter 'from' is not a known token")
    return int(token)


class NotificationsHandler:
    def __init__(
        self,
        *,
        store: PushersStore,
        events: EventSource,
        visibility: VisibilityHandler,
        serializer: EventSerializer,
    ) -> None:
        self._store = store
        self._events = events
        self._visibility = visibility
        self._serializer = serializer

    async def get_notifications(
        self, user_id: str, *, from_token: str | None, limit: int | None, only: str | None
    ) -> dict[str, Any]:
        before = parse_from(from_token)
        if limit is None:
            limit = DEFAULT_LIMIT
        if limit < 0:
            raise MatrixError(400, "M_INVALID_PARAM", "Query parameter 'limit' must be positive")
        limit = min(limit, MAX_LIMIT)
        found = await self._store.get_notifications(
            user_id, before, limit, only_highlight=only == "highlight"
        )
        served: list[dict[str, Any]] = []
        next_token: str | None = None
        for notification in found:
            action = notification.action
            next_token = str(action.stream_ordering)
            stored = await self._events.get_event(action.event_id)
            if stored is None:
                continue
            # Visible when evaluated; checked again (it may have been
            # evaluated for a member whose membership changed meanwhile).
            if not await self._visibility.filter_for_user(user_id, [stored]):
                continue
            event = await self._serializer.serialize_one(
                stored, user_id=user_id, include_room_id=False
            )
            served.append(
                {
                    "room_id": action.room_id,
                    "actions": action.actions,
                    "ts": action.ts,
                    "event": event,
                    "read": notification.read,
                }
            )
        return {"notifications": served, "next_token": next_token}
