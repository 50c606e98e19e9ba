"""The HomeServer drives its services through one contract: caches and memory."""

from __future__ import annotations

from typing import Any, get_type_hints

from hamlet.handlers.common.service import ENTRY_BYTES
from hamlet.handlers.container import Services
from hamlet.handlers.rooms.event_cache import EVENT_BYTES
from hamlet.homeserver import HomeServer
from tests.support.harness import Harness
from tests.support.users import TestUser, make_user


async def _room_with_messages(harness: Harness, user: TestUser, count: int) -> str:
    resp = await harness.request(
        "POST", "/_matrix/client/v3/createRoom", json={"name": "Cached"}, token=user.token
    )
    assert resp.status == 200, resp.json
    room_id: str = resp.json["room_id"]
    for i in range(count):
        resp = await harness.request(
            "PUT",
            f"/_matrix/client/v3/rooms/{room_id}/send/m.room.message/t{i}",
            json={"msgtype": "m.text", "body": f"message {i}"},
            token=user.token,
        )
        assert resp.status == 200, resp.json
    return room_id


async def _messages(harness: Harness, user: TestUser, room_id: str) -> list[dict[str, Any]]:
    resp = await harness.request(
        "GET", f"/_matrix/client/v3/rooms/{room_id}/messages?dir=b&limit=50", token=user.token
    )
    assert resp.status == 200, resp.json
    chunk: list[dict[str, Any]] = resp.json["chunk"]
    for event in chunk:
        event["unsigned"].pop("age")  # moves with the clock, not with the cache
    return chunk


async def test_clear_caches_empties_every_cache_and_the_server_reads_storage_again(
    harness: Harness,
) -> None:
    hs = harness.hs
    alice = await make_user(harness, "alice")
    room_id = await _room_with_messages(harness, alice, 5)
    before = await _messages(harness, alice, room_id)
    resp = await harness.request("GET", "/_matrix/client/v3/pushrules/", token=alice.token)
    assert resp.status == 200
    assert len(hs.event_cache) > 0
    assert hs.room_state.cached_rooms() > 0
    assert len(hs.auth) > 0
    assert hs.push_rules.memory_usage() > 0

    hs.clear_caches()

    assert len(hs.event_cache) == 0
    assert hs.room_state.cached_rooms() == 0
    assert len(hs.auth) == 0
    assert hs.push_rules.memory_usage() == 0
    # Everything dropped is read again: the token, the room's state and events.
    assert await _messages(harness, alice, room_id) == before
    await _room_with_messages(harness, alice, 1)


async def test_memory_estimate_is_the_sum_of_the_services(harness: Harness) -> None:
    hs = harness.hs
    alice = await make_user(harness, "alice")
    room_id = await _room_with_messages(harness, alice, 8)
    await _messages(harness, alice, room_id)

    by_service = [service.memory_usage() for service in hs.services]
    assert hs.memory_estimate_bytes() == HomeServer.BASE_BYTES + sum(by_service)
    assert hs.event_cache in hs.services
    assert hs.event_cache.memory_usage() == len(hs.event_cache) * EVENT_BYTES >= 8 * EVENT_BYTES
    assert hs.auth.memory_usage() == len(hs.auth) * ENTRY_BYTES > 0

    hs.clear_caches()
    assert hs.memory_estimate_bytes() < HomeServer.BASE_BYTES + sum(by_service)
    assert hs.event_cache.memory_usage() == 0


async def test_memory_estimate_is_zero_unless_set_up(harness: Harness) -> None:
    assert HomeServer(harness.hs.config).memory_estimate_bytes() == 0
    hs = await harness.restart()
    assert hs.memory_estimate_bytes() >= HomeServer.BASE_BYTES
    await hs.shutdown()
    assert hs.memory_estimate_bytes() == 0


async def test_every_declared_service_is_built(harness: Harness) -> None:
    missing = [name for name in get_type_hints(Services) if not hasattr(harness.hs, name)]
    assert missing == []
