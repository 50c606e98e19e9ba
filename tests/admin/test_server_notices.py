"""Server notices: POST/PUT /_synapse/admin/v1/send_server_notice."""

# ruff: noqa: F811  (fixtures imported from users_support)
from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest

from tests.admin.users_support import (  # noqa: F401
    CLIENT,
    OPEN,
    V1,
    admin,
    ah,
    alice,
    assert_error,
    ok,
)
from tests.support.harness import Harness, start_harness
from tests.support.users import TestUser, make_user

SEND = f"{V1}/send_server_notice"
NOTICES = {
    "system_mxid_localpart": "notices",
    "system_mxid_display_name": "Server Notices",
    "system_mxid_avatar_url": "mxc://test.local/notice-avatar",
    "room_name": "Notices from the server",
}
SYSTEM = "@notices:test.local"


@pytest.fixture
async def nh(make_hs_config) -> AsyncIterator[Harness]:  # type: ignore[no-untyped-def]
    harness = await start_harness([make_hs_config(**OPEN, server_notices=NOTICES)])
    yield harness
    await harness.close()


@pytest.fixture
async def auto(make_hs_config) -> AsyncIterator[Harness]:  # type: ignore[no-untyped-def]
    harness = await start_harness(
        [make_hs_config(**OPEN, server_notices={**NOTICES, "auto_join": True})]
    )
    yield harness
    await harness.close()


def _notice(user_id: str, body: str = "Hello", **extra: Any) -> dict[str, Any]:
    return {"user_id": user_id, "content": {"msgtype": "m.text", "body": body}, **extra}


async def test_notice_invites_into_a_tagged_room(nh: Harness) -> None:
    root = await make_user(nh, "root", admin=True)
    carol = await make_user(nh, "carol")
    event_id = ok(await nh.request("POST", SEND, json=_notice(carol.user_id), token=root.token))[
        "event_id"
    ]
    stored = await nh.hs.events_store.get_event(event_id)
    assert stored is not None
    event = stored.event
    assert event.sender == SYSTEM and event.content["body"] == "Hello"
    room_id = event.room_id
    membership = await nh.hs.rooms_store.get_membership(room_id, carol.user_id)
    assert membership is not None and membership.membership == "invite"
    tags = await nh.hs.account_data.get_tags(carol.user_id, room_id)
    assert "m.server_notice" in tags
    name = await nh.hs.room_state.get_current_state_event(room_id, "m.room.name", "")
    assert name is not None and name.content["name"] == "Notices from the server"
    # The system user exists, with its configured profile.
    system = ok(await nh.request("GET", f"/_synapse/admin/v2/users/{SYSTEM}", token=root.token))
    assert system["displayname"] == "Server Notices"
    assert system["avatar_url"] == "mxc://test.local/notice-avatar"

    # The next notice goes to the same room; once she joins she sees both.
    second = ok(
        await nh.request("POST", SEND, json=_notice(carol.user_id, "Again"), token=root.token)
    )["event_id"]
    again = await nh.hs.events_store.get_event(second)
    assert again is not None and again.event.room_id == room_id
    ok(await nh.request("POST", f"{CLIENT}/join/{room_id}", json={}, token=carol.token))
    # She may not post there.
    resp = await nh.request(
        "PUT",
        f"{CLIENT}/rooms/{room_id}/send/m.room.message/x1",
        json={"msgtype": "m.text", "body": "reply"},
        token=carol.token,
    )
    assert_error(resp, 403, "M_FORBIDDEN")
    # After leaving, a new notice makes a new room.
    ok(await nh.request("POST", f"{CLIENT}/rooms/{room_id}/leave", json={}, token=carol.token))
    third = ok(
        await nh.request("POST", SEND, json=_notice(carol.user_id, "New"), token=root.token)
    )["event_id"]
    moved = await nh.hs.events_store.get_event(third)
    assert moved is not None and moved.event.room_id != room_id


async def test_put_with_txn_id_is_idempotent(nh: Harness) -> None:
    root = await make_user(nh, "root", admin=True)
    carol = await make_user(nh, "carol")
    first = ok(
        await nh.request("PUT", f"{SEND}/txn1", json=_notice(carol.user_id), token=root.token)
    )
    again = ok(
        await nh.request("PUT", f"{SEND}/txn1", json=_notice(carol.user_id), token=root.token)
    )
    other = ok(
        await nh.request("PUT", f"{SEND}/txn2", json=_notice(carol.user_id), token=root.token)
    )
    assert first == again and first != other


async def test_state_events_and_auto_join(auto: Harness) -> None:
    root = await make_user(auto, "root", admin=True)
    carol = await make_user(auto, "carol")
    body = _notice(carol.user_id, type="m.room.topic", state_key="")
    body["content"] = {"topic": "Maintenance tonight"}
    event_id = ok(await auto.request("POST", SEND, json=body, token=root.token))["event_id"]
    stored = await auto.hs.events_store.get_event(event_id)
    assert stored is not None and stored.event.type == "m.room.topic"
    assert stored.event.state_key == ""
    membership = await auto.hs.rooms_store.get_membership(stored.event.room_id, carol.user_id)
    assert membership is not None and membership.membership == "join"


async def test_refusals(nh: Harness) -> None:
    root = await make_user(nh, "root", admin=True)
    t = root.token
    resp = await nh.request("POST", SEND, json=_notice("@nobody:test.local"), token=t)
    assert_error(resp, 404, "M_NOT_FOUND")
    resp = await nh.request("POST", SEND, json=_notice("@someone:elsewhere.org"), token=t)
    assert_error(resp, 400, "M_UNKNOWN")
    assert_error(
        await nh.request("POST", SEND, json={"user_id": root.user_id}, token=t),
        400,
        "M_MISSING_PARAM",
    )
    assert_error(
        await nh.request("POST", SEND, json={"user_id": root.user_id, "content": "x"}, token=t),
        400,
        "M_BAD_JSON",
    )


async def test_disabled_without_config(ah: Harness, admin: TestUser, alice: TestUser) -> None:
    resp = await ah.request("POST", SEND, json=_notice(alice.user_id), token=admin.token)
    assert_error(resp, 400, "M_UNKNOWN")
    assert "not enabled" in resp.json["error"]
