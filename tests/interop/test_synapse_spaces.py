"""Spaces and server ACLs against a real Synapse 1.163.2: each server's
client `/hierarchy` shows a child room living only on the other (through
the federation `/hierarchy`), and an ACL in a Hamlet room denying Synapse
makes Hamlet refuse Synapse's next message there."""

from __future__ import annotations

import asyncio
import secrets
from collections.abc import AsyncIterator
from typing import Any
from urllib.parse import quote

import pytest

from hamlet.handlers.rooms.sender import Sender
from tests.interop import test_synapse_transport as transport_tests
from tests.interop.synapse import Synapse
from tests.interop.test_synapse_transport import HamletServer, eventually
from tests.support.harness import RecordingHandler

# The Hamlet tenant on a TLS federation listener, as the transport tests run it.
hamlet_tls = transport_tests.hamlet_tls
hamlet = transport_tests.hamlet

MESSAGE = "m.room.message"
CLIENT_V3 = "/_matrix/client/v3"


class SynapseUser:
    def __init__(self, synapse: Synapse, token: str, user_id: str) -> None:
        self.synapse, self.token, self.user_id = synapse, token, user_id

    async def call(self, method: str, path: str, body: Any = None) -> Any:
        status, answer = await asyncio.to_thread(
            self.synapse.client, method, path, body, self.token
        )
        assert status == 200, (method, path, status, answer)
        return answer


@pytest.fixture
async def sy(synapse: Synapse) -> AsyncIterator[SynapseUser]:
    name = f"spaces{secrets.token_hex(4)}"
    body = {"username": name, "password": "interop-pw-1", "auth": {"type": "m.login.dummy"}}
    status, reg = await asyncio.to_thread(synapse.client, "POST", f"{CLIENT_V3}/register", body)
    assert status == 200, reg
    yield SynapseUser(synapse, reg["access_token"], reg["user_id"])


async def _hamlet_room(hamlet: HamletServer, user_id: str, **body: Any) -> str:
    created = await hamlet.hs.event_pipeline.create_room(Sender.server(user_id), body)
    room_id: str = created["room_id"]
    return room_id


async def test_hierarchies_across_servers(
    hamlet: HamletServer, synapse: Synapse, sy: SynapseUser
) -> None:
    hs = hamlet.hs
    alice = await hs.registration.register_user("spacer")
    # A Hamlet space whose child lives only on Synapse.
    remote_room = (
        await sy.call(
            "POST", f"{CLIENT_V3}/createRoom", {"preset": "public_chat", "name": "Synapse side"}
        )
    )["room_id"]
    space = await _hamlet_room(
        hamlet,
        alice,
        preset="public_chat",
        name="Hamlet space",
        creation_content={"type": "m.space"},
    )
    await hs.event_pipeline.send(
        Sender.server(alice),
        space,
        "m.space.child",
        {"via": [synapse.server_name]},
        state_key=remote_room,
    )
    answer = await hs.spaces.get_hierarchy(alice, space)
    rooms = {r["room_id"]: r for r in answer["rooms"]}
    assert list(rooms) == [space, remote_room]
    assert rooms[remote_room]["name"] == "Synapse side"
    assert rooms[remote_room]["num_joined_members"] == 1
    assert rooms[remote_room]["join_rule"] == "public"

    # A Synapse space whose child lives only on Hamlet.
    local_room = await _hamlet_room(hamlet, alice, preset="public_chat", name="Hamlet side")
    sy_space = (
        await sy.call(
            "POST",
            f"{CLIENT_V3}/createRoom",
            {
                "preset": "public_chat",
                "name": "Synapse space",
                "creation_content": {"type": "m.space"},
            },
        )
    )["room_id"]
    await sy.call(
        "PUT",
        f"{CLIENT_V3}/rooms/{quote(sy_space)}/state/m.space.child/{quote(local_room)}",
        {"via": [hamlet.server_name]},
    )
    seen = await sy.call("GET", f"/_matrix/client/v1/rooms/{quote(sy_space)}/hierarchy")
    theirs = {r["room_id"]: r for r in seen["rooms"]}
    assert set(theirs) == {sy_space, local_room}
    assert theirs[local_room]["name"] == "Hamlet side"
    assert theirs[local_room]["num_joined_members"] == 1


async def test_an_acl_denying_synapse_refuses_its_messages(
    hamlet: HamletServer, synapse: Synapse, sy: SynapseUser, log_records: RecordingHandler
) -> None:
    hs = hamlet.hs
    hs.federation_sender.attach_transport(hs.federation_client)
    owner = await hs.registration.register_user("aclowner")
    room = await _hamlet_room(hamlet, owner, preset="public_chat", room_version="10")
    joined = await sy.call(
        "POST", f"{CLIENT_V3}/join/{quote(room)}?server_name={quote(hamlet.server_name)}", {}
    )
    assert joined["room_id"] == room
    path = f"{CLIENT_V3}/rooms/{quote(room)}/send/{MESSAGE}"

    async def our_bodies() -> list[str]:
        events = await hs.room_history_store.get_room_events(
            room, after=None, before=None, limit=20, backwards=True
        )
        return [str(e.event.content.get("body")) for e in events if e.event.type == MESSAGE]

    await sy.call("PUT", f"{path}/before", {"msgtype": "m.text", "body": "before the acl"})
    assert await eventually(our_bodies, lambda bodies: "before the acl" in bodies)

    # Both servers are IP literals on loopback: the ACL names the host, and
    # only inbound traffic is judged, so it shuts out Synapse alone.
    await hs.event_pipeline.send(
        Sender.server(owner),
        room,
        "m.room.server_acl",
        {"allow": ["*"], "deny": ["127.0.0.1"]},
        state_key="",
    )
    assert not await hs.server_acls.allows(synapse.server_name, room)
    sent = await sy.call("PUT", f"{path}/after", {"msgtype": "m.text", "body": "after the acl"})

    # Hamlet answers Synapse's transaction with an error for the PDU.
    refusal = f"PDU {sent['event_id']} from {synapse.server_name} refused by the ACL"

    async def refused() -> list[str]:
        return [r.getMessage() for r in log_records.matching(refusal)]

    assert await eventually(refused, bool)
    assert "after the acl" not in await our_bodies()
