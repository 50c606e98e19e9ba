"""The registration tokens admin API, and the tokens it makes in real registrations."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import pytest

from tests.admin.users_support import CLIENT, OPEN, V1, assert_error, ok
from tests.support.harness import Harness, Response, start_harness
from tests.support.users import TestUser, make_user

BASE = f"{V1}/registration_tokens"


@pytest.fixture
async def th(make_hs_config) -> AsyncIterator[Harness]:  # type: ignore[no-untyped-def]
    harness = await start_harness(
        [
            make_hs_config(
                **OPEN,
                registration_requires_token=True,
                rc_registration_token_validity={"per_second": 1000, "burst_count": 1000},
            )
        ]
    )
    yield harness
    await harness.close()


@pytest.fixture
async def root(th: Harness) -> TestUser:
    return await make_user(th, "root", admin=True)


async def _register(h: Harness, username: str, token: str) -> Response:
    first = await h.request(
        "POST", f"{CLIENT}/register", json={"username": username, "password": "pw-12345678"}
    )
    assert first.status == 401, first.body
    auth: dict[str, Any] = {
        "type": "m.login.registration_token",
        "token": token,
        "session": first.json["session"],
    }
    return await h.request(
        "POST",
        f"{CLIENT}/register",
        json={"username": username, "password": "pw-12345678", "auth": auth},
    )


async def test_create_list_get_update_delete(th: Harness, root: TestUser) -> None:
    t = root.token
    made = ok(await th.request("POST", f"{BASE}/new", json={}, token=t))
    assert len(made["token"]) == 16
    assert made == {
        "token": made["token"],
        "uses_allowed": None,
        "pending": 0,
        "completed": 0,
        "expiry_time": None,
    }
    short = ok(await th.request("POST", f"{BASE}/new", json={"length": 5}, token=t))
    assert len(short["token"]) == 5
    future = th.hs.clock.time_msec() + 3_600_000
    named = ok(
        await th.request(
            "POST",
            f"{BASE}/new",
            json={"token": "abc.DEF_~-9", "uses_allowed": 3, "expiry_time": future},
            token=t,
        )
    )
    assert named["token"] == "abc.DEF_~-9" and named["uses_allowed"] == 3
    assert named["expiry_time"] == future
    listed = ok(await th.request("GET", BASE, token=t))["registration_tokens"]
    assert {x["token"] for x in listed} == {made["token"], short["token"], "abc.DEF_~-9"}
    got = ok(await th.request("GET", f"{BASE}/abc.DEF_~-9", token=t))
    assert got == named
    updated = ok(await th.request("PUT", f"{BASE}/abc.DEF_~-9", json={"uses_allowed": 0}, token=t))
    assert updated["uses_allowed"] == 0 and updated["expiry_time"] == future
    updated = ok(
        await th.request(
            "PUT", f"{BASE}/abc.DEF_~-9", json={"uses_allowed": None, "expiry_time": None}, token=t
        )
    )
    assert updated["uses_allowed"] is None and updated["expiry_time"] is None
    assert ok(await th.request("PUT", f"{BASE}/abc.DEF_~-9", json={}, token=t)) == updated
    assert ok(await th.request("DELETE", f"{BASE}/abc.DEF_~-9", token=t)) == {}
    for method in ("GET", "PUT", "DELETE"):
        resp = await th.request(
            method, f"{BASE}/abc.DEF_~-9", json={} if method == "PUT" else None, token=t
        )
        assert_error(resp, 404, "M_NOT_FOUND")


async def test_valid_filter(th: Harness, root: TestUser) -> None:
    t = root.token
    store = th.hs.registration_token_store
    await store.create_token("fresh", uses_allowed=None, expiry_time=None)
    await store.create_token("usedup", uses_allowed=0, expiry_time=None)
    await store.create_token("expired", uses_allowed=None, expiry_time=th.hs.clock.time_msec() - 1)

    async def tokens(query: str) -> set[str]:
        body = ok(await th.request("GET", f"{BASE}{query}", token=t))
        return {x["token"] for x in body["registration_tokens"]}

    assert await tokens("") == {"fresh", "usedup", "expired"}
    assert await tokens("?valid=true") == {"fresh"}
    assert await tokens("?valid=false") == {"usedup", "expired"}
    assert_error(await th.request("GET", f"{BASE}?valid=perhaps", token=t), 400, "M_INVALID_PARAM")


async def test_bad_parameters(th: Harness, root: TestUser) -> None:
    t = root.token
    ok(await th.request("POST", f"{BASE}/new", json={"token": "taken"}, token=t))
    past = th.hs.clock.time_msec() - 1000
    for body in (
        {"token": "taken"},
        {"token": "has space"},
        {"token": "x" * 65},
        {"token": ""},
        {"token": 12},
        {"uses_allowed": -1},
        {"uses_allowed": "3"},
        {"expiry_time": past},
        {"expiry_time": "tomorrow"},
        {"length": 0},
        {"length": 65},
        {"length": "16"},
    ):
        resp = await th.request("POST", f"{BASE}/new", json=body, token=t)
        assert_error(resp, 400, "M_INVALID_PARAM")
    for body in ({"uses_allowed": -2}, {"expiry_time": past}, {"expiry_time": 1.5}):
        resp = await th.request("PUT", f"{BASE}/taken", json=body, token=t)
        assert_error(resp, 400, "M_INVALID_PARAM")


async def test_single_use_token_under_concurrent_registrations(th: Harness, root: TestUser) -> None:
    made = ok(await th.request("POST", f"{BASE}/new", json={"uses_allowed": 1}, token=root.token))
    token = made["token"]
    results = await asyncio.gather(_register(th, "eve", token), _register(th, "fred", token))
    assert sorted(r.status for r in results) == [200, 401], [r.body for r in results]
    got = ok(await th.request("GET", f"{BASE}/{token}", token=root.token))
    assert got["completed"] == 1 and got["pending"] == 0
    valid = ok(await th.request("GET", f"{BASE}?valid=true", token=root.token))
    assert token not in {x["token"] for x in valid["registration_tokens"]}
    # Raising the limit through the API lets the next registration through.
    ok(await th.request("PUT", f"{BASE}/{token}", json={"uses_allowed": 2}, token=root.token))
    loser = "fred" if results[0].status == 200 else "eve"
    assert (await _register(th, loser, token)).status == 200
    got = ok(await th.request("GET", f"{BASE}/{token}", token=root.token))
    assert got["completed"] == 2
