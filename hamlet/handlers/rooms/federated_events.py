"""Storing events from other servers: the checks on receipt of a PDU.

`FederatedEventHandler.persist_event` is what the federation endpoints
(/send, /send_join, /backfill, /get_missing_events, /event_auth ...) call
with a PDU whose format, signatures and content hash the caller has
checked. It applies the server-server spec's remaining checks:

- at most 20 prev_events and 10 auth_events (as Synapse), else rejected;
- against the event's own auth events (each must be stored and not
  rejected): failing them *rejects* the event (stored with the reason,
  never served, never an extremity, never in any state);
- for a timeline event, against the state before it (the resolution of its
  prev_events' states, or a state the caller fetched from another server
  when prev_events are missing): failing rejects it too;
- against the room's current state: failing *soft-fails* it (stored with
  its state, not served to clients, never a prev_event of a new event,
  no change to the current state).

An accepted timeline event moves the room's forward extremities and
current state (so memberships of remote users too) and wakes /sync like a
local event.
"""

from __future__ import annotations

import logging
from collections.abc import Collection, Iterable, Mapping, Sequence

from hamlet.core import errors as core_errors
from hamlet.core.auth_rules import (
    auth_check,
    auth_types_for_event,
    check_auth_events,
    earlier_redaction_applies,
    may_redact_others,
    redaction_allowed,
)
from hamlet.core.dag import MAX_RECEIVED_AUTH_EVENTS, MAX_RECEIVED_PREV_EVENTS
from hamlet.core.events import Event
from hamlet.core.power_levels import CREATE_KEY, AuthState, StateKey
from hamlet.core.room_versions import RoomVersion
from hamlet.handlers.common.errors import BadJsonError, MatrixError, NotFoundError
from hamlet.handlers.rooms.event_cache import EventCache
from hamlet.handlers.rooms.persistence import EventPersister, Outcome, StateBefore
from hamlet.handlers.rooms.state import StateHandler
from hamlet.storage.stores.events import EventsStore, StoredEvent

logger = logging.getLogger(__name__)

# A state given whole by the caller may name at most this many events.
MAX_STATE_SIZE = 100_000


class MissingEventsError(MatrixError):
    """Events the PDU needs are not stored: the caller fetches them and retries."""

    def __init__(self, message: str, missing: Iterable[str]) -> None:
        self.missing = sorted(set(missing))
        super().__init__(400, "M_MISSING_EVENTS", message, missing=self.missing)


class FederatedEventHandler:
    def __init__(
        self,
        *,
        persister: EventPersister,
        events: EventsStore,
        state: StateHandler,
        cache: EventCache,
    ) -> None:
        self.persister = persister
        self.events_store = events
        self.state = state
        self.cache = cache

    async def persist_event(
        self,
        event: Event,
        *,
        outlier: bool = False,
        state: Mapping[StateKey, str] | None = None,
        backfill_at: int | None = None,
        own_join: bool = False,
    ) -> StoredEvent:
        """Store a checked PDU from another server and return how it was stored.

        `event` carries its room version, which must be the room's. Its
        auth events must be stored already (the caller fetches missing ones
        through /event_auth and persists them first, as outliers, create
        event first); otherwise `MissingEventsError` names them.
        `outlier=True` stores it without state (an auth or state event
        fetched on the side). Otherwise it joins the timeline: its
        prev_events must be stored timeline events, unless `state` (the
        state before it, `(type, state_key) -> event_id` as /state_ids
        gives it, every event stored) is given; a missing prev_event raises
        `MissingEventsError` so the caller can fetch it or the state.

        `backfill_at` (a position from `EventPersister.reserve_backfill`)
        stores it as old history fetched by /backfill: checked against its
        auth events and the state before it, never soft-failed, and the
        room's extremities and current state stay as they are; a redaction
        among it applies to a stored event as a live one does.

        `own_join`: our user's join through another server, with `state`
        from its answer. No local user is in the room, so what we hold of
        it (if we were in it before) is stale: the join is not checked
        against the current state, and becomes the room's only forward
        extremity, its state the current state.

        An event already stored is returned as it is (an outlier given
        again as a timeline event joins the timeline).
        """
        if state is not None and len(state) > MAX_STATE_SIZE:
            raise BadJsonError("State too large")
        async with self.persister.lock(event.room_id):
            existing = await self.events_store.get_events([event.event_id], include_rejected=True)
            known = existing.get(event.event_id)
            if known is not None and (outlier or not known.outlier):
                return known
            version = await self._room_version(event)
            too_many = _too_many_references(event)
            if too_many is not None:
                # Not worth fetching anything for: stored rejected, without state.
                return await self.persister.persist(
                    event, version, None, outcome=Outcome(rejected_reason=too_many)
                )
            rejection = await self._check_auth_events(version, event)
            if outlier:
                return await self.persister.persist(
                    event, version, None, outcome=Outcome(rejected_reason=rejection)
                )
            before = await self._state_before(version, event, state)
            auth_state = await self.persister.load_state(
                before.ids, self._auth_keys(version, event)
            )
            if rejection is None:
                rejection = _auth_failure(version, event, auth_state)
            if rejection is not None:
                logger.info("Rejecting %s: %s", event.event_id, rejection)
                return await self.persister.persist(
                    event,
                    version,
                    before,
                    outcome=Outcome(rejected_reason=rejection),
                    backfill_at=backfill_at,
                )
            if (
                backfill_at is None
                and not own_join
                and await self._fails_current_state(version, event)
            ):
                logger.info("Soft-failing %s", event.event_id)
                return await self.persister.persist(
                    event, version, before, outcome=Outcome(soft_failed=True)
                )
            redacts = event.redacts is not None
            return await self.persister.persist(
                event,
                version,
                before,
                apply_redaction=redacts and await self._redaction_applies(event, auth_state),
                # Kept for the event it names, should that come later.
                redaction_power=may_redact_others(event.sender, auth_state) if redacts else None,
                redacted_by=await self._earlier_redaction(event),
                backfill_at=backfill_at,
                only_extremity=own_join,
            )

    async def persist_outliers(self, events: Sequence[Event]) -> list[StoredEvent]:
        """Store checked PDUs of one room as outliers (a join's state and
        auth chain), as `persist_event(event, outlier=True)` would one by
        one, in one write. Each event's auth events must be stored or come
        before it in `events` (else `MissingEventsError`, and none is stored)."""
        if not events:
            return []
        room_id = events[0].room_id
        if any(e.room_id != room_id for e in events):
            raise BadJsonError("Outliers stored together must be of one room")
        async with self.persister.lock(room_id):
            creates = [e for e in events if e.type == "m.room.create" and e.state_key == ""]
            version = await self._room_version((creates or list(events))[0])
            if any(e.room_version != version for e in events):
                raise BadJsonError("The events are not all of the room's version")
            stored = await self.events_store.get_events(
                {e.event_id for e in events}, include_rejected=True
            )
            # Auth events already checked: stored ones, then the new ones in turn.
            known = dict(stored)
            new: list[tuple[Event, Outcome]] = []
            for event in events:
                if event.event_id in known:
                    continue
                reason = _too_many_references(event) or await self._check_auth_events(
                    version, event, known
                )
                new.append((event, Outcome(outlier=True, rejected_reason=reason)))
                known[event.event_id] = StoredEvent(
                    0, event, None, None, outlier=True, rejected_reason=reason
                )
            written = {
                s.event.event_id: s for s in await self.persister.persist_outliers(version, new)
            }
        return [stored.get(e.event_id) or written[e.event_id] for e in events]

    async def _room_version(self, event: Event) -> RoomVersion:
        try:
            # Cached by the persister: a room's version never changes.
            version = await self.persister.room_version(event.room_id)
        except NotFoundError:
            if event.type == "m.room.create" and event.state_key == "":
                return event.room_version
            raise MissingEventsError("Unknown room: its create event comes first", []) from None
        if version != event.room_version:
            raise BadJsonError(
                f"Event is in room version {event.room_version.identifier},"
                f" the room is {version.identifier}"
            )
        return event.room_version

    async def _stored(self, event_ids: Collection[str]) -> dict[str, StoredEvent]:
        """Stored events, rejected ones included: from the event cache when
        there (it holds no rejected event), else from the store."""
        found = self.cache.cached(event_ids)
        rest = [e for e in event_ids if e not in found]
        if rest:
            found.update(await self.events_store.get_events(rest, include_rejected=True))
        return found

    async def _check_auth_events(
        self,
        version: RoomVersion,
        event: Event,
        known: Mapping[str, StoredEvent] | None = None,
    ) -> str | None:
        """Why the event fails against its own auth events, or None. Auth
        events are looked up in `known` first, then in the store."""
        known = known or {}
        wanted = [e for e in event.auth_events if e not in known]
        found = {**known, **await self._stored(wanted)}
        missing = [e for e in event.auth_events if e not in found]
        if missing:
            raise MissingEventsError("Auth events are missing", missing)
        auth_events = [found[e] for e in dict.fromkeys(event.auth_events)]
        rejected = [s.event.event_id for s in auth_events if s.rejected_reason is not None]
        if rejected:
            return f"auth event {rejected[0]} was rejected"
        try:
            check_auth_events(version, event, [s.event for s in auth_events])
        except core_errors.EventAuthError as e:
            return str(e)
        auth_state: dict[StateKey, Event] = {}
        for stored in auth_events:
            if stored.event.state_key is not None:
                auth_state[(stored.event.type, stored.event.state_key)] = stored.event
        if version.room_id_from_create_event and event.type != "m.room.create":
            # From v12 the create event is named by the room ID, not listed.
            create_id = "$" + event.room_id[1:]
            create = known.get(create_id) or await self.cache.get(create_id)
            if create is None:
                raise MissingEventsError("The create event is missing", [create_id])
            auth_state[CREATE_KEY] = create.event
        return _auth_failure(version, event, auth_state)

    async def _state_before(
        self, version: RoomVersion, event: Event, state: Mapping[StateKey, str] | None
    ) -> StateBefore:
        if state is not None:
            ids = dict(state)
            found = await self.events_store.get_events(ids.values())
            missing = [e for e in ids.values() if e not in found]
            if missing:
                raise MissingEventsError("State events are missing", missing)
            return await self.persister.state_from_snapshot(event.room_id, ids)
        prevs = await self._stored(event.prev_events)
        missing = [e for e in event.prev_events if e not in prevs or prevs[e].state_group is None]
        if missing:
            raise MissingEventsError("Prev events are missing", missing)
        groups = [prevs[e].state_group for e in dict.fromkeys(event.prev_events)]
        return await self.persister.state_at_groups(version, [g for g in groups if g is not None])

    @staticmethod
    def _auth_keys(version: RoomVersion, event: Event) -> set[StateKey]:
        keys = auth_types_for_event(
            version, event.type, event.state_key, event.sender, event.content
        )
        keys.add(CREATE_KEY)
        return keys

    async def _fails_current_state(self, version: RoomVersion, event: Event) -> bool:
        current = await self.state.get_current_state_ids(event.room_id)
        if not current:
            # A room we are only now joining has no current state yet: the
            # state given with our join becomes it.
            return False
        auth_state = await self.persister.load_state(current, self._auth_keys(version, event))
        return _auth_failure(version, event, auth_state) is not None

    async def _redaction_applies(self, event: Event, auth_state: AuthState) -> bool:
        """A received redaction is applied when its sender may redact the
        event (redact level, or the same server as the original's sender)."""
        assert event.redacts is not None
        original = await self.cache.get(event.redacts)
        if original is None or original.event.room_id != event.room_id:
            return False
        if original.event.type == "m.room.create":
            return False
        return redaction_allowed(event, original.event, auth_state)

    async def _earlier_redaction(self, event: Event) -> str | None:
        """A redaction of `event` we accepted before we had it, if one applies."""
        pending = await self.events_store.get_pending_redactions(event.event_id, event.room_id)
        for redaction_id, redacter, may_redact in pending:
            if earlier_redaction_applies(event, redacter, may_redact):
                return redaction_id
        return None


def _too_many_references(event: Event) -> str | None:
    if len(event.prev_events) > MAX_RECEIVED_PREV_EVENTS:
        return f"more than {MAX_RECEIVED_PREV_EVENTS} prev_events"
    if len(event.auth_events) > MAX_RECEIVED_AUTH_EVENTS:
        return f"more than {MAX_RECEIVED_AUTH_EVENTS} auth_events"
    return None


def _auth_failure(version: RoomVersion, event: Event, auth_state: AuthState) -> str | None:
    try:
        auth_check(version, event, auth_state)
    except core_errors.CoreError as e:
        return str(e) or type(e).__name__
    return None
