"""Federation under faults: catch-up after an outage, memory of unreachable queues.

    .venv/bin/python bench/federation_faults.py [--outage 20] [--rooms 50]
        [--destinations 20] [--unreachable 1000]

One Hamlet tenant (in process, SQLite, real time, Synapse's default
`federation:` timings) sends to remote servers through a scripted
transport, the network boundary: it answers 200 at once when the
destination is up and refuses the connection when it is down. No remote
Hamlet or Synapse receives: what is measured is the sender.

* catch_up: `--destinations` servers are each in `--rooms` rooms. All go
  down for `--outage` seconds while messages go into the rooms round-robin
  (every 50 ms); catch_up_s is, per destination, the time from the end of
  the outage until it holds every room's newest event (min / median / max
  over destinations, whose retry jitter differs). With the default timings
  a transaction is retried after 4 s, 16 s, 64 s, ... (x0.8 to x1.4) before
  the destination is backed off, so the wait is mostly the next retry.
* unreachable: `--unreachable` servers, 10 per room, never answer (connection
  refused); each room gets 5 messages, so every destination has PDUs queued
  and sits in its retry loop. rss_growth_mb and tracemalloc_mb are the growth
  from the rooms being set up (no queue yet) to then, the 500 messages
  themselves included, and per_destination_kb that over the count.

One JSON line per part. Prints numbers only; asserts nothing.

Measured on the shared 2-core machine (load 4 to 8), defaults:

    catch_up: 20 s outage, 20 destinations x 50 rooms, 350 messages during
      it: every room's newest event at each destination 0.45 s / 5.05 s /
      75.3 s (min / median / max) after the outage ends; the wait is the
      next retry (a try just before the end puts the next 51-90 s later)
    unreachable: 1,000 destinations with 5 PDUs queued each, retrying:
      +13.4 MB traced (13.7 kB a destination, the 500 messages and each
      retrying transaction's PDU JSON included), +26.9 MB RSS
    kill_9: 150 PDUs in 3 transactions, killed mid-second: all 150 stored
      once, the retried first transaction answered as before, 0 refused
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import json
import statistics
import sys
import tempfile
import time
import tracemalloc
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import quote

import aiohttp

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.chat import Client, free_port, served  # noqa: E402
from bench.fake_remote import FakeRemote  # noqa: E402
from bench.federation import (  # noqa: E402
    PER_TRANSACTION,
    V3,
    count_messages,
    hamlet_receiver,
    wait_persisted,
)
from hamlet.core.canonical_json import JsonDict  # noqa: E402
from tests.federation.outbox_support import room_with_remotes  # noqa: E402
from tests.support.harness import Harness, make_config, start_harness  # noqa: E402
from tests.support.tls import make_self_signed  # noqa: E402
from tests.support.users import TestUser, make_user  # noqa: E402

SEND_EVERY_S = 0.05
NO_LIMITS = {"per_second": 1_000_000, "burst_count": 1_000_000}


@dataclass
class Network:
    """Destinations that are down refuse the connection; the rest take all."""

    down: set[str] = field(default_factory=set)
    all_down: bool = False
    # destination -> message body -> when it arrived (monotonic)
    received: dict[str, dict[str, float]] = field(default_factory=dict)
    arrived: asyncio.Event = field(default_factory=asyncio.Event)

    async def put_json(
        self, destination: str, path: str, body: JsonDict, *, timeout_ms: int | None = None
    ) -> JsonDict:
        if self.all_down or destination in self.down:
            raise ConnectionRefusedError(f"{destination} is down")
        now = time.monotonic()
        got = self.received.setdefault(destination, {})
        for pdu in body["pdus"]:
            text = pdu.get("content", {}).get("body")
            if isinstance(text, str):
                got.setdefault(text, now)
        self.arrived.set()
        return {"pdus": {}}


def rss_mb() -> float:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return 0.0


async def tenant(tmp: Path, name: str) -> tuple[Harness, TestUser]:
    config = make_config(
        tmp,
        "sqlite",
        None,
        name,
        presence={"enabled": False},
        rc_room_creation=NO_LIMITS,
        rc_message=NO_LIMITS,
    )
    h = await start_harness([config])
    return h, await make_user(h, "alice")


async def say(h: Harness, alice: TestUser, room: str, body: str) -> None:
    await h.hs.event_creator.send(
        alice.user_id, room, "m.room.message", {"msgtype": "m.text", "body": body}
    )


async def wait_for(network: Network, destinations: Sequence[str], bodies: set[str]) -> None:
    while not all(bodies <= network.received.get(d, {}).keys() for d in destinations):
        network.arrived.clear()
        await network.arrived.wait()


async def catch_up(tmp: Path, args: argparse.Namespace) -> dict[str, Any]:
    h, alice = await tenant(tmp, "catchup.test")
    try:
        network = Network()
        h.hs.federation_sender.attach_transport(network)
        destinations = [f"d{i}.example" for i in range(args.destinations)]
        rooms = [await room_with_remotes(h, alice, *destinations) for _ in range(args.rooms)]
        for i, room in enumerate(rooms):
            await say(h, alice, room, f"before-{i}")
        await wait_for(network, destinations, {f"before-{i}" for i in range(len(rooms))})

        network.all_down = True
        started = time.monotonic()
        newest: dict[str, str] = {}
        sent = 0
        while time.monotonic() - started < args.outage:
            room = rooms[sent % len(rooms)]
            newest[room] = f"m{sent}"
            await say(h, alice, room, f"m{sent}")
            sent += 1
            await asyncio.sleep(SEND_EVERY_S)
        network.all_down = False
        up = time.monotonic()
        wanted = set(newest.values())
        await asyncio.wait_for(wait_for(network, destinations, wanted), timeout=600)
        waits = [max(network.received[d][b] for b in wanted) - up for d in destinations]
        return {
            "part": "catch_up",
            "outage_s": args.outage,
            "destinations": len(destinations),
            "rooms": len(rooms),
            "messages_during_outage": sent,
            "catch_up_s_min": round(min(waits), 2),
            "catch_up_s_median": round(statistics.median(waits), 2),
            "catch_up_s_max": round(max(waits), 2),
        }
    finally:
        await h.close()


async def unreachable(tmp: Path, args: argparse.Namespace) -> dict[str, Any]:
    h, alice = await tenant(tmp, "unreachable.test")
    try:
        network = Network(all_down=True)
        h.hs.federation_sender.attach_transport(network)
        tracemalloc.start()
        per_room = 10
        rooms = []
        for start in range(0, args.unreachable, per_room):
            servers = [f"u{i}.example" for i in range(start, start + per_room)]
            rooms.append(await room_with_remotes(h, alice, *servers))
        # The remote joins are the remote servers' events: nothing is queued yet.
        gc.collect()
        rss_before = rss_mb()
        base, _ = tracemalloc.get_traced_memory()
        tracemalloc.reset_peak()
        for n in range(5):
            for room in rooms:
                await say(h, alice, room, f"m{n}")
        await asyncio.sleep(10)  # every queue has failed a first try and waits to retry
        gc.collect()
        current, peak = tracemalloc.get_traced_memory()
        tracemalloc.stop()
        sender = h.hs.federation_sender
        queues = [sender.queue(f"u{i}.example") for i in range(args.unreachable)]
        return {
            "part": "unreachable",
            "destinations": args.unreachable,
            "with_pdus_queued": sum(1 for q in queues if q is not None and q.pending_pdus),
            "rss_growth_mb": round(rss_mb() - rss_before, 1),
            "tracemalloc_mb": round((current - base) / 2**20, 1),
            "tracemalloc_peak_mb": round((peak - base) / 2**20, 1),
            "per_destination_kb": round((current - base) / args.unreachable / 1024, 1),
            "sender_estimate_mb": round(sender.memory_usage() / 2**20, 2),
        }
    finally:
        await h.close()


async def kill_9(tmp: Path, pdus: int) -> dict[str, Any]:
    tls = make_self_signed(tmp / "tls")
    remote = FakeRemote(tls, free_port())
    await remote.start()
    (tmp / "kill").mkdir()
    argv, base, server_name = hamlet_receiver(tmp / "kill", tls)
    try:
        async with aiohttp.ClientSession() as session:
            user = Client(session, base)
            async with served(argv, base) as proc:
                await user.register("bob")
                room_id, alias = remote.create_room("kill", members=1)
                await user.call("POST", f"{V3}/join/{quote(alias)}", {})
                txns = remote.messages(room_id, pdus, PER_TRANSACTION)
                first = await remote.send_transaction(server_name, txns[0], "t0")
                in_flight = asyncio.ensure_future(
                    remote.send_transaction(server_name, txns[1], "t1")
                )
                # Killed once the second transaction is partly stored.
                await wait_persisted(user, room_id, txns[1][0].event_id)
                proc.kill()
                proc.wait()
            try:
                before_kill: dict[str, Any] | None = await in_flight
            except (aiohttp.ClientError, RuntimeError):
                before_kill = None
            started = time.monotonic()
            async with served(argv, base):
                restart_s = time.monotonic() - started
                # The remote retries what it sent, under the same IDs, then goes on.
                answers = [
                    await remote.send_transaction(server_name, events, f"t{i}")
                    for i, events in enumerate(txns)
                ]
                persisted = await count_messages(user, room_id)
        return {
            "part": "kill_9",
            "pdus": pdus,
            "transactions": len(txns),
            "killed_mid_transaction": before_kill is None,
            "same_answer_after_restart": answers[0] == first
            and (before_kill is None or answers[1] == before_kill),
            "refused": sum(1 for a in answers for r in a.values() if "error" in r),
            "persisted": persisted,
            "restart_s": round(restart_s, 2),
        }
    finally:
        await remote.stop()


async def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--outage", type=float, default=20.0)
    parser.add_argument("--rooms", type=int, default=50)
    parser.add_argument("--destinations", type=int, default=20)
    parser.add_argument("--unreachable", type=int, default=1000)
    parser.add_argument("--kill-pdus", type=int, default=150)
    parser.add_argument(
        "--only",
        choices=["catch_up", "unreachable", "kill_9"],
        action="append",
        help="run only this part (may be repeated)",
    )
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="hamlet-fed-faults-") as name:
        tmp = Path(name)
        if not args.only or "catch_up" in args.only:
            print(json.dumps(await catch_up(tmp, args)), flush=True)
        if not args.only or "unreachable" in args.only:
            print(json.dumps(await unreachable(tmp, args)), flush=True)
        if not args.only or "kill_9" in args.only:
            print(json.dumps(await kill_9(tmp, args.kill_pdus)), flush=True)


if __name__ == "__main__":
    asyncio.run(main())
