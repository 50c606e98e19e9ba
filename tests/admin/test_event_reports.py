"""Reporting events (/rooms/{roomId}/report/{eventId}) and the event reports admin API."""

# ruff: noqa: F811  (fixtures imported from users_support)
from __future__ import annotations

from tests.admin.users_support import (  # noqa: F401
    CLIENT,
    V1,
    admin,
    ah,
    alice,
    assert_error,
    create_room,
    join,
    ok,
    send_text,
)
from tests.support.harness import Harness
from tests.support.users import TestUser, make_user

REPORTS = f"{V1}/event_reports"


async def _report(h: Harness, user: TestUser, room_id: str, event_id: str, **body: object):  # type: ignore[no-untyped-def]
    return await h.request(
        "POST", f"{CLIENT}/rooms/{room_id}/report/{event_id}", json=body, token=user.token
    )


async def test_report_and_read(ah: Harness, admin: TestUser, alice: TestUser) -> None:
    bob = await make_user(ah, "bob")
    room_id = await create_room(
        ah, alice, preset="public_chat", name="Town Square", room_alias_name="square"
    )
    await join(ah, bob, room_id)
    event_id = ok(await send_text(ah, alice, room_id, "rude words", "t1"))["event_id"]
    assert ok(await _report(ah, bob, room_id, event_id, reason="rude", score=-100)) == {}
    assert ok(await _report(ah, bob, room_id, event_id)) == {}

    listing = ok(await ah.request("GET", REPORTS, token=admin.token))
    assert listing["total"] == 2 and "next_token" not in listing
    newest, oldest = listing["event_reports"]  # newest first by default
    assert newest["id"] > oldest["id"]
    assert oldest["reason"] == "rude" and oldest["score"] == -100
    assert newest["reason"] is None and newest["score"] is None
    assert oldest["event_id"] == event_id and oldest["room_id"] == room_id
    assert oldest["user_id"] == bob.user_id and oldest["sender"] == alice.user_id
    assert oldest["name"] == "Town Square"
    assert oldest["canonical_alias"] == "#square:test.local"
    assert isinstance(oldest["received_ts"], int)

    forwards = ok(await ah.request("GET", f"{REPORTS}?dir=f", token=admin.token))
    assert [r["id"] for r in forwards["event_reports"]] == [oldest["id"], newest["id"]]
    page = ok(await ah.request("GET", f"{REPORTS}?limit=1", token=admin.token))
    assert page["next_token"] == 1 and len(page["event_reports"]) == 1
    page2 = ok(await ah.request("GET", f"{REPORTS}?limit=1&from=1", token=admin.token))
    assert "next_token" not in page2
    assert page2["event_reports"][0]["id"] == oldest["id"]

    detail = ok(await ah.request("GET", f"{REPORTS}/{oldest['id']}", token=admin.token))
    assert detail["event_json"]["type"] == "m.room.message"
    assert detail["event_json"]["content"]["body"] == "rude words"
    assert detail["event_json"]["sender"] == alice.user_id
    assert {k: v for k, v in detail.items() if k != "event_json"} == oldest

    assert ok(await ah.request("DELETE", f"{REPORTS}/{oldest['id']}", token=admin.token)) == {}
    assert_error(
        await ah.request("GET", f"{REPORTS}/{oldest['id']}", token=admin.token), 404, "M_NOT_FOUND"
    )
    assert_error(
        await ah.request("DELETE", f"{REPORTS}/{oldest['id']}", token=admin.token),
        404,
        "M_NOT_FOUND",
    )
    assert_error(
        await ah.request("GET", f"{REPORTS}/abc", token=admin.token), 400, "M_INVALID_PARAM"
    )


async def test_filters(ah: Harness, admin: TestUser, alice: TestUser) -> None:
    bob = await make_user(ah, "bob")
    r1 = await create_room(ah, alice, preset="public_chat")
    r2 = await create_room(ah, bob, preset="public_chat")
    await join(ah, bob, r1)
    await join(ah, alice, r2)
    e1 = ok(await send_text(ah, alice, r1, "a", "t1"))["event_id"]
    e2 = ok(await send_text(ah, bob, r2, "b", "t2"))["event_id"]
    ok(await _report(ah, bob, r1, e1, reason="one"))
    ok(await _report(ah, alice, r2, e2, reason="two"))

    async def reasons(query: str) -> list[str]:
        body = ok(await ah.request("GET", f"{REPORTS}?{query}", token=admin.token))
        return [r["reason"] for r in body["event_reports"]]

    assert await reasons(f"room_id={r1}") == ["one"]
    assert await reasons("user_id=alice") == ["two"]
    assert await reasons(f"sender_user_id={bob.user_id}") == ["two"]
    total = ok(await ah.request("GET", f"{REPORTS}?user_id=bob", token=admin.token))["total"]
    assert total == 1
    for query in ("from=-1", "limit=-1", "dir=up", "from=x"):
        resp = await ah.request("GET", f"{REPORTS}?{query}", token=admin.token)
        assert_error(resp, 400, "M_INVALID_PARAM")


async def test_reporter_must_see_the_event(ah: Harness, alice: TestUser) -> None:
    outsider = await make_user(ah, "outsider")
    room_id = await create_room(ah, alice)  # private
    event_id = ok(await send_text(ah, alice, room_id, "secret", "t1"))["event_id"]
    resp = await _report(ah, outsider, room_id, event_id, reason="?")
    assert_error(resp, 404, "M_NOT_FOUND")
    assert_error(await _report(ah, alice, room_id, "$unknown"), 404, "M_NOT_FOUND")
    for body in ({"score": -101}, {"score": 5}, {"score": "bad"}, {"reason": 12}):
        resp = await _report(ah, alice, room_id, event_id, **body)
        assert_error(resp, 400, "M_INVALID_PARAM")
    resp = await ah.request("POST", f"{CLIENT}/rooms/{room_id}/report/{event_id}", json={})
    assert_error(resp, 401, "M_MISSING_TOKEN")
    assert await ah.hs.event_reports.store.get(1) is None
