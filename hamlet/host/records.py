"""The provisioned tenants of a host, one row each in a SQLite file.

A whole-file registry (the old `registry.json`) costs a rewrite of every
tenant on each change: 2.6 MB and ~47 ms per save at 10,000 tenants. Here
a change is one row in one small transaction, whatever the number of
tenants; that row's commit is the commit point of provisioning and removal
(see `hamlet.host.journal`).

The file is `.registry.sqlite3` in `host.tenants_dir`: a server name
cannot start with a dot, so no tenant's directory can take its name (a
tenant may well be called `registry.sqlite3`). WAL with
`synchronous=NORMAL`: a commit survives the process dying, not the machine
losing power, as the journal's steps. Calls block; the manager runs them on
the file I/O pool, never on the event loop.
"""

from __future__ import annotations

import json
import os
import sqlite3
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any

REGISTRY_DB = ".registry.sqlite3"
#: The registry of older versions, imported once at startup.
LEGACY_REGISTRY_FILE = "registry.json"
LEGACY_MIGRATED_SUFFIX = ".migrated"

_SCHEMA = """
CREATE TABLE IF NOT EXISTS tenants (
    name TEXT PRIMARY KEY,
    server_name TEXT NOT NULL,
    config_path TEXT NOT NULL,
    data_dir TEXT NOT NULL,
    state TEXT NOT NULL,
    created_ts INTEGER NOT NULL,
    listen_address TEXT,
    listen_port INTEGER
)
"""


@dataclass
class TenantRecord:
    """What the registry remembers of a provisioned tenant."""

    server_name: str
    config_path: str
    data_dir: str
    state: str
    created_ts: int
    #: A listener of the tenant's own, besides the shared ones.
    listen: tuple[str, int] | None = None

    def _row(self) -> tuple[Any, ...]:
        address, port = self.listen if self.listen else (None, None)
        return (
            self.server_name.lower(),
            self.server_name,
            self.config_path,
            self.data_dir,
            self.state,
            self.created_ts,
            address,
            port,
        )


class RecordStore:
    """One row per provisioned tenant. Thread-safe; every call blocks."""

    def __init__(self, tenants_dir: Path) -> None:
        self.tenants_dir = tenants_dir
        self._conn: sqlite3.Connection | None = None
        self._lock = threading.Lock()

    @property
    def path(self) -> Path:
        return self.tenants_dir / REGISTRY_DB

    def _db(self) -> sqlite3.Connection:
        if self._conn is None:
            self.tenants_dir.mkdir(parents=True, exist_ok=True)
            conn = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False)
            conn.execute("PRAGMA journal_mode=WAL")
            conn.execute("PRAGMA synchronous=NORMAL")
            conn.execute(_SCHEMA)
            self._conn = conn
        return self._conn

    def open(self) -> list[TenantRecord]:
        """Open the store (importing a legacy registry.json) and read every record."""
        with self._lock:
            self._migrate_legacy()
            rows = self._db().execute(
                "SELECT server_name, config_path, data_dir, state, created_ts,"
                " listen_address, listen_port FROM tenants ORDER BY name"
            )
            return [
                TenantRecord(
                    server_name=name,
                    config_path=config_path,
                    data_dir=data_dir,
                    state=state,
                    created_ts=created_ts,
                    listen=(address, port) if address is not None else None,
                )
                for name, config_path, data_dir, state, created_ts, address, port in rows
            ]

    def put(self, record: TenantRecord) -> None:
        """Insert or replace one tenant's row: committed when this returns."""
        with self._lock:
            self._db().execute(
                "INSERT OR REPLACE INTO tenants VALUES (?, ?, ?, ?, ?, ?, ?, ?)", record._row()
            )

    def set_state(self, server_name: str, state: str) -> None:
        with self._lock:
            self._db().execute(
                "UPDATE tenants SET state = ? WHERE name = ?", (state, server_name.lower())
            )

    def delete(self, server_name: str) -> None:
        with self._lock:
            self._db().execute("DELETE FROM tenants WHERE name = ?", (server_name.lower(),))

    def close(self) -> None:
        with self._lock:
            if self._conn is not None:
                self._conn.close()
                self._conn = None

    def _migrate_legacy(self) -> None:
        """Replace the rows with registry.json's, then set the file aside.

        The rows go in one transaction and the file is renamed only after
        it commits: a crash in between imports the same file again next time.
        """
        legacy = self.tenants_dir / LEGACY_REGISTRY_FILE
        if not legacy.is_file():
            return
        data = json.loads(legacy.read_text())
        records = [_legacy_record(name, entry) for name, entry in data.items()]
        db = self._db()
        db.execute("BEGIN IMMEDIATE")
        try:
            db.execute("DELETE FROM tenants")
            db.executemany(
                "INSERT OR REPLACE INTO tenants VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                [r._row() for r in records],
            )
        except BaseException:
            db.execute("ROLLBACK")
            raise
        db.execute("COMMIT")
        os.replace(legacy, legacy.with_name(f".{LEGACY_REGISTRY_FILE}{LEGACY_MIGRATED_SUFFIX}"))


def _legacy_record(name: str, entry: dict[str, Any]) -> TenantRecord:
    listen = entry.get("listen")
    return TenantRecord(
        server_name=name,
        config_path=str(entry["config_path"]),
        data_dir=str(entry["data_dir"]),
        state=str(entry.get("state", "active")),
        created_ts=int(entry.get("created_ts", 0)),
        listen=(str(listen[0]), int(listen[1])) if listen else None,
    )
