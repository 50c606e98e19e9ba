"""A /sync that answers at once (initial, full_state, timeout=0) keeps its
result for an identical request while nothing it depends on has moved
(`caches.sync_response_cache_duration`); anything that moved (a stream,
a one-time key, the device's own later sync) makes the next one fresh."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest

from hamlet.config import HomeServerConfig
from hamlet.config.errors import ConfigError
from hamlet.config.homeserver import validate_config
from hamlet.handlers.sync import sharing
from tests.conftest import advance
from tests.support.harness import Harness, Response
from tests.support.users import TestUser, make_user
from tests.sync.helpers import body, fast_harness
from tests.user_streams.helpers import call, public_room, send_text

FULL = "/sync?timeout=0&full_state=true"


@pytest.fixture
async def h(make_hs_config: Callable[..., HomeServerConfig]) -> AsyncIterator[Harness]:
    async with fast_harness(make_hs_config, caches={"sync_response_cache_duration": "30s"}) as h:
        yield h


class Builds:
    """Counts the /sync builds."""

    def __init__(self, h: Harness, monkeypatch: pytest.MonkeyPatch) -> None:
        self.count = 0
        build = h.hs.sync._build

        async def counted(*args: Any) -> Any:
            self.count += 1
            return await build(*args)

        monkeypatch.setattr(h.hs.sync, "_build", counted)


@pytest.fixture
def builds(h: Harness, monkeypatch: pytest.MonkeyPatch) -> Builds:
    return Builds(h, monkeypatch)


async def sync(h: Harness, user: TestUser, path: str = FULL) -> Response:
    resp = await call(h, "GET", path, user)
    assert resp.status == 200, resp.body
    return resp


def timeline(resp: Response, room: str) -> list[str]:
    return [
        e["content"].get("body") for e in body(resp)["rooms"]["join"][room]["timeline"]["events"]
    ]


async def test_a_repeated_full_sync_is_answered_from_the_kept_result(
    h: Harness, builds: Builds
) -> None:
    alice = await make_user(h, "alice")
    room = await public_room(h, alice)
    await send_text(h, alice, room, "hello")
    first = await sync(h, alice)
    txns = h.hs.db.total_txns
    again = [await sync(h, alice) for _ in range(5)]
    assert builds.count == 1
    assert all(r.body == first.body for r in again)
    # Answered without reading the database.
    assert h.hs.db.total_txns == txns
    # An initial sync and an incremental one with timeout=0 are kept too.
    since = body(first)["next_batch"]
    for path in ("/sync", f"/sync?since={since}&timeout=0"):
        await sync(h, alice, path)
        await sync(h, alice, path)
    assert builds.count == 3


async def test_any_stream_moving_makes_the_next_sync_fresh(h: Harness, builds: Builds) -> None:
    alice = await make_user(h, "alice")
    bob = await make_user(h, "bob")
    room = await public_room(h, alice, bob)
    await sync(h, alice)
    await send_text(h, bob, room, "news")
    assert timeline(await sync(h, alice), room)[-1] == "news"
    resp = await call(h, "PUT", f"/rooms/{room}/typing/{bob.user_id}", bob, {"typing": True})
    assert resp.status == 200
    typing = body(await sync(h, alice))["rooms"]["join"][room]["ephemeral"]["events"]
    assert typing[0]["content"]["user_ids"] == [bob.user_id]
    resp = await call(h, "PUT", f"/user/{alice.user_id}/account_data/m.x", alice, {"n": 1})
    assert resp.status == 200
    data = {e["type"]: e["content"] for e in body(await sync(h, alice))["account_data"]["events"]}
    assert data["m.x"] == {"n": 1}
    assert builds.count == 4


async def test_one_time_keys_uploaded_or_claimed_show_at_once(h: Harness, builds: Builds) -> None:
    alice = await make_user(h, "alice")
    bob = await make_user(h, "bob")
    assert body(await sync(h, alice))["device_one_time_keys_count"]["signed_curve25519"] == 0
    keys = {f"signed_curve25519:k{i}": {"key": f"key{i}", "signatures": {}} for i in range(3)}
    resp = await call(h, "POST", "/keys/upload", alice, {"one_time_keys": keys})
    assert resp.status == 200, resp.body
    assert body(await sync(h, alice))["device_one_time_keys_count"]["signed_curve25519"] == 3
    claim = {"one_time_keys": {alice.user_id: {alice.device_id: "signed_curve25519"}}}
    resp = await call(h, "POST", "/keys/claim", bob, claim)
    assert resp.status == 200, resp.body
    assert body(await sync(h, alice))["device_one_time_keys_count"]["signed_curve25519"] == 2
    assert builds.count == 3


async def test_to_device_messages_are_never_served_from_a_kept_result(
    h: Harness, builds: Builds
) -> None:
    alice = await make_user(h, "alice")
    bob = await make_user(h, "bob")
    since = body(await sync(h, alice, "/sync"))["next_batch"]
    message = {"messages": {alice.user_id: {alice.device_id: {"n": 1}}}}
    resp = await call(h, "PUT", "/sendToDevice/m.test/t1", bob, message)
    assert resp.status == 200
    incremental = f"/sync?since={since}&timeout=0"
    got = body(await sync(h, alice, incremental))
    assert [m["content"] for m in got["to_device"]["events"]] == [{"n": 1}]
    # The device confirms the message with the next token: it is gone.
    await sync(h, alice, f"/sync?since={got['next_batch']}&timeout=0")
    assert body(await sync(h, alice, incremental))["to_device"]["events"] == []
    assert builds.count == 4


async def test_another_sync_of_the_device_drops_its_kept_result(h: Harness, builds: Builds) -> None:
    alice = await make_user(h, "alice")
    await sync(h, alice)
    await sync(h, alice, "/sync")
    await sync(h, alice)
    assert builds.count == 3
    # Another device keeps its own (both rebuilt once: the login moved the
    # device lists).
    other = await login_again(h, alice)
    await sync(h, other)
    await sync(h, alice)
    await sync(h, other)
    await sync(h, alice)
    assert builds.count == 5


async def login_again(h: Harness, user: TestUser) -> TestUser:
    resp = await h.request(
        "POST",
        "/_matrix/client/v3/login",
        json={
            "type": "m.login.password",
            "identifier": {"type": "m.id.user", "user": user.user_id},
            "password": "password",
        },
    )
    assert resp.status == 200, resp.body
    return TestUser(user.user_id, resp.json["access_token"], resp.json["device_id"])


async def test_a_kept_result_expires(h: Harness, builds: Builds) -> None:
    alice = await make_user(h, "alice")
    await sync(h, alice)
    await advance(29)
    await sync(h, alice)
    assert builds.count == 1
    await advance(2)
    assert len(h.hs.sync.kept) == 0
    await sync(h, alice)
    assert builds.count == 2


async def test_nothing_is_kept_with_a_duration_of_zero(
    make_hs_config: Callable[..., HomeServerConfig], monkeypatch: pytest.MonkeyPatch
) -> None:
    async with fast_harness(make_hs_config, caches={"sync_response_cache_duration": 0}) as h:
        builds = Builds(h, monkeypatch)
        alice = await make_user(h, "alice")
        await sync(h, alice)
        await sync(h, alice)
        assert builds.count == 2 and len(h.hs.sync.kept) == 0


def test_the_duration_is_read_as_synapse_writes_it(tmp_path: Any) -> None:
    base = {"server_name": "kept.test", "signing_key_path": str(tmp_path / "k")}
    config, _ = validate_config(
        {**base, "caches": {"sync_response_cache_duration": "5m"}}, config_dir=tmp_path
    )
    assert config.sync_response_cache_duration == 300_000
    assert validate_config(base, config_dir=tmp_path)[0].sync_response_cache_duration == 120_000
    with pytest.raises(ConfigError, match="sync_response_cache_duration"):
        validate_config(
            {**base, "caches": {"sync_response_cache_duration": "2d"}}, config_dir=tmp_path
        )


@pytest.mark.parametrize("cap", ["MAX_KEPT", "MAX_KEPT_BYTES"])
async def test_the_oldest_kept_result_goes_first_past_the_tenants_cap(
    h: Harness, builds: Builds, monkeypatch: pytest.MonkeyPatch, cap: str
) -> None:
    # One result fits, by count or by the bytes of its body.
    monkeypatch.setattr(sharing, cap, 1)
    alice = await make_user(h, "alice")
    bob = await make_user(h, "bob")
    await sync(h, alice)
    await sync(h, alice)
    await sync(h, bob)
    await sync(h, bob)
    assert builds.count == 2 and len(h.hs.sync.kept) == 1
    await sync(h, alice)
    assert builds.count == 3
