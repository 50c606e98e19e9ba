"""Sliding sync receipts and typing extensions over HTTP: scoping by lists and
subscriptions, long-poll wake-ups, and the request's logging context."""

from __future__ import annotations

import asyncio
from typing import Any
from urllib.parse import quote

from hamlet.runtime.logcontext import SENTINEL_REQUEST
from tests.conftest import settle
from tests.sliding_sync.helpers import slide
from tests.support.harness import Harness, RecordingHandler
from tests.support.users import TestUser, make_user
from tests.sync.helpers import body
from tests.user_streams.helpers import call, public_room, send_text

ONE = {"ranges": [[0, 0]], "timeline_limit": 1}


async def receipt(h: Harness, user: TestUser, room: str, event_id: str, kind: str) -> None:
    resp = await call(h, "POST", f"/rooms/{room}/receipt/{kind}/{quote(event_id)}", user, {})
    assert resp.status == 200, resp.json


async def typing(h: Harness, user: TestUser, room: str) -> None:
    path = f"/rooms/{room}/typing/{quote(user.user_id)}"
    resp = await call(h, "PUT", path, user, {"typing": True, "timeout": 30000})
    assert resp.status == 200, resp.json


def readers(got: dict[str, Any], room: str) -> dict[str, set[str]]:
    """{receipt type: users} of a room in the receipts extension."""
    content = got["extensions"]["receipts"]["rooms"][room]
    assert content["type"] == "m.receipt"
    out: dict[str, set[str]] = {}
    for by_type in content["content"].values():
        for kind, users in by_type.items():
            out.setdefault(kind, set()).update(users)
    return out


async def test_receipts_initial_and_incremental(h: Harness) -> None:
    alice = await make_user(h, "alice")
    bob = await make_user(h, "bob")
    room = await public_room(h, alice, bob)
    old = await send_text(h, bob, room, "old")
    await receipt(h, bob, room, old, "m.read")
    shown = await send_text(h, bob, room, "shown")
    await receipt(h, alice, room, shown, "m.read")
    await receipt(h, bob, room, shown, "m.read.private")
    req = {"lists": {"l": ONE}, "extensions": {"receipts": {"enabled": True}}}
    first = body(await slide(h, alice, req))
    # Afresh: receipts on the timeline's events (and the user's own); never
    # another user's private receipt; not those on events not sent.
    assert readers(first, room) == {"m.read": {alice.user_id}}
    poll = asyncio.ensure_future(slide(h, alice, req, pos=first["pos"], wait_ms=30000))
    await settle()
    assert not poll.done()
    await receipt(h, bob, room, shown, "m.read")
    got = body(await poll)
    assert readers(got, room) == {"m.read": {bob.user_id}}
    assert got["rooms"] == {}


async def test_extension_scoping_by_lists_and_rooms(h: Harness) -> None:
    alice = await make_user(h, "alice")
    bob = await make_user(h, "bob")
    listed = await public_room(h, alice, bob)
    subscribed = await public_room(h, alice, bob)
    for room in (subscribed, listed):
        await typing(h, bob, room)
    await send_text(h, bob, listed, "on top")

    async def typing_rooms(ext: dict[str, Any]) -> set[str]:
        req = {
            "lists": {"top": ONE},
            "room_subscriptions": {subscribed: {"timeline_limit": 0}},
            "extensions": {"typing": {"enabled": True, **ext}},
        }
        got = body(await slide(h, alice, req))
        rooms = got["extensions"]["typing"]["rooms"]
        for content in rooms.values():
            assert content == {"type": "m.typing", "content": {"user_ids": [bob.user_id]}}
        return set(rooms)

    assert await typing_rooms({}) == {listed, subscribed}
    assert await typing_rooms({"lists": ["*"], "rooms": ["*"]}) == {listed, subscribed}
    assert await typing_rooms({"lists": ["top"], "rooms": []}) == {listed}
    assert await typing_rooms({"lists": [], "rooms": [subscribed]}) == {subscribed}
    assert await typing_rooms({"lists": ["nope"], "rooms": ["!nope:x"]}) == set()
    assert await typing_rooms({"lists": None, "rooms": None}) == set()
    resp = await slide(h, alice, {"extensions": {"typing": {"enabled": True, "lists": "top"}}})
    assert resp.status == 400


async def test_typing_wakes_a_long_poll(h: Harness) -> None:
    alice = await make_user(h, "alice")
    bob = await make_user(h, "bob")
    room = await public_room(h, alice, bob)
    req = {"lists": {"l": ONE}, "extensions": {"typing": {"enabled": True}}}
    first = body(await slide(h, alice, req))
    assert first["extensions"]["typing"]["rooms"] == {}
    poll = asyncio.ensure_future(slide(h, alice, req, pos=first["pos"], wait_ms=30000))
    await settle()
    assert not poll.done()
    await typing(h, bob, room)
    got = body(await poll)
    assert got["extensions"]["typing"]["rooms"][room]["content"]["user_ids"] == [bob.user_id]
    # Told once: the next request has no typing news.
    again = body(await slide(h, alice, req, pos=got["pos"]))
    assert again["extensions"]["typing"]["rooms"] == {}


async def test_typing_extension_logs_under_the_request(
    h: Harness, log_records: RecordingHandler
) -> None:
    """Synapse's typing extension once ran in the sentinel context ("Starting
    metrics collection 'typing.get_new_events' from sentinel context")."""
    alice = await make_user(h, "alice")
    room = await public_room(h, alice)
    await typing(h, alice, room)
    req = {
        "lists": {"l": ONE},
        "extensions": {
            "typing": {"enabled": True},
            "receipts": {"enabled": True},
            "account_data": {"enabled": True},
        },
    }
    log_records.records.clear()
    got = body(await slide(h, alice, req))
    assert room in got["extensions"]["typing"]["rooms"]
    (line,) = log_records.matching("typing extension")
    assert line.server_name == h.hs.server_name  # type: ignore[attr-defined]
    assert line.request != SENTINEL_REQUEST  # type: ignore[attr-defined]
    # The same request as the access log line of the sliding sync call.
    (access,) = [r for r in log_records.records if "simplified_msc3575" in r.getMessage()]
    assert line.request == access.request  # type: ignore[attr-defined]
