"""Deactivation leaves rooms, rejects invites and leaves the directory; erase clears the profile."""

from __future__ import annotations

from typing import Any

import pytest

from tests.accounts.helpers import V3, password_auth, register_ok
from tests.support.harness import Harness
from tests.support.users import TestUser, make_user

ADMIN = "/_synapse/admin"


async def _post(h: Harness, path: str, token: str, body: Any) -> Any:
    resp = await h.request("POST", V3 + path, token=token, json=body)
    assert resp.status == 200, resp.body
    return resp.json


async def _setup(h: Harness) -> tuple[dict[str, Any], TestUser, str, str]:
    """Alice, with a profile, joined to one of bob's rooms and invited to another."""
    alice = await register_ok(h, "alice", "pw-alice-1")
    token = alice["access_token"]
    bob = await make_user(h, "bob")
    for field, value in (("displayname", "Alice A"), ("avatar_url", "mxc://test.local/a")):
        resp = await h.request(
            "PUT", f"{V3}/profile/{alice['user_id']}/{field}", token=token, json={field: value}
        )
        assert resp.status == 200, resp.body
    joined = (await _post(h, "/createRoom", bob.token, {"preset": "public_chat"}))["room_id"]
    await _post(h, f"/rooms/{joined}/join", token, {})
    invited = (await _post(h, "/createRoom", bob.token, {}))["room_id"]
    await _post(h, f"/rooms/{invited}/invite", bob.token, {"user_id": alice["user_id"]})
    return alice, bob, joined, invited


async def _membership(h: Harness, bob: TestUser, room_id: str, user_id: str) -> Any:
    path = f"{V3}/rooms/{room_id}/state/m.room.member/{user_id}"
    resp = await h.request("GET", path, token=bob.token)
    assert resp.status == 200, resp.body
    return resp.json


async def _check_gone(h: Harness, bob: TestUser, alice: str, rooms: tuple[str, str]) -> None:
    for room_id in rooms:
        assert (await _membership(h, bob, room_id, alice))["membership"] == "leave"
    search = await _post(h, "/user_directory/search", bob.token, {"search_term": "alice"})
    assert search["results"] == []


@pytest.mark.parametrize("erase", [True, False])
async def test_deactivate_own_account(h: Harness, erase: bool) -> None:
    alice, bob, joined, invited = await _setup(h)
    user_id, token = alice["user_id"], alice["access_token"]
    search = await _post(h, "/user_directory/search", bob.token, {"search_term": "alice"})
    assert [r["user_id"] for r in search["results"]] == [user_id]
    url = f"{V3}/account/deactivate"
    session = (await h.request("POST", url, token=token, json={})).json["session"]
    body = {"auth": password_auth(user_id, "pw-alice-1", session), "erase": erase}
    assert (await h.request("POST", url, token=token, json=body)).status == 200

    await _check_gone(h, bob, user_id, (joined, invited))
    admin = await make_user(h, "root", admin=True)
    info = (await h.request("GET", f"{ADMIN}/v2/users/{user_id}", token=admin.token)).json
    assert info["deactivated"] is True and info["erased"] is erase
    leave = await _membership(h, bob, joined, user_id)
    if erase:
        assert info["displayname"] is None and info["avatar_url"] is None
        assert "displayname" not in leave and "avatar_url" not in leave
    else:
        assert info["displayname"] == "Alice A"


async def test_admin_deactivate_with_erase(h: Harness) -> None:
    alice, bob, joined, invited = await _setup(h)
    user_id = alice["user_id"]
    admin = await make_user(h, "root", admin=True)
    resp = await h.request(
        "POST", f"{ADMIN}/v1/deactivate/{user_id}", token=admin.token, json={"erase": True}
    )
    assert resp.status == 200, resp.body
    await _check_gone(h, bob, user_id, (joined, invited))
    info = (await h.request("GET", f"{ADMIN}/v2/users/{user_id}", token=admin.token)).json
    assert info["deactivated"] is True and info["erased"] is True
    assert info["displayname"] is None and info["avatar_url"] is None
