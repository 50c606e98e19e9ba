"""Sync tokens minted by another version (fewer or more streams) keep working over /sync."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from typing import Any
from urllib.parse import quote

import pytest

from hamlet.config import HomeServerConfig
from hamlet.handlers.common.streams import STREAM_NAMES, StreamToken
from tests.support.harness import Harness, start_harness
from tests.support.users import TestUser, make_user
from tests.sync.helpers import C
from tests.user_streams.helpers import call, public_room, send_text


@pytest.fixture
async def h(make_hs_config: Callable[..., HomeServerConfig]) -> AsyncIterator[Harness]:
    harness = await start_harness([make_hs_config()])
    yield harness
    await harness.close()


async def sync(h: Harness, user: TestUser, since: str) -> dict[str, Any]:
    resp = await h.request("GET", f"{C}/sync?since={quote(since)}", token=user.token)
    assert resp.status == 200, resp.json
    body: dict[str, Any] = resp.json
    return body


def timeline(body: dict[str, Any], room: str) -> list[str]:
    return [e["content"]["body"] for e in body["rooms"]["join"][room]["timeline"]["events"]]


async def test_a_token_from_before_the_newest_stream_was_added(h: Harness) -> None:
    alice = await make_user(h, "alice")
    bob = await make_user(h, "bob")
    room = await public_room(h, alice, bob)
    await send_text(h, alice, room, "seen")
    resp = await h.request("GET", f"{C}/sync", token=bob.token)
    current = resp.json["next_batch"]
    # The same token as the version before `device_lists` existed would have minted it.
    old = current.rsplit("_", 1)[0]
    assert len(old.split("_")) == len(STREAM_NAMES) - 1
    await send_text(h, alice, room, "new")
    body = await sync(h, bob, old)
    # No replay of what the token's streams already delivered...
    assert timeline(body, room) == ["new"]
    # ...and the missing stream reads from its start, which here holds alice's
    # and bob's device registrations: bob learns of alice's device list.
    assert alice.user_id in body["device_lists"]["changed"]
    # The answer is a complete token of this version, which goes on working.
    assert len(body["next_batch"].split("_")) == len(STREAM_NAMES)
    await send_text(h, alice, room, "newer")
    assert timeline(await sync(h, bob, body["next_batch"]), room) == ["newer"]


async def test_a_token_from_a_newer_version(h: Harness) -> None:
    alice = await make_user(h, "alice")
    bob = await make_user(h, "bob")
    room = await public_room(h, alice, bob)
    resp = await h.request("GET", f"{C}/sync", token=bob.token)
    current = resp.json["next_batch"]
    newer = current + "_123_4"
    await send_text(h, alice, room, "after")
    body = await sync(h, bob, newer)
    assert timeline(body, room) == ["after"]
    assert StreamToken.parse(body["next_batch"]).events > StreamToken.parse(current).events
    assert "_123_4" not in body["next_batch"]


async def test_to_device_messages_are_not_lost_to_a_short_token(h: Harness) -> None:
    alice = await make_user(h, "alice")
    bob = await make_user(h, "bob")
    resp = await h.request("GET", f"{C}/sync", token=bob.token)
    token = StreamToken.parse(resp.json["next_batch"])
    body = {"messages": {bob.user_id: {bob.device_id: {"hello": 1}}}}
    resp = await call(h, "PUT", "/sendToDevice/m.test/t1", alice, body)
    assert resp.status == 200
    # A token that stops before `to_device`: the inbox is delivered from its start.
    short = "s" + "_".join(
        str(token.get(n)) for n in STREAM_NAMES[: STREAM_NAMES.index("to_device")]
    )
    got = await sync(h, bob, short)
    assert [e["content"] for e in got["to_device"]["events"]] == [{"hello": 1}]
