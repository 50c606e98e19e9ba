"""One user's devices, one-time keys, account data and status message are bounded."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import pytest

from tests.accounts.conftest import OPEN_REGISTRATION, MakeConfig
from tests.accounts.helpers import V3, assert_error, login, register_ok, whoami
from tests.conftest import advance
from tests.support.harness import Harness, start_harness

CAPS = {
    "max_devices_per_user": 3,
    "max_one_time_keys_per_algorithm": 5,
    "max_account_data_size": 1000,
    "max_account_data_entries": 3,
    "max_status_msg_length": 20,
}


@pytest.fixture
async def h(make_hs_config: MakeConfig) -> AsyncIterator[Harness]:
    harness = await start_harness([make_hs_config(**OPEN_REGISTRATION, limits=CAPS)])
    yield harness
    await harness.close()


async def test_a_new_device_beyond_the_cap_retires_the_least_recently_used(h: Harness) -> None:
    first = await register_ok(h, "alice", "pw-alice-1")
    tokens = [first["access_token"]]
    for _ in range(2):
        await advance(60)
        tokens.append((await login(h, "alice", "pw-alice-1")).json["access_token"])
    # The first device is used again, so the second is now the least recently used.
    await advance(60)
    assert (await whoami(h, tokens[0])).status == 200
    await advance(60)
    resp = await login(h, "alice", "pw-alice-1")
    assert resp.status == 200, resp.body
    tokens.append(resp.json["access_token"])
    devices = (await h.request("GET", f"{V3}/devices", token=tokens[0])).json["devices"]
    assert len(devices) == 3
    assert [(await whoami(h, t)).status for t in tokens] == [200, 401, 200, 200]


async def upload_keys(h: Harness, token: str, first: int, n: int) -> Any:
    keys = {f"signed_curve25519:K{i}": {"key": f"k{i}"} for i in range(first, first + n)}
    return await h.request("POST", f"{V3}/keys/upload", token=token, json={"one_time_keys": keys})


async def test_one_time_keys_per_device(h: Harness) -> None:
    token = (await register_ok(h, "bob"))["access_token"]
    resp = await upload_keys(h, token, 0, 4)
    assert resp.json["one_time_key_counts"]["signed_curve25519"] == 4
    assert_error(await upload_keys(h, token, 4, 2), 400, "M_INVALID_PARAM")
    resp = await upload_keys(h, token, 4, 1)
    assert resp.json["one_time_key_counts"]["signed_curve25519"] == 5
    # Re-uploading stored keys is not an addition.
    assert (await upload_keys(h, token, 0, 5)).status == 200
    assert_error(await upload_keys(h, token, 5, 1), 400, "M_INVALID_PARAM")


async def test_account_data_size_and_count(h: Harness) -> None:
    carol = await register_ok(h, "carol")
    token, user = carol["access_token"], carol["user_id"]
    base = f"{V3}/user/{user}"

    async def put(path: str, content: Any) -> Any:
        return await h.request("PUT", base + path, token=token, json=content)

    assert (await put("/account_data/a.one", {"v": 1})).status == 200
    assert_error(await put("/account_data/a.one", {"v": "x" * 2000}), 413, "M_TOO_LARGE")
    assert (await h.request("GET", base + "/account_data/a.one", token=token)).json == {"v": 1}
    room = "!r:test.local"
    assert (await put(f"/rooms/{room}/account_data/a.two", {})).status == 200
    assert (await put(f"/rooms/{room}/tags/u.big", {"pad": "y" * 500})).status == 200
    # The tags entry as a whole is bounded too.
    assert_error(await put(f"/rooms/{room}/tags/u.bigger", {"pad": "z" * 600}), 413, "M_TOO_LARGE")
    # Three entries stored: a fourth is refused, replacing one is not.
    assert_error(await put("/account_data/a.four", {}), 403, "M_LIMIT_EXCEEDED")
    assert_error(await put("/rooms/!s:test.local/tags/u.t", {}), 403, "M_LIMIT_EXCEEDED")
    assert (await put("/account_data/a.one", {"v": 2})).status == 200
    tags = await h.request("GET", f"{base}/rooms/{room}/tags", token=token)
    assert list(tags.json["tags"]) == ["u.big"]


async def test_status_msg_length(h: Harness) -> None:
    dave = await register_ok(h, "dave")
    path = f"{V3}/presence/{dave['user_id']}/status"
    token = dave["access_token"]
    body = {"presence": "online", "status_msg": "lunch"}
    assert (await h.request("PUT", path, token=token, json=body)).status == 200
    body = {"presence": "online", "status_msg": "x" * 21}
    assert_error(await h.request("PUT", path, token=token, json=body), 400, "M_INVALID_PARAM")
    assert (await h.request("GET", path, token=token)).json["status_msg"] == "lunch"


async def test_one_tenant_hashes_one_password_at_a_time(h: Harness) -> None:
    """bcrypt runs on the pool all tenants share: a burst of logins queues per tenant."""
    await register_ok(h, "erin", "pw-erin-1")
    guesses = await asyncio.gather(*(login(h, "erin", f"guess-{i}") for i in range(8)))
    assert [r.status for r in guesses] == [403] * 8
    assert (await login(h, "erin", "pw-erin-1")).status == 200
    assert h.hs.password_hasher.peak_in_flight == 1
    assert h.hs.password_hasher.in_flight == 0
