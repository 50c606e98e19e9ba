"""The leaky-bucket rate limiter and its wheel-timer pruning, on virtual time."""

from __future__ import annotations

import asyncio
import itertools
import math
import random
from collections.abc import AsyncIterator

import pytest

from hamlet.handlers.common.ratelimit import (
    NEVER_RETRY_AFTER_MS,
    ZERO_RATE_KEEP_S,
    LimitExceededError,
    Ratelimiter,
)
from hamlet.runtime.clock import Clock
from hamlet.runtime.virtual_time import VirtualTimeEventLoop


def _loop() -> VirtualTimeEventLoop:
    loop = asyncio.get_running_loop()
    assert isinstance(loop, VirtualTimeEventLoop), "tests need the virtual-time loop"
    return loop


@pytest.fixture
async def clock() -> AsyncIterator[Clock]:
    clock = Clock("test.example")
    yield clock
    await clock.shutdown()


# -- leaky bucket semantics (explicit times, as in Synapse's tests) --------------------


async def test_burst_then_refused_then_leaks_back(clock: Clock) -> None:
    limiter = Ratelimiter(clock, name="t", per_second=0.1, burst_count=3)
    assert limiter.can_do_action("@a:x", _time_now_s=0) == (True, 0)
    assert limiter.can_do_action("@a:x", _time_now_s=0) == (True, 0)
    # The bucket is full after the third: the next is possible in 10 s.
    assert limiter.can_do_action("@a:x", _time_now_s=0) == (True, 10.0)
    # Full: the next one is refused; one token has leaked after 10 s.
    assert limiter.can_do_action("@a:x", _time_now_s=0) == (False, 10.0)
    assert limiter.can_do_action("@a:x", _time_now_s=5) == (False, 10.0)
    assert limiter.can_do_action("@a:x", _time_now_s=10) == (True, 20.0)
    assert limiter.can_do_action("@a:x", _time_now_s=10) == (False, 20.0)
    # Two more tokens leaked by 30 s.
    assert limiter.can_do_action("@a:x", _time_now_s=30) == (True, 30.0)
    assert limiter.can_do_action("@a:x", _time_now_s=30) == (True, 40.0)
    assert limiter.can_do_action("@a:x", _time_now_s=30) == (False, 40.0)
    # Long idle: fully empty, a whole burst again.
    for _ in range(3):
        assert limiter.can_do_action("@a:x", _time_now_s=1000)[0]
    assert not limiter.can_do_action("@a:x", _time_now_s=1000)[0]


async def test_keys_are_independent(clock: Clock) -> None:
    limiter = Ratelimiter(clock, name="t", per_second=1, burst_count=1)
    assert limiter.can_do_action("@a:x", _time_now_s=0)[0]
    assert not limiter.can_do_action("@a:x", _time_now_s=0)[0]
    assert limiter.can_do_action(("1.2.3.4",), _time_now_s=0)[0]
    assert limiter.can_do_action("!room:x", _time_now_s=0)[0]
    assert len(limiter) == 3


async def test_update_false_and_n_actions(clock: Clock) -> None:
    limiter = Ratelimiter(clock, name="t", per_second=1, burst_count=5)
    # Checking without updating records nothing.
    for _ in range(10):
        assert limiter.can_do_action("k", update=False, _time_now_s=0)[0]
    assert len(limiter) == 0
    assert limiter.can_do_action("k", n_actions=4, _time_now_s=0) == (True, 0)
    # 4 + 2 > 5: refused as a whole, nothing added.
    assert limiter.can_do_action("k", n_actions=2, _time_now_s=0) == (False, 0)
    assert limiter.can_do_action("k", n_actions=1, _time_now_s=0) == (True, 1.0)
    assert not limiter.can_do_action("k", _time_now_s=0.5)[0]
    # More actions than the burst are never allowed.
    assert not limiter.can_do_action("other", n_actions=6, _time_now_s=0)[0]
    assert "other" not in limiter


async def test_per_call_overrides(clock: Clock) -> None:
    limiter = Ratelimiter(clock, name="t", per_second=0.1, burst_count=1)
    for _ in range(10):
        assert limiter.can_do_action("admin-override", burst_count=10, _time_now_s=0)[0]
    assert not limiter.can_do_action("admin-override", burst_count=10, _time_now_s=0)[0]
    assert limiter.can_do_action("fast", rate_hz=10, _time_now_s=0)[0]
    assert limiter.can_do_action("fast", rate_hz=10, _time_now_s=0.1)[0]
    assert not limiter.can_do_action("fast", _time_now_s=0.1)[0]


async def test_record_action_counts_without_checking(clock: Clock) -> None:
    limiter = Ratelimiter(clock, name="t", per_second=1, burst_count=2)
    limiter.record_action("room", n_actions=5, _time_now_s=0)
    assert len(limiter) == 1
    # Over the limit until it leaks back under it: 5 - t <= 1 at t = 4.
    assert limiter.can_do_action("room", _time_now_s=3.5) == (False, 4.0)
    assert limiter.can_do_action("room", _time_now_s=4) == (True, 5.0)
    # A refund.
    limiter.record_action("room", n_actions=-1, _time_now_s=4)
    assert limiter.can_do_action("room", _time_now_s=4)[0]
    # A refund on an unknown key stores nothing.
    limiter.record_action("unknown", n_actions=-1, _time_now_s=4)
    assert "unknown" not in limiter


async def test_record_action_into_leaked_bucket_starts_afresh(clock: Clock) -> None:
    limiter = Ratelimiter(clock, name="t", per_second=1, burst_count=2)
    assert limiter.can_do_action("k", _time_now_s=0)[0]
    # Long after the bucket leaked empty (but before any pruning), two
    # recorded actions fill it: they are not forgotten with the old one.
    limiter.record_action("k", n_actions=2, _time_now_s=100)
    assert limiter.can_do_action("k", _time_now_s=100) == (False, 101.0)


async def test_ratelimit_raises_with_retry_after(clock: Clock) -> None:
    loop = _loop()
    limiter = Ratelimiter(clock, name="messages", per_second=0.5, burst_count=2)
    await limiter.ratelimit("@a:x")
    await limiter.ratelimit("@a:x")
    with pytest.raises(LimitExceededError) as e:
        await limiter.ratelimit("@a:x")
    # One token leaks every 2 s (the real clock moves a little meanwhile).
    assert 1500 <= e.value.retry_after_ms <= 2000
    assert e.value.limiter_name == "messages"
    await loop.advance(e.value.retry_after_ms / 1000)
    await limiter.ratelimit("@a:x")
    with pytest.raises(LimitExceededError):
        await limiter.ratelimit("@a:x")

    with pytest.raises(LimitExceededError) as e:
        await limiter.ratelimit("@b:x", n_actions=2, _time_now_s=0)
        await limiter.ratelimit("@b:x", n_actions=2, _time_now_s=1)
    assert e.value.retry_after_ms == 1000
    # Rounded up, never short.
    with pytest.raises(LimitExceededError) as e:
        await limiter.ratelimit("@b:x", _time_now_s=1.0001)
    assert e.value.retry_after_ms == 1000


async def test_zero_rate_never_allowed(clock: Clock) -> None:
    limiter = Ratelimiter(clock, name="t", per_second=0, burst_count=10)
    for t in (0.0, 10.0, 1e6):
        assert limiter.can_do_action("k", _time_now_s=t) == (False, math.inf)
    with pytest.raises(LimitExceededError) as e:
        await limiter.ratelimit("k")
    assert e.value.retry_after_ms == NEVER_RETRY_AFTER_MS
    # Refusing stores nothing.
    assert len(limiter) == 0
    # A rate-0 override on a normal limiter refuses too, and leaves the bucket be.
    normal = Ratelimiter(clock, name="t", per_second=1, burst_count=1)
    assert normal.can_do_action("k", _time_now_s=0)[0]
    before = normal.get_bucket("k")
    assert before is not None
    assert normal.can_do_action("k", rate_hz=0, _time_now_s=5) == (False, math.inf)
    assert normal.get_bucket("k") == before
    with pytest.raises(LimitExceededError):
        await normal.ratelimit("k", rate_hz=0)
    with pytest.raises(ValueError):
        Ratelimiter(clock, name="t", per_second=-1, burst_count=1)


async def test_zero_rate_recorded_bucket_is_eventually_pruned(clock: Clock) -> None:
    limiter = Ratelimiter(clock, name="t", per_second=0, burst_count=1)
    limiter.record_action("k", _time_now_s=0)
    assert len(limiter) == 1
    assert await limiter.prune(now=ZERO_RATE_KEEP_S - 10) == 0
    assert len(limiter) == 1
    assert await limiter.prune(now=ZERO_RATE_KEEP_S + 10) == 1
    assert len(limiter) == 0


async def test_exempt_skips(clock: Clock) -> None:
    limiter = Ratelimiter(clock, name="t", per_second=0.1, burst_count=0)
    with pytest.raises(LimitExceededError):
        await limiter.ratelimit("@user:x")
    for _ in range(100):
        await limiter.ratelimit("@admin:x", requester_exempt=True)
    assert len(limiter) == 0


# -- pruning through the looping call, on virtual time ----------------------------------


async def test_record_action_only_key_is_pruned(clock: Clock) -> None:
    loop = _loop()
    limiter = Ratelimiter(clock, name="t", per_second=1, burst_count=5, prune_interval=2)
    limiter.start()
    limiter.record_action(("1.2.3.4",), n_actions=3)
    assert len(limiter) == 1
    await loop.advance(2)  # empties at +3 s: not yet
    assert len(limiter) == 1
    await loop.advance(6)  # due after +3 s rounded up to its wheel bucket (+4 or +6)
    assert len(limiter) == 0
    assert limiter.wheel_size == 0


async def test_limited_key_is_not_pruned(clock: Clock) -> None:
    loop = _loop()
    limiter = Ratelimiter(clock, name="t", per_second=0.01, burst_count=3, prune_interval=5)
    limiter.start()
    for _ in range(3):
        await limiter.ratelimit("@spammer:x")
    # Empties 300 s after the burst; pruning runs every 5 s meanwhile.
    await loop.advance(90)
    assert len(limiter) == 1
    with pytest.raises(LimitExceededError):
        await limiter.ratelimit("@spammer:x")
    await loop.advance(200)
    assert len(limiter) == 1
    await loop.advance(20)
    assert len(limiter) == 0


async def test_touched_key_is_rescheduled_once(clock: Clock) -> None:
    loop = _loop()
    limiter = Ratelimiter(clock, name="t", per_second=0.1, burst_count=5, prune_interval=5)
    limiter.start()
    # Filed at its empty time (+10 s) when first seen ...
    await limiter.ratelimit("k")
    assert limiter.wheel_size == 1
    # ... and used again and again: still in the wheel once.
    for _ in range(20):
        await loop.advance(0.5)
        limiter.can_do_action("k")
        assert limiter.wheel_size == 1
    # It filled its bucket (5 tokens, emptying at +50 s): not empty when its
    # first wheel bucket comes due, so it is filed again rather than dropped.
    await loop.advance(10)
    assert len(limiter) == 1
    assert limiter.wheel_size == 1
    assert limiter.can_do_action("k", update=False)[0] is True
    # Left alone, it goes once it has leaked empty (at most 50 s of tokens).
    await loop.advance(70)
    assert len(limiter) == 0
    assert limiter.wheel_size == 0
    assert limiter.pruned_keys == 1


async def test_prune_directly(clock: Clock) -> None:
    limiter = Ratelimiter(clock, name="t", per_second=1, burst_count=10, prune_interval=5)
    for i in range(10):
        limiter.record_action(i, n_actions=i + 1, _time_now_s=0)
    assert await limiter.prune(now=0) == 0
    # Key i empties at i + 1 s; wheel buckets of 5 s: keys 0-3 are due at 5.
    assert await limiter.prune(now=5) == 4
    assert await limiter.prune(now=9.9) == 0
    assert await limiter.prune(now=10) == 5
    assert await limiter.prune(now=15) == 1
    assert len(limiter) == 0
    assert limiter.pruned_keys == 10
    assert limiter.max_prune_pause_s > 0
    assert limiter.total_prune_s >= limiter.max_prune_pause_s


async def test_pruned_limiter_decides_like_unpruned_twin(clock: Clock) -> None:
    """Random traffic: pruning never changes a decision.

    Times, rates and counts are dyadic so float arithmetic is exact and the
    comparison can be strict.
    """
    rng = random.Random(4321)
    for _ in range(40):
        rate = rng.choice([0.25, 0.5, 1.0, 2.0])
        burst = rng.choice([1, 2, 3, 5])
        pruned = Ratelimiter(clock, name="p", per_second=rate, burst_count=burst, prune_interval=1)
        twin = Ratelimiter(clock, name="u", per_second=rate, burst_count=burst, prune_interval=1)
        keys = ["@a:x", "@b:x", ("1.2.3.4",), "!r:x"]
        # Each key sticks to one rate: the default, or its own override (a
        # key with an override is only checked, as `record_action` has none).
        key_rate = {k: rng.choice([None, None, 0.5, 4.0]) for k in keys}
        recordable = [k for k in keys if key_rate[k] is None] or keys[:1]
        key_rate[recordable[0]] = None
        t = 0.0
        removed = 0
        for _ in range(300):
            t += rng.choice([0, 0, 0.25, 0.5, 1, 2, 5, 20])
            key = rng.choice(keys)
            op = rng.random()
            if op < 0.15:
                removed += await pruned.prune(now=t)
                assert pruned.wheel_size == len(pruned)
            elif op < 0.3:
                n = rng.choice([1, 2, -1])
                key = rng.choice(recordable)
                pruned.record_action(key, n_actions=n, _time_now_s=t)
                twin.record_action(key, n_actions=n, _time_now_s=t)
            else:
                rate_hz = key_rate[key]
                n = rng.choice([1, 1, 1, 2])
                update = rng.random() < 0.9
                got = pruned.can_do_action(
                    key, rate_hz=rate_hz, n_actions=n, update=update, _time_now_s=t
                )
                want = twin.can_do_action(
                    key, rate_hz=rate_hz, n_actions=n, update=update, _time_now_s=t
                )
                assert got == want, (t, key, rate_hz, n, update)
        assert removed > 0  # the comparison did cover pruned keys
        assert len(twin) >= len(pruned)


async def test_big_burst_pruned_in_bounded_batches(clock: Clock) -> None:
    loop = _loop()
    n, batch = 100_000, 1000
    limiter = Ratelimiter(
        clock, name="t", per_second=1, burst_count=5, prune_interval=5, prune_batch=batch
    )
    limiter.start()
    now = clock.time()
    for i in range(n):
        limiter.can_do_action(f"@user{i}:example.com", _time_now_s=now)
    assert len(limiter) == n
    assert limiter.wheel_size == n

    # Watch from another task: the limiter can only shrink while this one
    # waits, i.e. between its yields, so each step seen is one batch at most.
    seen: list[int] = []

    async def watch() -> None:
        while len(limiter):
            seen.append(len(limiter))
            await clock.sleep(0)
        seen.append(0)

    watcher = clock.run_as_background_process("watch", watch)
    await loop.advance(15)
    await watcher
    assert len(limiter) == 0
    assert limiter.wheel_size == 0
    assert limiter.pruned_keys == n
    steps = [a - b for a, b in itertools.pairwise(seen)]
    assert max(steps) <= batch
    assert sum(1 for s in steps if s > 0) >= n // batch
    assert limiter.prune_batches >= n // batch


async def test_keys_still_counting_at_their_prune_are_kept_then_pruned(clock: Clock) -> None:
    """Many keys used again before their prune: filed again in bounded
    batches (across many wheel chunks), decided as before, dropped later."""
    loop = _loop()
    n, batch = 3000, 100
    limiter = Ratelimiter(
        clock, name="t", per_second=1, burst_count=10, prune_interval=5, prune_batch=batch
    )
    limiter.start()
    keys = [f"@user{i}:example.com" for i in range(n)]
    for key in keys:
        limiter.can_do_action(key)
    await loop.advance(4.5)
    # Two thirds act again: their buckets now empty 8 s from here, past the
    # prunes at which their first wheel bucket comes due.
    counting = keys[: 2 * n // 3]
    for key in counting:
        assert limiter.can_do_action(key, n_actions=8)[0]
    batches = limiter.prune_batches
    await loop.advance(6.5)  # past both prunes that can find them due

    assert len(limiter) == len(counting)
    assert limiter.wheel_size == len(counting)
    assert all(key in limiter for key in counting)
    assert limiter.pruned_keys == n - len(counting)
    assert limiter.max_prune_pause_s > 0
    assert limiter.prune_batches - batches >= n // batch  # every key looked at, batch by batch
    # Still counted: 8 actions at 4.5 s, leaking 1 a second, 6.5 s ago.
    for key in counting[:50]:
        assert limiter.can_do_action(key, n_actions=8, update=False)[0] is True
        assert limiter.can_do_action(key, n_actions=9, update=False)[0] is False

    await loop.advance(10)
    assert len(limiter) == 0
    assert limiter.wheel_size == 0
    assert limiter.pruned_keys == n


async def test_prune_does_not_overlap_and_stops(clock: Clock) -> None:
    loop = _loop()
    limiter = Ratelimiter(clock, name="t", per_second=1, burst_count=5, prune_batch=10)
    for i in range(100):
        limiter.record_action(i, _time_now_s=0)
    first = asyncio.ensure_future(limiter.prune(now=100))
    await asyncio.sleep(0)  # first has pruned one batch and yielded
    assert await limiter.prune(now=100) == 0  # refused while the other runs
    assert await first == 100

    limiter.start()
    limiter.start()  # idempotent
    limiter.stop()
    limiter.record_action("k")
    await loop.advance(60)
    assert len(limiter) == 1  # no pruning after stop()
