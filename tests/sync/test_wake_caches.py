"""Incremental /sync answered from memory (the notifier's positions, the
membership cache): each change a cached answer depends on must show in the
next sync, on both engines."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any
from urllib.parse import quote

from tests.conftest import settle
from tests.e2e.helpers import Ed25519, device_keys, one_time_keys
from tests.support.harness import Harness
from tests.support.users import TestUser, make_user
from tests.sync.helpers import C, body, unpooled, until
from tests.user_streams.helpers import call, public_room, send_text


class Syncer:
    """One device's incremental syncs, each from the last one's token."""

    def __init__(self, harness: Harness, user: TestUser) -> None:
        self.harness = harness
        self.user = user
        self.since: str | None = None

    async def sync(self, query: str = "") -> dict[str, Any]:
        path = "/sync?timeout=0" + query
        if self.since is not None:
            path += f"&since={quote(self.since)}"
        resp = await call(self.harness, "GET", path, self.user)
        assert resp.status == 200, resp.json
        body: dict[str, Any] = resp.json
        self.since = body["next_batch"]
        return body

    async def quiet(self) -> dict[str, Any]:
        """Two syncs: the second one has nothing new, and so reads from memory."""
        await self.sync()
        return await self.sync()


def rooms(body: dict[str, Any], kind: str) -> dict[str, Any]:
    found: dict[str, Any] = body.get("rooms", {}).get(kind, {})
    return found


async def test_membership_changes_show_after_quiet_syncs(harness: Harness) -> None:
    alice = await make_user(harness, "alice")
    bob = await make_user(harness, "bob")
    carol = await make_user(harness, "carol")
    room_a = await public_room(harness, alice, bob)
    bob_sync = Syncer(harness, bob)
    assert not rooms(await bob_sync.quiet(), "join")

    # Someone else joins: the room's summary counts them.
    assert (await call(harness, "POST", f"/rooms/{room_a}/join", carol, {})).status == 200
    body = await bob_sync.sync()
    assert rooms(body, "join")[room_a]["summary"]["m.joined_member_count"] == 3

    # An invite, a join, a leave of bob's own.
    resp = await call(harness, "POST", "/createRoom", alice, {"invite": [bob.user_id]})
    room_b = resp.json["room_id"]
    assert room_b in rooms(await bob_sync.sync(), "invite")
    await bob_sync.quiet()
    assert (await call(harness, "POST", f"/rooms/{room_b}/join", bob, {})).status == 200
    assert room_b in rooms(await bob_sync.sync(), "join")
    await bob_sync.quiet()
    await send_text(harness, alice, room_b, "in b")
    timeline = rooms(await bob_sync.sync(), "join")[room_b]["timeline"]["events"]
    assert [e["content"].get("body") for e in timeline] == ["in b"]
    assert (await call(harness, "POST", f"/rooms/{room_a}/leave", bob, {})).status == 200
    body = await bob_sync.sync()
    assert room_a in rooms(body, "leave")
    await bob_sync.quiet()
    # Messages in a room bob left no longer reach him.
    await send_text(harness, alice, room_a, "after bob left")
    assert room_a not in rooms(await bob_sync.sync(), "join")

    # Forgetting writes no event: a full sync with left rooms stops listing it.
    include_leave = "&filter=" + quote('{"room": {"include_leave": true}}')
    full = Syncer(harness, bob)
    assert room_a in rooms(await full.sync(include_leave), "leave")
    assert (await call(harness, "POST", f"/rooms/{room_a}/forget", bob, {})).status == 200
    assert room_a not in rooms(await Syncer(harness, bob).sync(include_leave), "leave")


async def test_account_data_changes_show_after_quiet_syncs(harness: Harness) -> None:
    bob = await make_user(harness, "bob")
    room_id = await public_room(harness, bob)
    bob_sync = Syncer(harness, bob)
    await bob_sync.quiet()
    path = f"/user/{quote(bob.user_id)}/account_data/org.example.one"
    assert (await call(harness, "PUT", path, bob, {"n": 1})).status == 200
    body = await bob_sync.sync()
    assert {"type": "org.example.one", "content": {"n": 1}} in body["account_data"]["events"]
    assert not (await bob_sync.sync()).get("account_data", {}).get("events")
    path = f"/user/{quote(bob.user_id)}/rooms/{quote(room_id)}/account_data/org.example.two"
    assert (await call(harness, "PUT", path, bob, {"n": 2})).status == 200
    room = rooms(await bob_sync.sync(), "join")[room_id]
    assert room["account_data"]["events"] == [{"type": "org.example.two", "content": {"n": 2}}]


async def test_receipts_show_after_quiet_syncs(harness: Harness) -> None:
    alice = await make_user(harness, "alice")
    bob = await make_user(harness, "bob")
    room_id = await public_room(harness, alice, bob)
    event_id = await send_text(harness, bob, room_id, "read me")
    bob_sync = Syncer(harness, bob)
    await bob_sync.quiet()
    path = f"/rooms/{room_id}/receipt/m.read/{quote(event_id)}"
    assert (await call(harness, "POST", path, alice, {})).status == 200
    ephemeral = rooms(await bob_sync.sync(), "join")[room_id]["ephemeral"]["events"]
    receipts = [e for e in ephemeral if e["type"] == "m.receipt"]
    assert alice.user_id in receipts[0]["content"][event_id]["m.read"]


async def test_key_upload_and_claim_show_in_the_counts(harness: Harness) -> None:
    alice = await make_user(harness, "alice")
    bob = await make_user(harness, "bob")
    signer = Ed25519()
    bob_sync = Syncer(harness, bob)
    body = await bob_sync.quiet()
    assert body["device_one_time_keys_count"] == {"signed_curve25519": 0}
    upload = {
        "one_time_keys": one_time_keys(signer, bob, range(2)),
        "fallback_keys": {"signed_curve25519:fb": {"key": "fallback", "fallback": True}},
    }
    assert (await call(harness, "POST", "/keys/upload", bob, upload)).status == 200
    body = await bob_sync.sync()
    assert body["device_one_time_keys_count"] == {"signed_curve25519": 2}
    assert body["device_unused_fallback_key_types"] == ["signed_curve25519"]
    claim = {"one_time_keys": {bob.user_id: {bob.device_id: "signed_curve25519"}}}
    for left in (1, 0):
        assert (await call(harness, "POST", "/keys/claim", alice, claim)).status == 200
        assert (await bob_sync.sync())["device_one_time_keys_count"] == {"signed_curve25519": left}
    # No one-time key left: the fallback key is handed out, and used.
    assert (await call(harness, "POST", "/keys/claim", alice, claim)).status == 200
    assert (await bob_sync.sync())["device_unused_fallback_key_types"] == []


async def test_device_list_changes_show_after_quiet_syncs(harness: Harness) -> None:
    alice = await make_user(harness, "alice")
    bob = await make_user(harness, "bob")
    carol = await make_user(harness, "carol")
    room_id = await public_room(harness, alice, bob)
    bob_sync = Syncer(harness, bob)
    await bob_sync.quiet()
    keys = {"device_keys": device_keys(alice, Ed25519())}
    assert (await call(harness, "POST", "/keys/upload", alice, keys)).status == 200
    body = await bob_sync.sync()
    assert alice.user_id in body["device_lists"]["changed"]
    assert not (await bob_sync.sync()).get("device_lists", {}).get("changed")
    # A user who starts sharing a room is `changed` too; one who stops, `left`.
    assert (await call(harness, "POST", f"/rooms/{room_id}/join", carol, {})).status == 200
    assert carol.user_id in (await bob_sync.sync())["device_lists"]["changed"]
    await bob_sync.quiet()
    assert (await call(harness, "POST", f"/rooms/{room_id}/leave", carol, {})).status == 200
    assert carol.user_id in (await bob_sync.sync())["device_lists"]["left"]


async def test_to_device_messages_show_once_after_quiet_syncs(harness: Harness) -> None:
    alice = await make_user(harness, "alice")
    bob = await make_user(harness, "bob")
    bob_sync = Syncer(harness, bob)
    await bob_sync.quiet()
    for n in (1, 2):
        body = {"messages": {bob.user_id: {bob.device_id: {"n": n}}}}
        path = f"/sendToDevice/org.example.ping/t{n}"
        assert (await call(harness, "PUT", path, alice, body)).status == 200
        events = (await bob_sync.sync())["to_device"]["events"]
        assert [e["content"] for e in events] == [{"n": n}]
        assert not (await bob_sync.sync()).get("to_device", {}).get("events")


def unread(body: dict[str, Any], room_id: str) -> dict[str, int] | None:
    room = rooms(body, "join").get(room_id)
    return None if room is None else room["unread_notifications"]


async def test_unread_counts_carried_across_syncs_follow_every_change(harness: Harness) -> None:
    alice = await make_user(harness, "alice")
    bob = await make_user(harness, "bob")
    room_id = await public_room(harness, alice, bob)
    bob_sync = Syncer(harness, bob)
    await bob_sync.quiet()
    expected = {"notification_count": 0, "highlight_count": 0}
    for n in (1, 2, 3):
        await send_text(harness, alice, room_id, f"m{n}")
        expected["notification_count"] = n
        assert unread(await bob_sync.sync(), room_id) == expected
    # A mention highlights.
    mention = await send_text(harness, alice, room_id, "hello bob")
    assert unread(await bob_sync.sync(), room_id) == {
        "notification_count": 4,
        "highlight_count": 1,
    }
    # Redacting an unread message takes it out of the counts.
    path = f"/rooms/{room_id}/redact/{quote(mention)}/r1"
    assert (await call(harness, "PUT", path, alice, {})).status == 200
    assert unread(await bob_sync.sync(), room_id) == {
        "notification_count": 3,
        "highlight_count": 0,
    }
    # Bob's own message reads everything before it.
    await send_text(harness, bob, room_id, "read")
    await send_text(harness, alice, room_id, "after that")
    body = await bob_sync.sync()
    assert unread(body, room_id) == {"notification_count": 1, "highlight_count": 0}
    # A read receipt (no timeline event) clears the counts.
    last = rooms(body, "join")[room_id]["timeline"]["events"][-1]["event_id"]
    path = f"/rooms/{room_id}/receipt/m.read/{quote(last)}"
    assert (await call(harness, "POST", path, bob, {})).status == 200
    assert unread(await bob_sync.sync(), room_id) == {
        "notification_count": 0,
        "highlight_count": 0,
    }
    # A push rule change counts again under the new rules.
    await send_text(harness, alice, room_id, "quiet now")
    assert unread(await bob_sync.sync(), room_id) == {
        "notification_count": 1,
        "highlight_count": 0,
    }
    path = "/pushrules/global/override/.m.rule.master/enabled"
    assert (await call(harness, "PUT", path, bob, {"enabled": True})).status == 200
    body = await bob_sync.sync()
    assert unread(body, room_id) in (None, {"notification_count": 0, "highlight_count": 0})
    await send_text(harness, alice, room_id, "muted")
    assert unread(await bob_sync.sync(), room_id) == {
        "notification_count": 0,
        "highlight_count": 0,
    }


async def test_first_wake_after_an_initial_sync_reads_no_more_than_later_ones(
    harness: Harness,
) -> None:
    """The initial sync reads every joined room at once: it leaves behind
    what a woken sync would otherwise read again (members, unread counts)."""
    alice = await make_user(harness, "alice")
    bob = await make_user(harness, "bob")
    room_ids = [await public_room(harness, alice, bob) for _ in range(3)]
    for room_id in room_ids:
        await send_text(harness, alice, room_id, "before")
    hs = harness.hs
    since = body(await call(harness, "GET", "/sync", bob))["next_batch"]
    await settle()

    async def wake(get: Callable[..., Any], text: str) -> tuple[dict[str, Any], int]:
        """A long-poll woken by one message: its body, and the transactions
        from the message until all work both started has finished."""
        nonlocal since
        poll = asyncio.ensure_future(get(f"{C}/sync?since={quote(since)}&timeout=30000", bob.token))
        await until(lambda: hs.notifier.waiter_count == 1, "the long-poll to wait")
        before = hs.db.total_txns
        await send_text(harness, alice, room_ids[0], text)
        woken = body(await poll)
        await settle()
        since = woken["next_batch"]
        return woken, hs.db.total_txns - before

    async with unpooled(harness) as get:
        first, first_txns = await wake(get, "one")
        second, second_txns = await wake(get, "two")
    for woken, text, count in ((first, "one", 2), (second, "two", 3)):
        room = rooms(woken, "join")[room_ids[0]]
        assert [e["content"]["body"] for e in room["timeline"]["events"]] == [text]
        assert room["unread_notifications"] == {"notification_count": count, "highlight_count": 0}
        assert room["summary"]["m.joined_member_count"] == 2
    assert first_txns <= second_txns, (first_txns, second_txns)
