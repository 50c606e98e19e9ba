"""No shared fate: a neighbour tenant's latency while one hostile user attacks.

    .venv/bin/python bench/hostile.py [--scale 1.0] [--only sync_flood,...]

Spawns `hamlet serve` (SQLite, loopback only) with two provisioned tenants:
`evil.bench`, where a hostile user runs each attack in turn, and
`good.bench`, whose user keeps sending a message and running an
incremental /sync. For every attack it prints the neighbour's send and sync
p50/p99 while idle and under the attack, what the attack's requests got
(status counts; 0 is a connection error, and for slowloris 1 counts a
connection opened and held), the CPU seconds the server spent meanwhile
(neighbour included; steadier than latency on a busy machine) and whether
the process stayed up. Login and UIA
use the tenant's default bcrypt cost (12), as an attacker would meet it. Every loop is bounded;
`--scale` multiplies the attack sizes. Prints numbers only; asserts nothing.

The neighbour is sampled from its own process, as a neighbour's client is
another machine: the attacker's client work (reading 18 MB responses) must
not show up as the neighbour's latency.
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import concurrent.futures
import json
import os
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import aiohttp

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.tenants import Server, p, provision, serving  # noqa: E402

V3 = "/_matrix/client/v3"
#: Responses larger than this are read but not parsed: attacks never need them.
BIG_RESPONSE = 1_000_000
GENEROUS = {"per_second": 1000, "burst_count": 1000}
# Hostile-friendly on purpose: only the caps under test stand in the way.
TENANT_CONFIG: dict[str, Any] = {
    "enable_registration": True,
    "enable_registration_without_verification": True,
    "rc_registration": GENEROUS,
    "rc_message": GENEROUS,
    "rc_login": {"address": GENEROUS, "account": GENEROUS, "failed_attempts": GENEROUS},
}


class Client:
    def __init__(self, session: aiohttp.ClientSession, port: int, host: str) -> None:
        self.session = session
        self.port = port
        self.host = host
        self.token = ""
        self.user_id = ""
        self.device_id = ""

    async def call(
        self, method: str, path: str, body: Any = None, *, raw: bytes | None = None
    ) -> tuple[int, Any]:
        headers = {"Host": self.host}
        if self.token:
            headers["Authorization"] = f"Bearer {self.token}"
        data = raw if raw is not None else (json.dumps(body) if body is not None else None)
        try:
            async with self.session.request(
                method, f"http://127.0.0.1:{self.port}{V3}{path}", data=data, headers=headers
            ) as resp:
                payload = await resp.read()
                if len(payload) > BIG_RESPONSE:
                    return resp.status, None
                try:
                    return resp.status, json.loads(payload)
                except ValueError:
                    return resp.status, None
        except aiohttp.ClientError:
            return 0, None

    async def register(self, name: str, password: str = "hostile-pw-1") -> None:
        body = {"username": name, "password": password, "auth": {"type": "m.login.dummy"}}
        status, out = await self.call("POST", "/register", body)
        if status != 200:
            raise RuntimeError(f"register {name}@{self.host}: {status} {out}")
        self.token, self.user_id, self.device_id = (
            out["access_token"],
            out["user_id"],
            out["device_id"],
        )


async def neighbour_sample(good: Client, room: str, seconds: float) -> dict[str, list[float]]:
    """Send a message and an incremental /sync in a loop for `seconds`."""
    sends: list[float] = []
    syncs: list[float] = []
    status, out = await good.call("GET", "/sync?timeout=0")
    since = out["next_batch"] if status == 200 else ""
    deadline = time.perf_counter() + seconds
    n = 0
    while time.perf_counter() < deadline and n < 2000:
        n += 1
        started = time.perf_counter()
        await good.call(
            "PUT",
            f"/rooms/{room}/send/m.room.message/s{time.time_ns()}",
            {
                "msgtype": "m.text",
                "body": "hello",
            },
        )
        sends.append((time.perf_counter() - started) * 1000)
        started = time.perf_counter()
        status, out = await good.call("GET", f"/sync?timeout=0&since={since}")
        syncs.append((time.perf_counter() - started) * 1000)
        if status == 200:
            since = out["next_batch"]
    return {"send": sends, "sync": syncs}


def sample_in_process(port: int, host: str, token: str, room: str, seconds: float) -> Any:
    """`neighbour_sample` on a loop and connection pool of this process's own."""

    async def sample() -> dict[str, list[float]]:
        async with aiohttp.ClientSession() as session:
            good = Client(session, port, host)
            good.token = token
            return await neighbour_sample(good, room, seconds)

    return asyncio.run(sample())


def cpu_seconds(pid: int) -> float:
    """CPU time (user + system) the process has used: what an attack cost the
    server, unlike latency hardly moved by other load on the machine."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def summary(samples: dict[str, list[float]]) -> dict[str, float]:
    return {
        f"{kind}_{q}": p(values, quantile) if values else -1.0
        for kind, values in samples.items()
        for q, quantile in (("p50", 0.5), ("p99", 0.99))
    }


Attack = Callable[[Client, Client, collections.Counter[int]], Awaitable[None]]


async def in_batches(n: int, width: int, one: Callable[[int], Awaitable[int]], c: Any) -> None:
    for start in range(0, n, width):
        for status in await asyncio.gather(*(one(i) for i in range(start, min(n, start + width)))):
            c[status] += 1


def attacks(scale: float, server: Server) -> dict[str, Attack]:
    def n(base: int) -> int:
        return max(1, int(base * scale))

    async def to_device(evil: Client, victim: Client, c: collections.Counter[int]) -> None:
        pad = "x" * 60_000

        async def one(i: int) -> int:
            messages = {victim.user_id: {victim.device_id: {"pad": pad}}}
            body = {"messages": messages}
            return (await evil.call("PUT", f"/sendToDevice/m.flood/t{i}", body))[0]

        await in_batches(n(300), 20, one, c)

    async def devices(evil: Client, victim: Client, c: collections.Counter[int]) -> None:
        body = {
            "type": "m.login.password",
            "identifier": {"type": "m.id.user", "user": evil.user_id},
            "password": "hostile-pw-1",
        }
        anonymous = Client(evil.session, evil.port, evil.host)

        async def one(i: int) -> int:
            return (await anonymous.call("POST", "/login", body))[0]

        await in_batches(n(600), 20, one, c)
        # Beyond the device cap the oldest devices (the attacker's first among
        # them) are gone: carry on with a fresh one.
        status, out = await anonymous.call("POST", "/login", body)
        if status == 200:
            evil.token, evil.device_id = out["access_token"], out["device_id"]

    async def account_data(evil: Client, victim: Client, c: collections.Counter[int]) -> None:
        async def one(i: int) -> int:
            path = f"/user/{evil.user_id}/account_data/flood.{i}"
            return (await evil.call("PUT", path, {"pad": "y" * 60_000}))[0]

        await in_batches(n(300), 20, one, c)

    async def push_rules(evil: Client, victim: Client, c: collections.Counter[int]) -> None:
        # As many conditions as a rule may have, each a pattern that made the
        # old backtracking matcher stall on a long message.
        conditions = [
            {"kind": "event_match", "key": "content.body", "pattern": f"*{i}*a*a*a*a*a*a*a*b"}
            for i in range(32)
        ]

        async def one(i: int) -> int:
            body = {"conditions": conditions, "actions": ["notify"]}
            return (await evil.call("PUT", f"/pushrules/global/override/bomb{i}", body))[0]

        await in_batches(n(100), 10, one, c)
        # A room-mate's long messages make every rule run during evil's syncs.
        _, out = await evil.call("POST", "/createRoom", {"preset": "public_chat"})
        room = out["room_id"]
        await victim.call("POST", f"/join/{room}", {})
        for i in range(n(10)):
            await victim.call(
                "PUT", f"/rooms/{room}/send/m.room.message/bomb{i}", {"body": "a" * 40_000}
            )

        async def sync(i: int) -> int:
            return (await evil.call("GET", "/sync?timeout=0"))[0]

        await in_batches(n(20), 2, sync, c)

    async def deep_json(evil: Client, victim: Client, c: collections.Counter[int]) -> None:
        deep = b'{"a":' + b"[" * 100_000 + b"]" * 100_000 + b"}"

        async def one(i: int) -> int:
            path = f"/user/{evil.user_id}/account_data/deep{i}"
            return (await evil.call("PUT", path, raw=deep))[0]

        await in_batches(n(40), 5, one, c)

    async def slowloris(evil: Client, victim: Client, c: collections.Counter[int]) -> None:
        held: list[asyncio.StreamWriter] = []
        try:
            for _ in range(n(400)):
                try:
                    _, writer = await asyncio.open_connection("127.0.0.1", server.port)
                except OSError:
                    c[0] += 1
                    continue
                writer.write(b"GET /_matrix/client/versions HTTP/1.1\r\nHost: evil.bench\r\n")
                held.append(writer)
                c[1] += 1
            await asyncio.sleep(5)
        finally:
            for writer in held:
                writer.close()

    async def sync_flood(evil: Client, victim: Client, c: collections.Counter[int]) -> None:
        async def one(i: int) -> int:
            return (await evil.call("GET", "/sync?timeout=0&full_state=true"))[0]

        await in_batches(n(400), 40, one, c)

    async def uia_guesses(evil: Client, victim: Client, c: collections.Counter[int]) -> None:
        async def one(i: int) -> int:
            _, out = await evil.call("POST", "/account/deactivate", {})
            session = out.get("session") if isinstance(out, dict) else None
            auth = {
                "type": "m.login.password",
                "identifier": {"type": "m.id.user", "user": evil.user_id},
                "password": f"guess-{i}",
                "session": session,
            }
            return (await evil.call("POST", "/account/deactivate", {"auth": auth}))[0]

        await in_batches(n(200), 50, one, c)

    return {
        "to_device_flood": to_device,
        "device_flood": devices,
        "account_data_flood": account_data,
        "push_rule_bomb": push_rules,
        "deep_json": deep_json,
        "slowloris": slowloris,
        "sync_flood": sync_flood,
        "uia_guesses": uia_guesses,
    }


async def run(root: Path, scale: float, only: set[str] | None = None) -> dict[str, Any]:
    results: dict[str, Any] = {}
    async with serving(root, 100) as (session, server):
        for name in ("evil.bench", "good.bench"):
            await provision(session, server, name, TENANT_CONFIG)
        evil = Client(session, server.port, "evil.bench")
        victim = Client(session, server.port, "evil.bench")
        good = Client(session, server.port, "good.bench")
        await evil.register("mallory")
        await victim.register("victim")
        await good.register("neighbour")
        _, out = await good.call("POST", "/createRoom", {})
        room = out["room_id"]
        loop = asyncio.get_running_loop()
        pool = concurrent.futures.ProcessPoolExecutor(1)

        async def neighbour(seconds: float) -> dict[str, list[float]]:
            args = (server.port, good.host, good.token, room, seconds)
            result: dict[str, list[float]] = await loop.run_in_executor(
                pool, sample_in_process, *args
            )
            return result

        results["idle"] = summary(await neighbour(3.0))
        for name, attack in attacks(scale, server).items():
            if only is not None and name not in only:
                continue
            statuses: collections.Counter[int] = collections.Counter()
            started = time.perf_counter()
            cpu_before = cpu_seconds(server.proc.pid)
            client_cpu_before = time.process_time()
            attacking = asyncio.ensure_future(attack(evil, victim, statuses))
            samples = await neighbour(1.0)
            while not attacking.done():
                more = await neighbour(0.5)
                for kind, values in more.items():
                    samples[kind].extend(values)
            await attacking
            measured = summary(samples)
            idle = results["idle"]
            results[name] = {
                **measured,
                # The target: each within 2x of the neighbour's idle p99.
                "vs_idle_p99": {
                    kind: round(measured[f"{kind}_p99"] / idle[f"{kind}_p99"], 2)
                    for kind in ("send", "sync")
                },
                "attack_s": round(time.perf_counter() - started, 2),
                "server_cpu_s": round(cpu_seconds(server.proc.pid) - cpu_before, 2),
                # The attacker's own client, on the same cores as the server.
                "attacker_cpu_s": round(time.process_time() - client_cpu_before, 2),
                "statuses": dict(sorted(statuses.items())),
                "process_up": server.proc.poll() is None,
            }
            print(f"{name}: {results[name]}", file=sys.stderr)
            if server.proc.poll() is not None:
                break
        results["process_up_at_end"] = server.proc.poll() is None
        pool.shutdown()
    return results


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--scale", type=float, default=1.0)
    parser.add_argument(
        "--only",
        help="comma-separated attacks to run (in the usual order; the sync flood "
        "reads what the account data flood stored)",
    )
    args = parser.parse_args()
    only = set(args.only.split(",")) if args.only else None
    with tempfile.TemporaryDirectory(prefix="hamlet-hostile-") as tmp:
        results = await run(Path(tmp), args.scale, only)
    print(json.dumps(results))


if __name__ == "__main__":
    os.environ.setdefault("PYTHONUNBUFFERED", "1")
    asyncio.run(main())
