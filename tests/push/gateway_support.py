"""A fake push gateway: a real HTTP server on loopback that records what it gets.

Per pushkey it can answer 200, reject the pushkey, fail with a status, or
hang until the test ends.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer

from tests.conftest import settle
from tests.support.harness import Harness
from tests.support.users import TestUser

OK = "ok"
REJECT = "reject"
HANG = "hang"
NOTIFY = "/_matrix/push/v1/notify"
V3 = "/_matrix/client/v3"


@dataclass
class FakeGateway:
    server: TestServer | None = None
    #: pushkey -> OK, REJECT, HANG, or an HTTP status; a list is used up in turn.
    modes: dict[str, Any] = field(default_factory=dict)
    received: list[dict[str, Any]] = field(default_factory=list)
    attempts: list[str] = field(default_factory=list)
    _hung: list[asyncio.Future[None]] = field(default_factory=list)

    @property
    def url(self) -> str:
        assert self.server is not None
        return f"http://127.0.0.1:{self.server.port}{NOTIFY}"

    def to(self, pushkey: str) -> list[dict[str, Any]]:
        return [
            n["notification"]
            for n in self.received
            if n["notification"]["devices"][0]["pushkey"] == pushkey
        ]

    async def handle(self, request: web.Request) -> web.StreamResponse:
        body = await request.json()
        pushkey = body["notification"]["devices"][0]["pushkey"]
        self.attempts.append(pushkey)
        mode = self.modes.get(pushkey, OK)
        if isinstance(mode, list):
            mode = mode.pop(0) if mode else OK
        if mode == HANG:
            hung: asyncio.Future[None] = asyncio.get_running_loop().create_future()
            self._hung.append(hung)
            await hung
        if isinstance(mode, int):
            return web.json_response({"error": "no"}, status=mode)
        self.received.append(body)
        return web.json_response({"rejected": [pushkey] if mode == REJECT else []})

    async def close(self) -> None:
        for hung in self._hung:
            if not hung.done():
                hung.set_result(None)
        if self.server is not None:
            await self.server.close()


@pytest.fixture
async def gateway() -> AsyncIterator[FakeGateway]:
    fake = FakeGateway()
    app = web.Application()
    app.router.add_post(NOTIFY, fake.handle)
    fake.server = TestServer(app, host="127.0.0.1")
    await fake.server.start_server()
    yield fake
    await fake.close()


async def eventually(condition: Callable[[], bool], real_seconds: float = 10.0) -> None:
    """Until `condition()` holds: background work settles, sockets move."""
    deadline = time.monotonic() + real_seconds
    while not condition():
        assert time.monotonic() < deadline, "condition not reached"
        await settle()
        await asyncio.sleep(0)


async def call(
    harness: Harness,
    method: str,
    path: str,
    user: TestUser,
    json: Any = None,
    host: str | None = None,
) -> Any:
    return await harness.request(method, V3 + path, json=json, token=user.token, host=host)


def pusher_body(url: str, pushkey: str, **extra: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "kind": "http",
        "app_id": "org.example.app",
        "app_display_name": "Example",
        "device_display_name": "Phone",
        "pushkey": pushkey,
        "lang": "en",
        "data": {"url": url},
    }
    body.update(extra)
    return body


async def set_pusher(
    harness: Harness, user: TestUser, url: str, pushkey: str, host: str | None = None, **extra: Any
) -> None:
    resp = await call(
        harness, "POST", "/pushers/set", user, pusher_body(url, pushkey, **extra), host=host
    )
    assert resp.status == 200, resp.json


async def room_of(
    harness: Harness, owner: TestUser, *members: TestUser, host: str | None = None
) -> str:
    resp = await call(harness, "POST", "/createRoom", owner, {"preset": "public_chat"}, host=host)
    assert resp.status == 200, resp.json
    room_id: str = resp.json["room_id"]
    for member in members:
        resp = await call(harness, "POST", f"/rooms/{room_id}/join", member, {}, host=host)
        assert resp.status == 200, resp.json
    return room_id


async def say(
    harness: Harness, user: TestUser, room_id: str, text: str, host: str | None = None
) -> str:
    resp = await call(
        harness,
        "PUT",
        f"/rooms/{room_id}/send/m.room.message/{text.replace(' ', '_')}",
        user,
        {"msgtype": "m.text", "body": text},
        host=host,
    )
    assert resp.status == 200, resp.json
    event_id: str = resp.json["event_id"]
    return event_id
