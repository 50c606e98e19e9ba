"""Evaluates each new event against its room's local members' push rules.

It listens to the notifier, so event creation knows nothing of push: the
listener only records how far the events stream went and starts one
background worker per homeserver, which reads the new events in order and,
for every local member (and the invitee of an invite), stores the actions
of rules that notify. /notifications reads them, and the pushers of the
users who got one are woken to deliver them. The worker yields the loop
every `YIELD_EVERY` members and after costly matching, so a room with
thousands of members delays nobody's requests.

What is evaluated but not yet stored when the process stops is not
evaluated again after a restart (as with Synapse's in-memory batch).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Collection, Sequence
from typing import Final, Protocol

from hamlet.core.glob import WorkBudget
from hamlet.core.push_rules import EVENT_STEPS, highlights, notifies
from hamlet.handlers.common.notifier import Notifier
from hamlet.handlers.common.service import ServiceBase
from hamlet.handlers.push.rules import YIELD_STEPS, PushRulesHandler, rule_fields
from hamlet.runtime.clock import Clock
from hamlet.storage.stores.events import StoredEvent
from hamlet.storage.stores.pushers import PushAction, PushersStore
from hamlet.storage.stores.rooms import Membership

logger = logging.getLogger(__name__)

#: Events read per batch.
BATCH: Final = 100
#: Members evaluated between two yields of the event loop.
YIELD_EVERY: Final = 50
#: Push actions are kept this long (Synapse keeps them about a month).
KEEP_ACTIONS_MS: Final = 30 * 24 * 3600 * 1000
PRUNE_EVERY_S: Final = 3600.0


class StreamPosition(Protocol):
    def current_position(self) -> int: ...


class EventsByStream(Protocol):
    async def get_events_by_stream(self, positions: Collection[int]) -> list[StoredEvent]: ...


class RoomMembers(Protocol):
    async def get_members(
        self, room_id: str, membership: str | None = "join"
    ) -> list[Membership]: ...


#: Told which users got new push actions (the pushers' pool).
ActionsListener = Callable[[set[str]], None]


class PushEvaluator(ServiceBase):
    def __init__(
        self,
        *,
        server_name: str,
        clock: Clock,
        notifier: Notifier,
        store: PushersStore,
        rules: PushRulesHandler,
        events: EventsByStream,
        members: RoomMembers,
        event_stream: StreamPosition,
    ) -> None:
        self._suffix = ":" + server_name
        self._clock = clock
        self._store = store
        self._rules = rules
        self._events = events
        self._members = members
        self._event_stream = event_stream
        self._listeners: list[ActionsListener] = []
        self._pos: int | None = None
        self._upto = 0
        self._working = False
        notifier.add_listener(self._on_notify)

    def add_listener(self, listener: ActionsListener) -> None:
        self._listeners.append(listener)

    # --- lifecycle ---

    def start(self) -> None:
        self._pos = self._upto = self._event_stream.current_position()
        self._clock.looping_call(self._prune, PRUNE_EVERY_S)

    def _prune(self) -> None:
        self._clock.run_as_background_process("prune_push_actions", self._prune_old)

    async def _prune_old(self) -> None:
        await self._store.delete_push_actions_before(self._clock.time_msec() - KEEP_ACTIONS_MS)

    @property
    def idle(self) -> bool:
        """Every announced event is evaluated (for tests and hibernation)."""
        return not self._working and (self._pos is None or self._pos >= self._upto)

    # --- the listener ---

    def _on_notify(
        self, stream: str, position: int, users: Sequence[str], rooms: Sequence[str]
    ) -> None:
        if stream != "events" or self._pos is None or position <= self._upto:
            return
        self._upto = position
        self._kick()

    def _kick(self) -> None:
        if self._working or self._clock.is_shut_down:
            return
        self._working = True
        self._clock.run_as_background_process("push_evaluate", self._work)

    async def _work(self) -> None:
        try:
            while self._pos is not None and self._pos < self._upto:
                upto = self._upto
                positions = await self._store.events_after(self._pos, upto, BATCH)
                if not positions:
                    self._pos = upto
                    break
                events = await self._events.get_events_by_stream(positions)
                events.sort(key=lambda s: s.stream_ordering)
                actions: list[PushAction] = []
                for stored in events:
                    actions.extend(await self._evaluate(stored))
                await self._store.add_push_actions(actions)
                self._pos = positions[-1] if len(positions) == BATCH else upto
                users = {a.user_id for a in actions}
                if users:
                    for listener in self._listeners:
                        listener(users)
        finally:
            self._working = False

    async def _evaluate(self, stored: StoredEvent) -> list[PushAction]:
        event = stored.event
        joined = await self._members.get_members(event.room_id)
        targets = [m.user_id for m in joined if m.user_id.endswith(self._suffix)]
        if (
            event.type == "m.room.member"
            and event.state_key is not None
            and event.content.get("membership") == "invite"
            and event.state_key.endswith(self._suffix)
        ):
            targets.append(event.state_key)
        event_dict = rule_fields(event)
        found: list[PushAction] = []
        spent = 0
        for i, user_id in enumerate(dict.fromkeys(targets)):
            if user_id == event.sender:
                continue
            if i % YIELD_EVERY == YIELD_EVERY - 1 or spent >= YIELD_STEPS:
                await self._clock.sleep(0)
                spent = 0
            budget = WorkBudget(EVENT_STEPS)
            try:
                actions = await self._rules.actions_for(user_id, event_dict, len(joined), budget)
            except Exception:
                logger.exception("Evaluating push rules of %s failed", user_id)
                continue
            spent += EVENT_STEPS - budget.remaining
            if notifies(actions):
                assert actions is not None
                found.append(
                    PushAction(
                        user_id,
                        stored.stream_ordering,
                        event.room_id,
                        event.event_id,
                        actions,
                        highlights(actions),
                        self._clock.time_msec(),
                    )
                )
        return found
