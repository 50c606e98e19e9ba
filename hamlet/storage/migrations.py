"""Numbered schema migrations shared by both engines.

Files are `schema/NNNN_name.sql`. The few dialect differences are written
as `{{TOKEN}}` in the files and filled in here, the one place that knows
both dialects. A migration whose engines differ in more than a word (full
text search: an FTS5 virtual table against a tsvector column) comes as
`NNNN_name.sqlite.sql` and `NNNN_name.postgres.sql`, one per engine. The
files a database lacks run in one transaction and are recorded in
`schema_version`, so a failed migration leaves the previous version intact.
"""

from __future__ import annotations

import logging
import re
import time
from dataclasses import dataclass
from pathlib import Path

from hamlet.runtime.blocking import run_file_io
from hamlet.storage.database import Database, Transaction
from hamlet.storage.errors import MigrationError, StorageError

logger = logging.getLogger(__name__)

SCHEMA_DIR = Path(__file__).parent / "schema"

_DIALECT: dict[str, dict[str, str]] = {
    "sqlite": {
        "SERIAL_PK": "INTEGER PRIMARY KEY AUTOINCREMENT",
        "BLOB": "BLOB",
        # The elements of a JSON list in column `e.json`, as rows `j.value`.
        "JSON_EACH_PREV_EVENTS": "json_each(e.json, '$.prev_events') AS j",
        "JSON_EACH_AUTH_EVENTS": "json_each(e.json, '$.auth_events') AS j",
    },
    "postgres": {
        "SERIAL_PK": "BIGSERIAL PRIMARY KEY",
        "BLOB": "BYTEA",
        "JSON_EACH_PREV_EVENTS": (
            "jsonb_array_elements_text(CAST(e.json AS jsonb) -> 'prev_events') AS j(value)"
        ),
        "JSON_EACH_AUTH_EVENTS": (
            "jsonb_array_elements_text(CAST(e.json AS jsonb) -> 'auth_events') AS j(value)"
        ),
    },
}

_FILE_NAME = re.compile(r"^(\d{4})_([a-z0-9_]+)(?:\.(sqlite|postgres))?\.sql$")
_TOKEN = re.compile(r"\{\{([A-Z_]+)\}\}")


@dataclass(frozen=True, slots=True)
class Migration:
    version: int
    name: str
    sql: str
    #: engine -> its own SQL, for a migration written once per engine.
    variants: tuple[tuple[str, str], ...] = ()

    def sql_for(self, engine: str) -> str:
        return dict(self.variants).get(engine, self.sql)


def load_migrations(schema_dir: Path = SCHEMA_DIR) -> list[Migration]:
    files: dict[int, list[tuple[str, str | None, str]]] = {}
    for path in sorted(schema_dir.glob("*.sql")):
        m = _FILE_NAME.match(path.name)
        if m is None:
            raise MigrationError(f"badly named migration file {path.name}")
        files.setdefault(int(m.group(1)), []).append((m.group(2), m.group(3), path.read_text()))
    migrations = []
    for version, parts in sorted(files.items()):
        names = {name for name, _, _ in parts}
        engines = sorted(engine for _, engine, _ in parts if engine is not None)
        if len(names) != 1 or (engines and engines != sorted(_DIALECT)) or len(parts) > 2:
            raise MigrationError("two migrations share a number")
        name = names.pop()
        if engines:
            variants = tuple((engine or "", sql) for _, engine, sql in parts)
            migrations.append(Migration(version, name, "", variants))
        else:
            migrations.append(Migration(version, name, parts[0][2]))
    return migrations


_packaged: list[Migration] | None = None


async def _migrations(schema_dir: Path) -> list[Migration]:
    """The migrations in `schema_dir`; the package's own are read once per process.

    Every wake of a hibernated tenant checks its schema: reading and
    parsing the files each time cost more than the check itself, and did
    it on the event loop.
    """
    global _packaged
    if schema_dir != SCHEMA_DIR:
        return await run_file_io(load_migrations, schema_dir)
    if _packaged is None:
        _packaged = await run_file_io(load_migrations, SCHEMA_DIR)
    return _packaged


def render(sql: str, engine: str) -> list[str]:
    """The file's statements for `engine`: tokens filled, comment lines dropped.

    A statement ends with `;` at the end of a line. Whole-line `--` comments
    are removed first, so a comment ending in `;` does not split a statement
    (and no statement is only a comment, which PostgreSQL cannot execute).
    """
    table = _DIALECT[engine]
    filled = _TOKEN.sub(lambda m: table[m.group(1)], sql)
    code = "\n".join(line for line in filled.splitlines() if not line.lstrip().startswith("--"))
    return [stmt.strip() for stmt in (code + "\n").split(";\n") if stmt.strip()]


async def migrate(db: Database, schema_dir: Path = SCHEMA_DIR) -> int:
    """Apply every migration not yet recorded, in number order; returns the
    highest version applied.

    Not only those above the highest: branches developed side by side land
    their numbers out of order, and a database that already has a later
    one must still get the earlier one when it arrives.

    The pending migrations run in one transaction, each file's statements
    in one go: a new database is created with one commit (one fsync) and a
    few round trips, not one of each per statement and file. A failure
    rolls all of them back, leaving the version the database had."""
    try:
        rows = await db.fetchall("get_schema_versions", "SELECT version FROM schema_version")
    except StorageError:
        # A new database: the only case needing the table made (one query less on every wake).
        await db.execute(
            "create_schema_version",
            "CREATE TABLE IF NOT EXISTS schema_version ("
            " version INTEGER PRIMARY KEY, name TEXT NOT NULL, applied_ts BIGINT NOT NULL)",
        )
        rows = []
    applied = {int(row[0]) for row in rows}
    current = max(applied, default=0)
    pending = [m for m in await _migrations(schema_dir) if m.version not in applied]
    if not pending:
        return current

    async def apply(txn: Transaction) -> None:
        for migration in pending:
            statements = render(migration.sql_for(db.engine), db.engine)
            try:
                await txn.execute_script(statements)
            except StorageError as e:
                raise MigrationError(
                    f"migration {migration.version:04d}_{migration.name}: {e}"
                ) from e
        now = int(time.time() * 1000)
        await txn.executemany(
            "INSERT INTO schema_version (version, name, applied_ts) VALUES (?, ?, ?)",
            [(m.version, m.name, now) for m in pending],
        )

    try:
        await db.run_interaction("migrate", apply)
    except MigrationError:
        raise
    except StorageError as e:
        raise MigrationError(f"migrations: {e}") from e
    for migration in pending:
        logger.info("Applied schema migration %04d_%s", migration.version, migration.name)
    return max(current, *(m.version for m in pending))
