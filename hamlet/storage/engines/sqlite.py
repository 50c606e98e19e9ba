"""SQLite engine: one connection per tenant, driven from the shared database pool."""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import Awaitable, Callable, Iterable
from pathlib import Path
from typing import Literal, TypeVar

from hamlet.runtime.blocking import run_db
from hamlet.storage.database import Args, Database, Row, Transaction
from hamlet.storage.errors import IntegrityError, StorageError

T = TypeVar("T")


class SqliteTransaction(Transaction):
    def __init__(self, conn: sqlite3.Connection) -> None:
        self._conn = conn

    async def execute(self, sql: str, args: Args = ()) -> int:
        return await run_db(_execute, self._conn, sql, tuple(args))

    async def executemany(self, sql: str, rows: Iterable[Args]) -> None:
        await run_db(_executemany, self._conn, sql, [tuple(r) for r in rows])

    async def fetchall(self, sql: str, args: Args = ()) -> list[Row]:
        return await run_db(_fetchall, self._conn, sql, tuple(args))


def _wrap(e: sqlite3.Error) -> StorageError:
    if isinstance(e, sqlite3.IntegrityError):
        return IntegrityError(str(e))
    return StorageError(str(e))


def _execute(conn: sqlite3.Connection, sql: str, args: tuple[object, ...]) -> int:
    try:
        return conn.execute(sql, args).rowcount
    except sqlite3.Error as e:
        raise _wrap(e) from e


def _executemany(conn: sqlite3.Connection, sql: str, rows: list[tuple[object, ...]]) -> None:
    try:
        conn.executemany(sql, rows)
    except sqlite3.Error as e:
        raise _wrap(e) from e


def _fetchall(conn: sqlite3.Connection, sql: str, args: tuple[object, ...]) -> list[Row]:
    try:
        return conn.execute(sql, args).fetchall()
    except sqlite3.Error as e:
        raise _wrap(e) from e


def _connect(path: str) -> sqlite3.Connection:
    if path != ":memory:":
        Path(path).parent.mkdir(parents=True, exist_ok=True)
    try:
        conn = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute("PRAGMA synchronous=FULL")
        conn.execute("PRAGMA foreign_keys=ON")
        conn.execute("PRAGMA busy_timeout=5000")
    except sqlite3.Error as e:
        raise StorageError(f"cannot open SQLite database {path}: {e}") from e
    return conn


class SqliteDatabase(Database):
    engine: Literal["sqlite", "postgres"] = "sqlite"

    def __init__(self, path: str) -> None:
        super().__init__()
        self.path = path
        self._conn: sqlite3.Connection | None = None
        # One connection per tenant: transactions take turns on it.
        self._lock = asyncio.Lock()

    async def open(self) -> None:
        if self._conn is None:
            self._conn = await run_db(_connect, self.path)

    async def close(self) -> None:
        conn, self._conn = self._conn, None
        if conn is not None:
            async with self._lock:
                await run_db(conn.close)

    async def release_memory(self) -> None:
        # Migrations and start-up reads fill SQLite's page cache; an idle
        # tenant pays for it in RSS until something shrinks it.
        async with self._lock:
            if self._conn is not None:
                await run_db(_execute, self._conn, "PRAGMA shrink_memory", ())

    @property
    def is_open(self) -> bool:
        return self._conn is not None

    async def _run(self, fn: Callable[[Transaction], Awaitable[T]]) -> T:
        async with self._lock:
            conn = self._conn
            if conn is None:
                raise StorageError("database is closed")
            # run_db finishes each statement even if this task is
            # cancelled, so the rollback below never races a running one and
            # the lock is never released with a transaction left open.
            try:
                await run_db(_execute, conn, "BEGIN", ())
                result = await fn(SqliteTransaction(conn))
                await run_db(_execute, conn, "COMMIT", ())
            except BaseException:
                await run_db(_rollback, conn)
                raise
            return result


def _rollback(conn: sqlite3.Connection) -> None:
    if conn.in_transaction:
        conn.execute("ROLLBACK")
