"""What tenants cost: memory when idle and hibernated, provisioning, waking, and neighbours.

    .venv/bin/python bench/tenants.py [--tenants 1000] [--provisions 50]

Spawns `hamlet serve` with a host section (control API on a free port;
SQLite, a file per tenant) and provisions tenants through the control API,
the way an operator would. Phases:

1. idle RSS with 1 tenant (the main one), then with 100 and `--tenants`
   provisioned and awake; the marginal idle tenant is the slope between
   the last two;
2. the same process data restarted with hibernation on: persisted tenants
   come back hibernated, so the marginal hibernated tenant is
   (RSS - RSS with 1) / tenants; then the first request to 20 of them,
   which wakes each (wake_ms);
3. provisioning latency over `--provisions` fresh tenants;
4. a neighbour's latency: tenant B's requests while tenant A (capped at 8
   concurrent requests) is flooded by 100 clients, and the same idle.

Extra detail goes to stderr; the last line is one JSON object. Prints
numbers only; asserts nothing.
"""

from __future__ import annotations

import argparse
import asyncio
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


def write_main(root: Path, port: int, control: int, hibernate: str | None) -> Path:
    host: dict[str, Any] = {
        "control": {"port": control, "secret": SECRET},
        "tenants_dir": str(root / "tenants"),
    }
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
    def __init__(self, root: Path, hibernate: str | None = None) -> None:
        self.port = free_port()
        self.control = free_port()
        config = write_main(root, self.port, self.control, hibernate)
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "hamlet.cli", "serve", "--config", str(config)],
            stdout=subprocess.DEVNULL,
            stderr=open(root / "serve.log", "ab"),
        )

    def stop(self) -> None:
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(timeout=120)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()


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


@asynccontextmanager
async def serving(
    root: Path, connections: int
) -> AsyncIterator[tuple[aiohttp.ClientSession, Server]]:
    """`hamlet serve` up and a client session with `connections` connections to it."""
    connector = aiohttp.TCPConnector(limit=connections)
    async with aiohttp.ClientSession(connector=connector) as session:
        server = Server(root)
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


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--tenants", type=int, default=1000)
    parser.add_argument("--provisions", type=int, default=50)
    args = parser.parse_args()
    results: dict[str, Any] = {}
    with tempfile.TemporaryDirectory(prefix="hamlet-tenants-") as tmp:
        memory_root = Path(tmp) / "memory"
        memory_root.mkdir()
        results.update(await phase_memory(memory_root, args.tenants))
        flood_root = Path(tmp) / "flood"
        flood_root.mkdir()
        results.update(await phase_provision_and_flood(flood_root, args.provisions))
    print(json.dumps({k: round(v, 2) if isinstance(v, float) else v for k, v in results.items()}))


if __name__ == "__main__":
    os.environ.setdefault("PYTHONUNBUFFERED", "1")
    asyncio.run(main())
