"""Synapse's shared-secret registration API and `hamlet register-user`."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

from hamlet.cli import main as cli_main
from hamlet.handlers.accounts.shared_secret import registration_mac
from tests.accounts.conftest import MakeConfig
from tests.accounts.helpers import assert_error, login
from tests.support.harness import Harness, start_harness

URL = "/_synapse/admin/v1/register"
SECRET = "s3cret"  # what the test config sets


async def _nonce(h: Harness) -> str:
    resp = await h.request("GET", URL)
    assert resp.status == 200
    nonce: str = resp.json["nonce"]
    return nonce


def _body(
    nonce: str,
    username: str,
    password: str,
    admin: bool = False,
    user_type: str | None = None,
    secret: str = SECRET,
) -> dict[str, Any]:
    body: dict[str, Any] = {
        "nonce": nonce,
        "username": username,
        "password": password,
        "admin": admin,
        "mac": registration_mac(secret, nonce, username, password, admin, user_type),
    }
    if user_type is not None:
        body["user_type"] = user_type
    return body


async def test_register_admin_with_registration_closed(harness: Harness) -> None:
    assert not harness.hs.config.enable_registration
    nonce = await _nonce(harness)
    resp = await harness.request("POST", URL, json=_body(nonce, "root", "pw-root-123", True))
    assert resp.status == 200, resp.body
    assert resp.json["user_id"] == "@root:test.local"
    assert resp.json["home_server"] == "test.local"
    assert resp.json["access_token"] and resp.json["device_id"]
    user = await harness.hs.account_store.get_user("@root:test.local")
    assert user is not None and user.admin
    assert (await login(harness, "root", "pw-root-123")).status == 200

    # Nonces are single-use.
    resp = await harness.request("POST", URL, json=_body(nonce, "root2", "pw-root-123", True))
    assert_error(resp, 400, "M_UNKNOWN")


async def test_user_type_and_lowercasing(harness: Harness) -> None:
    nonce = await _nonce(harness)
    resp = await harness.request(
        "POST", URL, json=_body(nonce, "HelpDesk", "pw-1234567", user_type="support")
    )
    assert resp.status == 200, resp.body
    assert resp.json["user_id"] == "@helpdesk:test.local"
    user = await harness.hs.account_store.get_user("@helpdesk:test.local")
    assert user is not None and user.user_type == "support" and not user.admin
    nonce = await _nonce(harness)
    resp = await harness.request("POST", URL, json=_body(nonce, "x", "pw", user_type="alien"))
    assert_error(resp, 400, "M_INVALID_PARAM")


async def test_bad_mac_nonce_and_fields(harness: Harness) -> None:
    nonce = await _nonce(harness)
    resp = await harness.request("POST", URL, json=_body(nonce, "eve", "pw", secret="wrong"))
    assert_error(resp, 403, "M_FORBIDDEN")
    # The MAC covers the admin flag.
    nonce = await _nonce(harness)
    body = _body(nonce, "eve", "pw", admin=False)
    body["admin"] = True
    assert_error(await harness.request("POST", URL, json=body), 403, "M_FORBIDDEN")
    assert_error(
        await harness.request("POST", URL, json=_body("made-up", "eve", "pw")), 400, "M_UNKNOWN"
    )
    assert_error(await harness.request("POST", URL, body=b"{"), 400, "M_NOT_JSON")
    nonce = await _nonce(harness)
    assert_error(
        await harness.request("POST", URL, json={"nonce": nonce, "username": 3}),
        400,
        "M_INVALID_PARAM",
    )
    assert not await harness.hs.account_store.user_exists("@eve:test.local")
    # Invalid and taken names.
    nonce = await _nonce(harness)
    resp = await harness.request("POST", URL, json=_body(nonce, "bad:name", "pw"))
    assert_error(resp, 400, "M_INVALID_USERNAME")


async def test_nonces_expire(harness: Harness) -> None:
    nonce = await _nonce(harness)
    await asyncio.get_running_loop().advance(61)  # type: ignore[attr-defined]
    resp = await harness.request("POST", URL, json=_body(nonce, "late", "pw-1234567"))
    assert_error(resp, 400, "M_UNKNOWN")


async def test_disabled_without_secret(make_hs_config: MakeConfig) -> None:
    h = await start_harness([make_hs_config(registration_shared_secret=None)])
    try:
        assert_error(await h.request("GET", URL), 400, "M_UNKNOWN")
    finally:
        await h.close()


async def test_cli_register_user(make_hs_config: MakeConfig, tmp_path: Path) -> None:
    h = await start_harness([make_hs_config()])
    try:
        port = h.client.server.port
        config_path = tmp_path / "cli.yaml"
        config_path.write_text(
            "server_name: test.local\n"
            f"registration_shared_secret: {SECRET}\n"
            f"database: {{name: sqlite3, args: {{database: {tmp_path / 'unused.db'}}}}}\n"
            f"listeners: [{{port: {port}, bind_addresses: ['127.0.0.1']}}]\n"
        )
        loop = asyncio.get_running_loop()

        def run(*argv: str) -> int:
            return cli_main(["register-user", "-c", str(config_path), *argv])

        # Default URL: the config's first listener, naming the tenant in Host.
        rc = await loop.run_in_executor(None, run, "-u", "carol", "-p", "pw-carol-1", "--admin")
        assert rc == 0
        user = await h.hs.account_store.get_user("@carol:test.local")
        assert user is not None and user.admin
        assert (await login(h, "carol", "pw-carol-1")).status == 200
        # Taken: fails with a message, exit status 1.
        rc = await loop.run_in_executor(None, run, "-u", "carol", "-p", "x")
        assert rc == 1
        # An explicit URL (the single-tenant case).
        single = await start_harness([make_hs_config("other.local")], single_tenant_fallback=True)
        try:
            url = f"http://127.0.0.1:{single.client.server.port}"
            rc = await loop.run_in_executor(None, run, "-u", "dave", "-p", "pw", "--url", url)
            assert rc == 0
            assert await single.hs.account_store.user_exists("@dave:other.local")
        finally:
            await single.close()
    finally:
        await h.close()
