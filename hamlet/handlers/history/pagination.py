"""Room history for clients: `/messages` and `/context`, with visibility enforced.

Pagination tokens name a point in the event stream: `t<N>` lies between
the events at stream positions N and N+1. Paginating backwards from `t<N>`
returns events at or before N; forwards, events after N. A /sync token
(`StreamToken.to_string()`) is accepted too and means its `events` position,
so /sync's `prev_batch` may be either form.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Awaitable, Callable, Iterable
from typing import Any

import orjson

from hamlet.core.errors import FilterError
from hamlet.core.events import Event
from hamlet.core.filters import RoomEventFilter, parse_room_event_filter
from hamlet.core.power_levels import StateKey
from hamlet.handlers.common.errors import ForbiddenError, InvalidParamError, NotFoundError
from hamlet.handlers.common.streams import StreamToken
from hamlet.handlers.history.serializer import EventSerializer
from hamlet.handlers.history.visibility import HISTORY_KEY, VisibilityHandler
from hamlet.handlers.rooms.event_cache import EventCache
from hamlet.handlers.rooms.state import StateHandler
from hamlet.storage.stores.events import StoredEvent
from hamlet.storage.stores.room_history import RoomHistoryStore
from hamlet.storage.stores.rooms import RoomsStore

DEFAULT_LIMIT = 10
MAX_LIMIT = 1000
# Rows scanned (and dropped by filters or visibility) before a page gives up
# and hands back a token to continue from.
MAX_SCANNED = 5000
# Before every position, backfilled history included: where paging forwards
# without a token starts.
BEGINNING = -(10**18 - 1)
# Events asked of other servers when a page runs out of local history.
BACKFILL_AT_LEAST = 20

# Negative positions are history backfilled from other servers.
_PAGINATION_TOKEN = re.compile(r"^t(-?[0-9]{1,18})$")

Fetch = Callable[[int | None, int | None, int, bool], Awaitable[list[StoredEvent]]]


def make_pagination_token(pos: int) -> str:
    return f"t{pos}"


def parse_pagination_token(text: str) -> int:
    """A stream position from `t<N>` or a /sync token; else 400 M_INVALID_PARAM."""
    m = _PAGINATION_TOKEN.match(text)
    if m is not None:
        return int(m.group(1))
    if text.startswith("s"):
        return StreamToken.parse(text).events
    raise InvalidParamError(f"Invalid pagination token {text[:64]!r}")


def parse_direction(raw: str | None, default: str = "b") -> bool:
    """True for backwards."""
    value = default if raw is None else raw
    if value not in ("b", "f"):
        raise InvalidParamError("dir must be 'b' or 'f'")
    return value == "b"


def parse_limit(raw: int | None, default: int) -> int:
    if raw is None:
        return default
    if raw < 0:
        raise InvalidParamError("limit must not be negative")
    return min(raw, MAX_LIMIT)


def parse_event_filter_param(raw: str | None) -> RoomEventFilter | None:
    if raw is None or not raw.strip():
        return None
    try:
        value = orjson.loads(raw)
    except orjson.JSONDecodeError:
        raise InvalidParamError("filter is not valid JSON") from None
    try:
        return parse_room_event_filter(value)
    except FilterError as e:
        raise InvalidParamError(f"Invalid filter: {e}") from None


Visible = Callable[[list[StoredEvent]], Awaitable[list[StoredEvent]]]
#: Fetches up to n older events of a room from other servers (federation
#: backfill); whether it stored any.
Backfill = Callable[[str, int], Awaitable[bool]]


async def everything(events: list[StoredEvent]) -> list[StoredEvent]:
    """The visibility of a reader that may see every event (the server's admin)."""
    return events


async def page_room(
    history: RoomHistoryStore,
    room_id: str,
    *,
    visible: Visible,
    start: int | None,
    bound: int | None,
    backwards: bool,
    limit: int,
    event_filter: RoomEventFilter | None,
) -> tuple[list[StoredEvent], int | None]:
    """One page of a room's timeline as `visible` lets its reader see it."""

    async def fetch(after: int | None, before: int | None, n: int, back: bool) -> list[StoredEvent]:
        return await history.get_room_events(
            room_id, after=after, before=before, limit=n, backwards=back, event_filter=event_filter
        )

    return await scan_visible(
        fetch,
        visible=visible,
        start=start,
        bound=bound,
        backwards=backwards,
        limit=limit,
        keep=(lambda s: event_filter.matches(s.event)) if event_filter else None,
    )


async def scan_visible(
    fetch: Fetch,
    *,
    visible: Visible,
    start: int | None,
    bound: int | None,
    backwards: bool,
    limit: int,
    keep: Callable[[StoredEvent], bool] | None = None,
) -> tuple[list[StoredEvent], int | None]:
    """Up to `limit` events the user may see, walking from `start` towards `bound`.

    Returns them with the position to continue from, or None when no
    further visible event exists. Positions follow the token convention:
    backwards covers bound < s <= start, forwards start < s <= bound.
    """
    out: list[StoredEvent] = []
    pos = start
    scanned = 0
    batch = min(max(2 * (limit + 1), 20), MAX_LIMIT)
    while True:
        if backwards:
            rows = await fetch(bound, pos, batch, True)
        else:
            rows = await fetch(pos, bound, batch, False)
        candidates = [r for r in rows if keep is None or keep(r)]
        allowed = {s.event.event_id for s in await visible(candidates)} if candidates else set()
        for row in rows:
            if row.event.event_id not in allowed:
                continue
            if len(out) == limit:
                last = out[-1].stream_ordering
                return out, (last - 1 if backwards else last)
            out.append(row)
        scanned += len(rows)
        if len(rows) < batch:
            return out, None
        last_row = rows[-1].stream_ordering
        pos = last_row - 1 if backwards else last_row
        if scanned >= MAX_SCANNED:
            return out, pos


class PaginationHandler:
    def __init__(
        self,
        *,
        history: RoomHistoryStore,
        rooms: RoomsStore,
        state: StateHandler,
        cache: EventCache,
        visibility: VisibilityHandler,
        serializer: EventSerializer,
        current_stream: Callable[[], int],
    ) -> None:
        self.history = history
        self.rooms = rooms
        self.state = state
        self.cache = cache
        self.visibility = visibility
        self.serializer = serializer
        self._current_stream = current_stream
        self._backfill: Backfill | None = None

    def set_backfill(self, backfill: Backfill) -> None:
        """Plug in federation backfill (built after history)."""
        self._backfill = backfill

    async def check_access(self, user_id: str, room_id: str) -> tuple[bool, int | None]:
        """May the user read this room's history at all? (currently_joined, cap).

        `cap` is the user's departure position when they left a room that
        is not world readable: nothing after it is visible to them. A user
        with no membership may read only a world-readable room.
        """
        membership = await self.rooms.get_membership(room_id, user_id)
        if membership is not None and membership.membership in ("join", "invite"):
            return membership.membership == "join", None
        hv = await self.state.get_current_state_event(room_id, *HISTORY_KEY)
        world_readable = hv is not None and hv.content.get("history_visibility") == "world_readable"
        if membership is not None and membership.membership in ("leave", "ban"):
            return False, None if world_readable else membership.stream_ordering
        if world_readable and await self.rooms.get_room(room_id) is not None:
            return False, None
        raise ForbiddenError(
            f"User {user_id} not in room {room_id}, and room previews are disabled"
        )

    def _visible(self, user_id: str, joined: bool) -> Visible:
        async def visible(events: list[StoredEvent]) -> list[StoredEvent]:
            return await self.visibility.filter_for_user(user_id, events, currently_joined=joined)

        return visible

    async def _page(
        self,
        user_id: str,
        room_id: str,
        *,
        joined: bool,
        start: int | None,
        bound: int | None,
        backwards: bool,
        limit: int,
        event_filter: RoomEventFilter | None,
    ) -> tuple[list[StoredEvent], int | None]:
        if limit == 0:
            return [], None
        return await page_room(
            self.history,
            room_id,
            visible=self._visible(user_id, joined),
            start=start,
            bound=bound,
            backwards=backwards,
            limit=limit,
            event_filter=event_filter,
        )

    async def get_messages(
        self,
        user_id: str,
        device_id: str | None,
        room_id: str,
        *,
        from_token: str | None,
        to_token: str | None,
        backwards: bool,
        limit: int,
        event_filter: RoomEventFilter | None,
    ) -> dict[str, Any]:
        start = parse_pagination_token(from_token) if from_token is not None else None
        bound = parse_pagination_token(to_token) if to_token is not None else None
        joined, cap = await self.check_access(user_id, room_id)
        if start is None:
            start = self._current_stream() if backwards else BEGINNING
        if event_filter is not None and event_filter.limit is not None:
            limit = min(limit, event_filter.limit)
        scan_from = start
        if cap is not None:
            if backwards:
                scan_from = min(start, cap)
            else:
                bound = cap if bound is None else min(bound, cap)
        events: list[StoredEvent] = []
        next_pos: int | None = None
        if backwards or bound is None or scan_from < bound:
            page = functools.partial(
                self._page,
                user_id,
                room_id,
                joined=joined,
                start=scan_from,
                bound=bound,
                backwards=backwards,
                limit=limit,
                event_filter=event_filter,
            )
            events, next_pos = await page()
            if (
                backwards
                and next_pos is None
                and bound is None
                and self._backfill is not None
                and await self._backfill(room_id, max(limit, BACKFILL_AT_LEAST))
            ):
                # Backfilled history lies below every stored position: the
                # same page now reaches into it, or the next one does.
                if len(events) < limit:
                    events, next_pos = await page()
                else:
                    next_pos = events[-1].stream_ordering - 1
        response: dict[str, Any] = {
            "chunk": await self.serializer.serialize(events, user_id=user_id, device_id=device_id),
            "start": from_token if from_token is not None else make_pagination_token(start),
        }
        if next_pos is not None:
            response["end"] = make_pagination_token(next_pos)
        if event_filter is not None and event_filter.lazy_load_members and events:
            state = await self._member_state(events[0], _senders(events))
            if state:
                response["state"] = [e.get_client_event() for e in state.values()]
        return response

    async def timestamp_to_event(
        self, user_id: str, room_id: str, ts: int, *, forwards: bool
    ) -> dict[str, Any]:
        """The visible event nearest `ts`: the first at or after it (forwards)
        or the last at or before it (backwards), by `origin_server_ts`."""
        joined, cap = await self.check_access(user_id, room_id)
        visible = self._visible(user_id, joined)
        after: tuple[int, int] | None = None
        scanned = 0
        while scanned < MAX_SCANNED:
            batch = await self.history.get_events_by_timestamp(
                room_id, ts, forwards=forwards, after=after, upto=cap, limit=50
            )
            shown = await visible(batch) if batch else []
            if shown:
                event = shown[0].event
                return {"event_id": event.event_id, "origin_server_ts": event.origin_server_ts}
            if len(batch) < 50:
                break
            last = batch[-1]
            after = (last.event.origin_server_ts, last.stream_ordering)
            scanned += len(batch)
        direction = "forward" if forwards else "backward"
        raise NotFoundError(f"Unable to find event from {ts} in {direction} direction")

    async def _member_state(
        self, first: StoredEvent, senders: Iterable[str]
    ) -> dict[StateKey, Event]:
        keys = {("m.room.member", s) for s in senders}
        return await self.state.get_state_after(first, keys)

    async def around(
        self,
        user_id: str,
        stored: StoredEvent,
        *,
        joined: bool,
        cap: int | None,
        before_limit: int,
        after_limit: int,
        event_filter: RoomEventFilter | None = None,
    ) -> tuple[list[StoredEvent], list[StoredEvent]]:
        """The visible events just before (newest first) and after an event.

        `joined` and `cap` are what `check_access` answered for its room.
        """
        room_id = stored.event.room_id
        pos = stored.stream_ordering
        before, _ = await self._page(
            user_id,
            room_id,
            joined=joined,
            start=pos - 1,
            bound=None,
            backwards=True,
            limit=before_limit,
            event_filter=event_filter,
        )
        after: list[StoredEvent] = []
        if cap is None or pos < cap:
            after, _ = await self._page(
                user_id,
                room_id,
                joined=joined,
                start=pos,
                bound=cap,
                backwards=False,
                limit=after_limit,
                event_filter=event_filter,
            )
        return before, after

    async def get_context(
        self,
        user_id: str,
        device_id: str | None,
        room_id: str,
        event_id: str,
        *,
        limit: int,
        event_filter: RoomEventFilter | None,
    ) -> dict[str, Any]:
        joined, cap = await self.check_access(user_id, room_id)
        stored = await self.cache.get(event_id)
        if stored is None or stored.event.room_id != room_id:
            raise NotFoundError("Event not found")
        if not await self.visibility.filter_for_user(user_id, [stored], currently_joined=joined):
            raise NotFoundError("Event not found")
        before, after = await self.around(
            user_id,
            stored,
            joined=joined,
            cap=cap,
            before_limit=limit // 2,
            after_limit=limit - limit // 2,
            event_filter=event_filter,
        )
        last = after[-1] if after else stored
        state = await self.state.get_state_after(last)
        if event_filter is not None and event_filter.lazy_load_members:
            senders = _senders([*before, stored, *after])
            state = {k: e for k, e in state.items() if k[0] != "m.room.member" or k[1] in senders}
        served = await self.serializer.serialize(
            [stored, *before, *after], user_id=user_id, device_id=device_id
        )
        return {
            "event": served[0],
            "events_before": served[1 : 1 + len(before)],
            "events_after": served[1 + len(before) :],
            "start": make_pagination_token((before[-1] if before else stored).stream_ordering - 1),
            "end": make_pagination_token(last.stream_ordering),
            "state": [e.get_client_event() for e in state.values()],
        }


def _senders(events: Iterable[StoredEvent]) -> set[str]:
    return {s.event.sender for s in events}
