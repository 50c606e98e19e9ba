"""Two tenants in one process: separate users, passwords and tokens."""

from __future__ import annotations

from tests.accounts.conftest import OPEN_REGISTRATION, MakeConfig
from tests.accounts.helpers import V3, assert_error, login, register_ok, whoami
from tests.support.harness import start_harness


async def test_tenants_do_not_share_accounts(make_hs_config: MakeConfig) -> None:
    h = await start_harness(
        [
            make_hs_config("a.test", **OPEN_REGISTRATION),
            make_hs_config("b.test", **OPEN_REGISTRATION),
        ]
    )
    try:
        a = await register_ok(h, "alice", "pw-on-a-123", host="a.test")
        b = await register_ok(h, "alice", "pw-on-b-123", host="b.test")
        assert a["user_id"] == "@alice:a.test"
        assert b["user_id"] == "@alice:b.test"

        # Each tenant knows only its own token.
        assert (await whoami(h, a["access_token"], host="a.test")).json["user_id"] == (
            "@alice:a.test"
        )
        assert_error(await whoami(h, a["access_token"], host="b.test"), 401, "M_UNKNOWN_TOKEN")
        assert_error(await whoami(h, b["access_token"], host="a.test"), 401, "M_UNKNOWN_TOKEN")

        # Same localpart, different passwords.
        assert (await login(h, "alice", "pw-on-a-123", host="a.test")).status == 200
        assert_error(await login(h, "alice", "pw-on-b-123", host="a.test"), 403, "M_FORBIDDEN")
        assert (await login(h, "alice", "pw-on-b-123", host="b.test")).status == 200
        # A user ID of the other tenant is unknown here.
        assert_error(
            await login(h, "@alice:b.test", "pw-on-b-123", host="a.test"), 403, "M_FORBIDDEN"
        )

        # Logging out everywhere on A leaves B alone.
        await h.request("POST", f"{V3}/logout/all", token=a["access_token"], host="a.test")
        assert (await whoami(h, b["access_token"], host="b.test")).status == 200
    finally:
        await h.close()
