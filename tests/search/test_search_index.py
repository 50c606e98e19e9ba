"""The search index follows the events: migration backfill, redaction, purge."""

from __future__ import annotations

import pytest

from hamlet.storage.database import Transaction
from hamlet.storage.migrations import load_migrations, render
from tests.conftest import settle
from tests.rooms.helpers import create_room, put_state, q, send_ok
from tests.rooms.reading_support import unlimited_harness
from tests.search.test_search import bodies, search_ok
from tests.spaces.support import ADMIN_V2, ok
from tests.support.harness import Harness
from tests.support.users import make_user


@pytest.fixture
async def harness(make_hs_config):  # type: ignore[no-untyped-def]
    async for h in unlimited_harness(make_hs_config):
        yield h


async def indexed(harness: Harness) -> int:
    return int(await harness.hs.db.fetchval("test_count", "SELECT COUNT(*) FROM event_search"))


async def test_migration_indexes_events_stored_before_it(harness: Harness) -> None:
    alice = await make_user(harness, "alice")
    room = await create_room(harness, alice, name="Lychee room")
    await send_ok(harness, alice, room, "lychee message")
    await send_ok(harness, alice, room, "nul\x00 lychee")
    topic = await put_state(harness, alice, room, "m.room.topic", {"topic": "lychee topic"})
    assert topic.status == 200
    assert await indexed(harness) == 4
    (migration,) = [m for m in load_migrations() if m.name == "event_search"]
    db = harness.hs.db

    async def rebuild(txn: Transaction) -> None:
        await txn.execute("DROP TABLE event_search")
        for statement in render(migration.sql_for(db.engine), db.engine):
            await txn.execute(statement)

    await db.run_interaction("test_rebuild_search", rebuild)
    assert await indexed(harness) == 4
    found = await search_ok(harness, alice, "lychee", order_by="recent")
    assert [r["result"]["type"] for r in found["results"]] == [
        "m.room.topic",
        "m.room.message",
        "m.room.message",
        "m.room.name",
    ]


async def test_purged_room_leaves_nothing_indexed(harness: Harness) -> None:
    admin = await make_user(harness, "admin", admin=True)
    alice = await make_user(harness, "alice")
    doomed = await create_room(harness, alice)
    kept = await create_room(harness, alice)
    await send_ok(harness, alice, doomed, "durian gone")
    await send_ok(harness, alice, kept, "durian kept")
    assert await indexed(harness) == 2
    resp = await harness.request(
        "DELETE", f"{ADMIN_V2}/rooms/{q(doomed)}", json={"purge": True}, token=admin.token
    )
    ok(resp)
    await settle()
    assert await indexed(harness) == 1
    assert bodies(await search_ok(harness, alice, "durian")) == ["durian kept"]
