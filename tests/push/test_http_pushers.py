"""HTTP pushers end to end: /pushers, delivery to a fake gateway on loopback
(Sygnal's body, event_id_only, priority, counts), retries on virtual time,
rejected pushkeys, the IP range filter, hanging gateways and tenants."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from hamlet.handlers.push.delivery import GIVE_UP_AFTER_MS
from tests.conftest import advance, settle
from tests.push.gateway_support import (
    HANG,
    REJECT,
    FakeGateway,
    call,
    eventually,
    gateway,
    pusher_body,
    room_of,
    say,
    set_pusher,
)
from tests.support.harness import Harness, start_harness
from tests.support.users import TestUser, make_user

__all__ = ["gateway"]

LOOPBACK = {"ip_range_whitelist": ["127.0.0.1"]}


@pytest.fixture
async def ph(make_hs_config) -> AsyncIterator[Harness]:  # type: ignore[no-untyped-def]
    """A homeserver that may reach push gateways on loopback."""
    h = await start_harness([make_hs_config(**LOOPBACK)])
    yield h
    await h.close()


async def test_set_list_replace_and_delete(ph: Harness, gateway: FakeGateway) -> None:
    alice = await make_user(ph, "alice")
    resp = await call(ph, "GET", "/pushers", alice)
    assert resp.status == 200 and resp.json == {"pushers": []}
    await set_pusher(ph, alice, gateway.url, "key1", profile_tag="tag")
    await set_pusher(ph, alice, gateway.url, "key1", lang="fr")  # same key: replaced
    resp = await call(ph, "GET", "/pushers", alice)
    assert resp.json["pushers"] == [
        {
            "app_id": "org.example.app",
            "pushkey": "key1",
            "kind": "http",
            "app_display_name": "Example",
            "device_display_name": "Phone",
            "profile_tag": "",
            "lang": "fr",
            "data": {"url": gateway.url},
        }
    ]
    resp = await call(
        ph,
        "POST",
        "/pushers/set",
        alice,
        {"kind": None, "app_id": "org.example.app", "pushkey": "key1"},
    )
    assert resp.status == 200
    assert (await call(ph, "GET", "/pushers", alice)).json == {"pushers": []}


async def test_append_and_other_users(ph: Harness, gateway: FakeGateway) -> None:
    alice = await make_user(ph, "alice")
    bob = await make_user(ph, "bob")
    await set_pusher(ph, alice, gateway.url, "shared")
    # append: both users keep the pushkey.
    await set_pusher(ph, bob, gateway.url, "shared", append=True)
    assert len((await call(ph, "GET", "/pushers", alice)).json["pushers"]) == 1
    # Without append, the same app_id and pushkey of other users goes.
    await set_pusher(ph, bob, gateway.url, "shared")
    assert (await call(ph, "GET", "/pushers", alice)).json["pushers"] == []
    assert len((await call(ph, "GET", "/pushers", bob)).json["pushers"]) == 1


@pytest.mark.parametrize(
    ("change", "errcode"),
    [
        ({"lang": None}, "M_BAD_JSON"),
        ({"data": {}}, "M_MISSING_PARAM"),
        ({"data": {"url": "http://127.0.0.1/push"}}, "M_MISSING_PARAM"),
        ({"data": {"url": 5}}, "M_MISSING_PARAM"),
        ({"data": "x"}, "M_MISSING_PARAM"),
        ({"kind": "email"}, "M_MISSING_PARAM"),
        ({"app_id": "a" * 65}, "M_INVALID_PARAM"),
        ({"pushkey": "k" * 513}, "M_INVALID_PARAM"),
        ({"append": "yes"}, "M_BAD_JSON"),
        (
            {"data": {"url": "https://gw.example/_matrix/push/v1/notify", "x": "y" * 5000}},
            "M_INVALID_PARAM",
        ),
    ],
)
async def test_bad_pushers_are_400(ph: Harness, change: dict[str, object], errcode: str) -> None:
    alice = await make_user(ph, "alice")
    body = pusher_body("https://gw.example/_matrix/push/v1/notify", "key")
    body.update(change)
    resp = await call(ph, "POST", "/pushers/set", alice, body)
    assert resp.status == 400 and resp.json["errcode"] == errcode, resp.json
    assert (await call(ph, "GET", "/pushers", alice)).json == {"pushers": []}


async def test_deleting_with_a_bad_key_is_400(ph: Harness) -> None:
    alice = await make_user(ph, "alice")
    body = {"kind": None, "app_id": 5, "pushkey": "key"}
    resp = await call(ph, "POST", "/pushers/set", alice, body)
    assert resp.status == 400 and resp.json["errcode"] == "M_BAD_JSON"
    resp = await call(ph, "POST", "/pushers/set", alice, [])
    assert resp.status == 400 and resp.json["errcode"] == "M_BAD_JSON"
    resp = await ph.request(
        "POST", "/_matrix/client/v3/pushers/set", body=b"{nope", token=alice.token
    )
    assert resp.status == 400 and resp.json["errcode"] == "M_NOT_JSON"


async def test_missing_field_is_400(ph: Harness) -> None:
    alice = await make_user(ph, "alice")
    body = pusher_body("https://gw.example/_matrix/push/v1/notify", "key")
    del body["app_display_name"]
    resp = await call(ph, "POST", "/pushers/set", alice, body)
    assert resp.status == 400 and resp.json["errcode"] == "M_MISSING_PARAM"


async def test_pushers_per_user_capped(make_hs_config, gateway: FakeGateway) -> None:  # type: ignore[no-untyped-def]
    h = await start_harness([make_hs_config(push={"max_pushers_per_user": 2}, **LOOPBACK)])
    try:
        alice = await make_user(h, "alice")
        await set_pusher(h, alice, gateway.url, "k1")
        await set_pusher(h, alice, gateway.url, "k2")
        await set_pusher(h, alice, gateway.url, "k2", lang="de")  # a replacement is no new one
        resp = await call(h, "POST", "/pushers/set", alice, pusher_body(gateway.url, "k3"))
        assert resp.status == 403 and resp.json["errcode"] == "M_LIMIT_EXCEEDED"
    finally:
        await h.close()


async def test_logout_and_device_deletion_remove_the_devices_pushers(
    ph: Harness, gateway: FakeGateway
) -> None:
    alice = await make_user(ph, "alice")
    tablet = await ph.hs.registration.create_login(alice.user_id, None, None)
    laptop = await ph.hs.registration.create_login(alice.user_id, None, None)
    await set_pusher(ph, alice, gateway.url, "phone")
    for login, pushkey in ((tablet, "tablet"), (laptop, "laptop")):
        resp = await ph.request(
            "POST",
            "/_matrix/client/v3/pushers/set",
            json=pusher_body(gateway.url, pushkey, append=True),
            token=login["access_token"],
        )
        assert resp.status == 200
    assert (await call(ph, "POST", "/logout", alice, {})).status == 200
    resp = await ph.request("GET", "/_matrix/client/v3/pushers", token=laptop["access_token"])
    assert sorted(p["pushkey"] for p in resp.json["pushers"]) == ["laptop", "tablet"]
    await ph.hs.devices.delete_devices(alice.user_id, [tablet["device_id"]])
    resp = await ph.request("GET", "/_matrix/client/v3/pushers", token=laptop["access_token"])
    assert [p["pushkey"] for p in resp.json["pushers"]] == ["laptop"]
    # The pool notices at the queue's next run and drops it.
    bob = await make_user(ph, "bob")
    on_laptop = TestUser(alice.user_id, laptop["access_token"], laptop["device_id"])
    room_id = await room_of(ph, bob, on_laptop)
    await say(ph, bob, room_id, "ring")
    await eventually(lambda: len(gateway.to("laptop")) == 1)
    await eventually(
        lambda: ph.hs.pushers.queue(alice.user_id, "org.example.app", "tablet") is None
    )
    assert gateway.to("tablet") == [] and gateway.to("phone") == []


async def test_delivery_shape_priority_and_counts(ph: Harness, gateway: FakeGateway) -> None:
    alice = await make_user(ph, "alice")
    bob = await make_user(ph, "bob")
    await call(ph, "PUT", f"/profile/{alice.user_id}/displayname", alice, {"displayname": "Alice"})
    room_id = await room_of(ph, alice, bob)
    await call(ph, "PUT", f"/rooms/{room_id}/state/m.room.name", alice, {"name": "Tea"})
    await set_pusher(ph, bob, gateway.url, "bobkey", data={"url": gateway.url, "extra": 1})
    event_id = await say(ph, alice, room_id, "hello there")
    await eventually(lambda: len(gateway.to("bobkey")) == 1)
    n = gateway.to("bobkey")[0]
    assert n["event_id"] == event_id
    assert n["room_id"] == room_id
    assert n["type"] == "m.room.message"
    assert n["sender"] == alice.user_id
    assert n["sender_display_name"] == "Alice"
    assert n["room_name"] == "Tea"
    assert n["content"] == {"msgtype": "m.text", "body": "hello there"}
    assert n["counts"] == {"unread": 1}
    # One to one: the default rule rings (sound), so the priority is high.
    assert n["prio"] == "high"
    (device,) = n["devices"]
    assert device["app_id"] == "org.example.app"
    assert device["pushkey"] == "bobkey"
    assert device["data"] == {"extra": 1}  # the url is not sent
    assert isinstance(device["pushkey_ts"], int)
    assert device["tweaks"] == {"sound": "default"}
    # Alice's own message is not pushed to her, and she has no pusher anyway.
    assert len(gateway.received) == 1


async def test_group_message_low_mention_high(ph: Harness, gateway: FakeGateway) -> None:
    alice = await make_user(ph, "alice")
    bob = await make_user(ph, "bob")
    carol = await make_user(ph, "carol")
    room_id = await room_of(ph, alice, bob, carol)
    await set_pusher(ph, bob, gateway.url, "bobkey")
    await say(ph, alice, room_id, "hello all")
    await eventually(lambda: len(gateway.to("bobkey")) == 1)
    first = gateway.to("bobkey")[0]
    assert first["prio"] == "low" and "tweaks" not in first["devices"][0]
    assert first["counts"] == {"unread": 1}
    await say(ph, alice, room_id, "bob: look")
    await eventually(lambda: len(gateway.to("bobkey")) == 2)
    second = gateway.to("bobkey")[1]
    assert second["prio"] == "high"
    assert second["devices"][0]["tweaks"] == {"sound": "default", "highlight": True}
    # Still one room with unread notifications.
    assert second["counts"] == {"unread": 1}


async def test_event_id_only(ph: Harness, gateway: FakeGateway) -> None:
    alice = await make_user(ph, "alice")
    bob = await make_user(ph, "bob")
    room_id = await room_of(ph, alice, bob)
    await set_pusher(
        ph, bob, gateway.url, "bobkey", data={"url": gateway.url, "format": "event_id_only"}
    )
    event_id = await say(ph, alice, room_id, "secret")
    await eventually(lambda: len(gateway.to("bobkey")) == 1)
    n = gateway.to("bobkey")[0]
    assert set(n) == {"event_id", "room_id", "prio", "counts", "devices"}
    assert n["event_id"] == event_id and n["counts"] == {"unread": 1}
    assert n["devices"][0]["data"] == {"format": "event_id_only"}
    assert "tweaks" not in n["devices"][0]


async def test_failures_retry_with_backoff(ph: Harness, gateway: FakeGateway) -> None:
    alice = await make_user(ph, "alice")
    bob = await make_user(ph, "bob")
    room_id = await room_of(ph, alice, bob)
    await set_pusher(ph, bob, gateway.url, "bobkey")
    gateway.modes["bobkey"] = [500, 502, 503]
    await say(ph, alice, room_id, "one")
    await eventually(lambda: len(gateway.attempts) == 1)
    queue = ph.hs.pushers.queue(bob.user_id, "org.example.app", "bobkey")
    assert queue is not None and queue.failing_since is not None
    await say(ph, alice, room_id, "two")  # waits behind the backoff, in order
    await settle()
    assert len(gateway.attempts) == 1
    await advance(1.0)  # 1 s
    await eventually(lambda: len(gateway.attempts) == 2)
    await advance(1.5)
    assert len(gateway.attempts) == 2  # now 2 s
    await advance(0.5)
    await eventually(lambda: len(gateway.attempts) == 3)
    await advance(4.0)  # then 4 s: it works
    await eventually(lambda: len(gateway.to("bobkey")) == 2)
    assert [n["content"]["body"] for n in gateway.to("bobkey")] == ["one", "two"]
    assert queue.failing_since is None and queue.backoff_s == 1.0


async def test_gives_up_on_a_notification_after_a_day(ph: Harness, gateway: FakeGateway) -> None:
    alice = await make_user(ph, "alice")
    bob = await make_user(ph, "bob")
    room_id = await room_of(ph, alice, bob)
    await set_pusher(ph, bob, gateway.url, "bobkey")
    gateway.modes["bobkey"] = 500
    await say(ph, alice, room_id, "lost")
    await eventually(lambda: len(gateway.attempts) == 1)
    queue = ph.hs.pushers.queue(bob.user_id, "org.example.app", "bobkey")
    assert queue is not None and queue.failing_since is not None
    await say(ph, alice, room_id, "fresh")
    # A day of failures (the backoff is capped at an hour: the timings
    # themselves are the retry test's): the next failure gives up.
    queue.failing_since -= GIVE_UP_AFTER_MS
    await advance(1.0)
    await eventually(lambda: len(gateway.attempts) == 3)
    assert queue.failing_since is not None  # "lost" given up, "fresh" failing now
    gateway.modes["bobkey"] = "ok"
    await advance(1.0)
    await eventually(lambda: len(gateway.to("bobkey")) == 1)
    assert gateway.to("bobkey")[0]["content"]["body"] == "fresh"


async def test_rejected_pushkey_removes_the_pusher(ph: Harness, gateway: FakeGateway) -> None:
    alice = await make_user(ph, "alice")
    bob = await make_user(ph, "bob")
    room_id = await room_of(ph, alice, bob)
    await set_pusher(ph, bob, gateway.url, "stale")
    await set_pusher(ph, bob, gateway.url, "good", append=True)
    gateway.modes["stale"] = REJECT
    await say(ph, alice, room_id, "hi")
    await eventually(lambda: len(gateway.to("good")) == 1 and len(gateway.to("stale")) == 1)
    await eventually(lambda: ph.hs.pushers.queue(bob.user_id, "org.example.app", "stale") is None)
    pushers = (await call(ph, "GET", "/pushers", bob)).json["pushers"]
    assert [p["pushkey"] for p in pushers] == ["good"]
    await say(ph, alice, room_id, "again")
    await eventually(lambda: len(gateway.to("good")) == 2)
    assert len(gateway.to("stale")) == 1


async def test_blacklisted_gateway_is_never_contacted(
    harness: Harness, gateway: FakeGateway
) -> None:
    """Without a whitelist, loopback and private ranges are in the default
    ip_range_blacklist: by literal address or by a name resolving there."""
    alice = await make_user(harness, "alice")
    bob = await make_user(harness, "bob")
    room_id = await room_of(harness, alice, bob)
    assert gateway.server is not None
    urls = {
        "loopback": gateway.url,
        "private": "http://10.0.0.1/_matrix/push/v1/notify",
        "by-name": f"http://localhost:{gateway.server.port}/_matrix/push/v1/notify",
    }
    for pushkey, url in urls.items():
        await set_pusher(harness, bob, url, pushkey, append=True)
    await say(harness, alice, room_id, "hi")
    for pushkey in urls:
        queue = harness.hs.pushers.queue(bob.user_id, "org.example.app", pushkey)
        assert queue is not None
        await eventually(lambda q=queue: q.failing_since is not None)  # type: ignore[misc]
    await advance(10)
    assert gateway.attempts == []


async def test_hanging_gateway_delays_nothing_else(ph: Harness, gateway: FakeGateway) -> None:
    alice = await make_user(ph, "alice")
    bob = await make_user(ph, "bob")
    carol = await make_user(ph, "carol")
    room_id = await room_of(ph, alice, bob, carol)
    await set_pusher(ph, bob, gateway.url, "bobkey")
    await set_pusher(ph, carol, gateway.url, "carolkey")
    gateway.modes["bobkey"] = HANG
    await say(ph, alice, room_id, "one")
    await eventually(lambda: len(gateway.to("carolkey")) == 1 and "bobkey" in gateway.attempts)
    # Sending is not held up by the hanging request, nor is carol's pusher.
    await say(ph, alice, room_id, "two")
    await eventually(lambda: len(gateway.to("carolkey")) == 2)
    assert gateway.to("bobkey") == []
    # The request times out (60 s) and is tried again later.
    gateway.modes["bobkey"] = "ok"
    await advance(61)
    await eventually(lambda: len(gateway.to("bobkey")) == 2)


async def test_each_tenant_pushes_its_own(make_hs_config, gateway: FakeGateway) -> None:  # type: ignore[no-untyped-def]
    h = await start_harness(
        [make_hs_config("one.test", **LOOPBACK), make_hs_config("two.test", **LOOPBACK)]
    )
    try:
        rooms = {}
        users = {}
        for host in ("one.test", "two.test"):
            alice = await make_user(h, "alice", host=host)
            bob = await make_user(h, "bob", host=host)
            users[host] = (alice, bob)
            rooms[host] = await room_of(h, alice, bob, host=host)
            await set_pusher(h, bob, gateway.url, f"key-{host}", host=host)
        alice, _bob = users["one.test"]
        await say(h, alice, rooms["one.test"], "only one", host="one.test")
        await eventually(lambda: len(gateway.received) == 1)
        await settle()
        assert len(gateway.to("key-one.test")) == 1 and gateway.to("key-two.test") == []
        assert gateway.to("key-one.test")[0]["sender"] == "@alice:one.test"
        alice, _bob = users["two.test"]
        await say(h, alice, rooms["two.test"], "only two", host="two.test")
        await eventually(lambda: len(gateway.to("key-two.test")) == 1)
        assert len(gateway.to("key-one.test")) == 1
        assert gateway.to("key-two.test")[0]["sender"] == "@alice:two.test"
    finally:
        await h.close()


async def test_pushers_survive_a_restart(ph: Harness, gateway: FakeGateway) -> None:
    alice = await make_user(ph, "alice")
    bob = await make_user(ph, "bob")
    room_id = await room_of(ph, alice, bob)
    await set_pusher(ph, bob, gateway.url, "bobkey")
    await say(ph, alice, room_id, "before")
    await eventually(lambda: len(gateway.to("bobkey")) == 1)
    await ph.restart()
    await say(ph, alice, room_id, "after")
    await eventually(lambda: len(gateway.to("bobkey")) == 2)
    assert [n["content"]["body"] for n in gateway.to("bobkey")] == ["before", "after"]


async def test_reading_sends_the_lower_badge(ph: Harness, gateway: FakeGateway) -> None:
    alice = await make_user(ph, "alice")
    bob = await make_user(ph, "bob")
    room_id = await room_of(ph, alice, bob)
    await set_pusher(ph, bob, gateway.url, "bobkey")
    event_id = await say(ph, alice, room_id, "read me")
    await eventually(lambda: len(gateway.to("bobkey")) == 1)
    assert gateway.to("bobkey")[0]["counts"] == {"unread": 1}
    for receipt in ("m.read", "m.read.private"):
        resp = await call(ph, "POST", f"/rooms/{room_id}/receipt/{receipt}/{event_id}", bob, {})
        assert resp.status == 200
    await eventually(lambda: len(gateway.to("bobkey")) == 2)
    badge = gateway.to("bobkey")[1]
    assert badge["counts"] == {"unread": 0}
    assert badge["type"] is None and badge["sender"] == ""
    assert badge["devices"][0]["pushkey"] == "bobkey"
    # The second receipt changed nothing: no second badge.
    await settle()
    assert len(gateway.to("bobkey")) == 2


async def test_an_invite_is_pushed_to_the_invitee(ph: Harness, gateway: FakeGateway) -> None:
    alice = await make_user(ph, "alice")
    bob = await make_user(ph, "bob")
    await set_pusher(ph, bob, gateway.url, "bobkey")
    resp = await call(ph, "POST", "/createRoom", alice, {"invite": [bob.user_id]})
    assert resp.status == 200
    await eventually(lambda: len(gateway.to("bobkey")) == 1)
    n = gateway.to("bobkey")[0]
    assert n["type"] == "m.room.member" and n["membership"] == "invite"
    assert n["user_is_target"] is True and n["room_id"] == resp.json["room_id"]
    assert n["counts"] == {"unread": 1}  # the invite itself


async def test_deactivation_removes_pushers(ph: Harness, gateway: FakeGateway) -> None:
    bob = await make_user(ph, "bob")
    await set_pusher(ph, bob, gateway.url, "bobkey")
    await ph.hs.deactivation.deactivate(bob.user_id, erase=False)
    assert await ph.hs.pushers.get_pushers(bob.user_id) == []
