"""Two or three tenants of one harness sending each other signed federation
requests, and the client-API calls that show what arrived."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import orjson

from hamlet.core.canonical_json import JsonDict
from hamlet.core.xmatrix import sign_request
from tests.federation.outbox_support import join_remote
from tests.support.federation import HarnessTransport, wire_path
from tests.support.harness import Harness, Response
from tests.support.users import TestUser

SEND = "/_matrix/federation/v1/send"
V3 = "/_matrix/client/v3"


async def client(
    h: Harness, host: str, method: str, path: str, user: TestUser | None, json: Any = None
) -> Response:
    return await h.request(
        method, V3 + path, json=json, token=user.token if user else None, host=host
    )


async def signed_request(
    h: Harness,
    origin: str,
    destination: str,
    method: str,
    path: str,
    *,
    content: Any = None,
    body: bytes | None = None,
) -> Response:
    """A request `origin` signs with its real key (`body` overrides what is sent)."""
    header = sign_request(
        method=method,
        uri=wire_path(path),
        origin=origin,
        destination=destination,
        content=content,
        signing_key=h.servers[origin].signing_key,
    )
    data = body if body is not None else (orjson.dumps(content) if content is not None else None)
    return await h.request(
        method, path, body=data, host=destination, headers={"Authorization": header}
    )


def txn(origin: str, *, edus: Sequence[JsonDict] = (), pdus: Sequence[Any] = ()) -> JsonDict:
    return {"origin": origin, "origin_server_ts": 1, "pdus": list(pdus), "edus": list(edus)}


async def send_txn(
    transport: HarnessTransport, h: Harness, origin: str, destination: str, txn_id: str, body: Any
) -> JsonDict:
    """PUT a transaction as `origin` would: through its signed transport."""
    out = transport.signed_by(origin, h.servers[origin].signing_key)
    return await out.put_json(destination, f"{SEND}/{txn_id}", body)


async def shared_room(h: Harness, host: str, owner: TestUser, *remote_users: str) -> str:
    """A public room of `owner` on `host` that `remote_users` have joined.

    Joining a room over federation is the room DAG's work (not here yet):
    the remote joins are persisted through the local event path, as the
    outbox tests do, which moves the membership view the EDU checks read.
    """
    resp = await client(h, host, "POST", "/createRoom", owner, {"preset": "public_chat"})
    assert resp.status == 200, resp.json
    room_id: str = resp.json["room_id"]
    for user_id in remote_users:
        await join_remote(h.servers[host], room_id, user_id)
    return room_id


async def send_message(h: Harness, host: str, user: TestUser, room_id: str) -> str:
    body = {"msgtype": "m.text", "body": "hello"}
    resp = await client(h, host, "PUT", f"/rooms/{room_id}/send/m.room.message/m1", user, body)
    assert resp.status == 200, resp.json
    event_id: str = resp.json["event_id"]
    return event_id


async def sync(h: Harness, host: str, user: TestUser, since: str | None = None) -> JsonDict:
    path = "/sync?timeout=0" + (f"&since={since}" if since else "")
    resp = await client(h, host, "GET", path, user)
    assert resp.status == 200, resp.json
    body: JsonDict = resp.json
    return body


def ephemeral(body: JsonDict, room_id: str, event_type: str) -> list[JsonDict]:
    room = body.get("rooms", {}).get("join", {}).get(room_id, {})
    return [e for e in room.get("ephemeral", {}).get("events", []) if e["type"] == event_type]


@dataclass
class HeldPdus:
    """A `PduHandler` that holds every transaction with PDUs until released
    (to have one in flight), then answers each PDU as accepted."""

    release: asyncio.Event = field(default_factory=asyncio.Event)
    entered: asyncio.Event = field(default_factory=asyncio.Event)
    calls: int = 0

    async def handle_pdus(self, origin: str, pdus: Sequence[Any]) -> dict[str, JsonDict]:
        if pdus:
            self.calls += 1
            self.entered.set()
            await self.release.wait()
        return {str(p.get("event_id")): {} for p in pdus if isinstance(p, dict)}
