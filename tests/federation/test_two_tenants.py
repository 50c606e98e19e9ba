"""Two tenants of one process in one room, every federation request signed
and checked (HarnessTransport): joins by alias and by room ID with `via`,
messages both ways in one order, state changes from either side, refused
state changes, and typing, read receipts and presence both ways."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

import pytest

from hamlet.core.canonical_json import JsonDict
from tests.conftest import advance, settle
from tests.federation.conftest import StartServers
from tests.federation.inbound_support import client, ephemeral, sync
from tests.rooms.remote_support import RemoteServer
from tests.support.federation import Gate, HarnessTransport
from tests.support.harness import Harness
from tests.support.users import TestUser, make_user

A, B = "a.test", "b.test"


@dataclass
class Room:
    h: Harness
    room_id: str
    bob: TestUser  # B's user, the room's creator
    alice: TestUser  # A's user, joined over federation
    gates: dict[str, Gate]

    def user(self, host: str) -> TestUser:
        return self.alice if host == A else self.bob

    async def say(self, host: str, txn_id: str, text: str) -> str:
        body = {"msgtype": "m.text", "body": text}
        resp = await client(
            self.h, host, "PUT", f"/rooms/{self.room_id}/send/m.room.message/{txn_id}",
            self.user(host), body,
        )  # fmt: skip
        assert resp.status == 200, resp.json
        event_id: str = resp.json["event_id"]
        return event_id

    async def put_state(
        self, host: str, event_type: str, content: JsonDict, user: TestUser | None = None
    ) -> int:
        resp = await client(
            self.h, host, "PUT", f"/rooms/{self.room_id}/state/{event_type}",
            user or self.user(host), content,
        )  # fmt: skip
        return resp.status

    async def state(self, host: str, event_type: str) -> Any:
        resp = await client(
            self.h, host, "GET", f"/rooms/{self.room_id}/state/{event_type}", self.user(host)
        )
        assert resp.status == 200, (host, resp.json)
        return resp.json

    async def messages(self, host: str) -> list[str]:
        resp = await client(
            self.h, host, "GET", f"/rooms/{self.room_id}/messages?dir=b&limit=100",
            self.user(host),
        )  # fmt: skip
        assert resp.status == 200, resp.json
        chunk = resp.json["chunk"]
        return [e["content"]["body"] for e in reversed(chunk) if e["type"] == "m.room.message"]


@pytest.fixture
async def h(
    make_hs_config: Any, start_servers: StartServers, transport: HarnessTransport
) -> Harness:
    options: dict[str, Any] = {
        "presence": {"enabled": True},
        # Limits of clients and servers are tested elsewhere: here they would
        # only slow down what virtual time does not move.
        "rc_message": {"per_second": 1000, "burst_count": 1000},
        "rc_presence": {"per_user": {"per_second": 1000, "burst_count": 1000}},
        "rc_federation": {"sleep_limit": 1000, "reject_limit": 1000},
    }
    return await start_servers(make_hs_config(A, **options), make_hs_config(B, **options))


async def _open_room(h: Harness, transport: HarnessTransport, join_path: str) -> Room:
    gates = {}
    for name in (A, B):
        hs = h.servers[name]
        gates[name] = Gate(transport.signed_by(name, hs.signing_key))
        hs.federation_sender.attach_transport(gates[name])
    bob = await make_user(h, "bob", host=B)
    alice = await make_user(h, "alice", host=A)
    body = {"preset": "public_chat", "room_alias_name": "hall"}
    resp = await client(h, B, "POST", "/createRoom", bob, body)
    assert resp.status == 200, resp.json
    room_id = resp.json["room_id"]
    joined = await client(h, A, "POST", join_path.format(room=room_id), alice, {})
    assert joined.status == 200, joined.json
    assert joined.json["room_id"] == room_id
    await settle()
    return Room(h, room_id, bob, alice, gates)


@pytest.mark.parametrize(
    "join_path", [f"/join/{quote('#hall:b.test')}", "/join/{room}?via=b.test"], ids=["alias", "via"]
)
async def test_messages_flow_both_ways_in_one_order(
    h: Harness, transport: HarnessTransport, join_path: str
) -> None:
    room = await _open_room(h, transport, join_path)
    for host in (A, B):
        members = await client(
            h, host, "GET", f"/rooms/{room.room_id}/joined_members", room.user(host)
        )
        assert set(members.json["joined"]) == {room.alice.user_id, room.bob.user_id}, host
    expected = []
    for i in range(10):
        for host in (A, B):
            text = f"{host} {i}"
            await room.say(host, f"t{i}", text)
            await settle()
            expected.append(text)
    assert await room.messages(A) == expected
    assert await room.messages(B) == expected


async def test_state_changes_from_either_side_apply_on_both(
    h: Harness, transport: HarnessTransport
) -> None:
    room = await _open_room(h, transport, "/join/{room}?via=b.test")
    power = await room.state(B, "m.room.power_levels")
    power["users"][room.alice.user_id] = 50
    assert await room.put_state(B, "m.room.power_levels", power) == 200
    assert await room.put_state(B, "m.room.name", {"name": "Hall of B"}) == 200
    await settle()
    assert (await room.state(A, "m.room.power_levels"))["users"][room.alice.user_id] == 50
    assert await room.state(A, "m.room.name") == {"name": "Hall of B"}
    # With the power B granted, A's user changes the topic; B applies it.
    assert await room.put_state(A, "m.room.topic", {"topic": "set on A"}) == 200
    await settle()
    assert await room.state(B, "m.room.topic") == {"topic": "set on A"}


async def test_a_state_change_without_power_never_shows(
    h: Harness, transport: HarnessTransport
) -> None:
    room = await _open_room(h, transport, "/join/{room}?via=b.test")
    # A refuses its own user's change outright: B never hears of it.
    assert await room.put_state(A, "m.room.topic", {"topic": "coup"}) == 403
    # Forged anyway with A's key, on B's current state: B rejects it.
    remote = RemoteServer(server_name=A, key=h.servers[A].signing_key)
    forged = await remote.make(
        h.servers[B], room.room_id, room.alice.user_id, "m.room.topic",
        {"topic": "forged"}, state_key="",
    )  # fmt: skip
    out = transport.signed_by(A, h.servers[A].signing_key)
    answer = await out.put_json(
        B, "/_matrix/federation/v1/send/forged",
        {"origin": A, "origin_server_ts": 1, "pdus": [forged.get_pdu_json()], "edus": []},
    )  # fmt: skip
    assert "error" in answer["pdus"][forged.event_id]
    # Allowed when sent, refused by then: B's demotion has not reached A when
    # A's user (with power at A) changes the topic. B soft-fails it.
    power = await room.state(B, "m.room.power_levels")
    power["users"][room.alice.user_id] = 50
    assert await room.put_state(B, "m.room.power_levels", power) == 200
    await settle()
    room.gates[B].open.clear()
    power["users"][room.alice.user_id] = 0
    assert await room.put_state(B, "m.room.power_levels", power) == 200
    late = await client(
        h, A, "PUT", f"/rooms/{room.room_id}/state/m.room.topic", room.alice, {"topic": "late"}
    )
    assert late.status == 200, late.json
    await settle()
    stored = await h.servers[B].events_store.get_event(late.json["event_id"])
    assert stored is not None and stored.soft_failed
    room.gates[B].open.set()
    await settle()
    assert "topic" not in await _state_or_empty(room, B, "m.room.topic")
    after = await sync(h, B, room.bob)
    timeline = after["rooms"]["join"][room.room_id]["timeline"]["events"]
    assert all(e["type"] != "m.room.topic" for e in timeline)
    # The room is not stuck: messages still flow both ways.
    await room.say(A, "after-a", "still here")
    await settle()
    await room.say(B, "after-b", "so am I")
    await settle()
    assert (await room.messages(B))[-2:] == ["still here", "so am I"]
    assert (await room.messages(A))[-2:] == ["still here", "so am I"]


async def _state_or_empty(room: Room, host: str, event_type: str) -> Any:
    resp = await client(
        room.h, host, "GET", f"/rooms/{room.room_id}/state/{event_type}", room.user(host)
    )
    return resp.json if resp.status == 200 else {}


async def test_typing_receipts_and_presence_both_ways(
    h: Harness, transport: HarnessTransport
) -> None:
    room = await _open_room(h, transport, f"/join/{quote('#hall:b.test')}")
    # Each first /sync makes its user online, news the other server gets
    # now, before the changes this test looks for.
    for host in (A, B):
        await sync(h, host, room.user(host))
    await settle()
    since = {host: (await sync(h, host, room.user(host)))["next_batch"] for host in (A, B)}
    # A /sync's presence bump still running could write back its older state
    # over the status set below (PresenceHandler._update's timestamps-only
    # path keeps what it read before awaiting): let it finish first.
    await settle()
    last = await room.say(B, "m1", "read me")
    await settle()
    for host in (A, B):
        me = room.user(host)
        resp = await client(
            h, host, "PUT", f"/rooms/{room.room_id}/typing/{me.user_id}", me,
            {"typing": True, "timeout": 30000},
        )  # fmt: skip
        assert resp.status == 200, resp.json
        resp = await client(h, host, "POST", f"/rooms/{room.room_id}/receipt/m.read/{last}", me, {})
        assert resp.status == 200, resp.json
        resp = await client(
            h,
            host,
            "PUT",
            f"/presence/{me.user_id}/status",
            me,
            {"presence": "online", "status_msg": f"on {host}"},
        )
        assert resp.status == 200, resp.json
    await settle()
    for host, other in ((A, B), (B, A)):
        them = room.user(other).user_id
        seen = await _edus_seen(h, host, room, since[host], them, last)
        assert seen == {"typing": True, "receipt": True, "status_msg": f"on {other}"}, host


async def _edus_seen(
    h: Harness, host: str, room: Room, since: str, them: str, event_id: str
) -> dict[str, Any]:
    """What `host`'s user has seen of `them` since `since`: a loaded machine
    may need a moment of the transactions' own timers (virtual time)."""
    seen: dict[str, Any] = {}
    for _ in range(10):
        body = await sync(h, host, room.user(host), since)
        typing = ephemeral(body, room.room_id, "m.typing")
        receipts = ephemeral(body, room.room_id, "m.receipt")
        readers = {u for r in receipts for u in r["content"].get(event_id, {}).get("m.read", {})}
        presence = {e["sender"]: e["content"] for e in body["presence"]["events"]}
        seen = {
            "typing": bool(typing) and them in typing[-1]["content"]["user_ids"],
            "receipt": them in readers,
            "status_msg": presence.get(them, {}).get("status_msg"),
        }
        if seen["typing"] and seen["receipt"] and seen["status_msg"]:
            break
        await advance(1)
    return seen


@pytest.mark.parametrize("api", ["v1", "v2"])
async def test_admin_deletion_sends_the_leaves_then_purges(
    h: Harness, transport: HarnessTransport, api: str
) -> None:
    room = await _open_room(h, transport, f"/join/{quote('#hall:b.test')}")
    admin = await make_user(h, "admin", admin=True, host=B)
    resp = await h.request(
        "DELETE", f"/_synapse/admin/{api}/rooms/{quote(room.room_id)}",
        json={"purge": True}, token=admin.token, host=B,
    )  # fmt: skip
    assert resp.status == 200, resp.json
    # v2 runs in the background, and waits on the clock for the sender.
    await advance(1)
    if api == "v2":
        status = await h.request(
            "GET", f"/_synapse/admin/v2/rooms/delete_status/{resp.json['delete_id']}",
            token=admin.token, host=B,
        )  # fmt: skip
        assert status.json["status"] == "complete", status.json
    # B no longer holds the room; A saw B's user leave.
    assert await h.servers[B].rooms_store.get_room(room.room_id) is None
    members = await client(h, A, "GET", f"/rooms/{room.room_id}/joined_members", room.alice)
    assert set(members.json["joined"]) == {room.alice.user_id}
    leave = await room.state(A, f"m.room.member/{quote(room.bob.user_id)}")
    assert leave["membership"] == "leave"
