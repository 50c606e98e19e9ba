"""Shared bits of the users-side admin API tests."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest

from tests.support.harness import Harness, Response, start_harness
from tests.support.users import TestUser, make_user

V1 = "/_synapse/admin/v1"
V2 = "/_synapse/admin/v2"
V3 = "/_synapse/admin/v3"
CLIENT = "/_matrix/client/v3"

GENEROUS = {"per_second": 1000, "burst_count": 1000}
OPEN: dict[str, Any] = {
    "enable_registration": True,
    "enable_registration_without_verification": True,
    "rc_registration": GENEROUS,
    "rc_login": {"address": GENEROUS, "account": GENEROUS, "failed_attempts": GENEROUS},
}


def assert_error(resp: Response, status: int, errcode: str) -> None:
    assert resp.status == status, (resp.status, resp.body)
    assert resp.json["errcode"] == errcode, resp.json
    assert isinstance(resp.json["error"], str)


def ok(resp: Response, status: int = 200) -> Any:
    assert resp.status == status, (resp.status, resp.body)
    return resp.json


@pytest.fixture
async def ah(make_hs_config) -> AsyncIterator[Harness]:  # type: ignore[no-untyped-def]
    """One homeserver with open registration and generous limits."""
    harness = await start_harness([make_hs_config(**OPEN)])
    yield harness
    await harness.close()


@pytest.fixture
async def admin(ah: Harness) -> TestUser:
    return await make_user(ah, "admin", admin=True)


@pytest.fixture
async def alice(ah: Harness) -> TestUser:
    return await make_user(ah, "alice")


async def create_room(h: Harness, user: TestUser, **body: Any) -> str:
    resp = await h.request("POST", f"{CLIENT}/createRoom", json=body, token=user.token)
    room_id: str = ok(resp)["room_id"]
    return room_id


async def join(h: Harness, user: TestUser, room_id: str) -> None:
    ok(await h.request("POST", f"{CLIENT}/join/{room_id}", json={}, token=user.token))


async def send_text(h: Harness, user: TestUser, room_id: str, body: str, txn: str) -> Response:
    return await h.request(
        "PUT",
        f"{CLIENT}/rooms/{room_id}/send/m.room.message/{txn}",
        json={"msgtype": "m.text", "body": body},
        token=user.token,
    )
