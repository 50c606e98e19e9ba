"""A network that misbehaves, on virtual time and both engines.

Outbound: a destination that is down for minutes, flaps, hangs past
`federation.client_timeout`, or answers garbage, 5xx or 429 is backed off
on its own: another destination of the same tenant, and another tenant,
keep getting their transactions at once; once it answers again it catches
up with every room's newest event. Inbound: one origin whose transaction is
stuck holds up no other origin's.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote

import pytest

from hamlet.core.canonical_json import JsonDict
from hamlet.handlers.federation.client import FederationUnavailableError
from hamlet.homeserver import HomeServer
from tests.conftest import advance, settle
from tests.federation.conftest import StartServers
from tests.federation.inbound_support import client, send_txn, shared_room, sync, txn
from tests.federation.outbox_support import (
    DOWN,
    HANG,
    OK,
    FakeTransport,
    Sent,
    attach,
    bodies,
    join_remote,
    room_with_remotes,
)
from tests.rooms.remote_support import RemoteServer
from tests.support.federation import HarnessTransport
from tests.support.harness import Harness, start_harness
from tests.support.users import TestUser, make_user

BAD, GOOD = "bad.example", "good.example"
GARBAGE = "garbage"  # a 200 whose body is not a JSON object
FEDERATION: dict[str, Any] = {
    "client_timeout": 5000,
    "max_long_retries": 2,
    "max_long_retry_delay": 1000,
    "destination_min_retry_interval": "30s",
    "destination_retry_multiplier": 2,
    "destination_max_retry_interval": "2m",
}


@dataclass
class FaultyTransport(FakeTransport):
    """FakeTransport plus a 200 with garbage, as the real client reports it."""

    async def put_json(
        self, destination: str, path: str, body: JsonDict, *, timeout_ms: int | None = None
    ) -> JsonDict:
        if self.modes.get(destination) == GARBAGE:
            self.attempts.append(Sent(destination, path, body, timeout_ms))
            raise FederationUnavailableError(destination, "the response is not a JSON object")
        return await super().put_json(destination, path, body, timeout_ms=timeout_ms)


@dataclass
class Tenant:
    hs: HomeServer
    transport: FaultyTransport
    alice: TestUser
    rooms: list[str] = field(default_factory=list)


@pytest.fixture
async def h(make_hs_config: Any) -> AsyncIterator[Harness]:
    configs = [
        make_hs_config(name, federation=FEDERATION, presence={"enabled": False})
        for name in ("one.test", "two.test")
    ]
    harness = await start_harness(configs)
    yield harness
    await harness.close()


async def tenant(h: Harness, name: str, rooms: int) -> Tenant:
    hs = h.servers[name]
    t = Tenant(hs, FaultyTransport(), await make_user(h, "alice", host=name))
    attach(hs, t.transport)
    for _ in range(rooms):
        t.rooms.append(await room_with_remotes(h, t.alice, BAD, GOOD, hs=hs))
    await settle()
    return t


async def say(t: Tenant, room: str, body: str) -> None:
    await t.hs.event_creator.send(
        t.alice.user_id, room, "m.room.message", {"msgtype": "m.text", "body": body}
    )


async def assert_prompt(t: Tenant, room: str, body: str) -> None:
    """`body`, sent now, reaches GOOD without any time passing."""
    await say(t, room, body)
    await settle()
    assert bodies(t.transport.to(GOOD))[-1:] == [body]


async def run_fault(
    one: Tenant, two: Tenant, *, minutes: float, step_s: float = 10, flap: Sequence[Any] = ()
) -> list[str]:
    """Keep both tenants talking for `minutes` while one.test's BAD misbehaves
    (modes from `flap` in turn, one per step, if given): every message
    reaches GOOD at once, on both tenants. The newest body of each room."""
    newest: dict[str, str] = {}
    steps = int(minutes * 60 / step_s)
    for i in range(steps):
        if flap:
            one.transport.modes[BAD] = flap[i % len(flap)]
        room = one.rooms[i % len(one.rooms)]
        newest[room] = f"m{i}"
        await assert_prompt(one, room, f"m{i}")
        await assert_prompt(two, two.rooms[0], f"two-{i}")
        await advance(step_s)
    return [newest[r] for r in one.rooms]


async def assert_caught_up(one: Tenant, newest: list[str], within_s: float) -> None:
    """BAD, answering again, gets each room's newest event within `within_s`."""
    assert not set(newest) <= set(bodies(one.transport.to(BAD)))
    one.transport.modes[BAD] = OK
    await advance(within_s)
    got = bodies(one.transport.to(BAD))
    assert set(newest) <= set(got), (newest, got)
    # And it is back to normal: a new event goes at once.
    await assert_prompt(one, one.rooms[0], "after")
    assert bodies(one.transport.to(BAD))[-1] == "after"


async def test_a_destination_down_for_minutes(h: Harness) -> None:
    one = await tenant(h, "one.test", rooms=3)
    two = await tenant(h, "two.test", rooms=1)
    one.transport.modes[BAD] = DOWN
    newest = await run_fault(one, two, minutes=5)
    # Backed off: a few tries, not one per event (30 s, 60 s, 120 s, 120 s...).
    tries = len(one.transport.tries(BAD))
    assert 3 <= tries <= 3 * 6, tries
    assert one.hs.federation_sender.queue(BAD).pending_pdus == 0  # type: ignore[union-attr]
    # The longest backoff is 2 min x 1.4 jitter at most.
    await assert_caught_up(one, newest, within_s=170)


async def test_a_flapping_destination(h: Harness) -> None:
    one = await tenant(h, "one.test", rooms=3)
    two = await tenant(h, "two.test", rooms=1)
    # 24 steps: the last is DOWN, so there is something left to catch up.
    flap = [DOWN, DOWN, OK, DOWN, 500, OK, OK, DOWN]
    newest = await run_fault(one, two, minutes=4, flap=flap)
    await assert_caught_up(one, newest, within_s=170)


async def test_a_destination_that_hangs_past_the_timeout(h: Harness) -> None:
    one = await tenant(h, "one.test", rooms=2)
    two = await tenant(h, "two.test", rooms=1)
    one.transport.modes[BAD] = HANG
    two.transport.modes[BAD] = HANG
    newest = await run_fault(one, two, minutes=3)
    # Every try was cut off after client_timeout and handed the timeout on.
    assert {s.timeout_ms for s in one.transport.tries(BAD)} == {5000}
    await assert_caught_up(one, newest, within_s=170)


@pytest.mark.parametrize("answer", [GARBAGE, 500, 502, 429])
async def test_a_destination_answering_garbage_or_errors(h: Harness, answer: Any) -> None:
    one = await tenant(h, "one.test", rooms=2)
    two = await tenant(h, "two.test", rooms=1)
    one.transport.modes[BAD] = answer
    newest = await run_fault(one, two, minutes=3)
    row = await one.hs.federation_sender._store.get_destination(BAD)
    assert row is not None and row.retry_interval > 0  # backed off
    await assert_caught_up(one, newest, within_s=170)


class HoldOne:
    """The real PDU handler, except that `held`'s transactions wait for `release`."""

    def __init__(self, inner: Any, held: str) -> None:
        self._inner = inner
        self._held = held
        self.entered = asyncio.Event()
        self.release = asyncio.Event()

    async def handle_pdus(self, origin: str, pdus: Sequence[Any]) -> dict[str, JsonDict]:
        if origin == self._held:
            self.entered.set()
            await self.release.wait()
        result: dict[str, JsonDict] = await self._inner.handle_pdus(origin, pdus)
        return result


async def test_a_stuck_origin_blocks_no_other_origin(
    make_hs_config: Any, start_servers: StartServers, transport: HarnessTransport
) -> None:
    a, b, c = "a.test", "b.test", "c.test"
    h = await start_servers(make_hs_config(a), make_hs_config(b), make_hs_config(c))
    hs_b = h.servers[b]
    bob = await make_user(h, "bob", host=b)
    room = await shared_room(h, b, bob, "@alice:a.test")
    carol = "@carol:c.test"
    await join_remote(hs_b, room, carol)
    handler = hs_b.federation_transactions
    hold = HoldOne(handler.pdus, held=a)
    handler.set_pdu_handler(hold)

    # a.test's transaction is stuck (its PDU's checks hang)...
    stuck = asyncio.ensure_future(
        send_txn(transport, h, a, b, "a1", txn(a, pdus=[{"room_id": room}]))
    )
    await hold.entered.wait()
    # ... while c.test's transactions, PDUs included, go through one after another.
    remote_c = RemoteServer(server_name=c, key=h.servers[c].signing_key)
    for i in range(5):
        event = await remote_c.make(
            hs_b, room, carol, "m.room.message", {"msgtype": "m.text", "body": f"c{i}"}
        )
        answer = await send_txn(
            transport, h, c, b, f"c{i}", txn(c, pdus=[event.get_pdu_json(include_unsigned=False)])
        )
        assert answer == {"pdus": {event.event_id: {}}}
    timeline = (await sync(h, b, bob))["rooms"]["join"][room]["timeline"]["events"]
    assert [e["content"].get("body") for e in timeline][-5:] == [f"c{i}" for i in range(5)]
    assert not stuck.done()
    hold.release.set()
    await stuck


async def test_a_hanging_destination_holds_the_healthy_slots_only_once(
    make_hs_config: Any,
) -> None:
    # One transaction in flight for destinations in good standing.
    limits = {"max_concurrent_federation_transactions": 1}
    h = await start_harness([make_hs_config(federation=FEDERATION, limits=limits)])
    try:
        transport = attach(h.hs, FaultyTransport(modes={BAD: HANG}))
        alice = await make_user(h, "alice")
        room = await room_with_remotes(h, alice, BAD, GOOD)
        one = Tenant(h.hs, transport, alice, [room])
        # BAD's first try holds the slot until client_timeout cuts it off...
        await say(one, room, "first")
        await advance(5)
        assert transport.tries(BAD)
        assert bodies(transport.to(GOOD)) == ["first"]
        # ... but its retries and its tries after a backoff take the pool of
        # failing destinations: GOOD gets every event at once meanwhile.
        for i in range(40):
            await assert_prompt(one, room, f"m{i}")
            await advance(2)
        assert len(transport.tries(BAD)) >= 4
    finally:
        await h.close()


async def test_catch_up_between_two_tenants_fills_the_gaps(
    make_hs_config: Any, start_servers: StartServers, transport: HarnessTransport
) -> None:
    """End to end: b.test cannot reach a.test for minutes while its rooms
    move on; once a.test answers, b.test sends each room's newest event and
    a.test fetches the rest with /get_missing_events: alice sees everything."""
    a, b = "a.test", "b.test"
    h = await start_servers(
        make_hs_config(a, federation=FEDERATION), make_hs_config(b, federation=FEDERATION)
    )
    for name in (a, b):
        hs = h.servers[name]
        hs.federation_sender.attach_transport(transport.signed_by(name, hs.signing_key))
    bob = await make_user(h, "bob", host=b)
    alice = await make_user(h, "alice", host=a)
    rooms = []
    for i in range(2):
        body = {"preset": "public_chat", "room_alias_name": f"r{i}"}
        rooms.append((await client(h, b, "POST", "/createRoom", bob, body)).json["room_id"])
        joined = await client(h, a, "POST", f"/join/{quote(f'#r{i}:b.test')}", alice, {})
        assert joined.status == 200, joined.json

    transport.down.add(a)
    for n in range(6):
        for i, room in enumerate(rooms):
            body = {"msgtype": "m.text", "body": f"r{i}-{n}"}
            resp = await client(
                h, b, "PUT", f"/rooms/{room}/send/m.room.message/{i}-{n}", bob, body
            )
            assert resp.status == 200, resp.json
        await advance(30)
    queue = h.servers[b].federation_sender.queue(a)
    assert queue is not None and queue.catching_up

    transport.down.discard(a)
    await advance(170)
    for i, room in enumerate(rooms):
        resp = await client(h, a, "GET", f"/rooms/{room}/messages?dir=b&limit=50", alice)
        got = [e["content"]["body"] for e in resp.json["chunk"] if e["type"] == "m.room.message"]
        assert got == [f"r{i}-{n}" for n in reversed(range(6))], got
