"""A user of one tenant knocks on another tenant's room over federation
(make_knock / send_knock, every request signed and checked): the knock
shows in the knocker's /sync with the room's stripped state, and to the
room's members, who can then refuse it; bad knocks are Matrix errors."""

from __future__ import annotations

from typing import Any
from urllib.parse import quote

from hamlet.core.room_versions import get_room_version
from tests.federation.inbound_support import client, signed_request, sync
from tests.federation.two_servers import V1, A, B, h
from tests.support.federation import HarnessTransport
from tests.support.harness import Harness
from tests.support.users import TestUser, make_user

__all__ = ["h"]

KNOCK_RULES = {"type": "m.room.join_rules", "content": {"join_rule": "knock"}}


async def _knock_room(h: Harness, owner: TestUser, **extra: Any) -> str:
    body = {"preset": "private_chat", "name": "Knock knock", "initial_state": [KNOCK_RULES]}
    resp = await client(h, B, "POST", "/createRoom", owner, {**body, **extra})
    assert resp.status == 200, resp.json
    room: str = resp.json["room_id"]
    return room


def _by_type(events: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    return {e["type"]: e for e in events if e["type"] != "m.room.member"}


async def test_a_knock_reaches_the_room_and_the_knockers_sync(h: Harness) -> None:
    bob = await make_user(h, "bob", host=B)
    alice = await make_user(h, "alice", host=A)
    await client(h, A, "PUT", f"/profile/{alice.user_id}/displayname", alice, {"displayname": "Al"})
    room = await _knock_room(h, bob)
    since_a = (await sync(h, A, alice))["next_batch"]
    since_b = (await sync(h, B, bob))["next_batch"]

    knocked = await client(
        h, A, "POST", f"/knock/{quote(room)}?via={B}", alice, {"reason": "let me in"}
    )
    assert knocked.status == 200, knocked.json
    assert knocked.json == {"room_id": room}

    # Alice's server lists the room under `knock` with what b.test told it.
    rooms = (await sync(h, A, alice, since_a))["rooms"]
    events = rooms["knock"][room]["knock_state"]["events"]
    shown = _by_type(events)
    assert shown["m.room.join_rules"]["content"]["join_rule"] == "knock"
    assert shown["m.room.name"]["content"]["name"] == "Knock knock"
    assert shown["m.room.create"]["sender"] == bob.user_id
    own = events[-1]
    assert own["type"] == "m.room.member" and own["state_key"] == alice.user_id
    assert own["content"] == {"membership": "knock", "displayname": "Al", "reason": "let me in"}
    assert room not in rooms.get("join", {})
    # An initial sync lists it too (the membership is stored, not only announced).
    assert room in (await sync(h, A, alice))["rooms"]["knock"]

    # Bob sees the knock as his room's state and in his timeline.
    member = await client(h, B, "GET", f"/rooms/{room}/state/m.room.member/{alice.user_id}", bob)
    assert member.json["membership"] == "knock"
    assert member.json["reason"] == "let me in"
    timeline = (await sync(h, B, bob, since_b))["rooms"]["join"][room]["timeline"]["events"]
    assert [e["content"]["membership"] for e in timeline if e["type"] == "m.room.member"] == [
        "knock"
    ]
    # ... and may refuse it. (Accepting is an invite to another server's
    # user, which needs /invite over federation: not part of this change.)
    denied = await client(
        h, B, "POST", f"/rooms/{room}/kick", bob, {"user_id": alice.user_id, "reason": "no"}
    )
    assert denied.status == 200, denied.json
    member = await client(h, B, "GET", f"/rooms/{room}/state/m.room.member/{alice.user_id}", bob)
    assert member.json["membership"] == "leave"


async def test_knocks_that_must_fail(h: Harness) -> None:
    bob = await make_user(h, "bob", host=B)
    alice = await make_user(h, "alice", host=A)
    public = (await client(h, B, "POST", "/createRoom", bob, {"preset": "public_chat"})).json[
        "room_id"
    ]
    # A public room takes no knocks: b.test's 403 reaches alice's client.
    refused = await client(h, A, "POST", f"/knock/{quote(public)}?via={B}", alice, {})
    assert (refused.status, refused.json["errcode"]) == (403, "M_FORBIDDEN")
    assert (await sync(h, A, alice))["rooms"]["knock"] == {}
    # A room of a server that does not exist, and a v12-style room ID that
    # names no server, with no `via` to ask.
    nowhere = await client(h, A, "POST", f"/knock/{quote('!nothing:nowhere.test')}", alice, {})
    assert nowhere.status in (404, 502), nowhere.json
    no_via = await client(h, A, "POST", f"/knock/{quote('!' + 'x' * 43)}", alice, {})
    assert (no_via.status, no_via.json["errcode"]) == (404, "M_NOT_FOUND")
    bad_reason = await client(
        h, A, "POST", f"/knock/{quote(public)}?via={B}", alice, {"reason": 12}
    )
    assert (bad_reason.status, bad_reason.json["errcode"]) == (400, "M_BAD_JSON")


async def test_make_knock_and_send_knock_refuse_bad_requests(
    h: Harness, transport: HarnessTransport
) -> None:
    bob = await make_user(h, "bob", host=B)
    alice = "@alice:a.test"
    room = await _knock_room(h, bob)
    old = await _knock_room(h, bob, room_version="10")

    async def make(room_id: str, user_id: str, query: str) -> tuple[int, str]:
        resp = await signed_request(h, A, B, "GET", f"{V1}/make_knock/{room_id}/{user_id}{query}")
        return resp.status, resp.json.get("errcode", "")

    assert await make(room, alice, "") == (400, "M_MISSING_PARAM")
    assert await make(old, alice, "?ver=6") == (400, "M_INCOMPATIBLE_ROOM_VERSION")
    assert await make(room, bob.user_id, "?ver=10&ver=11") == (403, "M_FORBIDDEN")
    assert await make("!unknown:b.test", alice, "?ver=10") == (404, "M_NOT_FOUND")

    ok = await signed_request(h, A, B, "GET", f"{V1}/make_knock/{room}/{alice}?ver=10&ver=11")
    assert ok.status == 200, ok.json
    template = ok.json["event"]
    assert template["content"] == {"membership": "knock"}
    assert template["sender"] == alice

    async def send(event_id: str, content: Any) -> tuple[int, str]:
        resp = await signed_request(
            h, A, B, "PUT", f"{V1}/send_knock/{room}/{event_id}", content=content
        )
        return resp.status, resp.json.get("errcode", "")

    assert (await send("$x", [1]))[0] == 400
    assert (await send("$x", {"type": "m.room.member"}))[0] == 400
    # A well-formed event, but not the one the path names.
    assert (await send("$other", {**template, "hashes": {}, "signatures": {}}))[0] == 400
    # Nothing reached the room.
    members = await client(h, B, "GET", f"/rooms/{room}/members", bob)
    assert {e["state_key"] for e in members.json["chunk"]} == {bob.user_id}


async def test_send_knock_answers_full_pdus_create_first(h: Harness) -> None:
    bob = await make_user(h, "bob", host=B)
    alice = await make_user(h, "alice", host=A)
    room = await _knock_room(h, bob, topic="About")
    made = await signed_request(
        h, A, B, "GET", f"{V1}/make_knock/{room}/{alice.user_id}?ver=10&ver=11"
    )
    assert made.status == 200, made.json
    version = get_room_version(made.json["room_version"])
    builder = h.servers[A].federation_joins.membership_events
    event = builder.build(version, alice.user_id, room, made.json["event"], {"membership": "knock"})
    sent = await signed_request(
        h,
        A,
        B,
        "PUT",
        f"{V1}/send_knock/{room}/{event.event_id}",
        content=event.get_pdu_json(include_unsigned=False),
    )
    assert sent.status == 200, sent.json
    state = sent.json["knock_room_state"]
    assert state[0]["type"] == "m.room.create"
    assert {e["type"] for e in state} == {
        "m.room.create",
        "m.room.join_rules",
        "m.room.name",
        "m.room.topic",
    }
    assert all(e["room_id"] == room and B in e["signatures"] for e in state)


async def test_knock_state_with_forged_entries(h: Harness, transport: HarnessTransport) -> None:
    """Full PDUs of the answer must be signed and hashed as they claim;
    stripped ones (servers before spec v1.16) are shown as they come."""
    bob = await make_user(h, "bob", host=B)
    alice = await make_user(h, "alice", host=A)
    room = await _knock_room(h, bob, topic="Real topic")
    since = (await sync(h, A, alice))["next_batch"]

    def forge(destination: str, path: str, answer: Any) -> Any:
        if "/send_knock/" not in path:
            return answer
        state = []
        for pdu in answer["knock_room_state"]:
            if pdu["type"] == "m.room.name":
                pdu = {**pdu, "content": {"name": "Forged"}}
            state.append(pdu)
        stripped = {"type": "m.room.avatar", "state_key": "", "sender": bob.user_id}
        junk: list[Any] = [
            7,
            {"type": "m.room.topic"},
            {**stripped, "content": {"url": "mxc://b/x"}},
        ]
        return {"knock_room_state": [*state, *junk]}

    transport.tamper = forge
    knocked = await client(h, A, "POST", f"/knock/{quote(room)}?via={B}", alice, {})
    assert knocked.status == 200, knocked.json
    events = (await sync(h, A, alice, since))["rooms"]["knock"][room]["knock_state"]["events"]
    shown = _by_type(events)
    assert "m.room.name" not in shown
    assert shown["m.room.topic"]["content"] == {"topic": "Real topic"}
    assert shown["m.room.avatar"]["content"] == {"url": "mxc://b/x"}
    assert set(shown) == {"m.room.create", "m.room.join_rules", "m.room.topic", "m.room.avatar"}
