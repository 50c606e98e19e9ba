"""An event that arrives after its redaction (the redaction came live, the
event later by /backfill) is stored and served redacted, when the redaction
is allowed: the redacter has the redact level or is of the original
sender's server."""

from __future__ import annotations

from typing import Any

import pytest

from tests.federation.conftest import StartServers
from tests.federation.dag_support import messages_back, pdu_of, room_joined_over_federation, say
from tests.federation.inbound_support import client, send_txn, txn
from tests.rooms.helpers import create_room
from tests.rooms.remote_support import RemoteServer
from tests.support.federation import HarnessTransport
from tests.support.harness import Harness
from tests.support.users import TestUser, make_user

A, B = "lra.test", "lrb.test"
UNLIMITED = {"per_second": 1000, "burst_count": 1000}


@pytest.fixture
async def h(make_hs_config: Any, start_servers: StartServers) -> Harness:
    return await start_servers(*(make_hs_config(n, rc_message=UNLIMITED) for n in (A, B)))


async def redact(h: Harness, user: TestUser, room: str, event_id: str) -> str:
    path = f"/rooms/{room}/redact/{event_id}/r-{event_id[1:9]}"
    resp = await client(h, B, "PUT", path, user, {"reason": "oops"})
    assert resp.status == 200, resp.json
    redaction: str = resp.json["event_id"]
    return redaction


async def test_an_event_backfilled_after_its_redaction_is_served_redacted(
    h: Harness, transport: HarnessTransport
) -> None:
    bob = await make_user(h, "bob", host=B)  # the room's creator: redact level
    carol = await make_user(h, "carol", host=B)  # power level 0
    alice = await make_user(h, "alice", host=A)
    said: dict[str, str] = {}

    async def history(room: str) -> None:
        resp = await client(h, B, "POST", f"/join/{room}", carol, {})
        assert resp.status == 200, resp.json
        said["bob"] = await say(h, B, bob, room, "by bob")
        said["carol"] = await say(h, B, carol, room, "by carol")
        said["kept"] = await say(h, B, bob, room, "kept")

    room = await room_joined_over_federation(h, B, bob, A, alice, before_join=history)
    # Once A is in the room, bob redacts his message and carol hers (allowed
    # by her server, not her power level); A gets the redactions live, and
    # holds neither message yet.
    redactions = {
        "bob": await redact(h, bob, room, said["bob"]),
        "carol": await redact(h, carol, room, said["carol"]),
    }
    pdus = [await pdu_of(h, B, redactions[who]) for who in ("bob", "carol")]
    answer = await send_txn(transport, h, B, A, "late-redactions", txn(B, pdus=pdus))
    assert answer == {"pdus": {redactions["bob"]: {}, redactions["carol"]: {}}}
    hs_a = h.servers[A]
    assert await hs_a.events_store.get_event(said["bob"]) is None

    # Paging back backfills the messages, stored redacted.
    assert await messages_back(h, A, alice, room) == [None, None, "kept"]
    for who in ("bob", "carol"):
        resp = await client(h, A, "GET", f"/rooms/{room}/event/{said[who]}", alice)
        assert resp.status == 200, resp.json
        assert resp.json["content"] == {}
        assert resp.json["unsigned"]["redacted_because"]["event_id"] == redactions[who]
        stored = await hs_a.events_store.get_event(said[who])
        assert stored is not None and stored.redacted_by == redactions[who]
    # The redacted text is not found by search either.
    search = await client(
        h,
        A,
        "POST",
        "/search",
        alice,
        {"search_categories": {"room_events": {"search_term": "carol"}}},
    )
    assert search.status == 200, search.json
    assert search.json["search_categories"]["room_events"]["results"] == []


async def test_an_earlier_redaction_applies_only_when_allowed(harness: Harness) -> None:
    hs = harness.hs
    alice = await make_user(harness, "alice")
    r1, r2 = RemoteServer("r1.example"), RemoteServer("r2.example")
    moderator, mallory = r2.user("eve"), r2.user("mallory")
    room = await create_room(
        harness,
        alice,
        preset="public_chat",
        power_level_content_override={"users": {alice.user_id: 100, moderator: 50}},
    )
    bob_join = (await r1.join(hs, room, "bob")).event.event_id
    await r2.join(hs, room, "eve")
    await r2.join(hs, room, "mallory")
    # bob's messages, which reach us only after the redactions of them.
    late = [
        await r1.make(
            hs,
            room,
            r1.user("bob"),
            "m.room.message",
            {"msgtype": "m.text", "body": body},
            prev_events=[bob_join],
        )
        for body in ("kept", "redacted")
    ]
    # Neither has the redact level of r2's mallory nor her server is bob's;
    # r2's moderator has the level.
    refused = await r2.make(hs, room, mallory, "m.room.redaction", {}, redacts=late[0].event_id)
    allowed = await r2.make(hs, room, moderator, "m.room.redaction", {}, redacts=late[1].event_id)
    for redaction in (refused, allowed):
        assert (await r2.send(hs, redaction)).in_timeline
    for event in late:
        await r1.send(hs, event)
    kept = await hs.events_store.get_event(late[0].event_id)
    assert kept is not None and kept.redacted_by is None
    assert kept.event.content["body"] == "kept"
    gone = await hs.events_store.get_event(late[1].event_id)
    assert gone is not None and gone.redacted_by == allowed.event_id
    assert gone.event.content == {}
