"""Leaves, rejections, kicks and bans across two tenants: make_leave /
send_leave v2 as the resident server, rejecting an invite through the
inviting server (or alone when it is down), leaving a remote room, and
kicks and bans of remote users in both directions."""

from __future__ import annotations

from collections.abc import Awaitable
from typing import Any

import pytest

from hamlet.core.events import build_event
from hamlet.core.room_versions import get_room_version
from tests.conftest import settle
from tests.federation.conftest import StartServers
from tests.federation.inbound_support import client, sync
from tests.federation.memberships_support import attach_senders, invited_room, membership, ok
from tests.federation.two_servers import V1, V2, A, B, h
from tests.support.federation import HarnessTransport, RemoteError
from tests.support.harness import Harness
from tests.support.users import TestUser, make_user

__all__ = ["h"]

SEND = "/_matrix/federation/v1/send/"


async def _invited(h: Harness) -> tuple[TestUser, TestUser, str]:
    """bob of B invites alice of A to his new private room."""
    bob = await make_user(h, "bob", host=B)
    alice = await make_user(h, "alice", host=A)
    room = (await ok(h, B, "POST", "/createRoom", bob, {"preset": "private_chat"}))["room_id"]
    await ok(h, B, "POST", f"/rooms/{room}/invite", bob, {"user_id": alice.user_id})
    assert await invited_room(h, A, alice, room)
    return bob, alice, str(room)


async def _refused(request: Awaitable[Any]) -> int | None:
    with pytest.raises(RemoteError) as refused:
        await request
    return refused.value.status


async def _joined(h: Harness) -> tuple[TestUser, TestUser, str]:
    """alice of A has joined bob of B's new public room."""
    bob = await make_user(h, "bob", host=B)
    alice = await make_user(h, "alice", host=A)
    room = (await ok(h, B, "POST", "/createRoom", bob, {"preset": "public_chat"}))["room_id"]
    await ok(h, A, "POST", f"/join/{room}", alice)
    return bob, alice, str(room)


def _left(body: dict, room: str) -> list[dict]:
    left = body.get("rooms", {}).get("leave", {}).get(room)
    return list(left["timeline"]["events"]) if left else []


async def test_reject_invite_through_the_inviting_server(
    h: Harness, transport: HarnessTransport
) -> None:
    bob, alice, room = await _invited(h)
    since = (await sync(h, A, alice))["next_batch"]
    await ok(h, A, "POST", f"/rooms/{room}/leave", alice, {"reason": "no thanks"})
    assert transport.count("PUT", B, f"{V2}/send_leave/{room}/") == 1
    await settle()
    assert await membership(h, B, bob, room, alice.user_id) == "leave"
    assert await invited_room(h, A, alice, room) == []
    after = await sync(h, A, alice, since)
    assert room in after["rooms"]["leave"]
    # Invited again, she can still join.
    await ok(h, B, "POST", f"/rooms/{room}/invite", bob, {"user_id": alice.user_id})
    assert await invited_room(h, A, alice, room)
    await ok(h, A, "POST", f"/join/{room}", alice)
    assert await membership(h, B, bob, room, alice.user_id) == "join"


async def test_reject_invite_when_the_inviter_is_down(
    h: Harness, transport: HarnessTransport
) -> None:
    bob, alice, room = await _invited(h)
    transport.down.add(B)
    await ok(h, A, "POST", f"/rooms/{room}/leave", alice)
    # Rejected here alone: gone from her invites all the same.
    assert await invited_room(h, A, alice, room) == []
    transport.down.discard(B)
    assert await membership(h, B, bob, room, alice.user_id) == "invite"


async def test_deactivation_rejects_remote_invites(h: Harness) -> None:
    bob, alice, room = await _invited(h)
    await h.servers[A].deactivation.deactivate(alice.user_id, erase=False)
    assert await membership(h, B, bob, room, alice.user_id) == "leave"


async def test_make_and_send_leave_refuse_bad_input(
    h: Harness, transport: HarnessTransport
) -> None:
    bob, alice, room = await _invited(h)
    out = transport.signed_by(A, h.servers[A].signing_key)
    assert await _refused(out.get_json(B, f"{V1}/make_leave/{room}/{bob.user_id}")) == 403
    assert (
        await _refused(out.get_json(B, f"{V1}/make_leave/!nowhere:b.test/{alice.user_id}")) == 404
    )
    template = await out.get_json(B, f"{V1}/make_leave/{room}/{alice.user_id}")
    assert template["event"]["content"] == {"membership": "leave"}
    # A join sent to send_leave, and a leave whose path names another event.
    t = template["event"]
    join = build_event(
        get_room_version(template["room_version"]),
        room_id=room,
        sender=alice.user_id,
        type="m.room.member",
        content={"membership": "join"},
        state_key=alice.user_id,
        prev_events=t["prev_events"],
        auth_events=t["auth_events"],
        depth=t["depth"],
        origin_server_ts=t["origin_server_ts"],
        server_name=A,
        signing_key=h.servers[A].signing_key,
    )
    pdu = join.get_pdu_json(include_unsigned=False)
    assert await _refused(out.put_json(B, f"{V2}/send_leave/{room}/{join.event_id}", pdu)) == 403
    assert await _refused(out.put_json(B, f"{V2}/send_leave/{room}/$other", pdu)) == 400
    assert await membership(h, B, bob, room, alice.user_id) == "invite"


async def test_leave_a_remote_room(h: Harness, transport: HarnessTransport) -> None:
    bob, alice, room = await _joined(h)
    await ok(h, A, "POST", f"/rooms/{room}/leave", alice)
    await settle()
    # The last local member's leave still reaches the room's server ...
    assert await membership(h, B, bob, room, alice.user_id) == "leave"
    # ... which then stops sending us the room.
    sent = transport.count("PUT", A, SEND)
    await ok(h, B, "PUT", f"/rooms/{room}/send/m.room.message/t1", bob, {"body": "x"})
    await settle()
    assert transport.count("PUT", A, SEND) == sent


async def test_kick_and_ban_of_a_remote_user(h: Harness) -> None:
    bob, alice, room = await _joined(h)
    since = (await sync(h, A, alice))["next_batch"]
    await ok(h, B, "POST", f"/rooms/{room}/kick", bob, {"user_id": alice.user_id, "reason": "r"})
    await settle()
    body = await sync(h, A, alice, since)
    kicks = [e for e in _left(body, room) if e["type"] == "m.room.member"]
    assert kicks[-1]["content"]["membership"] == "leave"
    assert kicks[-1]["sender"] == bob.user_id
    await ok(h, A, "POST", f"/join/{room}", alice)
    since = (await sync(h, A, alice))["next_batch"]
    await ok(h, B, "POST", f"/rooms/{room}/ban", bob, {"user_id": alice.user_id})
    await settle()
    body = await sync(h, A, alice, since)
    assert _left(body, room)[-1]["content"]["membership"] == "ban"
    refused = await client(h, A, "POST", f"/join/{room}", alice, {})
    assert refused.status == 403, refused.json


async def test_remote_admin_kicks_and_bans_local_users(h: Harness) -> None:
    alice = await make_user(h, "alice", host=A)
    carol = await make_user(h, "carol", host=A)
    bob = await make_user(h, "bob", host=B)
    room = (await ok(h, A, "POST", "/createRoom", alice, {"preset": "public_chat"}))["room_id"]
    await ok(h, A, "POST", f"/join/{room}", carol)
    await ok(h, B, "POST", f"/join/{room}", bob)
    levels = await ok(h, A, "GET", f"/rooms/{room}/state/m.room.power_levels/", alice)
    levels["users"][bob.user_id] = 100
    await ok(h, A, "PUT", f"/rooms/{room}/state/m.room.power_levels/", alice, levels)
    await settle()
    since = (await sync(h, A, carol))["next_batch"]
    await ok(h, B, "POST", f"/rooms/{room}/kick", bob, {"user_id": carol.user_id})
    await settle()
    assert _left(await sync(h, A, carol, since), room)[-1]["content"]["membership"] == "leave"
    assert await membership(h, A, alice, room, carol.user_id) == "leave"
    await ok(h, B, "POST", f"/rooms/{room}/ban", bob, {"user_id": carol.user_id})
    await settle()
    assert await membership(h, A, alice, room, carol.user_id) == "ban"
    refused = await client(h, A, "POST", f"/join/{room}", carol, {})
    assert refused.status == 403, refused.json


async def test_kicked_from_a_private_room_then_invited_back(h: Harness) -> None:
    """Our copy of the room is stale once no local user is in it: the new
    join goes through the room's server and its state becomes ours."""
    bob, alice, room = await _invited(h)
    await ok(h, A, "POST", f"/join/{room}", alice)
    await ok(h, B, "POST", f"/rooms/{room}/kick", bob, {"user_id": alice.user_id})
    await settle()
    await ok(h, B, "PUT", f"/rooms/{room}/state/m.room.topic/", bob, {"topic": "while away"})
    await ok(h, B, "POST", f"/rooms/{room}/invite", bob, {"user_id": alice.user_id})
    assert await invited_room(h, A, alice, room)
    await ok(h, A, "POST", f"/join/{room}", alice)
    await settle()
    assert await membership(h, B, bob, room, alice.user_id) == "join"
    assert await membership(h, A, alice, room, alice.user_id) == "join"
    topic = await ok(h, A, "GET", f"/rooms/{room}/state/m.room.topic/", alice)
    assert topic == {"topic": "while away"}


async def test_a_room_we_left_is_not_served(h: Harness, transport: HarnessTransport) -> None:
    """Once its last local member leaves, our copy of the room is stale:
    we no longer answer make_join / make_leave for it."""
    alice = await make_user(h, "alice", host=A)
    bob = await make_user(h, "bob", host=B)
    room = (await ok(h, A, "POST", "/createRoom", alice, {"preset": "public_chat"}))["room_id"]
    await ok(h, B, "POST", f"/join/{room}", bob)
    await ok(h, A, "POST", f"/rooms/{room}/leave", alice)
    await settle()
    assert await membership(h, B, bob, room, alice.user_id) == "leave"
    out = transport.signed_by(B, h.servers[B].signing_key)
    assert (
        await _refused(out.get_json(A, f"{V1}/make_join/{room}/{bob.user_id}", {"ver": ["10"]}))
        == 403
    )
    assert await _refused(out.get_json(A, f"{V1}/make_leave/{room}/{bob.user_id}")) == 403


async def test_joins_and_leaves_through_us_reach_the_other_servers(
    make_hs_config: Any, start_servers: StartServers, transport: HarnessTransport
) -> None:
    """As the resident server we relay another server's send_join and
    send_leave to the room's other servers (the sender knows only us)."""
    c = "c.test"
    h = await start_servers(make_hs_config(A), make_hs_config(B), make_hs_config(c))
    attach_senders(h, transport)
    bob = await make_user(h, "bob", host=B)
    carol = await make_user(h, "carol", host=c)
    alice = await make_user(h, "alice", host=A)
    room = (await ok(h, B, "POST", "/createRoom", bob, {"preset": "public_chat"}))["room_id"]
    await ok(h, c, "POST", f"/join/{room}", carol)
    await ok(h, A, "POST", f"/join/{room}?server_name={B}", alice)
    await settle()
    assert await membership(h, c, carol, room, alice.user_id) == "join"
    # Once alice left, A is out of the room: an invite of A's dan is
    # rejected through B (send_leave), and C hears of it from B.
    await ok(h, A, "POST", f"/rooms/{room}/leave", alice)
    dan = await make_user(h, "dan", host=A)
    await ok(h, B, "POST", f"/rooms/{room}/invite", bob, {"user_id": dan.user_id})
    assert await invited_room(h, A, dan, room)
    await ok(h, A, "POST", f"/rooms/{room}/leave", dan)
    await settle()
    assert transport.count("PUT", B, f"{V2}/send_leave/{room}/") == 1
    assert await membership(h, c, carol, room, dan.user_id) == "leave"
