"""Small HTTP helpers shared by the rooms tests."""

from __future__ import annotations

import itertools
from typing import Any
from urllib.parse import quote

from tests.support.harness import Harness, Response
from tests.support.users import TestUser

V3 = "/_matrix/client/v3"

_txn_counter = itertools.count(1)


def q(value: str) -> str:
    """Percent-encode one path segment."""
    return quote(value, safe="")


def assert_error(resp: Response, status: int, errcode: str | None = None) -> None:
    assert resp.status == status, (resp.status, resp.body)
    body = resp.json
    assert isinstance(body, dict) and isinstance(body.get("errcode"), str), body
    assert isinstance(body.get("error"), str), body
    if errcode is not None:
        assert body["errcode"] == errcode, body


async def create_room(harness: Harness, user: TestUser, **body: Any) -> str:
    resp = await harness.request("POST", f"{V3}/createRoom", json=body, token=user.token)
    assert resp.status == 200, resp.json
    room_id: str = resp.json["room_id"]
    return room_id


async def send(
    harness: Harness,
    user: TestUser,
    room_id: str,
    content: Any = None,
    *,
    event_type: str = "m.room.message",
    txn: str | None = None,
) -> Response:
    txn = txn or f"t{next(_txn_counter)}"
    if content is None:
        content = {"msgtype": "m.text", "body": "hello"}
    return await harness.request(
        "PUT",
        f"{V3}/rooms/{q(room_id)}/send/{q(event_type)}/{q(txn)}",
        json=content,
        token=user.token,
    )


async def send_ok(harness: Harness, user: TestUser, room_id: str, body: str = "hi") -> str:
    resp = await send(harness, user, room_id, {"msgtype": "m.text", "body": body})
    assert resp.status == 200, resp.json
    event_id: str = resp.json["event_id"]
    return event_id


async def put_state(
    harness: Harness,
    user: TestUser,
    room_id: str,
    event_type: str,
    content: Any,
    state_key: str = "",
) -> Response:
    return await harness.request(
        "PUT",
        f"{V3}/rooms/{q(room_id)}/state/{q(event_type)}/{q(state_key)}",
        json=content,
        token=user.token,
    )


async def redact(
    harness: Harness,
    user: TestUser,
    room_id: str,
    event_id: str,
    txn: str,
    body: Any = None,
) -> Response:
    return await harness.request(
        "PUT",
        f"{V3}/rooms/{q(room_id)}/redact/{q(event_id)}/{q(txn)}",
        json=body if body is not None else {},
        token=user.token,
    )


async def upgrade(harness: Harness, user: TestUser, room_id: str, body: Any) -> Response:
    return await harness.request(
        "POST", f"{V3}/rooms/{q(room_id)}/upgrade", json=body, token=user.token
    )


async def get_state(harness: Harness, user: TestUser, room_id: str) -> Response:
    return await harness.request("GET", f"{V3}/rooms/{q(room_id)}/state", token=user.token)


async def get_state_event(
    harness: Harness, user: TestUser, room_id: str, event_type: str, state_key: str = ""
) -> Response:
    return await harness.request(
        "GET",
        f"{V3}/rooms/{q(room_id)}/state/{q(event_type)}/{q(state_key)}",
        token=user.token,
    )


async def state_map(harness: Harness, user: TestUser, room_id: str) -> dict[tuple[str, str], Any]:
    resp = await get_state(harness, user, room_id)
    assert resp.status == 200, resp.json
    return {(e["type"], e["state_key"]): e for e in resp.json}


async def get_event(harness: Harness, user: TestUser, room_id: str, event_id: str) -> Response:
    return await harness.request(
        "GET", f"{V3}/rooms/{q(room_id)}/event/{q(event_id)}", token=user.token
    )


async def membership_action(
    harness: Harness, user: TestUser, room_id: str, action: str, body: Any = None
) -> Response:
    return await harness.request(
        "POST",
        f"{V3}/rooms/{q(room_id)}/{action}",
        json=body if body is not None else {},
        token=user.token,
    )


async def join(harness: Harness, user: TestUser, room_id_or_alias: str) -> Response:
    return await harness.request(
        "POST", f"{V3}/join/{q(room_id_or_alias)}", json={}, token=user.token
    )


async def member_content(
    harness: Harness, viewer: TestUser, room_id: str, user_id: str
) -> dict[str, Any] | None:
    resp = await get_state_event(harness, viewer, room_id, "m.room.member", user_id)
    if resp.status == 404:
        return None
    assert resp.status == 200, resp.json
    content: dict[str, Any] = resp.json
    return content


async def count_events(harness: Harness, room_id: str) -> int:
    value = await harness.hs.db.fetchval(
        "test_count_events", "SELECT COUNT(*) FROM events WHERE room_id = ?", room_id
    )
    return int(value)
