"""Two tenants sharing a room joined over federation, for the tests of
filling a room's DAG (missing events, backfill, catch-up)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any
from urllib.parse import quote

from hamlet.core.canonical_json import JsonDict
from tests.federation.inbound_support import client
from tests.support.harness import Harness
from tests.support.users import TestUser


async def say(h: Harness, host: str, user: TestUser, room: str, text: str) -> str:
    resp = await client(
        h,
        host,
        "PUT",
        f"/rooms/{room}/send/m.room.message/{text}",
        user,
        {"msgtype": "m.text", "body": text},
    )
    assert resp.status == 200, resp.json
    event_id: str = resp.json["event_id"]
    return event_id


async def room_joined_over_federation(
    h: Harness,
    owner_host: str,
    owner: TestUser,
    joiner_host: str,
    joiner: TestUser,
    *,
    history: int = 0,
    before_join: Callable[[str], Awaitable[None]] | None = None,
    **extra: Any,
) -> str:
    """A public room of `owner` that `joiner` (of another tenant) joins by
    alias after `owner` said m0, m1 ... (`history` messages) and
    `before_join(room_id)` ran."""
    body = {"preset": "public_chat", "room_alias_name": "hall", **extra}
    resp = await client(h, owner_host, "POST", "/createRoom", owner, body)
    assert resp.status == 200, resp.json
    for i in range(history):
        await say(h, owner_host, owner, resp.json["room_id"], f"m{i}")
    if before_join is not None:
        await before_join(resp.json["room_id"])
    joined = await client(
        h, joiner_host, "POST", f"/join/{quote(f'#hall:{owner_host}')}", joiner, {}
    )
    assert joined.status == 200, joined.json
    room_id: str = resp.json["room_id"]
    return room_id


async def pdu_of(h: Harness, host: str, event_id: str) -> JsonDict:
    stored = await h.servers[host].events_store.get_event(event_id)
    assert stored is not None
    return stored.event.get_pdu_json(include_unsigned=False)


async def messages_back(
    h: Harness, host: str, user: TestUser, room: str, *, limit: int = 10, pages: int = 20
) -> list[str]:
    """Every message body `user` can page back to, oldest first."""
    bodies: list[str] = []
    token: str | None = None
    for _ in range(pages):
        path = f"/rooms/{room}/messages?dir=b&limit={limit}" + (f"&from={token}" if token else "")
        resp = await client(h, host, "GET", path, user)
        assert resp.status == 200, resp.json
        bodies += [e["content"].get("body") for e in resp.json["chunk"] if _message(e)]
        token = resp.json.get("end")
        if token is None:
            break
    return bodies[::-1]


async def news(h: Harness, host: str, room: str) -> list[str]:
    """Message bodies stored as they arrived (not backfilled as history), in order."""
    events = await h.servers[host].room_history_store.get_room_events(
        room, after=0, before=None, limit=500, backwards=False
    )
    return [str(e.event.content.get("body")) for e in events if e.event.type == "m.room.message"]


def _message(event: JsonDict) -> bool:
    return bool(event["type"] == "m.room.message")
