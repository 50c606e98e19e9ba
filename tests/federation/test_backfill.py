"""/messages past the oldest event a tenant holds of a room joined over
federation: older history is backfilled from a server in the room, checked,
stored below everything else and shown within history visibility."""

from __future__ import annotations

from typing import Any

import pytest

from tests.conftest import advance
from tests.federation.conftest import StartServers
from tests.federation.dag_support import messages_back, room_joined_over_federation, say
from tests.federation.inbound_support import client, sync
from tests.support.federation import HarnessTransport
from tests.support.harness import Harness
from tests.support.users import make_user

A, B = "bfa.test", "bfb.test"
BACKFILL = "/_matrix/federation/v1/backfill"
MESSAGE = "m.room.message"
UNLIMITED = {"per_second": 1000, "burst_count": 1000}


@pytest.fixture
async def h(make_hs_config: Any, start_servers: StartServers) -> Harness:
    return await start_servers(*(make_hs_config(n, rc_message=UNLIMITED) for n in (A, B)))


async def test_a_late_joiner_pages_back_into_earlier_history(
    h: Harness, transport: HarnessTransport
) -> None:
    bob = await make_user(h, "bob", host=B)
    alice = await make_user(h, "alice", host=A)
    room = await room_joined_over_federation(h, B, bob, A, alice, history=30)
    since = (await sync(h, A, alice))["next_batch"]

    assert await messages_back(h, A, alice, room, limit=7) == [f"m{i}" for i in range(30)]
    assert transport.count("GET", B, BACKFILL) >= 2
    # History, not news: /sync shows none of it.
    body = await sync(h, A, alice, since)
    assert room not in body.get("rooms", {}).get("join", {})
    # Paging forwards from the room's start begins with the backfilled history.
    forwards = await client(h, A, "GET", f"/rooms/{room}/messages?dir=f&limit=50", alice)
    assert forwards.json["chunk"][0]["type"] == "m.room.create"
    bodies = [e["content"].get("body") for e in forwards.json["chunk"] if e["type"] == MESSAGE]
    assert bodies == [f"m{i}" for i in range(30)]
    # So does the admin API's, whatever the admin's membership.
    admin = await make_user(h, "root", admin=True, host=A)
    path = f"/_synapse/admin/v1/rooms/{room}/messages?dir=f&limit=50"
    resp = await h.request("GET", path, token=admin.token, host=A)
    assert resp.status == 200
    assert resp.json["chunk"][0]["type"] == "m.room.create"
    bodies = [e["content"].get("body") for e in resp.json["chunk"] if e["type"] == MESSAGE]
    assert bodies == [f"m{i}" for i in range(30)]
    # Back to the create event: paging again is served locally, asking no one.
    asked = transport.count("GET", B, BACKFILL)
    assert await messages_back(h, A, alice, room, limit=50) == [f"m{i}" for i in range(30)]
    assert transport.count("GET", B, BACKFILL) == asked


async def test_history_visibility_holds_for_backfilled_events(h: Harness) -> None:
    bob = await make_user(h, "bob", host=B)
    alice = await make_user(h, "alice", host=A)
    hidden = {"type": "m.room.history_visibility", "content": {"history_visibility": "joined"}}
    room = await room_joined_over_federation(
        h, B, bob, A, alice, history=5, initial_state=[{**hidden, "state_key": ""}]
    )
    await say(h, A, alice, room, "after")
    assert await messages_back(h, A, alice, room) == ["after"]


async def test_a_backfilled_redaction_is_applied(h: Harness) -> None:
    bob = await make_user(h, "bob", host=B)
    alice = await make_user(h, "alice", host=A)
    said: dict[str, str] = {}

    async def redact_m1(room: str) -> None:
        said["m1"] = await say(h, B, bob, room, "m1")
        path = f"/rooms/{room}/redact/{said['m1']}/r1"
        resp = await client(h, B, "PUT", path, bob, {"reason": "oops"})
        assert resp.status == 200, resp.json
        said["redaction"] = resp.json["event_id"]
        said["m2"] = await say(h, B, bob, room, "m2")

    room = await room_joined_over_federation(h, B, bob, A, alice, history=1, before_join=redact_m1)
    # m1 is served as a body-less message, redacted, as on its own server.
    assert await messages_back(h, A, alice, room) == ["m0", None, "m2"]
    for host, user in ((A, alice), (B, bob)):
        resp = await client(h, host, "GET", f"/rooms/{room}/event/{said['m1']}", user)
        assert resp.status == 200, resp.json
        assert resp.json["content"] == {}
        assert resp.json["unsigned"]["redacted_because"]["event_id"] == said["redaction"]
    forwards = await client(h, A, "GET", f"/rooms/{room}/messages?dir=f&limit=50", alice)
    (m1,) = [e for e in forwards.json["chunk"] if e["event_id"] == said["m1"]]
    assert m1["content"] == {}


@pytest.mark.parametrize(
    "bad", ["garbage", {"pdus": "nope"}, {"pdus": [{"x": i} for i in range(5000)]}, "forged"]
)
async def test_hostile_backfill_answers_store_nothing(
    h: Harness, transport: HarnessTransport, bad: Any
) -> None:
    bob = await make_user(h, "bob", host=B)
    alice = await make_user(h, "alice", host=A)
    room = await room_joined_over_federation(h, B, bob, A, alice, history=3)
    first = await h.servers[B].room_history_store.get_room_events(
        room, after=None, before=None, limit=50, backwards=False
    )
    forged = next(
        s.event.get_pdu_json(include_unsigned=False) for s in first if s.event.type == MESSAGE
    )
    forged["content"] = {"msgtype": "m.text", "body": "forged"}
    forged["signatures"] = {}

    def tamper(dest: str, path: str, answer: Any) -> Any:
        if not path.startswith(BACKFILL):
            return answer
        return {"pdus": [forged]} if bad == "forged" else bad

    transport.tamper = tamper
    assert await messages_back(h, A, alice, room) == []
    # A fruitless backfill is not retried at once; later, a good answer lands.
    asked = transport.count("GET", B, BACKFILL)
    assert await messages_back(h, A, alice, room) == []
    assert transport.count("GET", B, BACKFILL) == asked
    transport.tamper = None
    await advance(61)
    assert await messages_back(h, A, alice, room) == ["m0", "m1", "m2"]


async def test_no_server_to_ask_is_an_empty_page(h: Harness, transport: HarnessTransport) -> None:
    bob = await make_user(h, "bob", host=B)
    alice = await make_user(h, "alice", host=A)
    room = await room_joined_over_federation(h, B, bob, A, alice)
    await say(h, B, bob, room, "m0")
    transport.down.add(B)
    resp = await client(h, A, "GET", f"/rooms/{room}/messages?dir=b&limit=5", alice)
    assert resp.status == 200 and resp.json["chunk"]
    assert resp.json["chunk"][0]["type"] == "m.room.member"
