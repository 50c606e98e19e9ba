"""Push rules per user, and the unread notification counts /sync serves.

A user's changes to the default rules are stored by `PushRulesStore`; each
change also writes the merged ruleset as the user's `m.push_rules` global
account data in the same transaction, at a new account data stream id, so
/sync carries it. The merged `Ruleset` is cached per user.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Mapping
from typing import Any, Final

from hamlet.core import push_rules as rules_core
from hamlet.core.glob import WorkBudget
from hamlet.core.power_levels import (
    CREATE_KEY,
    POWER_LEVELS_KEY,
    StateKey,
    get_power_levels_content,
    get_room_creator,
)
from hamlet.core.push_rules import (
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
from hamlet.handlers.rooms.state import StateHandler
from hamlet.handlers.user_streams.account_data import AccountDataHandler
from hamlet.runtime.lru import LruCache
from hamlet.storage.stores.push_rules import PushRulesStore
from hamlet.storage.stores.room_history import RoomHistoryStore

PUSH_RULES_TYPE: Final = "m.push_rules"
#: Unread events of a room looked at for its notification counts (newest first).
UNREAD_LIMIT: Final = 100
SCOPES: Final = frozenset({"global"})
#: Push rule matching one /sync may do over all its rooms (see
#: core/glob.py for the unit: about 50 ms of the worst kind of work).
REQUEST_STEPS: Final = 50_000_000


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


def check_scope(scope: str) -> None:
    if scope not in SCOPES:
        raise InvalidParamError(f"Unknown push rule scope {scope!r}; only 'global' is supported")


def check_kind(kind: str) -> None:
    try:
        rules_core.check_kind(kind)
    except PushRuleError as e:
        raise _matrix_error(e) from None


class PushRulesHandler:
    name = "push_rules"

    def __init__(
        self,
        *,
        store: PushRulesStore,
        account_data: AccountDataHandler,
        history: RoomHistoryStore,
        state: StateHandler,
        cache_size: int = 500,
    ) -> None:
        self._store = store
        self._account_data = account_data
        self._history = history
        self._state = state
        self._cache: LruCache[str, Ruleset] = LruCache(cache_size)
        # Bumped by every change, so a reader that loaded before a change
        # committed does not cache what it read.
        self._generation = 0
        self._lock = asyncio.Lock()

    # --- reading ---

    async def get_ruleset(self, user_id: str) -> Ruleset:
        cached = self._cache.get(user_id)
        if cached is not None:
            return cached
        generation = self._generation
        ruleset = build_ruleset(user_id, UserPushRules.from_json(await self._store.get(user_id)))
        if generation == self._generation:
            self._cache.set(user_id, ruleset)
        return ruleset

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

    # --- changing ---

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
        await self._change(
            user_id,
            lambda rules: rules_core.add_rule(
                rules, kind, rule_id, body, before=before, after=after
            ),
        )

    async def delete_rule(self, user_id: str, kind: str, rule_id: str) -> None:
        await self._change(user_id, lambda rules: rules_core.delete_rule(rules, kind, rule_id))

    async def set_enabled(self, user_id: str, kind: str, rule_id: str, enabled: bool) -> None:
        await self._change(
            user_id, lambda rules: rules_core.set_enabled(rules, kind, rule_id, enabled)
        )

    async def set_actions(self, user_id: str, kind: str, rule_id: str, actions: Any) -> None:
        await self._change(
            user_id, lambda rules: rules_core.set_actions(rules, kind, rule_id, actions)
        )

    async def _change(self, user_id: str, apply: Callable[[UserPushRules], UserPushRules]) -> None:
        built: list[Ruleset] = []

        def change(old: Any | None) -> tuple[Any, dict[str, Any]]:
            new = apply(UserPushRules.from_json(old))
            ruleset = build_ruleset(user_id, new)
            built.append(ruleset)
            return new.to_json(), ruleset.to_json()

        async with self._lock:
            try:
                await self._account_data.write_with(
                    user_id, lambda stream_id: self._store.update(user_id, change, stream_id)
                )
            except PushRuleError as e:
                raise _matrix_error(e) from None
            finally:
                self._generation += 1
                self._cache.pop(user_id)
            self._cache.set(user_id, built[-1])

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
        candidates = [
            s.event for s in events if s.redacted_by is None and s.event.sender != user_id
        ]
        if not candidates:
            return 0, 0
        ruleset = await self.get_ruleset(user_id)
        context = await self._context(user_id, room_id, member_count)
        budget = budget or request_budget()
        notifications = highlight = 0
        for event in candidates:
            event_dict: dict[str, Any] = {
                "type": event.type,
                "sender": event.sender,
                "room_id": event.room_id,
                "content": event.content,
            }
            if event.state_key is not None:
                event_dict["state_key"] = event.state_key
            actions = evaluate(ruleset, event_dict, context, budget)
            if notifies(actions):
                notifications += 1
                if highlights(actions):
                    highlight += 1
        return notifications, highlight

    async def _context(self, user_id: str, room_id: str, member_count: int) -> PushContext:
        member_key: StateKey = ("m.room.member", user_id)
        state = await self._state.get_current_state(
            room_id, {member_key, POWER_LEVELS_KEY, CREATE_KEY}
        )
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

    def memory_usage(self) -> int:
        return len(self._cache)

    async def shutdown(self) -> None:
        self._cache.clear()
