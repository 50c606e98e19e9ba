"""`rc_federation`: per origin, per tenant. One origin's flood is queued,
slowed and refused without touching another origin or another tenant."""

from __future__ import annotations

import asyncio
from typing import Any
from urllib.parse import quote

import pytest

from hamlet.config.model import FederationRateLimitConfig
from hamlet.handlers.federation.ratelimit import FederationRateLimiter
from tests.conftest import advance, settle, time_stands_still
from tests.federation.conftest import StartServers
from tests.federation.inbound_support import SEND, HeldPdus, send_txn, signed_request, txn
from tests.support.harness import Harness, Response
from tests.support.users import make_user

A, B, C, D = "a.test", "b.test", "c.test", "d.test"


async def profile_query(h: Harness, origin: str, destination: str) -> Response:
    user_id = quote(f"@user:{destination}")
    path = f"/_matrix/federation/v1/query/profile?user_id={user_id}"
    return await signed_request(h, origin, destination, "GET", path)


@pytest.fixture
async def queueing(make_hs_config: Any, start_servers: StartServers) -> Harness:
    limits = {"concurrent": 1, "reject_limit": 1, "sleep_limit": 100}
    h = await start_servers(
        make_hs_config(A),
        make_hs_config(B, rc_federation=limits),
        make_hs_config(C),
        make_hs_config(D, rc_federation=limits),
    )
    for host in (B, D):
        await make_user(h, "user", host=host)
    return h


async def test_a_flooding_origin_queues_then_is_refused_alone(queueing: Harness) -> None:
    h = queueing
    held = HeldPdus()
    h.servers[B].federation_transactions.set_pdu_handler(held)
    pdu = {"event_id": "$e:a.test", "room_id": "!r:b.test"}
    body = txn(A, pdus=[pdu])
    # a.test's only processing slot on b.test is taken by a held transaction...
    first = asyncio.ensure_future(signed_request(h, A, B, "PUT", f"{SEND}/t1", content=body))
    await held.entered.wait()
    # ...so its next requests queue, up to reject_limit waiting, and then 429.
    queued = [asyncio.ensure_future(profile_query(h, A, B)) for _ in range(2)]
    await settle()
    assert not any(q.done() for q in queued)
    refused = await profile_query(h, A, B)
    assert (refused.status, refused.json["errcode"]) == (429, "M_LIMIT_EXCEEDED")
    assert refused.json["retry_after_ms"] == 10  # window_size / sleep_limit
    # Another origin on the same tenant, and the same origin on another tenant, go through.
    assert (await profile_query(h, C, B)).status == 200
    assert (await profile_query(h, A, D)).status == 200
    held.release.set()
    assert (await first).status == 200
    assert [(await q).status for q in queued] == [200, 200]
    assert (await profile_query(h, A, B)).status == 200


async def test_requests_beyond_sleep_limit_are_slowed_per_origin(
    make_hs_config: Any, start_servers: StartServers
) -> None:
    limits = {"sleep_limit": 2, "sleep_delay": 500, "window_size": 1000}
    h = await start_servers(
        make_hs_config(A), make_hs_config(B, rc_federation=limits), make_hs_config(C)
    )
    await make_user(h, "user", host=B)
    with time_stands_still():
        for _ in range(2):
            assert (await profile_query(h, A, B)).status == 200
        slowed = asyncio.ensure_future(profile_query(h, A, B))
        await settle()
        assert not slowed.done()
        # c.test's first requests are not slowed by a.test's.
        assert (await profile_query(h, C, B)).status == 200
        await advance(0.5)
        assert (await slowed).status == 200
        # Once the window has passed, a.test is at full speed again.
        await advance(1)
        assert (await profile_query(h, A, B)).status == 200


async def test_transactions_count_against_the_origin_too(
    make_hs_config: Any, start_servers: StartServers, transport: Any
) -> None:
    limits = {"concurrent": 1, "reject_limit": 0, "sleep_limit": 100}
    h = await start_servers(make_hs_config(A), make_hs_config(B, rc_federation=limits))
    held = HeldPdus()
    h.servers[B].federation_transactions.set_pdu_handler(held)
    pdu = {"event_id": "$e:a.test", "room_id": "!r:b.test"}
    first = asyncio.ensure_future(send_txn(transport, h, A, B, "t1", txn(A, pdus=[pdu])))
    await held.entered.wait()
    waiting = asyncio.ensure_future(profile_query(h, A, B))
    await settle()
    refused = await signed_request(h, A, B, "PUT", f"{SEND}/t2", content=txn(A))
    assert refused.status == 429
    held.release.set()
    await first
    assert (await waiting).status == 404  # no such user: it was processed


async def test_a_request_gone_while_queued_frees_nothing_and_leaks_nothing(
    harness: Harness,
) -> None:
    limiter = FederationRateLimiter(
        harness.hs.clock, FederationRateLimitConfig(concurrent=1, sleep_limit=100)
    )
    order: list[str] = []

    async def hold(name: str, until: asyncio.Event) -> None:
        async with limiter.ratelimit(A):
            order.append(name)
            await until.wait()

    done = asyncio.Event()
    done.set()
    first_release = asyncio.Event()
    first = asyncio.ensure_future(hold("first", first_release))
    gone = asyncio.ensure_future(hold("gone", done))
    handed = asyncio.ensure_future(hold("handed", done))
    last = asyncio.ensure_future(hold("last", done))
    await settle()
    assert order == ["first"]
    # One leaves while queued; another is handed the slot and leaves before it runs.
    gone.cancel()
    first_release.set()
    await asyncio.sleep(0)
    handed.cancel()
    await asyncio.gather(first, gone, handed, return_exceptions=True)
    await last
    assert order == ["first", "last"]
    # The one slot is free again.
    await asyncio.wait_for(hold("again", done), 1)
    assert order[-1] == "again"
    assert limiter.memory_usage() > 0
