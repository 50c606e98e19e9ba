"""Search latency over a large message history, on SQLite and PostgreSQL.

    .venv/bin/python bench/search.py [--messages 100000] [--rooms 10] [--runs 40]

For each engine: a homeserver with one user in `--rooms` rooms; one
message per room is sent over HTTP, then `--messages` more are written
in bulk through the events store (copies of those messages with generated
text, indexed for search as any persisted event, in transactions of 5000),
and the homeserver is restarted on the same database (PostgreSQL after an
ANALYZE, as autovacuum would run). Then each query runs
`--runs` times through `POST /search` over real HTTP (limit 10, both
orders) and its latency p50/p99 is printed, one JSON line per engine and
query. The text is random sentences over a Zipf-distributed vocabulary, so
queries range from a word in two fifths of the messages to one in a few
dozen. With `--synapse-messages N`, Hamlet on SQLite and Synapse (from
/tmp/synapse-venv or `--synapse-python`) on SQLite are also measured with
the same N texts (Synapse's sent over HTTP: it has no bulk path), with the
ratio of their p50s. Prints numbers only; asserts nothing.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import statistics
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import aiohttp

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench import chat  # noqa: E402
from hamlet.config import HomeServerConfig  # noqa: E402
from hamlet.core.events import Event  # noqa: E402
from hamlet.homeserver import HomeServer  # noqa: E402
from hamlet.storage.stores.events import PersistRequest  # noqa: E402
from tests.support.harness import Harness, make_config, start_harness  # noqa: E402
from tests.support.postgres import PostgresCluster, start_cluster  # noqa: E402
from tests.support.users import TestUser, make_user  # noqa: E402

V3 = "/_matrix/client/v3"
BATCH = 5000
NO_LIMITS = {"per_second": 1_000_000, "burst_count": 1_000_000}
# Common words first: a Zipf draw over this list makes "the"-like words
# frequent and the invented tail rare.
COMMON = (
    "the meeting server room message today deploy release bug fix review "
    "coffee lunch weekend build test cluster database backup"
).split()
QUERIES = [
    ("common word", "meeting"),
    ("two words", "server deploy"),
    ("phrase", '"database backup"'),
    ("rare word", "zorblax17"),
    ("no match", "nonexistentword"),
]


def vocabulary(rng: random.Random) -> list[str]:
    tail = [
        "".join(rng.choice("bcdfghjklmnprstvz") + rng.choice("aeiou") for _ in range(3)) + str(i)
        for i in range(5000)
    ]
    tail[4000] = "zorblax17"
    return [*COMMON, *tail]


def corpus(messages: int) -> list[str]:
    """The same `messages` texts on every run and server."""
    rng = random.Random(17)
    words = vocabulary(rng)
    weights = [1.0 / (rank + 1) for rank in range(len(words))]
    return [
        " ".join(rng.choices(words, weights=weights, k=rng.randint(4, 16))) for _ in range(messages)
    ]


async def populate(config: HomeServerConfig, rooms: int, messages: int) -> float:
    """Users, rooms and one real message per room over HTTP, then the bulk.

    Returns the bulk insert's rate in messages per second.
    """
    harness = await start_harness([config])
    try:
        alice = await make_user(harness, "alice")
        templates: list[str] = []
        for _ in range(rooms):
            room = (await call(harness, alice, "POST", f"{V3}/createRoom", {}))["room_id"]
            sent = await call(
                harness,
                alice,
                "PUT",
                f"{V3}/rooms/{room}/send/m.room.message/t{len(templates)}",
                {"msgtype": "m.text", "body": "seed"},
            )
            templates.append(sent["event_id"])
        hs = harness.hs
        stored = await hs.events_store.get_events(templates)
        texts = corpus(messages)
        position = hs.event_creator.current_stream
        start = time.perf_counter()
        for first in range(0, messages, BATCH):
            batch: list[PersistRequest] = []
            for n in range(first, min(first + BATCH, messages)):
                template = stored[templates[n % rooms]]
                pdu = dict(template.event.get_pdu_json(include_unsigned=False))
                pdu["content"] = {"msgtype": "m.text", "body": texts[n]}
                pdu["origin_server_ts"] = int(pdu["origin_server_ts"]) + n
                position += 1
                event = Event(pdu, template.event.room_version, event_id=f"$bench{n}")
                batch.append(PersistRequest(event, position, template.state_group))
            await hs.events_store.persist_batch(batch)
        rate = messages / (time.perf_counter() - start)
        if hs.db.engine == "postgres":
            # What autovacuum does within a minute of such a load: without
            # statistics the planner would walk the rooms' events instead of
            # the index.
            await hs.db.execute("bench_analyze", "ANALYZE")
        return rate
    finally:
        await harness.close()


async def call(harness: Harness, user: TestUser, method: str, path: str, body: Any) -> Any:
    resp = await harness.request(method, path, json=body, token=user.token)
    if resp.status != 200:
        raise RuntimeError(f"{method} {path}: {resp.status} {resp.json}")
    return resp.json


Post = Callable[[dict[str, Any]], Awaitable[Any]]


async def measure(post: Post, server: str, runs: int) -> dict[tuple[str, str], float]:
    """Print each query's latency; returns the p50s by (query, order)."""
    p50s = {}
    for label, term in QUERIES:
        for order_by in ("rank", "recent"):
            body = {
                "search_categories": {
                    "room_events": {
                        "search_term": term,
                        "order_by": order_by,
                        "filter": {"limit": 10},
                    }
                }
            }
            found = await post(body)
            times = []
            for _ in range(runs):
                start = time.perf_counter()
                await post(body)
                times.append((time.perf_counter() - start) * 1000)
            times.sort()
            result = found["search_categories"]["room_events"]
            p50s[(label, order_by)] = statistics.median(times)
            line = {
                "server": server,
                "query": label,
                "order_by": order_by,
                "count": result["count"],
                "results": len(result["results"]),
                "p50_ms": round(statistics.median(times), 2),
                "p99_ms": round(times[max(0, int(len(times) * 0.99) - 1)], 2),
            }
            print(json.dumps(line), flush=True)
    return p50s


async def measure_hamlet(
    config: HomeServerConfig, server: str, runs: int
) -> dict[tuple[str, str], float]:
    harness = await start_harness([config])
    try:
        hs: HomeServer = harness.hs
        user_id = f"@alice:{hs.server_name}"
        login = await hs.registration.create_login(user_id, None, None)
        alice = TestUser(user_id, login["access_token"], login["device_id"])

        async def post(body: dict[str, Any]) -> Any:
            return await call(harness, alice, "POST", f"{V3}/search", body)

        return await measure(post, server, runs)
    finally:
        await harness.close()


async def bench_hamlet(
    tmp: Path, engine: str, pg: PostgresCluster | None, messages: int, args: argparse.Namespace
) -> dict[tuple[str, str], float]:
    limits = {
        "rc_message": NO_LIMITS,
        "rc_joins": {"local": NO_LIMITS},
        "rc_joins_per_room": NO_LIMITS,
    }
    config = make_config(tmp / f"{engine}-{messages}", engine, pg, "search.bench", **limits)
    rate = await populate(config, args.rooms, messages)
    server = f"hamlet-{engine}"
    line = {"server": server, "messages": messages, "bulk_insert_msgs_per_s": round(rate)}
    print(json.dumps(line), flush=True)
    return await measure_hamlet(config, server, args.runs)


async def bench_synapse(
    tmp: Path, python: str, messages: int, args: argparse.Namespace
) -> dict[tuple[str, str], float]:
    """Synapse on SQLite with the same texts, sent over HTTP (it has no bulk path)."""
    port = chat.free_port()
    root = tmp / "synapse"
    root.mkdir()
    config = chat.synapse_config(root, port)
    chat.generate_synapse_keys(python, config)

    async def work(base: str) -> dict[str, Any]:
        async with aiohttp.ClientSession() as session:
            alice = chat.Client(session, base)
            await alice.register("alice")
            rooms = [
                (await alice.call("POST", f"{V3}/createRoom", {}))["room_id"]
                for _ in range(args.rooms)
            ]
            texts = corpus(messages)
            start = time.perf_counter()

            async def sender(first: int) -> None:
                for n in range(first, messages, 10):
                    await alice.call(
                        "PUT",
                        f"{V3}/rooms/{rooms[n % len(rooms)]}/send/m.room.message/b{n}",
                        {"msgtype": "m.text", "body": texts[n]},
                    )

            await asyncio.gather(*(sender(i) for i in range(10)))
            rate = messages / (time.perf_counter() - start)
            line = {
                "server": "synapse-sqlite",
                "messages": messages,
                "send_msgs_per_s": round(rate),
            }
            print(json.dumps(line), flush=True)

            async def post(body: dict[str, Any]) -> Any:
                return await alice.call("POST", f"{V3}/search", body)

            return {"p50s": await measure(post, "synapse-sqlite", args.runs)}

    argv = [python, "-m", "synapse.app.homeserver", "-c", str(config)]
    result = await chat.serve_and_run(argv, f"http://127.0.0.1:{port}", work)
    p50s: dict[tuple[str, str], float] = result["p50s"]
    return p50s


async def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--messages", type=int, default=100_000)
    parser.add_argument("--rooms", type=int, default=10)
    parser.add_argument("--runs", type=int, default=40)
    parser.add_argument("--skip-postgres", action="store_true")
    parser.add_argument(
        "--synapse-messages",
        type=int,
        default=0,
        help="also compare Hamlet (SQLite) with Synapse (SQLite) at this many messages",
    )
    parser.add_argument("--synapse-python", default=None)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="hamlet-search-") as name:
        tmp = Path(name)
        ours = await bench_hamlet(tmp, "sqlite", None, args.messages, args)
        if not args.skip_postgres:
            cluster = start_cluster()
            try:
                await bench_hamlet(tmp, "postgres", cluster, args.messages, args)
            finally:
                cluster.stop()
        if not args.synapse_messages:
            return
        python = chat.find_synapse_python(args.synapse_python)
        if python is None:
            print(json.dumps({"synapse": "not installed; pass --synapse-python"}), flush=True)
            return
        if args.synapse_messages != args.messages:
            ours = await bench_hamlet(tmp, "sqlite", None, args.synapse_messages, args)
        theirs = await bench_synapse(tmp, python, args.synapse_messages, args)
        for (label, order_by), p50 in ours.items():
            ratio = {
                "ratio": "hamlet-sqlite / synapse-sqlite p50",
                "messages": args.synapse_messages,
                "query": label,
                "order_by": order_by,
                "value": round(p50 / theirs[(label, order_by)], 2),
            }
            print(json.dumps(ratio), flush=True)


if __name__ == "__main__":
    asyncio.run(main())
