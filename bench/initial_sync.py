"""Initial sync and single-sender wake latency, Hamlet beside Synapse, over real HTTP.

    .venv/bin/python bench/initial_sync.py [--small-rooms 20 --small-messages 50]
        [--large-rooms 1000 --large-messages 5] [--runs 5] [--wake-samples 200]
        [--synapse-python PATH] [--skip-postgres] [--skip-large] [--baseline DIR]

Every server (Hamlet on SQLite, Hamlet on PostgreSQL — a throwaway cluster —,
and Synapse on SQLite when a Python with `matrix-synapse` is given or found)
runs at the same time, is set up the same way, and then is measured in
turns, run after run, so that the noise of a shared machine falls on all of
them alike. Figures are medians over the runs:

* initial_sync_small_ms: a user in `--small-rooms` rooms with
  `--small-messages` messages each (sent by them and one other member) logs
  in on a fresh device and calls /sync without `since`, with the filter
  Element sends (timeline limit 20, lazy-loaded members, thread
  notifications), uploaded first as Element does;
* initial_sync_large_ms: the same for another user in `--large-rooms` rooms
  with `--large-messages` messages each;
* wake_ms_p50 / _p99: one sender sends into a room; the time from the send
  until the other member's parked long-poll /sync returns with it.

`--baseline DIR` adds a Hamlet run from another source tree (say, a checkout
of main) on SQLite, for before/after figures in the same run. One JSON line
per server, then one with the ratios of each Hamlet to Synapse (below 1:
Hamlet takes less time). Prints numbers only; asserts nothing.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import statistics
import sys
import tempfile
import time
import urllib.parse
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.chat import (  # noqa: E402
    Client,
    find_synapse_python,
    free_port,
    generate_synapse_keys,
    hamlet_config,
    served,
    synapse_config,
    wake_latencies,
)
from tests.support.postgres import start_cluster  # noqa: E402

#: What Element Web uploads as its sync filter (matrix-js-sdk with lazy
#: loading of members and threads on, `initialSyncLimit` 20).
ELEMENT_FILTER = {
    "room": {
        "state": {"lazy_load_members": True},
        "timeline": {"limit": 20, "unread_thread_notifications": True},
    }
}
#: Room setups in flight at once.
SETUP_CONCURRENCY = 8


@dataclass
class Setup:
    """One server, set up for measuring."""

    label: str
    base: str
    session: aiohttp.ClientSession
    small_user: str = ""
    large_user: str = ""
    wake: tuple[Client, Client, str] | None = None
    samples: dict[str, list[float]] = field(default_factory=dict)


async def fill_rooms(owner: Client, other: Client, rooms: int, messages: int) -> None:
    """`rooms` rooms of `owner` and `other`, each with `messages` messages from both in turn."""
    gate = asyncio.Semaphore(SETUP_CONCURRENCY)

    async def one(index: int) -> None:
        async with gate:
            room = (
                await owner.call(
                    "POST",
                    "/_matrix/client/v3/createRoom",
                    {"preset": "public_chat", "name": f"room {index}"},
                )
            )["room_id"]
            await other.call("POST", f"/_matrix/client/v3/join/{room}", {})
            for n in range(messages):
                sender = owner if n % 2 else other
                await sender.call(
                    "PUT",
                    f"/_matrix/client/v3/rooms/{room}/send/m.room.message/r{index}m{n}",
                    {"msgtype": "m.text", "body": f"message {n} in room {index}"},
                )

    await asyncio.gather(*(one(i) for i in range(rooms)))


async def set_up(label: str, base: str, session: aiohttp.ClientSession, args: Any) -> Setup:
    setup = Setup(label, base, session)
    other = Client(session, base)
    await other.register("other")
    small = Client(session, base)
    await small.register("small")
    await fill_rooms(small, other, args.small_rooms, args.small_messages)
    setup.small_user = "small"
    if not args.skip_large:
        large = Client(session, base)
        await large.register("large")
        await fill_rooms(large, other, args.large_rooms, args.large_messages)
        setup.large_user = "large"
    sender, waiter = Client(session, base), Client(session, base)
    await sender.register("sender")
    await waiter.register("waiter")
    room = (await sender.call("POST", "/_matrix/client/v3/createRoom", {"preset": "public_chat"}))[
        "room_id"
    ]
    await waiter.call("POST", f"/_matrix/client/v3/join/{room}", {})
    setup.wake = (sender, waiter, room)
    return setup


async def initial_sync_ms(setup: Setup, user: str, rooms: int) -> float:
    """A fresh device's login, then its timed initial /sync with Element's filter."""
    client = Client(setup.session, setup.base)
    login = await client.call(
        "POST",
        "/_matrix/client/v3/login",
        {
            "type": "m.login.password",
            "identifier": {"type": "m.id.user", "user": user},
            "password": "password",
        },
    )
    client.token = login["access_token"]
    user_id = urllib.parse.quote(login["user_id"])
    filter_id = (
        await client.call("POST", f"/_matrix/client/v3/user/{user_id}/filter", ELEMENT_FILTER)
    )["filter_id"]
    start = time.perf_counter()
    result = await client.call("GET", f"/_matrix/client/v3/sync?filter={filter_id}")
    elapsed = (time.perf_counter() - start) * 1000
    joined = len(result.get("rooms", {}).get("join", {}))
    if joined != rooms:
        raise RuntimeError(f"{setup.label}: initial sync of {user} has {joined} rooms, not {rooms}")
    await client.call("POST", "/_matrix/client/v3/logout", {})
    return elapsed


async def measure_round(setup: Setup, args: Any, wake_per_round: int) -> None:
    small = await initial_sync_ms(setup, setup.small_user, args.small_rooms)
    setup.samples.setdefault("initial_sync_small_ms", []).append(small)
    if setup.large_user:
        large = await initial_sync_ms(setup, setup.large_user, args.large_rooms)
        setup.samples.setdefault("initial_sync_large_ms", []).append(large)
    assert setup.wake is not None
    sender, waiter, room = setup.wake
    setup.samples.setdefault("wake_ms", []).extend(
        await wake_latencies(sender, waiter, room, wake_per_round)
    )


def summary(setup: Setup) -> dict[str, Any]:
    out: dict[str, Any] = {"server": setup.label}
    for name in ("initial_sync_small_ms", "initial_sync_large_ms"):
        if name in setup.samples:
            out[name] = round(statistics.median(setup.samples[name]), 1)
    wake = sorted(setup.samples["wake_ms"])
    out["wake_ms_p50"] = round(statistics.median(wake), 2)
    out["wake_ms_p99"] = round(wake[max(0, int(len(wake) * 0.99) - 1)], 2)
    return out


async def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--small-rooms", type=int, default=20)
    parser.add_argument("--small-messages", type=int, default=50)
    parser.add_argument("--large-rooms", type=int, default=1000)
    parser.add_argument("--large-messages", type=int, default=5)
    parser.add_argument("--skip-large", action="store_true")
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--wake-samples", type=int, default=200)
    parser.add_argument("--synapse-python", default=None)
    parser.add_argument("--skip-postgres", action="store_true")
    parser.add_argument("--skip-synapse", action="store_true")
    parser.add_argument(
        "--baseline",
        default=None,
        type=lambda path: str(Path(path).resolve()),
        help="another Hamlet source tree (a checkout of main) to run on SQLite beside this one",
    )
    args = parser.parse_args()
    print(
        json.dumps(
            {
                "small": f"{args.small_rooms} rooms x {args.small_messages} messages",
                "large": "skipped"
                if args.skip_large
                else f"{args.large_rooms} rooms x {args.large_messages} messages",
                "filter": ELEMENT_FILTER,
                "runs": args.runs,
                "wake_samples": args.wake_samples,
            }
        ),
        flush=True,
    )
    hamlet = [sys.executable, "-m", "hamlet.cli", "serve", "--config"]
    with tempfile.TemporaryDirectory(prefix="hamlet-initial-sync-") as tmp:
        root = Path(tmp)
        servers: list[tuple[str, list[str], str]] = []
        port = free_port()
        (root / "sqlite").mkdir()
        db = {"name": "sqlite3", "args": {"database": str(root / "sqlite" / "hs.db")}}
        config = hamlet_config(root / "sqlite", port, db)
        servers.append(("hamlet-sqlite", [*hamlet, str(config)], f"http://127.0.0.1:{port}"))
        if args.baseline:
            port = free_port()
            (root / "baseline").mkdir()
            db = {"name": "sqlite3", "args": {"database": str(root / "baseline" / "hs.db")}}
            config = hamlet_config(root / "baseline", port, db)
            # -P: `-m` would put the working directory (this tree) first on
            # the path, ahead of the baseline's PYTHONPATH.
            argv = [sys.executable, "-P", *hamlet[1:], str(config)]
            servers.append(("hamlet-baseline", argv, f"http://127.0.0.1:{port}"))
        cluster = None if args.skip_postgres else start_cluster()
        try:
            if cluster is not None:
                port = free_port()
                (root / "pg").mkdir()
                db = {"name": "psycopg2", "args": {**cluster.dsn_kwargs(), "schema": "initial"}}
                config = hamlet_config(root / "pg", port, db)
                servers.append(
                    ("hamlet-postgres", [*hamlet, str(config)], f"http://127.0.0.1:{port}")
                )
            synapse_python = None if args.skip_synapse else find_synapse_python(args.synapse_python)
            if synapse_python is not None:
                port = free_port()
                (root / "synapse").mkdir()
                config = synapse_config(root / "synapse", port)
                generate_synapse_keys(synapse_python, config)
                argv = [synapse_python, "-m", "synapse.app.homeserver", "-c", str(config)]
                servers.append(("synapse-sqlite", argv, f"http://127.0.0.1:{port}"))
            await run(servers, args)
        finally:
            if cluster is not None:
                cluster.stop()


async def run(servers: list[tuple[str, list[str], str]], args: Any) -> None:
    async with contextlib.AsyncExitStack() as stack:
        session = await stack.enter_async_context(
            aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=100))
        )
        setups = []
        for label, argv, base in servers:
            env = None
            if label == "hamlet-baseline":
                env = {**os.environ, "PYTHONPATH": args.baseline}
            await stack.enter_async_context(served(argv, base, env))
            started = time.perf_counter()
            setups.append(await set_up(label, base, session, args))
            print(
                json.dumps({"server": label, "setup_s": round(time.perf_counter() - started, 1)}),
                flush=True,
            )
        # A first round warms every server's caches; it is not counted.
        for setup in setups:
            await measure_round(setup, args, 5)
            setup.samples.clear()
        wake_per_round = max(1, args.wake_samples // max(1, args.runs))
        for _ in range(args.runs):
            for setup in setups:
                await measure_round(setup, args, wake_per_round)
        results = [summary(s) for s in setups]
        for result in results:
            print(json.dumps(result), flush=True)
        synapse = next((r for r in results if r["server"] == "synapse-sqlite"), None)
        if synapse is None:
            print(json.dumps({"synapse": "not run; pass --synapse-python"}), flush=True)
            return
        for ours in results:
            if ours is synapse:
                continue
            ratios = {
                k: round(ours[k] / synapse[k], 3)
                for k in ours
                if k != "server" and k in synapse and synapse[k]
            }
            print(json.dumps({"ratio": f"{ours['server']} / synapse-sqlite", **ratios}), flush=True)


if __name__ == "__main__":
    asyncio.run(main())
