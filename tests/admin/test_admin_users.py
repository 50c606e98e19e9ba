"""The user admin API: listing, inspecting, creating, changing and deactivating users."""

# ruff: noqa: F811  (fixtures imported from users_support)
from __future__ import annotations

from typing import Any

from hamlet.storage.stores.admin_users import ORDER_COLUMNS
from tests.admin.users_support import (  # noqa: F401
    CLIENT,
    V1,
    V2,
    V3,
    admin,
    ah,
    alice,
    assert_error,
    create_room,
    join,
    ok,
)
from tests.conftest import advance
from tests.support.harness import Harness
from tests.support.users import TestUser, make_user

LIST_FIELDS = {
    "name",
    "user_type",
    "is_guest",
    "admin",
    "deactivated",
    "shadow_banned",
    "displayname",
    "avatar_url",
    "creation_ts",
    "locked",
    "approved",
    "erased",
    "last_seen_ts",
}


async def _list(h: Harness, token: str, query: str = "", version: str = V2) -> dict[str, Any]:
    result: dict[str, Any] = ok(await h.request("GET", f"{version}/users?{query}", token=token))
    return result


async def _names(h: Harness, token: str, query: str = "", version: str = V2) -> list[str]:
    return [u["name"] for u in (await _list(h, token, query, version))["users"]]


# Listing


async def test_pagination_walks_every_user_once(ah: Harness, admin: TestUser) -> None:
    for i in range(11):
        await make_user(ah, f"user{i:02d}")
    seen: list[str] = []
    start: str | None = "0"
    pages = 0
    while start is not None:
        page = await _list(ah, admin.token, f"from={start}&limit=4")
        assert page["total"] == 12
        assert len(page["users"]) <= 4
        seen += [u["name"] for u in page["users"]]
        start = page.get("next_token")
        assert start is None or isinstance(start, str)
        pages += 1
    assert pages == 3
    assert seen == sorted(seen)
    assert len(seen) == len(set(seen)) == 12
    last = await _list(ah, admin.token, "from=8&limit=4")
    assert "next_token" not in last
    entry = (await _list(ah, admin.token, "limit=1"))["users"][0]
    assert set(entry) >= LIST_FIELDS
    assert entry["name"] == "@admin:test.local" and entry["admin"] is True
    assert isinstance(entry["creation_ts"], int) and entry["creation_ts"] > 10**12


async def test_default_limit_is_100(ah: Harness, admin: TestUser) -> None:
    store = ah.hs.account_store
    for i in range(101):
        await store.create_user(f"@bulk{i:03d}:test.local", password_hash=None, created_ts=i)
    page = await _list(ah, admin.token)
    assert len(page["users"]) == 100 and page["next_token"] == "100" and page["total"] == 102


async def test_filters(ah: Harness, admin: TestUser) -> None:
    hs = ah.hs
    await hs.registration.register_user("carol", "pw", displayname="Caroline Smith")
    await hs.registration.register_user("dave", "pw", displayname="Dave")
    await hs.registration.register_user("botty", "pw", user_type="bot")
    await hs.registration.register_user(None, is_guest=True)
    await hs.registration.register_user("gone", "pw")
    await hs.admin_users.deactivate("@gone:test.local", erase=False)
    await hs.registration.register_user("shut", "pw")
    await hs.admin_users.store.set_flag("@shut:test.local", "locked", True)
    t = admin.token

    # Guests are listed by default; deactivated and locked users are not (v2).
    names = await _names(ah, t)
    assert "@1:test.local" in names
    assert "@gone:test.local" not in names and "@shut:test.local" not in names
    assert "@1:test.local" not in await _names(ah, t, "guests=false")
    assert "@gone:test.local" in await _names(ah, t, "deactivated=true")
    assert "@shut:test.local" in await _names(ah, t, "locked=true")
    # v3: deactivated is a tri-state filter.
    assert await _names(ah, t, "deactivated=true", V3) == ["@gone:test.local"]
    assert "@gone:test.local" in await _names(ah, t, "", V3)
    assert "@gone:test.local" not in await _names(ah, t, "deactivated=false", V3)
    # name: localpart or display name, substring, any case; user_id: the ID.
    assert await _names(ah, t, "name=smith") == ["@carol:test.local"]
    assert await _names(ah, t, "name=DAV") == ["@dave:test.local"]
    assert await _names(ah, t, "user_id=aro") == ["@carol:test.local"]
    assert await _names(ah, t, "name=%25") == []  # a literal %, not a wildcard
    assert await _names(ah, t, "admins=true") == ["@admin:test.local"]
    assert "@admin:test.local" not in await _names(ah, t, "admins=false")
    assert "@botty:test.local" not in await _names(ah, t, "not_user_type=bot")
    assert await _names(ah, t, "not_user_type=") == ["@botty:test.local"]
    page = await _list(ah, t, "name=a&limit=1")
    assert page["total"] == len(await _names(ah, t, "name=a"))


async def test_ordering(ah: Harness, admin: TestUser) -> None:
    hs = ah.hs
    await hs.registration.register_user("zed", "pw", displayname="Aaron")
    await hs.registration.register_user("amy", "pw", displayname="Zoe")
    await hs.registration.register_user("mid", "pw", displayname="Mike")
    await hs.profiles_store.set_field("@mid:test.local", "avatar_url", "mxc://x/y")
    # (Capitalised alike: the engines may collate case differently.)
    await hs.profiles_store.set_field(admin.user_id, "displayname", "Boss")
    t = admin.token
    assert await _names(ah, t) == [
        "@admin:test.local",
        "@amy:test.local",
        "@mid:test.local",
        "@zed:test.local",
    ]
    assert (await _names(ah, t, "dir=b"))[0] == "@zed:test.local"
    by_display = await _names(ah, t, "order_by=displayname")
    assert by_display == [
        "@zed:test.local",
        "@admin:test.local",
        "@mid:test.local",
        "@amy:test.local",
    ]
    # Ties are broken by ascending name whatever the direction.
    assert await _names(ah, t, "order_by=admin&dir=b") == [
        "@admin:test.local",
        "@amy:test.local",
        "@mid:test.local",
        "@zed:test.local",
    ]
    # Users without an avatar come after those with one (on both engines).
    assert (await _names(ah, t, "order_by=avatar_url"))[0] == "@mid:test.local"
    assert (await _names(ah, t, "order_by=creation_ts"))[0] == "@admin:test.local"
    for order_by in ORDER_COLUMNS:
        for d in "fb":
            names = await _names(ah, t, f"order_by={order_by}&dir={d}")
            assert sorted(names) == sorted(await _names(ah, t)), order_by


async def test_bad_list_parameters(ah: Harness, admin: TestUser) -> None:
    for query in [
        "from=-1",
        "limit=-5",
        "from=abc",
        "order_by=password_hash",
        "dir=x",
        "guests=maybe",
        "deactivated=2",
        "admins=yes",
    ]:
        resp = await ah.request("GET", f"{V2}/users?{query}", token=admin.token)
        assert_error(resp, 400, "M_INVALID_PARAM")


# One user


async def test_get_user(ah: Harness, admin: TestUser, alice: TestUser) -> None:
    user = ok(await ah.request("GET", f"{V2}/users/{alice.user_id}", token=admin.token))
    assert user["name"] == alice.user_id
    assert user["displayname"] == "alice"
    assert user["threepids"] == [] and user["external_ids"] == []
    assert user["admin"] is False and user["deactivated"] is False
    assert user["erased"] is False and user["shadow_banned"] is False
    assert user["locked"] is False and user["is_guest"] is False
    assert user["user_type"] is None and user["appservice_id"] is None
    # Seconds here, as Synapse (the listing gives milliseconds).
    assert abs(user["creation_ts"] - ah.hs.clock.time()) < 5
    for key in ("consent_version", "consent_ts", "consent_server_notice_sent", "last_seen_ts"):
        assert key in user
    assert_error(
        await ah.request("GET", f"{V2}/users/@nobody:test.local", token=admin.token),
        404,
        "M_NOT_FOUND",
    )
    assert_error(
        await ah.request("GET", f"{V2}/users/@alice:elsewhere.org", token=admin.token),
        400,
        "M_UNKNOWN",
    )
    assert_error(
        await ah.request("GET", f"{V2}/users/not-a-user-id", token=admin.token),
        400,
        "M_INVALID_PARAM",
    )


async def test_create_user(ah: Harness, admin: TestUser) -> None:
    resp = await ah.request(
        "PUT",
        f"{V2}/users/@newbie:test.local",
        json={
            "password": "s3cret-pass",
            "displayname": "New Bie",
            "avatar_url": "mxc://test.local/abc",
            "admin": True,
            "user_type": "bot",
            "threepids": [],
        },
        token=admin.token,
    )
    user = ok(resp, 201)
    assert user["name"] == "@newbie:test.local" and user["admin"] is True
    assert user["displayname"] == "New Bie" and user["avatar_url"] == "mxc://test.local/abc"
    assert user["user_type"] == "bot"
    login = await ah.request(
        "POST",
        f"{CLIENT}/login",
        json={
            "type": "m.login.password",
            "identifier": {"type": "m.id.user", "user": "newbie"},
            "password": "s3cret-pass",
        },
    )
    assert login.status == 200, login.body
    for body, errcode in [
        ({"admin": "yes"}, "M_INVALID_PARAM"),
        ({"password": 12}, "M_INVALID_PARAM"),
        ({"user_type": "wizard"}, "M_INVALID_PARAM"),
        ({"displayname": ["x"]}, "M_INVALID_PARAM"),
        ({"threepids": [{"medium": "email", "address": "a@b.c"}]}, "M_INVALID_PARAM"),
    ]:
        resp = await ah.request(
            "PUT", f"{V2}/users/@other:test.local", json=body, token=admin.token
        )
        assert_error(resp, 400, errcode)
    resp = await ah.request("PUT", f"{V2}/users/@Upper:test.local", json={}, token=admin.token)
    assert_error(resp, 400, "M_INVALID_USERNAME")
    resp = await ah.request("PUT", f"{V2}/users/@x:elsewhere.org", json={}, token=admin.token)
    assert_error(resp, 400, "M_UNKNOWN")
    assert_error(
        await ah.request("PUT", f"{V2}/users/@other:test.local", body=b"{", token=admin.token),
        400,
        "M_NOT_JSON",
    )


async def test_modify_user(ah: Harness, admin: TestUser, alice: TestUser) -> None:
    room_id = await create_room(ah, alice)
    url = f"{V2}/users/{alice.user_id}"
    user = ok(
        await ah.request(
            "PUT",
            url,
            json={"displayname": "Alice A.", "avatar_url": "mxc://test.local/av", "locked": True},
            token=admin.token,
        )
    )
    assert user["displayname"] == "Alice A." and user["locked"] is True
    # The new profile reached the room (a fresh join event).
    member = await ah.hs.room_state.get_current_state_event(room_id, "m.room.member", alice.user_id)
    assert member is not None and member.content["displayname"] == "Alice A."
    assert member.content["avatar_url"] == "mxc://test.local/av"
    # Locked: the token now gets M_USER_LOCKED.
    resp = await ah.request("GET", f"{CLIENT}/account/whoami", token=alice.token)
    assert_error(resp, 401, "M_USER_LOCKED")
    user = ok(
        await ah.request("PUT", url, json={"locked": False, "displayname": ""}, token=admin.token)
    )
    assert user["locked"] is False and user["displayname"] is None
    assert ok(await ah.request("GET", f"{CLIENT}/account/whoami", token=alice.token))
    # A password change logs the user out everywhere unless told not to.
    ok(
        await ah.request(
            "PUT", url, json={"password": "new-pass-1", "logout_devices": False}, token=admin.token
        )
    )
    assert ok(await ah.request("GET", f"{CLIENT}/account/whoami", token=alice.token))
    ok(await ah.request("PUT", url, json={"password": "new-pass-2"}, token=admin.token))
    resp = await ah.request("GET", f"{CLIENT}/account/whoami", token=alice.token)
    assert_error(resp, 401, "M_UNKNOWN_TOKEN")
    # Deactivate and reactivate through PUT.
    user = ok(await ah.request("PUT", url, json={"deactivated": True}, token=admin.token))
    assert user["deactivated"] is True
    assert await ah.hs.rooms_store.get_membership(room_id, alice.user_id) is not None
    assert (await ah.hs.rooms_store.get_membership(room_id, alice.user_id)).membership == "leave"  # type: ignore[union-attr]
    user = ok(
        await ah.request(
            "PUT", url, json={"deactivated": False, "password": "back-again"}, token=admin.token
        )
    )
    assert user["deactivated"] is False
    user = ok(await ah.request("PUT", url, json={"user_type": "support"}, token=admin.token))
    assert user["user_type"] == "support"
    user = ok(await ah.request("PUT", url, json={"user_type": None}, token=admin.token))
    assert user["user_type"] is None


async def test_admin_flag(ah: Harness, admin: TestUser, alice: TestUser) -> None:
    url = f"{V1}/users/{alice.user_id}/admin"
    assert ok(await ah.request("GET", url, token=admin.token)) == {"admin": False}
    assert ok(await ah.request("PUT", url, json={"admin": True}, token=admin.token)) == {}
    assert ok(await ah.request("GET", url, token=admin.token)) == {"admin": True}
    # Alice's existing token now has admin rights.
    assert ok(await ah.request("GET", f"{V2}/users", token=alice.token))["total"] == 2
    # Nobody demotes themselves, by either route.
    own = f"{V1}/users/{admin.user_id}/admin"
    assert_error(
        await ah.request("PUT", own, json={"admin": False}, token=admin.token), 400, "M_UNKNOWN"
    )
    resp = await ah.request(
        "PUT", f"{V2}/users/{admin.user_id}", json={"admin": False}, token=admin.token
    )
    assert_error(resp, 400, "M_UNKNOWN")
    # ...but may demote another admin.
    ok(await ah.request("PUT", url, json={"admin": False}, token=admin.token))
    assert_error(await ah.request("GET", f"{V2}/users", token=alice.token), 403, "M_FORBIDDEN")
    assert_error(
        await ah.request("PUT", url, json={"admin": "no"}, token=admin.token),
        400,
        "M_INVALID_PARAM",
    )
    assert_error(await ah.request("PUT", url, json={}, token=admin.token), 400, "M_MISSING_PARAM")
    missing = f"{V1}/users/@nobody:test.local/admin"
    assert_error(await ah.request("GET", missing, token=admin.token), 404, "M_NOT_FOUND")
    assert_error(
        await ah.request("PUT", missing, json={"admin": True}, token=admin.token),
        404,
        "M_NOT_FOUND",
    )


async def test_deactivate_with_erase(ah: Harness, admin: TestUser, alice: TestUser) -> None:
    room_id = await create_room(ah, admin, preset="public_chat")
    await join(ah, alice, room_id)
    invite_room = await create_room(ah, admin, invite=[alice.user_id])
    await ah.hs.profiles_store.set_field(alice.user_id, "avatar_url", "mxc://test.local/a")
    resp = await ah.request(
        "POST", f"{V1}/deactivate/{alice.user_id}", json={"erase": True}, token=admin.token
    )
    assert ok(resp) == {"id_server_unbind_result": "success"}
    assert_error(
        await ah.request("GET", f"{CLIENT}/account/whoami", token=alice.token),
        401,
        "M_UNKNOWN_TOKEN",
    )
    user = ok(await ah.request("GET", f"{V2}/users/{alice.user_id}", token=admin.token))
    assert user["deactivated"] is True and user["erased"] is True
    assert user["displayname"] is None and user["avatar_url"] is None
    for rid in (room_id, invite_room):
        m = await ah.hs.rooms_store.get_membership(rid, alice.user_id)
        assert m is not None and m.membership == "leave"
    assert ah.hs.devices.store is not None
    assert await ah.hs.devices.get_devices(alice.user_id) == []
    login = await ah.request(
        "POST",
        f"{CLIENT}/login",
        json={
            "type": "m.login.password",
            "identifier": {"type": "m.id.user", "user": "alice"},
            "password": "password",
        },
    )
    assert login.status == 403 or login.status == 401, login.body
    # An empty body is accepted; unknown and remote users are refused.
    bob = await make_user(ah, "bob")
    assert ok(await ah.request("POST", f"{V1}/deactivate/{bob.user_id}", token=admin.token))
    assert_error(
        await ah.request("POST", f"{V1}/deactivate/@nobody:test.local", json={}, token=admin.token),
        404,
        "M_NOT_FOUND",
    )
    assert_error(
        await ah.request("POST", f"{V1}/deactivate/@x:elsewhere.org", json={}, token=admin.token),
        400,
        "M_UNKNOWN",
    )
    assert_error(
        await ah.request(
            "POST", f"{V1}/deactivate/{bob.user_id}", json={"erase": 1}, token=admin.token
        ),
        400,
        "M_INVALID_PARAM",
    )


async def test_reset_password(ah: Harness, admin: TestUser, alice: TestUser) -> None:
    url = f"{V1}/reset_password/{alice.user_id}"
    ok(
        await ah.request(
            "POST", url, json={"new_password": "pw-one", "logout_devices": False}, token=admin.token
        )
    )
    assert ok(await ah.request("GET", f"{CLIENT}/account/whoami", token=alice.token))
    ok(await ah.request("POST", url, json={"new_password": "pw-two"}, token=admin.token))
    assert_error(
        await ah.request("GET", f"{CLIENT}/account/whoami", token=alice.token),
        401,
        "M_UNKNOWN_TOKEN",
    )
    login = await ah.request(
        "POST",
        f"{CLIENT}/login",
        json={
            "type": "m.login.password",
            "identifier": {"type": "m.id.user", "user": "alice"},
            "password": "pw-two",
        },
    )
    assert login.status == 200, login.body
    assert_error(await ah.request("POST", url, json={}, token=admin.token), 400, "M_MISSING_PARAM")
    assert_error(
        await ah.request("POST", url, json={"new_password": 5}, token=admin.token),
        400,
        "M_INVALID_PARAM",
    )
    resp = await ah.request(
        "POST",
        f"{V1}/reset_password/@nobody:test.local",
        json={"new_password": "x"},
        token=admin.token,
    )
    assert_error(resp, 404, "M_NOT_FOUND")


async def test_whois_and_joined_rooms(ah: Harness, admin: TestUser, alice: TestUser) -> None:
    ok(
        await ah.request(
            "GET", f"{CLIENT}/account/whoami", token=alice.token, headers={"User-Agent": "TestUA/1"}
        )
    )
    await ah.hs.clock.sleep(0.05)
    whois = ok(await ah.request("GET", f"{V1}/whois/{alice.user_id}", token=admin.token))
    assert whois["user_id"] == alice.user_id
    sessions = whois["devices"][alice.device_id]["sessions"]
    connection = sessions[0]["connections"][0]
    assert connection["user_agent"] == "TestUA/1"
    assert isinstance(connection["ip"], str) and isinstance(connection["last_seen"], int)
    # The client-server whois: admins, or a user asking about themselves.
    assert ok(await ah.request("GET", f"{CLIENT}/admin/whois/{alice.user_id}", token=alice.token))
    resp = await ah.request("GET", f"{CLIENT}/admin/whois/{admin.user_id}", token=alice.token)
    assert_error(resp, 403, "M_FORBIDDEN")

    rooms = ok(
        await ah.request("GET", f"{V1}/users/{alice.user_id}/joined_rooms", token=admin.token)
    )
    assert rooms == {"joined_rooms": [], "total": 0}
    r1 = await create_room(ah, alice)
    r2 = await create_room(ah, alice)
    rooms = ok(
        await ah.request("GET", f"{V1}/users/{alice.user_id}/joined_rooms", token=admin.token)
    )
    assert sorted(rooms["joined_rooms"]) == sorted([r1, r2]) and rooms["total"] == 2
    for path in (f"{V1}/whois/@nobody:test.local", f"{V1}/users/@nobody:test.local/joined_rooms"):
        assert_error(await ah.request("GET", path, token=admin.token), 404, "M_NOT_FOUND")


async def test_devices(ah: Harness, admin: TestUser, alice: TestUser) -> None:
    base = f"{V2}/users/{alice.user_id}"
    listing = ok(await ah.request("GET", f"{base}/devices", token=admin.token))
    assert listing["total"] == 1
    device = listing["devices"][0]
    assert device["device_id"] == alice.device_id and device["user_id"] == alice.user_id
    for key in ("display_name", "last_seen_ip", "last_seen_user_agent", "last_seen_ts"):
        assert key in device
    ok(await ah.request("POST", f"{base}/devices", json={"device_id": "EXTRA"}, token=admin.token))
    ok(
        await ah.request(
            "PUT", f"{base}/devices/EXTRA", json={"display_name": "Phone"}, token=admin.token
        )
    )
    got = ok(await ah.request("GET", f"{base}/devices/EXTRA", token=admin.token))
    assert got["display_name"] == "Phone"
    assert ok(await ah.request("GET", f"{base}/devices", token=admin.token))["total"] == 2
    ok(await ah.request("DELETE", f"{base}/devices/EXTRA", token=admin.token))
    assert_error(
        await ah.request("GET", f"{base}/devices/EXTRA", token=admin.token), 404, "M_NOT_FOUND"
    )
    assert_error(
        await ah.request(
            "PUT", f"{base}/devices/EXTRA", json={"display_name": "x"}, token=admin.token
        ),
        404,
        "M_NOT_FOUND",
    )
    ok(
        await ah.request(
            "POST", f"{base}/delete_devices", json={"devices": [alice.device_id]}, token=admin.token
        )
    )
    assert_error(
        await ah.request("GET", f"{CLIENT}/account/whoami", token=alice.token),
        401,
        "M_UNKNOWN_TOKEN",
    )
    assert ok(await ah.request("GET", f"{base}/devices", token=admin.token)) == {
        "devices": [],
        "total": 0,
    }
    assert_error(
        await ah.request("POST", f"{base}/delete_devices", json={}, token=admin.token),
        400,
        "M_MISSING_PARAM",
    )
    assert_error(
        await ah.request(
            "POST", f"{base}/delete_devices", json={"devices": "x"}, token=admin.token
        ),
        400,
        "M_INVALID_PARAM",
    )
    assert_error(
        await ah.request("POST", f"{base}/devices", json={}, token=admin.token),
        400,
        "M_MISSING_PARAM",
    )
    resp = await ah.request("GET", f"{V2}/users/@nobody:test.local/devices", token=admin.token)
    assert_error(resp, 404, "M_NOT_FOUND")


async def test_login_as_user(ah: Harness, admin: TestUser, alice: TestUser) -> None:
    resp = await ah.request("POST", f"{V1}/users/{alice.user_id}/login", json={}, token=admin.token)
    token = ok(resp)["access_token"]
    whoami = ok(await ah.request("GET", f"{CLIENT}/account/whoami", token=token))
    assert whoami["user_id"] == alice.user_id
    assert "device_id" not in whoami or whoami["device_id"] is None
    # No new device shows up for the user.
    assert (
        ok(await ah.request("GET", f"{V2}/users/{alice.user_id}/devices", token=admin.token))[
            "total"
        ]
        == 1
    )
    # Not as oneself; not for unknown users; valid_until_ms must be a future int.
    resp = await ah.request("POST", f"{V1}/users/{admin.user_id}/login", json={}, token=admin.token)
    assert_error(resp, 400, "M_UNKNOWN")
    resp = await ah.request(
        "POST", f"{V1}/users/@nobody:test.local/login", json={}, token=admin.token
    )
    assert_error(resp, 404, "M_NOT_FOUND")
    for bad in ("soon", 5):
        resp = await ah.request(
            "POST",
            f"{V1}/users/{alice.user_id}/login",
            json={"valid_until_ms": bad},
            token=admin.token,
        )
        assert_error(resp, 400, "M_INVALID_PARAM")


async def test_login_as_user_token_expires(ah: Harness, admin: TestUser, alice: TestUser) -> None:
    until = ah.hs.clock.time_msec() + 30_000
    resp = await ah.request(
        "POST",
        f"{V1}/users/{alice.user_id}/login",
        json={"valid_until_ms": until},
        token=admin.token,
    )
    token = ok(resp)["access_token"]
    assert ok(await ah.request("GET", f"{CLIENT}/account/whoami", token=token))
    # The revocation runs in the background; advance() returns once it is done.
    await advance(31)
    resp = await ah.request("GET", f"{CLIENT}/account/whoami", token=token)
    assert_error(resp, 401, "M_UNKNOWN_TOKEN")
    # The user's own session is untouched.
    assert ok(await ah.request("GET", f"{CLIENT}/account/whoami", token=alice.token))


async def test_username_available(ah: Harness, admin: TestUser, alice: TestUser) -> None:
    url = f"{V1}/username_available?username="
    assert ok(await ah.request("GET", url + "fresh", token=admin.token)) == {"available": True}
    assert_error(await ah.request("GET", url + "alice", token=admin.token), 400, "M_USER_IN_USE")
    assert_error(
        await ah.request("GET", url + "Bad%20Name", token=admin.token), 400, "M_INVALID_USERNAME"
    )
    resp = await ah.request("GET", f"{V1}/username_available", token=admin.token)
    assert_error(resp, 400, "M_MISSING_PARAM")


async def test_shadow_ban(ah: Harness, admin: TestUser, alice: TestUser) -> None:
    room_id = await create_room(ah, admin, preset="public_chat")
    await join(ah, alice, room_id)
    url = f"{V1}/users/{alice.user_id}/shadow_ban"
    assert ok(await ah.request("POST", url, token=admin.token)) == {}
    listed = await _list(ah, admin.token, "name=alice")
    assert listed["users"][0]["shadow_banned"] is True
    before = ah.hs.event_creator.current_stream
    resp = await ah.request(
        "PUT",
        f"{CLIENT}/rooms/{room_id}/send/m.room.message/t1",
        json={"msgtype": "m.text", "body": "spam"},
        token=alice.token,
    )
    fake = ok(resp)["event_id"]
    assert fake.startswith("$")
    assert ah.hs.event_creator.current_stream == before
    assert await ah.hs.events_store.get_event(fake) is None
    # Un-ban: messages go through again.
    assert ok(await ah.request("DELETE", url, token=admin.token)) == {}
    resp = await ah.request(
        "PUT",
        f"{CLIENT}/rooms/{room_id}/send/m.room.message/t2",
        json={"msgtype": "m.text", "body": "hello"},
        token=alice.token,
    )
    real = ok(resp)["event_id"]
    assert await ah.hs.events_store.get_event(real) is not None
    assert_error(
        await ah.request("POST", f"{V1}/users/@nobody:test.local/shadow_ban", token=admin.token),
        404,
        "M_NOT_FOUND",
    )
    assert_error(
        await ah.request("POST", f"{V1}/users/@x:elsewhere.org/shadow_ban", token=admin.token),
        400,
        "M_UNKNOWN",
    )
