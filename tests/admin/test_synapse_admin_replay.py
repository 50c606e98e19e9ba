"""Replays what the synapse-admin web UI asks on its login, users and rooms pages.

Driving the real UI is not possible here (synapse-admin is not published
on npm, and there is no browser), so this replays its requests - as its
auth and data providers make them - and checks the fields it reads.
"""

# ruff: noqa: F811  (fixtures imported from users_support)
from __future__ import annotations

from typing import Any

from hamlet.api.routes import build_router
from tests.admin.users_support import ah, assert_error, create_room, ok  # noqa: F401
from tests.support.harness import Harness
from tests.support.users import make_user

# The query strings synapse-admin builds (react-admin's pagination and sort).
USERS_PAGE = "/_synapse/admin/v2/users?dir=f&from=0&guests=false&limit=10&order_by=name"
ROOMS_PAGE = "/_synapse/admin/v1/rooms?dir=f&from=0&limit=10&order_by=name"


def _has_route(method: str, pattern: str) -> bool:
    return any(r.method == method and r.pattern == pattern for r in build_router().routes())


async def _login(h: Harness, user: str, password: str) -> dict[str, Any]:
    # The login page: discovery, the server version, the login flows...
    well_known = ok(await h.request("GET", "/.well-known/matrix/client"))
    assert well_known["m.homeserver"]["base_url"]
    assert ok(await h.request("GET", "/_matrix/client/versions"))["versions"]
    assert isinstance(
        ok(await h.request("GET", "/_synapse/admin/v1/server_version"))["server_version"], str
    )
    flows = ok(await h.request("GET", "/_matrix/client/r0/login"))["flows"]
    assert {"type": "m.login.password"} in [{"type": f["type"]} for f in flows]
    # ...then the login itself, exactly as its auth provider sends it.
    resp = await h.request(
        "POST",
        "/_matrix/client/r0/login",
        json={
            "device_id": None,
            "initial_device_display_name": "Synapse Admin",
            "type": "m.login.password",
            "identifier": {"type": "m.id.user", "user": user},
            "password": password,
        },
    )
    login: dict[str, Any] = ok(resp)
    for key in ("home_server", "user_id", "access_token", "device_id"):
        assert isinstance(login[key], str), key
    return login


async def test_login_users_and_rooms_pages(ah: Harness) -> None:
    hs = ah.hs
    await hs.registration.register_user("boss", "hunter22", admin=True)
    for name in ("zoe", "adam", "mia"):
        await hs.registration.register_user(name, "pw", displayname=name.title())
    await hs.registration.register_user(None, is_guest=True)
    mia = await make_user(ah, "mia2")
    room_id = await create_room(ah, mia, name="Lobby")

    login = await _login(ah, "boss", "hunter22")
    assert login["user_id"] == "@boss:test.local" and login["home_server"] == "test.local"
    token = login["access_token"]

    # Users list page.
    page = ok(await ah.request("GET", USERS_PAGE, token=token))
    users = page["users"]
    assert page["total"] == 5  # guests excluded
    assert [u["name"] for u in users] == sorted(u["name"] for u in users)
    for u in users:
        # What its users list maps and shows.
        assert isinstance(u["name"], str) and u["name"].startswith("@")
        for flag in ("is_guest", "admin", "deactivated", "locked", "shadow_banned", "erased"):
            assert isinstance(u[flag], bool), flag
        assert isinstance(u["creation_ts"], int)
        assert "displayname" in u and "avatar_url" in u and "user_type" in u
    # Page 2 with the same sort: react-admin's "from" is (page - 1) * perPage.
    second = ok(await ah.request("GET", USERS_PAGE.replace("from=0", "from=10"), token=token))
    assert second["users"] == []

    # A user's page: the record, its devices, connections and rooms.
    user = ok(await ah.request("GET", "/_synapse/admin/v2/users/%40mia2%3Atest.local", token=token))
    assert user["name"] == "@mia2:test.local"
    assert user["creation_ts"] * 1000 <= hs.clock.time_msec()  # it multiplies by 1000
    assert isinstance(user["threepids"], list) and isinstance(user["external_ids"], list)
    devices = ok(
        await ah.request(
            "GET",
            "/_synapse/admin/v2/users/%40mia2%3Atest.local/devices?dir=f&from=0&limit=10",
            token=token,
        )
    )
    assert devices["total"] == len(devices["devices"]) == 1
    assert devices["devices"][0]["user_id"] == "@mia2:test.local"
    whois = ok(
        await ah.request("GET", "/_synapse/admin/v1/whois/%40mia2%3Atest.local", token=token)
    )
    assert whois["user_id"] == "@mia2:test.local" and isinstance(whois["devices"], dict)
    rooms = ok(
        await ah.request(
            "GET",
            "/_synapse/admin/v1/users/%40mia2%3Atest.local/joined_rooms?from=0&limit=10",
            token=token,
        )
    )
    assert rooms == {"joined_rooms": [room_id], "total": 1}

    # Its edit form PUTs the record back (with fields the server must ignore)
    # and reads the answer as the updated record.
    edited = dict(user, id=user["name"], displayname="Mia Two", avatar_src=None)
    resp = await ah.request(
        "PUT", "/_synapse/admin/v2/users/%40mia2%3Atest.local", json=edited, token=token
    )
    assert ok(resp)["displayname"] == "Mia Two"

    # Rooms list page (the other half of the admin API).
    if _has_route("GET", "/_synapse/admin/v1/rooms"):
        rooms_page = ok(await ah.request("GET", ROOMS_PAGE, token=token))
        assert isinstance(rooms_page["total_rooms"], int) and rooms_page["total_rooms"] >= 1
        entry = next(r for r in rooms_page["rooms"] if r["room_id"] == room_id)
        assert entry["name"] == "Lobby"
        for key in ("canonical_alias", "joined_members", "creator", "public", "version"):
            assert key in entry, key

    # A non-admin gets the 403 the UI turns into "not a server admin".
    alice = await _login(ah, "zoe", "pw")
    assert_error(
        await ah.request("GET", USERS_PAGE, token=alice["access_token"]), 403, "M_FORBIDDEN"
    )
