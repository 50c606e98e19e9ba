"""The full-text search index, written in the transactions that change events.

Kept apart from the search queries (`search.py`) so the events and purge
paths can use it without importing the readers.
"""

from __future__ import annotations

from hamlet.core.events import Event
from hamlet.core.search_query import searchable_text
from hamlet.storage.database import Transaction


def index_text(text: str) -> str:
    # PostgreSQL text cannot hold NUL, and FTS5 would read a text only up to it.
    return text.replace("\x00", " ")


async def index_event(txn: Transaction, engine: str, stream_ordering: int, event: Event) -> None:
    """Index a new event in the transaction that persists it."""
    text = searchable_text(event.type, event.content)
    if text is None:
        return
    if engine == "postgres":
        await txn.execute(
            "INSERT INTO event_search (stream_ordering, vector)"
            " VALUES (?, to_tsvector('english', ?)) ON CONFLICT DO NOTHING",
            (stream_ordering, index_text(text)),
        )
    else:
        await txn.execute(
            "INSERT INTO event_search (rowid, value) VALUES (?, ?)",
            (stream_ordering, index_text(text)),
        )


async def unindex_event(txn: Transaction, engine: str, event_id: str, room_id: str) -> None:
    """Forget a redacted event's text."""
    column = "stream_ordering" if engine == "postgres" else "rowid"
    await txn.execute(
        f"DELETE FROM event_search WHERE {column} IN"
        " (SELECT stream_ordering FROM events WHERE event_id = ? AND room_id = ?)",
        (event_id, room_id),
    )


async def unindex_room(txn: Transaction, engine: str, room_id: str) -> None:
    """Forget a purged room's texts (before its events go)."""
    column = "stream_ordering" if engine == "postgres" else "rowid"
    await txn.execute(
        f"DELETE FROM event_search WHERE {column} IN"
        " (SELECT stream_ordering FROM events WHERE room_id = ?)",
        (room_id,),
    )
