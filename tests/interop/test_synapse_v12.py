"""A room version 12 room Hamlet made, joined by real Synapse 1.163.2
users by ID with `via` and by alias; messages and state flow both ways."""

from __future__ import annotations

from typing import Any
from urllib.parse import quote

from hamlet.handlers.rooms.sender import Sender
from tests.interop.synapse import Synapse
from tests.interop.test_synapse_knocks import hamlet_user, synapse_user
from tests.interop.test_synapse_transport import HamletServer, eventually, hamlet, hamlet_tls

__all__ = ["hamlet", "hamlet_tls"]


async def test_synapse_users_join_a_hamlet_v12_room(hamlet: HamletServer, synapse: Synapse) -> None:
    owner = await hamlet_user(hamlet)
    hs = hamlet.hs
    pipeline = hs.event_pipeline
    alias_name = f"v12{owner[2:10]}"
    body = {"room_version": "12", "preset": "public_chat", "room_alias_name": alias_name}
    room = (await pipeline.create_room(Sender.server(owner), body))["room_id"]
    assert ":" not in room
    by_id, by_alias = await synapse_user(synapse), await synapse_user(synapse)

    via = f"?via={quote(hamlet.server_name)}"
    await by_id.call("POST", f"/join/{quote(room)}{via}", {})
    alias = f"#{alias_name}:{hamlet.server_name}"
    joined = await by_alias.call("POST", f"/join/{quote(alias)}", {})
    assert joined["room_id"] == room
    members = await by_alias.call("GET", f"/rooms/{quote(room)}/joined_members")
    assert set(members["joined"]) == {owner, by_id.user_id, by_alias.user_id}
    create = await by_id.call("GET", f"/rooms/{quote(room)}/state/m.room.create")
    assert create["room_version"] == "12"

    text = {"msgtype": "m.text", "body": "from synapse"}
    await by_id.call("PUT", f"/rooms/{quote(room)}/send/m.room.message/s1", text)

    async def our_bodies() -> list[str]:
        events = await hs.room_history_store.get_room_events(
            room, after=None, before=None, limit=20, backwards=True
        )
        return [str(e.event.content.get("body")) for e in events]

    assert await eventually(our_bodies, lambda bodies: "from synapse" in bodies)
    text = {"msgtype": "m.text", "body": "from hamlet"}
    await pipeline.send(Sender.server(owner), room, "m.room.message", text)
    await pipeline.send(Sender.server(owner), room, "m.room.topic", {"topic": "ours"}, state_key="")

    async def their_view() -> list[str]:
        page = await by_alias.call("GET", f"/rooms/{quote(room)}/messages?dir=b&limit=30")
        return [_text_of(e) for e in page["chunk"]]

    assert await eventually(their_view, lambda seen: {"from hamlet", "ours"} <= set(seen))


def _text_of(event: Any) -> str:
    content = event.get("content", {})
    return str(content.get("body") or content.get("topic") or "")
