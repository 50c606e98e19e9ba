"""Push rules: the server-default ruleset, a user's changes to it, and the evaluator.

A user's push rules are the server-default rules (whose ids start with a
dot) merged with what the user changed: their own rules per kind, in
priority order, and `enabled` / `actions` overrides of default rules
(`UserPushRules`). `build_ruleset()` merges the two into a `Ruleset`, which
both serializes to the client shape (`{"global": {kind: [rule, ...]}}`) and
is what `evaluate()` walks: the first enabled rule whose conditions all
hold gives the event's actions.

Priority order: `.m.rule.master`, the user's override rules, the other
default override rules, then content, room, sender and underride rules,
each kind with the user's rules before the defaults.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import InitVar, dataclass, field
from typing import Any, Final

import orjson

from hamlet.core.errors import CoreError
from hamlet.core.glob import LOOP_COST, BudgetExhaustedError, Glob, WorkBudget, fold
from hamlet.core.json_paths import split_path
from hamlet.core.power_levels import (
    CREATOR_LEVEL_WITHOUT_POWER_LEVELS,
    DEFAULT_USERS,
    as_int,
    get_named_level,
    get_notification_level,
)

KINDS: Final = ("override", "content", "room", "sender", "underride")
#: Kinds whose rules carry a `conditions` list.
CONDITION_KINDS: Final = frozenset({"override", "underride"})

MASTER: Final = ".m.rule.master"
#: Legacy mention rules, skipped for events that use intentional mentions
#: (`content["m.mentions"]`), as Synapse does (MSC3952).
LEGACY_MENTION_RULES: Final = frozenset(
    {
        ("override", ".m.rule.contains_display_name"),
        ("override", ".m.rule.roomnotif"),
        ("content", ".m.rule.contains_user_name"),
    }
)

#: Actions the spec once defined; they are accepted and ignored.
HISTORICAL_ACTIONS: Final = frozenset({"dont_notify", "coalesce"})

_USER_ID: Final = "[the user's Matrix ID]"
_LOCALPART: Final = "[the user's localpart]"


class PushRuleError(CoreError):
    """A push rule request cannot be applied."""


class RuleNotFoundError(PushRuleError):
    """No rule with this kind and id."""


class InvalidRuleError(PushRuleError):
    """A rule's body (actions, conditions, pattern) is malformed."""


class InvalidRuleIdError(PushRuleError):
    """A rule id or kind that cannot be used."""


class RelativeRuleError(PushRuleError):
    """`before` / `after` names no user rule of the same kind."""


class RuleTooLargeError(InvalidRuleError):
    """A rule whose id, pattern, conditions or actions exceed their bounds."""


class TooManyRulesError(PushRuleError):
    """The user already has `MAX_USER_RULES` rules of their own."""


# --- bounds on what one user may store ---------------------------------------
# Every rule is evaluated against every event the user can see, so their
# number and size bound the work a user's rules cost the server. Synapse
# has no such caps; these are far above what clients create.

#: A user's own rules, all kinds together.
MAX_USER_RULES: Final = 500
MAX_RULE_ID_LENGTH: Final = 255
#: Characters of a glob pattern, and of any condition's string fields.
MAX_PATTERN_LENGTH: Final = 1000
MAX_CONDITIONS: Final = 32
MAX_ACTIONS: Final = 32


# --- the server-default rules ---------------------------------------------

_NOTIFY_SOUND: Final[list[Any]] = ["notify", {"set_tweak": "sound", "value": "default"}]
_HIGHLIGHT_SOUND: Final[list[Any]] = [*_NOTIFY_SOUND, {"set_tweak": "highlight"}]


def _match(key: str, pattern: str) -> dict[str, Any]:
    return {"kind": "event_match", "key": key, "pattern": pattern}


def _is(key: str, value: Any) -> dict[str, Any]:
    return {"kind": "event_property_is", "key": key, "value": value}


# (rule_id, conditions, actions, enabled); in priority order. The master
# rule is first: it outranks user override rules too.
_DEFAULT_OVERRIDE: Final[list[tuple[str, list[dict[str, Any]], list[Any], bool]]] = [
    (MASTER, [], [], False),
    (".m.rule.suppress_notices", [_match("content.msgtype", "m.notice")], [], True),
    (
        ".m.rule.invite_for_me",
        [
            _match("type", "m.room.member"),
            _match("content.membership", "invite"),
            _match("state_key", _USER_ID),
        ],
        _NOTIFY_SOUND,
        True,
    ),
    (".m.rule.member_event", [_match("type", "m.room.member")], [], True),
    (
        ".m.rule.is_user_mention",
        [
            {
                "kind": "event_property_contains",
                "key": "content.m\\.mentions.user_ids",
                "value": _USER_ID,
            }
        ],
        _HIGHLIGHT_SOUND,
        True,
    ),
    (".m.rule.contains_display_name", [{"kind": "contains_display_name"}], _HIGHLIGHT_SOUND, True),
    (
        ".m.rule.is_room_mention",
        [
            _is("content.m\\.mentions.room", True),
            {"kind": "sender_notification_permission", "key": "room"},
        ],
        ["notify", {"set_tweak": "highlight"}],
        True,
    ),
    (
        ".m.rule.roomnotif",
        [
            _match("content.body", "@room"),
            {"kind": "sender_notification_permission", "key": "room"},
        ],
        ["notify", {"set_tweak": "highlight"}],
        True,
    ),
    (
        ".m.rule.tombstone",
        [_match("type", "m.room.tombstone"), _match("state_key", "")],
        ["notify", {"set_tweak": "highlight"}],
        True,
    ),
    (".m.rule.reaction", [_match("type", "m.reaction")], [], True),
    (
        ".m.rule.room.server_acl",
        [_match("type", "m.room.server_acl"), _match("state_key", "")],
        [],
        True,
    ),
    (
        ".m.rule.suppress_edits",
        [_is("content.m\\.relates_to.rel_type", "m.replace")],
        [],
        True,
    ),
]

_DEFAULT_CONTENT: Final[list[tuple[str, str, list[Any]]]] = [
    (".m.rule.contains_user_name", _LOCALPART, _HIGHLIGHT_SOUND),
]

_DEFAULT_UNDERRIDE: Final[list[tuple[str, list[dict[str, Any]], list[Any]]]] = [
    (
        ".m.rule.call",
        [_match("type", "m.call.invite")],
        ["notify", {"set_tweak": "sound", "value": "ring"}],
    ),
    (
        ".m.rule.encrypted_room_one_to_one",
        [{"kind": "room_member_count", "is": "2"}, _match("type", "m.room.encrypted")],
        _NOTIFY_SOUND,
    ),
    (
        ".m.rule.room_one_to_one",
        [{"kind": "room_member_count", "is": "2"}, _match("type", "m.room.message")],
        _NOTIFY_SOUND,
    ),
    (".m.rule.message", [_match("type", "m.room.message")], ["notify"]),
    (".m.rule.encrypted", [_match("type", "m.room.encrypted")], ["notify"]),
]

#: Ids of the server-default rules of each kind.
DEFAULT_RULE_IDS: Final[Mapping[str, frozenset[str]]] = {
    "override": frozenset(r[0] for r in _DEFAULT_OVERRIDE),
    "content": frozenset(r[0] for r in _DEFAULT_CONTENT),
    "room": frozenset(),
    "sender": frozenset(),
    "underride": frozenset(r[0] for r in _DEFAULT_UNDERRIDE),
}


def _localpart(user_id: str) -> str:
    return user_id[1:].split(":", 1)[0] if user_id.startswith("@") else user_id


def _personalise(value: Any, user_id: str) -> Any:
    """A deep copy of `value` with the user placeholders filled in."""
    if value == _USER_ID:
        return user_id
    if value == _LOCALPART:
        return _localpart(user_id)
    if isinstance(value, dict):
        return {k: _personalise(v, user_id) for k, v in value.items()}
    if isinstance(value, list):
        return [_personalise(v, user_id) for v in value]
    return value


@dataclass(frozen=True, slots=True)
class PushRule:
    kind: str
    rule_id: str
    actions: Sequence[Any]
    default: bool
    enabled: bool
    conditions: Sequence[Mapping[str, Any]] = ()
    pattern: str | None = None
    #: False to build the rule only to compare it with an earlier one.
    compile_globs: InitVar[bool] = True
    #: Compiled once per rule: the pattern's glob (content rules), or one
    #: per condition (None where it is no `event_match`).
    globs: tuple[Glob | None, ...] = field(init=False, repr=False, compare=False)

    def __post_init__(self, compile_globs: bool) -> None:
        if not compile_globs:
            object.__setattr__(self, "globs", ())
            return
        if self.kind == "content":
            globs: tuple[Glob | None, ...] = (
                None if self.pattern is None else Glob.compile(self.pattern),
            )
        else:
            globs = tuple(_event_match_glob(c) for c in self.conditions)
        object.__setattr__(self, "globs", globs)

    def compiled(self) -> PushRule:
        """This rule with its globs compiled."""
        return PushRule(
            self.kind,
            self.rule_id,
            self.actions,
            self.default,
            self.enabled,
            conditions=self.conditions,
            pattern=self.pattern,
        )

    def to_json(self, *, copy: bool = True) -> dict[str, Any]:
        """The client shape; with `copy=False` sharing this rule's actions and
        conditions, for a caller that only encodes it."""
        own = _json_copy if copy else list
        out: dict[str, Any] = {
            "rule_id": self.rule_id,
            "default": self.default,
            "enabled": self.enabled,
            "actions": own(self.actions),
        }
        if self.kind in CONDITION_KINDS:
            out["conditions"] = own(self.conditions)
        elif self.kind == "content" and self.pattern is not None:
            out["pattern"] = self.pattern
        return out


def default_rules(user_id: str) -> dict[str, list[PushRule]]:
    """The server-default rules of `user_id`, per kind, in priority order."""
    out: dict[str, list[PushRule]] = {kind: [] for kind in KINDS}
    for rule_id, conditions, actions, enabled in _DEFAULT_OVERRIDE:
        out["override"].append(
            PushRule(
                "override",
                rule_id,
                _personalise(actions, user_id),
                True,
                enabled,
                conditions=_personalise(conditions, user_id),
            )
        )
    for rule_id, pattern, actions in _DEFAULT_CONTENT:
        out["content"].append(
            PushRule(
                "content",
                rule_id,
                _personalise(actions, user_id),
                True,
                True,
                pattern=_personalise(pattern, user_id),
            )
        )
    for rule_id, conditions, actions in _DEFAULT_UNDERRIDE:
        out["underride"].append(
            PushRule(
                "underride",
                rule_id,
                _personalise(actions, user_id),
                True,
                True,
                conditions=_personalise(conditions, user_id),
            )
        )
    return out


# --- a user's changes -----------------------------------------------------


def _json_copy(value: Sequence[Any]) -> list[Any]:
    """A deep copy of JSON data, many times faster than `copy.deepcopy`."""
    copied: list[Any] = orjson.loads(orjson.dumps(value))
    return copied


def _key(kind: str, rule_id: str) -> str:
    return f"{kind}/{rule_id}"


@dataclass(slots=True)
class UserPushRules:
    """What a user changed: their own rules, and overrides of default rules.

    `custom[kind]` is in priority order, highest first; each entry is
    `{"rule_id", "actions", "enabled"}` plus `conditions` (override,
    underride) or `pattern` (content). `enabled` / `actions` are keyed by
    `"kind/rule_id"` of a server-default rule.
    """

    custom: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    enabled: dict[str, bool] = field(default_factory=dict)
    actions: dict[str, list[Any]] = field(default_factory=dict)

    @classmethod
    def from_json(cls, data: Any) -> UserPushRules:
        if not isinstance(data, Mapping):
            return cls()
        custom_raw = data.get("custom")
        custom: dict[str, list[dict[str, Any]]] = {}
        if isinstance(custom_raw, Mapping):
            for kind in KINDS:
                rules = custom_raw.get(kind)
                if isinstance(rules, list):
                    custom[kind] = [dict(r) for r in rules if isinstance(r, Mapping)]
        enabled_raw = data.get("enabled")
        enabled = (
            {k: v for k, v in enabled_raw.items() if isinstance(v, bool)}
            if isinstance(enabled_raw, Mapping)
            else {}
        )
        actions_raw = data.get("actions")
        actions = (
            {k: list(v) for k, v in actions_raw.items() if isinstance(v, list)}
            if isinstance(actions_raw, Mapping)
            else {}
        )
        return cls(custom, enabled, actions)

    def to_json(self) -> dict[str, Any]:
        return {
            "custom": {kind: rules for kind, rules in self.custom.items() if rules},
            "enabled": dict(self.enabled),
            "actions": dict(self.actions),
        }

    def copy(self) -> UserPushRules:
        """A copy to change: rules are replaced, never changed in place, so
        the rules themselves are shared."""
        return UserPushRules(
            {kind: [dict(r) for r in rules] for kind, rules in self.custom.items()},
            dict(self.enabled),
            {key: list(actions) for key, actions in self.actions.items()},
        )

    def count(self) -> int:
        return sum(len(rules) for rules in self.custom.values())

    def find(self, kind: str, rule_id: str) -> int | None:
        for i, rule in enumerate(self.custom.get(kind, [])):
            if rule.get("rule_id") == rule_id:
                return i
        return None


def check_kind(kind: str) -> None:
    if kind not in KINDS:
        raise InvalidRuleIdError(f"Unknown push rule kind {kind!r}")


def check_rule_id(rule_id: str) -> None:
    """A user rule id: not empty, no slashes, not starting with a dot."""
    if not rule_id:
        raise InvalidRuleIdError("Push rule ids must not be empty")
    if len(rule_id) > MAX_RULE_ID_LENGTH:
        raise InvalidRuleIdError(f"Push rule ids are at most {MAX_RULE_ID_LENGTH} characters")
    if "/" in rule_id or "\\" in rule_id:
        raise InvalidRuleIdError("Push rule ids must not contain slashes or backslashes")
    if rule_id.startswith("."):
        raise InvalidRuleIdError("Push rule ids starting with '.' are reserved for server rules")


def check_actions(actions: Any) -> list[Any]:
    if not isinstance(actions, list):
        raise InvalidRuleError("'actions' must be a list")
    if len(actions) > MAX_ACTIONS:
        raise RuleTooLargeError(f"A push rule has at most {MAX_ACTIONS} actions")
    for action in actions:
        if isinstance(action, str):
            if action != "notify" and action not in HISTORICAL_ACTIONS:
                raise InvalidRuleError(f"Unrecognised action {action!r}")
        elif isinstance(action, Mapping):
            if not isinstance(action.get("set_tweak"), str):
                raise InvalidRuleError("An action object must have a string 'set_tweak'")
            _check_strings(action)
        else:
            raise InvalidRuleError(f"Unrecognised action {action!r}")
    return list(actions)


def _check_pattern(pattern: str) -> None:
    if not 1 <= len(pattern) <= MAX_PATTERN_LENGTH:
        raise RuleTooLargeError(f"A pattern has 1 to {MAX_PATTERN_LENGTH} characters")


def _check_strings(obj: Mapping[str, Any]) -> None:
    """An action's or condition's own fields: few, with short keys and
    simple or short values (nothing nested beyond a list of simple ones)."""
    if len(obj) > MAX_CONDITIONS:
        raise RuleTooLargeError(f"At most {MAX_CONDITIONS} fields per condition or action")
    for key, value in obj.items():
        if len(key) > MAX_PATTERN_LENGTH:
            raise RuleTooLargeError(f"Field names are at most {MAX_PATTERN_LENGTH} characters")
        items = value if isinstance(value, list) else [value]
        if len(items) > MAX_CONDITIONS:
            raise RuleTooLargeError(f"Lists in a rule have at most {MAX_CONDITIONS} items")
        for item in items:
            if isinstance(item, str) and len(item) > MAX_PATTERN_LENGTH:
                raise RuleTooLargeError(f"Strings in a rule are at most {MAX_PATTERN_LENGTH} long")
            if isinstance(item, Mapping | list):
                raise InvalidRuleError(f"{key!r} must hold a simple value")


def _check_conditions(conditions: Any) -> list[dict[str, Any]]:
    if not isinstance(conditions, list):
        raise InvalidRuleError("'conditions' must be a list")
    if len(conditions) > MAX_CONDITIONS:
        raise RuleTooLargeError(f"A push rule has at most {MAX_CONDITIONS} conditions")
    for condition in conditions:
        if not isinstance(condition, Mapping) or not isinstance(condition.get("kind"), str):
            raise InvalidRuleError("Each condition must be an object with a string 'kind'")
        _check_strings(condition)
        pattern = condition.get("pattern")
        if condition["kind"] == "event_match" and isinstance(pattern, str):
            _check_pattern(pattern)
    return [dict(c) for c in conditions]


def _rule_from_body(kind: str, rule_id: str, body: Mapping[str, Any]) -> dict[str, Any]:
    rule: dict[str, Any] = {"rule_id": rule_id, "actions": check_actions(body.get("actions"))}
    if kind in CONDITION_KINDS:
        rule["conditions"] = _check_conditions(body.get("conditions", []))
    elif kind == "content":
        pattern = body.get("pattern")
        if not isinstance(pattern, str):
            raise InvalidRuleError("Content rules need a string 'pattern'")
        _check_pattern(pattern)
        rule["pattern"] = pattern
    return rule


def add_rule(
    user_rules: UserPushRules,
    kind: str,
    rule_id: str,
    body: Mapping[str, Any],
    *,
    before: str | None = None,
    after: str | None = None,
) -> UserPushRules:
    """Create or replace a user rule. A new rule goes first among the user's
    rules of its kind unless `before`/`after` (a user rule of the same kind)
    says otherwise; `before` wins when both are given. An updated rule keeps
    its place and its `enabled` flag unless moved."""
    check_kind(kind)
    check_rule_id(rule_id)
    rule = _rule_from_body(kind, rule_id, body)
    for anchor in (before, after):
        if anchor is not None and (anchor.startswith(".") or anchor == rule_id):
            raise RelativeRuleError(f"Cannot place a rule relative to {anchor!r}")
    out = user_rules.copy()
    rules = out.custom.setdefault(kind, [])
    existing = out.find(kind, rule_id)
    if existing is None and out.count() >= MAX_USER_RULES:
        raise TooManyRulesError(f"A user has at most {MAX_USER_RULES} push rules")
    position: int | None = None
    if existing is not None:
        rule["enabled"] = rules[existing].get("enabled", True) is not False
        position = existing
        del rules[existing]
    else:
        rule["enabled"] = True
    anchor = before if before is not None else after
    if anchor is not None:
        index = out.find(kind, anchor)
        if index is None:
            raise RelativeRuleError(f"before/after rule not found: {anchor}")
        position = index if before is not None else index + 1
    rules.insert(0 if position is None else position, rule)
    return out


def delete_rule(user_rules: UserPushRules, kind: str, rule_id: str) -> UserPushRules:
    check_kind(kind)
    index = user_rules.find(kind, rule_id)
    if index is None:
        raise RuleNotFoundError("Push rule not found")
    out = user_rules.copy()
    del out.custom[kind][index]
    return out


def set_enabled(user_rules: UserPushRules, kind: str, rule_id: str, enabled: bool) -> UserPushRules:
    check_kind(kind)
    out = user_rules.copy()
    index = out.find(kind, rule_id)
    if index is not None:
        out.custom[kind][index]["enabled"] = enabled
    elif rule_id in DEFAULT_RULE_IDS[kind]:
        out.enabled[_key(kind, rule_id)] = enabled
    else:
        raise RuleNotFoundError("Push rule not found")
    return out


def set_actions(user_rules: UserPushRules, kind: str, rule_id: str, actions: Any) -> UserPushRules:
    check_kind(kind)
    checked = check_actions(actions)
    out = user_rules.copy()
    index = out.find(kind, rule_id)
    if index is not None:
        out.custom[kind][index]["actions"] = checked
    elif rule_id in DEFAULT_RULE_IDS[kind]:
        out.actions[_key(kind, rule_id)] = checked
    else:
        raise RuleNotFoundError("Push rule not found")
    return out


# --- the merged ruleset ---------------------------------------------------


def _user_rule(
    kind: str, raw: Mapping[str, Any], reusable: Mapping[tuple[str, str], PushRule]
) -> PushRule:
    rule_id = str(raw.get("rule_id", ""))
    actions = raw.get("actions")
    conditions: Sequence[Mapping[str, Any]] = ()
    pattern: str | None = None
    if kind in CONDITION_KINDS:
        raw_conditions = raw.get("conditions")
        conditions = list(raw_conditions) if isinstance(raw_conditions, list) else []
    elif kind == "content":
        raw_pattern = raw.get("pattern")
        pattern = raw_pattern if isinstance(raw_pattern, str) else None
    elif kind == "room":
        conditions = [_match("room_id", rule_id)]
    else:  # sender
        conditions = [_match("sender", rule_id)]
    rule = PushRule(
        kind,
        rule_id,
        list(actions) if isinstance(actions, list) else [],
        False,
        raw.get("enabled", True) is not False,
        conditions=conditions,
        pattern=pattern,
        compile_globs=False,
    )
    earlier = reusable.get((kind, rule_id))
    if earlier is not None and earlier == rule:
        return earlier
    return rule.compiled()


@dataclass(frozen=True, slots=True)
class Ruleset:
    """A user's complete rules per kind, each in priority order."""

    user_id: str
    by_kind: Mapping[str, Sequence[PushRule]]

    def ordered(self) -> list[PushRule]:
        """Every rule, highest priority first (the order `evaluate` walks)."""
        return [rule for kind in KINDS for rule in self.by_kind.get(kind, ())]

    def find(self, kind: str, rule_id: str) -> PushRule | None:
        for rule in self.by_kind.get(kind, ()):
            if rule.rule_id == rule_id:
                return rule
        return None

    def global_json(self, *, copy: bool = True) -> dict[str, list[dict[str, Any]]]:
        return {
            kind: [rule.to_json(copy=copy) for rule in self.by_kind.get(kind, ())] for kind in KINDS
        }

    def to_json(self, *, copy: bool = True) -> dict[str, Any]:
        """The client shape, also the content of the `m.push_rules` account
        data; `copy=False` shares the rules' JSON, for a caller that only
        encodes it (the account data write: a deep copy of 500 rules per
        change would cost more than the change)."""
        return {"global": self.global_json(copy=copy)}


def build_ruleset(
    user_id: str, user_rules: UserPushRules | None = None, previous: Ruleset | None = None
) -> Ruleset:
    """The defaults for `user_id` merged with the user's changes.

    Rules unchanged since `previous` (the ruleset before a change) are
    taken from it with their compiled globs: a change to one rule costs
    one rule's compiling, however many rules the user has."""
    user_rules = user_rules or UserPushRules()
    defaults = default_rules(user_id)
    reusable = {(r.kind, r.rule_id): r for r in previous.ordered()} if previous else {}
    by_kind: dict[str, list[PushRule]] = {}
    for kind in KINDS:
        own = [_user_rule(kind, raw, reusable) for raw in user_rules.custom.get(kind, [])]
        merged_defaults = []
        for rule in defaults[kind]:
            key = _key(kind, rule.rule_id)
            merged_defaults.append(
                PushRule(
                    kind,
                    rule.rule_id,
                    user_rules.actions.get(key, rule.actions),
                    True,
                    user_rules.enabled.get(key, rule.enabled),
                    conditions=rule.conditions,
                    pattern=rule.pattern,
                )
            )
        if kind == "override":
            # The master rule outranks everything, the user's overrides too.
            masters = [r for r in merged_defaults if r.rule_id == MASTER]
            others = [r for r in merged_defaults if r.rule_id != MASTER]
            by_kind[kind] = masters + own + others
        else:
            by_kind[kind] = own + merged_defaults
    return Ruleset(user_id, by_kind)


# --- evaluation -----------------------------------------------------------


@dataclass(frozen=True, slots=True)
class PushContext:
    """What the evaluator knows besides the event (room state for the user)."""

    user_id: str
    #: The user's display name in the room, if any.
    display_name: str | None = None
    #: Joined members of the room.
    member_count: int | None = None
    #: Content of the room's m.room.power_levels, or None without one.
    power_levels: Mapping[str, Any] | None = None
    #: The room creator (level 100 when the room has no power levels).
    creator: str | None = None
    display_name_glob: Glob | None = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        name = self.display_name
        object.__setattr__(self, "display_name_glob", Glob.literal(name) if name else None)

    def sender_level(self, sender: str) -> int:
        if self.power_levels is None:
            return CREATOR_LEVEL_WITHOUT_POWER_LEVELS if sender == self.creator else DEFAULT_USERS
        default = get_named_level(self.power_levels, "users_default")
        users = self.power_levels.get("users")
        if isinstance(users, Mapping) and sender in users:
            return as_int(users[sender], default)
        return default


_MISSING: Final = object()
BODY_KEY: Final = "content.body"
#: Matching work one event's evaluation may do (core/glob.py's unit, about
#: a character scanned; 5-15 ms of the worst kind of work): dozens of rules
#: scanning a 64 KiB body fit, a pattern made to rescan it does not.
EVENT_STEPS: Final = 5_000_000


def lookup(event: Mapping[str, Any], path: str) -> Any:
    """The value at a dot-separated path, or `_MISSING`."""
    value: Any = event
    for part in split_path(path):
        if not isinstance(value, Mapping) or part not in value:
            return _MISSING
        value = value[part]
    return value


class _Values:
    """One event's string values, folded once however many rules read them,
    and the work budget its evaluation spends."""

    __slots__ = ("_folded", "budget", "event")

    def __init__(self, event: Mapping[str, Any], budget: WorkBudget) -> None:
        self.event = event
        self.budget = budget
        self._folded: dict[str, tuple[str, str] | None] = {}

    def string(self, key: str) -> tuple[str, str] | None:
        """(original, folded) of the string at `key`, or None."""
        if key not in self._folded:
            value = lookup(self.event, key)
            if isinstance(value, str):
                self.budget.spend(len(value))
                self._folded[key] = (value, fold(value))
            else:
                self._folded[key] = None
        return self._folded[key]


def _glob_matches(glob: Glob, values: _Values, key: str) -> bool:
    """`content.body` matches on word boundaries, anything else whole."""
    found = values.string(key)
    if found is None:
        return False
    original, folded = found
    if key == BODY_KEY:
        return glob.matches(folded, values.budget, original=original)
    return glob.matches(folded, values.budget)


def _is_simple_value(value: Any) -> bool:
    if value is None or isinstance(value, str | bool):
        return True
    return isinstance(value, int) and -(2**53) < value < 2**53


def _same_value(a: Any, b: Any) -> bool:
    """Exact equality of simple JSON values: `True` is not `1`."""
    return type(a) is type(b) and a == b


_MEMBER_COUNT = re.compile(r"^(==|<=|>=|<|>)?([0-9]+)$")


def _member_count_matches(spec: Any, count: int | None) -> bool:
    if count is None or not isinstance(spec, str):
        return False
    m = _MEMBER_COUNT.match(spec)
    if m is None:
        return False
    op, number = m.group(1) or "==", int(m.group(2))
    if op == "==":
        return count == number
    if op == "<":
        return count < number
    if op == ">":
        return count > number
    if op == "<=":
        return count <= number
    return count >= number


def _event_match_glob(condition: Mapping[str, Any]) -> Glob | None:
    pattern = condition.get("pattern")
    if condition.get("kind") != "event_match" or not isinstance(pattern, str):
        return None
    return Glob.compile(pattern)


def _condition_matches(
    condition: Mapping[str, Any], glob: Glob | None, values: _Values, context: PushContext
) -> bool:
    kind = condition.get("kind")
    event = values.event
    if kind == "event_match":
        key = condition.get("key")
        return isinstance(key, str) and glob is not None and _glob_matches(glob, values, key)
    if kind == "event_property_is":
        key, expected = condition.get("key"), condition.get("value", _MISSING)
        if not isinstance(key, str) or not _is_simple_value(expected):
            return False
        value = lookup(event, key)
        return _is_simple_value(value) and _same_value(value, expected)
    if kind == "event_property_contains":
        key, expected = condition.get("key"), condition.get("value", _MISSING)
        if not isinstance(key, str) or not _is_simple_value(expected):
            return False
        found = lookup(event, key)
        if not isinstance(found, list):
            return False
        values.budget.spend(len(found))
        return any(_is_simple_value(v) and _same_value(v, expected) for v in found)
    if kind == "contains_display_name":
        name_glob = context.display_name_glob
        return name_glob is not None and _glob_matches(name_glob, values, BODY_KEY)
    if kind == "room_member_count":
        return _member_count_matches(condition.get("is"), context.member_count)
    if kind == "sender_notification_permission":
        key = condition.get("key")
        sender = event.get("sender")
        if not isinstance(key, str) or not isinstance(sender, str):
            return False
        return context.sender_level(sender) >= get_notification_level(context.power_levels, key)
    return False


def condition_matches(
    condition: Mapping[str, Any],
    event: Mapping[str, Any],
    context: PushContext,
    budget: WorkBudget | None = None,
) -> bool:
    """One condition; an unknown kind or a malformed condition never matches."""
    values = _Values(event, budget or WorkBudget(EVENT_STEPS))
    return _condition_matches(condition, _event_match_glob(condition), values, context)


def _rule_matches(rule: PushRule, values: _Values, context: PushContext) -> bool:
    if rule.kind == "content":
        return rule.globs[0] is not None and _glob_matches(rule.globs[0], values, BODY_KEY)
    if rule.kind == "room":
        return values.event.get("room_id") == rule.rule_id
    if rule.kind == "sender":
        return values.event.get("sender") == rule.rule_id
    return all(
        _condition_matches(c, glob, values, context)
        for c, glob in zip(rule.conditions, rule.globs, strict=True)
    )


def evaluate(
    rules: Ruleset,
    event: Mapping[str, Any],
    context: PushContext,
    budget: WorkBudget | None = None,
) -> list[Any] | None:
    """The actions of the first enabled rule matching `event`, or None.

    At most `EVENT_STEPS` of matching work is done, less if `budget` (the
    request's) has less left; what is done is taken from `budget`. An
    event whose evaluation runs out of budget matches no rule, so it
    neither notifies nor highlights: a hostile pattern or body costs its
    owner their notifications, never the server its time."""
    allowed = EVENT_STEPS if budget is None else min(EVENT_STEPS, budget.remaining)
    values = _Values(event, WorkBudget(allowed))
    content = event.get("content")
    has_mentions = isinstance(content, Mapping) and isinstance(content.get("m.mentions"), Mapping)
    try:
        for rule in (r for kind in KINDS for r in rules.by_kind.get(kind, ())):
            if not rule.enabled:
                continue
            if has_mentions and rule.default and (rule.kind, rule.rule_id) in LEGACY_MENTION_RULES:
                continue
            values.budget.spend(LOOP_COST)
            if _rule_matches(rule, values, context):
                return [
                    a for a in rule.actions if not (isinstance(a, str) and a in HISTORICAL_ACTIONS)
                ]
        return None
    except BudgetExhaustedError:
        return None
    finally:
        if budget is not None:
            budget.remaining -= allowed - values.budget.remaining


def notifies(actions: Sequence[Any] | None) -> bool:
    return actions is not None and "notify" in actions


def highlights(actions: Sequence[Any] | None) -> bool:
    """A `highlight` tweak that is true (or has no value)."""
    for action in actions or ():
        if isinstance(action, Mapping) and action.get("set_tweak") == "highlight":
            return action.get("value", True) is True
    return False
