"""Two tenants of one harness federating (every request signed and checked),
with users whose devices publish keys: what the federated e2ee tests share."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote

from tests.conftest import settle
from tests.e2e.helpers import Ed25519, device_keys, one_time_keys
from tests.federation.inbound_support import client
from tests.support.federation import HarnessTransport
from tests.support.harness import Harness, Response
from tests.support.users import TestUser

A, B = "a.test", "b.test"
V1 = "/_matrix/federation/v1"


@dataclass
class SlowTransport(HarnessTransport):
    """A harness transport whose `slow` destinations never answer."""

    slow: set[str] = field(default_factory=set)

    async def _request(
        self,
        method: str,
        destination: str,
        path: str,
        body: Any,
        origin: Any = None,
        timeout_ms: int | None = None,
    ) -> Any:
        if destination in self.slow:
            self.requests.append((method, destination, path))
            await asyncio.Event().wait()
        return await super()._request(method, destination, path, body, origin, timeout_ms)


async def upload_keys(
    h: Harness, host: str, user: TestUser, signer: Ed25519, otks: int = 0
) -> dict[str, Any]:
    """The device's keys (and `otks` one-time keys), as uploaded."""
    keys = device_keys(user, signer)
    body: dict[str, Any] = {"device_keys": keys}
    if otks:
        body["one_time_keys"] = one_time_keys(signer, user, range(otks))
    resp = await client(h, host, "POST", "/keys/upload", user, body)
    assert resp.status == 200, resp.json
    return keys


async def query(
    h: Harness, host: str, user: TestUser, *users: str, wait_ms: int = 10_000
) -> Response:
    body = {"device_keys": {u: [] for u in users}, "timeout": wait_ms}
    resp = await client(h, host, "POST", "/keys/query", user, body)
    assert resp.status == 200, resp.json
    return resp


async def room_on_b(h: Harness, bob: TestUser, alias: str, *joiners: TestUser) -> str:
    """A public room of bob's on b.test that `joiners` (users of a.test) join over federation."""
    resp = await client(
        h, B, "POST", "/createRoom", bob, {"preset": "public_chat", "room_alias_name": alias}
    )
    assert resp.status == 200, resp.json
    room_id: str = resp.json["room_id"]
    for user in joiners:
        joined = await client(h, A, "POST", f"/join/{quote(f'#{alias}:{B}')}", user, {})
        assert joined.status == 200, joined.json
    await settle()
    return room_id
