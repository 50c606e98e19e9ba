"""OpenID tokens: request_token on the client API, userinfo on the federation API."""

from __future__ import annotations

from urllib.parse import quote

from hamlet.handlers.accounts import openid
from tests.accounts.conftest import OPEN_REGISTRATION, MakeConfig
from tests.accounts.helpers import V3, assert_error, register_ok
from tests.conftest import advance
from tests.support.harness import Harness, Response, start_harness
from tests.support.users import make_user

USERINFO = "/_matrix/federation/v1/openid/userinfo"


async def _request(h: Harness, user_id: str, token: str, host: str | None = None) -> Response:
    path = f"{V3}/user/{quote(user_id)}/openid/request_token"
    return await h.request("POST", path, json={}, token=token, host=host)


async def _userinfo(h: Harness, token: str, host: str | None = None) -> Response:
    return await h.request("GET", f"{USERINFO}?access_token={quote(token)}", host=host)


async def test_a_token_names_its_user_for_an_hour(harness: Harness) -> None:
    alice = await make_user(harness, "alice")
    resp = await _request(harness, alice.user_id, alice.token)
    assert resp.status == 200, resp.json
    body = resp.json
    assert body["token_type"] == "Bearer"
    assert body["matrix_server_name"] == harness.hs.server_name
    assert body["expires_in"] == 3600
    assert (await _userinfo(harness, body["access_token"])).json == {"sub": alice.user_id}
    # The access token itself is no OpenID token, and vice versa.
    assert_error(await _userinfo(harness, alice.token), 401, "M_UNKNOWN_TOKEN")
    resp = await harness.request("GET", f"{V3}/account/whoami", token=body["access_token"])
    assert_error(resp, 401, "M_UNKNOWN_TOKEN")
    # It survives a restart, and not its hour.
    await harness.restart()
    assert (await _userinfo(harness, body["access_token"])).status == 200
    await advance(3601)
    assert_error(await _userinfo(harness, body["access_token"]), 401, "M_UNKNOWN_TOKEN")
    # Expired tokens are purged in the background.
    await advance(openid.PURGE_INTERVAL_S)
    left = await harness.hs.db.fetchval("test", "SELECT COUNT(*) FROM openid_tokens")
    assert left == 0


async def test_bad_requests(harness: Harness) -> None:
    alice = await make_user(harness, "alice")
    bob = await make_user(harness, "bob")
    assert_error(await _request(harness, bob.user_id, alice.token), 403, "M_FORBIDDEN")
    assert_error(await _request(harness, alice.user_id, "nope"), 401, "M_UNKNOWN_TOKEN")
    path = f"{V3}/user/{quote(alice.user_id)}/openid/request_token"
    resp = await harness.request("POST", path, body=b"[1]", token=alice.token)
    assert resp.status == 400 and resp.json["errcode"] in ("M_BAD_JSON", "M_NOT_JSON")
    resp = await harness.request("GET", USERINFO)
    assert_error(resp, 400, "M_MISSING_PARAM")
    assert_error(await _userinfo(harness, "x" * 5000), 401, "M_UNKNOWN_TOKEN")


async def test_a_user_asking_in_a_loop_keeps_only_the_newest_tokens(harness: Harness) -> None:
    alice = await make_user(harness, "alice")
    tokens = []
    for _ in range(openid.MAX_TOKENS_PER_USER + 5):
        tokens.append((await _request(harness, alice.user_id, alice.token)).json["access_token"])
        await advance(1)
    rows = await harness.hs.db.fetchval("test", "SELECT COUNT(*) FROM openid_tokens")
    assert rows == openid.MAX_TOKENS_PER_USER
    assert_error(await _userinfo(harness, tokens[0]), 401, "M_UNKNOWN_TOKEN")
    assert (await _userinfo(harness, tokens[-1])).status == 200


async def test_tenants_know_only_their_own_tokens(make_hs_config: MakeConfig) -> None:
    h = await start_harness(
        [
            make_hs_config("a.test", **OPEN_REGISTRATION),
            make_hs_config("b.test", **OPEN_REGISTRATION),
        ]
    )
    try:
        a = await register_ok(h, "alice", "pw-on-a-123", host="a.test")
        resp = await _request(h, a["user_id"], a["access_token"], host="a.test")
        token = resp.json["access_token"]
        assert (await _userinfo(h, token, host="a.test")).json == {"sub": "@alice:a.test"}
        assert_error(await _userinfo(h, token, host="b.test"), 401, "M_UNKNOWN_TOKEN")
    finally:
        await h.close()
