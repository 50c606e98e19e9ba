"""Passwords past bcrypt's 72 bytes: refused when new, checked as Synapse did when imported."""

from __future__ import annotations

import unicodedata

import bcrypt

from hamlet.handlers.accounts.passwords import PasswordHasher
from hamlet.handlers.accounts.shared_secret import registration_mac
from tests.accounts.conftest import OPEN_REGISTRATION, MakeConfig
from tests.accounts.helpers import V3, assert_error, login, password_auth, register, register_ok
from tests.support.harness import Harness, start_harness
from tests.support.users import make_user

LONG = "é" * 40  # 40 characters, 80 bytes
AT_LIMIT = "é" * 36  # 72 bytes
PEPPER = "p" * 30


def synapse_hash(password: str, pepper: str = "") -> str:
    """What Synapse stored: bcrypt over the first 72 bytes of NFKC(password) + pepper."""
    raw = (unicodedata.normalize("NFKC", password) + pepper).encode("utf-8")[:72]
    return bcrypt.hashpw(raw, bcrypt.gensalt(4)).decode("ascii")


async def test_register_refuses_a_password_over_72_bytes(h: Harness) -> None:
    assert_error(await register(h, "long", LONG), 400, "M_INVALID_PARAM")
    assert await h.hs.account_store.get_user("@long:test.local") is None
    assert (await register(h, "limit", AT_LIMIT)).status == 200
    assert (await login(h, "limit", AT_LIMIT)).status == 200
    assert_error(await login(h, "limit", "é" * 35), 403, "M_FORBIDDEN")


async def test_shared_secret_registration_refuses_a_long_password(h: Harness) -> None:
    url = "/_synapse/admin/v1/register"
    nonce = (await h.request("GET", url)).json["nonce"]
    body = {
        "nonce": nonce,
        "username": "root",
        "password": LONG,
        "admin": True,
        "mac": registration_mac("s3cret", nonce, "root", LONG, True, None),
    }
    assert_error(await h.request("POST", url, json=body), 400, "M_INVALID_PARAM")
    assert await h.hs.account_store.get_user("@root:test.local") is None


async def test_password_change_refuses_a_long_password_and_keeps_the_old(h: Harness) -> None:
    token = (await register_ok(h, "carol", "pw-old-1234"))["access_token"]
    resp = await h.request(
        "POST",
        f"{V3}/account/password",
        token=token,
        json={"new_password": LONG, "auth": password_auth("carol", "pw-old-1234")},
    )
    assert_error(resp, 400, "M_INVALID_PARAM")
    assert (await login(h, "carol", "pw-old-1234")).status == 200


async def test_a_pepper_never_makes_a_password_unusable(make_hs_config: MakeConfig) -> None:
    # 30 bytes of pepper plus a 50-byte password is 80 bytes for bcrypt.
    password = "x" * 50
    h = await start_harness(
        [make_hs_config(**OPEN_REGISTRATION, password_config={"pepper": PEPPER})]
    )
    try:
        assert (await register(h, "peppered", password)).status == 200
        assert (await login(h, "peppered", password)).status == 200
        assert_error(await login(h, "peppered", "x" * 49 + "y"), 403, "M_FORBIDDEN")
        # The stored hash is the one Synapse would have made, so it moves back.
        user = await h.hs.account_store.get_user("@peppered:test.local")
        assert user is not None and user.password_hash is not None
        raw = (password + PEPPER).encode()[:72]
        assert bcrypt.checkpw(raw, user.password_hash.encode())
    finally:
        await h.close()


async def test_an_imported_hash_of_a_long_password_logs_in(h: Harness) -> None:
    await register_ok(h, "imported", "pw-placeholder-1")
    await h.hs.account_store.set_password_hash("@imported:test.local", synapse_hash(LONG))
    assert (await login(h, "imported", LONG)).status == 200
    assert_error(await login(h, "imported", "é" * 35 + "e"), 403, "M_FORBIDDEN")
    assert_error(await login(h, "imported", "a" * 500), 403, "M_FORBIDDEN")


async def test_check_accepts_a_hash_made_over_the_truncated_input() -> None:
    hasher = PasswordHasher(pepper=PEPPER, rounds=4, tenant="unit.test")
    password = "ü" * 40
    assert await hasher.check(password, synapse_hash(password, PEPPER))
    assert not await hasher.check("ü" * 20, synapse_hash(password, PEPPER))
    # Hashes made before Hamlet normalised as Synapse does still match.
    composed = "ﬁle password"  # NFKC turns the ligature into "fi"
    legacy = bcrypt.hashpw((composed + PEPPER).encode(), bcrypt.gensalt(4)).decode()
    assert await hasher.check(composed, legacy)
    assert await hasher.check(composed, synapse_hash(composed, PEPPER))
    assert not await hasher.check("file password", legacy)
    assert not await hasher.check(password, "not a bcrypt hash")


async def test_admin_api_refuses_a_long_password_before_changing_anything(h: Harness) -> None:
    admin = await make_user(h, "root", admin=True)
    await register_ok(h, "dora", "pw-dora-123")
    url = "/_synapse/admin/v2/users/@dora:test.local"
    resp = await h.request(
        "PUT", url, token=admin.token, json={"displayname": "Renamed", "password": LONG}
    )
    assert_error(resp, 400, "M_INVALID_PARAM")
    assert (await h.request("GET", url, token=admin.token)).json["displayname"] == "dora"
    assert (await login(h, "dora", "pw-dora-123")).status == 200

    url = "/_synapse/admin/v2/users/@newbie:test.local"
    resp = await h.request("PUT", url, token=admin.token, json={"password": LONG})
    assert_error(resp, 400, "M_INVALID_PARAM")
    assert await h.hs.account_store.get_user("@newbie:test.local") is None
