"""Application service authentication over HTTP: as_token, identity assertion,
registration and login of its users, M_EXCLUSIVE for everyone else,
timestamp massaging and rate limits."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest

from hamlet.config import HomeServerConfig
from tests.accounts.conftest import OPEN_REGISTRATION
from tests.accounts.helpers import assert_error, register
from tests.appservice.support import AS_TOKEN, V3, as_request, register_ghost, registration
from tests.support.harness import Harness, start_harness

MakeConfig = Callable[..., HomeServerConfig]


@pytest.fixture
async def h(make_hs_config: MakeConfig) -> AsyncIterator[Harness]:
    config = make_hs_config(
        **OPEN_REGISTRATION,
        app_services=[registration(None)],
        rc_message={"per_second": 0.1, "burst_count": 2},
    )
    harness = await start_harness([config])
    yield harness
    await harness.close()


async def whoami(h: Harness, query: str = "", token: str = AS_TOKEN) -> Any:
    return await as_request(h, "GET", f"{V3}/account/whoami{query}", token=token)


async def test_as_token_is_the_sender_user_created_at_startup(h: Harness) -> None:
    resp = await whoami(h)
    assert resp.status == 200, resp.body
    assert resp.json["user_id"] == "@bridgebot:test.local"
    profile = await h.request("GET", f"{V3}/profile/@bridgebot:test.local")
    assert profile.status == 200, profile.body


async def test_ghost_registration_and_identity_assertion(h: Harness) -> None:
    resp = await register_ghost(h, "bridge_alice")
    assert resp.status == 200, resp.body
    assert resp.json["user_id"] == "@bridge_alice:test.local"
    assert resp.json["access_token"]
    me = await whoami(h, "?user_id=@bridge_alice:test.local")
    assert me.status == 200 and me.json["user_id"] == "@bridge_alice:test.local"
    # Not registered yet, outside the namespace, or someone else's token: refused.
    assert_error(await whoami(h, "?user_id=@bridge_bob:test.local"), 403, "M_FORBIDDEN")
    assert_error(await whoami(h, "?user_id=@stranger:test.local"), 403, "M_FORBIDDEN")
    assert_error(await whoami(h, "", token="not-a-token"), 401, "M_UNKNOWN_TOKEN")


async def test_ghost_registration_rules(h: Harness) -> None:
    inhibit = {
        "type": "m.login.application_service",
        "username": "bridge_quiet",
        "inhibit_login": True,
    }
    resp = await as_request(h, "POST", f"{V3}/register", json=inhibit)
    assert resp.status == 200 and "access_token" not in resp.json
    assert_error(await register_ghost(h, "outsider"), 400, "M_EXCLUSIVE")
    assert_error(await register_ghost(h, "bridge_x", token="wrong"), 401, "M_UNKNOWN_TOKEN")
    body = {"type": "m.login.application_service", "username": "bridge_y"}
    no_token = await h.request("POST", f"{V3}/register", json=body)
    assert_error(no_token, 400, "M_MISSING_TOKEN")
    assert_error(await register_ghost(h, "bridge_quiet"), 400, "M_USER_IN_USE")


async def test_others_cannot_take_the_exclusive_namespaces(h: Harness) -> None:
    assert_error(await register(h, "bridge_mallory"), 400, "M_EXCLUSIVE")
    assert_error(await register(h, "bridgebot"), 400, "M_EXCLUSIVE")
    available = await h.request("GET", f"{V3}/register/available?username=bridge_mallory")
    assert_error(available, 400, "M_EXCLUSIVE")
    user = await register(h, "mallory")
    token = user.json["access_token"]
    room = await h.request("POST", f"{V3}/createRoom", json={}, token=token)
    room_id = room.json["room_id"]
    alias = "%23bridge_room:test.local"
    put = await h.request(
        "PUT", f"{V3}/directory/room/{alias}", json={"room_id": room_id}, token=token
    )
    assert_error(put, 400, "M_EXCLUSIVE")
    create = await h.request(
        "POST", f"{V3}/createRoom", json={"room_alias_name": "bridge_x"}, token=token
    )
    assert_error(create, 400, "M_EXCLUSIVE")
    # The bridge itself may.
    mine = await as_request(h, "POST", f"{V3}/createRoom", json={"room_alias_name": "bridge_x"})
    assert mine.status == 200, mine.body


async def test_login_as_a_ghost(h: Harness) -> None:
    assert (await register_ghost(h, "bridge_carol")).status == 200
    body = {
        "type": "m.login.application_service",
        "identifier": {"type": "m.id.user", "user": "bridge_carol"},
    }
    resp = await as_request(h, "POST", f"{V3}/login", json=body)
    assert resp.status == 200, resp.body
    assert resp.json["user_id"] == "@bridge_carol:test.local"
    me = await h.request("GET", f"{V3}/account/whoami", token=resp.json["access_token"])
    assert me.json["device_id"] == resp.json["device_id"]
    flows = (await h.request("GET", f"{V3}/login")).json["flows"]
    assert {"type": "m.login.application_service"} in flows
    assert_error(await h.request("POST", f"{V3}/login", json=body), 401, "M_MISSING_TOKEN")
    outsider = {**body, "identifier": {"type": "m.id.user", "user": "someone"}}
    assert_error(await as_request(h, "POST", f"{V3}/login", json=outsider), 403, "M_FORBIDDEN")


async def test_device_masquerading(h: Harness) -> None:
    login = await register_ghost(h, "bridge_dave")
    device = login.json["device_id"]
    me = await whoami(h, f"?user_id=@bridge_dave:test.local&org.matrix.msc3202.device_id={device}")
    assert me.status == 200 and me.json["device_id"] == device
    plain = await whoami(h, f"?user_id=@bridge_dave:test.local&device_id={device}")
    assert plain.json["device_id"] == device
    unknown = await whoami(h, "?user_id=@bridge_dave:test.local&device_id=NOPE")
    assert_error(unknown, 400, "M_UNKNOWN_DEVICE")


async def test_timestamp_massaging_and_no_rate_limit(h: Harness) -> None:
    await register_ghost(h, "bridge_erin")
    room = await as_request(h, "POST", f"{V3}/createRoom", json={"preset": "public_chat"})
    room_id = room.json["room_id"]
    joined = await as_request(
        h, "POST", f"{V3}/rooms/{room_id}/join?user_id=@bridge_erin:test.local", json={}
    )
    assert joined.status == 200, joined.body
    ids = []
    # rc_message allows 2; a `rate_limited: false` service is not limited.
    for i in range(5):
        resp = await as_request(
            h,
            "PUT",
            f"{V3}/rooms/{room_id}/send/m.room.message/t{i}"
            f"?user_id=@bridge_erin:test.local&ts={1_000_000 + i}",
            json={"msgtype": "m.text", "body": f"hi {i}"},
        )
        assert resp.status == 200, resp.body
        ids.append(resp.json["event_id"])
    event = await as_request(h, "GET", f"{V3}/rooms/{room_id}/event/{ids[3]}")
    assert event.json["origin_server_ts"] == 1_000_003
    assert event.json["sender"] == "@bridge_erin:test.local"
    state = await as_request(
        h, "PUT", f"{V3}/rooms/{room_id}/state/m.room.topic/?ts=42", json={"topic": "old"}
    )
    topic = await as_request(h, "GET", f"{V3}/rooms/{room_id}/event/{state.json['event_id']}")
    assert topic.json["origin_server_ts"] == 42
    member = await as_request(
        h,
        "PUT",
        f"{V3}/rooms/{room_id}/state/m.room.member/@bridge_erin:test.local"
        "?user_id=@bridge_erin:test.local&ts=77",
        json={"membership": "join", "displayname": "Erin"},
    )
    assert member.status == 200, member.body
    joined = await as_request(h, "GET", f"{V3}/rooms/{room_id}/event/{member.json['event_id']}")
    assert joined.json["origin_server_ts"] == 77
    bad = await as_request(h, "PUT", f"{V3}/rooms/{room_id}/send/m.room.message/x?ts=-1", json={})
    assert_error(bad, 400, "M_INVALID_PARAM")


async def test_ts_is_ignored_for_ordinary_users(h: Harness) -> None:
    token = (await register(h, "frank")).json["access_token"]
    room_id = (await h.request("POST", f"{V3}/createRoom", json={}, token=token)).json["room_id"]
    sent = await h.request(
        "PUT",
        f"{V3}/rooms/{room_id}/send/m.room.message/1?ts=5",
        json={"msgtype": "m.text", "body": "x"},
        token=token,
    )
    event = await h.request(
        "GET", f"{V3}/rooms/{room_id}/event/{sent.json['event_id']}", token=token
    )
    assert event.json["origin_server_ts"] != 5


async def test_user_token_on_register_is_refused(h: Harness) -> None:
    token = (await register(h, "gina")).json["access_token"]
    resp = await h.request(
        "POST", f"{V3}/register", json={"username": "x", "password": "y"}, token=token
    )
    assert resp.status == 400
