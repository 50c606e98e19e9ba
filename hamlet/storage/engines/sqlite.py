"""SQLite engine: one connection per tenant, driven from the shared database pool."""

from __future__ import annotations

import asyncio
import logging
import os
import sqlite3
from collections.abc import Awaitable, Callable, Iterable, Sequence
from pathlib import Path
from typing import Any, Literal, TypeVar, cast

from hamlet.runtime.blocking import run_db
from hamlet.storage.database import Args, Database, Row, Transaction
from hamlet.storage.errors import IntegrityError, StorageError

T = TypeVar("T")

logger = logging.getLogger(__name__)


class SqliteTransaction(Transaction):
    """Statements of one transaction, run on the database thread that runs
    the transaction function (`_drive`): each returns without suspending."""

    def __init__(self, conn: sqlite3.Connection, db: Database) -> None:
        self._conn = conn
        self._db = db

    async def execute(self, sql: str, args: Args = ()) -> int:
        self._db.total_statements += 1
        return _execute(self._conn, sql, tuple(args))

    async def executemany(self, sql: str, rows: Iterable[Args]) -> None:
        self._db.total_statements += 1
        _executemany(self._conn, sql, [tuple(r) for r in rows])

    async def fetchall(self, sql: str, args: Args = ()) -> list[Row]:
        self._db.total_statements += 1
        return _fetchall(self._conn, sql, tuple(args))

    async def execute_script(self, statements: Sequence[str]) -> None:
        # Statement by statement inside the caller's transaction: sqlite3's
        # own executescript would commit it first.
        self._db.total_statements += len(statements)
        _execute_all(self._conn, list(statements))


def _wrap(e: sqlite3.Error) -> StorageError:
    if isinstance(e, sqlite3.IntegrityError):
        return IntegrityError(str(e))
    return StorageError(str(e))


def _execute(conn: sqlite3.Connection, sql: str, args: tuple[object, ...]) -> int:
    try:
        return conn.execute(sql, args).rowcount
    except sqlite3.Error as e:
        raise _wrap(e) from e


def _execute_all(conn: sqlite3.Connection, statements: list[str]) -> None:
    try:
        for statement in statements:
            conn.execute(statement)
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


# The database holds password hashes and access tokens: owner only, like
# the signing key. SQLite gives the -wal and -shm files the main file's mode.
DB_FILE_MODE = 0o600


def _restrict(path: str) -> None:
    """Create the database file owner-only, and take back what older runs left open."""
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    try:
        os.close(os.open(path, os.O_RDONLY | os.O_CREAT | os.O_EXCL, DB_FILE_MODE))
    except FileExistsError:
        pass
    for name in (path, f"{path}-wal", f"{path}-shm", f"{path}-journal"):
        try:
            mode = os.stat(name).st_mode & 0o777
            if mode & ~DB_FILE_MODE:
                os.chmod(name, mode & DB_FILE_MODE)
        except FileNotFoundError:
            pass
        except PermissionError:
            logger.warning("Cannot make %s owner-only (it is not ours)", name)


def _connect(path: str) -> sqlite3.Connection:
    if path != ":memory:":
        try:
            _restrict(path)
        except OSError as e:
            raise StorageError(f"cannot open SQLite database {path}: {e}") from e
    try:
        conn = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
    except sqlite3.Error as e:
        raise StorageError(f"cannot open SQLite database {path}: {e}") from e
    try:
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute("PRAGMA synchronous=FULL")
        conn.execute("PRAGMA foreign_keys=ON")
        conn.execute("PRAGMA busy_timeout=5000")
    except sqlite3.Error as e:
        # The file is open from connect() on; nobody else will ever close it.
        conn.close()
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
            logger.debug("Opened SQLite database %s", self.path)

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

    async def _run_one(self, sql: str, args: Args, fetch: bool) -> Any:
        # A lone statement is a transaction of its own in autocommit mode:
        # one trip to the database pool instead of three (BEGIN, it, COMMIT).
        # A wake's start-up reads are mostly such statements.
        async with self._lock:
            conn = self._conn
            if conn is None:
                raise StorageError("database is closed")
            self.total_statements += 1
            return await run_db(_fetchall if fetch else _execute, conn, sql, tuple(args))

    async def _run(self, fn: Callable[[Transaction], Awaitable[T]]) -> T:
        async with self._lock:
            conn = self._conn
            if conn is None:
                raise StorageError("database is closed")
            # One hop to the pool runs the whole transaction. run_db finishes
            # it even if this task is cancelled meanwhile, so it is committed
            # or rolled back before the lock is released: never left open.
            return await run_db(_drive, conn, SqliteTransaction(conn, self), fn)


class SuspendedTransactionError(StorageError):
    """A transaction function awaited something other than its own statements."""


def _drive(
    conn: sqlite3.Connection, txn: SqliteTransaction, fn: Callable[[Transaction], Awaitable[T]]
) -> T:
    """Run a whole transaction in this (database) thread, in one go.

    A transaction function awaits only its statements (and helpers that
    do), which return at once here, so one `send` runs it to its end. One
    that awaits anything else (a timer, a lock, another task) would hold the
    tenant's connection across that wait; there is no event loop in this
    thread to wait on, so it fails, and the transaction is rolled back.
    """
    _execute(conn, "BEGIN", ())
    try:
        steps = fn(txn).__await__()
        try:
            awaiting = steps.send(None)
        except StopIteration as stop:
            _execute(conn, "COMMIT", ())
            return cast(T, stop.value)
        steps.close()
        raise SuspendedTransactionError(
            f"a transaction function awaited {awaiting!r}, not one of its statements"
        )
    except BaseException:
        _rollback(conn)
        raise


def _rollback(conn: sqlite3.Connection) -> None:
    if conn.in_transaction:
        conn.execute("ROLLBACK")
