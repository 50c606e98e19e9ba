"""Push rules over HTTP: the API, m.push_rules in /sync, and unread counts (both engines)."""

from __future__ import annotations

from typing import Any
from urllib.parse import quote

from tests.support.harness import Harness
from tests.support.users import TestUser, make_user
from tests.user_streams.helpers import call, public_room, send_text

RULES = "/pushrules/global"

OVERRIDE_IDS = [
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
UNDERRIDE_IDS = [
    ".m.rule.call",
    ".m.rule.encrypted_room_one_to_one",
    ".m.rule.room_one_to_one",
    ".m.rule.message",
    ".m.rule.encrypted",
]


def q(value: str) -> str:
    return quote(value, safe="")


def rule_ids(ruleset: dict[str, Any], kind: str) -> list[str]:
    return [r["rule_id"] for r in ruleset[kind]]


async def get_rules(harness: Harness, user: TestUser) -> dict[str, Any]:
    resp = await call(harness, "GET", "/pushrules/", user)
    assert resp.status == 200, resp.json
    rules: dict[str, Any] = resp.json["global"]
    return rules


async def test_default_rules_for_a_new_user(harness: Harness) -> None:
    alice = await make_user(harness, "alice")
    resp = await call(harness, "GET", "/pushrules/", alice)
    assert resp.status == 200 and list(resp.json) == ["global"]
    rules = resp.json["global"]
    assert set(rules) == {"override", "content", "room", "sender", "underride"}
    assert rule_ids(rules, "override") == OVERRIDE_IDS
    assert rule_ids(rules, "underride") == UNDERRIDE_IDS
    assert rule_ids(rules, "content") == [".m.rule.contains_user_name"]
    assert rules["content"][0]["pattern"] == "alice"
    assert rules["room"] == [] and rules["sender"] == []
    invite = rules["override"][2]
    assert {"kind": "event_match", "key": "state_key", "pattern": alice.user_id} in invite[
        "conditions"
    ]
    assert rules["override"][4]["conditions"][0]["value"] == alice.user_id
    for kind in rules.values():
        for rule in kind:
            assert rule["default"] is True and isinstance(rule["actions"], list)
            assert rule["enabled"] is (rule["rule_id"] != ".m.rule.master")

    # The other spellings of the same thing.
    for path in ("/pushrules", f"{RULES}/", RULES):
        resp = await call(harness, "GET", path, alice)
        assert resp.status == 200, (path, resp.json)
        assert resp.json == (rules if path.startswith(RULES) else {"global": rules})
    resp = await call(harness, "GET", f"{RULES}/underride/", alice)
    assert resp.status == 200 and rule_ids({"u": resp.json}, "u") == UNDERRIDE_IDS
    resp = await call(harness, "GET", f"{RULES}/override/.m.rule.master", alice)
    assert resp.status == 200 and resp.json == rules["override"][0]
    # Served as account data too, before anything was changed.
    resp = await call(harness, "GET", f"/user/{q(alice.user_id)}/account_data/m.push_rules", alice)
    assert resp.status == 200 and resp.json == {"global": rules}
    resp = await call(harness, "GET", "/pushrules/", None)
    assert resp.status == 401


async def test_custom_rules_and_ordering(harness: Harness) -> None:
    alice = await make_user(harness, "alice")
    bob = await make_user(harness, "bob")
    for room in ("!a:test.local", "!b:test.local"):
        resp = await call(harness, "PUT", f"{RULES}/room/{q(room)}", alice, {"actions": []})
        assert resp.status == 200 and resp.json == {}
    rules = await get_rules(harness, alice)
    assert rule_ids(rules, "room") == ["!b:test.local", "!a:test.local"]
    assert rules["room"][0] == {
        "rule_id": "!b:test.local",
        "default": False,
        "enabled": True,
        "actions": [],
    }
    resp = await call(
        harness,
        "PUT",
        f"{RULES}/room/{q('!c:test.local')}?after={q('!a:test.local')}",
        alice,
        {"actions": ["notify"]},
    )
    assert resp.status == 200, resp.json
    resp = await call(
        harness,
        "PUT",
        f"{RULES}/room/{q('!d:test.local')}?before={q('!a:test.local')}",
        alice,
        {"actions": ["notify"]},
    )
    assert resp.status == 200, resp.json
    rules = await get_rules(harness, alice)
    assert rule_ids(rules, "room") == [
        "!b:test.local",
        "!d:test.local",
        "!a:test.local",
        "!c:test.local",
    ]

    # Content and override rules; a user override sits right after master.
    cake = {"pattern": "cake*lie", "actions": ["notify", {"set_tweak": "sound", "value": "x"}]}
    resp = await call(harness, "PUT", f"{RULES}/content/nocake", alice, cake)
    assert resp.status == 200, resp.json
    beer = {
        "conditions": [
            {"kind": "event_match", "key": "content.body", "pattern": "beer"},
            {"kind": "room_member_count", "is": "<=10"},
        ],
        "actions": ["notify"],
    }
    resp = await call(harness, "PUT", f"{RULES}/override/beer", alice, beer)
    assert resp.status == 200, resp.json
    rules = await get_rules(harness, alice)
    assert rule_ids(rules, "content") == ["nocake", ".m.rule.contains_user_name"]
    assert rule_ids(rules, "override")[:3] == [".m.rule.master", "beer", ".m.rule.suppress_notices"]
    resp = await call(harness, "GET", f"{RULES}/content/nocake", alice)
    assert resp.json == {"rule_id": "nocake", "default": False, "enabled": True, **cake}
    resp = await call(harness, "GET", f"{RULES}/override/beer", alice)
    assert resp.json == {"rule_id": "beer", "default": False, "enabled": True, **beer}

    # Modify: disable, then update; the rule keeps its place and its flag.
    resp = await call(
        harness, "PUT", f"{RULES}/room/{q('!d:test.local')}/enabled", alice, {"enabled": False}
    )
    assert resp.status == 200, resp.json
    resp = await call(
        harness,
        "PUT",
        f"{RULES}/room/{q('!d:test.local')}",
        alice,
        {"actions": ["notify", {"set_tweak": "highlight"}]},
    )
    assert resp.status == 200, resp.json
    resp = await call(harness, "GET", f"{RULES}/room/{q('!d:test.local')}", alice)
    assert resp.json["enabled"] is False
    assert resp.json["actions"] == ["notify", {"set_tweak": "highlight"}]
    resp = await call(
        harness, "PUT", f"{RULES}/room/{q('!d:test.local')}/actions", alice, {"actions": []}
    )
    assert resp.status == 200, resp.json
    resp = await call(harness, "GET", f"{RULES}/room/{q('!d:test.local')}/actions", alice)
    assert resp.status == 200 and resp.json == {"actions": []}
    rules = await get_rules(harness, alice)
    assert rule_ids(rules, "room")[1] == "!d:test.local"

    # Delete.
    resp = await call(harness, "DELETE", f"{RULES}/room/{q('!a:test.local')}", alice)
    assert resp.status == 200 and resp.json == {}
    resp = await call(harness, "GET", f"{RULES}/room/{q('!a:test.local')}", alice)
    assert resp.status == 404 and resp.json["errcode"] == "M_NOT_FOUND"
    rules = await get_rules(harness, alice)
    assert rule_ids(rules, "room") == ["!b:test.local", "!d:test.local", "!c:test.local"]
    # Nobody else is affected, and the rules survive a restart.
    assert (await get_rules(harness, bob))["room"] == []
    await harness.restart()
    assert await get_rules(harness, alice) == rules


async def test_default_rules_enabled_and_actions(harness: Harness) -> None:
    alice = await make_user(harness, "alice")
    path = f"{RULES}/override/.m.rule.master"
    resp = await call(harness, "GET", f"{path}/enabled", alice)
    assert resp.status == 200 and resp.json == {"enabled": False}
    resp = await call(harness, "PUT", f"{path}/enabled", alice, {"enabled": True})
    assert resp.status == 200 and resp.json == {}
    resp = await call(harness, "GET", f"{path}/enabled", alice)
    assert resp.json == {"enabled": True}

    msg_path = f"{RULES}/underride/.m.rule.message"
    resp = await call(harness, "GET", f"{msg_path}/actions", alice)
    assert resp.status == 200 and resp.json == {"actions": ["notify"]}
    new_actions = ["notify", {"set_tweak": "sound", "value": "bell"}]
    resp = await call(harness, "PUT", f"{msg_path}/actions", alice, {"actions": new_actions})
    assert resp.status == 200, resp.json
    resp = await call(harness, "GET", msg_path, alice)
    assert resp.json["actions"] == new_actions and resp.json["default"] is True
    rules = await get_rules(harness, alice)
    assert rules["override"][0]["enabled"] is True
    assert rule_ids(rules, "underride") == UNDERRIDE_IDS


async def test_errors(harness: Harness) -> None:
    alice = await make_user(harness, "alice")
    ok = {"actions": ["notify"]}

    async def status(
        method: str, path: str, body: Any = None, raw: bytes | None = None
    ) -> tuple[int, str]:
        resp = await call(harness, method, path, alice, body, raw)
        return resp.status, resp.json.get("errcode", "")

    # Unknown rules.
    assert await status("GET", f"{RULES}/override/nope") == (404, "M_NOT_FOUND")
    assert await status("DELETE", f"{RULES}/override/nope") == (404, "M_NOT_FOUND")
    assert await status("GET", f"{RULES}/override/nope/enabled") == (404, "M_NOT_FOUND")
    assert await status("PUT", f"{RULES}/room/nope/enabled", {"enabled": True}) == (
        404,
        "M_NOT_FOUND",
    )
    assert await status("PUT", f"{RULES}/room/nope/actions", ok) == (404, "M_NOT_FOUND")
    assert await status("GET", f"{RULES}/content/.m.rule.master") == (404, "M_NOT_FOUND")
    # Server-default rules cannot be deleted or replaced.
    assert await status("DELETE", f"{RULES}/override/.m.rule.master") == (404, "M_NOT_FOUND")
    assert await status("PUT", f"{RULES}/override/.m.rule.master", {**ok, "conditions": []}) == (
        400,
        "M_INVALID_PARAM",
    )
    # Bad kind, scope, id.
    assert await status("GET", f"{RULES}/bogus/x") == (400, "M_INVALID_PARAM")
    assert await status("PUT", f"{RULES}/bogus/x", ok) == (400, "M_INVALID_PARAM")
    assert await status("GET", f"{RULES}/bogus/") == (400, "M_INVALID_PARAM")
    assert await status("GET", "/pushrules/device/") == (400, "M_INVALID_PARAM")
    assert await status("PUT", "/pushrules/device/room/x", ok) == (400, "M_INVALID_PARAM")
    assert await status("PUT", f"{RULES}/room/{q('a/b')}", ok) == (400, "M_INVALID_PARAM")
    backslash = q("a\\b")
    assert await status("PUT", f"{RULES}/room/{backslash}", ok) == (400, "M_INVALID_PARAM")
    # Bad bodies.
    assert await status("PUT", f"{RULES}/room/x", {}) == (400, "M_BAD_JSON")
    assert await status("PUT", f"{RULES}/room/x", {"actions": "notify"}) == (400, "M_BAD_JSON")
    assert await status("PUT", f"{RULES}/room/x", {"actions": ["boom"]}) == (400, "M_BAD_JSON")
    assert await status("PUT", f"{RULES}/content/x", ok) == (400, "M_BAD_JSON")
    assert await status("PUT", f"{RULES}/override/x", {**ok, "conditions": [{}]}) == (
        400,
        "M_BAD_JSON",
    )
    assert await status("PUT", f"{RULES}/room/x", [1]) == (400, "M_BAD_JSON")
    assert await status("PUT", f"{RULES}/room/x", raw=b"{nope") == (400, "M_NOT_JSON")
    path = f"{RULES}/override/.m.rule.master"
    assert await status("PUT", f"{path}/enabled", {"enabled": "yes"}) == (400, "M_BAD_JSON")
    assert await status("PUT", f"{path}/actions", {}) == (400, "M_BAD_JSON")
    # before/after must name a user rule of the same kind.
    assert (await status("PUT", f"{RULES}/room/x?before=nope", ok))[0] == 400
    assert (await status("PUT", f"{RULES}/room/x?after=.m.rule.master", ok))[0] == 400
    # Nothing of the above was stored.
    rules = await get_rules(harness, alice)
    assert rules["room"] == [] and all(r["default"] for r in rules["override"])
    # The rules cannot be written as account data.
    resp = await call(
        harness, "PUT", f"/user/{q(alice.user_id)}/account_data/m.push_rules", alice, {"global": {}}
    )
    assert resp.status == 405 and resp.json["errcode"] == "M_BAD_JSON"


def push_rules_event(sync: dict[str, Any]) -> dict[str, Any] | None:
    for event in sync["account_data"]["events"]:
        if event["type"] == "m.push_rules":
            content: dict[str, Any] = event["content"]
            return content
    return None


async def test_push_rules_in_sync(harness: Harness) -> None:
    alice = await make_user(harness, "alice")
    resp = await call(harness, "GET", "/sync", alice)
    assert resp.status == 200, resp.json
    content = push_rules_event(resp.json)
    assert content is not None and content == {"global": await get_rules(harness, alice)}
    since = resp.json["next_batch"]

    # Nothing changed: an incremental sync does not repeat them.
    resp = await call(harness, "GET", f"/sync?since={since}&timeout=0", alice)
    assert push_rules_event(resp.json) is None
    since = resp.json["next_batch"]

    resp = await call(harness, "PUT", f"{RULES}/sender/{q('@spam:x')}", alice, {"actions": []})
    assert resp.status == 200, resp.json
    resp = await call(harness, "GET", f"/sync?since={since}&timeout=0", alice)
    content = push_rules_event(resp.json)
    assert content is not None
    assert rule_ids(content["global"], "sender") == ["@spam:x"]
    since = resp.json["next_batch"]

    # A waiting sync is woken by a change.
    resp = await call(
        harness, "PUT", f"{RULES}/override/.m.rule.master/enabled", alice, {"enabled": True}
    )
    assert resp.status == 200
    resp = await call(harness, "GET", f"/sync?since={since}&timeout=30000", alice)
    content = push_rules_event(resp.json)
    assert content is not None and content["global"]["override"][0]["enabled"] is True

    # A new initial sync gets the stored (changed) rules exactly once.
    resp = await call(harness, "GET", "/sync", alice)
    events = [e for e in resp.json["account_data"]["events"] if e["type"] == "m.push_rules"]
    assert len(events) == 1 and events[0]["content"] == {"global": await get_rules(harness, alice)}
    # With a filter that leaves them out.
    resp = await call(
        harness, "GET", '/sync?filter={"account_data":{"not_types":["m.push_rules"]}}', alice
    )
    assert resp.status == 200 and push_rules_event(resp.json) is None


async def counts(harness: Harness, user: TestUser, room_id: str) -> tuple[int, int]:
    resp = await call(harness, "GET", "/sync", user)
    assert resp.status == 200, resp.json
    unread = resp.json["rooms"]["join"][room_id]["unread_notifications"]
    return unread["notification_count"], unread["highlight_count"]


async def test_unread_counts_follow_push_rules(harness: Harness) -> None:
    alice = await make_user(harness, "alice")
    bob = await make_user(harness, "bob")
    carol = await make_user(harness, "carol")
    resp = await call(
        harness,
        "PUT",
        f"/profile/{q(bob.user_id)}/displayname",
        bob,
        {"displayname": "Bobby Tables"},
    )
    assert resp.status == 200, resp.json
    room = await public_room(harness, alice, bob, carol)
    assert await counts(harness, bob, room) == (0, 0)

    # A plain message notifies; a display name mention highlights.
    await send_text(harness, alice, room, "hello-everyone")
    assert await counts(harness, bob, room) == (1, 0)
    resp = await call(
        harness,
        "PUT",
        f"/rooms/{room}/send/m.room.message/m1",
        alice,
        {"msgtype": "m.text", "body": "hey bobby tables, look"},
    )
    assert resp.status == 200
    last = resp.json["event_id"]
    assert await counts(harness, bob, room) == (2, 1)
    # Notices, reactions and the user's own messages do not count.
    resp = await call(
        harness,
        "PUT",
        f"/rooms/{room}/send/m.room.message/n1",
        alice,
        {"msgtype": "m.notice", "body": "bobby tables"},
    )
    assert resp.status == 200
    assert await counts(harness, bob, room) == (2, 1)
    assert await counts(harness, alice, room) == (0, 0)

    # A receipt resets both.
    resp = await call(harness, "POST", f"/rooms/{room}/receipt/m.read/{last}", bob, {})
    assert resp.status == 200, resp.json
    assert await counts(harness, bob, room) == (0, 0)

    # Disabling .m.rule.message stops plain messages notifying; mentions still highlight.
    resp = await call(
        harness, "PUT", f"{RULES}/underride/.m.rule.message/enabled", bob, {"enabled": False}
    )
    assert resp.status == 200, resp.json
    await send_text(harness, carol, room, "more-chatter")
    assert await counts(harness, bob, room) == (0, 0)
    await send_text(harness, carol, room, "ping-bob")  # the localpart content rule
    assert await counts(harness, bob, room) == (1, 1)
    # Carol still counts plain messages; a sender rule silences Alice for her.
    assert await counts(harness, carol, room) == (0, 0)  # her own message moved her read marker
    await send_text(harness, alice, room, "to-all")
    assert await counts(harness, carol, room) == (1, 0)
    resp = await call(harness, "PUT", f"{RULES}/sender/{q(alice.user_id)}", carol, {"actions": []})
    assert resp.status == 200, resp.json
    assert await counts(harness, carol, room) == (0, 0)
