"""UIA sessions: bound to their request and user, unknown ones refused, expiry."""

from __future__ import annotations

import asyncio

from tests.accounts.helpers import V3, assert_error, login, password_auth, register_ok
from tests.support.harness import Harness


async def test_session_is_bound_to_its_request(h: Harness) -> None:
    alice = await register_ok(h, "alice", "pw-alice-1")
    other = (await login(h, "alice", "pw-alice-1", device_id="OTHER")).json
    token = alice["access_token"]

    # A session started to delete OTHER...
    resp = await h.request("DELETE", f"{V3}/devices/OTHER", token=token)
    session = resp.json["session"]
    # ...cannot delete another device, deactivate or change the password.
    for method, path, body in (
        ("DELETE", f"{V3}/devices/{alice['device_id']}", {}),
        ("POST", f"{V3}/account/deactivate", {}),
        ("POST", f"{V3}/account/password", {"new_password": "pw-new-12345"}),
        ("POST", f"{V3}/delete_devices", {"devices": ["OTHER"]}),
    ):
        resp = await h.request(
            method,
            path,
            token=token,
            json={**body, "auth": password_auth("alice", "pw-alice-1", session)},
        )
        assert_error(resp, 403, "M_FORBIDDEN")
    # A registration session cannot be used here either, and vice versa.
    reg = await h.request("POST", f"{V3}/register", json={})
    resp = await h.request(
        "DELETE",
        f"{V3}/devices/OTHER",
        token=token,
        json={"auth": password_auth("alice", "pw-alice-1", reg.json["session"])},
    )
    assert_error(resp, 403, "M_FORBIDDEN")
    resp = await h.request(
        "POST",
        f"{V3}/register",
        json={
            "username": "zed",
            "password": "pw-zed-123",
            "auth": {"type": "m.login.dummy", "session": session},
        },
    )
    assert_error(resp, 403, "M_FORBIDDEN")

    # The session still works for what it was started for, under r0 too.
    resp = await h.request(
        "DELETE",
        "/_matrix/client/r0/devices/OTHER",
        token=token,
        json={"auth": password_auth("alice", "pw-alice-1", session)},
    )
    assert resp.status == 200, resp.body
    assert_error(
        await h.request("GET", f"{V3}/account/whoami", token=other["access_token"]),
        401,
        "M_UNKNOWN_TOKEN",
    )


async def test_session_is_bound_to_its_user(h: Harness) -> None:
    alice = await register_ok(h, "alice", "pw-alice-1")
    bob = await register_ok(h, "bob", "pw-bob-123")
    resp = await h.request("POST", f"{V3}/account/deactivate", token=alice["access_token"], json={})
    session = resp.json["session"]
    resp = await h.request(
        "POST",
        f"{V3}/account/deactivate",
        token=bob["access_token"],
        json={"auth": password_auth("bob", "pw-bob-123", session)},
    )
    assert_error(resp, 403, "M_FORBIDDEN")
    assert (await login(h, "bob", "pw-bob-123")).status == 200


async def test_unknown_session_and_bad_auth(h: Harness) -> None:
    alice = await register_ok(h, "alice", "pw-alice-1")
    token = alice["access_token"]
    resp = await h.request(
        "POST",
        f"{V3}/account/deactivate",
        token=token,
        json={"auth": password_auth("alice", "pw-alice-1", "made-up")},
    )
    assert_error(resp, 400, "M_UNKNOWN")
    resp = await h.request("POST", f"{V3}/account/deactivate", token=token, json={"auth": ["x"]})
    assert_error(resp, 400, "M_BAD_JSON")
    resp = await h.request(
        "POST",
        f"{V3}/account/deactivate",
        token=token,
        json={"auth": {"type": "m.login.password", "session": 5}},
    )
    assert_error(resp, 400, "M_BAD_JSON")
    # An auth dict with only the session reports progress.
    first = await h.request("POST", f"{V3}/account/deactivate", token=token, json={})
    resp = await h.request(
        "POST",
        f"{V3}/account/deactivate",
        token=token,
        json={"auth": {"session": first.json["session"]}},
    )
    assert resp.status == 401 and resp.json["completed"] == []
    assert "errcode" not in resp.json
    assert (await login(h, "alice", "pw-alice-1")).status == 200


async def test_sessions_expire(h: Harness) -> None:
    alice = await register_ok(h, "alice", "pw-alice-1")
    token = alice["access_token"]
    resp = await h.request("POST", f"{V3}/account/deactivate", token=token, json={})
    session = resp.json["session"]
    assert len(h.hs.uia) >= 1
    await asyncio.get_running_loop().advance(3601)  # type: ignore[attr-defined]
    assert len(h.hs.uia) == 0
    resp = await h.request(
        "POST",
        f"{V3}/account/deactivate",
        token=token,
        json={"auth": password_auth("alice", "pw-alice-1", session)},
    )
    assert_error(resp, 400, "M_UNKNOWN")
