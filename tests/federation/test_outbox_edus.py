"""Typing, read receipts and presence of local users reach the remote
servers of their rooms as EDUs (through the client API, both engines)."""

from __future__ import annotations

from typing import Any
from urllib.parse import quote

from tests.conftest import advance, settle
from tests.federation.outbox_support import (  # noqa: F401
    FakeTransport,
    attach,
    presence_harness,
    room_with_remotes,
)
from tests.support.harness import Harness, start_harness
from tests.support.users import make_user
from tests.user_streams.helpers import call, send_text

REMOTE = "remote.example"


def edus(transport: FakeTransport, edu_type: str) -> list[Any]:
    return [
        e["content"]
        for t in transport.to(REMOTE)
        for e in t.body["edus"]
        if e["edu_type"] == edu_type
    ]


async def test_typing_edus(fh: Harness) -> None:
    transport = attach(fh.hs)
    alice = await make_user(fh, "alice")
    room = await room_with_remotes(fh, alice, REMOTE)
    path = f"/rooms/{room}/typing/{quote(alice.user_id)}"
    resp = await call(fh, "PUT", path, alice, {"typing": True, "timeout": 10_000})
    assert resp.status == 200
    await settle()
    assert edus(transport, "m.typing") == [
        {"room_id": room, "user_id": alice.user_id, "typing": True}
    ]
    # Still typing: nothing new. Expiry tells the remote server it stopped.
    resp = await call(fh, "PUT", path, alice, {"typing": True, "timeout": 10_000})
    await advance(11)
    assert edus(transport, "m.typing")[1:] == [
        {"room_id": room, "user_id": alice.user_id, "typing": False}
    ]


async def test_receipt_edus_leave_private_receipts_out(fh: Harness) -> None:
    transport = attach(fh.hs)
    alice = await make_user(fh, "alice")
    room = await room_with_remotes(fh, alice, REMOTE)
    event_id = await send_text(fh, alice, room, "hello")
    resp = await call(fh, "POST", f"/rooms/{room}/receipt/m.read.private/{event_id}", alice, {})
    assert resp.status == 200
    await settle()
    assert edus(transport, "m.receipt") == []
    resp = await call(
        fh, "POST", f"/rooms/{room}/receipt/m.read/{event_id}", alice, {"thread_id": "main"}
    )
    assert resp.status == 200
    await settle()
    [content] = edus(transport, "m.receipt")
    receipt = content[room]["m.read"][alice.user_id]
    assert receipt["event_ids"] == [event_id]
    assert receipt["data"]["thread_id"] == "main"
    assert isinstance(receipt["data"]["ts"], int)


async def test_presence_edus(fh: Harness) -> None:
    transport = attach(fh.hs)
    alice = await make_user(fh, "alice")
    await room_with_remotes(fh, alice, REMOTE)
    resp = await call(
        fh,
        "PUT",
        f"/presence/{quote(alice.user_id)}/status",
        alice,
        {"presence": "unavailable", "status_msg": "lunch"},
    )
    assert resp.status == 200
    await settle()
    pushes = [p for c in edus(transport, "m.presence") for p in c["push"]]
    assert pushes[-1]["user_id"] == alice.user_id
    assert pushes[-1]["presence"] == "unavailable"
    assert pushes[-1]["status_msg"] == "lunch"
    assert pushes[-1]["currently_active"] is False


async def test_edus_wait_in_the_queue_for_a_destination_that_is_down(
    make_hs_config,  # type: ignore[no-untyped-def]
) -> None:
    config = make_hs_config(
        federation={"max_long_retries": 0, "destination_min_retry_interval": "30s"}
    )
    h = await start_harness([config])
    try:
        transport = attach(h.hs, FakeTransport(modes={REMOTE: "down"}))
        alice = await make_user(h, "alice")
        room = await room_with_remotes(h, alice, REMOTE)
        event_id = await send_text(h, alice, room, "one")
        await settle()
        for _ in range(3):  # the same key: only the newest stays queued
            resp = await call(h, "POST", f"/rooms/{room}/receipt/m.read/{event_id}", alice, {})
            assert resp.status == 200
        await settle()
        transport.modes[REMOTE] = "ok"
        await advance(31)
        assert len(edus(transport, "m.receipt")) == 1
    finally:
        await h.close()
