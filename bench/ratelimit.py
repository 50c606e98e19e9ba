"""Benchmark of the rate limiter's memory and pruning pauses.

    .venv/bin/python bench/ratelimit.py [--max-keys 1000000] [--prune-batch N]
        [--scenario NAME ...] [--no-memory] [--no-stalls] [--synapse]

Fills a `Ratelimiter` with N keys (10^4, 10^5, 10^6 up to --max-keys) in
five scenarios, then moves virtual time past every bucket's empty time so
the limiter's own looping call prunes them, and prints one JSON line per
(scenario, N):

* burst:              every key acts at the same instant; all empty together
* spread:             keys arrive evenly over 60 s of virtual time
* long_lived:         a slow rate: nothing is due at the first 24 prunes (two
                      minutes); then time moves on past the buckets' empty time
* record_action_only: keys only ever `record_action`ed
* still_counting:     every key acts at once, then again (8 actions) just
                      before the first prune: due but not empty, so the
                      prune files every key again, and drops it later

Fields: max_prune_pause_ms (longest synchronous prune step, wall time;
max_prune_cpu_ms is the same by CPU time, which other processes on the
machine do not inflate), total_prune_ms,
bytes_per_key (tracemalloc, over the limiter's storage; the key strings are
made beforehand and not counted, key_str_bytes gives their size),
us_per_action (a key's first action, wheel insert included), us_per_repeat
(an action on a key already stored), keys_left (must be 0).
long_lived adds idle_max_prune_pause_ms: the longest prune step while
nothing was due.

A second pass per scenario (skip it with --no-stalls) runs in real time:
the same actions at explicit limiter times, one full collection, then the
limiter's prunes one prune interval of its time apart (after each prune
that had work, the loop runs on until the next generation 1 collection is
over) while an independent ticker task sleeps 1 ms at a time and leaves
a few reference cycles behind each tick (--garbage-per-tick), so the collector runs as on a
busy server. max_loop_stall_ms is the longest the ticker was kept waiting
beyond its 1 ms, whatever held the loop: a prune step or a garbage
collection, including the collections a prune leaves to come after it;
max_loop_stall_cpu_ms is the most CPU time the loop's thread spent between
two ticks, which time the process spent waiting for a core does not
inflate.
gcN_max_ms / gcN_count are the longest collection of generation N and how
many ran (timed with gc.callbacks; gcN_max_cpu_ms by CPU time, which other
processes do not inflate). refile_* and drop_* are the same maxima
from the start of a prune that filed more than a batch of keys again and
dropped none, or of one that dropped keys, to the start of the next.
stall_pass_max_prune_pause_ms is the longest prune step of that pass.
Wall times: on a shared machine, compare medians of several runs.

With --synapse (run with a Python where matrix-synapse is importable, not
a project dependency), Synapse's own Ratelimiter gets the burst and spread
loads too, and its prune (everything due, in one step, every 15 s in
current releases) is timed; pause_ratio is Synapse's max pause / ours.
Prints numbers only; asserts nothing.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
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

SCENARIOS = ("burst", "spread", "long_lived", "record_action_only", "still_counting")
PRUNE_INTERVAL_S = 5.0
SPREAD_S = 60.0
SPREAD_STEPS = 600
LONG_LIVED_RATE = 1 / 600  # one action takes 600 s to leak away
IDLE_PHASE_S = 120.0
# still_counting: every key acts again this long after its first action,
# just before the first prune, with enough actions to keep its bucket
# counting past the next prune too (it empties at TOUCH_AT_S + TOUCH_ACTIONS).
TOUCH_AT_S = 4.5
TOUCH_ACTIONS = 8
# The stall pass runs in real time, on explicit limiter times from here (a
# multiple of the prune interval, so its wheel buckets line up with prunes).
STALL_T0 = 1_700_000_000.0
# Keys one synchronous step of the stall pass's fill handles before it
# yields, so filling does not stall the loop by itself.
STALL_FILL_STEP = 500
TICK_S = 0.001
# Most real time given to the loop after a prune that had work, waiting for
# the collections it leaves to come.
STALL_WINDOW_LIMIT_S = 3.0
IDLE_GAP_S = 0.005


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
    if scenario == "still_counting":
        await loop.advance(TOUCH_AT_S)
        for key in keys:
            limiter.can_do_action(key, n_actions=TOUCH_ACTIONS)

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


class StallMonitor:
    """Watches the event loop from outside the code under test.

    A ticker task sleeps `TICK_S` at a time and keeps the longest gap between
    its wake-ups beyond that: whatever held the loop meanwhile (a prune
    step, a garbage collection, anything else) shows up. Each tick also
    leaves `garbage_per_tick` small reference cycles behind, as request
    handling does, so the collector runs as on a busy server; `gc.callbacks`
    time every collection, by generation. Figures are kept overall, and per
    phase: the caller closes each window of time with the phase it was.
    """

    def __init__(self, garbage_per_tick: int) -> None:
        self.garbage_per_tick = garbage_per_tick
        # phase -> [max stall, gen 0-2 max wall, gen 0-2 max CPU, max stall
        # by the loop thread's CPU time] in seconds
        self.maxima: dict[str, list[float]] = {"all": [0.0] * 8}
        # The same since the last `close_window`.
        self._window = [0.0] * 8
        self.gc_count = [0, 0, 0]
        self._gc_started = 0.0
        self._gc_started_cpu = 0.0
        self._task: asyncio.Task[None] | None = None
        self._generation_1_collected = asyncio.Event()

    def _note(self, slot: int, seconds: float) -> None:
        for maxima in (self.maxima["all"], self._window):
            if seconds > maxima[slot]:
                maxima[slot] = seconds

    def close_window(self, phase: str) -> None:
        """Count what was noted since the last call for `phase`."""
        maxima = self.maxima.setdefault(phase, [0.0] * 8)
        for slot, seconds in enumerate(self._window):
            maxima[slot] = max(maxima[slot], seconds)
        self._window = [0.0] * 8

    def _on_gc(self, phase: str, info: dict[str, int]) -> None:
        if phase == "start":
            self._gc_started = time.perf_counter()
            self._gc_started_cpu = time.thread_time()
            return
        spent = time.perf_counter() - self._gc_started
        cpu = time.thread_time() - self._gc_started_cpu
        generation = info["generation"]
        self.gc_count[generation] += 1
        self._note(1 + generation, spent)
        self._note(4 + generation, cpu)
        if generation == 1:
            self._generation_1_collected.set()

    async def _tick(self) -> None:
        last = time.perf_counter()
        last_cpu = time.thread_time()
        while True:
            await asyncio.sleep(TICK_S)
            now = time.perf_counter()
            now_cpu = time.thread_time()
            self._note(0, now - last - TICK_S)
            self._note(7, now_cpu - last_cpu)
            last = now
            last_cpu = now_cpu
            for _ in range(self.garbage_per_tick):
                cycle: list[object] = []
                cycle.append(cycle)

    async def until_generation_1_collected(self, limit_s: float) -> None:
        """Let the loop run until the next generation 1 collection is over.

        By then whatever a prune left young has been through the young
        collections it will ever be (generation 0 first, then 1), and their
        pauses count for the phase the prune set. At most `limit_s`.
        """
        self._generation_1_collected.clear()
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._generation_1_collected.wait(), limit_s)

    def start(self) -> None:
        gc.callbacks.append(self._on_gc)
        self._task = asyncio.get_running_loop().create_task(self._tick())

    async def stop(self) -> None:
        gc.callbacks.remove(self._on_gc)
        assert self._task is not None
        self._task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self._task

    def figures(self) -> dict[str, Any]:
        def ms(seconds: float) -> float:
            return round(seconds * 1000, 3)

        overall = self.maxima["all"]
        figures: dict[str, Any] = {
            "max_loop_stall_ms": ms(overall[0]),
            "max_loop_stall_cpu_ms": ms(overall[7]),
        }
        for generation in range(3):
            figures[f"gc{generation}_max_ms"] = ms(overall[1 + generation])
            figures[f"gc{generation}_max_cpu_ms"] = ms(overall[4 + generation])
            figures[f"gc{generation}_count"] = self.gc_count[generation]
        for phase in ("refile", "drop"):
            if phase in self.maxima:
                maxima = self.maxima[phase]
                figures[f"{phase}_max_loop_stall_ms"] = ms(maxima[0])
                figures[f"{phase}_max_loop_stall_cpu_ms"] = ms(maxima[7])
                figures[f"{phase}_gc_max_cpu_ms"] = ms(max(maxima[4:7]))
        return figures


async def fill_at(limiter: Ratelimiter, keys: list[str], scenario: str) -> None:
    """The scenario's actions at explicit times from `STALL_T0`, in small steps."""
    n = len(keys)
    for start in range(0, n, STALL_FILL_STEP):
        for i in range(start, min(start + STALL_FILL_STEP, n)):
            if scenario == "record_action_only":
                limiter.record_action(keys[i], _time_now_s=STALL_T0)
            elif scenario == "spread":
                limiter.can_do_action(keys[i], _time_now_s=STALL_T0 + SPREAD_S * i / n)
            else:
                limiter.can_do_action(keys[i], _time_now_s=STALL_T0)
        await asyncio.sleep(0)
    if scenario == "still_counting":
        for start in range(0, n, STALL_FILL_STEP):
            for key in keys[start : start + STALL_FILL_STEP]:
                limiter.can_do_action(
                    key, n_actions=TOUCH_ACTIONS, _time_now_s=STALL_T0 + TOUCH_AT_S
                )
            await asyncio.sleep(0)


async def measure_stalls(
    scenario: str, keys: list[str], prune_batch: int, garbage_per_tick: int
) -> dict[str, Any]:
    """Loop stalls (garbage collections included) while and after pruning, in real time.

    The limiter is filled at explicit times, everything is collected once,
    then its prunes run at each prune interval of the scenario's time (as
    the looping call would, compressed: after each prune that had work, until
    a generation 1 collection has run) with a `StallMonitor` watching.
    """
    clock = Clock("bench.example")
    rate = rate_for(scenario)
    limiter = Ratelimiter(
        clock,
        name="stalls",
        per_second=rate,
        burst_count=10,
        prune_interval=PRUNE_INTERVAL_S,
        prune_batch=prune_batch,
    )
    await fill_at(limiter, keys, scenario)
    gc.collect()
    monitor = StallMonitor(garbage_per_tick)
    monitor.start()
    end = STALL_T0 + SPREAD_S + 1 / rate + 6 * PRUNE_INTERVAL_S
    t = STALL_T0
    while t < end and len(limiter):
        t += PRUNE_INTERVAL_S
        batches = limiter.prune_batches
        # A prune and the time after it count for the phase it turns out to
        # be: dropping keys, or filing more than a batch of keys again (none
        # dropped, yet more than one batch looked at), or idle.
        removed = await limiter.prune(now=t)
        if removed:
            phase = "drop"
        elif limiter.prune_batches - batches > 1:
            phase = "refile"
        else:
            phase = "idle"
        if phase == "idle":
            await asyncio.sleep(IDLE_GAP_S)
        else:
            await monitor.until_generation_1_collected(STALL_WINDOW_LIMIT_S)
        monitor.close_window(phase)
    await monitor.stop()
    result = monitor.figures()
    result["stall_pass_max_prune_pause_ms"] = round(limiter.max_prune_pause_s * 1000, 3)
    result["stall_pass_keys_left"] = len(limiter)
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
    parser.add_argument("--no-stalls", action="store_true", help="skip the real-time stall pass")
    parser.add_argument(
        "--garbage-per-tick",
        type=int,
        default=10,
        help="reference cycles the stall ticker leaves each millisecond (drives the collector)",
    )
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
                if not args.no_stalls:
                    line.update(
                        await measure_stalls(
                            scenario, keys, args.prune_batch, args.garbage_per_tick
                        )
                    )
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
