"""The Notifier on a real Clock and virtual time."""

from __future__ import annotations

import asyncio

from hamlet.handlers.common.notifier import Notifier, _Positions
from hamlet.handlers.common.streams import StreamToken
from hamlet.runtime.clock import Clock
from hamlet.runtime.logcontext import LoggingContext, current_context
from tests.conftest import advance


class Counter:
    def __init__(self, name: str) -> None:
        self.name = name
        self.pos = 0

    def current_position(self) -> int:
        return self.pos


def make() -> tuple[Clock, Notifier, dict[str, Counter]]:
    clock = Clock("hs.test")
    notifier = Notifier(clock)
    streams = {n: Counter(n) for n in ("typing", "receipts", "to_device", "account_data")}
    for name, counter in streams.items():
        notifier.register_stream(name, counter)
    return clock, notifier, streams


def bump(notifier: Notifier, counter: Counter, **targets: list[str]) -> None:
    counter.pos += 1
    notifier.notify(counter.name, counter.pos, **targets)


async def test_current_token_comes_from_providers() -> None:
    clock, notifier, streams = make()
    streams["receipts"].pos = 7
    assert notifier.current_token() == StreamToken(receipts=7)
    await clock.shutdown()


async def test_relevant_notify_wakes_at_once() -> None:
    clock, notifier, streams = make()
    since = notifier.current_token()
    waiter = asyncio.ensure_future(
        notifier.wait_for_change("@a:hs.test", ["!r:hs.test"], since, 30)
    )
    await advance(0)
    assert notifier.waiter_count == 1
    bump(notifier, streams["typing"], rooms=["!r:hs.test"])
    await asyncio.sleep(0)
    await asyncio.sleep(0)
    assert waiter.done() and waiter.result() is True
    assert notifier.waiter_count == 0
    assert notifier.index_sizes() == (0, 0)

    # Directly to the user (to-device, account data).
    since = notifier.current_token()
    waiter = asyncio.ensure_future(notifier.wait_for_change("@a:hs.test", [], since, 30))
    await advance(0)
    bump(notifier, streams["to_device"], users=["@a:hs.test"])
    await advance(0)
    assert waiter.result() is True
    await clock.shutdown()


async def test_irrelevant_notify_does_not_wake() -> None:
    clock, notifier, streams = make()
    since = notifier.current_token()
    waiter = asyncio.ensure_future(
        notifier.wait_for_change("@a:hs.test", ["!mine:hs.test"], since, 30)
    )
    await advance(1)
    bump(notifier, streams["to_device"], users=["@b:hs.test"])  # another user's to-device
    bump(notifier, streams["typing"], rooms=["!other:hs.test"])  # a room she is not in
    await advance(10)
    assert not waiter.done()
    await advance(20)
    assert waiter.result() is False
    assert notifier.waiter_count == 0
    await clock.shutdown()


async def test_change_before_waiting_returns_at_once() -> None:
    clock, notifier, streams = make()
    since = notifier.current_token()
    bump(notifier, streams["receipts"], rooms=["!r:hs.test"])
    assert await notifier.wait_for_change("@a:hs.test", ["!r:hs.test"], since, 30) is True
    # Caught up: nothing new, times out.
    since = notifier.current_token()
    task = asyncio.ensure_future(notifier.wait_for_change("@a:hs.test", ["!r:hs.test"], since, 5))
    await advance(6)
    assert task.result() is False
    # A change the client already saw (position <= since) does not count.
    assert notifier.has_change("@a:hs.test", ["!r:hs.test"], since) is False
    await clock.shutdown()


async def test_token_from_before_a_restart_returns_at_once() -> None:
    clock, notifier, _streams = make()
    since = StreamToken(typing=500)  # the typing stream restarted from 0
    assert await notifier.wait_for_change("@a:hs.test", [], since, 30) is True
    await clock.shutdown()


async def test_timeout_keeps_the_callers_context() -> None:
    clock, notifier, _streams = make()
    with LoggingContext("GET-1", "hs.test", request="GET-1") as ctx:
        result = await notifier.wait_for_change(
            "@a:hs.test", ["!r:hs.test"], notifier.current_token(), 0.5
        )
        assert result is False
        assert current_context() is ctx
    assert notifier.waiter_count == 0
    assert clock.pending_count() == 0
    await clock.shutdown()


async def test_cancelled_waiter_leaks_nothing() -> None:
    clock, notifier, streams = make()
    since = notifier.current_token()
    tasks = [
        asyncio.ensure_future(
            notifier.wait_for_change(f"@u{i}:hs.test", ["!r:hs.test", f"!x{i}:hs.test"], since, 60)
        )
        for i in range(5)
    ]
    await advance(1)
    assert notifier.waiter_count == 5
    assert notifier.index_sizes() == (5, 6)
    for task in tasks:
        task.cancel()  # clients disconnected
    await asyncio.gather(*tasks, return_exceptions=True)
    assert all(t.cancelled() for t in tasks)
    assert notifier.waiter_count == 0
    assert notifier.index_sizes() == (0, 0)
    assert clock.pending_count() == 0  # the timeout timers are gone too
    # A later notify is harmless.
    bump(notifier, streams["typing"], rooms=["!r:hs.test"])
    await clock.shutdown()


async def test_many_waiters_one_room() -> None:
    clock, notifier, streams = make()
    since = notifier.current_token()
    tasks = [
        asyncio.ensure_future(notifier.wait_for_change(f"@u{i}:hs.test", ["!r:hs.test"], since, 60))
        for i in range(50)
    ]
    await advance(0)
    bump(notifier, streams["receipts"], rooms=["!r:hs.test"])
    results = await asyncio.gather(*tasks)
    assert all(results)
    assert notifier.waiter_count == 0
    await clock.shutdown()


def test_remembered_positions_are_bounded_and_eviction_never_hides_a_change() -> None:
    positions = _Positions(max_keys=3)
    for i, user in enumerate(["@a:t", "@b:t", "@c:t", "@d:t"], start=1):
        positions.advance(user, "receipts", i)
    assert len(positions) == 3  # @a:t was evicted
    # Tokens from before @a's change still see one for @a (and, conservatively,
    # for anyone not remembered); tokens past it see nothing.
    assert positions.past("@a:t", StreamToken(receipts=0))
    assert positions.past("@nobody:t", StreamToken(receipts=0))
    assert not positions.past("@a:t", StreamToken(receipts=1))
    assert positions.past("@d:t", StreamToken(receipts=3))
    assert not positions.past("@d:t", StreamToken(receipts=4))
    # Moving a key keeps it from being evicted next.
    positions.advance("@b:t", "receipts", 5)
    positions.advance("@e:t", "receipts", 6)
    assert positions.past("@b:t", StreamToken(receipts=4))
    assert not positions.past("@b:t", StreamToken(receipts=5))


async def test_moved_since_knows_nothing_before_start_or_from_other_processes() -> None:
    clock, notifier, streams = make()
    receipts = streams["receipts"]
    receipts.pos = 5
    # Not started: it cannot know what moved before it.
    assert notifier.moved_since("receipts", 5, users=["@a:hs.test"])
    notifier.start()
    assert not notifier.moved_since("receipts", 5, users=["@a:hs.test"])
    # A position from before the start, or ahead of the stream.
    assert notifier.moved_since("receipts", 4, users=["@a:hs.test"])
    assert notifier.moved_since("receipts", 6, users=["@a:hs.test"])
    bump(notifier, receipts, users=["@a:hs.test"], rooms=["!r:hs.test"])
    assert notifier.moved_since("receipts", 5, users=["@a:hs.test"])
    assert notifier.moved_since("receipts", 5, rooms=["!r:hs.test"])
    assert not notifier.moved_since("receipts", 5, users=["@b:hs.test"])
    assert not notifier.moved_since("receipts", 6, users=["@a:hs.test"])
    await clock.shutdown()


async def test_members_moved_since_follows_events_naming_users() -> None:
    clock, notifier, _streams = make()
    events = Counter("events")
    notifier.register_stream("events", events)
    notifier.start()
    bump(notifier, events, rooms=["!r:hs.test"])
    assert notifier.moved_since("events", 0, rooms=["!r:hs.test"])
    assert not notifier.members_moved_since(0, rooms=["!r:hs.test"])
    bump(notifier, events, rooms=["!r:hs.test"], users=["@joiner:hs.test"])
    assert notifier.members_moved_since(1, rooms=["!r:hs.test"])
    assert not notifier.members_moved_since(2, rooms=["!r:hs.test"])
    await clock.shutdown()


def test_evicted_keys_read_as_moved_up_to_the_watermark() -> None:
    positions = _Positions(max_keys=1)
    positions.advance("a", "receipts", 3)
    positions.advance("b", "receipts", 1)
    assert positions.position("a", "receipts") == 3  # evicted: the watermark
    assert positions.position("never", "receipts") == 3
    assert positions.position("b", "receipts") == 1
