"""Push rules a hostile user writes cannot stall /sync or grow without bound
(both engines)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterable
from typing import Any

import orjson
import pytest

from hamlet.core import push_rules as rules_core
from hamlet.storage.database import Args, Row, Transaction
from tests.support.harness import Harness
from tests.support.users import make_user
from tests.user_streams.helpers import call, public_room, send_text
from tests.user_streams.test_http_push_rules import RULES, counts, get_rules, q, rule_ids


async def test_backtracking_patterns_do_not_stall_sync(harness: Harness) -> None:
    alice = await make_user(harness, "alice")
    bob = await make_user(harness, "bob")
    room = await public_room(harness, alice, bob)
    # Patterns the backtracking regex took seconds to minutes on, and one
    # (`?` between literals) whose matching is charged to the work budget.
    hostile = ["*a*a*a*b", "*a*a*a*a*a*a*a*b", "a?" * 400 + "b"]
    for i, pattern in enumerate(hostile):
        resp = await call(
            harness,
            "PUT",
            f"{RULES}/content/h{i}",
            bob,
            {"pattern": pattern, "actions": ["notify", {"set_tweak": "highlight"}]},
        )
        assert resp.status == 200, resp.json
    for i in range(6):
        resp = await call(
            harness,
            "PUT",
            f"/rooms/{room}/send/m.room.message/t{i}",
            alice,
            {"msgtype": "m.text", "body": "a" * 301 if i % 2 else "a " * 20_000},
        )
        assert resp.status == 200, resp.json
    # The rules decide nothing for these messages; the budget stops the `?`
    # rule, so they neither highlight nor notify through it -- and /sync answers.
    notifications, highlights = await counts(harness, bob, room)
    assert highlights == 0 and notifications <= 6
    # A message evaluated with budget to spare still counts.
    other = await public_room(harness, alice, bob)
    await send_text(harness, alice, other, "ping-bob")
    assert await counts(harness, bob, other) == (1, 1)


async def test_costly_rules_let_other_requests_run_between_events(
    harness: Harness, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A ruleset that uses its whole budget hands the loop back between
    events, so a neighbour's request waits for one event's matching, not
    for the owner's whole /sync."""
    alice = await make_user(harness, "alice")
    bob = await make_user(harness, "bob")
    room = await public_room(harness, alice, bob)
    for i in range(8):
        # `?` between literals is charged to the work budget per position.
        body = {"pattern": "a?" * (400 + i) + "b", "actions": ["notify"]}
        resp = await call(harness, "PUT", f"{RULES}/content/slow{i}", bob, body)
        assert resp.status == 200, resp.json
    for i in range(6):
        resp = await call(
            harness,
            "PUT",
            f"/rooms/{room}/send/m.room.message/long{i}",
            alice,
            {"msgtype": "m.text", "body": "a " * 20_000},
        )
        assert resp.status == 200, resp.json
    clock = harness.hs.clock
    sleep = clock.sleep
    yields: list[float] = []

    async def counting_sleep(seconds: float) -> None:
        if seconds == 0:
            yields.append(seconds)
        await sleep(seconds)

    monkeypatch.setattr(clock, "sleep", counting_sleep)
    await counts(harness, bob, room)
    # Six events each costing about a full event budget: a yield before
    # every one after the first.
    assert len(yields) >= 5


async def test_rule_count_and_size_caps(harness: Harness, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(rules_core, "MAX_USER_RULES", 3)
    alice = await make_user(harness, "alice")
    for i in range(3):
        resp = await call(harness, "PUT", f"{RULES}/room/{q(f'!r{i}:x')}", alice, {"actions": []})
        assert resp.status == 200, resp.json
    resp = await call(harness, "PUT", f"{RULES}/sender/{q('@s:x')}", alice, {"actions": []})
    assert (resp.status, resp.json["errcode"]) == (403, "M_LIMIT_EXCEEDED")
    # Replacing a rule is still allowed; deleting one makes room.
    resp = await call(harness, "PUT", f"{RULES}/room/{q('!r0:x')}", alice, {"actions": ["notify"]})
    assert resp.status == 200, resp.json
    resp = await call(harness, "DELETE", f"{RULES}/room/{q('!r1:x')}", alice)
    assert resp.status == 200, resp.json
    resp = await call(harness, "PUT", f"{RULES}/sender/{q('@s:x')}", alice, {"actions": []})
    assert resp.status == 200, resp.json

    too_big = [
        ("content", {"actions": [], "pattern": "a" * 1001}),
        ("content", {"actions": [], "pattern": ""}),
        ("override", {"actions": [], "conditions": [{"kind": "x"}] * 33}),
        ("override", {"actions": [], "conditions": [{"kind": "x", "key": "k" * 1001}]}),
        ("underride", {"actions": ["notify"] * 33}),
    ]
    for kind, body in too_big:
        resp = await call(harness, "PUT", f"{RULES}/{kind}/big", alice, body)
        assert (resp.status, resp.json["errcode"]) == (400, "M_INVALID_PARAM"), (kind, resp.json)
    resp = await call(harness, "PUT", f"{RULES}/override/{'r' * 256}", alice, {"actions": []})
    assert (resp.status, resp.json["errcode"]) == (400, "M_INVALID_PARAM")
    rules = await get_rules(harness, alice)
    assert rule_ids(rules, "room") == ["!r2:x", "!r0:x"]
    assert rule_ids(rules, "sender") == ["@s:x"]
    assert all(r["default"] for kind in ("override", "underride") for r in rules[kind])


class CountingTransaction(Transaction):
    """Counts the rows each push rule or account data statement changed
    (the request also records the device's last use), and the bytes
    written to the push rule tables."""

    def __init__(self, inner: Transaction, changed: list[int], written: list[int]) -> None:
        self.inner = inner
        self.changed = changed
        self.written = written

    async def execute(self, sql: str, args: Args = ()) -> int:
        n = await self.inner.execute(sql, args)
        if "push_rules" in sql or "account_data" in sql:
            self.changed.append(n)
        if "push_rules" in sql:
            self.written.append(sum(len(str(a)) for a in args))
        return n

    async def executemany(self, sql: str, rows: Iterable[Args]) -> None:
        rows = list(rows)
        if "push_rules" in sql or "account_data" in sql:
            self.changed.append(len(rows))
        await self.inner.executemany(sql, rows)

    async def fetchall(self, sql: str, args: Args = ()) -> list[Row]:
        return await self.inner.fetchall(sql, args)


async def test_a_rule_change_writes_a_row_or_two(harness: Harness) -> None:
    alice = await make_user(harness, "alice")
    db = harness.hs.db
    run = db._run
    changed: list[int] = []
    written: list[int] = []

    async def counting(fn: Callable[[Transaction], Awaitable[Any]]) -> Any:
        return await run(lambda txn: fn(CountingTransaction(txn, changed, written)))

    db._run = counting  # type: ignore[method-assign]

    async def rows_written(method: str, path: str, body: Any = None) -> int:
        changed.clear()
        written.clear()
        resp = await call(harness, method, path, alice, body)
        assert resp.status == 200, resp.json
        # Unless renumbered, only the rule itself went to the push rule
        # tables, however many there are (the account data row carries the
        # merged ruleset).
        assert sum(changed) > 2 or sum(written) < 200
        return sum(changed)

    ok = {"actions": ["notify"]}
    # Every PUT of a new rule first, and every append after the last, writes
    # the rule and the account data row, however many rules there are.
    for i in range(60):
        assert await rows_written("PUT", f"{RULES}/room/{q(f'!r{i}:x')}", ok) == 2
    assert await rows_written("PUT", f"{RULES}/room/{q('!z:x')}?after={q('!r0:x')}", ok) == 2
    # Halving the same gap again and again eventually renumbers the kind,
    # once in a while (32 halvings of the gap).
    writes = [
        await rows_written("PUT", f"{RULES}/room/{q(f'!m{i}:x')}?before={q('!r0:x')}", ok)
        for i in range(40)
    ]
    assert writes.count(2) >= 38 and max(writes) <= 2 + 60 + 41
    path = f"{RULES}/room/{q('!r30:x')}"
    assert await rows_written("PUT", f"{path}/enabled", {"enabled": False}) == 2
    assert await rows_written("PUT", f"{path}/actions", {"actions": []}) == 2
    assert await rows_written("DELETE", path) == 2
    default = f"{RULES}/override/.m.rule.master/enabled"
    assert await rows_written("PUT", default, {"enabled": True}) == 2
    db._run = run  # type: ignore[method-assign]

    rules = await get_rules(harness, alice)
    room_ids = rule_ids(rules, "room")
    expected = [f"!r{i}:x" for i in reversed(range(60)) if i != 30]
    expected.insert(expected.index("!r0:x") + 1, "!z:x")
    at = expected.index("!r0:x")
    expected[at:at] = [f"!m{i}:x" for i in range(40)]
    assert room_ids == expected
    assert rules["override"][0]["enabled"] is True
    # The same after a restart (read back from the rows).
    await harness.restart()
    assert await get_rules(harness, alice) == rules


async def test_rules_stored_as_one_document_are_moved_to_rows(harness: Harness) -> None:
    alice = await make_user(harness, "alice")
    document = {
        "custom": {
            "room": [
                {"rule_id": "!b:x", "actions": [], "enabled": True},
                {"rule_id": "!a:x", "actions": ["notify"], "enabled": False},
            ],
            "content": [{"rule_id": "cake", "pattern": "cake", "actions": ["notify"]}],
        },
        "enabled": {"override/.m.rule.master": True},
        "actions": {"underride/.m.rule.message": []},
    }
    await harness.hs.db.execute(
        "test",
        "INSERT INTO push_rules_user (user_id, rules) VALUES (?, ?)",
        alice.user_id,
        orjson.dumps(document).decode(),
    )
    rules = await get_rules(harness, alice)
    assert rule_ids(rules, "room") == ["!b:x", "!a:x"]
    assert rules["room"][1]["enabled"] is False
    assert rule_ids(rules, "content") == ["cake", ".m.rule.contains_user_name"]
    assert rules["override"][0]["enabled"] is True
    assert rules["underride"][3]["actions"] == []
    left = await harness.hs.db.fetchval(
        "test", "SELECT COUNT(*) FROM push_rules_user WHERE user_id = ?", alice.user_id
    )
    assert left == 0
    # New rules go among the moved ones.
    resp = await call(
        harness, "PUT", f"{RULES}/room/{q('!c:x')}?after={q('!b:x')}", alice, {"actions": []}
    )
    assert resp.status == 200, resp.json
    assert rule_ids(await get_rules(harness, alice), "room") == ["!b:x", "!c:x", "!a:x"]
