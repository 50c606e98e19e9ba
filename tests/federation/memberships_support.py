"""Helpers for the invite, leave, kick and ban tests across tenants."""

from __future__ import annotations

from typing import Any

from tests.conftest import settle
from tests.federation.inbound_support import client, sync
from tests.support.federation import HarnessTransport
from tests.support.harness import Harness
from tests.support.users import TestUser


def attach_senders(h: Harness, transport: HarnessTransport) -> None:
    for name, hs in h.servers.items():
        hs.federation_sender.attach_transport(transport.signed_by(name, hs.signing_key))


async def ok(
    h: Harness, host: str, method: str, path: str, user: TestUser, body: Any = None
) -> Any:
    resp = await client(h, host, method, path, user, {} if body is None else body)
    assert resp.status == 200, (path, resp.status, resp.json)
    return resp.json


async def membership(h: Harness, host: str, viewer: TestUser, room: str, user_id: str) -> str:
    """`user_id`'s membership in `room` as `viewer` on `host` sees it."""
    resp = await client(h, host, "GET", f"/rooms/{room}/state/m.room.member/{user_id}", viewer)
    assert resp.status == 200, resp.json
    return str(resp.json["membership"])


async def invited_room(h: Harness, host: str, user: TestUser, room: str) -> list[Any]:
    """The invite_state events `user` gets for `room` in a full /sync (empty: not invited)."""
    await settle()
    body = await sync(h, host, user)
    room_body = body.get("rooms", {}).get("invite", {}).get(room)
    return list(room_body["invite_state"]["events"]) if room_body else []
