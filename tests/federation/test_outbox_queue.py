"""The federation sender's queues through a real HomeServer: transaction
shape, order, batching, restart (both engines, virtual time)."""

from __future__ import annotations

import pytest

from hamlet.handlers.federation.sender import queue as queue_module
from tests.conftest import settle
from tests.federation.outbox_support import (  # noqa: F401
    FakeTransport,
    attach,
    bodies,
    join_remote,
    presence_harness,
    room_with_remotes,
)
from tests.support.harness import Harness
from tests.support.users import make_user
from tests.user_streams.helpers import public_room, send_text

REMOTE = "remote.example"


async def send_many(harness: Harness, user_id: str, room_id: str, count: int) -> None:
    for i in range(count):
        await harness.hs.event_creator.send(
            user_id, room_id, "m.room.message", {"msgtype": "m.text", "body": f"m{i}"}
        )


async def test_transaction_shape_and_order(fh: Harness) -> None:
    transport = attach(fh.hs)
    alice = await make_user(fh, "alice")
    room = await room_with_remotes(fh, alice, REMOTE)
    for text in ("one", "two", "three"):
        await send_text(fh, alice, room, text)
    await settle()

    sent = transport.to(REMOTE)
    assert sent, "nothing was sent"
    assert bodies(sent) == ["one", "two", "three"]
    for txn in sent:
        assert txn.path == f"/_matrix/federation/v1/send/{txn.txn_id}"
        assert set(txn.body) == {"origin", "origin_server_ts", "pdus", "edus"}
        assert txn.body["origin"] == fh.hs.server_name
        assert isinstance(txn.body["origin_server_ts"], int)
        assert txn.timeout_ms == fh.hs.config.federation.client_timeout
        for pdu in txn.body["pdus"]:
            # Signed PDUs of local senders only (bob's join is his server's to send).
            assert pdu["sender"] == alice.user_id
            assert fh.hs.server_name in pdu["signatures"]
            assert "unsigned" not in pdu
    assert len({t.txn_id for t in sent}) == len(sent)
    row = await fh.hs.federation_sender._store.get_destination(REMOTE)
    assert row is not None and row.retry_interval == 0 and row.failure_ts is None
    assert row.last_successful_stream_ordering is not None


async def test_local_only_rooms_send_nothing(fh: Harness) -> None:
    transport = attach(fh.hs)
    alice = await make_user(fh, "alice")
    bob = await make_user(fh, "bob")
    room = await public_room(fh, alice, bob)
    await send_text(fh, alice, room, "hello")
    resp = await fh.request(
        "PUT",
        f"/_matrix/client/v3/rooms/{room}/typing/{alice.user_id}",
        json={"typing": True, "timeout": 1000},
        token=alice.token,
    )
    assert resp.status == 200
    await settle()
    assert transport.attempts == []
    assert fh.hs.federation_sender.queue(REMOTE) is None


async def test_batches_of_50_pdus_and_100_edus(fh: Harness) -> None:
    hs = fh.hs
    alice = await make_user(fh, "alice")
    room = await room_with_remotes(fh, alice, REMOTE)
    # Without a transport the queue fills up (as it would while a
    # transaction is in flight); 120 users' presence makes 120 EDUs.
    users = [await hs.registration.register_user(f"u{i}", None) for i in range(120)]
    for user_id in users:
        await hs.event_creator.send(
            user_id, room, "m.room.member", {"membership": "join"}, state_key=user_id
        )
    await settle()
    for user_id in users:
        await hs.presence.set_presence(user_id, user_id, "online", None)
    await send_many(fh, alice.user_id, room, 120)
    await settle()
    transport = attach(hs)
    await settle()

    sent = transport.to(REMOTE)
    assert [len(t.body["pdus"]) for t in sent if t.body["pdus"]] == [50, 50, 50, 50, 40]
    assert max(len(t.body["edus"]) for t in sent) == 100
    presence = [e for t in sent for e in t.body["edus"] if e["edu_type"] == "m.presence"]
    assert {e["content"]["push"][0]["user_id"] for e in presence} == set(users)
    assert all(e["content"]["push"][0]["presence"] == "online" for e in presence)
    # 120 joins, then the 120 messages, in stream order.
    messages = bodies(sent)
    assert messages == [f"m{i}" for i in range(120)]


async def test_restart_resumes_what_was_queued(fh: Harness) -> None:
    alice = await make_user(fh, "alice")
    room = await room_with_remotes(fh, alice, REMOTE, "other.example")
    await send_many(fh, alice.user_id, room, 3)
    await settle()
    hs = await fh.restart()
    transport = attach(hs)
    await settle()
    assert bodies(transport.to(REMOTE)) == ["m0", "m1", "m2"]
    assert bodies(transport.to("other.example")) == ["m0", "m1", "m2"]
    # Delivered once: another restart sends nothing again.
    hs = await fh.restart()
    again = attach(hs)
    await settle()
    assert again.attempts == []


async def test_per_pdu_errors_are_logged_not_retried(fh: Harness, log_records) -> None:  # type: ignore[no-untyped-def]
    transport = FakeTransport(response={"pdus": {"$x": {"error": "You are not allowed"}}})
    attach(fh.hs, transport)
    alice = await make_user(fh, "alice")
    room = await room_with_remotes(fh, alice, REMOTE)
    await send_text(fh, alice, room, "one")
    await settle()
    assert len(transport.to(REMOTE)) == 1
    assert log_records.matching("refused $x")
    await send_text(fh, alice, room, "two")
    await settle()
    assert bodies(transport.to(REMOTE)) == ["one", "two"]


async def test_membership_changes_reach_the_remote_server(fh: Harness) -> None:
    transport = attach(fh.hs)
    alice = await make_user(fh, "alice")
    room = await public_room(fh, alice)
    await send_text(fh, alice, room, "before")
    await join_remote(fh.hs, room, f"@bob:{REMOTE}")
    await send_text(fh, alice, room, "after")
    # Kicking the last remote member: its server still hears of the kick.
    await fh.hs.event_creator.send(
        alice.user_id,
        room,
        "m.room.member",
        {"membership": "leave"},
        state_key=f"@bob:{REMOTE}",
    )
    await send_text(fh, alice, room, "alone")
    await settle()
    sent = transport.to(REMOTE)
    assert bodies(sent) == ["after"]
    kinds = [(p["type"], p.get("state_key")) for t in sent for p in t.body["pdus"]]
    assert kinds == [("m.room.message", None), ("m.room.member", f"@bob:{REMOTE}")]


async def test_a_queue_too_far_behind_catches_up(
    fh: Harness, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(queue_module, "MAX_QUEUED_PDUS", 20)
    alice = await make_user(fh, "alice")
    room = await room_with_remotes(fh, alice, REMOTE)
    other = await room_with_remotes(fh, alice, REMOTE)
    await send_many(fh, alice.user_id, room, 25)
    await fh.hs.event_creator.send(
        alice.user_id, other, "m.room.message", {"msgtype": "m.text", "body": "other"}
    )
    await settle()
    # The queue was dropped: only the newest event of each room goes out.
    transport = attach(fh.hs)
    await settle()
    assert bodies(transport.to(REMOTE)) == ["m24", "other"]
    # Nothing stale is left to send after a restart.
    hs = await fh.restart()
    again = attach(hs)
    await settle()
    assert again.attempts == []
