"""Sliding sync (MSC4186) for a user in many rooms, over real HTTP on loopback.

    .venv/bin/python bench/sliding_sync.py [--rooms 500] [--synapse-python PATH]

For Hamlet on SQLite and, when a Python with `matrix-synapse` is given or
found at /tmp/synapse-venv/bin/python, Synapse on SQLite, the same client
workload runs against a user in `--rooms` rooms:

* first_response_ms_p50: a new connection's first response for a list of
  the 20 most recent rooms (timeline 10, name/avatar/encryption state,
  lazy members) with the e2ee, to_device and account_data extensions
* incremental_ms_p50 / _p99: from a message sent by another user to the
  user's long-polling sliding sync request returning with it
* sync_v3_initial_ms: an initial /sync v3 (timeline 10) of the same user,
  for scale
* sync_v3_incremental_ms_p50 / _p99: the same wake as incremental_ms, for
  the user's long-polling /sync v3

One JSON line per server, then one with the Hamlet / Synapse ratios.
Prints numbers only; asserts nothing.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any
from urllib.parse import quote

import aiohttp

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.chat import (  # noqa: E402
    Client,
    find_synapse_python,
    free_port,
    generate_synapse_keys,
    hamlet_config,
    serve_and_run,
    synapse_config,
)

SS = "/_matrix/client/unstable/org.matrix.simplified_msc3575/sync"
LIST = {
    "ranges": [[0, 19]],
    "timeline_limit": 10,
    "required_state": [
        ["m.room.name", ""],
        ["m.room.avatar", ""],
        ["m.room.encryption", ""],
        ["m.room.member", "$LAZY"],
    ],
}
EXTENSIONS = {
    "e2ee": {"enabled": True},
    "to_device": {"enabled": True},
    "account_data": {"enabled": True},
}
FIRST_RESPONSES = 5
WAKES = 40
CREATORS = 8
SETTLE_S = 300


async def populate(alice: Client, bob: Client, rooms: int) -> list[str]:
    """`rooms` rooms of alice, each with a message; bob is in all of them."""
    made: list[str] = []

    async def creator(count: int) -> None:
        for _ in range(count):
            room = (
                await alice.call("POST", "/_matrix/client/v3/createRoom", {"preset": "public_chat"})
            )["room_id"]
            await bob.call("POST", f"/_matrix/client/v3/join/{quote(room)}", {})
            await alice.call(
                "PUT",
                f"/_matrix/client/v3/rooms/{quote(room)}/send/m.room.message/seed",
                {"msgtype": "m.text", "body": "seed"},
            )
            made.append(room)

    share, extra = divmod(rooms, CREATORS)
    await asyncio.gather(*(creator(share + (i < extra)) for i in range(CREATORS)))
    return made


Poll = Callable[[str], Awaitable[tuple[str, set[str]]]]


async def wakes(
    alice: Client, bob: Client, made: list[str], since: str, poll: Poll, tag: str
) -> list[float]:
    """Latencies from bob's message to alice's long poll (`poll(since)` ->
    (next token, rooms in the response)) returning with the room, sorted."""
    latencies = []
    for i in range(WAKES):
        # Alternate between a room on top and one far down the list.
        room = made[-1] if i % 2 else made[(i // 2) % len(made)]
        waiting = asyncio.ensure_future(poll(since))
        await asyncio.sleep(0.02)
        sent_at = time.perf_counter()
        await bob.call(
            "PUT",
            f"/_matrix/client/v3/rooms/{quote(room)}/send/m.room.message/{tag}{i}",
            {"msgtype": "m.text", "body": f"wake {i}"},
        )
        since, got = await waiting
        while room not in got:
            # Woken by something else first (e.g. a receipt): poll again.
            since, got = await poll(since)
        latencies.append((time.perf_counter() - sent_at) * 1000)
    latencies.sort()
    return latencies


async def settle(alice: Client, bob: Client, room: str) -> None:
    """Wait until the server has caught up with the population: Hamlet
    evaluates push rules behind the event stream, and a backlog of thousands
    of events would otherwise be measured as the first responses' time."""
    sent = await alice.call(
        "PUT",
        f"/_matrix/client/v3/rooms/{quote(room)}/send/m.room.message/settle",
        {"msgtype": "m.text", "body": "settle"},
    )
    deadline = time.monotonic() + SETTLE_S
    while time.monotonic() < deadline:
        got = await bob.call("GET", "/_matrix/client/v3/notifications?limit=1")
        if (
            got["notifications"]
            and got["notifications"][0]["event"]["event_id"] == sent["event_id"]
        ):
            return
        await asyncio.sleep(0.2)
    raise RuntimeError(f"push evaluation not caught up within {SETTLE_S} s")


async def workload(base: str, rooms: int) -> dict[str, float]:
    connector = aiohttp.TCPConnector(limit=100)
    timeout = aiohttp.ClientTimeout(total=600)
    async with aiohttp.ClientSession(connector=connector, timeout=timeout) as session:
        alice = Client(session, base)
        bob = Client(session, base)
        await alice.register("alice")
        await bob.register("bob")
        made = await populate(alice, bob, rooms)
        await settle(alice, bob, made[0])

        firsts = []
        pos = ""
        listed = 0
        for i in range(FIRST_RESPONSES):
            body = {"conn_id": f"first{i}", "lists": {"all": LIST}, "extensions": EXTENSIONS}
            start = time.perf_counter()
            got = await alice.call("POST", SS, body)
            firsts.append((time.perf_counter() - start) * 1000)
            pos = got["pos"]
            listed = len(got["rooms"])

        body = {
            "conn_id": f"first{FIRST_RESPONSES - 1}",
            "lists": {"all": LIST},
            "extensions": EXTENSIONS,
        }

        async def sliding_poll(since: str) -> tuple[str, set[str]]:
            got = await alice.call("POST", f"{SS}?pos={quote(since)}&timeout=10000", body)
            return got["pos"], set(got["rooms"])

        ss_latencies = await wakes(alice, bob, made, pos, sliding_poll, "ss")

        room_filter = quote(json.dumps({"room": {"timeline": {"limit": 10}}}))
        start = time.perf_counter()
        got = await alice.call("GET", f"/_matrix/client/v3/sync?timeout=0&filter={room_filter}")
        v3 = (time.perf_counter() - start) * 1000

        async def v3_poll(since: str) -> tuple[str, set[str]]:
            got = await alice.call(
                "GET",
                f"/_matrix/client/v3/sync?timeout=10000&filter={room_filter}&since={quote(since)}",
            )
            return got["next_batch"], set(got.get("rooms", {}).get("join", {}))

        v3_latencies = await wakes(alice, bob, made, got["next_batch"], v3_poll, "v3")
        return {
            "rooms": rooms,
            "rooms_in_first_response": listed,
            "first_response_ms_p50": round(statistics.median(firsts), 1),
            "first_response_ms_max": round(max(firsts), 1),
            "incremental_ms_p50": round(statistics.median(ss_latencies), 2),
            "incremental_ms_p99": round(ss_latencies[int(len(ss_latencies) * 0.99) - 1], 2),
            "sync_v3_initial_ms": round(v3, 1),
            "sync_v3_incremental_ms_p50": round(statistics.median(v3_latencies), 2),
            "sync_v3_incremental_ms_p99": round(v3_latencies[int(len(v3_latencies) * 0.99) - 1], 2),
        }


def lift_room_creation_limit(config: Path) -> None:
    """Both servers limit room creation (10 at once, then 1 a minute), which
    populating the account would hit."""
    settings = json.loads(config.read_text())
    settings["rc_room_creation"] = {"per_second": 1000, "burst_count": 1000}
    config.write_text(json.dumps(settings))


async def run_server(label: str, argv: list[str], base: str, rooms: int) -> dict[str, Any]:
    result = await serve_and_run(argv, base, lambda b: workload(b, rooms))
    return {"server": label, **result}


async def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rooms", type=int, default=500)
    parser.add_argument("--synapse-python", default=None)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="hamlet-ss-") as tmp:
        root = Path(tmp)
        port = free_port()
        ham_dir = root / "hamlet"
        ham_dir.mkdir()
        db = {"name": "sqlite3", "args": {"database": str(ham_dir / "hs.db")}}
        config = hamlet_config(ham_dir, port, db)
        lift_room_creation_limit(config)
        ours = await run_server(
            "hamlet-sqlite",
            [sys.executable, "-m", "hamlet.cli", "serve", "--config", str(config)],
            f"http://127.0.0.1:{port}",
            args.rooms,
        )
        print(json.dumps(ours), flush=True)

        synapse_python = find_synapse_python(args.synapse_python)
        if synapse_python is None:
            print(json.dumps({"synapse": "not installed; pass --synapse-python"}), flush=True)
            return
        port = free_port()
        syn_dir = root / "synapse"
        syn_dir.mkdir()
        config = synapse_config(syn_dir, port)
        lift_room_creation_limit(config)
        generate_synapse_keys(synapse_python, config)
        theirs = await run_server(
            "synapse-sqlite",
            [synapse_python, "-m", "synapse.app.homeserver", "-c", str(config)],
            f"http://127.0.0.1:{port}",
            args.rooms,
        )
        print(json.dumps(theirs), flush=True)
        ratios: dict[str, Any] = {"ratio": "hamlet-sqlite / synapse-sqlite (lower is faster)"}
        for key, value in ours.items():
            if key not in ("server", "rooms") and theirs.get(key):
                ratios[key] = round(value / theirs[key], 2)
        print(json.dumps(ratios), flush=True)


if __name__ == "__main__":
    asyncio.run(main())
