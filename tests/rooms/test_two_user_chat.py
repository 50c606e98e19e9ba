"""Two people chat end to end: sync and history agree, across a restart."""

from __future__ import annotations

import asyncio
import json
from typing import Any
from urllib.parse import quote

import pytest

from tests.support.harness import Harness, start_harness
from tests.support.users import TestUser, make_user

C = "/_matrix/client/v3"
MESSAGES = 200
SYNC_FILTER = quote(json.dumps({"room": {"timeline": {"limit": 1000}}}))


async def _send(harness: Harness, user: TestUser, room_id: str, n: int) -> str:
    resp = await harness.request(
        "PUT",
        f"{C}/rooms/{room_id}/send/m.room.message/{user.device_id}-{n}",
        json={"msgtype": "m.text", "body": f"{user.user_id} {n}"},
        token=user.token,
    )
    assert resp.status == 200, resp.json
    event_id: str = resp.json["event_id"]
    return event_id


@pytest.fixture
async def chat(make_hs_config):  # type: ignore[no-untyped-def]
    fast = {"per_second": 1000, "burst_count": 1000}
    h = await start_harness([make_hs_config(rc_message=fast)])
    yield h
    await h.close()


class SyncLoop:
    """B's client: an incremental /sync loop that records every timeline event."""

    def __init__(self, harness: Harness, user: TestUser, room_id: str, since: str) -> None:
        self.harness = harness
        self.user = user
        self.room_id = room_id
        self.since = since
        self.event_ids: list[str] = []
        self.ephemeral: list[dict[str, Any]] = []

    async def once(self, timeout_ms: int = 5000) -> None:
        resp = await self.harness.request(
            "GET",
            f"{C}/sync?since={self.since}&timeout={timeout_ms}&filter={SYNC_FILTER}",
            token=self.user.token,
        )
        assert resp.status == 200, resp.json
        room = resp.json["rooms"]["join"].get(self.room_id)
        if room is not None:
            assert not room["timeline"]["limited"]
            self.event_ids += [
                e["event_id"] for e in room["timeline"]["events"] if e["type"] == "m.room.message"
            ]
            self.ephemeral += room["ephemeral"]["events"]
        self.since = resp.json["next_batch"]

    async def until(self, count: int) -> None:
        for _ in range(200):
            if len(self.event_ids) >= count:
                return
            await self.once()
        raise AssertionError(f"sync saw only {len(self.event_ids)} of {count} messages")


async def _history(harness: Harness, user: TestUser, room_id: str) -> list[str]:
    """Every message in the room, paging /messages backwards from the end."""
    seen: list[str] = []
    token: str | None = None
    for _ in range(100):
        url = f"{C}/rooms/{room_id}/messages?dir=b&limit=37"
        if token:
            url += f"&from={token}"
        resp = await harness.request("GET", url, token=user.token)
        assert resp.status == 200, resp.json
        seen += [e["event_id"] for e in resp.json["chunk"] if e["type"] == "m.room.message"]
        token = resp.json.get("end")
        if not token or not resp.json["chunk"]:
            break
    seen.reverse()
    return seen


async def test_two_users_chat_through_a_restart(chat: Harness) -> None:
    harness = chat
    alice = await make_user(harness, "alice")
    bob = await make_user(harness, "bob")
    resp = await harness.request(
        "POST",
        f"{C}/createRoom",
        json={"preset": "private_chat", "invite": [bob.user_id]},
        token=alice.token,
    )
    room_id = resp.json["room_id"]
    resp = await harness.request("POST", f"{C}/join/{room_id}", token=bob.token)
    assert resp.status == 200, resp.json
    resp = await harness.request("GET", f"{C}/sync", token=bob.token)
    loop = SyncLoop(harness, bob, room_id, resp.json["next_batch"])

    half = MESSAGES // 2
    # Each person sends half of the first hundred, all at once, while B syncs.
    sends = [_send(harness, alice, room_id, i) for i in range(half // 2)]
    sends += [_send(harness, bob, room_id, i) for i in range(half // 2)]
    sync_task = asyncio.ensure_future(loop.until(half))
    sent = await asyncio.gather(*sends)
    await sync_task

    await harness.restart()

    sends = [_send(harness, alice, room_id, i) for i in range(half // 2, MESSAGES // 2)]
    sends += [_send(harness, bob, room_id, i) for i in range(half // 2, MESSAGES // 2)]
    sync_task = asyncio.ensure_future(loop.until(MESSAGES))
    sent += await asyncio.gather(*sends)
    await sync_task

    assert sorted(loop.event_ids) == sorted(sent)
    assert len(loop.event_ids) == len(set(loop.event_ids)) == MESSAGES
    history = await _history(harness, bob, room_id)
    assert history == loop.event_ids, "sync and /messages disagree on order"

    # Typing and read receipts from A reach B's sync.
    resp = await harness.request(
        "PUT",
        f"{C}/rooms/{room_id}/typing/{alice.user_id}",
        json={"typing": True, "timeout": 30000},
        token=alice.token,
    )
    assert resp.status == 200, resp.json
    last = loop.event_ids[-1]
    resp = await harness.request(
        "POST", f"{C}/rooms/{room_id}/receipt/m.read/{last}", json={}, token=alice.token
    )
    assert resp.status == 200, resp.json
    for _ in range(5):
        await loop.once(timeout_ms=1000)
    types = {e["type"] for e in loop.ephemeral}
    assert "m.typing" in types and "m.receipt" in types
    typing = [e for e in loop.ephemeral if e["type"] == "m.typing"][-1]
    assert alice.user_id in typing["content"]["user_ids"]
    receipt = [e for e in loop.ephemeral if e["type"] == "m.receipt"][-1]
    assert alice.user_id in receipt["content"][last]["m.read"]
