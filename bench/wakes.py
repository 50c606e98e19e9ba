"""A thousand parked /sync long-polls woken at once: latency and the cost of a woken sync.

    .venv/bin/python bench/wakes.py [--tenants 100] [--users 10] [--synapse-python PATH]

Spawns `hamlet serve` with a host section (SQLite, a file per tenant),
provisions `--tenants` tenants through the control API, and in each one
room of `--users` users. Every user parks a long-poll /sync; then one
message goes into each room, all rooms at once, and each long-poll must
return with it. Printed:

- wake_ms_p50 / _p99 / _max: from the send into a room starting to each of
  its members' long-polls returning;
- missing: long-polls that returned without the message (or not at all);
- per woken sync, the server's CPU ms, database transactions (each one
  round trip, one hop to the database pool on SQLite) and statements
  (each a round trip on PostgreSQL): the wake round's totals minus those of
  the same sends with nobody waiting, over the woken syncs.

With `--synapse-python` (or /tmp/synapse-venv/bin/python when it exists,
unless `--no-synapse`), one Synapse with all users and rooms on one server
(Synapse has no tenants) runs the same round for the latency figures.

Extra detail goes to stderr; the last line is one JSON object. Prints
numbers only; asserts nothing.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import aiohttp

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.chat import registration, synapse_config  # noqa: E402
from bench.chat import wait_up as wait_versions  # noqa: E402
from bench.startup import free_port  # noqa: E402
from bench.tenants import Server, p, provision, wait_up  # noqa: E402

SECRET = "bench-secret"
RELAXED = {"per_second": 100000, "burst_count": 100000}
TENANT_CONFIG = {
    "registration_shared_secret": SECRET,
    "rc_message": RELAXED,
    "rc_registration": RELAXED,
    "rc_login": {"address": RELAXED, "account": RELAXED, "failed_attempts": RELAXED},
    "rc_joins": {"local": RELAXED},
    "rc_joins_per_room": RELAXED,
}
LONG_POLL_MS = 120_000
CONCURRENCY = 50


class Client:
    def __init__(self, session: aiohttp.ClientSession, base: str, host: str | None) -> None:
        self.session = session
        self.base = base
        self.headers = {"Host": host} if host else {}
        self.user_id = ""

    async def call(self, method: str, path: str, body: Any = None) -> Any:
        async with self.session.request(
            method, f"{self.base}{path}", json=body, headers=self.headers
        ) as resp:
            data = await resp.json()
            if resp.status != 200:
                raise RuntimeError(f"{method} {path}: {resp.status} {data}")
            return data

    async def register(self, name: str) -> None:
        nonce = (await self.call("GET", "/_synapse/admin/v1/register"))["nonce"]
        result = await self.call(
            "POST", "/_synapse/admin/v1/register", registration(SECRET, nonce, name)
        )
        self.headers["Authorization"] = f"Bearer {result['access_token']}"
        self.user_id = result["user_id"]


class Room:
    def __init__(self, room_id: str, members: list[Client]) -> None:
        self.room_id = room_id
        self.members = members
        self.sent = 0

    async def send(self) -> float:
        """Sends one message; returns when the send started (perf_counter)."""
        self.sent += 1
        started = time.perf_counter()
        await self.members[0].call(
            "PUT",
            f"/_matrix/client/v3/rooms/{self.room_id}/send/m.room.message/w{self.sent}",
            {"msgtype": "m.text", "body": f"wake {self.sent}"},
        )
        return started


async def bounded(jobs: list[Callable[[], Awaitable[Any]]], limit: int = CONCURRENCY) -> list[Any]:
    gate = asyncio.Semaphore(limit)

    async def run(job: Callable[[], Awaitable[Any]]) -> Any:
        async with gate:
            return await job()

    return await asyncio.gather(*(run(job) for job in jobs))


async def make_room(clients: list[Client], names: list[str]) -> Room:
    for client, name in zip(clients, names, strict=True):
        await client.register(name)
    room_id = (
        await clients[0].call("POST", "/_matrix/client/v3/createRoom", {"preset": "public_chat"})
    )["room_id"]
    for member in clients[1:]:
        await member.call("POST", f"/_matrix/client/v3/join/{room_id}", {})
    return Room(room_id, clients)


async def catch_up(rooms: list[Room]) -> dict[Client, str]:
    """Each member's current sync token (a sync that does not wait)."""
    members = [m for room in rooms for m in room.members]

    async def since(member: Client) -> tuple[Client, str]:
        body = await member.call("GET", "/_matrix/client/v3/sync?timeout=0")
        return member, body["next_batch"]

    return dict(await bounded([lambda m=m: since(m) for m in members]))  # type: ignore[misc]


async def wake_round(
    rooms: list[Room], tokens: dict[Client, str], parked: Callable[[], Awaitable[None]]
) -> dict[str, float]:
    """Park every member's long-poll, then one message into each room at once."""
    returned: dict[tuple[int, int], tuple[float, bool]] = {}

    early: list[int] = []

    async def poll(r: int, m: int, member: Client, body: str) -> None:
        since = tokens[member]
        # A long-poll woken by something else (a presence change) is parked again.
        while True:
            path = f"/_matrix/client/v3/sync?since={since}&timeout={LONG_POLL_MS}"
            try:
                result = await member.call("GET", path)
            except (aiohttp.ClientError, RuntimeError) as e:
                print(f"sync failed: {e}", file=sys.stderr)
                raise
            room = result.get("rooms", {}).get("join", {}).get(rooms[r].room_id, {})
            events = room.get("timeline", {}).get("events", [])
            if body in [e.get("content", {}).get("body") for e in events]:
                returned[(r, m)] = (time.perf_counter(), True)
                return
            early.append(1)
            since = result["next_batch"]

    wanted = [f"wake {room.sent + 1}" for room in rooms]
    polls = [
        asyncio.ensure_future(poll(r, m, member, wanted[r]))
        for r, room in enumerate(rooms)
        for m, member in enumerate(room.members)
    ]
    await parked()
    sent_at = await asyncio.gather(*(room.send() for room in rooms))
    done, pending = await asyncio.wait(polls, timeout=LONG_POLL_MS / 1000 + 10)
    for task in pending:
        task.cancel()
    failed = sum(1 for task in done if task.exception() is not None)
    latencies = [(at - sent_at[r]) * 1000 for (r, _m), (at, found) in returned.items() if found]
    return {
        "wake_ms_p50": p(latencies, 0.5) if latencies else -1,
        "wake_ms_p99": p(latencies, 0.99) if latencies else -1,
        "wake_ms_max": round(max(latencies), 2) if latencies else -1,
        "woken": len(latencies),
        "missing": len(polls) - len(latencies),
        "failed": failed,
        "early_returns": len(early),
    }


def cpu_s(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


async def metric_sums(session: aiohttp.ClientSession, server: Server) -> dict[str, float]:
    async with session.get(
        f"http://127.0.0.1:{server.control}/metrics",
        headers={"Authorization": "Bearer bench-control-secret"},
    ) as resp:
        text = await resp.text()
    sums: dict[str, float] = {}
    for line in text.splitlines():
        if line.startswith(("hamlet_db_transactions", "hamlet_db_statements", "hamlet_active")):
            name = line.split("{", 1)[0]
        elif line.startswith("synapse_storage_transaction_time_count"):
            name = "txn:" + line.split('desc="', 1)[1].split('"', 1)[0]
        else:
            continue
        sums[name] = sums.get(name, 0.0) + float(line.rsplit(" ", 1)[1])
    return sums


async def hamlet_run(root: Path, tenants: int, users: int) -> dict[str, Any]:
    # Every long-poll is a connection from 127.0.0.1.
    server = Server(root, limits={"max_connections_per_ip": 4 * tenants * users})
    out: dict[str, Any] = {}
    try:
        connector = aiohttp.TCPConnector(limit=0)
        timeout = aiohttp.ClientTimeout(total=None)
        async with aiohttp.ClientSession(connector=connector, timeout=timeout) as session:
            await wait_up(session, server)
            names = [f"w{i:03d}.bench" for i in range(tenants)]
            for name in names:
                await provision(session, server, name, TENANT_CONFIG)
            base = f"http://127.0.0.1:{server.port}"
            rooms = await bounded(
                [
                    lambda n=name: make_room(  # type: ignore[misc]
                        [Client(session, base, n) for _ in range(users)],
                        [f"u{j}" for j in range(users)],
                    )
                    for name in names
                ],
                limit=10,
            )
            print(f"{tenants} tenants x {users} users ready", file=sys.stderr)

            async def counters() -> tuple[float, dict[str, float]]:
                return cpu_s(server.proc.pid), await metric_sums(session, server)

            async def parked() -> None:
                want = tenants * users
                for _ in range(600):
                    sums = await metric_sums(session, server)
                    if sums.get("hamlet_active_syncs", 0) >= want:
                        break
                    await asyncio.sleep(0.1)
                # Past `active_syncs`, each sync registers its waiter.
                await asyncio.sleep(1.0)

            # The same sends with nobody waiting: what a woken round costs beyond them.
            await asyncio.gather(*(room.send() for room in rooms))
            cpu0, m0 = await counters()
            await asyncio.gather(*(room.send() for room in rooms))
            cpu1, m1 = await counters()
            tokens = await catch_up(rooms)
            # Each first sync set its user online, which other members' tokens predate.
            tokens = await catch_up(rooms)
            box: list[tuple[float, dict[str, float]]] = []

            async def parked_then_count() -> None:
                await parked()
                box.append(await counters())

            out.update(await wake_round(rooms, tokens, parked_then_count))
            cpu3, m3 = await counters()
            cpu2, m2 = box[0]
            woken = max(1, out["woken"])

            def per_wake(name: str) -> float:
                round_cost = m3.get(name, 0) - m2.get(name, 0)
                sends_cost = m1.get(name, 0) - m0.get(name, 0)
                return round((round_cost - sends_cost) / woken, 2)

            out["cpu_ms_per_woken_sync"] = round(((cpu3 - cpu2) - (cpu1 - cpu0)) * 1000 / woken, 3)
            out["db_txns_per_woken_sync"] = per_wake("hamlet_db_transactions_total")
            out["db_statements_per_woken_sync"] = per_wake("hamlet_db_statements_total")
            out["round_cpu_s"] = round(cpu3 - cpu2, 2)
            by_desc = {
                name[4:]: per_wake(name)
                for name in m3
                if name.startswith("txn:") and per_wake(name)
            }
            print(f"transactions per woken sync: {by_desc}", file=sys.stderr)
    finally:
        server.stop()
    return out


def start_synapse(root: Path, python: str) -> tuple[subprocess.Popen[bytes], int]:
    port = free_port()
    config = synapse_config(root, port)
    loaded = json.loads(config.read_text())
    loaded["rc_registration"] = RELAXED
    loaded["presence"] = {"enabled": False}
    config.write_text(json.dumps(loaded))
    subprocess.run(
        [python, "-m", "synapse.app.homeserver", "-c", str(config), "--generate-keys"],
        check=True,
        capture_output=True,
    )
    proc = subprocess.Popen(
        [python, "-m", "synapse.app.homeserver", "-c", str(config)],
        stdout=subprocess.DEVNULL,
        stderr=(root / "synapse.log").open("ab"),
    )
    return proc, port


async def synapse_run(root: Path, python: str, tenants: int, users: int) -> dict[str, Any]:
    proc, port = start_synapse(root, python)
    base = f"http://127.0.0.1:{port}"
    try:
        await wait_versions(base, proc)
        connector = aiohttp.TCPConnector(limit=0)
        timeout = aiohttp.ClientTimeout(total=None)
        async with aiohttp.ClientSession(connector=connector, timeout=timeout) as session:
            rooms = await bounded(
                [
                    lambda i=i: make_room(  # type: ignore[misc]
                        [Client(session, base, None) for _ in range(users)],
                        [f"r{i}u{j}" for j in range(users)],
                    )
                    for i in range(tenants)
                ],
                limit=10,
            )
            print(f"synapse: {tenants} rooms x {users} users ready", file=sys.stderr)
            await asyncio.gather(*(room.send() for room in rooms))
            await catch_up(rooms)
            tokens = await catch_up(rooms)

            async def parked() -> None:
                # Synapse shows no count of waiting syncs outside its metrics listener.
                await asyncio.sleep(3.0)

            cpu0 = cpu_s(proc.pid)
            out = await wake_round(rooms, tokens, parked)
            out["round_cpu_s"] = round(cpu_s(proc.pid) - cpu0, 2)
            return out
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=60)
        except subprocess.TimeoutExpired:
            proc.kill()


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--tenants", type=int, default=100)
    parser.add_argument("--users", type=int, default=10)
    parser.add_argument("--synapse-python", default="/tmp/synapse-venv/bin/python")
    parser.add_argument("--no-synapse", action="store_true")
    args = parser.parse_args()
    results: dict[str, Any] = {"tenants": args.tenants, "users": args.users}
    with tempfile.TemporaryDirectory(prefix="hamlet-wakes-") as tmp:
        hamlet_dir = Path(tmp) / "hamlet"
        hamlet_dir.mkdir()
        results["hamlet"] = await hamlet_run(hamlet_dir, args.tenants, args.users)
        print(f"hamlet: {results['hamlet']}", file=sys.stderr)
        if not args.no_synapse and os.access(args.synapse_python, os.X_OK):
            synapse_dir = Path(tmp) / "synapse"
            synapse_dir.mkdir()
            results["synapse"] = await synapse_run(
                synapse_dir, args.synapse_python, args.tenants, args.users
            )
            print(f"synapse: {results['synapse']}", file=sys.stderr)
            h, s = results["hamlet"], results["synapse"]
            if h["wake_ms_p99"] > 0 and s["wake_ms_p99"] > 0:
                results["synapse_over_hamlet_p50"] = round(s["wake_ms_p50"] / h["wake_ms_p50"], 2)
                results["synapse_over_hamlet_p99"] = round(s["wake_ms_p99"] / h["wake_ms_p99"], 2)
    print(json.dumps(results))


if __name__ == "__main__":
    asyncio.run(main())
