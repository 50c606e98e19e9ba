"""Helpers for the /sync tests: many concurrent requests over plain HTTP."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Any
from urllib.parse import quote

import aiohttp
import orjson

from hamlet.config import HomeServerConfig
from tests.support.harness import Harness, Response, start_harness
from tests.support.users import TestUser

C = "/_matrix/client/v3"
FAST = {"per_second": 1000, "burst_count": 1000}


@asynccontextmanager
async def fast_harness(
    make_hs_config: Callable[..., HomeServerConfig], **overrides: Any
) -> AsyncIterator[Harness]:
    """One homeserver whose message rate limit does not get in the way."""
    harness = await start_harness([make_hs_config(rc_message=FAST, **overrides)])
    try:
        yield harness
    finally:
        await harness.close()


@asynccontextmanager
async def unpooled(h: Harness) -> AsyncIterator[Callable[..., Any]]:
    """A `get(path, token)` on a session without a connection cap: the test
    client's pool (100) would queue what must be concurrent."""
    connector = aiohttp.TCPConnector(limit=0)
    async with aiohttp.ClientSession(connector=connector) as session:

        async def get(path: str, token: str) -> Response:
            headers = {"Host": h.hs.server_name, "Authorization": f"Bearer {token}"}
            async with session.get(h.client.make_url(path), headers=headers) as resp:
                return Response(resp.status, resp.headers, await resp.read())

        yield get


async def until(condition: Callable[[], bool], what: str) -> None:
    """Wait (real time: requests travel over sockets) until `condition()` holds."""
    for _ in range(2000):
        if condition():
            return
        await asyncio.sleep(0.005)
    raise AssertionError(f"timed out waiting for {what}")


def body(resp: Response) -> dict[str, Any]:
    assert resp.status == 200, resp.body
    decoded: dict[str, Any] = orjson.loads(resp.body)
    return decoded


async def long_polls(
    get: Callable[..., Any], user: TestUser, n: int
) -> list[asyncio.Future[Response]]:
    """`n` identical 30 s long-polls from the user's current position."""
    since = body(await get(f"{C}/sync", user.token))["next_batch"]
    path = f"{C}/sync?since={quote(since)}&timeout=30000"
    return [asyncio.ensure_future(get(path, user.token)) for _ in range(n)]
