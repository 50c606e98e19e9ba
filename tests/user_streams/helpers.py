"""Shared helpers for the user-stream HTTP tests."""

from __future__ import annotations

from typing import Any

from tests.support.harness import Harness, Response
from tests.support.users import TestUser

V3 = "/_matrix/client/v3"


async def call(
    harness: Harness,
    method: str,
    path: str,
    user: TestUser | None,
    json: Any = None,
    body: bytes | None = None,
) -> Response:
    return await harness.request(
        method, V3 + path, json=json, body=body, token=user.token if user else None
    )


async def public_room(harness: Harness, owner: TestUser, *joiners: TestUser) -> str:
    resp = await call(harness, "POST", "/createRoom", owner, {"preset": "public_chat"})
    assert resp.status == 200, resp.json
    room_id: str = resp.json["room_id"]
    for user in joiners:
        resp = await call(harness, "POST", f"/rooms/{room_id}/join", user, {})
        assert resp.status == 200, resp.json
    return room_id


async def send_text(harness: Harness, user: TestUser, room_id: str, txn: str) -> str:
    resp = await call(
        harness,
        "PUT",
        f"/rooms/{room_id}/send/m.room.message/{txn}",
        user,
        {"msgtype": "m.text", "body": txn},
    )
    assert resp.status == 200, resp.json
    event_id: str = resp.json["event_id"]
    return event_id
