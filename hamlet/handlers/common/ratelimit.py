"""Rate limiting: Synapse's "leaky bucket as a meter", pruned by a wheel timer.

Each key (a user ID, an `(ip,)` tuple, a room ID...) has a bucket that
holds up to `burst_count` tokens and leaks `rate_hz` tokens a second. An
action costing `n` tokens is allowed when the bucket has room for them, and
then adds them. As in Synapse, a bucket is stored as `(action_count,
time_start, rate_hz)`: the tokens added since the bucket was last empty, when
it was last empty, and the rate it leaks at. Nothing leaks buckets
periodically; the leak is computed when a key is looked at.

Forgetting empty buckets is where this differs from Synapse. Older
releases walked every key once a minute; current ones file a key in a wheel
timer on every update and drop everything due in one go every 15 s. Here
every stored key sits in a `WheelTimer` exactly once, filed under the time
its bucket would be empty. A looping
call every `prune_interval` seconds takes the keys that came due, in
batches of `prune_batch` with a yield to the event loop between batches,
and looks at each: an empty bucket is dropped, a bucket that was used again
since it was filed goes back into the wheel at its new empty time. Touching
a key that is already stored never touches the wheel. So pruning costs
O(keys due), no step is longer than one batch, and nothing ever walks or
copies all the keys.

Dropping a bucket only when it has leaked to empty keeps every later
decision the same as if it had been kept (a bucket that has leaked empty
and a missing one give the same answer), as long as a key is checked at the
rate it was last updated with.

Deliberate differences from Synapse:

* `rate_hz <= 0` (`per_second: 0`) means the action is never allowed: the
  check refuses without looking at or changing any state, and returns
  `time_allowed = inf` (`ratelimit` turns that into a retry after
  `NEVER_RETRY_AFTER_MS`). Synapse would allow `burst_count` actions once and
  then never again (or, in recent releases, divide by zero recording them).
* `record_action` on a new key stores the limiter's own rate with it, so it
  is pruned when it has leaked empty (older Synapse stored rate 0 and never
  pruned it). Only a limiter whose own rate is 0 can get a bucket with rate 0 this
  way; such a bucket never leaks, and is kept `ZERO_RATE_KEEP_S` after its
  start and then dropped (at rate 0 every check refuses whatever the count).
* `record_action` into a bucket that has leaked empty starts it again from
  now, as a check does. (Synapse adds to the stale count, so the recorded
  actions are forgotten along with the old ones, and whether they count
  depends on whether the bucket had been pruned yet.)
* An allowed check that leaves a new key's bucket empty (`n_actions <= 0`)
  stores nothing: an empty bucket is the same as none.
* `retry_after_ms` is rounded up, so a client that waits that long is let
  through.
"""

from __future__ import annotations

import math
import time
from collections.abc import Hashable
from typing import Final

from hamlet.handlers.common.errors import LimitExceededError
from hamlet.handlers.common.service import ServiceBase
from hamlet.runtime.clock import Clock, LoopingCall
from hamlet.runtime.wheel_timer import WheelTimer

# A batch of this many keys takes about half a millisecond to prune on a
# laptop-class CPU with a million keys stored (see bench/ratelimit.py).
DEFAULT_PRUNE_BATCH: Final = 1000

# The buckets are spread over this many dicts (by key hash), so no dict gets
# big: growing a dict copies all of it at once (about 20 ms for a million
# keys), and so does freeing its table. A power of two.
_SHARDS: Final = 32
_SHARD_MASK: Final = _SHARDS - 1
# An emptied dict keeps its table until it is replaced, and freeing that
# table walks it. As keys spread evenly, all shards empty at about the same
# time at the end of a big drain: replace at most this many per prune step.
_SHARD_DROPS_PER_STEP: Final = 2

# What `ratelimit` tells a client to wait when the action is never allowed
# (rate 0): long enough not to be hammered, short enough that a client
# notices a changed limit (an admin's override) soon.
NEVER_RETRY_AFTER_MS: Final = 60_000

# How long a bucket that does not leak (rate 0) is kept after it started.
ZERO_RATE_KEEP_S: Final = 3600.0

# A bucket that empties further away than this is filed this far ahead and
# looked at again then (keeps wheel indexes sane for tiny rates).
_MAX_SCHEDULE_AHEAD_S: Final = 86400.0

# (action_count, time_start, rate_hz). A plain tuple of numbers: compact,
# and the garbage collector stops tracking it after its first collection.
_Bucket = tuple[float, float, float]


def _empty_at(bucket: _Bucket) -> float:
    """When the bucket will have leaked empty."""
    count, start, rate = bucket
    if count <= 0:
        return start
    if rate > 0:
        return start + count / rate
    return start + ZERO_RATE_KEEP_S


def _is_empty(bucket: _Bucket, now: float) -> bool:
    count, start, rate = bucket
    if rate > 0:
        # The same expression `can_do_action` uses, so a bucket dropped here
        # is one that `can_do_action` would have reset.
        return count - (now - start) * rate <= 0
    return count <= 0 or now >= start + ZERO_RATE_KEEP_S


class Ratelimiter:
    """Limits actions per key to `per_second` on average, `burst_count` at once."""

    def __init__(
        self,
        clock: Clock,
        *,
        name: str,
        per_second: float,
        burst_count: float,
        prune_interval: float = 5.0,
        prune_batch: int = DEFAULT_PRUNE_BATCH,
    ) -> None:
        if not per_second >= 0:
            raise ValueError(f"per_second must be >= 0, not {per_second!r}")
        if not burst_count >= 0:
            raise ValueError(f"burst_count must be >= 0, not {burst_count!r}")
        if not prune_interval > 0:
            raise ValueError(f"prune_interval must be > 0, not {prune_interval!r}")
        if prune_batch <= 0:
            raise ValueError(f"prune_batch must be > 0, not {prune_batch!r}")
        self._clock = clock
        self.name = name
        self.rate_hz = float(per_second)
        self.burst_count = burst_count
        self._prune_interval = prune_interval
        self._prune_batch = prune_batch

        # Invariant: a key has a bucket in `_shards` if and only if it is in
        # `_wheel`, and then exactly once. Only `_insert_new` adds keys and
        # only `prune` removes them.
        self._shards: list[dict[Hashable, _Bucket]] = [{} for _ in range(_SHARDS)]
        self._count = 0
        self._wheel: WheelTimer[Hashable] = WheelTimer(bucket_size=prune_interval)

        self._looping: LoopingCall | None = None
        self._pruning = False

        # Statistics of the pruning, for metrics and the benchmark.
        self.max_prune_pause_s = 0.0  # wall time of the longest prune step
        self.max_prune_cpu_s = 0.0  # CPU time of the longest (by CPU) prune step
        self.total_prune_s = 0.0
        self.prune_batches = 0
        self.pruned_keys = 0

    def __len__(self) -> int:
        """How many keys have a bucket stored."""
        return self._count

    def __contains__(self, key: Hashable) -> bool:
        return key in self._shards[hash(key) & _SHARD_MASK]

    def get_bucket(self, key: Hashable) -> tuple[float, float, float] | None:
        """The stored `(action_count, time_start, rate_hz)` of `key`, if any."""
        return self._shards[hash(key) & _SHARD_MASK].get(key)

    @property
    def wheel_size(self) -> int:
        """How many entries the pruning wheel holds (equal to `len(self)`)."""
        return len(self._wheel)

    @property
    def is_pruning(self) -> bool:
        return self._pruning

    def start(self) -> None:
        """Start pruning every `prune_interval` seconds. Idempotent."""
        if self._looping is None:
            self._looping = self._clock.looping_call(
                self._prune_in_background, self._prune_interval
            )

    def stop(self) -> None:
        """Stop the pruning (the Clock's shutdown does this too)."""
        if self._looping is not None:
            self._looping.stop()
            self._looping = None

    def _prune_in_background(self) -> object:
        return self._clock.run_as_background_process(f"prune_ratelimiter_{self.name}", self.prune)

    def _insert_new(
        self, shard: dict[Hashable, _Bucket], key: Hashable, bucket: _Bucket, now: float
    ) -> None:
        shard[key] = bucket
        self._count += 1
        self._schedule(key, bucket, now)

    def _schedule(self, key: Hashable, bucket: _Bucket, now: float) -> None:
        self._wheel.insert(now, key, min(_empty_at(bucket), now + _MAX_SCHEDULE_AHEAD_S))

    def can_do_action(
        self,
        key: Hashable,
        *,
        rate_hz: float | None = None,
        burst_count: float | None = None,
        update: bool = True,
        n_actions: float = 1,
        _time_now_s: float | None = None,
    ) -> tuple[bool, float]:
        """Can `key` do `n_actions` more actions now?

        `rate_hz` and `burst_count` override the limiter's own for this call
        (per-user overrides). With `update`, an allowed action is recorded; a
        refused one never is, and changes nothing.

        Returns whether it is allowed, and the time (epoch seconds) from when
        one more action will be: `inf` if never (rate 0), never before now.
        """
        now = self._clock.time() if _time_now_s is None else _time_now_s
        rate = self.rate_hz if rate_hz is None else rate_hz
        burst = self.burst_count if burst_count is None else burst_count
        if not rate > 0:
            return False, math.inf

        shard = self._shards[hash(key) & _SHARD_MASK]
        bucket = shard.get(key)
        if bucket is None:
            count: float = 0
            start = now
            performed: float = 0
        else:
            count, start, _ = bucket
            performed = count - (now - start) * rate
            if performed < 0:
                # Leaked empty: forgive everything and start again from now.
                performed = 0
                count = 0
                start = now

        # Not `performed + n_actions > burst`: the sum could round up.
        allowed = not performed > burst - n_actions
        if allowed:
            count += n_actions

        if allowed and update:
            if bucket is not None:
                shard[key] = (count, start, rate)
            elif count > 0:
                self._insert_new(shard, key, (count, start, rate), now)

        time_allowed = start + (count - burst + 1) / rate
        if time_allowed < now:
            time_allowed = now
        return allowed, time_allowed

    def record_action(
        self, key: Hashable, n_actions: float = 1, _time_now_s: float | None = None
    ) -> None:
        """Record actions that happened whatever the limit (e.g. over federation).

        A negative `n_actions` refunds.
        """
        now = self._clock.time() if _time_now_s is None else _time_now_s
        shard = self._shards[hash(key) & _SHARD_MASK]
        bucket = shard.get(key)
        if bucket is not None:
            count, start, rate = bucket
            if rate > 0 and count - (now - start) * rate < 0:
                # Leaked empty: start again from now, as a check would.
                count = 0
                start = now
            shard[key] = (count + n_actions, start, rate)
        elif n_actions > 0:
            self._insert_new(shard, key, (n_actions, now, self.rate_hz), now)

    async def ratelimit(
        self,
        key: Hashable,
        *,
        requester_exempt: bool = False,
        update: bool = True,
        n_actions: float = 1,
        rate_hz: float | None = None,
        burst_count: float | None = None,
        _time_now_s: float | None = None,
    ) -> None:
        """Raise `LimitExceededError` if `key` may not do `n_actions` now.

        `requester_exempt` (admins, exempt users and appservices) skips the
        check and records nothing.
        """
        if requester_exempt:
            return
        now = self._clock.time() if _time_now_s is None else _time_now_s
        allowed, time_allowed = self.can_do_action(
            key,
            rate_hz=rate_hz,
            burst_count=burst_count,
            update=update,
            n_actions=n_actions,
            _time_now_s=now,
        )
        if not allowed:
            if math.isfinite(time_allowed):
                retry_after_ms = max(0, math.ceil((time_allowed - now) * 1000))
            else:
                retry_after_ms = NEVER_RETRY_AFTER_MS
            raise LimitExceededError(retry_after_ms, limiter_name=self.name)

    async def prune(self, now: float | None = None) -> int:
        """Drop the buckets that have leaked empty; return how many.

        Looks only at keys whose wheel bucket is due, `prune_batch` at a time,
        yielding to the event loop between batches. A key that is not empty
        (it was used again since it was filed) is filed again at its new
        empty time. Runs one at a time: a call while pruning returns 0.
        """
        if self._pruning:
            return 0
        self._pruning = True
        removed = 0
        batch_size = self._prune_batch
        wheel = self._wheel
        mask = _SHARD_MASK
        emptied: list[int] = []  # shards emptied, whose table is still to go
        try:
            while True:
                started = time.perf_counter()
                started_cpu = time.thread_time()
                t = self._clock.time() if now is None else now
                keys = wheel.fetch_some(t, batch_size)
                shards = self._shards
                dropped = 0
                for key in keys:
                    index = hash(key) & mask
                    shard = shards[index]
                    bucket = shard[key]
                    if _is_empty(bucket, t):
                        del shard[key]
                        dropped += 1
                        if not shard:
                            emptied.append(index)
                    else:
                        self._schedule(key, bucket, t)
                for _ in range(min(len(emptied), _SHARD_DROPS_PER_STEP)):
                    index = emptied.pop()
                    if not shards[index]:
                        # Give back the table of a dict that is now empty.
                        shards[index] = {}
                self._count -= dropped
                removed += dropped
                pause = time.perf_counter() - started
                cpu = time.thread_time() - started_cpu
                self.pruned_keys += dropped
                self.prune_batches += 1
                self.total_prune_s += pause
                if pause > self.max_prune_pause_s:
                    self.max_prune_pause_s = pause
                if cpu > self.max_prune_cpu_s:
                    self.max_prune_cpu_s = cpu
                if len(keys) < batch_size and not emptied:
                    break
                await self._clock.sleep(0)
        finally:
            self._pruning = False
        return removed


class RatelimiterSet(ServiceBase):
    """A service that owns several limiters and starts and stops their pruning together."""

    _limiters: tuple[Ratelimiter, ...] = ()

    def start(self) -> None:
        for limiter in self._limiters:
            limiter.start()

    async def shutdown(self) -> None:
        for limiter in self._limiters:
            limiter.stop()
