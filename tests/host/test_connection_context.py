"""Connections start outside any logging context, whoever opened the listener.

asyncio hands the context current when a server starts listening to every
connection it accepts. The host opens its listeners inside its `startup`
context and a tenant's own listener inside `provision-<name>`; the
requests and aiohttp's own error lines must still be logged as the request
(inside the front door) or as the sentinel (outside it), never as those.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

import aiohttp

from hamlet.host.process import HostProcess
from hamlet.runtime.logcontext import SENTINEL_REQUEST, SENTINEL_SERVER_NAME
from tests.host.test_tenants import SECRET, main_config
from tests.support.harness import RecordingHandler
from tests.support.postgres import PostgresCluster

VERSIONS = "/_matrix/client/versions"


async def malformed_request(port: int, host: str) -> bytes:
    """A request head aiohttp refuses itself (a header line without a colon)."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(f"GET {VERSIONS} HTTP/1.1\r\nHost: {host}\r\nno colon here\r\n\r\n".encode())
    await writer.drain()
    status_line = await reader.readline()
    writer.close()
    await writer.wait_closed()
    return status_line


def _context(record: object) -> tuple[str, str]:
    return record.server_name, record.request  # type: ignore[attr-defined]


async def test_requests_and_aiohttp_errors_never_log_as_startup_or_provisioning(
    tmp_path: Path,
    engine: str,
    pg_cluster: PostgresCluster | None,
    log_records: RecordingHandler,
) -> None:
    process = HostProcess([main_config(tmp_path, engine, pg_cluster)])
    await process.start()  # its listeners open inside the `startup` context
    session = aiohttp.ClientSession()
    try:
        control = f"http://127.0.0.1:{process.control_port}/tenants"
        async with session.post(
            control,
            json={"server_name": "c.test", "listen": {"port": 0}},
            headers={"Authorization": f"Bearer {SECRET}"},
        ) as resp:
            assert resp.status == 200
            own_port = (await resp.json())["listen_port"]  # opened inside `provision-c.test`
        log_records.records.clear()

        shared = process.bound_ports[0]
        for port, host in ((shared, "main.test"), (shared, "c.test"), (own_port, "c.test")):
            async with session.get(f"http://127.0.0.1:{port}{VERSIONS}", headers={"Host": host}):
                pass
            assert b" 400 " in await malformed_request(port, host)
    finally:
        await session.close()
        await process.stop()

    leaked = [
        (_context(r), r.getMessage())
        for r in log_records.records
        if _context(r)[1] == "startup" or _context(r)[1].startswith("provision-")
    ]
    assert leaked == []
    served = log_records.matching("Processed request")
    assert sorted(_context(r)[0] for r in served) == ["c.test", "c.test", "main.test"]
    assert all(_context(r)[1].startswith("GET-") for r in served)
    errors = log_records.matching("Malformed HTTP request")
    assert len(errors) == 3
    assert {_context(r) for r in errors} == {(SENTINEL_SERVER_NAME, SENTINEL_REQUEST)}
