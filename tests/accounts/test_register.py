"""POST /register, /register/available, guests, closed registration, races."""

from __future__ import annotations

import asyncio

import pytest

from tests.accounts.conftest import OPEN_REGISTRATION, MakeConfig
from tests.accounts.helpers import V3, assert_error, login, register, register_ok, whoami
from tests.support.harness import Harness, start_harness


async def test_register_flow_with_session(h: Harness) -> None:
    # First request without auth: 401 with flows and a session.
    resp = await h.request(
        "POST", f"{V3}/register", json={"username": "alice", "password": "pw12345678"}
    )
    assert resp.status == 401
    assert resp.json["flows"] == [{"stages": ["m.login.dummy"]}]
    assert resp.json["completed"] == []
    session = resp.json["session"]
    assert isinstance(session, str) and session

    resp = await h.request(
        "POST",
        f"{V3}/register",
        json={
            "username": "alice",
            "password": "pw12345678",
            "initial_device_display_name": "Alice's phone",
            "auth": {"type": "m.login.dummy", "session": session},
        },
    )
    assert resp.status == 200, resp.body
    body = resp.json
    assert body["user_id"] == "@alice:test.local"
    assert body["home_server"] == "test.local"
    assert body["access_token"].startswith("syt_")
    assert body["device_id"]

    me = await whoami(h, body["access_token"])
    assert me.json == {
        "user_id": "@alice:test.local",
        "device_id": body["device_id"],
        "is_guest": False,
    }
    devices = await h.request("GET", f"{V3}/devices", token=body["access_token"])
    assert devices.json["devices"][0]["display_name"] == "Alice's phone"

    # The session is used up: it cannot register another account.
    again = await h.request(
        "POST",
        f"{V3}/register",
        json={
            "username": "alice2",
            "password": "pw12345678",
            "auth": {"type": "m.login.dummy", "session": session},
        },
    )
    assert_error(again, 400, "M_UNKNOWN")


async def test_register_sets_displayname_and_hash(h: Harness) -> None:
    await register_ok(h, "bob", "s3cret-pass")
    hs = h.hs
    assert await hs.account_store.get_displayname("@bob:test.local") == "bob"
    user = await hs.account_store.get_user("@bob:test.local")
    assert user is not None
    assert user.password_hash is not None and user.password_hash.startswith("$2b$04$")
    assert not user.admin and not user.deactivated and not user.is_guest


async def test_register_with_device_id_and_inhibit_login(h: Harness) -> None:
    body = await register_ok(h, "carol")
    resp = await register(h, "dave", device_id="DAVEDEV")
    assert resp.status == 200
    assert resp.json["device_id"] == "DAVEDEV"
    assert body["device_id"] != "DAVEDEV"

    resp = await register(h, "erin", inhibit_login=True)
    assert resp.status == 200
    assert resp.json == {"user_id": "@erin:test.local", "home_server": "test.local"}
    # No device or token was made; the account exists and can log in.
    assert (await login(h, "erin", "correct horse")).status == 200


async def test_register_without_username_generates_numeric_ids(h: Harness) -> None:
    first = await register(h, None)
    second = await register(h, None)
    assert first.status == 200 and second.status == 200, (first.body, second.body)
    a = int(first.json["user_id"][1:].split(":")[0])
    b = int(second.json["user_id"][1:].split(":")[0])
    assert b == a + 1


@pytest.mark.parametrize(
    "username",
    ["Alice", "al:ice", "al ice", "", "x" * 250, "_private", "1234", "ali\u00e9ce"],
)
async def test_invalid_usernames(h: Harness, username: str) -> None:
    resp = await register(h, username)
    assert_error(resp, 400, "M_INVALID_USERNAME")
    assert await h.hs.account_store.count_users() == 0


@pytest.mark.parametrize("username", ["Alice", "al:ice", "x" * 250])
async def test_available_refuses_invalid(h: Harness, username: str) -> None:
    from urllib.parse import quote

    resp = await h.request("GET", f"{V3}/register/available?username={quote(username)}")
    assert_error(resp, 400, "M_INVALID_USERNAME")


async def test_longest_allowed_username(h: Harness) -> None:
    # "@" + localpart + ":test.local" may be 255 bytes, not more.
    fits = "a" * (255 - len("@:test.local"))
    assert (await register(h, fits)).status == 200
    assert_error(await register(h, fits + "b"), 400, "M_INVALID_USERNAME")


async def test_available_and_user_in_use(h: Harness) -> None:
    resp = await h.request("GET", f"{V3}/register/available?username=frank")
    assert resp.status == 200 and resp.json == {"available": True}
    await register_ok(h, "frank")
    resp = await h.request("GET", f"{V3}/register/available?username=frank")
    assert_error(resp, 400, "M_USER_IN_USE")
    assert_error(await register(h, "frank"), 400, "M_USER_IN_USE")
    missing = await h.request("GET", f"{V3}/register/available")
    assert_error(missing, 400, "M_MISSING_PARAM")


async def test_concurrent_registrations_of_one_name(h: Harness) -> None:
    results = await asyncio.gather(*(register(h, "grace", f"pw-{i}-xxxx") for i in range(2)))
    statuses = sorted(r.status for r in results)
    assert statuses == [200, 400], [r.body for r in results]
    loser = next(r for r in results if r.status == 400)
    assert loser.json["errcode"] == "M_USER_IN_USE"
    winner = next(r for r in results if r.status == 200)
    assert winner.json["user_id"] == "@grace:test.local"
    assert await h.hs.account_store.count_users() == 1


async def test_bad_input(h: Harness) -> None:
    url = f"{V3}/register"
    assert_error(await h.request("POST", url, body=b"{not json"), 400, "M_NOT_JSON")
    assert_error(await h.request("POST", url, json=[1, 2]), 400, "M_BAD_JSON")
    assert_error(
        await h.request("POST", url, json={"username": 5, "password": "x"}), 400, "M_BAD_JSON"
    )
    assert_error(
        await h.request("POST", url, json={"username": "hal", "password": 12}),
        400,
        "M_INVALID_PARAM",
    )
    assert_error(
        await h.request("POST", url, json={"username": "hal", "password": "pw", "auth": "x"}),
        400,
        "M_BAD_JSON",
    )
    assert_error(
        await h.request(
            "POST",
            url,
            json={
                "username": "hal",
                "password": "pw",
                "inhibit_login": "yes",
                "auth": {"type": "m.login.dummy"},
            },
        ),
        400,
        "M_BAD_JSON",
    )
    # No password: refused once UIA is done.
    resp = await h.request("POST", url, json={"username": "hal", "auth": {"type": "m.login.dummy"}})
    assert_error(resp, 400, "M_MISSING_PARAM")
    # An auth type that is not offered.
    resp = await h.request(
        "POST",
        url,
        json={"username": "hal", "password": "pw", "auth": {"type": "m.login.password"}},
    )
    assert resp.status == 401
    assert resp.json["errcode"] == "M_UNRECOGNIZED"
    assert_error(await h.request("POST", url + "?kind=admin", json={}), 400, "M_INVALID_PARAM")
    assert not await h.hs.account_store.user_exists("@hal:test.local")


async def test_unknown_session(h: Harness) -> None:
    resp = await h.request(
        "POST",
        f"{V3}/register",
        json={
            "username": "ivan",
            "password": "pw123456",
            "auth": {"type": "m.login.dummy", "session": "no-such-session"},
        },
    )
    assert_error(resp, 400, "M_UNKNOWN")


async def test_guest_registration(make_hs_config: MakeConfig) -> None:
    closed = await start_harness([make_hs_config(**OPEN_REGISTRATION)])
    try:
        resp = await closed.request("POST", f"{V3}/register?kind=guest", json={})
        assert_error(resp, 403, "M_GUEST_ACCESS_FORBIDDEN")
    finally:
        await closed.close()

    guests = await start_harness(
        [make_hs_config("guests.local", allow_guest_access=True, **OPEN_REGISTRATION)]
    )
    try:
        resp = await guests.request("POST", f"{V3}/register?kind=guest", json={})
        assert resp.status == 200, resp.body
        token = resp.json["access_token"]
        me = await whoami(guests, token)
        assert me.json["is_guest"] is True
        # Guests may not use endpoints that are not open to them.
        resp = await guests.request(
            "POST", f"{V3}/account/password", json={"new_password": "x"}, token=token
        )
        assert_error(resp, 403, "M_GUEST_ACCESS_FORBIDDEN")
    finally:
        await guests.close()


async def test_registration_closed(make_hs_config: MakeConfig) -> None:
    h = await start_harness([make_hs_config()])
    try:
        resp = await register(h, "judy")
        assert_error(resp, 403, "M_FORBIDDEN")
        resp = await h.request("GET", f"{V3}/register/available?username=judy")
        assert_error(resp, 403, "M_FORBIDDEN")
        # Users can still be made by the server (shared secret, admin API).
        await h.hs.registration.register_user("judy", "pw-judy-1")
        assert (await login(h, "judy", "pw-judy-1")).status == 200
    finally:
        await h.close()


async def test_password_policy(make_hs_config: MakeConfig) -> None:
    h = await start_harness(
        [
            make_hs_config(
                password_config={
                    "policy": {"enabled": True, "minimum_length": 10, "require_digit": True}
                },
                **OPEN_REGISTRATION,
            )
        ]
    )
    try:
        assert_error(await register(h, "kim", "short1"), 400, "M_PASSWORD_TOO_SHORT")
        assert_error(await register(h, "kim", "longenough"), 400, "M_PASSWORD_NO_DIGIT")
        assert (await register(h, "kim", "longenough1")).status == 200
    finally:
        await h.close()
