"""POST /account/password and /account/deactivate."""

from __future__ import annotations

from tests.accounts.helpers import V3, assert_error, login, password_auth, register_ok, whoami
from tests.support.harness import Harness


async def test_change_password_logs_out_other_devices(h: Harness) -> None:
    first = await register_ok(h, "alice", "pw-old-1234")
    other = (await login(h, "alice", "pw-old-1234")).json
    token = first["access_token"]
    url = f"{V3}/account/password"

    resp = await h.request("POST", url, token=token, json={"new_password": "pw-new-1234"})
    assert resp.status == 401
    assert resp.json["flows"] == [{"stages": ["m.login.password"]}]
    resp = await h.request(
        "POST",
        url,
        token=token,
        json={
            "new_password": "pw-new-1234",
            "auth": password_auth("alice", "pw-old-1234", resp.json["session"]),
        },
    )
    assert resp.status == 200 and resp.json == {}

    assert (await whoami(h, token)).status == 200  # the current device is kept
    assert_error(await whoami(h, other["access_token"]), 401, "M_UNKNOWN_TOKEN")
    assert_error(await login(h, "alice", "pw-old-1234"), 403, "M_FORBIDDEN")
    assert (await login(h, "alice", "pw-new-1234")).status == 200


async def test_change_password_keeping_devices(h: Harness) -> None:
    first = await register_ok(h, "bob", "pw-old-1234")
    other = (await login(h, "bob", "pw-old-1234")).json
    resp = await h.request(
        "POST",
        f"{V3}/account/password",
        token=first["access_token"],
        json={
            "new_password": "pw-new-1234",
            "logout_devices": False,
            "auth": password_auth("bob", "pw-old-1234"),
        },
    )
    assert resp.status == 200, resp.body
    assert (await whoami(h, other["access_token"])).status == 200


async def test_change_password_bad_input(h: Harness) -> None:
    first = await register_ok(h, "carol", "pw-old-1234")
    token = first["access_token"]
    url = f"{V3}/account/password"
    assert_error(await h.request("POST", url, json={"new_password": "x"}), 401, "M_MISSING_TOKEN")
    assert_error(await h.request("POST", url, body=b"[", token=token), 400, "M_NOT_JSON")
    assert_error(await h.request("POST", url, json={}, token=token), 400, "M_MISSING_PARAM")
    assert_error(
        await h.request("POST", url, json={"new_password": 1}, token=token), 400, "M_INVALID_PARAM"
    )
    assert_error(
        await h.request(
            "POST", url, json={"new_password": "pw-x-12345", "logout_devices": 1}, token=token
        ),
        400,
        "M_BAD_JSON",
    )
    # Wrong current password.
    resp = await h.request(
        "POST",
        url,
        token=token,
        json={"new_password": "pw-new-1234", "auth": password_auth("carol", "nope")},
    )
    assert resp.status == 401 and resp.json["errcode"] == "M_FORBIDDEN"
    assert (await login(h, "carol", "pw-old-1234")).status == 200


async def test_deactivate(h: Harness) -> None:
    first = await register_ok(h, "dave", "pw-dave-123")
    other = (await login(h, "dave", "pw-dave-123")).json
    url = f"{V3}/account/deactivate"
    resp = await h.request("POST", url, token=first["access_token"])
    assert resp.status == 401
    resp = await h.request(
        "POST",
        url,
        token=first["access_token"],
        json={
            "auth": password_auth("@dave:test.local", "pw-dave-123", resp.json["session"]),
            "erase": False,
        },
    )
    assert resp.status == 200, resp.body
    assert resp.json == {"id_server_unbind_result": "no-support"}
    for token in (first["access_token"], other["access_token"]):
        assert_error(await whoami(h, token), 401, "M_UNKNOWN_TOKEN")
    assert_error(await login(h, "dave", "pw-dave-123"), 403, "M_USER_DEACTIVATED")
    # The name stays taken.
    resp = await h.request("GET", f"{V3}/register/available?username=dave")
    assert_error(resp, 400, "M_USER_IN_USE")


async def test_set_admin_is_seen_by_cached_tokens(h: Harness) -> None:
    first = await register_ok(h, "erin")
    token = first["access_token"]
    requester = await h.hs.auth.get_user_by_access_token(token)
    assert not requester.is_admin
    await h.hs.account.set_admin("@erin:test.local", True)
    requester = await h.hs.auth.get_user_by_access_token(token)
    assert requester.is_admin and requester.user_id == "@erin:test.local"
    assert requester.token_id is not None and token not in requester.token_id
