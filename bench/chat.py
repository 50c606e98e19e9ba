"""Chat throughput and sync latency, over real HTTP on loopback.

    .venv/bin/python bench/chat.py [--messages 300] [--synapse-python PATH]

For each server (Hamlet on SQLite, Hamlet on PostgreSQL — a throwaway
cluster —, and Synapse on SQLite when a Python with `matrix-synapse`
installed is given or found at /tmp/synapse-venv/bin/python) the same
client workload runs:

* send_1_msgs_per_s:  one sender, sequential sends into one room
* send_10_msgs_per_s: ten senders at once into the same room
* sync_latency_ms_p50 / _p99: from a send to the other user's long-polling
  /sync returning with it

Users are created through the shared-secret admin registration both
servers offer. One JSON line per server, then one with the ratios of
Hamlet (SQLite) to Synapse. Prints numbers only; asserts nothing.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import hashlib
import hmac
import json
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import aiohttp

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tests.support.postgres import start_cluster  # noqa: E402

SECRET = "bench-secret"
SERVER_NAME = "chat.bench"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def hamlet_config(
    root: Path,
    port: int,
    database: dict[str, Any],
    *,
    server_name: str = SERVER_NAME,
    **extra: Any,
) -> Path:
    """A config file for `hamlet serve`; `extra` keys are added or replace ours."""
    config = {
        "server_name": server_name,
        "public_baseurl": f"http://127.0.0.1:{port}/",
        "listeners": [{"port": port, "bind_addresses": ["127.0.0.1"], "type": "http"}],
        "database": database,
        "signing_key_path": str(root / "signing.key"),
        "media_store_path": str(root / "media"),
        "registration_shared_secret": SECRET,
        "bcrypt_rounds": 4,
        "rc_message": {"per_second": 100000, "burst_count": 100000},
        "rc_login": {
            "address": {"per_second": 1000, "burst_count": 1000},
            "account": {"per_second": 1000, "burst_count": 1000},
            "failed_attempts": {"per_second": 1000, "burst_count": 1000},
        },
        "rc_joins": {"local": {"per_second": 1000, "burst_count": 1000}},
        "rc_room_creation": {"per_second": 1000, "burst_count": 1000},
        "rc_joins_per_room": {"per_second": 1000, "burst_count": 1000},
        "rc_invites": {
            "per_room": {"per_second": 1000, "burst_count": 1000},
            "per_user": {"per_second": 1000, "burst_count": 1000},
            "per_issuer": {"per_second": 1000, "burst_count": 1000},
        },
        "log_config": str(write_quiet_log_config(root)),
        **extra,
    }
    path = root / "homeserver.yaml"
    path.write_text(json.dumps(config))
    return path


def write_quiet_log_config(root: Path) -> Path:
    path = root / "log.yaml"
    path.write_text(
        json.dumps(
            {
                "version": 1,
                "handlers": {"h": {"class": "logging.StreamHandler", "level": "WARNING"}},
                "root": {"level": "WARNING", "handlers": ["h"]},
                "disable_existing_loggers": False,
            }
        )
    )
    return path


def synapse_config(root: Path, port: int) -> Path:
    config = {
        "server_name": SERVER_NAME,
        "pid_file": str(root / "synapse.pid"),
        "listeners": [
            {
                "port": port,
                "bind_addresses": ["127.0.0.1"],
                "type": "http",
                "tls": False,
                "x_forwarded": False,
                "resources": [{"names": ["client"], "compress": False}],
            }
        ],
        "database": {"name": "sqlite3", "args": {"database": str(root / "synapse.db")}},
        "log_config": str(write_quiet_log_config(root)),
        "media_store_path": str(root / "media"),
        "registration_shared_secret": SECRET,
        "report_stats": False,
        "signing_key_path": str(root / "synapse.signing.key"),
        "trusted_key_servers": [],
        "suppress_key_server_warning": True,
        "bcrypt_rounds": 4,
        "enable_metrics": False,
        "presence": {"enabled": True},
        "rc_message": {"per_second": 100000, "burst_count": 100000},
        "rc_login": {
            "address": {"per_second": 1000, "burst_count": 1000},
            "account": {"per_second": 1000, "burst_count": 1000},
            "failed_attempts": {"per_second": 1000, "burst_count": 1000},
        },
        "rc_joins": {"local": {"per_second": 1000, "burst_count": 1000}},
        "rc_room_creation": {"per_second": 1000, "burst_count": 1000},
        "rc_joins_per_room": {"per_second": 1000, "burst_count": 1000},
        "rc_invites": {
            "per_room": {"per_second": 1000, "burst_count": 1000},
            "per_user": {"per_second": 1000, "burst_count": 1000},
            "per_issuer": {"per_second": 1000, "burst_count": 1000},
        },
    }
    path = root / "synapse.yaml"
    path.write_text(json.dumps(config))
    return path


async def wait_up(base: str, proc: subprocess.Popen[bytes], limit_s: float = 180) -> None:
    deadline = time.monotonic() + limit_s
    async with aiohttp.ClientSession() as session:
        while time.monotonic() < deadline:
            if proc.poll() is not None:
                raise RuntimeError(f"server exited with {proc.returncode}")
            try:
                async with session.get(f"{base}/_matrix/client/versions") as resp:
                    if resp.status == 200:
                        return
            except aiohttp.ClientError:
                pass
            await asyncio.sleep(0.2)
    raise RuntimeError("server did not come up")


def registration(secret: str, nonce: str, name: str) -> dict[str, str]:
    """The body of a shared-secret registration of `name` (password "password")."""
    mac = hmac.new(secret.encode(), digestmod=hashlib.sha1)
    for part in (nonce, name, "password", "notadmin"):
        mac.update(part.encode())
        if part != "notadmin":
            mac.update(b"\x00")
    return {"nonce": nonce, "username": name, "password": "password", "mac": mac.hexdigest()}


class Client:
    def __init__(self, session: aiohttp.ClientSession, base: str) -> None:
        self.session = session
        self.base = base
        self.token = ""
        self.user_id = ""

    async def call(self, method: str, path: str, body: Any = None) -> Any:
        headers = {"Authorization": f"Bearer {self.token}"} if self.token else {}
        async with self.session.request(
            method, f"{self.base}{path}", json=body, headers=headers
        ) as resp:
            data = await resp.json()
            if resp.status != 200:
                raise RuntimeError(f"{method} {path}: {resp.status} {data}")
            return data

    async def register(self, name: str, secret: str = SECRET) -> None:
        nonce = (await self.call("GET", "/_synapse/admin/v1/register"))["nonce"]
        result = await self.call(
            "POST", "/_synapse/admin/v1/register", registration(secret, nonce, name)
        )
        self.token = result["access_token"]
        self.user_id = result["user_id"]


async def workload(base: str, messages: int) -> dict[str, float]:
    connector = aiohttp.TCPConnector(limit=100)
    async with aiohttp.ClientSession(connector=connector) as session:
        alice = Client(session, base)
        bob = Client(session, base)
        await alice.register("alice")
        await bob.register("bob")
        senders = [Client(session, base) for _ in range(10)]
        for i, sender in enumerate(senders):
            await sender.register(f"sender{i}")
        room = (
            await alice.call("POST", "/_matrix/client/v3/createRoom", {"preset": "public_chat"})
        )["room_id"]
        for member in [bob, *senders]:
            await member.call("POST", f"/_matrix/client/v3/join/{room}", {})

        txn = iter(range(10**9))

        async def send(client: Client) -> None:
            await client.call(
                "PUT",
                f"/_matrix/client/v3/rooms/{room}/send/m.room.message/t{next(txn)}",
                {"msgtype": "m.text", "body": "hello"},
            )

        for _ in range(10):
            await send(alice)
        start = time.perf_counter()
        for _ in range(messages):
            await send(alice)
        one = messages / (time.perf_counter() - start)

        per_sender = max(1, messages // 10)
        start = time.perf_counter()

        async def sender_loop(client: Client) -> None:
            for _ in range(per_sender):
                await send(client)

        await asyncio.gather(*(sender_loop(s) for s in senders))
        ten = per_sender * 10 / (time.perf_counter() - start)

        latencies = await wake_latencies(alice, bob, room, 50)
        latencies.sort()
        return {
            "send_1_msgs_per_s": round(one, 1),
            "send_10_msgs_per_s": round(ten, 1),
            "sync_latency_ms_p50": round(statistics.median(latencies), 2),
            "sync_latency_ms_p99": round(latencies[int(len(latencies) * 0.99) - 1], 2),
        }


async def wake_latencies(sender: Client, waiter: Client, room: str, samples: int) -> list[float]:
    """Milliseconds from each of `samples` sends by `sender` into `room` until
    the long-poll /sync `waiter` parked beforehand returns with it."""
    txn = iter(range(10**9))
    since = (await waiter.call("GET", "/_matrix/client/v3/sync?timeout=0"))["next_batch"]
    latencies = []
    for _ in range(samples):
        poll = asyncio.ensure_future(
            waiter.call("GET", f"/_matrix/client/v3/sync?since={since}&timeout=10000")
        )
        await asyncio.sleep(0.02)
        sent_at = time.perf_counter()
        await sender.call(
            "PUT",
            f"/_matrix/client/v3/rooms/{room}/send/m.room.message/w{time.time_ns()}{next(txn)}",
            {"msgtype": "m.text", "body": "hello"},
        )
        result = await poll
        latencies.append((time.perf_counter() - sent_at) * 1000)
        since = result["next_batch"]
    return latencies


def spawn(argv: list[str], env: dict[str, str] | None) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env or dict(os.environ)
    )


def generate_synapse_keys(python: str, config: Path) -> None:
    subprocess.run(
        [python, "-m", "synapse.app.homeserver", "-c", str(config), "--generate-keys"],
        check=True,
        capture_output=True,
    )


@contextlib.asynccontextmanager
async def served(
    argv: list[str], base: str, env: dict[str, str] | None = None
) -> AsyncIterator[subprocess.Popen[bytes]]:
    """A server process, once it answers at `base`; stopped on exit."""
    proc = spawn(argv, env)
    try:
        await wait_up(base, proc)
        yield proc
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()


async def serve_and_run(
    argv: list[str],
    base: str,
    work: Callable[[str], Awaitable[dict[str, Any]]],
    env: dict[str, str] | None = None,
) -> dict[str, Any]:
    """Start a server, run `work(base)` once it answers, stop it."""
    async with served(argv, base, env):
        return await work(base)


async def run_server(
    label: str, argv: list[str], base: str, messages: int, env: dict[str, str] | None = None
) -> dict[str, Any]:
    result = await serve_and_run(argv, base, lambda b: workload(b, messages), env)
    return {"server": label, **result}


def find_synapse_python(explicit: str | None) -> str | None:
    candidates = [explicit] if explicit else ["/tmp/synapse-venv/bin/python"]
    for candidate in candidates:
        if candidate and Path(candidate).exists():
            check = subprocess.run(
                [candidate, "-c", "import synapse"], capture_output=True, check=False
            )
            if check.returncode == 0:
                return candidate
    return None


async def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--messages", type=int, default=300)
    parser.add_argument("--synapse-python", default=None)
    parser.add_argument("--skip-postgres", action="store_true")
    args = parser.parse_args()
    hamlet = [sys.executable, "-m", "hamlet.cli", "serve", "--config"]
    results = []
    with tempfile.TemporaryDirectory(prefix="hamlet-chat-") as tmp:
        root = Path(tmp)
        port = free_port()
        sqlite_dir = root / "sqlite"
        sqlite_dir.mkdir()
        db = {"name": "sqlite3", "args": {"database": str(sqlite_dir / "hs.db")}}
        config = hamlet_config(sqlite_dir, port, db)
        results.append(
            await run_server(
                "hamlet-sqlite", [*hamlet, str(config)], f"http://127.0.0.1:{port}", args.messages
            )
        )
        print(json.dumps(results[-1]), flush=True)

        cluster = None if args.skip_postgres else start_cluster()
        if cluster is not None:
            try:
                port = free_port()
                pg_dir = root / "pg"
                pg_dir.mkdir()
                db = {"name": "psycopg2", "args": {**cluster.dsn_kwargs(), "schema": "chat"}}
                config = hamlet_config(pg_dir, port, db)
                results.append(
                    await run_server(
                        "hamlet-postgres",
                        [*hamlet, str(config)],
                        f"http://127.0.0.1:{port}",
                        args.messages,
                    )
                )
                print(json.dumps(results[-1]), flush=True)
            finally:
                cluster.stop()

        synapse_python = find_synapse_python(args.synapse_python)
        if synapse_python is not None:
            port = free_port()
            syn_dir = root / "synapse"
            syn_dir.mkdir()
            config = synapse_config(syn_dir, port)
            generate_synapse_keys(synapse_python, config)
            synapse = await run_server(
                "synapse-sqlite",
                [synapse_python, "-m", "synapse.app.homeserver", "-c", str(config)],
                f"http://127.0.0.1:{port}",
                args.messages,
            )
            print(json.dumps(synapse), flush=True)
            ours = results[0]
            ratios = {
                "ratio": "hamlet-sqlite / synapse-sqlite",
                **{
                    k: round(ours[k] / synapse[k], 2)
                    for k in (
                        "send_1_msgs_per_s",
                        "send_10_msgs_per_s",
                        "sync_latency_ms_p50",
                        "sync_latency_ms_p99",
                    )
                    if synapse[k]
                },
            }
            print(json.dumps(ratios), flush=True)
        else:
            print(json.dumps({"synapse": "not installed; pass --synapse-python"}), flush=True)


if __name__ == "__main__":
    asyncio.run(main())
