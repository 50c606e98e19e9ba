"""inhibit_user_in_use_error and password_config.enabled: only_for_reauth, through HTTP."""

from __future__ import annotations

import dataclasses

from hamlet.config.model import PasswordConfig
from tests.accounts.conftest import OPEN_REGISTRATION, MakeConfig
from tests.accounts.helpers import V3, assert_error, login, password_auth, register_ok
from tests.support.harness import Harness, start_harness


async def _available(h: Harness, username: str) -> tuple[int, dict[str, object]]:
    resp = await h.request("GET", f"{V3}/register/available?username={username}")
    return resp.status, resp.json


async def test_inhibit_user_in_use_error_hides_taken_names_until_the_end(
    make_hs_config: MakeConfig,
) -> None:
    h = await start_harness([make_hs_config(**OPEN_REGISTRATION, inhibit_user_in_use_error=True)])
    try:
        await register_ok(h, "taken")
        assert await _available(h, "taken") == (200, {"available": True})
        # Registration starts like any other (the auth stages are offered)...
        resp = await h.request(
            "POST", f"{V3}/register", json={"username": "taken", "password": "pw-12345"}
        )
        assert resp.status == 401 and "flows" in resp.json
        # ...and only the completed registration says the name is taken.
        resp = await h.request(
            "POST",
            f"{V3}/register",
            json={
                "username": "taken",
                "password": "pw-12345",
                "auth": {"type": "m.login.dummy", "session": resp.json["session"]},
            },
        )
        assert_error(resp, 400, "M_USER_IN_USE")
        # Invalid names are still refused at once.
        status, body = await _available(h, "Not_Valid")
        assert (status, body["errcode"]) == (400, "M_INVALID_USERNAME")
    finally:
        await h.close()


async def test_without_inhibit_taken_names_are_refused_at_once(h: Harness) -> None:
    await register_ok(h, "taken")
    status, body = await _available(h, "taken")
    assert (status, body["errcode"]) == (400, "M_USER_IN_USE")
    resp = await h.request(
        "POST", f"{V3}/register", json={"username": "taken", "password": "pw-12345"}
    )
    assert_error(resp, 400, "M_USER_IN_USE")


async def test_only_for_reauth_refuses_password_login_but_keeps_reauth(
    make_hs_config: MakeConfig,
) -> None:
    config = make_hs_config(**OPEN_REGISTRATION)
    h = await start_harness([config])
    try:
        token = (await register_ok(h, "frank", "pw-frank-1"))["access_token"]
        assert (await login(h, "frank", "pw-frank-1")).status == 200
        reauth_only = PasswordConfig(enabled=True, only_for_reauth=True)
        await h.restart(config=dataclasses.replace(config, password_config=reauth_only))
        flows = await h.request("GET", f"{V3}/login")
        assert {"type": "m.login.password"} not in flows.json["flows"]
        assert_error(await login(h, "frank", "pw-frank-1"), 400, "M_UNKNOWN")
        # An open session still proves itself with the password.
        resp = await h.request(
            "POST",
            f"{V3}/account/password",
            token=token,
            json={"new_password": "pw-frank-2", "auth": password_auth("frank", "pw-frank-1")},
        )
        assert resp.status == 200, resp.body
    finally:
        await h.close()
