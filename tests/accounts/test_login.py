"""GET/POST /login, /logout, /logout/all, /account/whoami, /capabilities, tokens."""

from __future__ import annotations

import hashlib

from tests.accounts.conftest import OPEN_REGISTRATION, MakeConfig
from tests.accounts.helpers import V3, assert_error, login, register_ok, whoami
from tests.support.harness import Harness, RecordingHandler, start_harness


async def test_login_flows(h: Harness) -> None:
    resp = await h.request("GET", f"{V3}/login")
    assert resp.status == 200
    assert resp.json == {"flows": [{"type": "m.login.password"}]}


async def test_login_by_localpart_full_id_and_legacy_user(h: Harness) -> None:
    await register_ok(h, "alice", "pw-alice-1")
    by_localpart = await login(h, "alice", "pw-alice-1")
    assert by_localpart.status == 200, by_localpart.body
    body = by_localpart.json
    assert body["user_id"] == "@alice:test.local"
    assert body["home_server"] == "test.local"
    assert body["well_known"] == {"m.homeserver": {"base_url": "http://test.local/"}}
    assert body["device_id"] and body["access_token"]

    by_full_id = await login(h, "@alice:test.local", "pw-alice-1")
    assert by_full_id.status == 200
    assert by_full_id.json["device_id"] != body["device_id"]
    assert by_full_id.json["access_token"] != body["access_token"]

    legacy = await h.request(
        "POST",
        f"{V3}/login",
        json={"type": "m.login.password", "user": "alice", "password": "pw-alice-1"},
    )
    assert legacy.status == 200
    assert legacy.json["user_id"] == "@alice:test.local"

    # r0 works too, and a chosen device ID is kept.
    r0 = await h.request(
        "POST",
        "/_matrix/client/r0/login",
        json={
            "type": "m.login.password",
            "user": "alice",
            "password": "pw-alice-1",
            "device_id": "MYDEVICE",
            "initial_device_display_name": "Laptop",
        },
    )
    assert r0.status == 200
    assert r0.json["device_id"] == "MYDEVICE"
    dev = await h.request("GET", f"{V3}/devices/MYDEVICE", token=r0.json["access_token"])
    assert dev.json["display_name"] == "Laptop"


async def test_wrong_password_and_unknown_user_look_the_same(h: Harness) -> None:
    await register_ok(h, "bob", "pw-bob-123")
    wrong = await login(h, "bob", "not-the-password")
    unknown = await login(h, "nobody", "not-the-password")
    other_server = await login(h, "@bob:elsewhere.org", "pw-bob-123")
    for resp in (wrong, unknown, other_server):
        assert_error(resp, 403, "M_FORBIDDEN")
    assert wrong.json == unknown.json == other_server.json


async def test_login_bad_input(h: Harness) -> None:
    url = f"{V3}/login"
    assert_error(await h.request("POST", url, body=b"{"), 400, "M_NOT_JSON")
    assert_error(await h.request("POST", url, json="str"), 400, "M_BAD_JSON")
    assert_error(await h.request("POST", url, json={}), 400, "M_BAD_JSON")
    assert_error(
        await h.request("POST", url, json={"type": "m.login.token", "token": "x"}),
        400,
        "M_UNKNOWN",
    )
    assert_error(
        await h.request("POST", url, json={"type": "m.login.password", "password": "x"}),
        400,
        "M_MISSING_PARAM",
    )
    assert_error(
        await h.request("POST", url, json={"type": "m.login.password", "user": "a"}),
        400,
        "M_MISSING_PARAM",
    )
    assert_error(
        await h.request("POST", url, json={"type": "m.login.password", "user": "a", "password": 5}),
        400,
        "M_BAD_JSON",
    )
    assert_error(
        await h.request(
            "POST",
            url,
            json={"type": "m.login.password", "identifier": "a", "password": "x"},
        ),
        400,
        "M_BAD_JSON",
    )
    # Third-party identifiers are not known here.
    assert_error(
        await h.request(
            "POST",
            url,
            json={
                "type": "m.login.password",
                "password": "x",
                "identifier": {
                    "type": "m.id.thirdparty",
                    "medium": "email",
                    "address": "a@example.org",
                },
            },
        ),
        403,
        "M_FORBIDDEN",
    )


async def test_whoami_and_token_errors(h: Harness) -> None:
    assert_error(await h.request("GET", f"{V3}/account/whoami"), 401, "M_MISSING_TOKEN")
    resp = await whoami(h, "syt_bogus_token")
    assert_error(resp, 401, "M_UNKNOWN_TOKEN")
    assert resp.json["soft_logout"] is False
    # The token also works as a query parameter.
    body = await register_ok(h, "carol")
    resp = await h.request("GET", f"{V3}/account/whoami?access_token={body['access_token']}")
    assert resp.status == 200 and resp.json["user_id"] == "@carol:test.local"


async def test_header_and_query_token_together_are_refused(h: Harness) -> None:
    token = (await register_ok(h, "erin"))["access_token"]
    # Even the same valid token twice: which one a proxy strips must not matter.
    for query_token in (token, "syt_other"):
        resp = await h.request(
            "GET", f"{V3}/account/whoami?access_token={query_token}", token=token
        )
        assert_error(resp, 401, "M_MISSING_TOKEN")
        assert "Mixing" in resp.json["error"]
    # An endpoint where a token is optional refuses the mix too.
    resp = await h.request("GET", f"{V3}/publicRooms?access_token={token}", token=token)
    assert_error(resp, 401, "M_MISSING_TOKEN")


async def test_logout_and_logout_all(h: Harness) -> None:
    await register_ok(h, "dan", "pw-dan-123")
    a = (await login(h, "dan", "pw-dan-123")).json
    b = (await login(h, "dan", "pw-dan-123")).json
    c = (await login(h, "dan", "pw-dan-123")).json

    assert (await whoami(h, a["access_token"])).status == 200  # now cached
    resp = await h.request("POST", f"{V3}/logout", token=a["access_token"], json={})
    assert resp.status == 200 and resp.json == {}
    assert_error(await whoami(h, a["access_token"]), 401, "M_UNKNOWN_TOKEN")
    assert (await whoami(h, b["access_token"])).status == 200
    # Logging out removes the device too.
    devices = await h.request("GET", f"{V3}/devices", token=b["access_token"])
    assert a["device_id"] not in {d["device_id"] for d in devices.json["devices"]}

    resp = await h.request("POST", f"{V3}/logout/all", token=b["access_token"])
    assert resp.status == 200
    for token in (b["access_token"], c["access_token"]):
        assert_error(await whoami(h, token), 401, "M_UNKNOWN_TOKEN")
    assert_error(await h.request("POST", f"{V3}/logout"), 401, "M_MISSING_TOKEN")


async def test_tokens_are_stored_hashed_and_never_logged(
    h: Harness, log_records: RecordingHandler
) -> None:
    body = await register_ok(h, "erin", "pw-erin-123")
    token = body["access_token"]
    prefix = "syt_ZXJpbg_"  # base64("erin")
    assert token.startswith(prefix)
    assert len(token) - len(prefix) >= 43  # 32 random bytes, urlsafe base64
    rows = await h.hs.db.fetchall("t", "SELECT token_hash, user_id FROM access_tokens")
    assert rows == [(hashlib.sha256(token.encode()).hexdigest(), "@erin:test.local")]
    assert all(token not in str(r) for r in rows)
    await whoami(h, token)
    await login(h, "erin", "pw-erin-123")
    for record in log_records.records:
        assert token not in record.getMessage()
        assert "pw-erin-123" not in record.getMessage()
    # The access log names the user.
    assert any(
        "@erin:test.local" in r.getMessage() and "whoami" in r.getMessage()
        for r in log_records.records
    )


async def test_deactivated_user_cannot_log_in(h: Harness) -> None:
    await register_ok(h, "fay", "pw-fay-1234")
    await h.hs.account.deactivate_user("@fay:test.local")
    resp = await login(h, "fay", "pw-fay-1234")
    assert_error(resp, 403, "M_USER_DEACTIVATED")
    # A wrong password does not reveal the deactivation.
    assert_error(await login(h, "fay", "wrong"), 403, "M_FORBIDDEN")


async def test_capabilities(h: Harness) -> None:
    body = await register_ok(h, "gus")
    assert_error(await h.request("GET", f"{V3}/capabilities"), 401, "M_MISSING_TOKEN")
    resp = await h.request("GET", f"{V3}/capabilities", token=body["access_token"])
    assert resp.status == 200
    caps = resp.json["capabilities"]
    assert caps["m.change_password"] == {"enabled": True}
    assert caps["m.room_versions"] == {
        "default": "10",
        "available": {"10": "stable", "11": "stable", "12": "stable"},
    }
    assert caps["m.set_displayname"] == {"enabled": True}
    assert caps["m.set_avatar_url"] == {"enabled": True}
    assert caps["m.3pid_changes"] == {"enabled": False}


async def test_password_login_disabled(make_hs_config: MakeConfig) -> None:
    h = await start_harness(
        [make_hs_config(password_config={"enabled": False}, **OPEN_REGISTRATION)]
    )
    try:
        user_id = await h.hs.registration.register_user("hank", "pw-hank-123")
        session = await h.hs.registration.create_login(user_id, None, None)
        assert (await h.request("GET", f"{V3}/login")).json == {"flows": []}
        assert_error(await login(h, "hank", "pw-hank-123"), 400, "M_UNKNOWN")
        caps = await h.request("GET", f"{V3}/capabilities", token=session["access_token"])
        assert caps.json["capabilities"]["m.change_password"] == {"enabled": False}
        resp = await h.request(
            "POST",
            f"{V3}/account/password",
            json={"new_password": "pw-new-1234"},
            token=session["access_token"],
        )
        assert_error(resp, 403, "M_FORBIDDEN")
    finally:
        await h.close()


async def test_login_with_pepper_matches_synapse_format(make_hs_config: MakeConfig) -> None:
    import bcrypt

    h = await start_harness(
        [make_hs_config(password_config={"pepper": "PEPPER"}, **OPEN_REGISTRATION)]
    )
    try:
        await h.hs.registration.register_user("ivy", "pw-ivy-1234")
        user = await h.hs.account_store.get_user("@ivy:test.local")
        assert user is not None and user.password_hash is not None
        # What Synapse would check: bcrypt over password + pepper.
        assert bcrypt.checkpw(b"pw-ivy-1234PEPPER", user.password_hash.encode())
        # A hash made by Synapse (same scheme) logs in.
        synapse_hash = bcrypt.hashpw(b"from-synapsePEPPER", bcrypt.gensalt(4)).decode()
        await h.hs.account_store.set_password_hash("@ivy:test.local", synapse_hash)
        assert (await login(h, "ivy", "from-synapse")).status == 200
    finally:
        await h.close()
