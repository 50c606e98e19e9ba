"""Stream id allocation for streams whose rows live in the database.

A stream's position must survive a restart, so the generator starts from
the highest id already stored and counts up in memory from there (one
process writes each tenant's database). Ids are handed out in order but
their transactions may commit out of order; `current()` is therefore the
highest id below which every allocated id has finished, so a reader that
reads up to `current()` never skips a row that is still being written.
"""

from __future__ import annotations

import contextlib
import heapq
from collections.abc import Iterator

from hamlet.storage.database import Database, Transaction

# High-water marks of streams whose rows get deleted (to-device messages):
# without it, deleting the newest rows would let ids go backwards on restart.
POSITIONS_TABLE = "stream_positions"


class StreamIdGenerator:
    def __init__(self, name: str) -> None:
        self.name = name
        self._last = 0  # last id handed out
        self._current = 0  # every id <= this has finished
        self._pending: list[int] = []  # heap of unfinished ids
        self._finished: set[int] = set()  # finished ids above a pending one

    async def load(self, db: Database, table: str, column: str) -> None:
        """Start from the highest id in `table.column` (or a recorded high-water mark)."""

        # One statement (one round trip): every wake of a tenant loads each stream.
        row = await db.fetchone(
            f"load_stream_id_{self.name}",
            f"SELECT (SELECT MAX({column}) FROM {table}),"
            f" (SELECT position FROM {POSITIONS_TABLE} WHERE stream_name = ?)",
            self.name,
        )
        highest, mark = row if row is not None else (None, None)
        top = max(int(highest or 0), int(mark or 0))
        if self._pending:
            raise RuntimeError(f"stream {self.name} reloaded while ids are pending")
        self._last = self._current = max(top, self._last)

    def next(self) -> int:
        """Allocate the next id; call `finish(id)` once its write committed or failed."""
        self._last += 1
        heapq.heappush(self._pending, self._last)
        return self._last

    def finish(self, stream_id: int) -> None:
        if not self._pending or self._pending[0] != stream_id:
            self._finished.add(stream_id)
            return
        heapq.heappop(self._pending)
        self._current = stream_id
        while self._pending and self._pending[0] in self._finished:
            done = heapq.heappop(self._pending)
            self._finished.discard(done)
            self._current = done
        if not self._pending:
            self._current = self._last

    @contextlib.contextmanager
    def allocate(self) -> Iterator[int]:
        """`with gen.allocate() as stream_id:` write the row; finished on exit."""
        stream_id = self.next()
        try:
            yield stream_id
        finally:
            self.finish(stream_id)

    def current(self) -> int:
        """The position readers may read up to: no unfinished id at or below it."""
        return self._current

    # A StreamProvider's view of this generator.
    def current_position(self) -> int:
        return self._current


async def record_high_water_mark(txn: Transaction, stream_name: str, position: int) -> None:
    """Remember `position` for a stream whose rows up to it are being deleted."""
    await txn.execute(
        f"INSERT INTO {POSITIONS_TABLE} (stream_name, position) VALUES (?, ?)"
        " ON CONFLICT (stream_name) DO UPDATE SET position ="
        f" CASE WHEN excluded.position > {POSITIONS_TABLE}.position"
        f" THEN excluded.position ELSE {POSITIONS_TABLE}.position END",
        (stream_name, position),
    )
