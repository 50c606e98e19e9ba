"""Migrated databases for the homeservers under test, without migrating per test.

Every test builds fresh homeservers on fresh databases, and running the
whole migration chain for each one was most of a test's set-up (half a
second on PostgreSQL). So the session migrates once per engine, with the
real `migrate()`, and a homeserver whose database does not exist yet
starts from that result instead:

- SQLite: the migrated database file is copied to the homeserver's path.
- PostgreSQL: migrated schemas wait in a pool; one is renamed to the
  homeserver's schema name. When the test is over, each schema a
  homeserver started on is emptied (TRUNCATE ... RESTART IDENTITY, every
  sequence back to its start) and goes back to the pool, but only if its
  tables, columns, indexes, constraints and `schema_version` still match
  the freshly migrated reference; a schema a test changed is dropped.

`migrate()` still runs on every homeserver's start and finds nothing to do.
A database that already exists (a restart, a persisted tenant) is left as
it is. Tests that migrate a database themselves (tests/storage) build it
with `make_database` directly, so they still start from nothing.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import logging
import os
import tempfile
import threading
from collections.abc import Callable, Coroutine
from pathlib import Path
from typing import Any, TypeVar

import asyncpg

from hamlet.config import HomeServerConfig
from hamlet.storage.database import Database
from hamlet.storage.engines.postgres import PgPool, PostgresDatabase
from hamlet.storage.engines.sqlite import DB_FILE_MODE, SqliteDatabase
from hamlet.storage.migrations import migrate

T = TypeVar("T")

logger = logging.getLogger(__name__)

# A schema's shape, read with its own name on the search path so that
# defaults name nothing by schema (index definitions always do).
_SHAPE_SQL = """
SELECT item FROM (
    SELECT 'rel ' || c.relname || ' ' || c.relkind::text || ' ' || coalesce((
        SELECT string_agg(
            a.attname || ' ' || format_type(a.atttypid, a.atttypmod) || ' '
            || a.attnotnull::text || ' ' || coalesce(pg_get_expr(d.adbin, d.adrelid), ''),
            ', ' ORDER BY a.attnum)
        FROM pg_attribute a
        LEFT JOIN pg_attrdef d ON d.adrelid = a.attrelid AND d.adnum = a.attnum
        WHERE a.attrelid = c.oid AND a.attnum > 0 AND NOT a.attisdropped), '') AS item
    FROM pg_class c WHERE c.relnamespace = $1::regnamespace
    UNION ALL
    SELECT 'index ' || pg_get_indexdef(i.indexrelid)
    FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid
    WHERE c.relnamespace = $1::regnamespace
    UNION ALL
    SELECT 'constraint ' || conname || ' ' || pg_get_constraintdef(oid)
    FROM pg_constraint WHERE connamespace = $1::regnamespace
    UNION ALL
    SELECT 'trigger ' || pg_get_triggerdef(t.oid)
    FROM pg_trigger t JOIN pg_class c ON c.oid = t.tgrelid
    WHERE c.relnamespace = $1::regnamespace AND NOT t.tgisinternal
    UNION ALL
    SELECT 'function ' || pg_get_functiondef(p.oid)
    FROM pg_proc p WHERE p.pronamespace = $1::regnamespace
    UNION ALL
    SELECT 'version ' || version::text || ' ' || name FROM schema_version
) AS shape
"""


def _quote(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


class _AdminLoop:
    """An event loop on a thread of its own, for work outside any test's loop."""

    def __init__(self) -> None:
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(
            target=self._loop.run_forever, name="hamlet-test-templates", daemon=True
        )
        self._thread.start()

    def submit(self, coro: Coroutine[Any, Any, T]) -> concurrent.futures.Future[T]:
        return asyncio.run_coroutine_threadsafe(coro, self._loop)

    def run(self, coro: Coroutine[Any, Any, T]) -> T:
        return asyncio.run_coroutine_threadsafe(coro, self._loop).result()

    def stop(self) -> None:
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(timeout=30)
        if not self._thread.is_alive():
            self._loop.close()


async def _migrated(db: Database) -> None:
    await db.open()
    try:
        await migrate(db)
    finally:
        await db.close()


class SqliteTemplate:
    """A migrated SQLite database file, copied to each new database path."""

    def __init__(self, admin: _AdminLoop, directory: Path) -> None:
        path = directory / "template.db"
        admin.run(_migrated(SqliteDatabase(str(path))))
        # The last connection's close checkpoints the WAL: one file holds it all.
        leftover = Path(f"{path}-wal")
        if leftover.exists() and leftover.stat().st_size:
            raise RuntimeError(f"{leftover} was not checkpointed")
        self._image = path.read_bytes()

    def prepare(self, path: str) -> None:
        if path == ":memory:":
            return
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        try:
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, DB_FILE_MODE)
        except FileExistsError:
            return
        with os.fdopen(fd, "wb") as f:
            f.write(self._image)


class PostgresTemplates:
    """A pool of migrated schemas in one PostgreSQL database."""

    def __init__(self, admin: _AdminLoop, dsn: dict[str, Any]) -> None:
        self._admin = admin
        self._dsn = dsn
        self._counter = 0
        self._pool: list[str] = []
        # Schemas homeservers started on during the current test.
        self._handed_out: list[str] = []
        self._conn: Any = None
        self._lock: asyncio.Lock | None = None
        self._pending: list[concurrent.futures.Future[None]] = []
        self._reference = admin.run(self._seed())

    def _pool_name(self) -> str:
        self._counter += 1
        return f"hamlet_template_{self._counter}"

    async def _seed(self) -> list[str]:
        self._lock = asyncio.Lock()
        self._conn = await asyncpg.connect(**self._dsn)
        name = self._pool_name()
        await _migrated(PostgresDatabase(PgPool(self._dsn), name, owns_pool=True))
        async with self._conn.transaction():
            reference = await self._shape(name)
        self._pool.append(name)
        return reference

    async def _shape(self, schema: str) -> list[str]:
        await self._conn.execute(f"SET LOCAL search_path TO {_quote(schema)}")
        rows = await self._conn.fetch(_SHAPE_SQL, schema)
        return sorted(
            row[0].replace(f" ON {schema}.", " ON ").replace(f" ON {_quote(schema)}.", " ON ")
            for row in rows
        )

    def prepare(self, schema: str) -> None:
        self._admin.run(self._take(schema))

    async def _take(self, schema: str) -> None:
        assert self._lock is not None
        async with self._lock:
            if await self._exists(schema):
                return
            self._handed_out.append(schema)
            if self._pool:
                pooled = self._pool.pop()
                await self._conn.execute(
                    f"ALTER SCHEMA {_quote(pooled)} RENAME TO {_quote(schema)}"
                )

    async def _exists(self, schema: str) -> bool:
        found = await self._conn.fetchval("SELECT 1 FROM pg_namespace WHERE nspname = $1", schema)
        return found is not None

    def recycle(self) -> None:
        """Start putting this test's schemas back in the pool (the next `prepare` waits)."""
        handed_out, self._handed_out = self._handed_out, []
        self._pending = [f for f in self._pending if not f.done()]
        for schema in handed_out:
            self._pending.append(self._admin.submit(self._recycle(schema)))

    async def _recycle(self, schema: str) -> None:
        assert self._lock is not None
        async with self._lock:
            if not await self._exists(schema):
                return  # the test dropped it (a deleted tenant)
            try:
                await self._empty(schema)
            except Exception as e:
                # Left as it is (locked by a connection a test leaked) or
                # dropped (changed by the test): never reused.
                logger.info("Schema %s is not reused: %s", schema, e)
                await self._drop(schema)

    async def _empty(self, schema: str) -> None:
        async with self._conn.transaction():
            await self._conn.execute("SET LOCAL lock_timeout = '2s'")
            if await self._shape(schema) != self._reference:
                raise RuntimeError("its tables are not the migrated ones")
            tables = [
                _quote(row[0])
                for row in await self._conn.fetch(
                    "SELECT tablename FROM pg_tables"
                    " WHERE schemaname = $1 AND tablename <> 'schema_version'",
                    schema,
                )
            ]
            filled = (
                await self._conn.fetch(
                    " UNION ALL ".join(
                        f"SELECT {i} WHERE EXISTS (SELECT 1 FROM {table})"
                        for i, table in enumerate(tables)
                    )
                )
                if tables
                else []
            )
            if filled:
                names = ", ".join(tables[row[0]] for row in filled)
                await self._conn.execute(f"TRUNCATE {names} RESTART IDENTITY CASCADE")
            # A sequence moves on even for a rolled-back insert.
            await self._conn.execute(
                "SELECT setval(format('%I.%I', schemaname, sequencename), start_value, false)"
                " FROM pg_sequences WHERE schemaname = $1 AND last_value IS NOT NULL",
                schema,
            )
            pooled = self._pool_name()
            await self._conn.execute(f"ALTER SCHEMA {_quote(schema)} RENAME TO {_quote(pooled)}")
        self._pool.append(pooled)

    async def _drop(self, schema: str) -> None:
        try:
            async with self._conn.transaction():
                await self._conn.execute("SET LOCAL lock_timeout = '2s'")
                await self._conn.execute(f"DROP SCHEMA IF EXISTS {_quote(schema)} CASCADE")
        except asyncpg.PostgresError as e:
            logger.info("Schema %s is left behind: %s", schema, e)

    def close(self) -> None:
        for future in self._pending:
            try:
                future.result()
            except Exception:
                logger.exception("Recycling a schema failed")
        if self._conn is not None:
            self._admin.run(self._terminate())

    async def _terminate(self) -> None:
        self._conn.terminate()


class DatabaseTemplates:
    """The migrated SQLite file, and a schema pool per PostgreSQL server added.

    Built before any test runs, so no test's patches reach the migrations.
    """

    def __init__(self) -> None:
        self._admin = _AdminLoop()
        self._dir = Path(tempfile.mkdtemp(prefix="hamlet-templates-"))
        self._sqlite = SqliteTemplate(self._admin, self._dir)
        self._postgres: dict[tuple[Any, ...], PostgresTemplates] = {}

    @staticmethod
    def _key(dsn: dict[str, Any]) -> tuple[Any, ...]:
        return tuple(sorted(dsn.items()))

    def add_postgres(self, dsn: dict[str, Any]) -> None:
        self._postgres[self._key(dsn)] = PostgresTemplates(self._admin, dsn)

    def prepare(self, config: HomeServerConfig) -> None:
        """Give `config`'s database the migrated schema, if it does not exist yet."""
        db = config.database
        if db.is_sqlite:
            self._sqlite.prepare(db.sqlite_path())
        elif db.is_postgres:
            templates = self._postgres.get(self._key(db.pg_dsn_kwargs()))
            if templates is not None:
                templates.prepare(db.pg_schema)

    def recycle(self) -> None:
        for templates in self._postgres.values():
            templates.recycle()

    def disconnect(self) -> None:
        """Let go of every PostgreSQL server (before it stops: a client holds that up)."""
        postgres, self._postgres = self._postgres, {}
        for templates in postgres.values():
            templates.close()

    def close(self) -> None:
        self.disconnect()
        self._admin.stop()
        for leftover in self._dir.iterdir():
            leftover.unlink()
        self._dir.rmdir()


def from_templates(
    templates: DatabaseTemplates, make_database: Callable[..., Database]
) -> Callable[..., Database]:
    """`make_database` that first gives a new database the migrated schema."""

    def make(config: HomeServerConfig, *args: Any, **kwargs: Any) -> Database:
        templates.prepare(config)
        return make_database(config, *args, **kwargs)

    return make
