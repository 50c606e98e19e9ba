"""An SQLite database that cannot be opened leaves no connection (no file descriptor) behind."""

from __future__ import annotations

from pathlib import Path

import pytest

from hamlet.storage.engines.sqlite import SqliteDatabase
from hamlet.storage.errors import StorageError
from tests.support.fds import open_files


async def test_a_failing_pragma_closes_the_connection(tmp_path: Path) -> None:
    # sqlite3.connect() opens the file; only the first PRAGMA finds it is no database.
    path = tmp_path / "homeserver.db"
    path.write_bytes(b"this is not an SQLite database, only a file of that name" * 100)
    db = SqliteDatabase(str(path))
    with pytest.raises(StorageError, match="not a database"):
        await db.open()
    assert not db.is_open
    assert [p for p in open_files() if p.startswith(str(path))] == []
