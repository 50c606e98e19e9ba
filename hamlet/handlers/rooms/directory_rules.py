"""`alias_creation_rules` and `room_list_publication_rules`: who may create
which aliases and publish which rooms, decided by the first matching rule
(Synapse's semantics: globs on user ID, room ID and alias; no match denies)."""

from __future__ import annotations

from collections.abc import Collection, Sequence
from dataclasses import dataclass
from typing import Final

from hamlet.config.model import DirectoryRule
from hamlet.core.glob import BudgetExhaustedError, Glob, WorkBudget, fold

#: Matching work one decision may do; operators write these globs, but a
#: pathological one must still not hold the loop.
DECISION_STEPS: Final = 1_000_000


@dataclass(frozen=True, slots=True)
class _Compiled:
    allow: bool
    user_id: Glob
    room_id: Glob
    alias: Glob | None  # None: `*`, which also matches a room without aliases


class DirectoryRules:
    def __init__(self, rules: Sequence[DirectoryRule]) -> None:
        self._rules = tuple(
            _Compiled(
                allow=rule.action == "allow",
                user_id=Glob.compile(rule.user_id),
                room_id=Glob.compile(rule.room_id),
                alias=None if rule.alias == "*" else Glob.compile(rule.alias),
            )
            for rule in rules
        )

    def allows(self, user_id: str, room_id: str, aliases: Collection[str]) -> bool:
        budget = WorkBudget(DECISION_STEPS)
        user, room = fold(user_id), fold(room_id)
        folded = [fold(alias) for alias in aliases]
        try:
            for rule in self._rules:
                if not rule.user_id.matches(user, budget):
                    continue
                if not rule.room_id.matches(room, budget):
                    continue
                if rule.alias is not None and not any(
                    rule.alias.matches(alias, budget) for alias in folded
                ):
                    continue
                return rule.allow
        except BudgetExhaustedError:
            return False
        return False


@dataclass(frozen=True, slots=True)
class DirectoryRuleSets:
    aliases: DirectoryRules
    publication: DirectoryRules

    @classmethod
    def from_config(
        cls, aliases: Sequence[DirectoryRule], publication: Sequence[DirectoryRule]
    ) -> DirectoryRuleSets:
        return cls(DirectoryRules(aliases), DirectoryRules(publication))
