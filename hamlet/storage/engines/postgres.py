"""PostgreSQL engine (asyncpg): tenants share one pool, each in its own schema."""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable, Iterable, Sequence
from typing import Any, Literal, TypeVar

import asyncpg

from hamlet.runtime import pending_io
from hamlet.runtime.fair_queue import FairQueue, PerLoop
from hamlet.storage.database import Args, Database, Row, Transaction
from hamlet.storage.errors import IntegrityError, StorageError

T = TypeVar("T")

_PLACEHOLDER = re.compile(r"\?")
_SCHEMA_NAME = re.compile(r"^[a-z_][a-z0-9_]{0,62}$")
_RETRIES = 5


def to_pg_sql(sql: str) -> str:
    """Rewrite `?` placeholders as `$1, $2, ...`. Our SQL never has `?` in literals."""
    counter = iter(range(1, 10_000))
    return _PLACEHOLDER.sub(lambda _m: f"${next(counter)}", sql)


def _wrap(e: Exception) -> StorageError:
    if isinstance(e, asyncpg.IntegrityConstraintViolationError):
        return IntegrityError(str(e))
    return StorageError(str(e))


class PostgresTransaction(Transaction):
    def __init__(self, conn: Any, db: Database) -> None:
        self._conn = conn
        self._db = db

    async def execute(self, sql: str, args: Args = ()) -> int:
        self._db.total_statements += 1
        try:
            with pending_io.track():
                status: str = await self._conn.execute(to_pg_sql(sql), *args)
        except asyncpg.PostgresError as e:
            raise _wrap(e) from e
        tail = status.rsplit(" ", 1)[-1]
        return int(tail) if tail.isdigit() else 0

    async def executemany(self, sql: str, rows: Iterable[Args]) -> None:
        self._db.total_statements += 1
        try:
            with pending_io.track():
                await self._conn.executemany(to_pg_sql(sql), [tuple(r) for r in rows])
        except asyncpg.PostgresError as e:
            raise _wrap(e) from e

    async def fetchall(self, sql: str, args: Args = ()) -> list[Row]:
        self._db.total_statements += 1
        try:
            with pending_io.track():
                records = await self._conn.fetch(to_pg_sql(sql), *args)
        except asyncpg.PostgresError as e:
            raise _wrap(e) from e
        return [tuple(r) for r in records]

    async def execute_script(self, statements: Sequence[str]) -> None:
        # Without arguments asyncpg sends the lot as one simple query: one
        # round trip, run in order inside the caller's transaction.
        if not statements:
            return
        self._db.total_statements += 1
        try:
            with pending_io.track():
                await self._conn.execute(";\n".join(statements))
        except asyncpg.PostgresError as e:
            raise _wrap(e) from e


class PgPool:
    """One asyncpg pool for a PostgreSQL server, shared by every tenant on it.

    asyncpg hands out connections first come, first served: 200 queued
    transactions of one tenant would each get a connection before a
    neighbour's one. So tenants take turns (`turns`): a tenant holds at most
    all connections but one, its further transactions wait in its own
    queue, and a freed connection goes to the next tenant in turn.
    """

    def __init__(self, dsn_kwargs: dict[str, Any], min_size: int = 1, max_size: int = 10) -> None:
        self.dsn_kwargs = dsn_kwargs
        self.min_size = min_size
        self.max_size = max_size
        self._pool: Any = None
        self.turns = PerLoop(lambda: FairQueue(max_size, max(1, max_size - 1)))

    async def get(self) -> Any:
        if self._pool is None:
            try:
                with pending_io.track():
                    pool = await asyncpg.create_pool(
                        min_size=self.min_size, max_size=self.max_size, **self.dsn_kwargs
                    )
            except (OSError, asyncpg.PostgresError) as e:
                raise StorageError(f"cannot connect to PostgreSQL: {e}") from e
            self._pool = pool
        return self._pool

    async def close(self) -> None:
        pool, self._pool = self._pool, None
        if pool is not None:
            with pending_io.track():
                await pool.close()


class PostgresDatabase(Database):
    engine: Literal["sqlite", "postgres"] = "postgres"

    def __init__(self, pool: PgPool, schema: str, *, owns_pool: bool = False) -> None:
        super().__init__()
        if not _SCHEMA_NAME.match(schema):
            raise StorageError(f"invalid PostgreSQL schema name {schema!r}")
        self.schema = schema
        self._pool = pool
        self._owns_pool = owns_pool
        self._open = False

    async def open(self) -> None:
        pool = await self._pool.get()
        with pending_io.track():
            async with pool.acquire() as conn:
                await conn.execute(f'CREATE SCHEMA IF NOT EXISTS "{self.schema}"')
        self._open = True

    async def close(self) -> None:
        self._open = False
        if self._owns_pool:
            await self._pool.close()

    async def release_memory(self) -> None:
        """Nothing to do: the shared pool's connections hold no per-tenant cache."""

    async def drop_schema(self) -> None:
        pool = await self._pool.get()
        with pending_io.track():
            async with pool.acquire() as conn:
                await conn.execute(f'DROP SCHEMA IF EXISTS "{self.schema}" CASCADE')

    async def _run(self, fn: Callable[[Transaction], Awaitable[T]]) -> T:
        if not self._open:
            raise StorageError("database is closed")
        pool = await self._pool.get()
        for attempt in range(_RETRIES):
            try:
                return await self._attempt(pool, fn)
            except (asyncpg.SerializationError, asyncpg.DeadlockDetectedError):
                if attempt == _RETRIES - 1:
                    raise
            except StorageError as e:
                cause = e.__cause__
                retryable = isinstance(
                    cause, asyncpg.SerializationError | asyncpg.DeadlockDetectedError
                )
                if not retryable or attempt == _RETRIES - 1:
                    raise
            except (OSError, asyncpg.InterfaceError) as e:
                raise StorageError(f"PostgreSQL connection failed: {e}") from e
        raise AssertionError("unreachable")

    async def _attempt(self, pool: Any, fn: Callable[[Transaction], Awaitable[T]]) -> T:
        # Each round trip is tracked on its own, `fn` as a whole is not: it
        # may wait for timers or other tasks, which a virtual-time loop must
        # be free to run. `acquire()` is tracked although with every pooled
        # connection taken it waits for another transaction: the pool is
        # sized for a tenant's concurrency, so that wait is short. The same
        # holds for the wait for this tenant's turn.
        turns = self._pool.turns.get()
        with pending_io.track():
            await turns.acquire(self.schema)
        try:
            return await self._in_turn(pool, fn)
        finally:
            turns.release(self.schema)

    async def _in_turn(self, pool: Any, fn: Callable[[Transaction], Awaitable[T]]) -> T:
        with pending_io.track():
            conn = await pool.acquire()
        try:
            txn = conn.transaction()
            with pending_io.track():
                await txn.start()
                await conn.execute(f'SET LOCAL search_path TO "{self.schema}"')
            try:
                result = await fn(PostgresTransaction(conn, self))
            except BaseException:
                with pending_io.track():
                    await txn.rollback()
                raise
            with pending_io.track():
                await txn.commit()
            return result
        finally:
            with pending_io.track():
                await pool.release(conn)
