"""A long-poll /sync answers when there is something to say, not on every change it filters out."""

from __future__ import annotations

import asyncio
import json
from typing import Any
from urllib.parse import quote

from tests.conftest import advance, settle
from tests.support.harness import Harness, Response
from tests.support.users import TestUser, make_user
from tests.user_streams.helpers import V3, call, public_room, send_text


def _poll(harness: Harness, user: TestUser, since: str, sync_filter: Any) -> asyncio.Task[Response]:
    path = f"{V3}/sync?since={quote(since)}&timeout=120000&filter={quote(json.dumps(sync_filter))}"
    return asyncio.ensure_future(harness.request("GET", path, token=user.token))


async def _set_presence(harness: Harness, user: TestUser, presence: str) -> None:
    path = f"/presence/{quote(user.user_id)}/status"
    resp = await call(harness, "PUT", path, user, {"presence": presence})
    assert resp.status == 200, resp.json
    # Past the rate limit's interval before the next change.
    await advance(10)


async def test_filtered_out_presence_changes_do_not_wake_a_long_poll(harness: Harness) -> None:
    alice = await make_user(harness, "alice")
    bob = await make_user(harness, "bob")
    room_id = await public_room(harness, alice, bob)
    hidden = {"presence": {"not_senders": [alice.user_id]}}
    since = (await call(harness, "GET", "/sync", bob)).json["next_batch"]

    poll = _poll(harness, bob, since, hidden)
    await settle()
    for presence in ("online", "unavailable", "online", "offline"):
        await _set_presence(harness, alice, presence)
        await settle()
        assert not poll.done(), f"woken by alice going {presence}, which bob filters out"
    event_id = await send_text(harness, alice, room_id, "hello")
    resp = await poll
    assert resp.status == 200, resp.json
    timeline = resp.json["rooms"]["join"][room_id]["timeline"]["events"]
    assert [e["event_id"] for e in timeline] == [event_id]
    assert resp.json.get("presence", {}).get("events", []) == []

    # Nothing but hidden changes until the timeout: one empty answer then, moved on.
    since = resp.json["next_batch"]
    poll = _poll(harness, bob, since, hidden)
    await settle()
    await _set_presence(harness, alice, "online")
    await settle()
    assert not poll.done()
    await advance(121)
    resp = await poll
    assert resp.status == 200, resp.json
    assert not resp.json.get("rooms", {}).get("join")
    assert resp.json["next_batch"] != since

    # Unfiltered, the same change is news: it answers at once.
    poll = _poll(harness, bob, resp.json["next_batch"], {})
    await settle()
    await _set_presence(harness, alice, "unavailable")
    resp = await poll
    senders = [e["sender"] for e in resp.json["presence"]["events"]]
    assert alice.user_id in senders
