"""Invites across two tenants: /invite v2 both ways, the invitee's /sync,
accepting by joining over federation, and invites the invited server must
refuse."""

from __future__ import annotations

from typing import Any

import pytest

from hamlet.core.events import Event, build_event
from hamlet.core.room_versions import get_room_version
from hamlet.handlers.federation.invites import MAX_INVITE_STATE
from tests.conftest import settle
from tests.federation.inbound_support import client, signed_request, sync
from tests.federation.memberships_support import invited_room, membership, ok
from tests.federation.two_servers import V2, A, B, h
from tests.support.federation import HarnessTransport
from tests.support.harness import Harness
from tests.support.users import make_user

__all__ = ["h"]

INVITE = f"{V2}/invite"


async def test_invite_then_join_over_federation(h: Harness, transport: HarnessTransport) -> None:
    bob = await make_user(h, "bob", host=B)
    alice = await make_user(h, "alice", host=A)
    room = (await ok(h, B, "POST", "/createRoom", bob, {"preset": "private_chat", "name": "Den"}))[
        "room_id"
    ]
    await ok(h, B, "POST", f"/rooms/{room}/invite", bob, {"user_id": alice.user_id})
    await settle()
    # The invitee's server got it through /invite once, not through /send.
    assert transport.count("PUT", A, f"{INVITE}/{room}/") == 1
    assert transport.count("PUT", A, "/_matrix/federation/v1/send/") == 0
    assert await membership(h, B, bob, room, alice.user_id) == "invite"

    state = await invited_room(h, A, alice, room)
    by_type = {e["type"]: e for e in state}
    assert by_type["m.room.name"]["content"] == {"name": "Den"}
    assert "m.room.create" in by_type
    own = state[-1]
    assert own["type"] == "m.room.member" and own["state_key"] == alice.user_id
    assert own["content"]["membership"] == "invite" and own["sender"] == bob.user_id
    # Sliding sync lists it with the same stripped state.
    ss = await h.request(
        "POST",
        "/_matrix/client/unstable/org.matrix.simplified_msc3575/sync",
        json={"lists": {"all": {"ranges": [[0, 10]], "timeline_limit": 1}}},
        token=alice.token,
        host=A,
    )
    assert ss.status == 200, ss.json
    assert ss.json["rooms"][room]["invite_state"][-1]["state_key"] == alice.user_id

    # Accepting: a join over federation through the inviting server.
    await ok(h, A, "POST", f"/rooms/{room}/join", alice)
    await settle()
    assert await membership(h, B, bob, room, alice.user_id) == "join"
    assert await membership(h, A, alice, room, alice.user_id) == "join"
    assert await invited_room(h, A, alice, room) == []
    assert room in (await sync(h, A, alice))["rooms"]["join"]


async def test_invite_is_refused_by_the_invitee_server(h: Harness) -> None:
    bob = await make_user(h, "bob", host=B)
    room = (await ok(h, B, "POST", "/createRoom", bob, {"preset": "private_chat"}))["room_id"]
    nobody = await client(h, B, "POST", f"/rooms/{room}/invite", bob, {"user_id": "@ghost:a.test"})
    assert nobody.status == 404, nobody.json
    # Nothing was stored on either side.
    members = await client(h, B, "GET", f"/rooms/{room}/members", bob)
    assert [m["state_key"] for m in members.json["chunk"]] == [bob.user_id]


def _invite_pdu(
    h: Harness, invitee: str, *, sender: str = "@bob:b.test", version: str = "10"
) -> Event:
    return build_event(
        get_room_version(version),
        room_id="!den:b.test",
        sender=sender,
        type="m.room.member",
        content={"membership": "invite"},
        state_key=invitee,
        prev_events=["$prev"],
        auth_events=["$create", "$power", "$bob"],
        depth=5,
        origin_server_ts=1_700_000_000_000,
        server_name=B,
        signing_key=h.servers[B].signing_key,
    )


async def _put_invite(h: Harness, event: Event, body: dict[str, Any]) -> Any:
    path = f"{INVITE}/{event.room_id}/{event.event_id}"
    return await signed_request(h, B, A, "PUT", path, content=body)


async def test_invite_endpoint_answers_signed_and_shows_in_sync(h: Harness) -> None:
    alice = await make_user(h, "alice", host=A)
    event = _invite_pdu(h, alice.user_id)
    stripped = [
        {"type": "m.room.name", "state_key": "", "content": {"name": "x"}, "sender": "@bob:b.test"},
        "not an event",
    ]
    body = {
        "room_version": "10",
        "event": event.get_pdu_json(include_unsigned=False),
        "invite_room_state": stripped,
    }
    resp = await _put_invite(h, event, body)
    assert resp.status == 200, resp.json
    assert set(resp.json["event"]["signatures"]) == {A, B}
    again = await _put_invite(h, event, body)
    assert again.status == 200, again.json
    state = await invited_room(h, A, alice, event.room_id)
    assert [e["type"] for e in state] == ["m.room.name", "m.room.member"]


@pytest.mark.parametrize(
    ("case", "status", "errcode"),
    [
        ("bad_signature", 400, "M_INVALID_PARAM"),
        ("not_local", 400, "M_INVALID_PARAM"),
        ("unknown_user", 404, "M_NOT_FOUND"),
        ("deactivated", 403, "M_FORBIDDEN"),
        ("sender_elsewhere", 400, "M_INVALID_PARAM"),
        ("not_invite", 400, "M_INVALID_PARAM"),
        ("unsupported_version", 400, "M_INCOMPATIBLE_ROOM_VERSION"),
        ("too_much_state", 400, "M_INVALID_PARAM"),
        ("wrong_path", 400, "M_INVALID_PARAM"),
    ],
)
async def test_invites_that_must_be_refused(
    h: Harness, case: str, status: int, errcode: str
) -> None:
    alice = await make_user(h, "alice", host=A)
    invitee = {"not_local": "@alice:b.test", "unknown_user": "@ghost:a.test"}.get(
        case, alice.user_id
    )
    if case == "deactivated":
        await h.servers[A].account_store.set_deactivated(alice.user_id, True)
    sender = "@eve:c.test" if case == "sender_elsewhere" else "@bob:b.test"
    event = _invite_pdu(h, invitee, sender=sender)
    pdu = event.get_pdu_json(include_unsigned=False)
    body: dict[str, Any] = {"room_version": "10", "event": pdu, "invite_room_state": []}
    path_event = event
    if case == "bad_signature":
        pdu["content"] = {"membership": "invite", "displayname": "tampered"}
        pdu["hashes"] = event.get_pdu_json()["hashes"]
        path_event = Event(pdu, event.room_version)
    elif case == "not_invite":
        path_event = build_event(
            get_room_version("10"),
            room_id=event.room_id,
            sender=sender,
            type="m.room.member",
            content={"membership": "join"},
            state_key=alice.user_id,
            prev_events=["$prev"],
            auth_events=["$create"],
            depth=5,
            origin_server_ts=1,
            server_name=B,
            signing_key=h.servers[B].signing_key,
        )
        body["event"] = path_event.get_pdu_json(include_unsigned=False)
    elif case == "unsupported_version":
        body["room_version"] = "99"
    elif case == "too_much_state":
        body["invite_room_state"] = [
            {"type": "m.room.topic", "state_key": "", "content": {}, "sender": sender}
        ] * (MAX_INVITE_STATE + 1)
    path = f"{INVITE}/{event.room_id}/{path_event.event_id}"
    if case == "wrong_path":
        path = f"{INVITE}/!other:b.test/{event.event_id}"
    resp = await signed_request(h, B, A, "PUT", path, content=body)
    assert (resp.status, resp.json.get("errcode")) == (status, errcode), resp.json
    assert await h.servers[A].rooms_store.get_membership(event.room_id, alice.user_id) is None


async def test_invite_to_a_room_we_are_in_comes_through_send(h: Harness) -> None:
    bob = await make_user(h, "bob", host=B)
    carol = await make_user(h, "carol", host=A)
    alice = await make_user(h, "alice", host=A)
    room = (await ok(h, B, "POST", "/createRoom", bob, {"preset": "public_chat"}))["room_id"]
    await ok(h, A, "POST", f"/join/{room}", carol)
    await ok(h, B, "POST", f"/rooms/{room}/invite", bob, {"user_id": alice.user_id})
    state = await invited_room(h, A, alice, room)
    assert state[-1]["content"]["membership"] == "invite"
    assert await membership(h, A, carol, room, alice.user_id) == "invite"
    # Accepting is a join of a room we are in: made here, sent to B.
    await ok(h, A, "POST", f"/rooms/{room}/join", alice)
    await settle()
    assert await membership(h, B, bob, room, alice.user_id) == "join"
