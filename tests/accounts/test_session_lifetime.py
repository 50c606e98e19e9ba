"""session_lifetime: access tokens stop working that long after they were issued."""

from __future__ import annotations

from tests.accounts.conftest import OPEN_REGISTRATION, MakeConfig
from tests.accounts.helpers import login, register_ok, whoami
from tests.conftest import advance
from tests.support.harness import start_harness


async def test_tokens_expire_session_lifetime_after_login(make_hs_config: MakeConfig) -> None:
    h = await start_harness([make_hs_config(**OPEN_REGISTRATION, session_lifetime="1h")])
    try:
        token = (await register_ok(h, "alice", "pw-alice-1"))["access_token"]
        await advance(1800)
        second = (await login(h, "alice", "pw-alice-1")).json["access_token"]
        await advance(1799)
        assert (await whoami(h, token)).status == 200
        await advance(2)
        resp = await whoami(h, token)
        assert resp.status == 401
        assert resp.json["errcode"] == "M_UNKNOWN_TOKEN"
        assert resp.json["soft_logout"] is False
        # The later login has its own hour.
        assert (await whoami(h, second)).status == 200
        await advance(1800)
        assert (await whoami(h, second)).status == 401
        assert (await login(h, "alice", "pw-alice-1")).status == 200
    finally:
        await h.close()


async def test_without_session_lifetime_tokens_last(make_hs_config: MakeConfig) -> None:
    h = await start_harness([make_hs_config(**OPEN_REGISTRATION)])
    try:
        token = (await register_ok(h, "bob", "pw-bob-12"))["access_token"]
        await advance(3 * 3600)  # three times the lifetime the other test sets
        assert (await whoami(h, token)).status == 200
    finally:
        await h.close()
