"""m.login.registration_token: the UIA stage, validity, and no over-use under races."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import pytest

from tests.accounts.conftest import OPEN_REGISTRATION, MakeConfig
from tests.accounts.helpers import V3, assert_error
from tests.conftest import advance
from tests.support.harness import Harness, start_harness

VALIDITY = "/_matrix/client/v1/register/m.login.registration_token/validity"


@pytest.fixture
async def th(make_hs_config: MakeConfig) -> AsyncIterator[Harness]:
    config = {
        **OPEN_REGISTRATION,
        "registration_requires_token": True,
        "enable_registration_without_verification": False,
        "rc_registration_token_validity": {"per_second": 1000, "burst_count": 1000},
    }
    harness = await start_harness([make_hs_config(**config)])
    yield harness
    await harness.close()


async def _register(h: Harness, username: str, token: str | None) -> Any:
    first = await h.request(
        "POST", f"{V3}/register", json={"username": username, "password": "pw-12345678"}
    )
    assert first.status == 401
    assert first.json["flows"] == [{"stages": ["m.login.registration_token"]}]
    auth: dict[str, Any] = {"type": "m.login.registration_token", "session": first.json["session"]}
    if token is not None:
        auth["token"] = token
    return await h.request(
        "POST",
        f"{V3}/register",
        json={"username": username, "password": "pw-12345678", "auth": auth},
    )


async def _counts(h: Harness, token: str) -> tuple[int, int]:
    t = await h.hs.registration_token_store.get_token(token)
    assert t is not None
    return t.pending, t.completed


async def test_register_with_token(th: Harness) -> None:
    store = th.hs.registration_token_store
    assert await store.create_token("abcd", uses_allowed=2, expiry_time=None)
    assert not await store.create_token("abcd", uses_allowed=2, expiry_time=None)
    resp = await _register(th, "alice", "abcd")
    assert resp.status == 200, resp.body
    assert await _counts(th, "abcd") == (0, 1)
    # Dummy auth is not enough.
    resp = await th.request(
        "POST",
        f"{V3}/register",
        json={"username": "bob", "password": "pw-12345678", "auth": {"type": "m.login.dummy"}},
    )
    assert resp.status == 401 and resp.json["errcode"] == "M_UNRECOGNIZED"


async def test_bad_tokens(th: Harness) -> None:
    store = th.hs.registration_token_store
    await store.create_token("used", uses_allowed=0, expiry_time=None)
    past = th.hs.clock.time_msec() - 1
    await store.create_token("expired", uses_allowed=None, expiry_time=past)
    for token in ("nope", "used", "expired", None, "x" * 65):
        resp = await _register(th, "carol", token)
        assert resp.status == 401, (token, resp.body)
        assert resp.json["errcode"] == "M_UNAUTHORIZED"
        assert resp.json["completed"] == []
    assert not await th.hs.account_store.user_exists("@carol:test.local")


async def test_validity(th: Harness) -> None:
    store = th.hs.registration_token_store
    await store.create_token("good", uses_allowed=1, expiry_time=None)
    resp = await th.request("GET", f"{VALIDITY}?token=good")
    assert resp.status == 200 and resp.json == {"valid": True}
    resp = await th.request("GET", f"{V3}/register/m.login.registration_token/validity?token=x")
    assert resp.status == 200 and resp.json == {"valid": False}
    assert_error(await th.request("GET", VALIDITY), 400, "M_MISSING_PARAM")
    assert (await _register(th, "dan", "good")).status == 200
    assert (await th.request("GET", f"{VALIDITY}?token=good")).json == {"valid": False}


async def test_validity_when_tokens_are_off(make_hs_config: MakeConfig) -> None:
    h = await start_harness([make_hs_config(**OPEN_REGISTRATION)])
    try:
        assert_error(await h.request("GET", f"{VALIDITY}?token=x"), 403, "M_FORBIDDEN")
    finally:
        await h.close()


async def test_concurrent_use_of_a_single_use_token(th: Harness) -> None:
    await th.hs.registration_token_store.create_token("once", uses_allowed=1, expiry_time=None)
    results = await asyncio.gather(_register(th, "eve", "once"), _register(th, "fred", "once"))
    assert sorted(r.status for r in results) == [200, 401], [r.body for r in results]
    loser = next(r for r in results if r.status == 401)
    assert loser.json["errcode"] == "M_UNAUTHORIZED"
    assert await _counts(th, "once") == (0, 1)
    assert await th.hs.account_store.count_users() == 1


async def test_many_concurrent_uses_never_exceed_the_limit(th: Harness) -> None:
    await th.hs.registration_token_store.create_token("three", uses_allowed=3, expiry_time=None)
    results = await asyncio.gather(*(_register(th, f"user{i}x", "three") for i in range(8)))
    assert sum(r.status == 200 for r in results) == 3
    assert await _counts(th, "three") == (0, 3)


async def test_abandoned_reservation_is_released_when_the_session_expires(
    th: Harness,
) -> None:
    store = th.hs.registration_token_store
    await store.create_token("once", uses_allowed=1, expiry_time=None)
    # The token stage passes, but the registration itself fails (no password):
    # the use stays reserved for this session...
    first = await th.request("POST", f"{V3}/register", json={})
    session = first.json["session"]
    resp = await th.request(
        "POST",
        f"{V3}/register",
        json={
            "username": "gina",
            "auth": {"type": "m.login.registration_token", "token": "once", "session": session},
        },
    )
    assert_error(resp, 400, "M_MISSING_PARAM")
    assert await _counts(th, "once") == (1, 0)
    assert (await _register(th, "gina", "once")).status == 401
    # ...a retry in the same session does not reserve it twice, and succeeds...
    resp = await th.request(
        "POST",
        f"{V3}/register",
        json={"username": "gina", "password": "pw-12345678", "auth": {"session": session}},
    )
    assert resp.status == 200, resp.body
    assert await _counts(th, "once") == (0, 1)

    # ...and an abandoned session gives its use back when it expires.
    await store.create_token("again", uses_allowed=1, expiry_time=None)
    first = await th.request("POST", f"{V3}/register", json={})
    await th.request(
        "POST",
        f"{V3}/register",
        json={
            "auth": {
                "type": "m.login.registration_token",
                "token": "again",
                "session": first.json["session"],
            }
        },
    )
    assert await _counts(th, "again") == (1, 0)
    # The release is a background write; advance() returns once it is done.
    await advance(3601)
    assert await _counts(th, "again") == (0, 0)
    assert (await _register(th, "hugo", "again")).status == 200
