"""A PDU whose past the receiving tenant lacks: the gap is fetched from its
origin (/get_missing_events, else the state before it), bounded and checked,
and a sender catching up after an outage leaves the receiver with every
event in order."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from tests.conftest import advance, settle
from tests.federation.conftest import StartServers
from tests.federation.dag_support import (
    messages_back,
    news,
    pdu_of,
    room_joined_over_federation,
    say,
)
from tests.federation.inbound_support import client, send_txn, sync, txn
from tests.support.federation import HarnessTransport
from tests.support.harness import Harness
from tests.support.users import TestUser, make_user

A, B, C = "gapa.test", "gapb.test", "gapc.test"
V1 = "/_matrix/federation/v1"
MISSING = f"{V1}/get_missing_events"
UNLIMITED = {"per_second": 1000, "burst_count": 1000}
FEDERATION: dict[str, Any] = {
    "max_long_retries": 1,
    "max_long_retry_delay": 1000,
    "destination_min_retry_interval": "60s",
    "destination_retry_multiplier": 2,
    "destination_max_retry_interval": "5m",
}


@pytest.fixture
async def h(make_hs_config: Any, start_servers: StartServers) -> Harness:
    return await start_servers(
        *(make_hs_config(name, federation=FEDERATION, rc_message=UNLIMITED) for name in (A, B))
    )


async def _room(h: Harness) -> tuple[TestUser, TestUser, str]:
    bob = await make_user(h, "bob", host=B)
    alice = await make_user(h, "alice", host=A)
    room = await room_joined_over_federation(h, B, bob, A, alice)
    return alice, bob, room


def _timeline(body: Any, room: str) -> list[str]:
    events = body["rooms"]["join"].get(room, {}).get("timeline", {}).get("events", [])
    return [e["content"]["body"] for e in events if e["type"] == "m.room.message"]


async def test_a_gap_is_fetched_from_the_origin_in_order(
    h: Harness, transport: HarnessTransport
) -> None:
    alice, bob, room = await _room(h)
    since = (await sync(h, A, alice))["next_batch"]
    ids = [await say(h, B, bob, room, f"m{i}") for i in range(25)]
    answer = await send_txn(transport, h, B, A, "t1", txn(B, pdus=[await pdu_of(h, B, ids[-1])]))
    assert answer["pdus"] == {ids[-1]: {}}
    # 24 missing events: three rounds of at most 10, stored oldest first.
    assert transport.count("POST", B, MISSING) == 3
    wanted = [f"m{i}" for i in range(25)]
    assert await news(h, A, room) == wanted
    assert await messages_back(h, A, alice, room) == wanted
    body = await sync(h, A, alice, since)
    assert _timeline(body, room)[-10:] == wanted[-10:]


async def test_the_state_before_it_when_the_origin_withholds_the_gap(
    h: Harness, transport: HarnessTransport
) -> None:
    alice, bob, room = await _room(h)
    since = (await sync(h, A, alice))["next_batch"]
    ids = [await say(h, B, bob, room, f"m{i}") for i in range(3)]
    transport.tamper = lambda dest, path, answer: (
        {"events": []} if path.startswith(MISSING) else answer
    )
    answer = await send_txn(transport, h, B, A, "t1", txn(B, pdus=[await pdu_of(h, B, ids[-1])]))
    assert answer["pdus"] == {ids[-1]: {}}
    assert transport.count("GET", B, f"{V1}/state_ids") == 1
    assert _timeline(await sync(h, A, alice, since), room) == ["m2"]


async def test_missing_auth_events_come_from_event_auth(
    h: Harness, transport: HarnessTransport
) -> None:
    alice, bob, room = await _room(h)
    levels = await client(h, B, "GET", f"/rooms/{room}/state/m.room.power_levels", bob)
    raised = {**levels.json, "state_default": 51}
    resp = await client(h, B, "PUT", f"/rooms/{room}/state/m.room.power_levels", bob, raised)
    assert resp.status == 200, resp.json
    message = await say(h, B, bob, room, "m0")
    assert resp.json["event_id"] in (await pdu_of(h, B, message))["auth_events"]
    transport.tamper = lambda dest, path, answer: (
        {"events": []} if path.startswith(MISSING) else answer
    )
    answer = await send_txn(transport, h, B, A, "t1", txn(B, pdus=[await pdu_of(h, B, message)]))
    assert answer["pdus"] == {message: {}}
    assert transport.count("GET", B, f"{V1}/event_auth") == 1
    assert await messages_back(h, A, alice, room) == ["m0"]


@pytest.mark.parametrize(
    "bad",
    [
        "not json object",
        {"events": "nope"},
        {"events": [{"junk": i} for i in range(10_000)]},
        "itself",
        "other room",
    ],
)
async def test_hostile_answers_refuse_the_pdu_and_leave_the_room_working(
    h: Harness, transport: HarnessTransport, bad: Any
) -> None:
    alice, bob, room = await _room(h)
    ids = [await say(h, B, bob, room, f"m{i}") for i in range(3)]
    newest = await pdu_of(h, B, ids[-1])
    forged = {**await pdu_of(h, B, ids[0]), "room_id": "!elsewhere:gapb.test"}

    def tamper(dest: str, path: str, answer: Any) -> Any:
        if not path.startswith((MISSING, f"{V1}/state", f"{V1}/event")):
            return answer
        if bad == "itself":
            # Answers that lead nowhere: the PDU itself, again and again.
            return {
                "events": [newest],
                "pdus": [newest],
                "pdu_ids": [ids[-1]],
                "auth_chain_ids": [ids[-1]],
                "auth_chain": [newest],
            }
        if bad == "other room":
            return {"events": [forged], "pdus": [forged], "pdu_ids": [], "auth_chain_ids": []}
        return bad

    transport.tamper = tamper
    answer = await send_txn(transport, h, B, A, "t1", txn(B, pdus=[newest]))
    assert "Missing events" in answer["pdus"][ids[-1]]["error"]
    stored = await h.servers[A].events_store.get_event(ids[-1])
    assert stored is None or not stored.in_timeline
    # The room is not stuck: once the origin answers properly, the same PDU lands.
    transport.tamper = None
    answer = await send_txn(transport, h, B, A, "t2", txn(B, pdus=[newest]))
    assert answer["pdus"] == {ids[-1]: {}}
    assert await messages_back(h, A, alice, room) == ["m0", "m1", "m2"]


async def test_two_transactions_fetch_one_gap_once(h: Harness, transport: HarnessTransport) -> None:
    alice, bob, room = await _room(h)
    ids = [await say(h, B, bob, room, f"m{i}") for i in range(4)]
    pdus = h.servers[A].federation_transactions.pdus
    first, second = await asyncio.gather(
        pdus.handle_pdus(B, [await pdu_of(h, B, ids[-1])]),
        pdus.handle_pdus(B, [await pdu_of(h, B, ids[-1])]),
    )
    assert first == second == {ids[-1]: {}}
    assert transport.count("POST", B, MISSING) == 1
    assert await messages_back(h, A, alice, room) == ["m0", "m1", "m2", "m3"]


async def test_catch_up_after_an_outage_leaves_every_event_in_order(
    h: Harness, transport: HarnessTransport
) -> None:
    for name in (A, B):
        hs = h.servers[name]
        hs.federation_sender.attach_transport(transport.signed_by(name, hs.signing_key))
    alice, bob, room = await _room(h)
    since = (await sync(h, A, alice))["next_batch"]
    transport.down.add(A)
    for i in range(20):
        await say(h, B, bob, room, f"m{i}")
    await advance(30)
    assert _timeline(await sync(h, A, alice, since), room) == []
    transport.down.clear()
    await advance(400)
    await settle()
    wanted = [f"m{i}" for i in range(20)]
    assert transport.count("POST", B, MISSING) >= 1
    assert await news(h, A, room) == wanted
    assert await messages_back(h, A, alice, room) == wanted
    # /sync tells of the catch-up as news: a limited timeline ending with the newest.
    timeline = _timeline(await sync(h, A, alice, since), room)
    assert timeline and timeline == wanted[-len(timeline) :]


async def test_a_hanging_origin_times_out_and_stalls_no_other_origin(
    make_hs_config: Any, start_servers: StartServers, transport: HarnessTransport
) -> None:
    h = await start_servers(
        *(make_hs_config(n, federation=FEDERATION, rc_message=UNLIMITED) for n in (A, B, C))
    )
    alice, bob, room = await _room(h)
    carol = await make_user(h, "carol", host=C)
    elsewhere = await room_joined_over_federation(h, C, carol, A, alice)
    since = (await sync(h, A, alice))["next_batch"]
    gap = [await say(h, B, bob, room, f"m{i}") for i in range(3)]
    news = await say(h, C, carol, elsewhere, "from carol")
    # B lets A's questions about its room hang.
    transport.hang = lambda dest, path: dest == B and path.startswith((MISSING, f"{V1}/state_ids"))

    async def meanwhile() -> Any:
        await settle()
        # B's transaction is waiting on B; C's goes through at once.
        answer = await send_txn(transport, h, C, A, "c1", txn(C, pdus=[await pdu_of(h, C, news)]))
        assert _timeline(await sync(h, A, alice, since), elsewhere) == ["from carol"]
        # Each request to B gives up after 10 s: /get_missing_events, then /state_ids.
        await advance(11)
        await advance(11)
        return answer

    from_b, from_c = await asyncio.gather(
        send_txn(transport, h, B, A, "b1", txn(B, pdus=[await pdu_of(h, B, gap[-1])])),
        meanwhile(),
    )
    assert from_c["pdus"] == {news: {}}
    assert "Missing events" in from_b["pdus"][gap[-1]]["error"]
