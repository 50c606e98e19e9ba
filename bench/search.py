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
queries range from a word in a third of the messages to one in a few
dozen. Prints numbers only; asserts nothing.
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
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

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


def sentence(rng: random.Random, words: list[str], weights: list[float]) -> str:
    return " ".join(rng.choices(words, weights=weights, k=rng.randint(4, 16)))


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
        rng = random.Random(17)
        words = vocabulary(rng)
        weights = [1.0 / (rank + 1) for rank in range(len(words))]
        position = hs.event_creator.current_stream
        start = time.perf_counter()
        for first in range(0, messages, BATCH):
            batch: list[PersistRequest] = []
            for n in range(first, min(first + BATCH, messages)):
                template = stored[templates[n % rooms]]
                pdu = dict(template.event.get_pdu_json(include_unsigned=False))
                pdu["content"] = {"msgtype": "m.text", "body": sentence(rng, words, weights)}
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


async def measure(config: HomeServerConfig, engine: str, runs: int) -> None:
    harness = await start_harness([config])
    try:
        hs: HomeServer = harness.hs
        user_id = f"@alice:{hs.server_name}"
        login = await hs.registration.create_login(user_id, None, None)
        alice = TestUser(user_id, login["access_token"], login["device_id"])
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
                found = await call(harness, alice, "POST", f"{V3}/search", body)
                times = []
                for _ in range(runs):
                    start = time.perf_counter()
                    await call(harness, alice, "POST", f"{V3}/search", body)
                    times.append((time.perf_counter() - start) * 1000)
                times.sort()
                result = found["search_categories"]["room_events"]
                line = {
                    "engine": engine,
                    "query": label,
                    "order_by": order_by,
                    "count": result["count"],
                    "results": len(result["results"]),
                    "p50_ms": round(statistics.median(times), 2),
                    "p99_ms": round(times[max(0, int(len(times) * 0.99) - 1)], 2),
                }
                print(json.dumps(line), flush=True)
    finally:
        await harness.close()


async def bench_engine(
    tmp: Path, engine: str, pg: PostgresCluster | None, args: argparse.Namespace
) -> None:
    limits = {
        "rc_message": NO_LIMITS,
        "rc_joins": {"local": NO_LIMITS},
        "rc_joins_per_room": NO_LIMITS,
    }
    config = make_config(tmp / engine, engine, pg, "search.bench", **limits)
    rate = await populate(config, args.rooms, args.messages)
    print(
        json.dumps(
            {"engine": engine, "messages": args.messages, "bulk_insert_msgs_per_s": round(rate)}
        ),
        flush=True,
    )
    await measure(config, engine, args.runs)


async def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--messages", type=int, default=100_000)
    parser.add_argument("--rooms", type=int, default=10)
    parser.add_argument("--runs", type=int, default=40)
    parser.add_argument("--skip-postgres", action="store_true")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="hamlet-search-") as name:
        tmp = Path(name)
        await bench_engine(tmp, "sqlite", None, args)
        if not args.skip_postgres:
            cluster = start_cluster()
            try:
                await bench_engine(tmp, "postgres", cluster, args)
            finally:
                cluster.stop()


if __name__ == "__main__":
    asyncio.run(main())
