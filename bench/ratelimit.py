"""Benchmark of the rate limiter's memory and pruning pauses.

    .venv/bin/python bench/ratelimit.py [--max-keys 1000000] [--prune-batch N]

Fills a `Ratelimiter` with N keys (10^4, 10^5, 10^6 up to --max-keys) in
four scenarios, then moves virtual time past every bucket's empty time so
the limiter's own looping call prunes them, and prints one JSON line per
(scenario, N):

* burst:              every key acts at the same instant; all empty together
* spread:             keys arrive evenly over 60 s of virtual time
* long_lived:         a slow rate: nothing is due at the first 24 prunes (two
                      minutes); then time moves on past the buckets' empty time
* record_action_only: keys only ever `record_action`ed

Fields: max_prune_pause_ms (longest synchronous prune step, wall time;
max_prune_cpu_ms is the same by CPU time, which other processes on the
machine do not inflate), total_prune_ms,
bytes_per_key (tracemalloc, over the limiter's storage; the key strings are
made beforehand and not counted, key_str_bytes gives their size),
us_per_action (a key's first action, wheel insert included), us_per_repeat
(an action on a key already stored), keys_left (must be 0).
long_lived adds idle_max_prune_pause_ms: the longest prune step while
nothing was due.

With --synapse (run with a Python where matrix-synapse is importable, not
a project dependency), Synapse's own Ratelimiter gets the burst and spread
loads too, and its prune (everything due, in one step, every 15 s in
current releases) is timed; pause_ratio is Synapse's max pause / ours.
Prints numbers only; asserts nothing.
"""

from __future__ import annotations

import argparse
import gc
import importlib
import json
import sys
import time
import tracemalloc
from collections.abc import Callable, Coroutine
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from hamlet.handlers.common.ratelimit import DEFAULT_PRUNE_BATCH, Ratelimiter
from hamlet.runtime.clock import Clock
from hamlet.runtime.virtual_time import VirtualTimeEventLoop

SCENARIOS = ("burst", "spread", "long_lived", "record_action_only")
PRUNE_INTERVAL_S = 5.0
SPREAD_S = 60.0
SPREAD_STEPS = 600
LONG_LIVED_RATE = 1 / 600  # one action takes 600 s to leak away
IDLE_PHASE_S = 120.0


def make_keys(n: int) -> list[str]:
    return [f"@user{i}:example.com" for i in range(n)]


def rate_for(scenario: str) -> float:
    return LONG_LIVED_RATE if scenario == "long_lived" else 1.0


async def fill(
    limiter: Ratelimiter, keys: list[str], scenario: str, loop: VirtualTimeEventLoop
) -> float:
    """Give every key one action; return the seconds spent inside the limiter."""
    spent = 0.0
    if scenario == "spread":
        step = len(keys) // SPREAD_STEPS + 1
        for start in range(0, len(keys), step):
            t0 = time.perf_counter()
            for key in keys[start : start + step]:
                limiter.can_do_action(key)
            spent += time.perf_counter() - t0
            await loop.advance(SPREAD_S / SPREAD_STEPS)
        return spent
    if scenario == "record_action_only":
        record = limiter.record_action
        t0 = time.perf_counter()
        for key in keys:
            record(key)
        return time.perf_counter() - t0
    check = limiter.can_do_action
    t0 = time.perf_counter()
    for key in keys:
        check(key)
    return time.perf_counter() - t0


async def advance(loop: VirtualTimeEventLoop, seconds: float) -> None:
    """Move virtual time on by `seconds`, one prune interval at a time.

    (One long `advance()` can skip the looping call's later runs when a run
    is still finishing as the loop looks for its next timer.)
    """
    step = PRUNE_INTERVAL_S
    for _ in range(int(seconds // step)):
        await loop.advance(step)
    await loop.advance(seconds % step + step)


async def measure_memory(scenario: str, keys: list[str], loop: VirtualTimeEventLoop) -> float:
    clock = Clock("bench.example")
    limiter = Ratelimiter(
        clock, name="bench", per_second=rate_for(scenario), burst_count=10, prune_interval=5
    )
    gc.collect()
    tracemalloc.start()
    try:
        await fill(limiter, keys, scenario, loop)
        gc.collect()
        used, _peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    await clock.shutdown()
    return used / len(keys)


async def measure_pruning(
    scenario: str, keys: list[str], loop: VirtualTimeEventLoop, prune_batch: int
) -> dict[str, Any]:
    clock = Clock("bench.example")
    rate = rate_for(scenario)
    limiter = Ratelimiter(
        clock,
        name="bench",
        per_second=rate,
        burst_count=10,
        prune_interval=PRUNE_INTERVAL_S,
        prune_batch=prune_batch,
    )
    gc.collect()
    limiter.start()
    spent = await fill(limiter, keys, scenario, loop)

    # Actions on keys that are stored already (no wheel insert), timed on a
    # separate limiter so the scenario itself is unchanged.
    sample = keys[: min(len(keys), 100_000)]
    probe = Ratelimiter(clock, name="probe", per_second=rate, burst_count=1e9)
    for key in sample:
        probe.can_do_action(key)
    t0 = time.perf_counter()
    for key in sample:
        probe.can_do_action(key)
    repeat_s = time.perf_counter() - t0
    del probe

    result: dict[str, Any] = {}
    if scenario == "long_lived":
        await advance(loop, IDLE_PHASE_S)
        result["idle_max_prune_pause_ms"] = round(limiter.max_prune_pause_s * 1000, 3)
        result["keys_before_expiry"] = len(limiter)
        await advance(loop, 1 / rate)
    else:
        await advance(loop, 1 / rate + 6 * PRUNE_INTERVAL_S)
    # A prune may still be draining (it yields between batches): let it finish.
    while limiter.is_pruning:
        await loop.advance(0)

    result.update(
        max_prune_pause_ms=round(limiter.max_prune_pause_s * 1000, 3),
        max_prune_cpu_ms=round(limiter.max_prune_cpu_s * 1000, 3),
        total_prune_ms=round(limiter.total_prune_s * 1000, 1),
        prune_batches=limiter.prune_batches,
        us_per_action=round(spent / len(keys) * 1e6, 3),
        us_per_repeat=round(repeat_s / len(sample) * 1e6, 3),
        keys_left=len(limiter),
    )
    await clock.shutdown()
    return result


def _run_sync(coro: Coroutine[Any, Any, Any]) -> Any:
    """Run a coroutine that never suspends (Synapse's checks without a requester)."""
    try:
        coro.send(None)
    except StopIteration as done:
        return done.value
    raise RuntimeError("coroutine suspended")


def synapse_bench(scenario: str, keys: list[str], measure_memory: bool) -> dict[str, Any] | None:
    """Synapse's own Ratelimiter under the same load, or None if not importable.

    Its prune runs every 15 s and handles everything due in one step; it is
    called here at each 15 s of (fake) time, as its looping call would.
    """
    try:
        synapse = importlib.import_module("synapse")
        synapse_ratelimiting = importlib.import_module("synapse.api.ratelimiting")
        synapse_config = importlib.import_module("synapse.config.ratelimiting")
    except ImportError:
        return None

    class _BenchClock:
        def __init__(self) -> None:
            self.now = 1_700_000_000.0

        def time(self) -> float:
            return self.now

        def looping_call(self, *args: object, **kwargs: object) -> None:
            return None

    def fill(prune_during: bool) -> tuple[Any, _BenchClock, float]:
        clock = _BenchClock()
        limiter = synapse_ratelimiting.Ratelimiter(
            store=None,
            clock=clock,
            cfg=synapse_config.RatelimitSettings(key="bench", per_second=1.0, burst_count=10),
        )
        spent = 0.0
        if scenario == "spread":
            step = len(keys) // SPREAD_STEPS + 1
            for start in range(0, len(keys), step):
                t0 = time.perf_counter()
                for key in keys[start : start + step]:
                    _run_sync(limiter.can_do_action(None, key, _time_now_s=clock.now))
                spent += time.perf_counter() - t0
                clock.now += SPREAD_S / SPREAD_STEPS
                if prune_during and round(clock.now * 10) % 150 == 0:  # its 15 s loop
                    prune_pauses.append(prune(limiter))
        else:
            t0 = time.perf_counter()
            for key in keys:
                _run_sync(limiter.can_do_action(None, key, _time_now_s=clock.now))
            spent = time.perf_counter() - t0
        return limiter, clock, spent

    def prune(limiter: Any) -> float:
        t0 = time.perf_counter()
        limiter._prune_message_counts()
        return time.perf_counter() - t0

    result: dict[str, Any] = {
        "synapse": synapse.__version__,
        "scenario": scenario,
        "keys": len(keys),
    }
    if measure_memory:
        prune_pauses: list[float] = []
        gc.collect()
        tracemalloc.start()
        try:
            limiter, _clock, _spent = fill(prune_during=False)
            gc.collect()
            used, _peak = tracemalloc.get_traced_memory()
        finally:
            tracemalloc.stop()
        del limiter
        result["bytes_per_key"] = round(used / len(keys), 1)
    prune_pauses = []
    gc.collect()
    limiter, clock, spent = fill(prune_during=True)
    for _ in range(5):
        clock.now += 15.0
        prune_pauses.append(prune(limiter))
    result.update(
        max_prune_pause_ms=round(max(prune_pauses) * 1000, 3),
        us_per_action=round(spent / len(keys) * 1e6, 3),
        keys_left=len(limiter.actions),
    )
    return result


def run(coro_fn: Callable[[VirtualTimeEventLoop], Coroutine[Any, Any, None]]) -> None:
    loop = VirtualTimeEventLoop()
    try:
        loop.run_until_complete(coro_fn(loop))
    finally:
        loop.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--max-keys", type=int, default=1_000_000)
    parser.add_argument("--prune-batch", type=int, default=DEFAULT_PRUNE_BATCH)
    parser.add_argument("--scenario", choices=SCENARIOS, action="append")
    parser.add_argument("--no-memory", action="store_true", help="skip the tracemalloc pass")
    parser.add_argument(
        "--synapse", action="store_true", help="also time Synapse's prune (needs matrix-synapse)"
    )
    args = parser.parse_args()
    sizes = [n for n in (10_000, 100_000, 1_000_000) if n <= args.max_keys] or [args.max_keys]
    scenarios = args.scenario or list(SCENARIOS)

    async def bench(loop: VirtualTimeEventLoop) -> None:
        for n in sizes:
            keys = make_keys(n)
            key_str_bytes = sum(map(sys.getsizeof, keys[:1000])) / min(n, 1000)
            ours_max_pause_ms: dict[str, float] = {}
            for scenario in scenarios:
                line: dict[str, Any] = {"scenario": scenario, "keys": n}
                pruning = await measure_pruning(scenario, keys, loop, args.prune_batch)
                line["max_prune_pause_ms"] = pruning.pop("max_prune_pause_ms")
                line["total_prune_ms"] = pruning.pop("total_prune_ms")
                line["bytes_per_key"] = (
                    None if args.no_memory else round(await measure_memory(scenario, keys, loop), 1)
                )
                line["us_per_action"] = pruning.pop("us_per_action")
                line["keys_left"] = pruning.pop("keys_left")
                line["key_str_bytes"] = round(key_str_bytes, 1)
                line["prune_batch"] = args.prune_batch
                line.update(pruning)
                ours_max_pause_ms[scenario] = line["max_prune_pause_ms"]
                print(json.dumps(line), flush=True)
            if args.synapse:
                for scenario in ("burst", "spread"):
                    theirs = synapse_bench(scenario, keys, not args.no_memory)
                    if theirs is None:
                        print(json.dumps({"synapse": "not importable"}), flush=True)
                        break
                    ours = ours_max_pause_ms.get(scenario)
                    theirs["hamlet_max_prune_pause_ms"] = ours
                    if ours:
                        theirs["pause_ratio"] = round(theirs["max_prune_pause_ms"] / ours, 1)
                    print(json.dumps(theirs), flush=True)
            del keys
            gc.collect()

    run(bench)


if __name__ == "__main__":
    main()
