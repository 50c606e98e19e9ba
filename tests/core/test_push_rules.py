"""Push rules: defaults, user changes, client shape and the evaluator (pure)."""

from __future__ import annotations

from typing import Any

import pytest

from hamlet.core.glob import WorkBudget
from hamlet.core.json_paths import split_path
from hamlet.core.push_rules import (
    DEFAULT_RULE_IDS,
    EVENT_STEPS,
    MAX_ACTIONS,
    MAX_CONDITIONS,
    MAX_PATTERN_LENGTH,
    MAX_USER_RULES,
    InvalidRuleError,
    InvalidRuleIdError,
    PushContext,
    RelativeRuleError,
    RuleNotFoundError,
    RuleTooLargeError,
    TooManyRulesError,
    UserPushRules,
    add_rule,
    build_ruleset,
    check_rule_id,
    condition_matches,
    delete_rule,
    evaluate,
    highlights,
    notifies,
    set_actions,
    set_enabled,
)

ALICE = "@alice:test.local"
CTX = PushContext(user_id=ALICE, display_name="Alice Liddell", member_count=5)


def ids(rules: UserPushRules | None, kind: str) -> list[str]:
    return [r["rule_id"] for r in build_ruleset(ALICE, rules).global_json()[kind]]


def msg(body: str, **extra: Any) -> dict[str, Any]:
    return {
        "type": "m.room.message",
        "sender": "@bob:test.local",
        "room_id": "!r:test.local",
        "content": {"msgtype": "m.text", "body": body, **extra},
    }


def test_default_ruleset_shape() -> None:
    rules = build_ruleset(ALICE).to_json()["global"]
    assert list(rules) == ["override", "content", "room", "sender", "underride"]
    assert [r["rule_id"] for r in rules["override"]] == [
        ".m.rule.master",
        ".m.rule.suppress_notices",
        ".m.rule.invite_for_me",
        ".m.rule.member_event",
        ".m.rule.is_user_mention",
        ".m.rule.contains_display_name",
        ".m.rule.is_room_mention",
        ".m.rule.roomnotif",
        ".m.rule.tombstone",
        ".m.rule.reaction",
        ".m.rule.room.server_acl",
        ".m.rule.suppress_edits",
    ]
    assert [r["rule_id"] for r in rules["underride"]] == [
        ".m.rule.call",
        ".m.rule.encrypted_room_one_to_one",
        ".m.rule.room_one_to_one",
        ".m.rule.message",
        ".m.rule.encrypted",
    ]
    assert rules["room"] == [] and rules["sender"] == []
    assert rules["content"] == [
        {
            "rule_id": ".m.rule.contains_user_name",
            "default": True,
            "enabled": True,
            "pattern": "alice",
            "actions": [
                "notify",
                {"set_tweak": "sound", "value": "default"},
                {"set_tweak": "highlight"},
            ],
        }
    ]
    master = rules["override"][0]
    assert master == {
        "rule_id": ".m.rule.master",
        "default": True,
        "enabled": False,
        "conditions": [],
        "actions": [],
    }
    invite = rules["override"][2]
    assert {"kind": "event_match", "key": "state_key", "pattern": ALICE} in invite["conditions"]
    mention = rules["override"][4]
    assert mention["conditions"][0]["value"] == ALICE
    assert all("pattern" not in r for r in rules["override"] + rules["underride"])
    assert all(r["default"] is True for kind in rules.values() for r in kind)


def test_defaults_are_per_user_and_unshared() -> None:
    a = build_ruleset(ALICE).to_json()
    a["global"]["override"][2]["conditions"][2]["pattern"] = "mutated"
    assert build_ruleset(ALICE).to_json()["global"]["override"][2]["conditions"][2]["pattern"] == (
        ALICE
    )
    bob = build_ruleset("@bob:other.example").to_json()["global"]
    assert bob["content"][0]["pattern"] == "bob"


def test_json_for_encoding_only_shares_what_a_client_copy_does_not() -> None:
    ruleset = build_ruleset(ALICE)
    shared, copied = ruleset.to_json(copy=False), ruleset.to_json()
    assert shared == copied
    i, rule = next((i, r) for i, r in enumerate(ruleset.by_kind["override"]) if r.conditions)
    assert shared["global"]["override"][i]["conditions"][0] is rule.conditions[0]
    copied["global"]["override"][i]["actions"].append("notify")
    copied["global"]["override"][i]["conditions"].clear()
    assert build_ruleset(ALICE).to_json() == ruleset.to_json()


def test_add_rules_with_before_and_after() -> None:
    rules = UserPushRules()
    rules = add_rule(rules, "room", "!a:x", {"actions": []})
    rules = add_rule(rules, "room", "!b:x", {"actions": ["notify"]})
    assert ids(rules, "room") == ["!b:x", "!a:x"]  # new rules go first
    rules = add_rule(rules, "room", "!c:x", {"actions": []}, after="!a:x")
    assert ids(rules, "room") == ["!b:x", "!a:x", "!c:x"]
    rules = add_rule(rules, "room", "!d:x", {"actions": []}, before="!a:x")
    assert ids(rules, "room") == ["!b:x", "!d:x", "!a:x", "!c:x"]
    # Updating keeps the position unless moved; moving works both ways.
    rules = add_rule(rules, "room", "!a:x", {"actions": ["notify"]})
    assert ids(rules, "room") == ["!b:x", "!d:x", "!a:x", "!c:x"]
    rules = add_rule(rules, "room", "!b:x", {"actions": []}, after="!c:x")
    assert ids(rules, "room") == ["!d:x", "!a:x", "!c:x", "!b:x"]
    with pytest.raises(RelativeRuleError):
        add_rule(rules, "room", "!e:x", {"actions": []}, before="!nope:x")
    with pytest.raises(RelativeRuleError):
        add_rule(rules, "override", "x", {"actions": [], "conditions": []}, after=".m.rule.master")
    # Override: user rules sit between master and the other defaults.
    rules = add_rule(rules, "override", "mine", {"actions": ["notify"], "conditions": []})
    assert ids(rules, "override")[:3] == [".m.rule.master", "mine", ".m.rule.suppress_notices"]
    assert ids(rules, "underride")[-1] == ".m.rule.encrypted"
    rules = add_rule(rules, "underride", "u", {"actions": ["notify"]})
    assert ids(rules, "underride")[0] == "u"


def test_add_rule_validation() -> None:
    empty = UserPushRules()
    with pytest.raises(InvalidRuleError):
        add_rule(empty, "room", "!a:x", {})
    with pytest.raises(InvalidRuleError):
        add_rule(empty, "room", "!a:x", {"actions": ["explode"]})
    with pytest.raises(InvalidRuleError):
        add_rule(empty, "room", "!a:x", {"actions": [{"value": 1}]})
    with pytest.raises(InvalidRuleError):
        add_rule(empty, "content", "c", {"actions": []})
    with pytest.raises(InvalidRuleError):
        add_rule(empty, "override", "o", {"actions": [], "conditions": [{"key": "x"}]})
    with pytest.raises(InvalidRuleError):
        add_rule(empty, "override", "o", {"actions": [], "conditions": {}})
    with pytest.raises(InvalidRuleIdError):
        add_rule(empty, "bogus", "o", {"actions": []})
    for bad in ("", ".mine", "a/b", "a\\b"):
        with pytest.raises(InvalidRuleIdError):
            check_rule_id(bad)
    check_rule_id("@spam:example.org")
    # Historical actions are accepted.
    add_rule(empty, "sender", "@s:x", {"actions": ["dont_notify", "coalesce"]})


def test_enable_and_actions_on_default_and_user_rules() -> None:
    rules = set_enabled(UserPushRules(), "override", ".m.rule.master", True)
    rules = set_actions(rules, "underride", ".m.rule.message", [])
    rules = add_rule(rules, "content", "cake", {"pattern": "cake*", "actions": ["notify"]})
    rules = set_enabled(rules, "content", "cake", False)
    ruleset = build_ruleset(ALICE, rules)
    master = ruleset.find("override", ".m.rule.master")
    assert master is not None and master.enabled
    message = ruleset.find("underride", ".m.rule.message")
    assert message is not None and list(message.actions) == [] and message.default
    cake = ruleset.find("content", "cake")
    assert cake is not None and not cake.enabled and not cake.default
    assert cake.to_json() == {
        "rule_id": "cake",
        "default": False,
        "enabled": False,
        "pattern": "cake*",
        "actions": ["notify"],
    }
    # Updating a rule keeps its enabled flag.
    rules = add_rule(rules, "content", "cake", {"pattern": "pie", "actions": []})
    assert build_ruleset(ALICE, rules).find("content", "cake").enabled is False  # type: ignore[union-attr]
    with pytest.raises(RuleNotFoundError):
        set_enabled(rules, "override", ".m.rule.nope", True)
    with pytest.raises(RuleNotFoundError):
        set_actions(rules, "content", ".m.rule.master", [])  # wrong kind
    with pytest.raises(InvalidRuleError):
        set_actions(rules, "underride", ".m.rule.message", "notify")
    # Round trip through JSON storage.
    assert UserPushRules.from_json(rules.to_json()) == rules


def test_delete_rule() -> None:
    rules = add_rule(UserPushRules(), "sender", "@s:x", {"actions": []})
    assert ids(delete_rule(rules, "sender", "@s:x"), "sender") == []
    with pytest.raises(RuleNotFoundError):
        delete_rule(rules, "sender", "@t:x")
    with pytest.raises(RuleNotFoundError):
        delete_rule(rules, "override", ".m.rule.master")
    assert DEFAULT_RULE_IDS["override"] >= {".m.rule.master"}


def test_evaluate_defaults() -> None:
    rules = build_ruleset(ALICE)
    plain = evaluate(rules, msg("hello there"), CTX)
    assert notifies(plain) and not highlights(plain)
    named = evaluate(rules, msg("hi ALICE liddell!"), CTX)
    assert notifies(named) and highlights(named)
    assert highlights(evaluate(rules, msg("ping alice"), CTX))  # localpart (content rule)
    assert not highlights(evaluate(rules, msg("malice"), CTX))  # word boundary
    assert evaluate(rules, msg("fyi", msgtype="m.notice"), CTX) == []
    assert not notifies(evaluate(rules, {**msg("x"), "type": "m.reaction"}, CTX))
    one_to_one = evaluate(rules, msg("x"), PushContext(user_id=ALICE, member_count=2))
    assert one_to_one == ["notify", {"set_tweak": "sound", "value": "default"}]
    encrypted = {**msg("x"), "type": "m.room.encrypted", "content": {"ciphertext": "..."}}
    assert evaluate(rules, encrypted, CTX) == ["notify"]
    invite = {
        "type": "m.room.member",
        "sender": "@bob:test.local",
        "state_key": ALICE,
        "content": {"membership": "invite"},
    }
    assert notifies(evaluate(rules, invite, CTX))
    assert evaluate(rules, {**invite, "state_key": "@carol:x"}, CTX) == []
    assert evaluate(rules, {"type": "m.room.name", "sender": "@b:x", "content": {}}, CTX) is None
    # Intentional mentions switch the legacy body rules off.
    with_mentions = msg("hi alice", **{"m.mentions": {}})
    assert not highlights(evaluate(rules, with_mentions, CTX))
    mentioned = msg("hi", **{"m.mentions": {"user_ids": [ALICE]}})
    assert highlights(evaluate(rules, mentioned, CTX))
    edit = msg("* hi alice", **{"m.relates_to": {"rel_type": "m.replace", "event_id": "$e"}})
    assert evaluate(rules, edit, CTX) == []
    # The master rule silences everything.
    silenced = build_ruleset(
        ALICE, set_enabled(UserPushRules(), "override", ".m.rule.master", True)
    )
    assert evaluate(silenced, msg("hi alice"), CTX) == []


def test_room_mention_needs_power() -> None:
    rules = build_ruleset(ALICE)
    event = msg("@room wake up")
    levels = {"users": {"@bob:test.local": 50}, "users_default": 0}
    assert highlights(evaluate(rules, event, PushContext(ALICE, power_levels=levels)))
    low = {"users": {}, "notifications": {"room": 20}}
    assert not highlights(evaluate(rules, event, PushContext(ALICE, power_levels=low)))
    assert highlights(
        evaluate(rules, event, PushContext(ALICE, power_levels=None, creator="@bob:test.local"))
    )
    assert not highlights(evaluate(rules, event, PushContext(ALICE, creator="@carol:x")))


def test_user_rules_take_priority() -> None:
    rules = add_rule(UserPushRules(), "sender", "@bob:test.local", {"actions": []})
    assert evaluate(build_ruleset(ALICE, rules), msg("hi"), CTX) == []
    # Content rules outrank sender rules: a mention still highlights.
    assert highlights(evaluate(build_ruleset(ALICE, rules), msg("hi alice"), CTX))
    rules = add_rule(UserPushRules(), "room", "!r:test.local", {"actions": []})
    assert evaluate(build_ruleset(ALICE, rules), msg("hi"), CTX) == []
    rules = add_rule(
        UserPushRules(), "content", "cake", {"pattern": "ca?e", "actions": ["notify", "coalesce"]}
    )
    ruleset = build_ruleset(ALICE, rules)
    assert evaluate(ruleset, msg("I like CAKE."), CTX) == ["notify"]  # historical action dropped
    disabled = build_ruleset(
        ALICE, set_actions(UserPushRules(), "underride", ".m.rule.message", [])
    )
    assert evaluate(disabled, msg("hi"), CTX) == []


@pytest.mark.parametrize(
    ("condition", "expected"),
    [
        ({"kind": "event_match", "key": "content.topic", "pattern": "lunc?*"}, True),
        ({"kind": "event_match", "key": "content.topic", "pattern": "lunc"}, False),
        ({"kind": "event_match", "key": "content.missing", "pattern": "*"}, False),
        ({"kind": "event_match", "key": "content.n", "pattern": "*"}, False),  # not a string
        ({"kind": "event_match", "key": "content.m\\.federate", "pattern": "*"}, False),
        ({"kind": "event_match", "key": "content.body", "pattern": "ex*ple"}, True),
        ({"kind": "event_match", "key": "content.body", "pattern": "xample"}, False),
        ({"kind": "event_match", "key": "content.body", "pattern": "triple-whammy"}, True),
        ({"kind": "event_match", "key": "type", "pattern": "m.room.*"}, True),
        ({"kind": "event_property_is", "key": "content.m\\.federate", "value": True}, True),
        ({"kind": "event_property_is", "key": "content.m\\.federate", "value": 1}, False),
        ({"kind": "event_property_is", "key": "content.n", "value": 1}, True),
        ({"kind": "event_property_is", "key": "content.n", "value": True}, False),
        ({"kind": "event_property_is", "key": "content.nothing", "value": None}, True),
        ({"kind": "event_property_is", "key": "content.list", "value": ["a"]}, False),
        ({"kind": "event_property_contains", "key": "content.list", "value": "a"}, True),
        ({"kind": "event_property_contains", "key": "content.list", "value": "b"}, False),
        ({"kind": "event_property_contains", "key": "content.topic", "value": "L"}, False),
        ({"kind": "room_member_count", "is": "5"}, True),
        ({"kind": "room_member_count", "is": "==5"}, True),
        ({"kind": "room_member_count", "is": "<5"}, False),
        ({"kind": "room_member_count", "is": "<=5"}, True),
        ({"kind": "room_member_count", "is": ">4"}, True),
        ({"kind": "room_member_count", "is": ">=6"}, False),
        ({"kind": "room_member_count", "is": "five"}, False),
        ({"kind": "contains_display_name"}, True),
        ({"kind": "sender_notification_permission", "key": "room"}, False),
        ({"kind": "something_new"}, False),
        ({"kind": "event_match", "key": "content.topic"}, False),
    ],
)
def test_conditions(condition: dict[str, Any], expected: bool) -> None:
    event = {
        "type": "m.room.topic",
        "sender": "@bob:test.local",
        "state_key": "",
        "content": {
            "topic": "Lunch plans",
            "body": "An exciting triple-whammy example for Alice Liddell.",
            "m.federate": True,
            "n": 1,
            "nothing": None,
            "list": ["a", 1, {"x": 1}],
        },
    }
    assert condition_matches(condition, event, CTX) is expected


def test_split_path_and_tweaks() -> None:
    assert split_path("content.m\\.relates_to.rel_type") == ["content", "m.relates_to", "rel_type"]
    assert split_path("content.m\\\\foo") == ["content", "m\\foo"]
    assert split_path("content.a\\xb") == ["content", "a\\xb"]
    assert highlights([{"set_tweak": "highlight"}])
    assert not highlights([{"set_tweak": "highlight", "value": False}])
    assert not highlights(["notify"]) and not notifies([]) and not notifies(None)


def test_rule_count_and_size_are_capped() -> None:
    rules = UserPushRules()
    for i in range(MAX_USER_RULES):
        rules.custom.setdefault("room", []).append({"rule_id": f"!r{i}:x", "actions": []})
    with pytest.raises(TooManyRulesError):
        add_rule(rules, "sender", "@new:x", {"actions": []})
    # Replacing one of them is not a new rule.
    assert add_rule(rules, "room", "!r0:x", {"actions": ["notify"]}).count() == MAX_USER_RULES

    too_big: list[tuple[str, dict[str, Any]]] = [
        ("content", {"actions": [], "pattern": ""}),
        ("content", {"actions": [], "pattern": "a" * (MAX_PATTERN_LENGTH + 1)}),
        ("override", {"actions": [], "conditions": [{"kind": "x"}] * (MAX_CONDITIONS + 1)}),
        (
            "override",
            {
                "actions": [],
                "conditions": [
                    {"kind": "event_match", "key": "a", "pattern": "*" * (MAX_PATTERN_LENGTH + 1)}
                ],
            },
        ),
        ("override", {"actions": [], "conditions": [{"kind": "x", "key": "k" * 5000}]}),
        ("room", {"actions": ["notify"] * (MAX_ACTIONS + 1)}),
    ]
    for kind, body in too_big:
        with pytest.raises(RuleTooLargeError):
            add_rule(UserPushRules(), kind, "big", body)
    with pytest.raises(InvalidRuleError):
        add_rule(UserPushRules(), "override", "n", {"actions": [], "conditions": [{"kind": {}}]})
    with pytest.raises(InvalidRuleError):
        add_rule(
            UserPushRules(),
            "override",
            "n",
            {"actions": [], "conditions": [{"kind": "x", "v": {}}]},
        )
    with pytest.raises(InvalidRuleIdError):
        check_rule_id("r" * 256)


def test_evaluation_stops_when_its_budget_runs_out() -> None:
    hostile = add_rule(
        UserPushRules(), "content", "slow", {"pattern": "a?" * 400 + "b", "actions": ["notify"]}
    )
    ruleset = build_ruleset(ALICE, hostile)
    event = msg("a " * 30_000)
    request = WorkBudget(3 * EVENT_STEPS)
    # Each evaluation gives up at EVENT_STEPS and charges them to the request:
    # the event neither notifies nor highlights.
    for _ in range(3):
        assert evaluate(ruleset, event, CTX, request) is None
    assert request.remaining <= 0
    # Once the request's budget is spent, nothing is evaluated at all.
    assert evaluate(ruleset, msg("hi alice"), CTX, request) is None
    assert highlights(evaluate(ruleset, msg("hi alice"), CTX, WorkBudget(EVENT_STEPS)))


def test_rebuilding_after_a_change_reuses_the_unchanged_compiled_rules() -> None:
    conditions = [{"kind": "event_match", "key": "content.body", "pattern": "*a*b*"}]
    user = UserPushRules()
    for i in range(3):
        user = add_rule(user, "override", f"r{i}", {"conditions": conditions, "actions": []})
    before = build_ruleset("@a:x", user)
    changed = set_actions(user, "override", "r1", ["notify"])
    changed = add_rule(changed, "content", "cake", {"pattern": "cake", "actions": []})
    after = build_ruleset("@a:x", changed, before)
    assert after.to_json() == build_ruleset("@a:x", changed).to_json()
    old, new = before.by_kind["override"], after.by_kind["override"]
    assert new[1] is old[1] and new[3] is old[3]
    assert new[2] is not old[2] and new[2].actions == ["notify"]
    for rule in after.ordered():
        assert len(rule.globs) == (1 if rule.kind == "content" else len(rule.conditions))
    event = {"type": "m.room.message", "content": {"body": "I like cake"}}
    context = PushContext(user_id="@a:x", display_name=None, member_count=2)
    assert evaluate(after, event, context) == evaluate(
        build_ruleset("@a:x", changed), event, context
    )
