"""GET /relations and bundled aggregations (edits, threads, references)."""

from __future__ import annotations

from typing import Any
from urllib.parse import urlencode

import pytest

from tests.rooms.helpers import (
    V3,
    assert_error,
    create_room,
    get_event,
    join,
    membership_action,
    q,
    send,
    send_ok,
)
from tests.rooms.reading_support import unlimited_harness
from tests.support.harness import Harness, Response
from tests.support.users import TestUser, make_user

V1 = "/_matrix/client/v1"


@pytest.fixture
async def harness(make_hs_config):  # type: ignore[no-untyped-def]
    async for h in unlimited_harness(make_hs_config):
        yield h


async def send_rel(
    harness: Harness,
    user: TestUser,
    room_id: str,
    parent: str,
    rel_type: str,
    body: str = "rel",
    *,
    event_type: str = "m.room.message",
    extra: dict[str, Any] | None = None,
) -> str:
    content: dict[str, Any] = {
        "msgtype": "m.text",
        "body": body,
        "m.relates_to": {"rel_type": rel_type, "event_id": parent},
    }
    if extra:
        content.update(extra)
    resp = await send(harness, user, room_id, content, event_type=event_type)
    assert resp.status == 200, resp.json
    event_id: str = resp.json["event_id"]
    return event_id


async def send_edit(
    harness: Harness, user: TestUser, room_id: str, original: str, new_body: str
) -> str:
    return await send_rel(
        harness,
        user,
        room_id,
        original,
        "m.replace",
        f"* {new_body}",
        extra={"m.new_content": {"msgtype": "m.text", "body": new_body}},
    )


async def relations(
    harness: Harness,
    user: TestUser,
    room_id: str,
    event_id: str,
    *path: str,
    prefix: str = V1,
    **params: Any,
) -> Response:
    url = f"{prefix}/rooms/{q(room_id)}/relations/{q(event_id)}"
    for part in path:
        url += f"/{q(part)}"
    if params:
        url += "?" + urlencode({k: str(v) for k, v in params.items()})
    return await harness.request("GET", url, token=user.token)


async def redact(harness: Harness, user: TestUser, room_id: str, event_id: str) -> None:
    resp = await harness.request(
        "PUT",
        f"{V3}/rooms/{q(room_id)}/redact/{q(event_id)}/r-{event_id[1:9]}",
        json={},
        token=user.token,
    )
    assert resp.status == 200, resp.json


async def served(harness: Harness, user: TestUser, room_id: str, event_id: str) -> dict[str, Any]:
    resp = await get_event(harness, user, room_id, event_id)
    assert resp.status == 200, resp.json
    event: dict[str, Any] = resp.json
    return event


async def test_relations_pagination_both_directions(harness: Harness) -> None:
    alice = await make_user(harness, "alice")
    room_id = await create_room(harness, alice)
    parent = await send_ok(harness, alice, room_id, "parent")
    children = [
        await send_rel(harness, alice, room_id, parent, "m.reference", f"r{i}") for i in range(7)
    ]
    await send_ok(harness, alice, room_id, "unrelated")

    seen: list[str] = []
    token = None
    while True:
        params: dict[str, Any] = {"limit": 3}
        if token:
            params["from"] = token
        resp = await relations(harness, alice, room_id, parent, **params)
        assert resp.status == 200, resp.json
        if token:
            assert resp.json["prev_batch"] == token
        else:
            assert "prev_batch" not in resp.json
        seen += [e["event_id"] for e in resp.json["chunk"]]
        token = resp.json.get("next_batch")
        if token is None:
            break
    assert seen == list(reversed(children))

    seen = []
    token = None
    while True:
        params = {"limit": 2, "dir": "f"}
        if token:
            params["from"] = token
        resp = await relations(harness, alice, room_id, parent, **params)
        seen += [e["event_id"] for e in resp.json["chunk"]]
        token = resp.json.get("next_batch")
        if token is None:
            break
    assert seen == children

    # Default limit is 5; also served under v3.
    resp = await relations(harness, alice, room_id, parent, prefix=V3)
    assert resp.status == 200
    assert len(resp.json["chunk"]) == 5 and "next_batch" in resp.json


async def test_relations_filters_and_recurse(harness: Harness) -> None:
    alice = await make_user(harness, "alice")
    room_id = await create_room(harness, alice)
    root = await send_ok(harness, alice, room_id, "root")
    t1 = await send_rel(harness, alice, room_id, root, "m.thread", "t1")
    ref = await send_rel(harness, alice, room_id, root, "m.reference", "ref")
    custom = await send_rel(
        harness, alice, room_id, root, "m.thread", "custom", event_type="org.example.x"
    )
    reaction = await send_rel(
        harness,
        alice,
        room_id,
        t1,
        "m.annotation",
        "r",
        event_type="m.reaction",
        extra={"m.relates_to": {"rel_type": "m.annotation", "event_id": t1, "key": "+1"}},
    )

    resp = await relations(harness, alice, room_id, root, "m.thread")
    assert [e["event_id"] for e in resp.json["chunk"]] == [custom, t1]
    resp = await relations(harness, alice, room_id, root, "m.thread", "m.room.message")
    assert [e["event_id"] for e in resp.json["chunk"]] == [t1]
    resp = await relations(harness, alice, room_id, root, "m.reference")
    assert [e["event_id"] for e in resp.json["chunk"]] == [ref]
    resp = await relations(harness, alice, room_id, root)
    assert reaction not in [e["event_id"] for e in resp.json["chunk"]]
    assert "recursion_depth" not in resp.json
    resp = await relations(harness, alice, room_id, root, recurse="true", limit=10)
    assert [e["event_id"] for e in resp.json["chunk"]] == [reaction, custom, ref, t1]
    assert resp.json["recursion_depth"] == 3


async def test_relations_refusals(harness: Harness) -> None:
    alice = await make_user(harness, "alice")
    eve = await make_user(harness, "eve")
    room_id = await create_room(harness, alice)
    parent = await send_ok(harness, alice, room_id)
    resp = await relations(harness, eve, room_id, parent)
    assert_error(resp, 403, "M_FORBIDDEN")
    resp = await relations(harness, alice, room_id, "$unknown")
    assert_error(resp, 404, "M_NOT_FOUND")
    other = await create_room(harness, alice)
    resp = await relations(harness, alice, other, parent)
    assert_error(resp, 404, "M_NOT_FOUND")
    resp = await relations(harness, alice, room_id, parent, **{"from": "nonsense"})
    assert_error(resp, 400, "M_INVALID_PARAM")
    resp = await relations(harness, alice, room_id, parent, dir="x")
    assert_error(resp, 400, "M_INVALID_PARAM")


async def test_relations_parent_invisible_after_leave(harness: Harness) -> None:
    alice = await make_user(harness, "alice")
    bob = await make_user(harness, "bob")
    room_id = await create_room(harness, alice, preset="public_chat")
    assert (await join(harness, bob, room_id)).status == 200
    early = await send_ok(harness, alice, room_id, "early")
    assert (await membership_action(harness, bob, room_id, "leave")).status == 200
    late_ref = await send_rel(harness, alice, room_id, early, "m.reference")
    late = await send_ok(harness, alice, room_id, "late")
    # The parent is visible, the reference sent after bob left is not.
    resp = await relations(harness, bob, room_id, early)
    assert resp.status == 200
    assert late_ref not in [e["event_id"] for e in resp.json["chunk"]]
    assert resp.json["chunk"] == []
    resp = await relations(harness, bob, room_id, late)
    assert_error(resp, 404, "M_NOT_FOUND")


async def test_edit_aggregation_latest_edit_by_sender(harness: Harness) -> None:
    alice = await make_user(harness, "alice")
    bob = await make_user(harness, "bob")
    room_id = await create_room(harness, alice, preset="public_chat")
    assert (await join(harness, bob, room_id)).status == 200
    original = await send_ok(harness, alice, room_id, "first")
    await send_edit(harness, alice, room_id, original, "second")
    latest = await send_edit(harness, alice, room_id, original, "third")
    # An edit by someone else is not applicable.
    await send_edit(harness, bob, room_id, original, "hijack")

    event = await served(harness, bob, room_id, original)
    replace = event["unsigned"]["m.relations"]["m.replace"]
    assert replace["event_id"] == latest
    assert replace["content"]["m.new_content"]["body"] == "third"
    assert replace["sender"] == alice.user_id
    assert "m.thread" not in event["unsigned"]["m.relations"]

    # /messages bundles the same way, and edits themselves carry no edit.
    resp = await harness.request(
        "GET", f"{V3}/rooms/{q(room_id)}/messages?limit=20", token=alice.token
    )
    by_id = {e["event_id"]: e for e in resp.json["chunk"]}
    assert by_id[original]["unsigned"]["m.relations"]["m.replace"]["event_id"] == latest
    assert "m.relations" not in by_id[latest]["unsigned"]

    # Redacting the latest edit falls back to the previous one.
    await redact(harness, alice, room_id, latest)
    event = await served(harness, alice, room_id, original)
    assert event["unsigned"]["m.relations"]["m.replace"]["content"]["body"] == "* second"


async def test_redacting_original_drops_aggregations(harness: Harness) -> None:
    alice = await make_user(harness, "alice")
    room_id = await create_room(harness, alice)
    original = await send_ok(harness, alice, room_id, "first")
    await send_edit(harness, alice, room_id, original, "second")
    await send_rel(harness, alice, room_id, original, "m.thread", "reply")
    event = await served(harness, alice, room_id, original)
    assert set(event["unsigned"]["m.relations"]) == {"m.replace", "m.thread"}
    await redact(harness, alice, room_id, original)
    event = await served(harness, alice, room_id, original)
    assert "m.relations" not in event["unsigned"]
    assert "redacted_because" in event["unsigned"]


async def test_thread_aggregation(harness: Harness) -> None:
    alice = await make_user(harness, "alice")
    bob = await make_user(harness, "bob")
    carol = await make_user(harness, "carol")
    room_id = await create_room(harness, alice, preset="public_chat")
    for user in (bob, carol):
        assert (await join(harness, user, room_id)).status == 200
    root = await send_ok(harness, alice, room_id, "root")
    await send_rel(harness, alice, room_id, root, "m.thread", "one")
    two = await send_rel(harness, bob, room_id, root, "m.thread", "two")
    three = await send_rel(harness, bob, room_id, root, "m.thread", "three")
    edit = await send_edit(harness, bob, room_id, three, "three!")

    thread = (await served(harness, alice, room_id, root))["unsigned"]["m.relations"]["m.thread"]
    assert thread["count"] == 3
    assert thread["current_user_participated"] is True  # alice sent the root
    assert thread["latest_event"]["event_id"] == three
    assert thread["latest_event"]["unsigned"]["m.relations"]["m.replace"]["event_id"] == edit

    thread = (await served(harness, carol, room_id, root))["unsigned"]["m.relations"]["m.thread"]
    assert thread["current_user_participated"] is False
    thread = (await served(harness, bob, room_id, root))["unsigned"]["m.relations"]["m.thread"]
    assert thread["current_user_participated"] is True

    # Redacting a thread reply removes it from the count and the latest event.
    await redact(harness, bob, room_id, three)
    thread = (await served(harness, alice, room_id, root))["unsigned"]["m.relations"]["m.thread"]
    assert thread["count"] == 2
    assert thread["latest_event"]["event_id"] == two
    # Thread replies are not roots.
    reply = await served(harness, alice, room_id, two)
    assert "m.thread" not in reply["unsigned"].get("m.relations", {})


async def test_reference_aggregation(harness: Harness) -> None:
    alice = await make_user(harness, "alice")
    room_id = await create_room(harness, alice)
    parent = await send_ok(harness, alice, room_id, "parent")
    r1 = await send_rel(harness, alice, room_id, parent, "m.reference")
    r2 = await send_rel(harness, alice, room_id, parent, "m.reference")
    event = await served(harness, alice, room_id, parent)
    chunk = event["unsigned"]["m.relations"]["m.reference"]["chunk"]
    assert chunk == [{"event_id": r1}, {"event_id": r2}]
    await redact(harness, alice, room_id, r1)
    event = await served(harness, alice, room_id, parent)
    assert event["unsigned"]["m.relations"]["m.reference"]["chunk"] == [{"event_id": r2}]


async def test_aggregation_queries_per_batch(harness: Harness) -> None:
    """Bundling a page of many events costs a fixed number of queries."""
    alice = await make_user(harness, "alice")
    room_id = await create_room(harness, alice)
    for i in range(12):
        parent = await send_ok(harness, alice, room_id, f"p{i}")
        await send_edit(harness, alice, room_id, parent, f"p{i}!")
        await send_rel(harness, alice, room_id, parent, "m.thread", "t")
    hs = harness.hs
    page = await hs.room_history_store.get_room_events(
        room_id, after=None, before=None, limit=100, backwards=True
    )
    db = hs.db

    def txn_counts() -> dict[str, int]:
        return {desc: int(count) for desc, (count, _s) in db.txn_totals.items()}

    def txns_since(before: dict[str, int]) -> list[str]:
        """The transactions run since `before`, by name (every way of running one counts)."""
        return [
            desc for desc, count in txn_counts().items() for _ in range(count - before.get(desc, 0))
        ]

    before = txn_counts()
    result = await hs.aggregations.aggregate(page, alice.user_id)
    calls = txns_since(before)
    roots = [s for s in page if s.event.content.get("body", "").startswith("p")]
    assert all(
        result[s.event.event_id]["m.replace"] for s in roots if "!" not in s.event.content["body"]
    )
    aggregation_queries = [c for c in calls if c.startswith(("get_relat", "get_thread"))]
    assert len(aggregation_queries) <= 6, calls

    # A page without any relations costs a single query.
    plain = [s for s in page if s.event.type != "m.room.message"]
    before = txn_counts()
    assert await hs.aggregations.aggregate(plain, alice.user_id) == {}
    calls = txns_since(before)
    assert calls == ["get_relation_kinds"]


async def test_relations_from_another_room_are_not_served(harness: Harness) -> None:
    """A relation sent in private room R naming event E of public room P is
    neither listed nor aggregated nor counted in P, nor makes E a thread of R."""
    alice = await make_user(harness, "alice")
    mallory = await make_user(harness, "mallory")
    public = await create_room(harness, alice, preset="public_chat")
    assert (await join(harness, mallory, public)).status == 200
    private = await create_room(harness, mallory, preset="private_chat")
    target = await send_ok(harness, alice, public, "target")
    here = await send_rel(harness, alice, public, target, "m.thread", "in P")

    secrets = [
        await send_rel(harness, mallory, private, target, "m.thread", "secret thread"),
        await send_rel(
            harness,
            mallory,
            private,
            target,
            "m.annotation",
            event_type="m.reaction",
            extra={"m.relates_to": {"rel_type": "m.annotation", "event_id": target, "key": "x"}},
        ),
        await send_rel(harness, mallory, private, target, "m.reference", "secret ref"),
        await send_rel(
            harness,
            mallory,
            private,
            target,
            "m.replace",
            "* secret edit",
            extra={"m.new_content": {"msgtype": "m.text", "body": "secret edit"}},
        ),
    ]
    for path, params in [((), {}), ((), {"recurse": "true"}), (("m.thread",), {})]:
        resp = await relations(harness, alice, public, target, *path, **params)
        assert resp.status == 200, resp.json
        assert [e["event_id"] for e in resp.json["chunk"]] == [here], path

    bundled = (await served(harness, alice, public, target))["unsigned"]["m.relations"]
    assert set(bundled) == {"m.thread"}
    assert bundled["m.thread"]["count"] == 1
    assert bundled["m.thread"]["latest_event"]["event_id"] == here
    assert bundled["m.thread"]["current_user_participated"] is True

    # Nor is the public event a thread root of the private room.
    resp = await harness.request("GET", f"{V1}/rooms/{q(private)}/threads", token=mallory.token)
    assert resp.status == 200 and resp.json["chunk"] == [], resp.json
    # Within the private room, the relations are ordinary (unrelated) events.
    resp = await harness.request(
        "GET", f"{V3}/rooms/{q(private)}/messages?dir=b&limit=10", token=mallory.token
    )
    assert set(secrets) <= {e["event_id"] for e in resp.json["chunk"]}
