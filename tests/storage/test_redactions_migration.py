"""Migrations 0022-0023 index the redactions already stored by the event they name."""

from __future__ import annotations

from pathlib import Path

import orjson

from hamlet.storage.database import Database
from hamlet.storage.migrations import migrate
from tests.storage.conftest import schema_before

REDACTION = "m.room.redaction"


async def test_stored_redactions_are_indexed(db: Database, tmp_path: Path) -> None:
    await migrate(db, schema_before(tmp_path, 22))
    for room_id, version in (("!v10:hs", "10"), ("!v11:hs", "11")):
        await db.execute(
            "room",
            "INSERT INTO rooms (room_id, room_version, creator, created_ts) VALUES (?, ?, ?, ?)",
            room_id,
            version,
            "@a:hs",
            1,
        )
    events = [
        # (event ID, room, type, PDU fields, rejected)
        ("$r10", "!v10:hs", REDACTION, {"redacts": "$m10", "content": {"redacts": "$no"}}, None),
        ("$r11", "!v11:hs", REDACTION, {"redacts": "$no", "content": {"redacts": "$m11"}}, None),
        ("$bad", "!v11:hs", REDACTION, {"content": {"redacts": 5}}, None),
        ("$rej", "!v11:hs", REDACTION, {"content": {"redacts": "$m11"}}, "denied"),
        ("$msg", "!v11:hs", "m.room.message", {"content": {"redacts": "$m11"}}, None),
    ]
    for stream, (event_id, room_id, event_type, fields, rejected) in enumerate(events, 1):
        pdu = {"type": event_type, "room_id": room_id, "sender": "@a:hs", **fields}
        await db.execute(
            "event",
            "INSERT INTO dag_events (stream_ordering, event_id, room_id, type, sender, depth,"
            " origin_server_ts, json, rejected_reason) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
            stream,
            event_id,
            room_id,
            event_type,
            "@a:hs",
            stream,
            1,
            orjson.dumps(pdu).decode(),
            rejected,
        )
    await migrate(db)
    rows = await db.fetchall(
        "redactions",
        "SELECT event_id, redacts, room_id, sender, sender_may_redact FROM redactions"
        " ORDER BY event_id",
    )
    assert [tuple(r) for r in rows] == [
        ("$r10", "$m10", "!v10:hs", "@a:hs", False),
        ("$r11", "$m11", "!v11:hs", "@a:hs", False),
    ]
