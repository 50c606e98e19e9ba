"""`hamlet admin make-admin` against a running server: open sessions see it at once."""

from __future__ import annotations

from collections.abc import Callable

from hamlet.cli import _make_admin
from hamlet.config import HomeServerConfig
from hamlet.handlers.accounts.auth import TOKEN_CACHE_TTL_S
from tests.accounts.conftest import OPEN_REGISTRATION
from tests.accounts.helpers import register_ok
from tests.conftest import advance
from tests.support.harness import start_harness

MakeConfig = Callable[..., HomeServerConfig]
USER_URL = "/_synapse/admin/v2/users/@erin:test.local"


async def test_a_session_opened_before_make_admin_is_admin_right_after(
    make_hs_config: MakeConfig,
) -> None:
    h = await start_harness([make_hs_config(**OPEN_REGISTRATION)])
    try:
        token = (await register_ok(h, "erin"))["access_token"]
        assert (await h.request("GET", USER_URL, token=token)).status == 403
        assert not (await h.hs.auth.get_user_by_access_token(token)).is_admin  # cached now

        # What the CLI does, from outside the running server (its own
        # HomeServer on the same database).
        assert await _make_admin(h.hs.config, "erin") is None

        resp = await h.request("GET", USER_URL, token=token)
        assert resp.status == 200, resp.body
        assert resp.json["admin"] is True
        # ...and the server's other admin checks saw the change with it.
        assert (await h.hs.auth.get_user_by_access_token(token)).is_admin
    finally:
        await h.close()


async def test_a_flag_written_from_outside_reaches_every_check_within_the_ttl(
    make_hs_config: MakeConfig,
) -> None:
    h = await start_harness([make_hs_config(**OPEN_REGISTRATION)])
    try:
        token = (await register_ok(h, "erin"))["access_token"]
        assert not (await h.hs.auth.get_user_by_access_token(token)).is_admin
        # Straight to the database, past the handler that would invalidate.
        await h.hs.account_store.set_admin("@erin:test.local", True)
        await advance(TOKEN_CACHE_TTL_S)
        assert (await h.hs.auth.get_user_by_access_token(token)).is_admin

        # A demotion from outside takes the admin API away at once.
        await h.hs.account_store.set_admin("@erin:test.local", False)
        assert (await h.request("GET", USER_URL, token=token)).status == 403
        assert not (await h.hs.auth.get_user_by_access_token(token)).is_admin
    finally:
        await h.close()
