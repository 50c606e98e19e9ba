"""Where a room's DAG has holes: what federation fetches to fill them."""

from __future__ import annotations

from hamlet.storage.database import Database


class DagGapsStore:
    def __init__(self, db: Database) -> None:
        self.db = db

    async def get_backward_extremities(self, room_id: str, limit: int) -> list[str]:
        """prev_events of the room's timeline events that are not in the
        timeline themselves (missing, or only outliers): where its known
        history stops. Those named by the newest events first."""
        rows = await self.db.fetchall(
            "get_backward_extremities",
            "SELECT x.prev_event_id, MAX(e.depth) AS d FROM event_edges x"
            " JOIN dag_events e ON e.event_id = x.event_id"
            " WHERE x.room_id = ? AND NOT e.outlier AND e.rejected_reason IS NULL"
            " AND NOT EXISTS (SELECT 1 FROM dag_events p"
            " WHERE p.event_id = x.prev_event_id AND NOT p.outlier)"
            " GROUP BY x.prev_event_id ORDER BY d DESC, x.prev_event_id LIMIT ?",
            room_id,
            limit,
        )
        return [str(r[0]) for r in rows]

    async def get_min_depth(self, room_id: str) -> int | None:
        """The lowest depth of the room's timeline events (as Synapse's
        `min_depth` for /get_missing_events)."""
        value = await self.db.fetchval(
            "get_min_depth",
            "SELECT MIN(depth) FROM dag_events WHERE room_id = ? AND NOT outlier",
            room_id,
        )
        return int(value) if value is not None else None
