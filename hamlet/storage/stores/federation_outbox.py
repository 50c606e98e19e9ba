"""The federation sender's tables: destinations' retry state, queued PDUs and
EDUs, and the newest event per (destination, room) that catch-up sends."""

from __future__ import annotations

from collections.abc import Collection, Sequence
from dataclasses import dataclass
from typing import Final

import orjson

from hamlet.storage.database import Database, Row, Transaction

DESTINATION_ORDERS: Final = (
    "destination",
    "retry_last_ts",
    "retry_interval",
    "failure_ts",
    "last_successful_stream_ordering",
)
_DESTINATION_COLUMNS = ", ".join(DESTINATION_ORDERS)


@dataclass(frozen=True, slots=True)
class DestinationRow:
    destination: str
    retry_last_ts: int = 0
    retry_interval: int = 0
    failure_ts: int | None = None
    last_successful_stream_ordering: int | None = None


@dataclass(frozen=True, slots=True)
class QueuedPdu:
    stream_ordering: int
    event_id: str


@dataclass(frozen=True, slots=True)
class QueuedEdu:
    edu_type: str
    key: str
    position: int
    content: str  # JSON


@dataclass(frozen=True, slots=True)
class LocalEvent:
    stream_ordering: int
    event_id: str
    room_id: str
    sender: str
    type: str
    state_key: str | None
    #: For member events, the membership they set.
    membership: str | None = None


def _membership(raw: str | None) -> str | None:
    if raw is None:
        return None
    content = orjson.loads(raw).get("content")
    membership = content.get("membership") if isinstance(content, dict) else None
    return membership if isinstance(membership, str) else None


def _destination(row: Row) -> DestinationRow:
    return DestinationRow(
        str(row[0]),
        int(row[1]),
        int(row[2]),
        None if row[3] is None else int(row[3]),
        None if row[4] is None else int(row[4]),
    )


def _escape_like(text: str) -> str:
    return text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


class FederationOutboxStore:
    def __init__(self, db: Database) -> None:
        self.db = db

    # --- destinations ---

    async def get_destination(self, destination: str) -> DestinationRow | None:
        row = await self.db.fetchone(
            "get_destination",
            f"SELECT {_DESTINATION_COLUMNS} FROM destinations WHERE destination = ?",
            destination,
        )
        return None if row is None else _destination(row)

    async def list_destinations(
        self, start: int, limit: int, order_by: str, backwards: bool, search: str | None
    ) -> tuple[list[DestinationRow], int]:
        if order_by not in DESTINATION_ORDERS:
            raise ValueError(f"cannot order destinations by {order_by!r}")
        where, args = "", []
        if search:
            where = " WHERE destination LIKE ? ESCAPE '\\'"
            args.append(f"%{_escape_like(search)}%")
        direction = "DESC" if backwards else "ASC"
        # NULLs sort as the smallest value on both engines.
        nulls = "NULLS LAST" if backwards else "NULLS FIRST"
        rows = await self.db.fetchall(
            "list_destinations",
            f"SELECT {_DESTINATION_COLUMNS} FROM destinations{where}"
            f" ORDER BY {order_by} {direction} {nulls}, destination {direction}"
            " LIMIT ? OFFSET ?",
            *args,
            limit,
            start,
        )
        total = await self.db.fetchval(
            "count_destinations", f"SELECT COUNT(*) FROM destinations{where}", *args
        )
        return [_destination(r) for r in rows], int(total)

    async def set_retry_timings(
        self, destination: str, failure_ts: int | None, retry_last_ts: int, retry_interval: int
    ) -> None:
        await self.db.execute(
            "set_destination_retry_timings",
            "INSERT INTO destinations (destination, failure_ts, retry_last_ts, retry_interval)"
            " VALUES (?, ?, ?, ?) ON CONFLICT (destination) DO UPDATE SET"
            " failure_ts = excluded.failure_ts, retry_last_ts = excluded.retry_last_ts,"
            " retry_interval = excluded.retry_interval",
            destination,
            failure_ts,
            retry_last_ts,
            retry_interval,
        )

    async def record_success(
        self,
        destination: str,
        stream_ordering: int | None,
        pdu_orderings: Collection[int],
        edus: Collection[QueuedEdu],
    ) -> None:
        """A transaction went through: drop what it carried, clear the backoff
        and move `last_successful_stream_ordering` forward, in one transaction."""

        async def run(txn: Transaction) -> None:
            await txn.execute(
                "INSERT INTO destinations (destination, last_successful_stream_ordering)"
                " VALUES (?, ?) ON CONFLICT (destination) DO UPDATE SET"
                " retry_last_ts = 0, retry_interval = 0, failure_ts = NULL,"
                " last_successful_stream_ordering = CASE"
                " WHEN excluded.last_successful_stream_ordering IS NULL"
                " THEN destinations.last_successful_stream_ordering"
                " WHEN destinations.last_successful_stream_ordering IS NULL"
                " OR destinations.last_successful_stream_ordering"
                " < excluded.last_successful_stream_ordering"
                " THEN excluded.last_successful_stream_ordering"
                " ELSE destinations.last_successful_stream_ordering END",
                (destination, stream_ordering),
            )
            if pdu_orderings:
                await txn.executemany(
                    "DELETE FROM federation_outbox_pdus"
                    " WHERE destination = ? AND stream_ordering = ?",
                    [(destination, so) for so in pdu_orderings],
                )
            if edus:
                # A newer EDU under the same key (a later position) stays queued.
                await txn.executemany(
                    "DELETE FROM federation_outbox_edus WHERE destination = ?"
                    " AND edu_type = ? AND edu_key = ? AND position = ?",
                    [(destination, e.edu_type, e.key, e.position) for e in edus],
                )

        await self.db.run_interaction("federation_record_success", run)

    async def destinations_with_work(self) -> list[str]:
        """Destinations with anything queued or a room ahead of what they took."""
        rows = await self.db.fetchall(
            "destinations_with_work",
            "SELECT destination FROM federation_outbox_pdus"
            " UNION SELECT destination FROM federation_outbox_edus"
            " UNION SELECT r.destination FROM destination_rooms r"
            " LEFT JOIN destinations d ON d.destination = r.destination"
            " WHERE d.last_successful_stream_ordering IS NULL"
            " OR r.stream_ordering > d.last_successful_stream_ordering",
        )
        return sorted(str(r[0]) for r in rows)

    # --- queueing ---

    async def queue_pdus(
        self,
        rooms: Sequence[tuple[str, int, str, Collection[str]]],
        queued_for: Collection[str],
    ) -> None:
        """For each (room, stream ordering, event id, destinations): remember
        it as the room's newest event for each destination, and queue the PDU
        for those in `queued_for` (the others are catching up)."""

        async def run(txn: Transaction) -> None:
            room_rows = []
            pdu_rows = []
            for room_id, so, event_id, destinations in rooms:
                for destination in destinations:
                    room_rows.append((destination, room_id, so, event_id))
                    if destination in queued_for:
                        pdu_rows.append((destination, so, event_id))
            # A destination is listed (admin API) from its first queued event on.
            await txn.executemany(
                "INSERT INTO destinations (destination) VALUES (?) ON CONFLICT DO NOTHING",
                [(d,) for d in sorted({row[0] for row in room_rows})],
            )
            await txn.executemany(
                "INSERT INTO destination_rooms (destination, room_id, stream_ordering, event_id)"
                " VALUES (?, ?, ?, ?) ON CONFLICT (destination, room_id) DO UPDATE SET"
                " stream_ordering = excluded.stream_ordering, event_id = excluded.event_id",
                room_rows,
            )
            if pdu_rows:
                await txn.executemany(
                    "INSERT INTO federation_outbox_pdus (destination, stream_ordering, event_id)"
                    " VALUES (?, ?, ?) ON CONFLICT DO NOTHING",
                    pdu_rows,
                )

        await self.db.run_interaction("federation_queue_pdus", run)

    async def get_queued_pdus(self, destination: str, limit: int) -> list[QueuedPdu]:
        rows = await self.db.fetchall(
            "get_queued_pdus",
            "SELECT stream_ordering, event_id FROM federation_outbox_pdus"
            " WHERE destination = ? ORDER BY stream_ordering LIMIT ?",
            destination,
            limit,
        )
        return [QueuedPdu(int(r[0]), str(r[1])) for r in rows]

    async def drop_queued_pdus(self, destination: str) -> None:
        await self.db.execute(
            "drop_queued_pdus",
            "DELETE FROM federation_outbox_pdus WHERE destination = ?",
            destination,
        )

    async def get_catch_up_pdus(
        self, destination: str, after: int | None, limit: int
    ) -> list[QueuedPdu]:
        """The newest queued event of each room the destination has not taken, oldest first."""
        rows = await self.db.fetchall(
            "get_catch_up_pdus",
            "SELECT stream_ordering, event_id FROM destination_rooms"
            " WHERE destination = ? AND stream_ordering > ? ORDER BY stream_ordering LIMIT ?",
            destination,
            -1 if after is None else after,
            limit,
        )
        return [QueuedPdu(int(r[0]), str(r[1])) for r in rows]

    async def queue_edus(
        self, destinations: Collection[str], edu_type: str, key: str, position: int, content: str
    ) -> None:
        await self.db.run_interaction(
            "federation_queue_edus",
            lambda txn: txn.executemany(
                "INSERT INTO federation_outbox_edus"
                " (destination, edu_type, edu_key, position, content) VALUES (?, ?, ?, ?, ?)"
                " ON CONFLICT (destination, edu_type, edu_key) DO UPDATE SET"
                " position = excluded.position, content = excluded.content",
                [(d, edu_type, key, position, content) for d in destinations],
            ),
        )

    async def get_queued_edus(self, destination: str, limit: int) -> list[QueuedEdu]:
        rows = await self.db.fetchall(
            "get_queued_edus",
            "SELECT edu_type, edu_key, position, content FROM federation_outbox_edus"
            " WHERE destination = ? ORDER BY position LIMIT ?",
            destination,
            limit,
        )
        return [QueuedEdu(str(r[0]), str(r[1]), int(r[2]), str(r[3])) for r in rows]

    async def max_edu_position(self) -> int:
        value = await self.db.fetchval(
            "max_federation_edu_position", "SELECT MAX(position) FROM federation_outbox_edus"
        )
        return int(value or 0)

    async def trim_edus(self, destination: str, keep: int) -> None:
        """Keep only the newest `keep` EDUs of a destination."""
        await self.db.execute(
            "trim_federation_edus",
            "DELETE FROM federation_outbox_edus WHERE destination = ? AND position <= ("
            " SELECT position FROM federation_outbox_edus WHERE destination = ?"
            " ORDER BY position DESC LIMIT 1 OFFSET ?)",
            destination,
            destination,
            keep,
        )

    # --- rooms ---

    async def list_destination_rooms(
        self, destination: str, start: int, limit: int, backwards: bool
    ) -> tuple[list[tuple[str, int]], int]:
        direction = "DESC" if backwards else "ASC"
        rows = await self.db.fetchall(
            "list_destination_rooms",
            "SELECT room_id, stream_ordering FROM destination_rooms WHERE destination = ?"
            f" ORDER BY room_id {direction} LIMIT ? OFFSET ?",
            destination,
            limit,
            start,
        )
        total = await self.db.fetchval(
            "count_destination_rooms",
            "SELECT COUNT(*) FROM destination_rooms WHERE destination = ?",
            destination,
        )
        return [(str(r[0]), int(r[1])) for r in rows], int(total)

    async def room_members(self, room_id: str) -> list[tuple[str, str, int]]:
        rows = await self.db.fetchall(
            "federation_room_members",
            "SELECT user_id, membership, stream_ordering FROM room_memberships WHERE room_id = ?",
            room_id,
        )
        return [(str(r[0]), str(r[1]), int(r[2])) for r in rows]

    async def get_events_in_rooms(
        self, room_ids: Collection[str], after: int, upto: int
    ) -> list[LocalEvent]:
        """Events of these rooms with `after < stream_ordering <= upto`, in order."""
        if not room_ids:
            return []
        marks = ",".join("?" * len(room_ids))
        rows = await self.db.fetchall(
            "federation_events_in_rooms",
            "SELECT stream_ordering, event_id, room_id, sender, type, state_key,"
            " CASE WHEN type = 'm.room.member' THEN json END FROM events"
            f" WHERE room_id IN ({marks}) AND stream_ordering > ? AND stream_ordering <= ?"
            " ORDER BY stream_ordering",
            *room_ids,
            after,
            upto,
        )
        return [
            LocalEvent(
                int(r[0]), str(r[1]), str(r[2]), str(r[3]), str(r[4]), r[5], _membership(r[6])
            )
            for r in rows
        ]
