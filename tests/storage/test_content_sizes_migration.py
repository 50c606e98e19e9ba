"""Migration 0019 gives stored account data and to-device messages their sizes."""

from __future__ import annotations

from pathlib import Path

from hamlet.storage.database import Database
from hamlet.storage.migrations import migrate
from tests.storage.conftest import schema_before


async def test_existing_rows_get_their_sizes(db: Database, tmp_path: Path) -> None:
    before = schema_before(tmp_path, 19)
    await migrate(db, before)
    await db.execute(
        "account_data",
        "INSERT INTO account_data (user_id, room_id, type, content, stream_id)"
        " VALUES (?, ?, ?, ?, ?)",
        "@a:hs",
        "",
        "t",
        '{"k":"vvvv"}',
        1,
    )
    await db.execute(
        "inbox",
        "INSERT INTO device_inbox (stream_id, user_id, device_id, sender, type, content)"
        " VALUES (?, ?, ?, ?, ?, ?)",
        1,
        "@a:hs",
        "D",
        "@b:hs",
        "m.t",
        '{"x":1}',
    )
    await migrate(db)
    assert await db.fetchval("size", "SELECT size FROM account_data") == 12
    assert await db.fetchval("size", "SELECT size FROM device_inbox") == 7
