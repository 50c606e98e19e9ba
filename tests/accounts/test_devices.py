"""/devices, /devices/{deviceId}, /delete_devices (UIA m.login.password)."""

from __future__ import annotations

from tests.accounts.helpers import (
    V3,
    assert_error,
    login,
    password_auth,
    register_ok,
    whoami,
)
from tests.conftest import settle
from tests.support.harness import Harness


async def _user_with_two_devices(h: Harness) -> tuple[dict, dict]:  # type: ignore[type-arg]
    first = await register_ok(h, "alice", "pw-alice-1")
    second = (await login(h, "alice", "pw-alice-1", device_id="SECOND")).json
    return first, second


async def test_list_get_and_rename(h: Harness) -> None:
    first, _second = await _user_with_two_devices(h)
    token = first["access_token"]
    resp = await h.request("GET", f"{V3}/devices", token=token)
    assert resp.status == 200
    ids = {d["device_id"] for d in resp.json["devices"]}
    assert ids == {first["device_id"], "SECOND"}
    for d in resp.json["devices"]:
        # Unknown fields are left out, never null (the spec has no nulls here).
        assert (
            {"device_id"} <= set(d) <= {"device_id", "display_name", "last_seen_ip", "last_seen_ts"}
        )
        assert None not in d.values()
    # SECOND was never used with its token: nothing seen, nothing named.
    by_id = {d["device_id"]: d for d in resp.json["devices"]}
    assert by_id["SECOND"] == {"device_id": "SECOND"}

    resp = await h.request("GET", f"{V3}/devices/SECOND", token=token)
    assert resp.status == 200 and resp.json["device_id"] == "SECOND"
    assert_error(await h.request("GET", f"{V3}/devices/NOPE", token=token), 404, "M_NOT_FOUND")

    resp = await h.request(
        "PUT", f"{V3}/devices/SECOND", json={"display_name": "Work laptop"}, token=token
    )
    assert resp.status == 200 and resp.json == {}
    resp = await h.request("GET", f"{V3}/devices/SECOND", token=token)
    assert resp.json["display_name"] == "Work laptop"

    assert_error(
        await h.request("PUT", f"{V3}/devices/NOPE", json={"display_name": "x"}, token=token),
        404,
        "M_NOT_FOUND",
    )
    assert_error(
        await h.request("PUT", f"{V3}/devices/SECOND", json={"display_name": 3}, token=token),
        400,
        "M_BAD_JSON",
    )
    assert_error(
        await h.request("PUT", f"{V3}/devices/SECOND", body=b"nope", token=token),
        400,
        "M_NOT_JSON",
    )
    assert_error(await h.request("GET", f"{V3}/devices"), 401, "M_MISSING_TOKEN")


async def test_devices_of_other_users_are_invisible(h: Harness) -> None:
    await _user_with_two_devices(h)
    bob = await register_ok(h, "bob")
    token = bob["access_token"]
    assert_error(await h.request("GET", f"{V3}/devices/SECOND", token=token), 404, "M_NOT_FOUND")
    resp = await h.request("GET", f"{V3}/devices", token=token)
    assert [d["device_id"] for d in resp.json["devices"]] == [bob["device_id"]]


async def test_last_seen_is_recorded(h: Harness) -> None:
    first = await register_ok(h, "carl")
    await whoami(h, first["access_token"])
    # The request notes the device's last use in a background write.
    await settle()
    resp = await h.request("GET", f"{V3}/devices", token=first["access_token"])
    device = resp.json["devices"][0]
    assert device["last_seen_ip"] == "127.0.0.1"
    assert isinstance(device["last_seen_ts"], int)


async def test_delete_device_needs_password_and_revokes_tokens(h: Harness) -> None:
    first, second = await _user_with_two_devices(h)
    token = first["access_token"]
    url = f"{V3}/devices/SECOND"

    resp = await h.request("DELETE", url, token=token)
    assert resp.status == 401
    assert resp.json["flows"] == [{"stages": ["m.login.password"]}]
    session = resp.json["session"]

    # Wrong password: 401 again, with the error.
    resp = await h.request(
        "DELETE",
        url,
        token=token,
        json={"auth": password_auth("@alice:test.local", "wrong", session)},
    )
    assert resp.status == 401
    assert resp.json["errcode"] == "M_FORBIDDEN"
    assert resp.json["session"] == session
    assert resp.json["completed"] == []

    resp = await h.request(
        "DELETE",
        url,
        token=token,
        json={"auth": password_auth("@alice:test.local", "pw-alice-1", session)},
    )
    assert resp.status == 200, resp.body
    assert_error(await whoami(h, second["access_token"]), 401, "M_UNKNOWN_TOKEN")
    assert (await whoami(h, token)).status == 200
    assert_error(await h.request("GET", url, token=token), 404, "M_NOT_FOUND")


async def test_delete_devices(h: Harness) -> None:
    first, second = await _user_with_two_devices(h)
    third = (await login(h, "alice", "pw-alice-1")).json
    token = first["access_token"]
    url = f"{V3}/delete_devices"
    assert_error(await h.request("POST", url, json={}, token=token), 400, "M_MISSING_PARAM")
    assert_error(
        await h.request("POST", url, json={"devices": "SECOND"}, token=token), 400, "M_BAD_JSON"
    )
    assert_error(
        await h.request("POST", url, json={"devices": [1]}, token=token), 400, "M_BAD_JSON"
    )
    resp = await h.request(
        "POST", url, json={"devices": ["SECOND", third["device_id"]]}, token=token
    )
    assert resp.status == 401
    resp = await h.request(
        "POST",
        url,
        token=token,
        json={
            "devices": ["SECOND", third["device_id"]],
            "auth": password_auth("alice", "pw-alice-1", resp.json["session"]),
        },
    )
    assert resp.status == 200, resp.body
    for gone in (second, third):
        assert_error(await whoami(h, gone["access_token"]), 401, "M_UNKNOWN_TOKEN")
    devices = await h.request("GET", f"{V3}/devices", token=token)
    assert [d["device_id"] for d in devices.json["devices"]] == [first["device_id"]]


async def test_cannot_authenticate_as_someone_else(h: Harness) -> None:
    first, _ = await _user_with_two_devices(h)
    await register_ok(h, "mallory", "pw-mallory")
    resp = await h.request(
        "DELETE",
        f"{V3}/devices/SECOND",
        token=first["access_token"],
        json={"auth": password_auth("@mallory:test.local", "pw-mallory")},
    )
    assert resp.status == 401
    assert resp.json["errcode"] == "M_FORBIDDEN"
    assert resp.json["completed"] == []
