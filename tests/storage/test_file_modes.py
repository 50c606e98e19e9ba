"""Files holding secrets are not readable by other users of the machine."""

from __future__ import annotations

import logging
import os
import stat
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import yaml

from hamlet.config import HomeServerConfig
from hamlet.host.logging_setup import setup_logging
from hamlet.storage.factory import make_database

MakeConfig = Callable[..., HomeServerConfig]


def mode(path: Path | str) -> int:
    return stat.S_IMODE(os.stat(path).st_mode)


async def test_sqlite_files_are_owner_only(make_hs_config: MakeConfig, engine: str) -> None:
    if engine != "sqlite":
        pytest.skip("PostgreSQL keeps no files of ours")
    config = make_hs_config()
    path = str(config.database.args["database"])
    db = make_database(config)
    await db.open()
    try:
        await db.execute("mk", "CREATE TABLE t (x INTEGER)")
        await db.execute("ins", "INSERT INTO t VALUES (1)")
        for name in (path, f"{path}-wal", f"{path}-shm"):
            assert mode(name) == 0o600, name
    finally:
        await db.close()


async def test_sqlite_files_left_open_by_an_older_run_are_restricted(
    make_hs_config: MakeConfig, engine: str
) -> None:
    if engine != "sqlite":
        pytest.skip("PostgreSQL keeps no files of ours")
    config = make_hs_config()
    path = str(config.database.args["database"])
    db = make_database(config)
    await db.open()
    await db.execute("mk", "CREATE TABLE t (x INTEGER)")
    await db.close()
    os.chmod(path, 0o644)
    db = make_database(config)
    await db.open()
    try:
        assert await db.fetchval("count", "SELECT COUNT(*) FROM t") == 0
        assert mode(path) == 0o600
    finally:
        await db.close()


@pytest.fixture
def restore_logging() -> Iterator[None]:
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    yield
    for handler in root.handlers:
        if handler not in handlers:
            handler.close()
    root.handlers[:] = handlers
    root.setLevel(level)


@pytest.mark.usefixtures("restore_logging")
def test_log_files_are_owner_and_group_only(tmp_path: Path) -> None:
    old_log = tmp_path / "old.log"
    old_log.write_text("from an earlier run\n")
    old_log.chmod(0o644)
    config = {
        "version": 1,
        "disable_existing_loggers": False,
        "handlers": {
            "file": {"class": "logging.FileHandler", "filename": str(tmp_path / "new.log")},
            "delayed": {
                "class": "logging.handlers.RotatingFileHandler",
                "filename": str(tmp_path / "delayed.log"),
                "delay": True,
            },
            "old": {"class": "logging.FileHandler", "filename": str(old_log)},
        },
        "root": {"level": "INFO", "handlers": ["file", "delayed", "old"]},
    }
    log_config = tmp_path / "log.yaml"
    log_config.write_text(yaml.safe_dump(config))
    setup_logging(log_config)
    logging.getLogger("hamlet.test").info("hello")
    for name in ("new.log", "delayed.log", "old.log"):
        assert mode(tmp_path / name) == 0o640, name
    assert "hello" in (tmp_path / "new.log").read_text()
