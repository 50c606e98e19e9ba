"""A fresh database of the test's engine, and schemas of earlier versions."""

from __future__ import annotations

import shutil
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import pytest

from hamlet.config import HomeServerConfig
from hamlet.storage.database import Database
from hamlet.storage.factory import make_database
from hamlet.storage.migrations import SCHEMA_DIR


@pytest.fixture
async def db(make_hs_config: Callable[..., HomeServerConfig]) -> AsyncIterator[Database]:
    database = make_database(make_hs_config())
    await database.open()
    yield database
    await database.close()


def schema_before(tmp_path: Path, version: int) -> Path:
    """A schema directory with the migrations numbered below `version`."""
    before = tmp_path / "schema"
    before.mkdir()
    for path in sorted(SCHEMA_DIR.glob("*.sql")):
        if int(path.name[:4]) < version:
            shutil.copy(path, before / path.name)
    return before
