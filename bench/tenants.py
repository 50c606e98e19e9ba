"""What tenants cost: provisioning at scale, hibernation, waking, scrapes, shutdown, neighbours.

    .venv/bin/python bench/tenants.py [--phases scale,memory,flood,throughput]
        [--tenants 10000] [--awake 1000] [--wakes 100]
        [--memory-tenants 1000] [--provisions 50]
        [--throughput-tenants 100] [--senders 10] [--seconds 10]

Spawns `hamlet serve` with a host section (control API on a free port;
SQLite, a file per tenant) and provisions tenants through the control API,
the way an operator would. Phases:

- scale (issue 16's goals, printed as GOAL lines with the measured figure):
  provision `--tenants` with hibernation on (so they do not all stay
  awake), the provisioning p99 of the first and the last 100; `GET
  /tenants` and `/metrics` at that many; a restart with them all
  hibernated (until /health answers) and its settled RSS; `--wakes`
  simultaneous first requests to hibernated tenants (p50/p99), the RSS
  with them awake and once they hibernated again; then, restarted with
  hibernation never due, `--awake` tenants woken, the scrapes again (the
  first after the wakes counts their users and rooms), and how long
  SIGTERM takes.
  About 5 minutes with `--tenants 3000 --awake 500`; the full 10,000 takes
  10,000 times the provisioning time (~60 ms) more.
- memory: idle RSS with 1 tenant (the main one), then with 100 and
  `--memory-tenants` provisioned and awake (the marginal idle tenant is the
  slope between the two); the same data restarted with hibernation on
  (the marginal hibernated tenant), then the first request to 20 of them,
  which wakes each (wake_ms);
- flood: provisioning latency over `--provisions` fresh tenants, and a
  neighbour's latency: tenant B's requests while tenant A (capped at 8
  concurrent requests) is flooded by 100 clients, and the same idle.
- throughput (issue 17, host-wide): `--throughput-tenants` tenants, each
  with one room and `--senders` clients sending into it back to back for
  `--seconds`, all on one process: the aggregate msgs/s, the p99 send
  latency over all sends, and each tenant's own p99 (median and worst
  tenant, and their ratio; the goal is no tenant's p99 above 2x the
  median tenant's).

Extra detail goes to stderr; the last line is one JSON object. Prints
numbers only; asserts nothing.
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import hmac
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import aiohttp

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.startup import free_port, settled_rss  # noqa: E402

SECRET = "bench-control-secret"


def write_main(
    root: Path,
    port: int,
    control: int,
    hibernate: str | None,
    tenant_database: dict[str, Any] | None = None,
    limits: dict[str, Any] | None = None,
) -> Path:
    host: dict[str, Any] = {
        "control": {"port": control, "secret": SECRET},
        "tenants_dir": str(root / "tenants"),
    }
    if tenant_database is not None:
        host["database"] = tenant_database
    if hibernate:
        host["hibernate_after"] = hibernate
    config = {
        "server_name": "main.bench",
        "public_baseurl": "http://main.bench/",
        "listeners": [{"port": port, "bind_addresses": ["127.0.0.1"]}],
        "database": {"name": "sqlite3", "args": {"database": str(root / "main.db")}},
        "signing_key_path": str(root / "main.key"),
        "registration_shared_secret": "s",
        "bcrypt_rounds": 4,
        "log_config": str(write_log_config(root)),
        "host": host,
    }
    if limits is not None:
        config["limits"] = limits
    path = root / "main.yaml"
    path.write_text(json.dumps(config))
    return path


def write_log_config(root: Path) -> Path:
    path = root / "log.yaml"
    path.write_text(
        json.dumps(
            {
                "version": 1,
                "handlers": {"h": {"class": "logging.StreamHandler", "level": "WARNING"}},
                "root": {"level": "WARNING", "handlers": ["h"]},
            }
        )
    )
    return path


class Server:
    def __init__(
        self,
        root: Path,
        hibernate: str | None = None,
        tenant_database: dict[str, Any] | None = None,
        limits: dict[str, Any] | None = None,
    ) -> None:
        self.port = free_port()
        self.control = free_port()
        config = write_main(root, self.port, self.control, hibernate, tenant_database, limits)
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "hamlet.cli", "serve", "--config", str(config)],
            stdout=subprocess.DEVNULL,
            stderr=open(root / "serve.log", "ab"),
        )

    def stop(self) -> float:
        """SIGTERM; returns the seconds until the process exited."""
        started = time.perf_counter()
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(timeout=120)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        return time.perf_counter() - started


async def wait_up(session: aiohttp.ClientSession, server: Server) -> None:
    for _ in range(6000):
        if server.proc.poll() is not None:
            raise RuntimeError("hamlet serve exited")
        try:
            async with session.get(
                f"http://127.0.0.1:{server.port}/health", headers={"Host": "main.bench"}
            ) as resp:
                if resp.status == 200:
                    return
        except aiohttp.ClientError:
            pass
        await asyncio.sleep(0.05)
    raise RuntimeError("hamlet serve did not come up")


async def provision(
    session: aiohttp.ClientSession, server: Server, name: str, config: dict[str, Any] | None = None
) -> float:
    started = time.perf_counter()
    async with session.post(
        f"http://127.0.0.1:{server.control}/tenants",
        json={"server_name": name, "config": config or {}},
        headers={"Authorization": f"Bearer {SECRET}"},
    ) as resp:
        body = await resp.json()
        if resp.status != 200:
            raise RuntimeError(f"provisioning {name}: {body}")
    return (time.perf_counter() - started) * 1000


async def timed_get(session: aiohttp.ClientSession, server: Server, host: str, path: str) -> float:
    started = time.perf_counter()
    async with session.get(f"http://127.0.0.1:{server.port}{path}", headers={"Host": host}) as resp:
        await resp.read()
    return (time.perf_counter() - started) * 1000


async def timed_control(
    session: aiohttp.ClientSession, server: Server, path: str
) -> tuple[float, Any]:
    started = time.perf_counter()
    async with session.get(
        f"http://127.0.0.1:{server.control}{path}",
        headers={"Authorization": f"Bearer {SECRET}"},
    ) as resp:
        body = await resp.read()
        if resp.status != 200:
            raise RuntimeError(f"GET {path}: {resp.status} {body[:200]!r}")
    elapsed = (time.perf_counter() - started) * 1000
    return elapsed, json.loads(body) if path.startswith("/tenants") else None


async def scrape_ms(
    session: aiohttp.ClientSession, server: Server, prefix: str
) -> dict[str, float]:
    """The slowest of 3 of each scrape: all tenants, a page of 100, and /metrics."""
    out: dict[str, float] = {}
    for key, path in (
        ("tenants_ms", "/tenants"),
        ("tenants_page_ms", "/tenants?limit=100"),
        ("metrics_ms", "/metrics"),
    ):
        out[prefix + key] = max([(await timed_control(session, server, path))[0] for _ in range(3)])
    return out


async def states(session: aiohttp.ClientSession, server: Server) -> dict[str, int]:
    _ms, body = await timed_control(session, server, "/tenants")
    counts: dict[str, int] = {}
    for tenant in body["tenants"]:
        counts[tenant["state"]] = counts.get(tenant["state"], 0) + 1
    return counts


def p(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return round(ordered[min(len(ordered) - 1, int(len(ordered) * q))], 2)


async def phase_memory(root: Path, tenants: int) -> dict[str, float]:
    out: dict[str, float] = {}
    async with aiohttp.ClientSession() as session:
        server = Server(root)
        try:
            await wait_up(session, server)
            out["rss_1_tenant_mb"] = await asyncio.to_thread(settled_rss, server.proc.pid)
            for i in range(1, tenants + 1):
                await provision(session, server, f"t{i:05d}.bench")
                if i == 100:
                    out["rss_100_tenants_mb"] = await asyncio.to_thread(
                        settled_rss, server.proc.pid
                    )
            out[f"rss_{tenants}_tenants_mb"] = await asyncio.to_thread(settled_rss, server.proc.pid)
        finally:
            server.stop()
        out["rss_per_idle_tenant_kb"] = (
            (out[f"rss_{tenants}_tenants_mb"] - out["rss_100_tenants_mb"]) * 1024 / (tenants - 100)
        )
        print(f"idle phase: {out}", file=sys.stderr)

        server = Server(root, hibernate="1h")
        try:
            await wait_up(session, server)
            hibernated = await asyncio.to_thread(settled_rss, server.proc.pid)
            out["rss_hibernated_mb"] = hibernated
            out["rss_per_hibernated_tenant_kb"] = (
                (hibernated - out["rss_1_tenant_mb"]) * 1024 / tenants
            )
            wakes = [
                await timed_get(session, server, f"t{i:05d}.bench", "/_matrix/client/versions")
                for i in range(1, 21)
            ]
            awake = [
                await timed_get(session, server, f"t{i:05d}.bench", "/_matrix/client/versions")
                for i in range(1, 21)
            ]
            out["wake_ms_p50"] = p(wakes, 0.5)
            out["awake_first_request_ms_p50"] = p(awake, 0.5)
        finally:
            server.stop()
    return out


def name_of(i: int) -> str:
    return f"s{i:05d}.bench"


async def phase_scale(root: Path, tenants: int, awake: int, wakes: int) -> dict[str, float]:
    out: dict[str, float] = {}
    versions = "/_matrix/client/versions"
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0)) as session:
        server = Server(root, hibernate="3s")
        try:
            await wait_up(session, server)
            times: list[float] = []
            for i in range(tenants):
                times.append(await provision(session, server, name_of(i)))
                if (i + 1) % 1000 == 0:
                    print(
                        f"provisioned {i + 1}: last 100 p99 {p(times[-100:], 0.99)} ms",
                        file=sys.stderr,
                    )
            out["provision_first_100_p99_ms"] = p(times[:100], 0.99)
            out["provision_last_100_p99_ms"] = p(times[-100:], 0.99)
            out["provision_all_p50_ms"] = p(times, 0.5)
            out.update(await scrape_ms(session, server, "provisioned_"))
        finally:
            server.stop()
        print(f"provisioned: {out}", file=sys.stderr)

        started = time.perf_counter()
        server = Server(root, hibernate="3s")
        try:
            await wait_up(session, server)
            out["restart_s"] = time.perf_counter() - started
            out["rss_all_hibernated_mb"] = await asyncio.to_thread(settled_rss, server.proc.pid)
            out.update(await scrape_ms(session, server, "hibernated_"))
            hosts = [name_of(i) for i in range(0, tenants, max(1, tenants // wakes))][:wakes]
            wake_times = await asyncio.gather(
                *(timed_get(session, server, host, versions) for host in hosts)
            )
            out["wakes"] = len(hosts)
            out["wake_p50_ms"] = p(wake_times, 0.5)
            out["wake_p99_ms"] = p(wake_times, 0.99)
            out["rss_after_wakes_mb"] = await asyncio.to_thread(settled_rss, server.proc.pid)
            for _ in range(120):
                if (await states(session, server)).get("active", 0) <= 1:
                    break
                await asyncio.sleep(1)
            out["rss_rehibernated_mb"] = await asyncio.to_thread(settled_rss, server.proc.pid)
        finally:
            server.stop()
        print(f"hibernated: {out}", file=sys.stderr)

        # Hibernation on but never due: persisted tenants come back asleep
        # (with it off, every one would start) and those woken stay awake.
        server = Server(root, hibernate="1h")
        try:
            await wait_up(session, server)
            for first in range(0, awake, 50):
                await asyncio.gather(
                    *(
                        timed_get(session, server, name_of(i), versions)
                        for i in range(first, min(awake, first + 50))
                    )
                )
            out["awake"] = awake
            out["rss_awake_mb"] = await asyncio.to_thread(settled_rss, server.proc.pid)
            out.update(await scrape_ms(session, server, "awake_"))
        finally:
            out["sigterm_awake_s"] = server.stop()
    return out


def print_goals(r: dict[str, Any], tenants: int, awake: int) -> None:
    """Issue 16's goals for 10,000 tenants, against what this run measured."""
    rows = [
        (
            f"provisioning p99 at the {tenants}th < 50 ms (first 100: "
            f"{r['provision_first_100_p99_ms']} ms)",
            r["provision_last_100_p99_ms"],
            50,
        ),
        (f"restart with {tenants} hibernated < 5 s", r["restart_s"], 5),
        (f"RSS with {tenants} hibernated < 150 MB", r["rss_all_hibernated_mb"], 150),
        (f"{r['wakes']} simultaneous wakes p99 < 200 ms", r["wake_p99_ms"], 200),
        (f"/metrics at {tenants} < 200 ms", r["hibernated_metrics_ms"], 200),
        (f"GET /tenants at {tenants} < 200 ms", r["hibernated_tenants_ms"], 200),
        (f"/metrics with {awake} awake < 200 ms", r["awake_metrics_ms"], 200),
        (f"GET /tenants with {awake} awake < 200 ms", r["awake_tenants_ms"], 200),
        (f"SIGTERM at {awake} awake < 2 s", r["sigterm_awake_s"], 2),
        (
            f"memory back after re-hibernation (hibernated {r['rss_all_hibernated_mb']:.1f}, "
            f"woken {r['rss_after_wakes_mb']:.1f} MB) <= +10%",
            r["rss_rehibernated_mb"],
            r["rss_all_hibernated_mb"] * 1.1,
        ),
    ]
    for label, value, goal in rows:
        verdict = "met" if value < goal else "MISSED"
        print(f"GOAL {verdict:6} {label}: {value:.2f}", file=sys.stderr)


@asynccontextmanager
async def serving(
    root: Path,
    connections: int,
    tenant_database: dict[str, Any] | None = None,
    hibernate: str | None = None,
    limits: dict[str, Any] | None = None,
) -> AsyncIterator[tuple[aiohttp.ClientSession, Server]]:
    """`hamlet serve` up and a client session with `connections` connections to it."""
    connector = aiohttp.TCPConnector(limit=connections)
    async with aiohttp.ClientSession(connector=connector) as session:
        server = Server(root, hibernate, tenant_database, limits)
        try:
            await wait_up(session, server)
            yield session, server
        finally:
            server.stop()


async def phase_provision_and_flood(root: Path, provisions: int) -> dict[str, float]:
    out: dict[str, float] = {}
    async with serving(root, 200) as (session, server):
        times = [await provision(session, server, f"p{i:03d}.bench") for i in range(provisions)]
        out["provision_ms_p50"] = p(times, 0.5)
        out["provision_ms_p99"] = p(times, 0.99)
        await provision(session, server, "a.bench", {"limits": {"max_concurrent_requests": 8}})
        await provision(session, server, "b.bench")
        path = "/_matrix/client/v3/publicRooms"
        idle = [await timed_get(session, server, "b.bench", path) for _ in range(100)]
        stop = asyncio.Event()
        flood_count = 0

        async def flooder() -> None:
            nonlocal flood_count
            while not stop.is_set():
                await timed_get(session, server, "a.bench", path)
                flood_count += 1

        flood = [asyncio.ensure_future(flooder()) for _ in range(100)]
        await asyncio.sleep(1.0)
        loaded = [await timed_get(session, server, "b.bench", path) for _ in range(100)]
        stop.set()
        await asyncio.gather(*flood)
        out["neighbour_p99_ms_idle"] = p(idle, 0.99)
        out["neighbour_p99_ms_under_flood"] = p(loaded, 0.99)
        out["flood_requests"] = flood_count
    return out


#: No rate limit may cap what the throughput phase measures.
UNLIMITED = {"per_second": 1_000_000, "burst_count": 1_000_000}


async def client_call(
    session: aiohttp.ClientSession,
    server: Server,
    host: str,
    method: str,
    path: str,
    body: Any = None,
    token: str | None = None,
) -> Any:
    headers = {"Host": host}
    if token is not None:
        headers["Authorization"] = f"Bearer {token}"
    url = f"http://127.0.0.1:{server.port}{path}"
    async with session.request(method, url, json=body, headers=headers) as resp:
        data = await resp.json(content_type=None)
        if resp.status != 200:
            raise RuntimeError(f"{method} {path} on {host}: {resp.status} {data}")
        return data


async def register_with_secret(
    session: aiohttp.ClientSession, server: Server, host: str, user: str
) -> str:
    path = "/_synapse/admin/v1/register"
    nonce = (await client_call(session, server, host, "GET", path))["nonce"]
    mac = hmac.new(SECRET.encode(), digestmod=hashlib.sha1)
    mac.update(f"{nonce}\x00{user}\x00password\x00notadmin".encode())
    body = {"nonce": nonce, "username": user, "password": "password", "mac": mac.hexdigest()}
    token: str = (await client_call(session, server, host, "POST", path, body))["access_token"]
    return token


async def phase_throughput(
    root: Path, tenants: int, senders: int, seconds: float
) -> dict[str, float]:
    """Every tenant's senders at once, back to back, for `seconds`."""
    tenant_config = {
        "registration_shared_secret": SECRET,
        "bcrypt_rounds": 4,
        "rc_message": UNLIMITED,
        "rc_login": {"address": UNLIMITED, "account": UNLIMITED},
    }
    # Every sender holds a connection of its own, all from 127.0.0.1.
    limits = {"max_connections_per_ip": tenants * senders + 100}
    out: dict[str, float] = {}
    connector = aiohttp.TCPConnector(limit=0)
    async with aiohttp.ClientSession(connector=connector) as session:
        server = Server(root, limits=limits)
        try:
            await wait_up(session, server)
            rooms: list[tuple[str, str, str]] = []
            for i in range(tenants):
                host = f"tp{i:04d}.bench"
                await provision(session, server, host, tenant_config)
                token = await register_with_secret(session, server, host, "sender")
                room = await client_call(
                    session, server, host, "POST", "/_matrix/client/v3/createRoom", {}, token
                )
                rooms.append((host, token, room["room_id"]))
            latencies: dict[str, list[float]] = {host: [] for host, _, _ in rooms}
            txn = iter(range(10**12))
            deadline = 0.0

            async def send(host: str, token: str, room: str) -> float:
                path = f"/_matrix/client/v3/rooms/{room}/send/m.room.message/t{next(txn)}"
                started = time.perf_counter()
                await client_call(
                    session, server, host, "PUT", path, {"msgtype": "m.text", "body": "hi"}, token
                )
                return (time.perf_counter() - started) * 1000

            async def sender(host: str, token: str, room: str) -> None:
                while time.perf_counter() < deadline:
                    latencies[host].append(await send(host, token, room))

            # One message per sender first: connections opened, caches warm.
            await asyncio.gather(*(send(*r) for r in rooms for _ in range(senders)))
            started = time.perf_counter()
            deadline = started + seconds
            await asyncio.gather(*(sender(*r) for r in rooms for _ in range(senders)))
            elapsed = time.perf_counter() - started
        finally:
            server.stop()
    every = [ms for values in latencies.values() for ms in values]
    per_tenant = sorted(p(values, 0.99) for values in latencies.values() if values)
    median = per_tenant[len(per_tenant) // 2]
    out["throughput_tenants"] = tenants
    out["throughput_senders_per_tenant"] = senders
    out["throughput_msgs_per_s"] = len(every) / elapsed
    out["throughput_send_p50_ms"] = p(every, 0.5)
    out["throughput_send_p99_ms"] = p(every, 0.99)
    out["throughput_tenant_p99_median_ms"] = median
    out["throughput_tenant_p99_max_ms"] = per_tenant[-1]
    out["throughput_tenant_p99_max_over_median"] = per_tenant[-1] / median
    verdict = "met" if per_tenant[-1] <= 2 * median else "MISSED"
    print(
        f"GOAL {verdict:6} no tenant's send p99 above 2x the median tenant's: "
        f"max {per_tenant[-1]:.1f} ms / median {median:.1f} ms = {per_tenant[-1] / median:.2f}",
        file=sys.stderr,
    )
    print(f"throughput: {out}", file=sys.stderr)
    return out


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--phases", default="scale,memory,flood")
    parser.add_argument("--tenants", type=int, default=10000)
    parser.add_argument("--awake", type=int, default=1000)
    parser.add_argument("--wakes", type=int, default=100)
    parser.add_argument("--memory-tenants", type=int, default=1000)
    parser.add_argument("--provisions", type=int, default=50)
    parser.add_argument("--throughput-tenants", type=int, default=100)
    parser.add_argument("--senders", type=int, default=10)
    parser.add_argument("--seconds", type=float, default=10.0)
    args = parser.parse_args()
    phases = set(args.phases.split(","))
    results: dict[str, Any] = {}
    with tempfile.TemporaryDirectory(prefix="hamlet-tenants-") as tmp:
        for phase in ("scale", "memory", "flood", "throughput"):
            if phase not in phases:
                continue
            root = Path(tmp) / phase
            root.mkdir()
            if phase == "scale":
                results.update(
                    await phase_scale(root, args.tenants, min(args.awake, args.tenants), args.wakes)
                )
                print_goals(results, args.tenants, min(args.awake, args.tenants))
            elif phase == "memory":
                results.update(await phase_memory(root, args.memory_tenants))
            elif phase == "throughput":
                results.update(
                    await phase_throughput(
                        root, args.throughput_tenants, args.senders, args.seconds
                    )
                )
            else:
                results.update(await phase_provision_and_flood(root, args.provisions))
    print(json.dumps({k: round(v, 2) if isinstance(v, float) else v for k, v in results.items()}))


if __name__ == "__main__":
    os.environ.setdefault("PYTHONUNBUFFERED", "1")
    asyncio.run(main())
