"""One client cannot hold the process's connections: caps per IP and in all, timeouts."""

from __future__ import annotations

import asyncio
import dataclasses
import resource
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Any

from hamlet.config import HomeServerConfig, ListenerConfig
from hamlet.host.connections import default_max_connections
from hamlet.host.process import HostProcess
from tests.conftest import advance

MakeConfig = Callable[..., HomeServerConfig]
REQUEST = b"GET /_matrix/client/versions HTTP/1.1\r\nHost: solo.test\r\n\r\n"
Conn = tuple[asyncio.StreamReader, asyncio.StreamWriter]


@asynccontextmanager
async def serving(make_hs_config: MakeConfig, **limits: Any) -> AsyncIterator[HostProcess]:
    config = make_hs_config("solo.test", limits=limits)
    process = HostProcess([dataclasses.replace(config, listeners=(ListenerConfig(port=0),))])
    await process.start()
    try:
        yield process
    finally:
        await process.stop()


async def connect(process: HostProcess, source: str = "127.0.0.1") -> Conn:
    return await asyncio.open_connection(
        "127.0.0.1", process.bound_ports[0], local_addr=(source, 0)
    )


async def served(conn: Conn) -> bool:
    """Send a request; True if a 200 comes back, False if the server hung up."""
    reader, writer = conn
    try:
        writer.write(REQUEST)
        await writer.drain()
        status = await reader.readline()
        if not status:
            return False
        length = 0
        while (line := await reader.readline()) not in (b"\r\n", b""):
            name, _, value = line.decode().partition(":")
            if name.lower() == "content-length":
                length = int(value)
        await reader.readexactly(length)
    except (ConnectionError, asyncio.IncompleteReadError):
        return False
    return status.startswith(b"HTTP/1.1 200")


async def hung_up(conn: Conn) -> bool:
    try:
        return await conn[0].read(1) == b""
    except ConnectionError:
        return True


@asynccontextmanager
async def served_connections(process: HostProcess, n: int) -> AsyncIterator[list[Conn]]:
    """`n` connections from 127.0.0.1, each with a request served."""
    conns: list[Conn] = []
    try:
        for _ in range(n):
            conns.append(await connect(process))
            assert await served(conns[-1])
        yield conns
    finally:
        for _, writer in conns:
            writer.close()


async def test_one_ip_is_capped_and_others_are_served(make_hs_config: MakeConfig) -> None:
    async with serving(make_hs_config, max_connections_per_ip=20) as process:
        async with served_connections(process, 20) as mine:
            extra = [await connect(process) for _ in range(5)]
            for conn in extra:
                assert await hung_up(conn)
            assert process.connections.connections_of("127.0.0.1") == 20
            assert process.connections.refused == 5
            # Another address is served, and so are the capped IP's open connections.
            assert await served(await connect(process, "127.0.0.2"))
            assert await served(mine[0])


async def test_at_the_global_cap_the_greediest_ip_gives_way(make_hs_config: MakeConfig) -> None:
    async with serving(make_hs_config, max_connections=10) as process:
        async with served_connections(process, 10) as greedy:
            other = await connect(process, "127.0.0.2")
            assert await served(other)
            # The greedy IP's oldest connection made room; a newcomer of it is refused.
            assert await hung_up(greedy[0])
            assert await served(greedy[1])
            assert await hung_up(await connect(process))
            assert process.connections.shed == 1 and process.connections.refused == 1
            assert process.connections.open == 10


async def test_an_incomplete_request_head_is_closed(make_hs_config: MakeConfig) -> None:
    async with serving(
        make_hs_config, http_header_timeout="30s", http_keepalive_timeout="75s"
    ) as process:
        # Uncapped in the config: three quarters of the (raised) open-file limit.
        soft, _ = resource.getrlimit(resource.RLIMIT_NOFILE)
        assert process.connections.max_connections == default_max_connections(soft)
        slow = await connect(process)
        slow[1].write(b"GET /_matrix/client/versions HTTP/1.1\r\nHost: solo")
        quick = await connect(process)
        assert await served(quick)
        await advance(31)
        assert await hung_up(slow)
        assert process.connections.timed_out == 1
        # A connection that sent its request in time stays until the keep-alive timeout.
        assert await served(quick)
        await advance(76)
        assert await hung_up(quick)
        assert process.connections.open == 0
