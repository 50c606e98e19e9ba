"""Another server reads a room's DAG: `/event`, `/state`, `/state_ids`,
`/event_auth`, with the room and history-visibility checks (both engines,
signed requests between tenants of one harness)."""

from __future__ import annotations

from typing import Any

import pytest

from tests.federation.conftest import StartServers
from tests.federation.inbound_support import client, send_txn, txn
from tests.rooms.remote_support import RemoteServer
from tests.support.federation import HarnessTransport, RemoteError
from tests.support.harness import Harness
from tests.support.users import TestUser, make_user

A, B, C = "a.test", "b.test", "c.test"
ALICE = "@alice:a.test"
V1 = "/_matrix/federation/v1"


@pytest.fixture
async def h(make_hs_config: Any, start_servers: StartServers) -> Harness:
    return await start_servers(make_hs_config(A), make_hs_config(B), make_hs_config(C))


async def _get(h: Harness, transport: HarnessTransport, origin: str, path: str, **args: str) -> Any:
    out = transport.signed_by(origin, h.servers[origin].signing_key)
    return await out.get_json(B, path, args or None)


async def _status(
    h: Harness, transport: HarnessTransport, origin: str, path: str, **args: str
) -> int:
    with pytest.raises(RemoteError) as refused:
        await _get(h, transport, origin, path, **args)
    return refused.value.status


async def _send_text(h: Harness, user: TestUser, room: str, txn_id: str, text: str) -> str:
    resp = await client(
        h,
        B,
        "PUT",
        f"/rooms/{room}/send/m.room.message/{txn_id}",
        user,
        {"msgtype": "m.text", "body": text},
    )
    assert resp.status == 200, resp.json
    event_id: str = resp.json["event_id"]
    return event_id


async def _room_a_joins(
    h: Harness, transport: HarnessTransport, bob: TestUser, visibility: str
) -> tuple[str, str]:
    """Bob's room on B with this history visibility, joined by alice of A
    through a PDU; the room and her join's ID."""
    resp = await client(h, B, "POST", "/createRoom", bob, {"preset": "public_chat"})
    room: str = resp.json["room_id"]
    resp = await client(
        h,
        B,
        "PUT",
        f"/rooms/{room}/state/m.room.history_visibility",
        bob,
        {"history_visibility": visibility},
    )
    assert resp.status == 200, resp.json
    remote = RemoteServer(server_name=A, key=h.servers[A].signing_key)
    join = await remote.make(
        h.servers[B], room, ALICE, "m.room.member", {"membership": "join"}, state_key=ALICE
    )
    answer = await send_txn(transport, h, A, B, "t1", txn(A, pdus=[join.get_pdu_json()]))
    assert answer["pdus"] == {join.event_id: {}}
    return room, join.event_id


async def test_a_server_in_the_room_reads_events_state_and_auth(
    h: Harness, transport: HarnessTransport
) -> None:
    bob = await make_user(h, "bob", host=B)
    room, join_id = await _room_a_joins(h, transport, bob, "shared")
    message = await _send_text(h, bob, room, "m1", "hello")
    got = await _get(h, transport, A, f"{V1}/event/{message}")
    assert [p["content"]["body"] for p in got["pdus"]] == ["hello"]
    assert got["origin"] == B

    ids = await _get(h, transport, A, f"{V1}/state_ids/{room}", event_id=message)
    state = await _get(h, transport, A, f"{V1}/state/{room}", event_id=message)
    # The state before the message: alice's join is in it, the message is not.
    assert join_id in ids["pdu_ids"] and message not in ids["pdu_ids"]
    types = {p["type"] for p in state["pdus"]}
    assert {"m.room.create", "m.room.power_levels", "m.room.join_rules", "m.room.member"} <= types
    assert len(state["pdus"]) == len(ids["pdu_ids"])
    assert len(state["auth_chain"]) == len(ids["auth_chain_ids"]) > 0

    auth = await _get(h, transport, A, f"{V1}/event_auth/{room}/{message}")
    assert "m.room.create" in {p["type"] for p in auth["auth_chain"]}
    # State before alice's own join does not have her in it.
    before = await _get(h, transport, A, f"{V1}/state_ids/{room}", event_id=join_id)
    assert join_id not in before["pdu_ids"]


async def test_other_servers_and_hidden_history_are_refused(
    h: Harness, transport: HarnessTransport
) -> None:
    bob = await make_user(h, "bob", host=B)
    resp = await client(h, B, "POST", "/createRoom", bob, {"preset": "public_chat"})
    early_room: str = resp.json["room_id"]
    early = await _send_text(h, bob, early_room, "e0", "before anyone")
    # C has nobody in the room: refused.
    assert await _status(h, transport, C, f"{V1}/event/{early}") == 403
    assert await _status(h, transport, C, f"{V1}/state_ids/{early_room}", event_id=early) == 403

    room, _join = await _room_a_joins(h, transport, bob, "joined")
    hidden = next(
        e["event_id"]
        for e in (await client(h, B, "GET", f"/rooms/{room}/messages?dir=b&limit=50", bob)).json[
            "chunk"
        ]
        if e["type"] == "m.room.history_visibility"
    )
    after = await _send_text(h, bob, room, "m2", "after the join")
    # Under `joined` visibility, what came before alice's join is not A's to read.
    assert await _status(h, transport, A, f"{V1}/event/{hidden}") == 403
    got = await _get(h, transport, A, f"{V1}/event/{after}")
    assert got["pdus"][0]["content"]["body"] == "after the join"
    # Bad requests.
    assert await _status(h, transport, A, f"{V1}/event/$nothing") == 404
    assert await _status(h, transport, A, f"{V1}/state_ids/{room}") == 400
    assert await _status(h, transport, A, f"{V1}/event_auth/{early_room}/{after}") == 404


async def test_backfill_and_missing_events_walk_the_dag(
    h: Harness, transport: HarnessTransport
) -> None:
    bob = await make_user(h, "bob", host=B)
    room, _join = await _room_a_joins(h, transport, bob, "shared")
    sent = [await _send_text(h, bob, room, f"b{i}", f"m{i}") for i in range(5)]
    back = await _get(h, transport, A, f"{V1}/backfill/{room}", v=sent[-1], limit="3")
    assert [p["content"].get("body") for p in back["pdus"]] == ["m4", "m3", "m2"]
    out = transport.signed_by(A, h.servers[A].signing_key)
    missing = await out.post_json(
        B,
        f"{V1}/get_missing_events/{room}",
        {"earliest_events": [sent[0]], "latest_events": [sent[4]], "limit": 10},
    )
    # Between the two, oldest first, neither end included.
    assert [p["content"]["body"] for p in missing["events"]] == ["m1", "m2", "m3"]
    # Walking back far enough reaches alice's join and the room's creation.
    everything = await _get(h, transport, A, f"{V1}/backfill/{room}", v=sent[-1], limit="100")
    types = [p["type"] for p in everything["pdus"]]
    assert types[-1] == "m.room.create"
    assert "m.room.history_visibility" in types and len(types) >= 11
    # A server with nobody in the room, and bad requests.
    assert await _status(h, transport, C, f"{V1}/backfill/{room}", v=sent[-1]) == 403
    with pytest.raises(RemoteError) as refused:
        await out.post_json(B, f"{V1}/get_missing_events/{room}", {"latest_events": "x"})
    assert refused.value.status == 400
    assert await _status(h, transport, A, f"{V1}/backfill/{room}") == 400
    members = {p["state_key"] for p in everything["pdus"] if p["type"] == "m.room.member"}
    assert members == {bob.user_id, ALICE}


async def test_a_walk_looks_at_a_bounded_number_of_events(
    h: Harness, transport: HarnessTransport, monkeypatch: pytest.MonkeyPatch
) -> None:
    from hamlet.handlers.federation import room_reads

    monkeypatch.setattr(room_reads, "MAX_VISITED", 4)
    bob = await make_user(h, "bob", host=B)
    room, _join = await _room_a_joins(h, transport, bob, "shared")
    sent = [await _send_text(h, bob, room, f"w{i}", f"w{i}") for i in range(8)]
    back = await _get(h, transport, A, f"{V1}/backfill/{room}", v=sent[-1], limit="100")
    assert [p["content"].get("body") for p in back["pdus"]] == ["w7", "w6", "w5", "w4"]
