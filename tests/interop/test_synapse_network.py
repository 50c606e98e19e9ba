"""Against a real Synapse 1.163.2: restricted rooms whose allow list names a
space held by the other server (both ways), and presence over federation
honouring `presence.enabled` on a Hamlet tenant."""

from __future__ import annotations

from urllib.parse import quote

from hamlet.handlers.common.errors import MatrixError
from hamlet.handlers.rooms.sender import Sender
from tests.interop.synapse import Synapse
from tests.interop.test_synapse_knocks import hamlet_join, hamlet_user, restricted, synapse_user
from tests.interop.test_synapse_transport import (
    HamletServer,
    MakeConfig,
    eventually,
    hamlet,
    hamlet_tls,
    recording_profile_queries,
    running_hamlet,
)
from tests.support.tls import SelfSigned

__all__ = ["hamlet", "hamlet_tls"]

SPACE = {"type": "m.space"}


async def _join_status(hamlet: HamletServer, user_id: str, room: str, via: list[str]) -> int:
    """Join as the client API does (locally when we are in the room); the status answered."""
    hs = hamlet.hs
    try:
        remote = await hs.federation_joins.locate(room, via)
        if remote is None:
            await hs.event_pipeline.update_membership(Sender.server(user_id), room, user_id, "join")
        else:
            await hs.federation_joins.join(user_id, *remote)
    except MatrixError as e:
        return e.status
    return 200


async def test_a_hamlet_room_restricted_to_a_synapse_space(
    hamlet: HamletServer, synapse: Synapse
) -> None:
    owner = await synapse_user(synapse)
    space = await owner.room(room_version="10", preset="public_chat", creation_content=SPACE)
    alice = await hamlet_user(hamlet)
    await hamlet_join(hamlet, alice, space, [synapse.server_name])
    made = await hamlet.hs.event_pipeline.create_room(
        Sender.server(alice),
        {"preset": "private_chat", "room_version": "10", "initial_state": [restricted(space)]},
    )
    club = made["room_id"]
    bob = await hamlet_user(hamlet)
    # We hold the space through Synapse: bob is not in it.
    assert await _join_status(hamlet, bob, club, []) == 403
    assert await _join_status(hamlet, bob, space, [synapse.server_name]) == 200
    assert await _join_status(hamlet, bob, club, []) == 200
    member = await hamlet.hs.room_state.get_current_state_event(club, "m.room.member", bob)
    assert member is not None and member.content["membership"] == "join"

    async def space_members() -> set[str]:
        joined = await owner.call("GET", f"/rooms/{quote(space)}/joined_members")
        return set(joined["joined"])

    # Bob joined the space through us (we are resident): Synapse hears of it.
    assert await eventually(space_members, lambda m: m == {owner.user_id, alice, bob})


async def test_a_synapse_room_restricted_to_a_hamlet_space(
    hamlet: HamletServer, synapse: Synapse
) -> None:
    alice = await hamlet_user(hamlet)
    pipeline = hamlet.hs.event_pipeline
    space_body = {"preset": "public_chat", "room_version": "10", "creation_content": SPACE}
    space = (await pipeline.create_room(Sender.server(alice), space_body))["room_id"]
    owner = await synapse_user(synapse)
    await owner.call("POST", f"/join/{quote(space)}?via={quote(hamlet.server_name)}", {})
    club = await owner.room(
        room_version="10", preset="private_chat", initial_state=[restricted(space)]
    )
    bob = await hamlet_user(hamlet)
    assert await _join_status(hamlet, bob, club, [synapse.server_name]) == 403
    # Synapse vouches with its copy of the space's members.
    assert await _join_status(hamlet, alice, club, [synapse.server_name]) == 200
    joined = await owner.call("GET", f"/rooms/{quote(club)}/joined_members")
    assert set(joined["joined"]) == {owner.user_id, alice}
    member = await hamlet.hs.room_state.get_current_state_event(club, "m.room.member", alice)
    assert member is not None
    assert member.content["join_authorised_via_users_server"] == owner.user_id


async def test_presence_over_federation_honours_presence_enabled(
    make_hs_config: MakeConfig, hamlet_tls: SelfSigned, synapse: Synapse
) -> None:
    async with (
        running_hamlet(make_hs_config, hamlet_tls, recording_profile_queries) as on,
        running_hamlet(
            make_hs_config, hamlet_tls, recording_profile_queries, presence={"enabled": False}
        ) as off,
    ):
        owner = await synapse_user(synapse)
        room = await owner.room(room_version="10", preset="public_chat")
        users = {}
        for server in (on, off):
            users[server.server_name] = await hamlet_user(server)
            await hamlet_join(server, users[server.server_name], room, [synapse.server_name])
        for server in (on, off):
            await server.hs.presence.set_presence(
                users[server.server_name], users[server.server_name], "online", "from hamlet"
            )
        await owner.call(
            "PUT",
            f"/presence/{quote(owner.user_id)}/status",
            {"presence": "online", "status_msg": "from synapse"},
        )

        async def seen_by_synapse(server: HamletServer) -> object:
            path = f"/presence/{quote(users[server.server_name])}/status"
            return (await owner.call("GET", path)).get("status_msg")

        async def seen_by(server: HamletServer) -> list[str | None]:
            user_id = users[server.server_name]
            updates = await server.hs.presence.get_updates(user_id, 0)
            return [s.status_msg for s in updates.states if s.user_id == owner.user_id]

        # The control first, so the absence below is not just slowness.
        assert await eventually(lambda: seen_by_synapse(on), lambda msg: msg == "from hamlet")
        assert await eventually(lambda: seen_by(on), lambda msgs: msgs == ["from synapse"])
        assert await seen_by_synapse(off) is None
        assert await seen_by(off) == []
        # Not just hidden from reads: nothing of either user is kept.
        assert off.hs.presence.memory_usage() == 0
