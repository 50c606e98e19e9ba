"""Inbound transactions survive Hamlet being killed: a new HomeServer on the
same database, the old one never shut down cleanly, answers a retried
transaction ID as before without applying it again, and a PDU sent again
is not stored twice (both engines)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest

from hamlet.homeserver import HomeServer
from tests.federation.conftest import StartServers
from tests.federation.inbound_support import client, send_txn, txn
from tests.rooms.remote_support import RemoteServer
from tests.support.federation import HarnessTransport
from tests.support.harness import Harness
from tests.support.users import make_user

A, B = "a.test", "b.test"
ALICE = "@alice:a.test"


@pytest.fixture
async def h(make_hs_config: Any, start_servers: StartServers) -> AsyncIterator[Harness]:
    harness = await start_servers(make_hs_config(A), make_hs_config(B))
    killed: list[HomeServer] = []
    harness.killed = killed  # type: ignore[attr-defined]
    yield harness
    for hs in killed:
        await hs.shutdown()


async def kill_and_restart(h: Harness, server_name: str) -> HomeServer:
    """As after `kill -9`: the old HomeServer is dropped without shutting it
    down (nothing it holds in memory is flushed) and a new one starts on the
    same database."""
    old = h.servers[server_name]
    h.registry.remove(server_name)
    h.killed.append(old)  # type: ignore[attr-defined]
    hs = HomeServer(old.config)
    await hs.setup()
    await hs.start()
    h.registry.add(hs)
    h.servers[server_name] = hs
    return hs


def typing(room_id: str, on: bool) -> dict[str, Any]:
    return {"edu_type": "m.typing", "content": {"room_id": room_id, "user_id": ALICE, "typing": on}}


async def message_count(h: Harness, room: str, token_user: Any, body: str) -> int:
    resp = await client(h, B, "GET", f"/rooms/{room}/messages?dir=b&limit=100", token_user)
    assert resp.status == 200, resp.json
    return sum(1 for e in resp.json["chunk"] if e["content"].get("body") == body)


async def test_a_retried_transaction_after_a_kill_gets_the_same_answer(
    h: Harness, transport: HarnessTransport
) -> None:
    bob = await make_user(h, "bob", host=B)
    resp = await client(h, B, "POST", "/createRoom", bob, {"preset": "public_chat"})
    room = resp.json["room_id"]
    remote = RemoteServer(server_name=A, key=h.servers[A].signing_key)
    hs_b = h.servers[B]
    join = await remote.make(
        hs_b, room, ALICE, "m.room.member", {"membership": "join"}, state_key=ALICE
    )
    await send_txn(transport, h, A, B, "t1", txn(A, pdus=[join.get_pdu_json()]))
    message = await remote.make(
        hs_b, room, ALICE, "m.room.message", {"msgtype": "m.text", "body": "once"}
    )
    pdu = message.get_pdu_json(include_unsigned=False)
    t2 = txn(A, pdus=[pdu], edus=[typing(room, True)])
    answer = await send_txn(transport, h, A, B, "t2", t2)
    assert answer == {"pdus": {message.event_id: {}}}

    hs_b = await kill_and_restart(h, B)
    assert hs_b.typing.typing_users(room) == []  # typing lives in memory only

    # The remote never saw the 200 and retries t2: the stored answer comes
    # back and the transaction is not run again (its typing EDU would show).
    assert await send_txn(transport, h, A, B, "t2", t2) == answer
    assert hs_b.typing.typing_users(room) == []
    assert await message_count(h, room, bob, "once") == 1

    # The same PDU in a new transaction is taken as already stored, not duplicated.
    assert await send_txn(transport, h, A, B, "t3", txn(A, pdus=[pdu])) == answer
    assert await message_count(h, room, bob, "once") == 1


async def test_answers_are_forgotten_after_a_day(h: Harness, transport: HarnessTransport) -> None:
    hs_b = h.servers[B]
    bob = await make_user(h, "bob", host=B)
    resp = await client(h, B, "POST", "/createRoom", bob, {"preset": "public_chat"})
    room = resp.json["room_id"]
    remote = RemoteServer(server_name=A, key=h.servers[A].signing_key)
    join = await remote.make(
        hs_b, room, ALICE, "m.room.member", {"membership": "join"}, state_key=ALICE
    )
    await send_txn(transport, h, A, B, "t1", txn(A, pdus=[join.get_pdu_json()]))
    store = hs_b.federation_transactions._store
    assert await store.get_answer(A, "t1") is not None
    now = hs_b.clock.time_msec()
    # The hourly pruning drops what is older than a day, and only that.
    await store.set_answer(A, "old", '{"pdus": {}}', now - 25 * 3600 * 1000)
    await hs_b.federation_transactions._prune_answers()
    assert await store.get_answer(A, "old") is None
    assert await store.get_answer(A, "t1") is not None
