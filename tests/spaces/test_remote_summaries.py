"""What is kept of another server's `/hierarchy` answer (hostile input)."""

from __future__ import annotations

from typing import Any

from hamlet.handlers.spaces.remote import MAX_CHILDREN, MAX_TEXT, parse_answer

SPACE = "!space:remote.test"
V12_ROOM = "!AbCdEfGhIjKlMnOpQrStUvWxYz0123456789abcdefg"


def child(room_id: str, **content: Any) -> dict[str, Any]:
    content.setdefault("via", ["remote.test"])
    return {
        "type": "m.space.child",
        "state_key": room_id,
        "content": content,
        "sender": "@owner:remote.test",
        "origin_server_ts": 5,
    }


def test_a_well_formed_answer_is_kept_with_v12_room_ids() -> None:
    raw = {
        "room": {
            "room_id": SPACE,
            "name": "Space",
            "room_type": "m.space",
            "num_joined_members": 3,
            "world_readable": True,
            "children_state": [child("!b:remote.test", order="b"), child(V12_ROOM, order="a")],
        },
        "children": [{"room_id": V12_ROOM, "name": "Child", "join_rule": "public"}],
        "inaccessible_children": ["!b:remote.test"],
    }
    answer = parse_answer(SPACE, raw, suggested_only=False)
    assert answer is not None
    assert [c.room_id for c in answer.room.children] == [V12_ROOM, "!b:remote.test"]
    assert answer.children[V12_ROOM].summary["name"] == "Child"
    assert answer.inaccessible == {"!b:remote.test"}
    summary = answer.room.client_summary()
    assert summary["world_readable"] is True and summary["guest_can_join"] is False


def test_garbage_is_dropped() -> None:
    assert parse_answer(SPACE, [], suggested_only=False) is None
    assert parse_answer(SPACE, {"room": {"room_id": "!other:x.test"}}, False) is None
    raw = {
        "room": {
            "room_id": SPACE,
            "name": "x" * (MAX_TEXT + 1),
            "topic": 5,
            "num_joined_members": True,
            "room_type": "m.space",
            "children_state": [
                child("!ok:remote.test", suggested=True, extra="dropped"),
                child("not a room"),
                child("!noVia:remote.test", via=[]),
                {"type": "m.space.parent", "state_key": "!p:remote.test"},
                "junk",
                *[child(f"!c{i}:remote.test") for i in range(MAX_CHILDREN + 10)],
            ],
        },
        # A child summary the space does not list, and junk.
        "children": [{"room_id": "!stranger:remote.test"}, None],
        "inaccessible_children": [7, "!unlisted:remote.test"],
    }
    answer = parse_answer(SPACE, raw, suggested_only=False)
    assert answer is not None
    room = answer.room.summary
    assert "name" not in room and "topic" not in room and room["num_joined_members"] == 0
    assert room["children_state"][0]["content"] == {"via": ["remote.test"], "suggested": True}
    assert len(room["children_state"]) == MAX_CHILDREN - 4
    assert answer.children == {} and answer.inaccessible == frozenset()
    suggested = parse_answer(SPACE, raw, suggested_only=True)
    assert suggested is not None
    assert [c.room_id for c in suggested.room.children] == ["!ok:remote.test"]
