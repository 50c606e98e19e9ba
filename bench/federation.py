"""Federation: inbound `/send` throughput and joining a big remote room, Hamlet vs Synapse.

    .venv/bin/python bench/federation.py [--pdus 1000] [--members 1000]
        [--synapse-python PATH] [--skip-synapse]

A scripted remote server (bench/fake_remote.py: its own signing key and
TLS, X-Matrix-signed requests, signed and hashed events with auth events)
is resident in rooms that each receiver's user joins over federation.
For Hamlet on SQLite (a `hamlet serve` process federating as
`127.0.0.1:<port>` over TLS) and, when a Python with `matrix-synapse` is
given or found (HAMLET_SYNAPSE_PYTHON, .venv-synapse, /tmp/synapse-venv),
Synapse on SQLite (tests/interop/synapse.py), in the same run:

* send_pdus_per_s: `--pdus` messages of the remote user, built and signed
  beforehand, PUT as transactions of 50 into a room the receiver's user
  joined, timed until the receiver's user can read the last one
  (`GET /rooms/{id}/event/{id}`). Hamlet answers `/send` once the PDUs are
  persisted; Synapse once they are staged, persisting them after, and it
  drops a room's staged events when 100 wait: so the sender keeps at most
  99 PDUs unreadable (`WINDOW`), which holds Hamlet back never and keeps
  Synapse busy without tripping that. `send_cpu_ms_per_pdu` is the
  receiver's CPU time over it, `persisted` the messages counted back
  through `/messages`, `refused` the PDUs `/send` answered with an error.
* join_s: the receiver's user joins, by alias, a room where the remote
  server has `--members` joined users (make_join, send_join answering the
  whole state with its auth chain: members are never omitted, so Synapse
  does a full join as Hamlet does); `joined_members` is the count after,
  `join_cpu_s` the receiver's CPU time and `join_rss_growth_mb` its
  resident memory growth over the join.

One JSON line per server, then one with the Hamlet / Synapse ratios
(throughput: above 1 is Hamlet faster; join time: below 1 is Hamlet
faster). Prints numbers only; asserts nothing.

Measured on the shared 2-core machine, defaults (1,000 PDUs, 1,000
members). Other jobs kept the load average at 7 to 12, so wall times move
by a factor of two between runs; the receivers' CPU times are steadier.

    before the join and /send fixes that followed this bench (load 7):
    hamlet-sqlite   51.8 PDUs/s, 7.1 ms CPU/PDU; join 6.39 s, 2.34 s CPU, +4.8 MB
    synapse-sqlite  11.6 PDUs/s, 23.9 ms CPU/PDU; join 3.25 s, 0.85 s CPU, +8.9 MB

    after (load 12):
    hamlet-sqlite   61.1 PDUs/s, 4.0 ms CPU/PDU; join 2.56 s, 0.34 s CPU, +6.5 MB
    synapse-sqlite   8.0 PDUs/s, 23.5 ms CPU/PDU; join 5.94 s, 0.83 s CPU, +8.8 MB
    Hamlet / Synapse: 7.6x the PDUs/s at 0.17x the CPU per PDU;
    join 0.43x the time, 0.41x the CPU
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import quote

import aiohttp

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.chat import (  # noqa: E402
    SECRET,
    Client,
    find_synapse_python,
    free_port,
    hamlet_config,
    served,
)
from bench.fake_remote import FakeRemote  # noqa: E402
from tests.interop.synapse import (  # noqa: E402
    REGISTRATION_SECRET,
    SYNAPSE_PYTHON,
    start_synapse,
)
from tests.support.tls import SelfSigned, make_self_signed  # noqa: E402

PER_TRANSACTION = 50
V3 = "/_matrix/client/v3"
#: How long the receiver may take to show the last message after the last `/send`.
PERSIST_DEADLINE_S = 300.0
#: Between two looks for a message (`GET .../event/{id}`, a few ms for the receiver).
POLL_S = 0.05
#: PDUs sent and not yet readable at most: Synapse answers `/send` once the
#: PDUs are staged, and drops its staged events of a room when 100 wait
#: (`prune_staged_events_in_room`, to refetch them piecemeal later), so a
#: sender that ran further ahead would measure that instead.
WINDOW = 99


@dataclass
class Receiver:
    label: str
    server_name: str
    client_base: str
    pid: int
    secret: str


def cpu_s(pid: int) -> float:
    """CPU time (user + system, all threads) the process has used: on a
    shared machine a steadier figure than the wall time."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


async def is_persisted(user: Client, room_id: str, event_id: str) -> bool:
    """Whether the receiver's user can read the event (404 until persisted)."""
    path = f"{V3}/rooms/{quote(room_id)}/event/{quote(event_id)}"
    headers = {"Authorization": f"Bearer {user.token}"}
    async with user.session.get(f"{user.base}{path}", headers=headers) as resp:
        await resp.read()
        return resp.status == 200


async def wait_persisted(user: Client, room_id: str, event_id: str) -> bool:
    deadline = time.monotonic() + PERSIST_DEADLINE_S
    while not await is_persisted(user, room_id, event_id):
        if time.monotonic() > deadline:
            return False
        await asyncio.sleep(POLL_S)
    return True


async def count_messages(user: Client, room_id: str) -> int:
    """The room's messages, paginated back through `/messages`."""
    count, since = 0, ""
    flt = quote(json.dumps({"types": ["m.room.message"]}))
    while True:
        page = await user.call(
            "GET", f"{V3}/rooms/{quote(room_id)}/messages?dir=b&limit=500&filter={flt}{since}"
        )
        count += len(page.get("chunk", []))
        end = page.get("end")
        if not page.get("chunk") or end is None:
            return count
        since = f"&from={quote(end)}"


async def inbound_send(
    remote: FakeRemote, receiver: Receiver, user: Client, pdus: int
) -> dict[str, Any]:
    room_id, alias = remote.create_room(f"send-{receiver.label}", members=1)
    await user.call("POST", f"{V3}/join/{quote(alias)}", {})
    transactions = remote.messages(room_id, pdus, PER_TRANSACTION)
    order = [e.event_id for events in transactions for e in events]
    refused = sent = 0
    cpu = cpu_s(receiver.pid)
    start = time.perf_counter()
    for events in transactions:
        # Messages chain one after the other, so the receiver persists them
        # in order: the one `WINDOW` back being readable bounds the rest.
        if sent + len(events) > WINDOW:
            await wait_persisted(user, room_id, order[sent + len(events) - WINDOW - 1])
        results = await remote.send_transaction(receiver.server_name, events)
        refused += sum(1 for r in results.values() if "error" in r)
        sent += len(events)
    await wait_persisted(user, room_id, order[-1])
    elapsed = time.perf_counter() - start
    cpu = cpu_s(receiver.pid) - cpu
    return {
        "send_pdus_per_s": round(pdus / elapsed, 1),
        "send_s": round(elapsed, 2),
        "send_cpu_ms_per_pdu": round(cpu * 1000 / pdus, 2),
        "persisted": await count_messages(user, room_id),
        "refused": refused,
    }


async def join_big_room(
    remote: FakeRemote, receiver: Receiver, user: Client, members: int
) -> dict[str, Any]:
    room_id, alias = remote.create_room(f"join-{receiver.label}", members=members)
    before, cpu = rss_mb(receiver.pid), cpu_s(receiver.pid)
    start = time.perf_counter()
    await user.call("POST", f"{V3}/join/{quote(alias)}", {})
    elapsed = time.perf_counter() - start
    after, cpu = rss_mb(receiver.pid), cpu_s(receiver.pid) - cpu
    joined = await user.call("GET", f"{V3}/rooms/{quote(room_id)}/joined_members")
    return {
        "join_s": round(elapsed, 2),
        "join_cpu_s": round(cpu, 2),
        "joined_members": len(joined["joined"]),
        "join_rss_growth_mb": round(after - before, 1),
    }


async def workload(
    remote: FakeRemote, receiver: Receiver, pdus: int, members: int
) -> dict[str, Any]:
    timeout = aiohttp.ClientTimeout(total=PERSIST_DEADLINE_S)
    async with aiohttp.ClientSession(timeout=timeout) as session:
        user = Client(session, receiver.client_base)
        await user.register("bencher", receiver.secret)
        result = {"server": receiver.label}
        result.update(await inbound_send(remote, receiver, user, pdus))
        result.update(await join_big_room(remote, receiver, user, members))
        if remote.unserved:
            result["unserved_requests"] = sorted(set(remote.unserved))
            remote.unserved.clear()
        return result


def hamlet_receiver(root: Path, tls: SelfSigned) -> tuple[list[str], str, str]:
    """`hamlet serve` on SQLite in `root`, federating over TLS on loopback:
    its command line, client API base URL and server name."""
    fed_port, client_port = free_port(), free_port()
    loopback = ["127.0.0.1"]
    config = hamlet_config(
        root,
        client_port,
        {"name": "sqlite3", "args": {"database": str(root / "hs.db")}},
        server_name=f"127.0.0.1:{fed_port}",
        listeners=[
            {
                "port": fed_port,
                "bind_addresses": loopback,
                "tls": True,
                "resources": [{"names": ["federation"]}],
            },
            {"port": client_port, "bind_addresses": loopback, "resources": [{"names": ["client"]}]},
        ],
        tls_certificate_path=str(tls.certificate),
        tls_private_key_path=str(tls.private_key),
        federation_verify_certificates=False,
        federation_ip_range_blacklist=[],
        rc_federation={"window_size": 1000, "sleep_limit": 1000, "reject_limit": 1000},
    )
    argv = [sys.executable, "-m", "hamlet.cli", "serve", "--config", str(config)]
    return argv, f"http://127.0.0.1:{client_port}", f"127.0.0.1:{fed_port}"


async def run_hamlet(
    root: Path, tls: SelfSigned, remote: FakeRemote, pdus: int, members: int
) -> dict[str, Any]:
    argv, base, server_name = hamlet_receiver(root, tls)
    async with served(argv, base) as proc:
        receiver = Receiver("hamlet-sqlite", server_name, base, proc.pid, SECRET)
        return await workload(remote, receiver, pdus, members)


async def run_synapse(
    python: str, root: Path, tls: SelfSigned, remote: FakeRemote, pdus: int, members: int
) -> dict[str, Any]:
    synapse = await asyncio.to_thread(
        start_synapse, root, tls, python=Path(python), log_level="WARNING"
    )
    try:
        receiver = Receiver(
            "synapse-sqlite",
            synapse.server_name,
            f"http://127.0.0.1:{synapse.client_port}",
            synapse.process.pid,
            REGISTRATION_SECRET,
        )
        return await workload(remote, receiver, pdus, members)
    finally:
        synapse.stop()


def ratios(ours: dict[str, Any], theirs: dict[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {"ratio": f"{ours['server']} / {theirs['server']}"}
    for key in ("send_pdus_per_s", "send_cpu_ms_per_pdu", "join_s", "join_cpu_s"):
        if theirs.get(key):
            out[key] = round(ours[key] / theirs[key], 2)
    return out


async def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--pdus", type=int, default=1000, help="messages sent over /send")
    parser.add_argument("--members", type=int, default=1000, help="joined users of the big room")
    parser.add_argument("--synapse-python", default=None)
    parser.add_argument("--skip-synapse", action="store_true", help="Hamlet only")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="hamlet-fedbench-") as tmp:
        root = Path(tmp)
        tls = make_self_signed(root / "tls")
        remote = FakeRemote(tls, free_port())
        await remote.start()
        try:
            (root / "hamlet").mkdir()
            ours = await run_hamlet(root / "hamlet", tls, remote, args.pdus, args.members)
            print(json.dumps(ours), flush=True)
            if args.skip_synapse:
                return
            python = find_synapse_python(args.synapse_python) or find_synapse_python(
                str(SYNAPSE_PYTHON)
            )
            if python is None:
                print(json.dumps({"synapse": "not installed; pass --synapse-python"}), flush=True)
                return
            theirs = await run_synapse(
                python, root / "synapse", tls, remote, args.pdus, args.members
            )
            print(json.dumps(theirs), flush=True)
            print(json.dumps(ratios(ours, theirs)), flush=True)
        finally:
            await remote.stop()


if __name__ == "__main__":
    asyncio.run(main())
