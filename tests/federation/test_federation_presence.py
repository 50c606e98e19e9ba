"""Presence over federation: sent only to servers sharing a room with the
user, and neither sent nor taken in with `presence.enabled: false`."""

from __future__ import annotations

from typing import Any
from urllib.parse import quote

from tests.conftest import settle
from tests.federation.conftest import StartServers
from tests.federation.inbound_support import send_txn, shared_room, txn
from tests.federation.outbox_support import FakeTransport, attach, room_with_remotes
from tests.support.federation import HarnessTransport
from tests.support.harness import Harness, start_harness
from tests.support.users import TestUser, make_user
from tests.user_streams.helpers import call

SHARING, ELSEWHERE = "sharing.example", "elsewhere.example"


def presence_edus(transport: FakeTransport, destination: str) -> list[Any]:
    return [
        e["content"]
        for t in transport.to(destination)
        for e in t.body["edus"]
        if e["edu_type"] == "m.presence"
    ]


async def set_presence(h: Harness, user: TestUser, state: str) -> None:
    path = f"/presence/{quote(user.user_id)}/status"
    resp = await call(h, "PUT", path, user, {"presence": state})
    assert resp.status == 200, resp.json


async def test_presence_goes_only_to_servers_sharing_a_room(make_hs_config: Any) -> None:
    h = await start_harness([make_hs_config(presence={"enabled": True})])
    try:
        transport = attach(h.hs)
        alice = await make_user(h, "alice")
        bob = await make_user(h, "bob")
        await room_with_remotes(h, alice, SHARING)
        # Bob's room reaches another server, which shares no room with alice.
        await room_with_remotes(h, bob, ELSEWHERE)
        await set_presence(h, alice, "unavailable")
        await settle()
        pushes = [p for c in presence_edus(transport, SHARING) for p in c["push"]]
        assert [p["presence"] for p in pushes if p["user_id"] == alice.user_id][-1:] == [
            "unavailable"
        ]
        sent_elsewhere = [p for c in presence_edus(transport, ELSEWHERE) for p in c["push"]]
        assert alice.user_id not in {p["user_id"] for p in sent_elsewhere}
    finally:
        await h.close()


async def test_disabled_presence_sends_no_edus(make_hs_config: Any) -> None:
    h = await start_harness([make_hs_config(presence={"enabled": False})])
    try:
        transport = attach(h.hs)
        alice = await make_user(h, "alice")
        room = await room_with_remotes(h, alice, SHARING)
        await set_presence(h, alice, "online")
        resp = await call(
            h,
            "PUT",
            f"/rooms/{room}/typing/{quote(alice.user_id)}",
            alice,
            {"typing": True, "timeout": 30000},
        )
        assert resp.status == 200, resp.json
        await settle()
        # The destination is reached (the typing EDU went) but no presence did.
        sent = [e["edu_type"] for t in transport.to(SHARING) for e in t.body["edus"]]
        assert "m.typing" in sent
        assert "m.presence" not in sent
    finally:
        await h.close()


async def test_disabled_presence_ignores_received_edus(
    make_hs_config: Any, start_servers: StartServers, transport: HarnessTransport
) -> None:
    a, b = "a.test", "b.test"
    h = await start_servers(make_hs_config(a), make_hs_config(b, presence={"enabled": False}))
    carol = "@carol:a.test"
    bob = await make_user(h, "bob", host=b)
    await shared_room(h, b, bob, carol)
    push = {"user_id": carol, "presence": "online", "currently_active": True}
    edu = {"edu_type": "m.presence", "content": {"push": [push]}}
    assert await send_txn(transport, h, a, b, "t1", txn(a, edus=[edu])) == {"pdus": {}}
    # Nothing was kept (get_state would answer "offline" whatever is stored).
    assert carol not in h.servers[b].presence._states
