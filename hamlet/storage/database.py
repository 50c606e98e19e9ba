"""The async `Database` interface shared by the SQLite and PostgreSQL engines.

SQL is written once, with `?` placeholders; the PostgreSQL engine rewrites
them to `$n`. Every transaction is timed and charged to the current logging
context, and counted per transaction name for the periodic DB-time log line.
"""

from __future__ import annotations

import abc
import logging
import time
from collections.abc import Awaitable, Callable, Iterable, Sequence
from typing import Any, Literal, TypeVar

from hamlet.runtime.clock import Clock, LoopingCall
from hamlet.runtime.logcontext import current_context

logger = logging.getLogger(__name__)

T = TypeVar("T")
Row = tuple[Any, ...]
Args = Sequence[Any]

TXN_LOG_INTERVAL_S = 10.0


class Transaction(abc.ABC):
    @abc.abstractmethod
    async def execute(self, sql: str, args: Args = ()) -> int:
        """Run a statement; returns the number of rows it changed."""

    @abc.abstractmethod
    async def executemany(self, sql: str, rows: Iterable[Args]) -> None: ...

    async def execute_script(self, statements: Sequence[str]) -> None:
        """Run statements without arguments in order; an engine may send them in one go."""
        for statement in statements:
            await self.execute(statement)

    @abc.abstractmethod
    async def fetchall(self, sql: str, args: Args = ()) -> list[Row]: ...

    async def fetchone(self, sql: str, args: Args = ()) -> Row | None:
        rows = await self.fetchall(sql, args)
        return rows[0] if rows else None

    async def fetchval(self, sql: str, args: Args = ()) -> Any:
        row = await self.fetchone(sql, args)
        return None if row is None else row[0]


class Database(abc.ABC):
    engine: Literal["sqlite", "postgres"]

    def __init__(self) -> None:
        self._txn_stats: dict[str, list[float]] = {}
        self._interval_started = time.monotonic()
        self._stats_call: LoopingCall | None = None
        self.total_time_s = 0.0
        self.total_txns = 0
        # Statements run inside transactions (each a round trip on PostgreSQL).
        self.total_statements = 0
        # Since open, per transaction name (a fixed set, named in code): [count, seconds].
        self.txn_totals: dict[str, list[float]] = {}

    @abc.abstractmethod
    async def open(self) -> None: ...

    @abc.abstractmethod
    async def close(self) -> None:
        """Release every connection and file handle. Idempotent."""

    @abc.abstractmethod
    async def release_memory(self) -> None:
        """Hand back memory the engine caches but an idle tenant does not need."""

    @abc.abstractmethod
    async def _run(self, fn: Callable[[Transaction], Awaitable[T]]) -> T: ...

    async def run_interaction(self, desc: str, fn: Callable[[Transaction], Awaitable[T]]) -> T:
        """Run `fn` inside one transaction, committed if it returns."""
        return await self._timed(desc, self._run(fn))

    async def _timed(self, desc: str, work: Awaitable[T]) -> T:
        started = time.monotonic()
        try:
            return await work
        finally:
            elapsed = time.monotonic() - started
            self.total_time_s += elapsed
            self.total_txns += 1
            ctx = current_context()
            if ctx is not None:
                ctx.add_db_time(elapsed)
            for table in (self._txn_stats, self.txn_totals):
                stats = table.get(desc)
                if stats is None:
                    table[desc] = [1, elapsed]
                else:
                    stats[0] += 1
                    stats[1] += elapsed

    async def _run_one(self, sql: str, args: Args, fetch: bool) -> Any:
        """One statement as a transaction of its own: its rows if `fetch`, else its rowcount.

        An engine that can run a lone statement more cheaply than a
        transaction of one overrides this.
        """

        async def run(txn: Transaction) -> Any:
            return await (txn.fetchall(sql, args) if fetch else txn.execute(sql, args))

        return await self._run(run)

    async def execute(self, desc: str, sql: str, *args: Any) -> int:
        rowcount: int = await self._timed(desc, self._run_one(sql, args, False))
        return rowcount

    async def fetchall(self, desc: str, sql: str, *args: Any) -> list[Row]:
        rows: list[Row] = await self._timed(desc, self._run_one(sql, args, True))
        return rows

    async def fetchone(self, desc: str, sql: str, *args: Any) -> Row | None:
        rows = await self.fetchall(desc, sql, *args)
        return rows[0] if rows else None

    async def fetchval(self, desc: str, sql: str, *args: Any) -> Any:
        row = await self.fetchone(desc, sql, *args)
        return None if row is None else row[0]

    def start_txn_logging(self, clock: Clock) -> None:
        self._stats_call = clock.looping_call(self.log_txn_stats, TXN_LOG_INTERVAL_S)

    def log_txn_stats(self) -> None:
        now = time.monotonic()
        interval = max(now - self._interval_started, 1e-9)
        stats, self._txn_stats = self._txn_stats, {}
        self._interval_started = now
        if not logger.isEnabledFor(logging.DEBUG):
            return
        total = sum(s[1] for s in stats.values())
        top = sorted(stats.items(), key=lambda kv: kv[1][1], reverse=True)[:5]
        parts = ", ".join(
            f"{name}({int(count)}): {100 * spent / interval:.3f}%" for name, (count, spent) in top
        )
        logger.debug("Total database time: %.3f%% {%s}", 100 * total / interval, parts)
