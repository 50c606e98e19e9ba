"""DELETE /_synapse/admin/v2/rooms/{roomId}: a background job, and its status."""

from __future__ import annotations

from typing import Any

import pytest

from tests.conftest import advance, settle
from tests.rooms.helpers import V3, assert_error, count_events, create_room, join, q, send, send_ok
from tests.spaces.support import ADMIN_V1, ADMIN_V2, ok, sh
from tests.support.harness import Harness, RecordingHandler, Response
from tests.support.users import TestUser, make_user

__all__ = ["sh"]


@pytest.fixture
async def admin(sh: Harness) -> TestUser:
    return await make_user(sh, "admin", admin=True)


@pytest.fixture
async def alice(sh: Harness) -> TestUser:
    return await make_user(sh, "alice")


@pytest.fixture
async def bob(sh: Harness) -> TestUser:
    return await make_user(sh, "bob")


async def delete(h: Harness, admin: TestUser, room_id: str, body: Any) -> Response:
    return await h.request("DELETE", f"{ADMIN_V2}/rooms/{q(room_id)}", json=body, token=admin.token)


async def status_by_id(h: Harness, admin: TestUser, delete_id: str) -> dict[str, Any]:
    resp = await h.request(
        "GET", f"{ADMIN_V2}/rooms/delete_status/{q(delete_id)}", token=admin.token
    )
    result: dict[str, Any] = ok(resp)
    return result


async def wait_done(h: Harness, admin: TestUser, delete_id: str) -> dict[str, Any]:
    # The job is a background process with no timers: it is over once the
    # loop has settled.
    await settle()
    status = await status_by_id(h, admin, delete_id)
    assert status["status"] in ("complete", "failed"), status
    return status


async def count_rows(h: Harness, table: str, room_id: str) -> int:
    value = await h.hs.db.fetchval(
        "test_count_rows", f"SELECT COUNT(*) FROM {table} WHERE room_id = ?", room_id
    )
    return int(value)


async def room_with_members(h: Harness, alice: TestUser, bob: TestUser) -> str:
    room = await create_room(
        h, alice, preset="public_chat", name="Bad room", room_alias_name="bad", visibility="public"
    )
    ok(await join(h, bob, room))
    await send_ok(h, alice, room, "something bad")
    ok(
        await h.request(
            "POST",
            f"{V3}/rooms/{q(room)}/receipt/m.read/{q(await send_ok(h, bob, room))}",
            json={},
            token=bob.token,
        )
    )
    return room


async def test_delete_with_new_room_and_purge(
    sh: Harness, admin: TestUser, alice: TestUser, bob: TestUser, log_records: RecordingHandler
) -> None:
    room = await room_with_members(sh, alice, bob)
    resp = await delete(
        sh,
        admin,
        room,
        {
            "new_room_user_id": admin.user_id,
            "room_name": "Moved",
            "message": "This room was shut down.",
            "block": True,
        },
    )
    delete_id = ok(resp)["delete_id"]
    assert isinstance(delete_id, str) and delete_id
    # Scheduling was logged under the admin's request.
    scheduled = log_records.matching(f"scheduled deletion {delete_id}")
    assert scheduled and scheduled[0].request != "sentinel"  # type: ignore[attr-defined]

    status = await wait_done(sh, admin, delete_id)
    assert status["status"] == "complete", status
    assert status["room_id"] == room
    assert "error" not in status
    shutdown = status["shutdown_room"]
    assert sorted(shutdown["kicked_users"]) == sorted([alice.user_id, bob.user_id])
    assert shutdown["failed_to_kick_users"] == []
    assert shutdown["local_aliases"] == ["#bad:test.local"]
    new_room = shutdown["new_room_id"]
    assert isinstance(new_room, str)

    # Everyone is in the new room, which says why and took the alias.
    joined = ok(await sh.request("GET", f"{V3}/joined_rooms", token=bob.token))["joined_rooms"]
    assert joined == [new_room]
    messages = ok(
        await sh.request("GET", f"{V3}/rooms/{q(new_room)}/messages?dir=b", token=bob.token)
    )
    bodies = [e["content"].get("body") for e in messages["chunk"]]
    assert "This room was shut down." in bodies
    alias = ok(await sh.request("GET", f"{V3}/directory/room/{q('#bad:test.local')}"))
    assert alias["room_id"] == new_room
    details = ok(await sh.request("GET", f"{ADMIN_V1}/rooms/{q(new_room)}", token=admin.token))
    assert details["name"] == "Moved"
    assert details["joined_members"] == 3

    # The old room is gone from the database, but stays blocked.
    assert_error(
        await sh.request("GET", f"{ADMIN_V1}/rooms/{q(room)}", token=admin.token),
        404,
        "M_NOT_FOUND",
    )
    assert await count_events(sh, room) == 0
    for table in ("rooms", "current_state", "room_memberships", "room_aliases", "receipts"):
        assert await count_rows(sh, table, room) == 0, table
    groups = await count_rows(sh, "state_groups", room)
    assert groups == 0
    block = ok(await sh.request("GET", f"{ADMIN_V1}/rooms/{q(room)}/block", token=admin.token))
    assert block == {"block": True, "user_id": admin.user_id}
    listed = ok(await sh.request("GET", f"{ADMIN_V1}/rooms", token=admin.token))
    assert room not in [r["room_id"] for r in listed["rooms"]]
    assert_error(await join(sh, bob, room), 404)
    # In the new room the moved users can't speak (users_default -10), its creator can.
    await send_ok(sh, admin, new_room, "hello again")
    assert_error(await send(sh, bob, new_room), 403, "M_FORBIDDEN")

    by_room = ok(
        await sh.request("GET", f"{ADMIN_V2}/rooms/{q(room)}/delete_status", token=admin.token)
    )
    assert by_room["results"] == [status]


async def test_delete_without_new_room_or_purge(
    sh: Harness, admin: TestUser, alice: TestUser, bob: TestUser
) -> None:
    room = await room_with_members(sh, alice, bob)
    delete_id = ok(await delete(sh, admin, room, {"purge": False}))["delete_id"]
    status = await wait_done(sh, admin, delete_id)
    assert status["status"] == "complete"
    shutdown = status["shutdown_room"]
    assert shutdown["new_room_id"] is None
    assert shutdown["local_aliases"] == []
    assert sorted(shutdown["kicked_users"]) == sorted([alice.user_id, bob.user_id])
    # Not purged: the room is still there, empty, forgotten, unlisted; not blocked.
    details = ok(await sh.request("GET", f"{ADMIN_V1}/rooms/{q(room)}", token=admin.token))
    assert details["joined_members"] == 0
    assert details["forgotten"] is True
    assert details["public"] is False
    assert await count_events(sh, room) > 0
    assert ok(await sh.request("GET", f"{V3}/joined_rooms", token=bob.token))["joined_rooms"] == []
    block = ok(await sh.request("GET", f"{ADMIN_V1}/rooms/{q(room)}/block", token=admin.token))
    assert block == {"block": False}
    ok(await join(sh, bob, room))


async def test_delete_and_purge_without_new_room(
    sh: Harness, admin: TestUser, alice: TestUser, bob: TestUser
) -> None:
    room = await room_with_members(sh, alice, bob)
    delete_id = ok(await delete(sh, admin, room, {}))["delete_id"]
    status = await wait_done(sh, admin, delete_id)
    assert status["status"] == "complete"
    assert await count_events(sh, room) == 0
    assert await count_rows(sh, "room_aliases", room) == 0
    assert_error(await join(sh, bob, "#bad:test.local"), 404, "M_NOT_FOUND")
    assert (
        ok(await sh.request("GET", f"{V3}/joined_rooms", token=alice.token))["joined_rooms"] == []
    )


async def test_delete_status_runs_on_virtual_time(
    sh: Harness, admin: TestUser, alice: TestUser
) -> None:
    room = await create_room(sh, alice, preset="public_chat")
    delete_id = ok(await delete(sh, admin, room, {}))["delete_id"]
    # Returned at once: the job hasn't finished yet.
    status = await status_by_id(sh, admin, delete_id)
    assert status["status"] in ("scheduled", "active")
    # A second deletion of the same room while the first runs is refused.
    assert_error(await delete(sh, admin, room, {}), 400)
    await advance(5)
    status = await wait_done(sh, admin, delete_id)
    assert status["status"] == "complete"
    # Statuses are kept for a day. (Advancing the loop a whole day would stop
    # at every looping call on the way, so the job's end is moved back instead.)
    finished = sh.hs.admin_rooms._deletes[delete_id]
    assert finished.finished_ms is not None
    finished.finished_ms -= 23 * 60 * 60 * 1000
    assert (await status_by_id(sh, admin, delete_id))["status"] == "complete"
    finished.finished_ms -= 2 * 60 * 60 * 1000
    resp = await sh.request(
        "GET", f"{ADMIN_V2}/rooms/delete_status/{q(delete_id)}", token=admin.token
    )
    assert_error(resp, 404, "M_NOT_FOUND")


async def test_delete_bad_requests(sh: Harness, admin: TestUser, alice: TestUser) -> None:
    room = await create_room(sh, alice, preset="public_chat")
    assert_error(await delete(sh, admin, "!unknown:test.local", {}), 404, "M_NOT_FOUND")
    assert_error(await delete(sh, admin, "not-a-room", {}), 400, "M_INVALID_PARAM")
    bad_bodies: list[dict[str, Any]] = [
        {"block": "yes"},
        {"purge": 1},
        {"force_purge": None},
        {"room_name": 5},
        {"message": []},
    ]
    for body in bad_bodies:
        assert_error(await delete(sh, admin, room, body), 400, "M_BAD_JSON")
    for body in ({"new_room_user_id": "@x:elsewhere.example"}, {"new_room_user_id": "nope"}):
        assert_error(await delete(sh, admin, room, body), 400, "M_INVALID_PARAM")
    resp = await sh.request("DELETE", f"{ADMIN_V2}/rooms/{q(room)}", body=b"", token=admin.token)
    assert resp.status == 400
    resp = await sh.request("GET", f"{ADMIN_V2}/rooms/delete_status/nope", token=admin.token)
    assert_error(resp, 404, "M_NOT_FOUND")
    resp = await sh.request("GET", f"{ADMIN_V2}/rooms/{q(room)}/delete_status", token=admin.token)
    assert_error(resp, 404, "M_NOT_FOUND")
    # The room survived all that.
    assert ok(await sh.request("GET", f"{ADMIN_V1}/rooms/{q(room)}", token=admin.token))


async def test_delete_v1_is_synchronous(
    sh: Harness, admin: TestUser, alice: TestUser, bob: TestUser
) -> None:
    room = await room_with_members(sh, alice, bob)
    resp = await sh.request(
        "DELETE",
        f"{ADMIN_V1}/rooms/{q(room)}",
        json={"new_room_user_id": admin.user_id},
        token=admin.token,
    )
    body = ok(resp)
    assert sorted(body["kicked_users"]) == sorted([alice.user_id, bob.user_id])
    assert body["local_aliases"] == ["#bad:test.local"]
    assert isinstance(body["new_room_id"], str)
    assert await count_events(sh, room) == 0
