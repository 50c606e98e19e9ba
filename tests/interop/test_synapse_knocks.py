"""Knocks, restricted joins and room version 12 against a real Synapse
1.163.2, both ways: make_knock / send_knock, a resident server vouching
for a restricted join with its own signature, and a v12 room ID (no server
part) joined through `via`."""

from __future__ import annotations

import asyncio
import secrets
from typing import Any
from urllib.parse import quote

from hamlet.handlers.rooms.sender import Sender
from tests.interop.synapse import Synapse
from tests.interop.test_synapse_transport import HamletServer, eventually, hamlet, hamlet_tls

__all__ = ["hamlet", "hamlet_tls"]

CS = "/_matrix/client/v3"


class SynapseUser:
    """A user registered on the session's Synapse, under a name of this run's own."""

    def __init__(self, synapse: Synapse, user_id: str, token: str) -> None:
        self.synapse = synapse
        self.user_id = user_id
        self.token = token

    async def call(self, method: str, path: str, body: Any = None) -> Any:
        status, answer = await asyncio.to_thread(
            self.synapse.client, method, CS + path, body, self.token
        )
        assert status == 200, (status, answer)
        return answer

    async def status_of(self, method: str, path: str, body: Any = None) -> int:
        status, _ = await asyncio.to_thread(
            self.synapse.client, method, CS + path, body, self.token
        )
        return int(status)

    async def room(self, **body: Any) -> str:
        room_id: str = (await self.call("POST", "/createRoom", body))["room_id"]
        return room_id


async def synapse_user(synapse: Synapse) -> SynapseUser:
    body = {
        "username": f"sy{secrets.token_hex(4)}",
        "password": "interop-pw-1",
        "auth": {"type": "m.login.dummy"},
    }
    status, reg = await asyncio.to_thread(synapse.client, "POST", f"{CS}/register", body)
    assert status == 200, reg
    return SynapseUser(synapse, reg["user_id"], reg["access_token"])


def restricted(*allowed: str) -> dict[str, Any]:
    content = {
        "join_rule": "restricted",
        "allow": [{"type": "m.room_membership", "room_id": r} for r in allowed],
    }
    return {"type": "m.room.join_rules", "content": content}


async def hamlet_user(hamlet: HamletServer) -> str:
    hs = hamlet.hs
    hs.federation_sender.attach_transport(hs.federation_client)
    return await hs.registration.register_user(f"h{secrets.token_hex(4)}")


async def hamlet_join(hamlet: HamletServer, user_id: str, target: str, via: list[str]) -> None:
    joins = hamlet.hs.federation_joins
    located = await joins.locate(target, via)
    assert located is not None
    await joins.join(user_id, *located)


async def test_a_hamlet_user_knocks_on_a_synapse_v12_room(
    hamlet: HamletServer, synapse: Synapse
) -> None:
    owner = await synapse_user(synapse)
    room = await owner.room(
        room_version="12",
        name="Knock here",
        initial_state=[{"type": "m.room.join_rules", "content": {"join_rule": "knock"}}],
    )
    assert ":" not in room
    user_id = await hamlet_user(hamlet)
    hs = hamlet.hs
    located = await hs.federation_joins.locate(room, [synapse.server_name])
    assert located is not None
    event_id = await hs.federation_knocks.knock(
        user_id, *located, {"membership": "knock", "reason": "hello"}
    )
    member = await owner.call("GET", f"/rooms/{quote(room)}/state/m.room.member/{user_id}")
    assert member["membership"] == "knock" and member["reason"] == "hello"
    # Our user's /sync shows the room with what Synapse answered.
    membership = await hs.rooms_store.get_membership(room, user_id)
    assert membership is not None and membership.event_id == event_id
    shown = await hs.rooms_store.get_out_of_band_state(event_id)
    assert shown is not None
    types = {e["type"] for e in shown}
    assert {"m.room.create", "m.room.join_rules", "m.room.name"} <= types


async def test_a_hamlet_user_joins_a_synapse_v12_room_by_id_with_via(
    hamlet: HamletServer, synapse: Synapse
) -> None:
    owner = await synapse_user(synapse)
    room = await owner.room(room_version="12", preset="public_chat")
    user_id = await hamlet_user(hamlet)
    hs = hamlet.hs
    # No server in the room ID, none given: nobody to ask.
    assert await hs.federation_joins.locate(room, []) == (room, [])
    await hamlet_join(hamlet, user_id, room, [synapse.server_name])
    joined = await owner.call("GET", f"/rooms/{quote(room)}/joined_members")
    assert set(joined["joined"]) == {owner.user_id, user_id}

    # The creator's power (v12: from the create event, which is the room ID)
    # lets them set the topic; we accept it.
    await owner.call("PUT", f"/rooms/{quote(room)}/state/m.room.topic", {"topic": "v12 works"})

    async def our_topic() -> list[str]:
        event = await hs.room_state.get_current_state_event(room, "m.room.topic", "")
        return [str(event.content.get("topic"))] if event is not None else []

    assert await eventually(our_topic, lambda topics: topics == ["v12 works"])
    text = {"msgtype": "m.text", "body": "hello v12"}
    await hs.event_pipeline.send(Sender.server(user_id), room, "m.room.message", text)

    async def their_bodies() -> list[str]:
        page = await owner.call("GET", f"/rooms/{quote(room)}/messages?dir=b&limit=20")
        return [e["content"].get("body", "") for e in page["chunk"]]

    assert await eventually(their_bodies, lambda bodies: "hello v12" in bodies)


async def test_a_hamlet_user_joins_a_synapse_restricted_room(
    hamlet: HamletServer, synapse: Synapse
) -> None:
    owner = await synapse_user(synapse)
    space = await owner.room(room_version="10", preset="public_chat")
    club = await owner.room(
        room_version="10", preset="private_chat", initial_state=[restricted(space)]
    )
    user_id = await hamlet_user(hamlet)
    await hamlet_join(hamlet, user_id, space, [synapse.server_name])
    await hamlet_join(hamlet, user_id, club, [synapse.server_name])
    joined = await owner.call("GET", f"/rooms/{quote(club)}/joined_members")
    assert set(joined["joined"]) == {owner.user_id, user_id}
    member = await hamlet.hs.room_state.get_current_state_event(club, "m.room.member", user_id)
    assert member is not None
    assert member.content["join_authorised_via_users_server"] == owner.user_id
    assert set(member.signatures) == {hamlet.server_name, synapse.server_name}


async def test_a_synapse_user_knocks_on_and_joins_restricted_hamlet_rooms(
    hamlet: HamletServer, synapse: Synapse
) -> None:
    owner = await hamlet_user(hamlet)
    pipeline = hamlet.hs.event_pipeline
    knock_rules = {"type": "m.room.join_rules", "content": {"join_rule": "knock"}}
    made = await pipeline.create_room(
        Sender.server(owner),
        {"preset": "private_chat", "name": "Ours", "initial_state": [knock_rules]},
    )
    knock_room = made["room_id"]
    space = (await pipeline.create_room(Sender.server(owner), {"preset": "public_chat"}))["room_id"]
    club_body = {"preset": "private_chat", "initial_state": [restricted(space)]}
    club = (await pipeline.create_room(Sender.server(owner), club_body))["room_id"]
    guest = await synapse_user(synapse)
    via = f"?via={quote(hamlet.server_name)}"

    await guest.call("POST", f"/knock/{quote(knock_room)}{via}", {"reason": "from synapse"})
    member = await hamlet.hs.room_state.get_current_state_event(
        knock_room, "m.room.member", guest.user_id
    )
    assert member is not None and member.content["membership"] == "knock"

    # Not yet in the allowed room: we refuse, Synapse passes it on.
    assert await guest.status_of("POST", f"/join/{quote(club)}{via}", {}) == 403
    await guest.call("POST", f"/join/{quote(space)}{via}", {})
    await guest.call("POST", f"/join/{quote(club)}{via}", {})
    member = await hamlet.hs.room_state.get_current_state_event(
        club, "m.room.member", guest.user_id
    )
    assert member is not None and member.content["membership"] == "join"
    assert member.content["join_authorised_via_users_server"] == owner
    joined = await guest.call("GET", f"/rooms/{quote(club)}/joined_members")
    assert set(joined["joined"]) == {owner, guest.user_id}
