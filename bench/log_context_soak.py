"""Which logging context every log line of a busy multi-tenant server carries.

    .venv/bin/python bench/log_context_soak.py [--seconds 60]

Starts a real `hamlet serve` (logging at DEBUG to a file, in a temporary
directory), provisions two tenants through the control API and drives both
for the given time: shared-secret registration, password login,
createRoom, joins, messages, long-poll /sync that returns on news, /sync
that times out (a user in no room), abandoned polls (the client hangs up
mid-poll), typing notifications left to expire, and now and then a
request head aiohttp refuses itself. Then it reads the log back and prints
one JSON object:

* lines:             log records in all
* per_context:       records per server_name
* sentinel:          records logged outside any context, and
* sentinel_kinds:    each distinct one (logger and message, digits masked)
* wrong_tenant:      records under one tenant that name the other, and
* wrong_tenant_examples
* finished_context:  records logged during the workload under a context
                     that had ended before it (`startup`, `provision-*`)
* cancelled_polls:   requests logged 499 (the abandoned polls)

Prints numbers only; asserts nothing.
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import json
import re
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import aiohttp

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from hamlet.runtime.logcontext import SENTINEL_SERVER_NAME
from tests.support.serve_process import V3, ServeProcess, main_config

TENANTS = ("a.soak", "b.soak")
USERS = ("alice", "bob", "carol")
LURKER = "lurker"  # in no room: every long-poll of theirs times out
CANCELLED_POLL = ' 499 "GET /_matrix/client/v3/sync"'
RECORD = re.compile(
    r"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d+ - (?P<server>\S+) - (?P<logger>\S+) - \d+ - "
    r"(?P<level>\w+) - (?P<request>\S+) - (?P<message>.*)$"
)


class Tenant:
    def __init__(self, server: ServeProcess, session: aiohttp.ClientSession, name: str) -> None:
        self.server = server
        self.session = session
        self.name = name
        self.tokens: dict[str, str] = {}
        self.room_id = ""

    async def call(
        self, method: str, path: str, body: Any = None, user: str | None = None, **query: str
    ) -> tuple[int, Any]:
        headers = {"Host": self.name}
        if user is not None:
            headers["Authorization"] = f"Bearer {self.tokens[user]}"
        url = f"http://127.0.0.1:{self.server.port}{path}"
        async with self.session.request(
            method, url, json=body, headers=headers, params=query or None
        ) as resp:
            return resp.status, await resp.json(content_type=None)

    async def setup(self) -> None:
        for user in (*USERS, LURKER):
            await asyncio.to_thread(self.server.register, self.name, user, "pw")
            status, body = await self.call(
                "POST",
                f"{V3}/login",
                {
                    "type": "m.login.password",
                    "identifier": {"type": "m.id.user", "user": user},
                    "password": "pw",
                },
            )
            assert status == 200, body
            self.tokens[user] = body["access_token"]
        status, body = await self.call(
            "POST", f"{V3}/createRoom", {"preset": "public_chat", "name": "soak"}, "alice"
        )
        assert status == 200, body
        self.room_id = body["room_id"]
        for user in USERS[1:]:
            status, body = await self.call("POST", f"{V3}/join/{self.room_id}", {}, user)
            assert status == 200, body

    async def talk(self, until: float) -> int:
        sent = 0
        while time.monotonic() < until:
            user = USERS[sent % len(USERS)]
            await self.call(
                "PUT",
                f"{V3}/rooms/{self.room_id}/typing/@{user}:{self.name}",
                {"typing": True, "timeout": 1500},
                user,
            )
            await self.call(
                "PUT",
                f"{V3}/rooms/{self.room_id}/send/m.room.message/t{sent}",
                {"msgtype": "m.text", "body": f"message {sent}"},
                user,
            )
            sent += 1
            # Pauses longer than the typing timeout now and then, so typing expires.
            await asyncio.sleep(2.0 if sent % 5 == 0 else 0.3)
        return sent

    async def poll(self, user: str, until: float, timeout_ms: int) -> int:
        status, body = await self.call("GET", f"{V3}/sync", user=user, timeout="0")
        since = body["next_batch"]
        polls = 0
        while time.monotonic() < until:
            status, body = await self.call(
                "GET", f"{V3}/sync", user=user, since=since, timeout=str(timeout_ms)
            )
            if status == 200:
                since = body["next_batch"]
            polls += 1
        return polls

    async def abandon_polls(self, until: float) -> int:
        """Long-polls whose client hangs up after a moment (the lurker's: nothing wakes them)."""
        _status, body = await self.call("GET", f"{V3}/sync", user=LURKER, timeout="0")
        since = body["next_batch"]
        count = 0
        while time.monotonic() < until:
            _reader, writer = await asyncio.open_connection("127.0.0.1", self.server.port)
            writer.write(
                f"GET {V3}/sync?since={since}&timeout=30000 HTTP/1.1\r\nHost: {self.name}\r\n"
                f"Authorization: Bearer {self.tokens[LURKER]}\r\n\r\n".encode()
            )
            await writer.drain()
            await asyncio.sleep(0.5)
            writer.close()
            count += 1
            await asyncio.sleep(1.5)
        return count

    async def malformed(self, until: float) -> int:
        """Request heads aiohttp refuses before any handler runs (it logs them itself)."""
        count = 0
        while time.monotonic() < until:
            reader, writer = await asyncio.open_connection("127.0.0.1", self.server.port)
            writer.write(
                f"GET {V3}/sync HTTP/1.1\r\nHost: {self.name}\r\nno colon\r\n\r\n".encode()
            )
            await reader.read()
            writer.close()
            count += 1
            await asyncio.sleep(5)
        return count


async def drive(server: ServeProcess, seconds: float) -> dict[str, Any]:
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=60)) as session:
        tenants = [Tenant(server, session, name) for name in TENANTS]
        for tenant in tenants:
            await asyncio.to_thread(server.provision, tenant.name)
            await tenant.setup()
        mark = len(server.log_lines())
        until = time.monotonic() + seconds
        jobs = []
        for tenant in tenants:
            jobs.append(tenant.talk(until))
            jobs += [tenant.poll(user, until, 5000) for user in USERS]
            jobs.append(tenant.poll(LURKER, until, 2000))
            jobs.append(tenant.abandon_polls(until))
        counts, refused = await asyncio.gather(
            asyncio.gather(*jobs), asyncio.gather(*(t.malformed(until) for t in tenants))
        )
        malformed = sum(refused)
    per_tenant = len(counts) // len(TENANTS)
    return {
        "log_mark": mark,
        "malformed_requests": malformed,
        "messages": sum(counts[i * per_tenant] for i in range(len(TENANTS))),
        "polls": sum(
            sum(counts[i * per_tenant + 1 : i * per_tenant + 1 + len(USERS) + 1])
            for i in range(len(TENANTS))
        ),
        "abandoned_polls": sum(counts[(i + 1) * per_tenant - 1] for i in range(len(TENANTS))),
    }


def records(lines: list[str]) -> list[dict[str, str]]:
    """One dict per log record; continuation lines (tracebacks) belong to the one before."""
    out: list[dict[str, str]] = []
    for line in lines:
        match = RECORD.match(line)
        if match is not None:
            out.append(match.groupdict())
        elif out:
            out[-1]["message"] += "\n" + line
    return out


def analyse(recs: list[dict[str, str]], during: list[dict[str, str]]) -> dict[str, Any]:
    per_context = collections.Counter(r["server"] for r in recs)
    sentinel = [r for r in recs if r["server"] == SENTINEL_SERVER_NAME]
    kinds = collections.Counter(
        f"{r['logger']}: {re.sub(r'[0-9]+', 'N', r['message'].splitlines()[0])[:90]}"
        for r in sentinel
    )
    wrong = [
        r
        for r in recs
        if r["server"] in TENANTS
        and any(other in r["message"] for other in TENANTS if other != r["server"])
    ]
    return {
        "lines": len(recs),
        "per_context": dict(per_context),
        "sentinel": len(sentinel),
        "sentinel_kinds": dict(kinds),
        "wrong_tenant": len(wrong),
        "wrong_tenant_examples": [f"{r['server']} {r['message'][:120]}" for r in wrong[:5]],
        "finished_context": sum(
            1 for r in during if r["request"] == "startup" or r["request"].startswith("provision-")
        ),
        "cancelled_polls": sum(1 for r in recs if CANCELLED_POLL in r["message"]),
    }


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--seconds", type=float, default=60.0)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="hamlet-soak-") as tmp:
        root = Path(tmp)
        server = ServeProcess(root, main_config(root), level="DEBUG")
        server.start()
        try:
            workload = asyncio.run(drive(server, args.seconds))
        finally:
            exit_code = server.stop()
        mark = workload.pop("log_mark")
        lines = server.log_lines()
        result = {"seconds": args.seconds, **workload, "exit_code": exit_code}
        result.update(analyse(records(lines), records(lines[mark:])))
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
