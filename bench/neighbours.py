"""Fair neighbours: a quiet tenant's p99 while another tenant is flooded.

    .venv/bin/python bench/neighbours.py [--engines sqlite,postgres]
        [--clients 200] [--seconds 6] [--cap 8] [--rounds 1]

Spawns `hamlet serve` with two provisioned tenants (SQLite files, or
schemas on a throwaway PostgreSQL cluster as bench/chat.py starts one):
`quiet.bench`, whose two users take turns sending a message (send), running
an incremental /sync (sync), timing how long a long-polling /sync of the
other takes to return with the message (notify), and the first request to
one of `WAKES` hibernated tenants per sample (wake); and `flood.bench`
(`limits.max_concurrent_requests: --cap`, 0 for none), where `--clients`
users in one room each loop without pause over a full-state initial
/sync with `timeout=0`, /messages and createRoom. A 429 is retried at
once, as a hostile or broken client does.

The neighbour is sampled from its own process (a neighbour is another
machine): idle, then under the flood, `--rounds` times alternately. For
each engine it prints the neighbour's p50/p99 idle and flooded, the
ratios of the p99s (issue 16's goal: within 1.5x), and the flood's
request counts by status. Prints numbers only; asserts nothing; the last
line is one JSON object.
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import concurrent.futures
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import aiohttp

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.hostile import TENANT_CONFIG, Client, summary  # noqa: E402
from bench.tenants import Server, provision, serving, timed_control  # noqa: E402
from tests.support.postgres import start_cluster  # noqa: E402

KINDS = ("send", "sync", "notify", "wake")
HISTORY = 50
WAKE_TIMEOUT_MS = 30_000
# Hibernated tenants the neighbour wakes per sample.
WAKES = 10
HIBERNATE_AFTER = "2s"
# The flood and the neighbour come from one address: room for both.
MAIN_LIMITS = {"max_connections_per_ip": 1000}
GENEROUS = {"per_second": 1000, "burst_count": 1000}


async def until_hibernated(session: aiohttp.ClientSession, server: Server, names: set[str]) -> None:
    for _ in range(600):
        _ms, body = await timed_control(session, server, "/tenants")
        states = {t["server_name"]: t["state"] for t in body["tenants"]}
        if all(states.get(name) == "hibernated" for name in names):
            return
        await asyncio.sleep(0.5)
    raise RuntimeError("the tenants to wake never hibernated")


async def neighbour_sample(
    sender: Client, sleeper: Client, room: str, hibernated: list[str], seconds: float
) -> dict[str, list[float]]:
    """For `seconds`: a send, an incremental /sync, how long `sleeper`'s
    long-poll takes to return with the message (notify), and the first
    request to one of the `hibernated` tenants (wake)."""
    out: dict[str, list[float]] = {kind: [] for kind in KINDS}
    to_wake = list(hibernated)
    _, body = await sender.call("GET", "/sync?timeout=0")
    since = body["next_batch"]
    _, body = await sleeper.call("GET", "/sync?timeout=0")
    sleeper_since = body["next_batch"]
    deadline = time.perf_counter() + seconds
    n = 0
    while time.perf_counter() < deadline and n < 2000:
        n += 1
        poll = asyncio.ensure_future(
            sleeper.call("GET", f"/sync?timeout={WAKE_TIMEOUT_MS}&since={sleeper_since}")
        )
        # Give the long-poll time to reach the server and start waiting.
        await asyncio.sleep(0.02)
        started = time.perf_counter()
        # A transaction ID of its own: the same token reused one is answered
        # with the earlier event and no new message.
        await sender.call(
            "PUT",
            f"/rooms/{room}/send/m.room.message/n{time.time_ns()}",
            {"msgtype": "m.text", "body": "hi"},
        )
        sent = time.perf_counter()
        out["send"].append((sent - started) * 1000)
        status, body = await poll
        out["notify"].append((time.perf_counter() - started) * 1000)
        if status == 200:
            sleeper_since = body["next_batch"]
        if to_wake:
            url = f"http://127.0.0.1:{sender.port}/_matrix/client/versions"
            started = time.perf_counter()
            async with sender.session.get(url, headers={"Host": to_wake.pop()}) as resp:
                await resp.read()
            out["wake"].append((time.perf_counter() - started) * 1000)
        started = time.perf_counter()
        status, body = await sender.call("GET", f"/sync?timeout=0&since={since}")
        out["sync"].append((time.perf_counter() - started) * 1000)
        if status == 200:
            since = body["next_batch"]
    return out


def sample_in_process(
    port: int, tokens: tuple[str, str], room: str, hibernated: list[str], seconds: float
) -> dict[str, list[float]]:
    async def sample() -> dict[str, list[float]]:
        async with aiohttp.ClientSession() as session:
            sender = Client(session, port, "quiet.bench")
            sleeper = Client(session, port, "quiet.bench")
            sender.token, sleeper.token = tokens
            return await neighbour_sample(sender, sleeper, room, hibernated, seconds)

    return asyncio.run(sample())


async def flood_clients(
    session: aiohttp.ClientSession, port: int, clients: int
) -> tuple[list[Client], str]:
    """`clients` registered users of flood.bench in one room with some history."""
    users = [Client(session, port, "flood.bench") for _ in range(clients)]
    for start in range(0, clients, 20):
        await asyncio.gather(
            *(u.register(f"f{i}") for i, u in enumerate(users[start : start + 20], start))
        )
    _, out = await users[0].call("POST", "/createRoom", {"preset": "public_chat"})
    room = out["room_id"]
    for start in range(1, clients, 20):
        await asyncio.gather(
            *(u.call("POST", f"/join/{room}", {}) for u in users[start : start + 20])
        )
    for i in range(HISTORY):
        body = {"msgtype": "m.text", "body": f"history {i} " + "x" * 200}
        await users[i % clients].call("PUT", f"/rooms/{room}/send/m.room.message/h{i}", body)
    return users, room


async def flood(
    users: list[Client], room: str, stop: asyncio.Event, statuses: collections.Counter[int]
) -> None:
    async def one(i: int, user: Client) -> None:
        n = 0
        while not stop.is_set():
            n += 1
            kind = (i + n) % 3
            if kind == 0:
                status, _ = await user.call("GET", "/sync?timeout=0&full_state=true")
            elif kind == 1:
                status, _ = await user.call("GET", f"/rooms/{room}/messages?dir=b&limit=50")
            else:
                status, _ = await user.call("POST", "/createRoom", {"name": f"r{i}.{n}"})
            statuses[status] += 1

    await asyncio.gather(*(one(i, u) for i, u in enumerate(users)))


async def run_engine(
    root: Path, engine: str, clients: int, seconds: float, cap: int, rounds: int
) -> dict[str, Any]:
    cluster = start_cluster() if engine == "postgres" else None
    tenant_db = (
        {"name": "psycopg2", "args": {**cluster.dsn_kwargs(), "cp_max": 10}} if cluster else None
    )
    await asyncio.to_thread(root.mkdir, parents=True)
    loop = asyncio.get_running_loop()
    pool = concurrent.futures.ProcessPoolExecutor(1)
    try:
        async with serving(root, clients, tenant_db, HIBERNATE_AFTER, MAIN_LIMITS) as (
            session,
            server,
        ):
            limits = {"max_concurrent_requests": cap} if cap else {}
            tenant = {
                **TENANT_CONFIG,
                "bcrypt_rounds": 4,
                "rc_joins": {"local": GENEROUS},
                "rc_joins_per_room": GENEROUS,
            }
            await provision(session, server, "flood.bench", {**tenant, "limits": limits})
            await provision(session, server, "quiet.bench", tenant)
            sender = Client(session, server.port, "quiet.bench")
            sleeper = Client(session, server.port, "quiet.bench")
            await sender.register("sender")
            await sleeper.register("sleeper")
            _, out = await sender.call("POST", "/createRoom", {"preset": "public_chat"})
            room = out["room_id"]
            await sleeper.call("POST", f"/join/{room}", {})
            sleepers = [f"w{i:03d}.bench" for i in range(2 * rounds * WAKES)]
            for name in sleepers:
                await provision(session, server, name, tenant)
            users, flood_room = await flood_clients(session, server.port, clients)
            await until_hibernated(session, server, set(sleepers))

            async def neighbour() -> dict[str, list[float]]:
                hibernated = [sleepers.pop() for _ in range(WAKES)]
                args = (server.port, (sender.token, sleeper.token), room, hibernated, seconds)
                result: dict[str, list[float]] = await loop.run_in_executor(
                    pool, sample_in_process, *args
                )
                return result

            idle: dict[str, list[float]] = {kind: [] for kind in KINDS}
            flooded: dict[str, list[float]] = {kind: [] for kind in KINDS}
            statuses: collections.Counter[int] = collections.Counter()
            flood_s = 0.0
            for _ in range(rounds):
                for kind, values in (await neighbour()).items():
                    idle[kind].extend(values)
                stop = asyncio.Event()
                started = time.perf_counter()
                flooding = asyncio.ensure_future(flood(users, flood_room, stop, statuses))
                await asyncio.sleep(1.0)  # the flood under way before sampling
                for kind, values in (await neighbour()).items():
                    flooded[kind].extend(values)
                stop.set()
                await flooding
                flood_s += time.perf_counter() - started
    finally:
        pool.shutdown()
        if cluster is not None:
            cluster.stop()
    idle_s, flooded_s = summary(idle), summary(flooded)
    return {
        "idle": idle_s,
        "flooded": flooded_s,
        "p99_ratio": {k: round(flooded_s[f"{k}_p99"] / idle_s[f"{k}_p99"], 2) for k in KINDS},
        "p50_ratio": {k: round(flooded_s[f"{k}_p50"] / idle_s[f"{k}_p50"], 2) for k in KINDS},
        "samples": {k: len(flooded[k]) for k in KINDS},
        "flood_statuses": dict(sorted(statuses.items())),
        "flood_requests_per_s": round(sum(statuses.values()) / flood_s, 1),
    }


def report(engine: str, r: dict[str, Any]) -> None:
    for kind in KINDS:
        idle, flooded = r["idle"][f"{kind}_p99"], r["flooded"][f"{kind}_p99"]
        ratio = r["p99_ratio"][kind]
        verdict = "met" if ratio <= 1.5 else "MISSED"
        print(
            f"{engine:8} {kind:5} p99 idle {idle:8.1f} ms  flooded {flooded:8.1f} ms  "
            f"x{ratio:<6} GOAL(<=1.5x) {verdict}",
            file=sys.stderr,
        )
    print(
        f"{engine:8} flood {r['flood_requests_per_s']} req/s, statuses {r['flood_statuses']}",
        file=sys.stderr,
    )


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--engines", default="sqlite,postgres")
    parser.add_argument("--clients", type=int, default=200)
    parser.add_argument("--seconds", type=float, default=6.0)
    parser.add_argument("--cap", type=int, default=8)
    parser.add_argument("--rounds", type=int, default=1)
    args = parser.parse_args()
    results: dict[str, Any] = {}
    with tempfile.TemporaryDirectory(prefix="hamlet-neighbours-") as tmp:
        for engine in args.engines.split(","):
            results[engine] = await run_engine(
                Path(tmp) / engine, engine, args.clients, args.seconds, args.cap, args.rounds
            )
            report(engine, results[engine])
    results["median_p99_ratio"] = statistics.median(
        ratio for r in results.values() for ratio in r["p99_ratio"].values()
    )
    print(json.dumps(results))


if __name__ == "__main__":
    os.environ.setdefault("PYTHONUNBUFFERED", "1")
    asyncio.run(main())
