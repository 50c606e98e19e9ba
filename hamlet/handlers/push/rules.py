"""Push rules per user, and the unread notification counts /sync serves.

A user's own rules and changes to the default rules are stored by
`PushRulesStore`, a row each, so a change writes only what it changes;
it also writes the merged ruleset as the user's `m.push_rules` global
account data in the same transaction, at a new account data stream id, so
/sync carries it. What is stored and the merged `Ruleset` are cached per
user; changes are serialised by a lock and applied to the cached copy.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Final

from hamlet.core import push_rules as rules_core
from hamlet.core.events import Event
from hamlet.core.glob import WorkBudget
from hamlet.core.power_levels import (
    CREATE_KEY,
    POWER_LEVELS_KEY,
    StateKey,
    get_power_levels_content,
    get_room_creator,
)
from hamlet.core.push_rules import (
    EVENT_STEPS,
    InvalidRuleError,
    InvalidRuleIdError,
    PushContext,
    PushRuleError,
    RuleNotFoundError,
    Ruleset,
    RuleTooLargeError,
    TooManyRulesError,
    UserPushRules,
    build_ruleset,
    evaluate,
    highlights,
    notifies,
)
from hamlet.handlers.common.errors import (
    BadJsonError,
    ForbiddenError,
    InvalidParamError,
    MatrixError,
    NotFoundError,
)
from hamlet.handlers.common.service import ServiceBase
from hamlet.handlers.rooms.state import StateHandler
from hamlet.handlers.user_streams.account_data import AccountDataHandler
from hamlet.runtime.clock import Clock
from hamlet.runtime.lru import LruCache
from hamlet.storage.stores.events import StoredEvent
from hamlet.storage.stores.push_rules import (
    PRIORITY,
    PushRulesStore,
    priority_between,
    renumbered,
)
from hamlet.storage.stores.room_history import RoomHistoryStore

logger = logging.getLogger(__name__)

PUSH_RULES_TYPE: Final = "m.push_rules"


def context_keys(user_id: str) -> set[StateKey]:
    """The state a room's push context is made of."""
    return {("m.room.member", user_id), POWER_LEVELS_KEY, CREATE_KEY}


#: Unread events of a room looked at for its notification counts (newest first).
UNREAD_LIMIT: Final = 100
SCOPES: Final = frozenset({"global"})
#: Stores one change, given the merged ruleset and its account data stream id.
Write = Callable[[dict[str, Any], int], Awaitable[None]]
#: Push rule matching one /sync may do over all its rooms (core/glob.py's
#: unit; about 100 ms): a full ruleset of 500 plain words against about
#: 80 events, a few rules against thousands. Beyond it, events count as
#: not notifying: a user with costly rules gets low counts, other
#: tenants keep their loop.
REQUEST_STEPS: Final = 100_000_000
#: Matching work (about 2 ms) after which evaluation lets the event loop
#: run other requests before the next event: a costly ruleset slows its
#: owner's /sync, not the neighbours' requests.
YIELD_STEPS: Final = 2_000_000


def request_budget() -> WorkBudget:
    """The matching budget of one request's unread counts."""
    return WorkBudget(REQUEST_STEPS)


def _matrix_error(error: PushRuleError) -> MatrixError:
    if isinstance(error, RuleNotFoundError):
        return NotFoundError("The push rule was not found.")
    if isinstance(error, InvalidRuleIdError | RuleTooLargeError):
        return InvalidParamError(str(error))
    if isinstance(error, TooManyRulesError):
        # 403, not 429: waiting does not help, deleting a rule does.
        return ForbiddenError(str(error), errcode="M_LIMIT_EXCEEDED")
    if isinstance(error, InvalidRuleError):
        return BadJsonError(str(error))
    # RelativeRuleError: the spec's example for an unknown before/after rule.
    return MatrixError(400, "M_UNKNOWN", str(error))


def rule_fields(event: Event) -> dict[str, Any]:
    """What push rule conditions look at in an event."""
    fields: dict[str, Any] = {
        "type": event.type,
        "sender": event.sender,
        "room_id": event.room_id,
        "content": event.content,
    }
    if event.state_key is not None:
        fields["state_key"] = event.state_key
    return fields


def check_scope(scope: str) -> None:
    if scope not in SCOPES:
        raise InvalidParamError(f"Unknown push rule scope {scope!r}; only 'global' is supported")


def check_kind(kind: str) -> None:
    try:
        rules_core.check_kind(kind)
    except PushRuleError as e:
        raise _matrix_error(e) from None


# A user's built default rule set in memory (measured), for the memory estimate.
RULESET_BYTES = 12_000
#: Verdicts of unread events kept (user, event): syncs count the same unread
#: events again and again until the user reads them.
VERDICT_CACHE_SIZE: Final = 5000
VERDICT_BYTES: Final = 200


@dataclass(frozen=True, slots=True)
class _Verdict:
    """Whether an event notifies a user, and the rules and room context it
    was judged by: valid only while both are unchanged."""

    ruleset: Ruleset
    context: PushContext
    notifies: bool
    highlights: bool


class PushRulesHandler(ServiceBase):
    name = "push_rules"

    def __init__(
        self,
        *,
        store: PushRulesStore,
        account_data: AccountDataHandler,
        history: RoomHistoryStore,
        state: StateHandler,
        clock: Clock,
        cache_size: int = 500,
    ) -> None:
        self._clock = clock
        self._store = store
        self._account_data = account_data
        self._history = history
        self._state = state
        # What the store holds for a user (rules with their priorities), and
        # the merged ruleset built from it.
        self._cache: LruCache[str, tuple[UserPushRules, Ruleset]] = LruCache(cache_size)
        # Bumped by every change, so a reader that loaded before a change
        # committed does not cache what it read.
        self._generation = 0
        self._lock = asyncio.Lock()
        self._verdicts: LruCache[tuple[str, str], _Verdict] = LruCache(VERDICT_CACHE_SIZE)

    # --- reading ---

    async def _load(self, user_id: str) -> tuple[UserPushRules, Ruleset]:
        cached = self._cache.get(user_id)
        if cached is not None:
            return cached
        generation = self._generation
        stored = await self._store.get(user_id)
        loaded = (stored, build_ruleset(user_id, stored))
        if generation == self._generation:
            self._cache.set(user_id, loaded)
        return loaded

    async def get_ruleset(self, user_id: str) -> Ruleset:
        return (await self._load(user_id))[1]

    async def get_rules(self, user_id: str) -> dict[str, Any]:
        """`{"global": {kind: [rule, ...]}}`: also the `m.push_rules` content."""
        return (await self.get_ruleset(user_id)).to_json()

    async def get_kind(self, user_id: str, kind: str) -> list[dict[str, Any]]:
        check_kind(kind)
        return (await self.get_ruleset(user_id)).global_json()[kind]

    async def get_rule(self, user_id: str, kind: str, rule_id: str) -> dict[str, Any]:
        check_kind(kind)
        rule = (await self.get_ruleset(user_id)).find(kind, rule_id)
        if rule is None:
            raise NotFoundError("The push rule was not found.")
        return rule.to_json()

    # --- changing: each writes the one rule it changes (and rarely its
    # siblings' priorities), plus the merged ruleset as account data ---

    async def add_rule(
        self,
        user_id: str,
        kind: str,
        rule_id: str,
        body: Mapping[str, Any],
        *,
        before: str | None = None,
        after: str | None = None,
    ) -> None:
        def apply(old: UserPushRules) -> tuple[UserPushRules, Write]:
            new = rules_core.add_rule(old, kind, rule_id, body, before=before, after=after)
            rules = new.custom[kind]
            index = new.find(kind, rule_id)
            assert index is not None
            rule = rules[index]
            previous = old.find(kind, rule_id)
            if previous is not None and before is None and after is None:
                priority: int | None = old.custom[kind][previous][PRIORITY]
            else:
                neighbour = [
                    rules[i].get(PRIORITY) if 0 <= i < len(rules) else None
                    for i in (index - 1, index + 1)
                ]
                priority = priority_between(neighbour[0], neighbour[1])
            reorder: list[tuple[str, int]] = []
            if priority is None:
                reorder = renumbered(rules)
                for other, (_, renumber) in zip(rules, reorder, strict=True):
                    other[PRIORITY] = renumber
            else:
                rule[PRIORITY] = priority
            return new, lambda ruleset, stream_id: self._store.put_rule(
                user_id, kind, rule, ruleset, stream_id, reorder=reorder
            )

        await self._change(user_id, apply)

    async def delete_rule(self, user_id: str, kind: str, rule_id: str) -> None:
        def apply(old: UserPushRules) -> tuple[UserPushRules, Write]:
            new = rules_core.delete_rule(old, kind, rule_id)
            return new, lambda ruleset, stream_id: self._store.delete_rule(
                user_id, kind, rule_id, ruleset, stream_id
            )

        await self._change(user_id, apply)

    async def set_enabled(self, user_id: str, kind: str, rule_id: str, enabled: bool) -> None:
        await self._change(
            user_id,
            lambda old: self._changed_rule(
                user_id, kind, rule_id, rules_core.set_enabled(old, kind, rule_id, enabled)
            ),
        )

    async def set_actions(self, user_id: str, kind: str, rule_id: str, actions: Any) -> None:
        await self._change(
            user_id,
            lambda old: self._changed_rule(
                user_id, kind, rule_id, rules_core.set_actions(old, kind, rule_id, actions)
            ),
        )

    def _changed_rule(
        self, user_id: str, kind: str, rule_id: str, new: UserPushRules
    ) -> tuple[UserPushRules, Write]:
        """The write for `enabled` or `actions` of a rule changed in `new`:
        a user rule's row, or the changes to a default rule."""
        index = new.find(kind, rule_id)
        if index is not None:
            rule = new.custom[kind][index]
            return new, lambda ruleset, stream_id: self._store.put_rule(
                user_id, kind, rule, ruleset, stream_id
            )
        key = f"{kind}/{rule_id}"
        changes = {"enabled": new.enabled.get(key), "actions": new.actions.get(key)}
        return new, lambda ruleset, stream_id: self._store.put_default_changes(
            user_id, kind, rule_id, changes, ruleset, stream_id
        )

    async def _change(
        self, user_id: str, apply: Callable[[UserPushRules], tuple[UserPushRules, Write]]
    ) -> None:
        async with self._lock:
            old, previous = await self._load(user_id)
            try:
                new, write = apply(old)
            except PushRuleError as e:
                raise _matrix_error(e) from None
            ruleset = build_ruleset(user_id, new, previous)
            try:
                await self._account_data.write_with(
                    user_id, lambda stream_id: write(ruleset.to_json(copy=False), stream_id)
                )
            finally:
                self._generation += 1
                self._cache.pop(user_id)
            self._cache.set(user_id, (new, ruleset))

    # --- /sync ---

    async def unread_counts(
        self,
        user_id: str,
        room_id: str,
        *,
        after: int,
        upto: int,
        member_count: int,
        budget: WorkBudget | None = None,
    ) -> tuple[int, int]:
        """(notification_count, highlight_count) over the room's newest
        `UNREAD_LIMIT` events in (after, upto] sent by others. Matching
        spends `budget` (the request's; a fresh `request_budget()` without
        one); events evaluated after it ran out count as not notifying."""
        if upto <= after:
            return 0, 0
        events = await self._history.get_room_events(
            room_id, after=after, before=upto, limit=UNREAD_LIMIT, backwards=True
        )
        return await self.count_unread(user_id, room_id, events, member_count, budget)

    async def count_unread(
        self,
        user_id: str,
        room_id: str,
        events: Sequence[StoredEvent],
        member_count: int,
        budget: WorkBudget | None,
        state: Mapping[StateKey, Event] | None = None,
    ) -> tuple[int, int]:
        """`unread_counts` over `events`, already read (newest first, at
        most `UNREAD_LIMIT`, all after the user's read position); `state`:
        the room's current `CONTEXT_KEYS` state, if the caller has it."""
        candidates = [
            s.event for s in events if s.redacted_by is None and s.event.sender != user_id
        ]
        if not candidates:
            return 0, 0
        ruleset = await self.get_ruleset(user_id)
        context = await self._context(user_id, room_id, member_count, state)
        budget = budget or request_budget()
        notifications = highlight = 0
        since_yield = budget.remaining
        for event in candidates:
            if since_yield - budget.remaining >= YIELD_STEPS:
                await self._clock.sleep(0)
                since_yield = budget.remaining
            verdict = self._verdict(user_id, event, ruleset, context, budget)
            if verdict.notifies:
                notifications += 1
                if verdict.highlights:
                    highlight += 1
        if budget.remaining <= 0:
            logger.info(
                "Push rule budget spent for %s in %s: unread counts are low", user_id, room_id
            )
        return notifications, highlight

    def _verdict(
        self,
        user_id: str,
        event: Event,
        ruleset: Ruleset,
        context: PushContext,
        budget: WorkBudget,
    ) -> _Verdict:
        """The event judged by the user's rules, from the cache when judged
        by the same rules in the same context before."""
        key = (user_id, event.event_id)
        cached = self._verdicts.get(key)
        if cached is not None and cached.ruleset is ruleset and cached.context == context:
            return cached
        # Cut short by what the request had left, a verdict says nothing of
        # the event: only one judged with its full allowance is kept.
        whole = budget.remaining >= EVENT_STEPS
        actions = evaluate(ruleset, rule_fields(event), context, budget)
        verdict = _Verdict(ruleset, context, notifies(actions), highlights(actions))
        if whole:
            self._verdicts.set(key, verdict)
        return verdict

    async def actions_for(
        self,
        user_id: str,
        event_dict: Mapping[str, Any],
        member_count: int,
        budget: WorkBudget,
    ) -> list[Any] | None:
        """The user's push rules' actions for one event of a room they are in."""
        ruleset = await self.get_ruleset(user_id)
        context = await self._context(user_id, str(event_dict["room_id"]), member_count)
        return evaluate(ruleset, event_dict, context, budget)

    async def _context(
        self,
        user_id: str,
        room_id: str,
        member_count: int,
        state: Mapping[StateKey, Event] | None = None,
    ) -> PushContext:
        member_key: StateKey = ("m.room.member", user_id)
        if state is None:
            state = await self._state.get_current_state(room_id, context_keys(user_id))
        member = state.get(member_key)
        name = member.content.get("displayname") if member is not None else None
        create = state.get(CREATE_KEY)
        return PushContext(
            user_id=user_id,
            display_name=name if isinstance(name, str) else None,
            member_count=member_count,
            power_levels=get_power_levels_content(state),
            creator=get_room_creator(create) if create is not None else None,
        )

    # --- service surface ---

    def clear_caches(self) -> None:
        self._cache.clear()
        self._verdicts.clear()

    def memory_usage(self) -> int:
        return len(self._cache) * RULESET_BYTES + len(self._verdicts) * VERDICT_BYTES

    async def shutdown(self) -> None:
        self._cache.clear()
        self._verdicts.clear()
