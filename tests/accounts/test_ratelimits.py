"""rc_login (address, account, failed_attempts) and rc_registration: 429s and recovery."""

from __future__ import annotations

import asyncio

from tests.accounts.conftest import GENEROUS, OPEN_REGISTRATION, MakeConfig
from tests.accounts.helpers import login, password_auth, register
from tests.support.harness import Harness, Response, start_harness


def assert_limited(resp: Response) -> int:
    assert resp.status == 429, resp.body
    assert resp.json["errcode"] == "M_LIMIT_EXCEEDED"
    retry_ms = resp.json["retry_after_ms"]
    assert isinstance(retry_ms, int) and retry_ms > 0
    assert int(resp.headers["Retry-After"]) >= retry_ms // 1000
    return retry_ms


async def advance(seconds: float) -> None:
    await asyncio.get_running_loop().advance(seconds)  # type: ignore[attr-defined]


FAILED_ATTEMPTS_3 = {
    "address": GENEROUS,
    "account": GENEROUS,
    "failed_attempts": {"per_second": 0.1, "burst_count": 3},
}


async def _harness(make_hs_config: MakeConfig, **limits: object) -> Harness:
    config = {**OPEN_REGISTRATION, **limits}
    return await start_harness([make_hs_config(**config)])


async def test_registration_per_address(make_hs_config: MakeConfig) -> None:
    h = await _harness(make_hs_config, rc_registration={"per_second": 0.1, "burst_count": 2})
    try:
        assert (await register(h, "a1")).status == 200
        assert (await register(h, "a2")).status == 200
        retry_ms = assert_limited(await register(h, "a3"))
        assert not await h.hs.account_store.user_exists("@a3:test.local")
        await advance(retry_ms / 1000)
        assert (await register(h, "a3")).status == 200
    finally:
        await h.close()


async def test_login_per_address(make_hs_config: MakeConfig) -> None:
    h = await _harness(
        make_hs_config,
        rc_login={
            "address": {"per_second": 0.5, "burst_count": 2},
            "account": GENEROUS,
            "failed_attempts": GENEROUS,
        },
    )
    try:
        await h.hs.registration.register_user("bob", "pw-bob-123")
        assert (await login(h, "bob", "pw-bob-123")).status == 200
        assert (await login(h, "someone", "x")).status == 403
        retry_ms = assert_limited(await login(h, "bob", "pw-bob-123"))
        await advance(retry_ms / 1000)
        assert (await login(h, "bob", "pw-bob-123")).status == 200
    finally:
        await h.close()


async def test_login_per_account(make_hs_config: MakeConfig) -> None:
    h = await _harness(
        make_hs_config,
        rc_login={
            "address": GENEROUS,
            "account": {"per_second": 0.2, "burst_count": 2},
            "failed_attempts": GENEROUS,
        },
    )
    try:
        await h.hs.registration.register_user("carl", "pw-carl-123")
        await h.hs.registration.register_user("cody", "pw-cody-123")
        assert (await login(h, "carl", "pw-carl-123")).status == 200
        assert (await login(h, "@carl:test.local", "pw-carl-123")).status == 200
        retry_ms = assert_limited(await login(h, "carl", "pw-carl-123"))
        # Another account is not affected.
        assert (await login(h, "cody", "pw-cody-123")).status == 200
        await advance(retry_ms / 1000)
        assert (await login(h, "carl", "pw-carl-123")).status == 200
    finally:
        await h.close()


async def test_failed_attempts(make_hs_config: MakeConfig) -> None:
    h = await _harness(make_hs_config, rc_login=FAILED_ATTEMPTS_3)
    try:
        await h.hs.registration.register_user("dora", "pw-dora-123")
        # Successful logins do not count.
        for _ in range(5):
            assert (await login(h, "dora", "pw-dora-123")).status == 200
        for _ in range(3):
            assert (await login(h, "dora", "wrong")).status == 403
        # Now even the right password is refused for a while...
        retry_ms = assert_limited(await login(h, "dora", "pw-dora-123"))
        assert retry_ms <= 10_000
        # ...and the unknown user counts too (no hint it does not exist).
        for _ in range(3):
            assert (await login(h, "ghost", "wrong")).status == 403
        assert_limited(await login(h, "ghost", "wrong"))
        await advance(retry_ms / 1000)
        assert (await login(h, "dora", "pw-dora-123")).status == 200
    finally:
        await h.close()


async def test_failed_uia_passwords(make_hs_config: MakeConfig) -> None:
    """A stolen access token cannot guess the account's password through UIA."""
    h = await _harness(make_hs_config, rc_login=FAILED_ATTEMPTS_3)
    try:
        token = (await register(h, "erin", "pw-erin-123")).json["access_token"]

        async def deactivate(password: str) -> Response:
            first = await h.request("POST", "/_matrix/client/v3/account/deactivate", token=token)
            auth = password_auth("erin", password, first.json["session"])
            return await h.request(
                "POST", "/_matrix/client/v3/account/deactivate", token=token, json={"auth": auth}
            )

        for n in range(3):
            assert (await deactivate(f"guess-{n}")).status == 401
        # Even the right password now waits out the limit, and the account is intact...
        retry_ms = assert_limited(await deactivate("pw-erin-123"))
        whoami = await h.request("GET", "/_matrix/client/v3/account/whoami", token=token)
        assert whoami.status == 200
        # ...which the failed logins do not share (Synapse keeps two buckets).
        assert (await login(h, "erin", "pw-erin-123")).status == 200
        await advance(retry_ms / 1000)
        assert (await deactivate("pw-erin-123")).status == 200
    finally:
        await h.close()


async def test_limits_are_per_tenant(make_hs_config: MakeConfig) -> None:
    limits = {**OPEN_REGISTRATION, "rc_registration": {"per_second": 0.01, "burst_count": 1}}
    h = await start_harness(
        [make_hs_config("a.test", **limits), make_hs_config("b.test", **limits)]
    )
    try:
        assert (await register(h, "x1", host="a.test")).status == 200
        assert_limited(await register(h, "x2", host="a.test"))
        assert (await register(h, "x1", host="b.test")).status == 200
    finally:
        await h.close()
