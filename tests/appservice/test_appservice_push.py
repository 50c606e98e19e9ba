"""Event push to application services over real HTTP: interest, retries with
backoff on virtual time, catch-up and no duplicates across a restart,
isolation between bridges, and the ping."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest

from hamlet.config import HomeServerConfig
from hamlet.handlers.appservice.queries import MAX_CONCURRENT_QUERIES, QUERY_TIMEOUT_S
from tests.accounts.conftest import OPEN_REGISTRATION
from tests.accounts.helpers import assert_error, register
from tests.appservice.fake_bridge import FakeBridge
from tests.appservice.support import (
    AS_TOKEN,
    HS_TOKEN,
    V3,
    as_request,
    register_ghost,
    registration,
)
from tests.conftest import advance, settle
from tests.support.harness import Harness, start_harness

MakeConfig = Callable[..., HomeServerConfig]


@pytest.fixture
async def bridge() -> AsyncIterator[FakeBridge]:
    b = await FakeBridge(HS_TOKEN).start()
    yield b
    await b.close()


@pytest.fixture
async def h(make_hs_config: MakeConfig, bridge: FakeBridge) -> AsyncIterator[Harness]:
    config = make_hs_config(**OPEN_REGISTRATION, app_services=[registration(bridge.url)])
    harness = await start_harness([config])
    yield harness
    await harness.close()


async def user_room(h: Harness, name: str) -> tuple[str, str]:
    token = (await register(h, name)).json["access_token"]
    room = await h.request("POST", f"{V3}/createRoom", json={}, token=token)
    return token, room.json["room_id"]


async def send(h: Harness, token: str, room_id: str, body: str, txn: str) -> str:
    resp = await h.request(
        "PUT",
        f"{V3}/rooms/{room_id}/send/m.room.message/{txn}",
        json={"msgtype": "m.text", "body": body},
        token=token,
    )
    assert resp.status == 200, resp.body
    event_id: str = resp.json["event_id"]
    return event_id


async def invite_and_join(h: Harness, token: str, room_id: str, ghost: str, as_token: str) -> None:
    user_id = f"@{ghost}:test.local"
    invite = await h.request(
        "POST", f"{V3}/rooms/{room_id}/invite", json={"user_id": user_id}, token=token
    )
    assert invite.status == 200, invite.body
    path = f"{V3}/rooms/{room_id}/join?user_id={user_id}"
    joined = await as_request(h, "POST", path, json={}, token=as_token)
    assert joined.status == 200, joined.body


def body_is(text: str) -> Callable[[dict[str, Any]], bool]:
    return lambda e: e.get("content", {}).get("body") == text


async def test_invite_and_messages_reach_the_bridge(h: Harness, bridge: FakeBridge) -> None:
    await register_ghost(h, "bridge_alice")
    token, room_id = await user_room(h, "bob")
    _other_token, other_room = await user_room(h, "carol")
    await send(h, _other_token, other_room, "not for bridges", "o1")
    invite = await h.request(
        "POST",
        f"{V3}/rooms/{room_id}/invite",
        json={"user_id": "@bridge_alice:test.local"},
        token=token,
    )
    assert invite.status == 200, invite.body
    got = await bridge.wait_for_event(
        lambda e: e["type"] == "m.room.member" and e["content"]["membership"] == "invite"
    )
    assert got["state_key"] == "@bridge_alice:test.local" and got["room_id"] == room_id
    join = await as_request(
        h, "POST", f"{V3}/rooms/{room_id}/join?user_id=@bridge_alice:test.local", json={}
    )
    assert join.status == 200
    event_id = await send(h, token, room_id, "hello bridge", "m1")
    message = await bridge.wait_for_event(body_is("hello bridge"))
    assert message["event_id"] == event_id and message["sender"] == "@bob:test.local"
    assert not any(body_is("not for bridges")(e) for e in bridge.events)
    # Transaction IDs count up, each acknowledged once.
    assert sorted(int(t) for t in bridge.txns) == list(range(1, len(bridge.txns) + 1))


async def test_retries_with_backoff_then_catches_up(h: Harness, bridge: FakeBridge) -> None:
    await register_ghost(h, "bridge_alice")
    bridge.mode = "fail"
    await as_request(h, "POST", f"{V3}/createRoom?user_id=@bridge_alice:test.local", json={})
    await bridge.wait_for(lambda: len(bridge.puts) >= 1, "a first attempt")
    first = bridge.puts[0]
    await advance(1.5)
    await bridge.wait_for(lambda: len(bridge.puts) >= 2, "a retry")
    assert set(bridge.puts) == {first}
    status = h.hs.app_service_transactions.status("bridge")
    assert status is not None and status[1] == 2.0  # doubled
    bridge.mode = "ok"
    await advance(2.5)
    await bridge.wait_for(lambda: first in bridge.txns, "the retried transaction")
    await settle()
    sent, backoff = h.hs.app_service_transactions.status("bridge") or (0, -1.0)
    assert sent == len(bridge.txns) and backoff == 0.0
    assert any(e["type"] == "m.room.create" for e in bridge.events)


async def test_queue_survives_restart_without_duplicates(h: Harness, bridge: FakeBridge) -> None:
    await register_ghost(h, "bridge_alice")
    bridge.mode = "fail"
    room = await as_request(h, "POST", f"{V3}/createRoom?user_id=@bridge_alice:test.local", json={})
    room_id = room.json["room_id"]
    await bridge.wait_for(lambda: len(bridge.puts) >= 1, "a first attempt")
    first = bridge.puts[0]
    await settle()
    hs = await h.restart()
    # Sent while the homeserver was back but the bridge still down.
    token = (await register(h, "dan")).json["access_token"]
    await as_request(
        h,
        "POST",
        f"{V3}/rooms/{room_id}/invite?user_id=@bridge_alice:test.local",
        json={"user_id": "@dan:test.local"},
    )
    await h.request("POST", f"{V3}/rooms/{room_id}/join", json={}, token=token)
    await send(h, token, room_id, "while down", "d1")
    bridge.mode = "ok"
    await advance(600)
    await bridge.wait_for_event(body_is("while down"))
    await settle()
    assert first in bridge.txns
    ids = [e["event_id"] for e in bridge.events]
    assert len(ids) == len(set(ids)), "an event was delivered twice"
    creates = [e for e in bridge.events if e["type"] == "m.room.create"]
    assert len(creates) == 1
    assert hs.app_service_transactions.status("bridge") is not None


async def test_a_hung_bridge_delays_nobody_else(
    make_hs_config: MakeConfig, bridge: FakeBridge
) -> None:
    other = await FakeBridge("hs_two").start()
    try:
        config = make_hs_config(
            **OPEN_REGISTRATION,
            app_services=[
                registration(bridge.url),
                registration(other.url, as_id="other", as_token="as_two", hs_token="hs_two"),
            ],
        )
        h = await start_harness([config])
        try:
            await register_ghost(h, "bridge_alice")
            await register_ghost(h, "other_ann", token="as_two")
            bridge.mode = "hang"
            token, room_id = await user_room(h, "erin")
            await invite_and_join(h, token, room_id, "bridge_alice", AS_TOKEN)
            await invite_and_join(h, token, room_id, "other_ann", "as_two")
            await bridge.wait_for(lambda: len(bridge.puts) >= 1, "the hanging request")
            # Sending does not wait for the hung bridge; the other bridge gets it.
            await send(h, token, room_id, "still flowing", "s1")
            await other.wait_for_event(body_is("still flowing"))
            assert bridge.txns == {}
            # The hung request times out and is retried; once answered, all arrives.
            bridge.mode = "ok"
            await advance(120)
            await bridge.wait_for_event(body_is("still flowing"))
        finally:
            await h.close()
    finally:
        await other.close()


async def test_ping(h: Harness, bridge: FakeBridge) -> None:
    path = "/_matrix/client/v1/appservice/bridge/ping"
    resp = await as_request(h, "POST", path, json={"transaction_id": "p1"})
    assert resp.status == 200, resp.body
    assert isinstance(resp.json["duration_ms"], int)
    assert bridge.pings == [{"transaction_id": "p1"}]
    other = await as_request(h, "POST", "/_matrix/client/v1/appservice/nope/ping", json={})
    assert_error(other, 403, "M_FORBIDDEN")
    user = (await register(h, "fay")).json["access_token"]
    assert_error(await h.request("POST", path, json={}, token=user), 403, "M_FORBIDDEN")
    bridge.mode = "fail"
    bad = await as_request(h, "POST", path, json={})
    assert_error(bad, 502, "M_BAD_STATUS")
    assert bad.json["status"] == 500
    bridge.mode = "hang"
    task = asyncio.ensure_future(as_request(h, "POST", path, json={}))
    await bridge.wait_for(lambda: bool(bridge._hung), "the hanging ping")
    await advance(16)
    assert_error(await task, 504, "M_CONNECTION_TIMEOUT")
    await bridge.close()
    assert_error(await as_request(h, "POST", path, json={}), 502, "M_CONNECTION_FAILED")


async def test_ping_without_url(make_hs_config: MakeConfig) -> None:
    h = await start_harness([make_hs_config(app_services=[registration(None)])])
    try:
        resp = await as_request(h, "POST", "/_matrix/client/v1/appservice/bridge/ping", json={})
        assert_error(resp, 400, "M_URL_NOT_SET")
    finally:
        await h.close()


async def test_unknown_users_and_aliases_are_asked_for(h: Harness, bridge: FakeBridge) -> None:
    async def make_user(user_id: str) -> bool:
        localpart = user_id[1:].split(":")[0]
        return (await register_ghost(h, localpart)).status == 200

    async def make_portal(alias: str) -> bool:
        name = alias[1:].split(":")[0]
        resp = await as_request(
            h, "POST", f"{V3}/createRoom", json={"room_alias_name": name, "preset": "public_chat"}
        )
        return resp.status == 200

    bridge.on_user_query = make_user
    bridge.on_alias_query = make_portal
    profile = await h.request("GET", f"{V3}/profile/@bridge_zed:test.local")
    assert profile.status == 200, profile.body
    assert bridge.user_queries == ["@bridge_zed:test.local"]
    # Outside any namespace: nobody is asked.
    missing = await h.request("GET", f"{V3}/profile/@nobody:test.local")
    assert_error(missing, 404, "M_NOT_FOUND")
    assert bridge.user_queries == ["@bridge_zed:test.local"]

    found = await h.request("GET", f"{V3}/directory/room/%23bridge_portal:test.local")
    assert found.status == 200, found.body
    assert bridge.alias_queries == ["#bridge_portal:test.local"]
    token = (await register(h, "gus")).json["access_token"]
    joined = await h.request("POST", f"{V3}/join/%23bridge_other:test.local", json={}, token=token)
    assert joined.status == 200, joined.body
    bridge.on_alias_query = None
    gone = await h.request("GET", f"{V3}/directory/room/%23bridge_none:test.local")
    assert_error(gone, 404, "M_NOT_FOUND")

    # Inviting a ghost nobody has registered yet: the bridge is asked first.
    room_id = joined.json["room_id"]
    await as_request(
        h, "POST", f"{V3}/rooms/{room_id}/invite", json={"user_id": "@bridge_new:test.local"}
    )
    await bridge.wait_for_event(lambda e: e.get("state_key") == "@bridge_new:test.local")
    assert "@bridge_new:test.local" in bridge.user_queries


async def test_ephemeral_events_for_services_that_opt_in(
    make_hs_config: MakeConfig, bridge: FakeBridge
) -> None:
    quiet = await FakeBridge("hs_quiet").start()
    config = make_hs_config(
        **OPEN_REGISTRATION,
        app_services=[
            registration(bridge.url, receive_ephemeral=True),
            registration(quiet.url, as_id="quiet", as_token="as_quiet", hs_token="hs_quiet"),
        ],
    )
    h = await start_harness([config])
    try:
        await register_ghost(h, "bridge_alice")
        await register_ghost(h, "quiet_ann", token="as_quiet")
        token, room_id = await user_room(h, "hal")
        await invite_and_join(h, token, room_id, "bridge_alice", AS_TOKEN)
        await invite_and_join(h, token, room_id, "quiet_ann", "as_quiet")
        _lonely, other_room = await user_room(h, "ida")
        await h.request(
            "PUT",
            f"{V3}/rooms/{other_room}/typing/@ida:test.local",
            json={"typing": True, "timeout": 30000},
            token=_lonely,
        )
        typing = await h.request(
            "PUT",
            f"{V3}/rooms/{room_id}/typing/@hal:test.local",
            json={"typing": True, "timeout": 30000},
            token=token,
        )
        assert typing.status == 200, typing.body
        await bridge.wait_for(
            lambda: any(e["type"] == "m.typing" for e in bridge.ephemeral), "typing"
        )
        (typed,) = [e for e in bridge.ephemeral if e["type"] == "m.typing"]
        assert typed == {
            "type": "m.typing",
            "room_id": room_id,
            "content": {"user_ids": ["@hal:test.local"]},
        }
        event_id = await send(h, token, room_id, "read me", "r1")
        receipt = await h.request(
            "POST", f"{V3}/rooms/{room_id}/receipt/m.read/{event_id}", json={}, token=token
        )
        assert receipt.status == 200, receipt.body
        await bridge.wait_for(
            lambda: any(e["type"] == "m.receipt" for e in bridge.ephemeral), "a receipt"
        )
        got = next(e for e in bridge.ephemeral if e["type"] == "m.receipt")
        assert got["room_id"] == room_id
        assert "@hal:test.local" in got["content"][event_id]["m.read"]
        presence = await h.request(
            "PUT",
            f"{V3}/presence/@hal:test.local/status",
            json={"presence": "online", "status_msg": "here"},
            token=token,
        )
        assert presence.status == 200, presence.body
        await bridge.wait_for(
            lambda: any(e["type"] == "m.presence" for e in bridge.ephemeral), "presence"
        )
        seen = next(e for e in bridge.ephemeral if e["type"] == "m.presence")
        assert seen["sender"] == "@hal:test.local"
        assert seen["content"]["status_msg"] == "here"
        await quiet.wait_for_event(body_is("read me"))
        await settle()
        assert quiet.ephemeral == []
    finally:
        await h.close()
        await quiet.close()


async def test_lookups_cannot_flood_a_bridge(h: Harness, bridge: FakeBridge) -> None:
    stuck: asyncio.Future[bool] = asyncio.get_running_loop().create_future()

    async def never(_user_id: str) -> bool:
        return await stuck

    bridge.on_user_query = never
    lookups = [
        asyncio.ensure_future(h.request("GET", f"{V3}/profile/@bridge_n{i}:test.local"))
        for i in range(MAX_CONCURRENT_QUERIES)
    ]
    await bridge.wait_for(lambda: len(bridge.user_queries) == MAX_CONCURRENT_QUERIES, "every query")
    # One more is answered at once, without asking the bridge.
    extra = await h.request("GET", f"{V3}/profile/@bridge_extra:test.local")
    assert_error(extra, 404, "M_NOT_FOUND")
    assert len(bridge.user_queries) == MAX_CONCURRENT_QUERIES
    # The stuck ones time out (10 s) as not found.
    await advance(QUERY_TIMEOUT_S + 1)
    for lookup in lookups:
        assert_error(await lookup, 404, "M_NOT_FOUND")
    stuck.set_result(False)


async def test_to_device_and_device_lists_for_encrypted_bridges(
    make_hs_config: MakeConfig, bridge: FakeBridge
) -> None:
    reg = registration(bridge.url, receive_ephemeral=True, **{"org.matrix.msc3202": True})
    h = await start_harness([make_hs_config(**OPEN_REGISTRATION, app_services=[reg])])
    try:
        ghost = (await register_ghost(h, "bridge_alice")).json
        token, room_id = await user_room(h, "jo")
        await invite_and_join(h, token, room_id, "bridge_alice", AS_TOKEN)
        sent = await h.request(
            "PUT",
            f"{V3}/sendToDevice/m.room.encrypted/td1",
            json={"messages": {ghost["user_id"]: {ghost["device_id"]: {"ciphertext": "x"}}}},
            token=token,
        )
        assert sent.status == 200, sent.body

        def to_device() -> list[dict[str, Any]]:
            return [
                m for t in bridge.txns.values() for m in t.get("de.sorunome.msc2409.to_device", [])
            ]

        await bridge.wait_for(lambda: bool(to_device()), "the to-device message")
        (message,) = to_device()
        assert message["to_user_id"] == ghost["user_id"]
        assert message["to_device_id"] == ghost["device_id"]
        assert message["sender"] == "@jo:test.local"
        assert message["content"] == {"ciphertext": "x"}
        # Delivered through the bridge: the ghost's inbox is empty.
        await settle()
        sync = await h.request("GET", f"{V3}/sync", token=ghost["access_token"])
        assert sync.json.get("to_device", {}).get("events", []) == []

        login = {
            "type": "m.login.password",
            "identifier": {"type": "m.id.user", "user": "jo"},
            "password": "correct horse",
        }
        assert (await h.request("POST", f"{V3}/login", json=login)).status == 200

        def changed() -> set[str]:
            return {
                u
                for t in bridge.txns.values()
                for u in t.get("org.matrix.msc3202.device_lists", {}).get("changed", [])
            }

        await bridge.wait_for(lambda: "@jo:test.local" in changed(), "jo's new device")

        # The ghost's device (masqueraded, as mautrix does) uploads keys; the
        # next transaction carries its counts.
        upload = await as_request(
            h,
            "POST",
            f"{V3}/keys/upload?user_id={ghost['user_id']}&device_id={ghost['device_id']}",
            json={
                "one_time_keys": {"curve25519:AAAAAQ": "a" * 43, "curve25519:AAAAAg": "b" * 43},
                "fallback_keys": {"curve25519:AAAAAw": "c" * 43},
            },
        )
        assert upload.status == 200, upload.body
        await send(h, token, room_id, "count my keys", "k1")
        await bridge.wait_for_event(body_is("count my keys"))
        (txn,) = [
            t
            for t in bridge.txns.values()
            if any(body_is("count my keys")(e) for e in t.get("events", []))
        ]
        counts = txn["org.matrix.msc3202.device_one_time_keys_count"]
        assert counts[ghost["user_id"]][ghost["device_id"]]["curve25519"] == 2
        fallback = txn["org.matrix.msc3202.device_unused_fallback_key_types"]
        assert fallback[ghost["user_id"]][ghost["device_id"]] == ["curve25519"]
    finally:
        await h.close()


async def test_a_hung_bridge_delays_no_other_tenant(
    make_hs_config: MakeConfig, bridge: FakeBridge
) -> None:
    other = await FakeBridge("hs_b").start()
    configs = [
        make_hs_config(
            "a.test", **OPEN_REGISTRATION, app_services=[registration(bridge.url, server="a.test")]
        ),
        make_hs_config(
            "b.test",
            **OPEN_REGISTRATION,
            app_services=[
                registration(other.url, as_token="as_b", hs_token="hs_b", server="b.test")
            ],
        ),
    ]
    h = await start_harness(configs)
    try:
        bridge.mode = "hang"
        created = await as_request(h, "POST", f"{V3}/createRoom", json={}, host="a.test")
        assert created.status == 200
        await bridge.wait_for(lambda: bool(bridge.puts), "the hanging request")
        # Tenant b and its bridge go on as if nothing happened.
        made = await as_request(h, "POST", f"{V3}/createRoom", json={}, token="as_b", host="b.test")
        assert made.status == 200, made.body
        await other.wait_for_event(
            lambda e: e["type"] == "m.room.create" and e["room_id"] == made.json["room_id"]
        )
        assert all(e["room_id"].endswith(":b.test") for e in other.events)
        assert bridge.txns == {}
    finally:
        await h.close()
        await other.close()
