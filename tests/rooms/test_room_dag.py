"""Rooms as a DAG: forks from another server merge, state resolves, and
rejected, soft-failed and outlier events stay out of what clients see."""

from __future__ import annotations

import asyncio
import json
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

import pytest

from hamlet.core.dag import MAX_PREV_EVENTS
from hamlet.handlers.rooms.federated_events import MissingEventsError
from hamlet.homeserver import HomeServer
from tests.conftest import settle
from tests.rooms.helpers import V3, create_room, put_state, q, send_ok, state_map
from tests.rooms.remote_support import RemoteServer
from tests.support.harness import Harness
from tests.support.users import TestUser, make_user

SYNC_FILTER = quote(json.dumps({"room": {"timeline": {"limit": 100}}}))


async def _room(harness: Harness, alice: TestUser, **levels: int) -> str:
    return await create_room(
        harness,
        alice,
        preset="public_chat",
        power_level_content_override={"users": {alice.user_id: 100, **levels}},
    )


async def _timeline_ids(harness: Harness, user: TestUser, room_id: str) -> list[str]:
    resp = await harness.request("GET", f"{V3}/sync?filter={SYNC_FILTER}", token=user.token)
    assert resp.status == 200, resp.json
    events = resp.json["rooms"]["join"][room_id]["timeline"]["events"]
    return [e["event_id"] for e in events]


async def _messages_ids(harness: Harness, user: TestUser, room_id: str) -> list[str]:
    resp = await harness.request(
        "GET", f"{V3}/rooms/{q(room_id)}/messages?dir=b&limit=100", token=user.token
    )
    assert resp.status == 200, resp.json
    return [e["event_id"] for e in resp.json["chunk"]]


async def _put(harness: Harness, user: TestUser, room_id: str, *args: Any, **kw: Any) -> str:
    resp = await put_state(harness, user, room_id, *args, **kw)
    assert resp.status == 200, resp.json
    event_id: str = resp.json["event_id"]
    return event_id


async def _extremities(hs: HomeServer, room_id: str) -> set[str]:
    return {x.event_id for x in await hs.events_store.get_forward_extremities(room_id)}


async def _pdu(hs: HomeServer, event_id: str) -> Any:
    stored = await hs.events_store.get_event(event_id)
    assert stored is not None
    return stored.event


@dataclass
class Setup:
    hs: HomeServer
    alice: TestUser
    room_id: str
    remote: RemoteServer
    bob_join: str


async def _with_bob(harness: Harness) -> Setup:
    """A room of a local user that bob of remote.example has joined."""
    alice = await make_user(harness, "alice")
    room_id = await _room(harness, alice)
    remote = RemoteServer()
    bob_join = await remote.join(harness.hs, room_id, "bob")
    return Setup(harness.hs, alice, room_id, remote, bob_join.event.event_id)


async def test_a_fork_merges_into_the_next_local_event(harness: Harness) -> None:
    t = await _with_bob(harness)
    hs, alice, room_id, remote, bob_join = t.hs, t.alice, t.room_id, t.remote, t.bob_join
    assert await hs.rooms_store.get_joined_hosts(room_id) == {"test.local", "remote.example"}

    local = await send_ok(harness, alice, room_id, "local branch")
    branch = await remote.make(
        hs,
        room_id,
        remote.user("bob"),
        "m.room.message",
        {"msgtype": "m.text", "body": "remote branch"},
        prev_events=[bob_join],
    )
    stored = await remote.send(hs, branch)
    assert stored.in_timeline
    assert await _extremities(hs, room_id) == {local, branch.event_id}

    merge = await send_ok(harness, alice, room_id, "merge")
    event = await _pdu(hs, merge)
    assert set(event.prev_events) == {local, branch.event_id}
    assert event.depth == max((await _pdu(hs, local)).depth, branch.depth) + 1
    assert await _extremities(hs, room_id) == {merge}
    timeline = await _timeline_ids(harness, alice, room_id)
    assert timeline[-3:] == [local, branch.event_id, merge]
    assert (await _messages_ids(harness, alice, room_id))[:3] == [merge, branch.event_id, local]
    # The remote user is a member like any other.
    resp = await harness.request(
        "GET", f"{V3}/rooms/{q(room_id)}/joined_members", token=alice.token
    )
    assert remote.user("bob") in resp.json["joined"]


@pytest.mark.parametrize("remote_later", [True, False])
async def test_conflicting_topics_resolve_by_v2_order_not_arrival(
    harness: Harness, remote_later: bool
) -> None:
    hs = harness.hs
    alice = await make_user(harness, "alice")
    remote = RemoteServer()
    room_id = await _room(harness, alice, **{remote.user("bob"): 50})
    fork_point = (await remote.join(hs, room_id, "bob")).event.event_id

    local_topic = await _put(harness, alice, room_id, "m.room.topic", {"topic": "local"})
    local_ts = (await _pdu(hs, local_topic)).origin_server_ts
    remote_topic = await remote.make(
        hs,
        room_id,
        remote.user("bob"),
        "m.room.topic",
        {"topic": "remote"},
        state_key="",
        prev_events=[fork_point],
        ts=local_ts + 5000 if remote_later else local_ts - 5000,
    )
    assert (await remote.send(hs, remote_topic)).in_timeline

    # Both topics were set at the same power levels: v2 applies them in
    # origin_server_ts order, so the later one wins whichever arrived last.
    winner = "remote" if remote_later else "local"
    state = await state_map(harness, alice, room_id)
    assert state[("m.room.topic", "")]["content"]["topic"] == winner
    merge = await send_ok(harness, alice, room_id, "after the merge")
    assert len((await _pdu(hs, merge)).prev_events) == 2
    state = await state_map(harness, alice, room_id)
    assert state[("m.room.topic", "")]["content"]["topic"] == winner


async def test_power_level_change_wins_over_a_concurrent_action_it_forbids(
    harness: Harness,
) -> None:
    hs = harness.hs
    alice = await make_user(harness, "alice")
    remote = RemoteServer()
    bob, carol = remote.user("bob"), remote.user("carol")
    room_id = await _room(harness, alice, **{bob: 50, carol: 100})
    await remote.join(hs, room_id, "bob")
    fork_point = (await remote.join(hs, room_id, "carol")).event.event_id

    topic = await remote.make(
        hs, room_id, bob, "m.room.topic", {"topic": "bob's"}, state_key="", prev_events=[fork_point]
    )
    assert (await remote.send(hs, topic)).in_timeline
    levels = dict(
        (await state_map(harness, alice, room_id))[("m.room.power_levels", "")]["content"]
    )
    levels["users"] = {**levels["users"], bob: 0}
    demotion = await remote.make(
        hs, room_id, carol, "m.room.power_levels", levels, state_key="", prev_events=[fork_point]
    )
    assert (await remote.send(hs, demotion)).in_timeline
    assert await _extremities(hs, room_id) == {topic.event_id, demotion.event_id}

    # Power events resolve first; bob's topic is then checked against the
    # new levels and loses.
    state = await state_map(harness, alice, room_id)
    assert state[("m.room.power_levels", "")]["content"]["users"][bob] == 0
    assert ("m.room.topic", "") not in state or state[("m.room.topic", "")]["content"][
        "topic"
    ] != "bob's"
    merge = await send_ok(harness, alice, room_id, "merged")
    assert set((await _pdu(hs, merge)).prev_events) == {topic.event_id, demotion.event_id}
    state = await state_map(harness, alice, room_id)
    assert state[("m.room.power_levels", "")]["content"]["users"][bob] == 0


async def test_rejected_event_is_stored_but_never_served(harness: Harness) -> None:
    t = await _with_bob(harness)
    hs, alice, room_id, remote = t.hs, t.alice, t.room_id, t.remote
    before = await _extremities(hs, room_id)

    # bob has power 0; the topic needs 50: it fails against its auth events.
    bad = await remote.make(
        hs, room_id, remote.user("bob"), "m.room.topic", {"topic": "hijack"}, state_key=""
    )
    stored = await remote.send(hs, bad)
    assert stored.rejected_reason is not None and not stored.in_timeline
    assert await _extremities(hs, room_id) == before
    assert bad.event_id not in await _timeline_ids(harness, alice, room_id)
    assert bad.event_id not in await _messages_ids(harness, alice, room_id)
    state = await state_map(harness, alice, room_id)
    assert ("m.room.topic", "") not in state
    resp = await harness.request(
        "GET", f"{V3}/rooms/{q(room_id)}/event/{q(bad.event_id)}", token=alice.token
    )
    assert resp.status == 404
    assert await hs.events_store.get_event(bad.event_id) is None
    kept = await hs.events_store.get_events([bad.event_id], include_rejected=True)
    assert kept[bad.event_id].rejected_reason == stored.rejected_reason
    # Given again, it stays rejected.
    again = await remote.send(hs, bad)
    assert again.rejected_reason is not None

    nxt = await send_ok(harness, alice, room_id, "next")
    assert bad.event_id not in (await _pdu(hs, nxt)).prev_events

    # An event citing a rejected auth event is rejected in turn.
    follow = await remote.make(
        hs,
        room_id,
        remote.user("bob"),
        "m.room.message",
        {"msgtype": "m.text", "body": "x"},
        extra_auth=[bad.event_id],
    )
    refused = await remote.send(hs, follow)
    assert refused.rejected_reason is not None and bad.event_id in refused.rejected_reason
    assert follow.event_id not in await _timeline_ids(harness, alice, room_id)


async def test_soft_failed_event_is_stored_but_not_served_nor_built_on(
    harness: Harness,
) -> None:
    t = await _with_bob(harness)
    hs, alice, room_id, remote, fork_point = t.hs, t.alice, t.room_id, t.remote, t.bob_join
    bob = remote.user("bob")
    ban = await _put(harness, alice, room_id, "m.room.member", {"membership": "ban"}, state_key=bob)

    # Allowed at its prev_event (bob was joined there), refused by the
    # current state (bob is banned now).
    late = await remote.make(
        hs,
        room_id,
        bob,
        "m.room.message",
        {"msgtype": "m.text", "body": "sneaky"},
        prev_events=[fork_point],
    )
    stored = await remote.send(hs, late)
    assert stored.soft_failed and stored.rejected_reason is None
    assert await _extremities(hs, room_id) == {ban}
    assert late.event_id not in await _timeline_ids(harness, alice, room_id)
    assert late.event_id not in await _messages_ids(harness, alice, room_id)
    kept = await hs.events_store.get_event(late.event_id)
    assert kept is not None and kept.soft_failed
    nxt = await send_ok(harness, alice, room_id, "next")
    assert (await _pdu(hs, nxt)).prev_events == [ban]
    state = await state_map(harness, alice, room_id)
    assert state[("m.room.member", bob)]["content"]["membership"] == "ban"
    assert await hs.rooms_store.get_joined_hosts(room_id) == {"test.local"}


async def test_outliers_stay_out_of_the_timeline_until_they_join_it(harness: Harness) -> None:
    t = await _with_bob(harness)
    hs, alice, room_id, remote = t.hs, t.alice, t.room_id, t.remote
    before = await _extremities(hs, room_id)
    message = await remote.make(
        hs, room_id, remote.user("bob"), "m.room.message", {"msgtype": "m.text", "body": "o"}
    )

    stored = await remote.send(hs, message, outlier=True)
    assert stored.outlier and stored.state_group is None
    assert await _extremities(hs, room_id) == before
    assert message.event_id not in await _timeline_ids(harness, alice, room_id)
    assert message.event_id not in await _messages_ids(harness, alice, room_id)

    joined = await remote.send(hs, message)
    assert joined.in_timeline and joined.stream_ordering > stored.stream_ordering
    assert await _extremities(hs, room_id) == {message.event_id}
    assert message.event_id in await _timeline_ids(harness, alice, room_id)


async def test_missing_prev_events_need_the_state_from_the_caller(harness: Harness) -> None:
    t = await _with_bob(harness)
    hs, alice, room_id, remote = t.hs, t.alice, t.room_id, t.remote
    state = dict(await hs.room_state.get_current_state_ids(room_id))
    unseen = await remote.make(
        hs, room_id, remote.user("bob"), "m.room.message", {"msgtype": "m.text", "body": "1"}
    )
    after_gap = await remote.make(
        hs,
        room_id,
        remote.user("bob"),
        "m.room.message",
        {"msgtype": "m.text", "body": "2"},
        prev_events=[unseen.event_id],
        auth_from=list(await _extremities(hs, room_id)),
        depth=unseen.depth + 1,
    )
    with pytest.raises(MissingEventsError) as caught:
        await remote.send(hs, after_gap)
    assert caught.value.missing == [unseen.event_id]

    before = await _extremities(hs, room_id)
    stored = await remote.send(hs, after_gap, state=state)
    assert stored.in_timeline
    assert after_gap.event_id in await _timeline_ids(harness, alice, room_id)
    # The gap is not filled: what came before it is still an extremity.
    assert await _extremities(hs, room_id) == {*before, after_gap.event_id}
    merge = await send_ok(harness, alice, room_id, "merge")
    assert set((await _pdu(hs, merge)).prev_events) == {*before, after_gap.event_id}


async def test_new_events_name_at_most_ten_extremities(harness: Harness) -> None:
    t = await _with_bob(harness)
    hs, alice, room_id, remote, fork_point = t.hs, t.alice, t.room_id, t.remote, t.bob_join
    branches = []
    for n in range(MAX_PREV_EVENTS + 2):
        event = await remote.make(
            hs,
            room_id,
            remote.user("bob"),
            "m.room.message",
            {"msgtype": "m.text", "body": str(n)},
            prev_events=[fork_point],
        )
        assert (await remote.send(hs, event)).in_timeline
        branches.append(event.event_id)
    assert await _extremities(hs, room_id) == set(branches)

    merge = await send_ok(harness, alice, room_id, "merge")
    prevs = (await _pdu(hs, merge)).prev_events
    # All branches have the same depth: the most recent arrivals are kept.
    assert set(prevs) == set(branches[2:])
    assert await _extremities(hs, room_id) == {merge, *branches[:2]}
    second = await send_ok(harness, alice, room_id, "merge the rest")
    assert set((await _pdu(hs, second)).prev_events) == {merge, *branches[:2]}


async def test_too_many_prev_events_are_rejected_without_fetching_them(
    harness: Harness,
) -> None:
    t = await _with_bob(harness)
    before = await _extremities(t.hs, t.room_id)
    flood = await t.remote.make(
        t.hs,
        t.room_id,
        t.remote.user("bob"),
        "m.room.message",
        {"msgtype": "m.text", "body": "many"},
        prev_events=[f"$unknown{n}" for n in range(21)],
        auth_from=list(before),
        depth=10,
    )
    stored = await t.remote.send(t.hs, flood)
    assert stored.rejected_reason == "more than 20 prev_events"
    assert await _extremities(t.hs, t.room_id) == before
    assert flood.event_id not in await _timeline_ids(harness, t.alice, t.room_id)


async def test_remote_redactions_apply_only_where_the_sender_may_redact(
    harness: Harness,
) -> None:
    t = await _with_bob(harness)
    bob = t.remote.user("bob")
    own = await t.remote.make(
        t.hs, t.room_id, bob, "m.room.message", {"msgtype": "m.text", "body": "oops"}
    )
    assert (await t.remote.send(t.hs, own)).in_timeline
    alices = await send_ok(harness, t.alice, t.room_id, "mine")

    for target in (own.event_id, alices):
        redaction = await t.remote.make(
            t.hs, t.room_id, bob, "m.room.redaction", {}, redacts=target
        )
        assert (await t.remote.send(t.hs, redaction)).in_timeline

    redacted = await t.hs.events_store.get_event(own.event_id)
    assert redacted is not None and redacted.redacted_by is not None
    kept = await t.hs.events_store.get_event(alices)
    assert kept is not None and kept.redacted_by is None


async def test_remote_events_wake_a_waiting_sync_and_held_back_ones_do_not_show(
    harness: Harness,
) -> None:
    t = await _with_bob(harness)
    bob = t.remote.user("bob")
    resp = await harness.request("GET", f"{V3}/sync?filter={SYNC_FILTER}", token=t.alice.token)
    since = resp.json["next_batch"]
    fork_point = t.bob_join
    rejected = await t.remote.make(t.hs, t.room_id, bob, "m.room.name", {"name": "x"}, state_key="")
    message = await t.remote.make(
        t.hs, t.room_id, bob, "m.room.message", {"msgtype": "m.text", "body": "hello"}
    )

    async def arrive() -> None:
        await settle()
        assert (await t.remote.send(t.hs, rejected)).rejected_reason is not None
        assert (await t.remote.send(t.hs, message)).in_timeline

    waiting = harness.request(
        "GET",
        f"{V3}/sync?since={since}&timeout=30000&filter={SYNC_FILTER}",
        token=t.alice.token,
    )
    resp, _ = await asyncio.gather(waiting, arrive())
    assert resp.status == 200, resp.json
    events = resp.json["rooms"]["join"][t.room_id]["timeline"]["events"]
    assert [e["event_id"] for e in events] == [message.event_id]
    assert message.prev_events == [fork_point]
