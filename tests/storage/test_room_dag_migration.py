"""Migration 0010 turns stored linear rooms into DAG rows on both engines."""

from __future__ import annotations

from pathlib import Path

import orjson

from hamlet.storage.database import Database
from hamlet.storage.migrations import migrate
from tests.storage.conftest import schema_before


async def test_existing_events_get_edges_auth_edges_and_an_extremity(
    db: Database, tmp_path: Path
) -> None:
    before = schema_before(tmp_path, 10)
    assert await migrate(db, before) == 9
    await db.execute(
        "room",
        "INSERT INTO rooms (room_id, room_version, creator, created_ts) VALUES (?, ?, ?, ?)",
        "!r:hs",
        "10",
        "@a:hs",
        1,
    )
    chain = [
        ("$create", [], []),
        ("$join", ["$create"], ["$create"]),
        ("$msg", ["$join"], ["$create", "$join"]),
    ]
    for n, (event_id, prevs, auths) in enumerate(chain, start=1):
        pdu = {"prev_events": prevs, "auth_events": auths, "type": "t", "content": {}}
        await db.execute(
            "event",
            "INSERT INTO events (stream_ordering, event_id, room_id, type, sender, depth,"
            " origin_server_ts, state_group, json) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
            n,
            event_id,
            "!r:hs",
            "t",
            "@a:hs",
            n,
            n,
            1,
            orjson.dumps(pdu).decode(),
        )

    assert await migrate(db) >= 10
    edges = await db.fetchall("e", "SELECT event_id, prev_event_id FROM event_edges ORDER BY 1")
    assert sorted((str(a), str(b)) for a, b in edges) == [("$join", "$create"), ("$msg", "$join")]
    auth = await db.fetchall("a", "SELECT event_id, auth_id FROM event_auth")
    assert sorted((str(a), str(b)) for a, b in auth) == [
        ("$join", "$create"),
        ("$msg", "$create"),
        ("$msg", "$join"),
    ]
    extremities = await db.fetchall("x", "SELECT room_id, event_id FROM event_forward_extremities")
    assert [(str(a), str(b)) for a, b in extremities] == [("!r:hs", "$msg")]
    timeline = await db.fetchall("t", "SELECT event_id FROM events ORDER BY stream_ordering")
    assert [str(r[0]) for r in timeline] == ["$create", "$join", "$msg"]
