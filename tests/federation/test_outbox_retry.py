"""Retries, backoff and catch-up of the federation sender on virtual time;
an unreachable destination stalls neither its neighbours nor other tenants."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest

from tests.conftest import advance, settle
from tests.federation.outbox_support import (
    DOWN,
    HANG,
    OK,
    FakeTransport,
    RemoteHttpError,
    attach,
    bodies,
    join_remote,
    room_with_remotes,
)
from tests.support.harness import Harness, start_harness
from tests.support.users import make_user
from tests.user_streams.helpers import send_text

REMOTE = "remote.example"
FEDERATION: dict[str, Any] = {
    "client_timeout": 5000,
    "max_long_retries": 2,
    "max_long_retry_delay": 1000,
    "destination_min_retry_interval": "60s",
    "destination_retry_multiplier": 2,
    "destination_max_retry_interval": "5m",
}


@pytest.fixture
async def fh(make_hs_config) -> AsyncIterator[Harness]:  # type: ignore[no-untyped-def]
    h = await start_harness([make_hs_config(federation=FEDERATION, presence={"enabled": False})])
    yield h
    await h.close()


async def timings(h: Harness, destination: str = REMOTE) -> tuple[int | None, int, int]:
    row = await h.hs.federation_sender._store.get_destination(destination)
    assert row is not None
    return row.failure_ts, row.retry_last_ts, row.retry_interval


async def test_backoff_schedule_and_catch_up(fh: Harness) -> None:
    transport = attach(fh.hs, FakeTransport(modes={REMOTE: DOWN}))
    alice = await make_user(fh, "alice")
    room = await room_with_remotes(fh, alice, REMOTE)
    other = await room_with_remotes(fh, alice, REMOTE)
    await send_text(fh, alice, room, "lost-1")
    await advance(10)
    # One try and max_long_retries more, then the destination is backed off.
    assert len(transport.tries(REMOTE)) == 3
    failure_ts, last_ts, interval = await timings(fh)
    assert failure_ts == last_ts and interval == 60_000

    # While backed off, new events are only remembered for catch-up.
    await send_text(fh, alice, room, "lost-2")
    await send_text(fh, alice, other, "other-latest")
    await send_text(fh, alice, room, "room-latest")
    await advance(45)
    assert len(transport.tries(REMOTE)) == 3
    assert fh.hs.federation_sender.queue(REMOTE).pending_pdus == 0  # type: ignore[union-attr]

    # Each further failure multiplies the interval (x2, jittered 0.8-1.4), up to the cap.
    intervals = [interval]
    for _ in range(4):
        await advance(intervals[-1] / 1000 + 10)
        first_failure, _last, interval = await timings(fh)
        assert first_failure == failure_ts
        intervals.append(interval)
    assert 96_000 <= intervals[1] <= 168_000
    assert all(i <= 300_000 for i in intervals) and intervals[-1] == 300_000
    assert len(transport.tries(REMOTE)) == 3 * len(intervals)

    # Back up: catch-up sends the newest event of each room, not the backlog.
    transport.modes[REMOTE] = OK
    await advance(300 + 10)
    assert sorted(bodies(transport.to(REMOTE))) == ["other-latest", "room-latest"]
    failure_ts, last_ts, interval = await timings(fh)
    assert (failure_ts, last_ts, interval) == (None, 0, 0)
    # And then the queue is back to normal, event by event.
    await send_text(fh, alice, room, "n1")
    await send_text(fh, alice, room, "n2")
    await settle()
    assert bodies(transport.to(REMOTE))[-2:] == ["n1", "n2"]


async def test_a_retry_within_the_transaction_avoids_backoff(fh: Harness) -> None:
    transport = attach(fh.hs, FakeTransport(modes={REMOTE: DOWN}))
    alice = await make_user(fh, "alice")
    room = await room_with_remotes(fh, alice, REMOTE)
    await send_text(fh, alice, room, "one")
    await settle()
    assert len(transport.tries(REMOTE)) == 1
    transport.modes[REMOTE] = OK
    await advance(6)  # the first long retry comes after ~4 s
    assert bodies(transport.to(REMOTE)) == ["one"]
    assert await timings(fh) == (None, 0, 0)


async def test_http_errors(fh: Harness) -> None:
    transport = attach(fh.hs, FakeTransport(modes={REMOTE: 500}))
    alice = await make_user(fh, "alice")
    room = await room_with_remotes(fh, alice, REMOTE)
    await send_text(fh, alice, room, "one")
    await advance(10)
    # A 5xx answer is retried like a network failure (the same transaction,
    # max_long_retries more times), then the destination is backed off.
    tries = transport.tries(REMOTE)
    assert len(tries) == 3 and len({t.txn_id for t in tries}) == 1
    assert (await timings(fh))[2] == 60_000

    # A 4xx answer: the server is up but refuses; no backoff, the PDUs are
    # dropped for catch-up and tried again when the room moves on.
    transport.modes[REMOTE] = 403
    await advance(70)
    assert len(transport.tries(REMOTE)) == 4
    assert await timings(fh) == (None, 0, 0)
    transport.modes[REMOTE] = OK
    await send_text(fh, alice, room, "two")
    await settle()
    assert bodies(transport.to(REMOTE)) == ["two"]


async def test_a_5xx_then_success_within_the_transaction_avoids_backoff(fh: Harness) -> None:
    transport = attach(fh.hs, FakeTransport(modes={REMOTE: 503}))
    alice = await make_user(fh, "alice")
    room = await room_with_remotes(fh, alice, REMOTE)
    await send_text(fh, alice, room, "one")
    await settle()
    transport.modes[REMOTE] = OK
    await advance(6)
    assert bodies(transport.to(REMOTE)) == ["one"]
    assert len({t.txn_id for t in transport.tries(REMOTE)}) == 1
    assert await timings(fh) == (None, 0, 0)


async def test_a_429_waits_at_least_retry_after_ms(fh: Harness) -> None:
    limited = RemoteHttpError(429, "M_LIMIT_EXCEEDED", retry_after_ms=30_000)
    transport = attach(fh.hs, FakeTransport(modes={REMOTE: limited}))
    alice = await make_user(fh, "alice")
    room = await room_with_remotes(fh, alice, REMOTE)
    await send_text(fh, alice, room, "one")
    await settle()
    assert len(transport.tries(REMOTE)) == 1
    # The schedule alone would try again within ~1 s; the remote asked for 30 s.
    await advance(25)
    assert len(transport.tries(REMOTE)) == 1
    await advance(10)
    assert len(transport.tries(REMOTE)) == 2
    await advance(35)
    assert len(transport.tries(REMOTE)) == 3
    assert (await timings(fh))[2] == 60_000  # then backed off as usual

    # A retry_after_ms longer than the longest backoff is capped there.
    transport.modes[REMOTE] = RemoteHttpError(429, retry_after_ms=10**12)
    await advance(60 + 10)
    assert len(transport.tries(REMOTE)) == 4
    await advance(300 + 10)
    assert len(transport.tries(REMOTE)) == 5
    transport.modes[REMOTE] = OK
    await advance(2 * 300 + 10)
    assert bodies(transport.to(REMOTE)) == ["one"]


async def test_restart_keeps_the_backoff_then_catches_up(fh: Harness) -> None:
    transport = attach(fh.hs, FakeTransport(modes={REMOTE: DOWN}))
    alice = await make_user(fh, "alice")
    room = await room_with_remotes(fh, alice, REMOTE)
    await send_text(fh, alice, room, "a")
    await advance(10)
    await send_text(fh, alice, room, "b")
    await settle()
    hs = await fh.restart()
    transport = attach(hs, FakeTransport())
    await settle()
    assert transport.attempts == []  # still backed off
    # (A new HomeServer's wall clock starts from real time again, up to
    # the 10 virtual seconds above behind the old one's.)
    await advance(75)
    assert bodies(transport.to(REMOTE)) == ["b"]


async def test_a_hanging_destination_stalls_no_one_else(make_hs_config) -> None:  # type: ignore[no-untyped-def]
    # Tenant one may have one transaction in flight; tenant two the default.
    one = make_hs_config(
        "one.test", federation=FEDERATION, limits={"max_concurrent_federation_transactions": 1}
    )
    two = make_hs_config("two.test", federation=FEDERATION)
    h = await start_harness([one, two])
    try:
        hs1, hs2 = h.servers["one.test"], h.servers["two.test"]
        t1 = attach(hs1, FakeTransport(modes={"hang.example": HANG}))
        t2 = attach(hs2, FakeTransport(modes={"hang.example": HANG}))
        a1 = await make_user(h, "alice", host="one.test")
        a2 = await make_user(h, "alice", host="two.test")
        r1 = await room_with_remotes(h, a1, "hang.example", hs=hs1)
        r2 = await room_with_remotes(h, a2, "hang.example", "up.example", hs=hs2)
        await hs1.event_creator.send(
            a1.user_id, r1, "m.room.message", {"msgtype": "m.text", "body": "x"}
        )
        await settle()
        assert len(t1.tries("hang.example")) == 1  # holds tenant one's only slot

        # Tenant two: its own hanging destination does not hold up another one.
        await hs2.event_creator.send(
            a2.user_id, r2, "m.room.message", {"msgtype": "m.text", "body": "y"}
        )
        await settle()
        assert bodies(t2.to("up.example")) == ["y"]

        # Tenant one: a second destination waits for the slot, until the hang times out.
        await join_remote(hs1, r1, "@carol:up.example")
        await hs1.event_creator.send(
            a1.user_id, r1, "m.room.message", {"msgtype": "m.text", "body": "z"}
        )
        await settle()
        assert t1.to("up.example") == []
        await advance(5)
        assert bodies(t1.to("up.example")) == ["z"]
    finally:
        await h.close()
