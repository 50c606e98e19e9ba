"""Tenants on one PostgreSQL take turns at its pool: a flood of one tenant's
transactions cannot hold every connection, nor queue ahead of a neighbour's."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator

import pytest

from hamlet.storage.database import Transaction
from hamlet.storage.engines.postgres import PgPool, PostgresDatabase
from tests.support.postgres import PostgresCluster
from tests.sync.helpers import until

POOL_SIZE = 3


@pytest.fixture
async def tenants(
    pg_cluster: PostgresCluster | None,
) -> AsyncIterator[tuple[PgPool, PostgresDatabase, PostgresDatabase]]:
    if pg_cluster is None:
        pytest.skip("HAMLET_SKIP_POSTGRES=1")
    pool = PgPool(pg_cluster.dsn_kwargs(), min_size=1, max_size=POOL_SIZE)
    suffix = uuid.uuid4().hex[:8]
    flood = PostgresDatabase(pool, f"turns_flood_{suffix}")
    quiet = PostgresDatabase(pool, f"turns_quiet_{suffix}")
    for db in (flood, quiet):
        await db.open()
    yield pool, flood, quiet
    for db in (flood, quiet):
        await db.drop_schema()
        await db.close()
    await pool.close()


async def test_a_flooding_tenant_leaves_a_connection_for_its_neighbour(
    tenants: tuple[PgPool, PostgresDatabase, PostgresDatabase],
) -> None:
    pool, flood, quiet = tenants
    release = asyncio.Event()
    inside = 0

    async def held(txn: Transaction) -> None:
        nonlocal inside
        inside += 1
        await txn.fetchall("SELECT 1")
        await release.wait()

    floods = [asyncio.ensure_future(flood.run_interaction("held", held)) for _ in range(20)]
    try:
        turns = pool.turns.get()
        await until(
            lambda: inside == POOL_SIZE - 1 and turns.queued == 20 - inside, "the flood queued"
        )
        # The flood's queued transactions wait in its own queue: the last
        # connection goes to the neighbour at once.
        assert await asyncio.wait_for(quiet.fetchval("one", "SELECT 1"), 30) == 1
        assert inside == POOL_SIZE - 1
    finally:
        release.set()
        await asyncio.gather(*floods)


async def test_a_freed_connection_goes_to_the_next_tenant_in_turn(
    tenants: tuple[PgPool, PostgresDatabase, PostgresDatabase],
) -> None:
    pool, flood, quiet = tenants
    release = asyncio.Event()
    finish = asyncio.Event()
    order: list[str] = []

    def job(name: str, gate: asyncio.Event) -> object:
        async def fn(txn: Transaction) -> None:
            order.append(name)
            await gate.wait()
            await txn.fetchall("SELECT 1")

        return fn

    # The flood holds its share and queues three more before quiet asks for two.
    held = [
        asyncio.ensure_future(flood.run_interaction("held", job(f"h{i}", release)))
        for i in range(POOL_SIZE - 1)
    ]
    await until(lambda: len(order) == POOL_SIZE - 1, "the flood's share")
    # The last connection is taken by a quiet transaction that also waits.
    blocker = asyncio.ensure_future(quiet.run_interaction("held", job("qh", release)))
    await until(lambda: len(order) == POOL_SIZE, "every connection taken")
    queued = [
        asyncio.ensure_future(flood.run_interaction("f", job(f"f{i}", finish))) for i in range(3)
    ]
    queued += [
        asyncio.ensure_future(quiet.run_interaction("q", job(f"q{i}", finish))) for i in range(2)
    ]
    await until(lambda: pool.turns.get().queued == 5, "five queued")
    # Free the three connections; the queued hold theirs until `finish`.
    release.set()
    await until(lambda: len(order) == POOL_SIZE + 3, "three granted")
    granted = set(order[POOL_SIZE:])
    finish.set()
    await asyncio.gather(*held, blocker, *queued)
    # The freed connections went round the tenants: quiet got one (two if
    # its own connection came back before the flood's second), where first
    # come, first served would have given all three to f0, f1 and f2.
    assert granted in ({"f0", "q0", "f1"}, {"f0", "q0", "q1"})
    assert sorted(order[POOL_SIZE:]) == ["f0", "f1", "f2", "q0", "q1"]
