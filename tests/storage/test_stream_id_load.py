"""Where a stream's ids start after a restart (or a wake), on both engines."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable

import pytest

from hamlet.config import HomeServerConfig
from hamlet.storage.database import Database, Transaction
from hamlet.storage.factory import make_database
from hamlet.storage.migrations import migrate
from hamlet.storage.stream_ids import StreamIdGenerator, record_high_water_mark

MakeConfig = Callable[..., HomeServerConfig]


@pytest.fixture
async def db(make_hs_config: MakeConfig) -> AsyncIterator[Database]:
    database = make_database(make_hs_config())
    await database.open()
    await migrate(database)
    await database.execute("t", "CREATE TABLE things (stream_id BIGINT PRIMARY KEY)")
    yield database
    await database.close()


async def loaded(db: Database) -> int:
    gen = StreamIdGenerator("things")
    await gen.load(db, "things", "stream_id")
    assert gen.current() == gen.current_position()
    return gen.current()


async def mark(db: Database, position: int) -> None:
    async def run(txn: Transaction) -> None:
        await record_high_water_mark(txn, "things", position)

    await db.run_interaction("mark", run)


async def test_an_empty_stream_starts_at_zero(db: Database) -> None:
    assert await loaded(db) == 0


async def test_the_highest_stored_id_or_the_high_water_mark_whichever_is_higher(
    db: Database,
) -> None:
    for stream_id in (3, 7):
        await db.execute("ins", "INSERT INTO things (stream_id) VALUES (?)", stream_id)
    assert await loaded(db) == 7
    await mark(db, 5)
    assert await loaded(db) == 7
    # The newest rows deleted: the mark keeps ids from going backwards.
    await mark(db, 12)
    await db.execute("del", "DELETE FROM things")
    assert await loaded(db) == 12
    gen = StreamIdGenerator("things")
    await gen.load(db, "things", "stream_id")
    assert gen.next() == 13


async def test_another_stream_s_mark_is_not_taken(db: Database) -> None:
    async def run(txn: Transaction) -> None:
        await record_high_water_mark(txn, "other", 40)

    await db.run_interaction("mark", run)
    await db.execute("ins", "INSERT INTO things (stream_id) VALUES (?)", 2)
    assert await loaded(db) == 2
