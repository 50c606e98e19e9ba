"""/_synapse/admin/v1/federation/destinations...: Synapse's shapes, paging,
ordering, filters, bad parameters and reset_connection (both engines)."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from tests.admin.users_support import assert_error, ok
from tests.conftest import advance, settle
from tests.federation.outbox_support import DOWN, FakeTransport, attach, room_with_remotes
from tests.support.harness import Harness, start_harness
from tests.support.users import TestUser, make_user
from tests.user_streams.helpers import send_text

BASE = "/_synapse/admin/v1/federation/destinations"
SERVERS = ("a.example", "b.example", "c.example", "down.example")


@pytest.fixture
async def fh(make_hs_config) -> AsyncIterator[Harness]:  # type: ignore[no-untyped-def]
    config = make_hs_config(
        federation={"max_long_retries": 0, "destination_min_retry_interval": "1h"}
    )
    h = await start_harness([config])
    yield h
    await h.close()


async def federating(h: Harness) -> tuple[TestUser, str, FakeTransport]:
    """An admin in a room with four remote servers, one of them down."""
    transport = attach(h.hs, FakeTransport(modes={"down.example": DOWN}))
    admin = await make_user(h, "admin", admin=True)
    room = await room_with_remotes(h, admin, *SERVERS)
    await send_text(h, admin, room, "hello")
    await settle()
    return admin, room, transport


async def test_list_and_get(fh: Harness) -> None:
    admin, room, _ = await federating(fh)
    body = ok(await fh.request("GET", BASE, token=admin.token))
    assert body["total"] == 4 and "next_token" not in body
    assert [d["destination"] for d in body["destinations"]] == list(SERVERS)
    up = body["destinations"][0]
    assert up == {
        "destination": "a.example",
        "retry_last_ts": 0,
        "retry_interval": 0,
        "failure_ts": None,
        "last_successful_stream_ordering": up["last_successful_stream_ordering"],
    }
    assert isinstance(up["last_successful_stream_ordering"], int)
    down = body["destinations"][3]
    assert down["retry_interval"] == 3_600_000 and down["failure_ts"] == down["retry_last_ts"]
    assert down["last_successful_stream_ordering"] is None

    # Paging, order, direction, filter.
    page = ok(await fh.request("GET", f"{BASE}?from=1&limit=2", token=admin.token))
    assert [d["destination"] for d in page["destinations"]] == ["b.example", "c.example"]
    assert page["next_token"] == "3" and page["total"] == 4
    back = ok(await fh.request("GET", f"{BASE}?dir=b&limit=1", token=admin.token))
    assert back["destinations"][0]["destination"] == "down.example"
    by_retry = ok(
        await fh.request("GET", f"{BASE}?order_by=retry_interval&dir=b", token=admin.token)
    )
    assert by_retry["destinations"][0]["destination"] == "down.example"
    found = ok(await fh.request("GET", f"{BASE}?destination=own", token=admin.token))
    assert [d["destination"] for d in found["destinations"]] == ["down.example"]
    assert found["total"] == 1
    none = ok(await fh.request("GET", f"{BASE}?destination=%25_", token=admin.token))
    assert none == {"destinations": [], "total": 0}

    assert ok(await fh.request("GET", f"{BASE}/down.example", token=admin.token)) == down
    rooms = ok(await fh.request("GET", f"{BASE}/a.example/rooms", token=admin.token))
    assert rooms["total"] == 1
    assert rooms["rooms"][0]["room_id"] == room
    assert rooms["rooms"][0]["stream_ordering"] == up["last_successful_stream_ordering"]


async def test_bad_requests(fh: Harness) -> None:
    admin, _room, _ = await federating(fh)
    alice = await make_user(fh, "alice")
    for query in ("from=-1", "limit=-5", "limit=abc", "from=x", "dir=up", "order_by=room_id"):
        resp = await fh.request("GET", f"{BASE}?{query}", token=admin.token)
        assert_error(resp, 400, "M_INVALID_PARAM")
    resp = await fh.request("GET", f"{BASE}/a.example/rooms?dir=sideways", token=admin.token)
    assert_error(resp, 400, "M_INVALID_PARAM")
    assert_error(await fh.request("GET", BASE, token=alice.token), 403, "M_FORBIDDEN")
    assert_error(await fh.request("GET", BASE), 401, "M_MISSING_TOKEN")
    for path in (f"{BASE}/nowhere.example", f"{BASE}/nowhere.example/rooms"):
        assert_error(await fh.request("GET", path, token=admin.token), 404, "M_NOT_FOUND")
    resp = await fh.request(
        "POST", f"{BASE}/nowhere.example/reset_connection", json={}, token=admin.token
    )
    assert_error(resp, 404, "M_NOT_FOUND")
    # Not failing: nothing to reset.
    resp = await fh.request(
        "POST", f"{BASE}/a.example/reset_connection", json={}, token=admin.token
    )
    assert_error(resp, 400, "M_UNKNOWN")
    resp = await fh.request(
        "POST", f"{BASE}/down.example/reset_connection", body=b"{nope", token=admin.token
    )
    assert_error(resp, 400, "M_NOT_JSON")


async def test_reset_connection_retries_now(fh: Harness) -> None:
    admin, room, transport = await federating(fh)
    await send_text(fh, admin, room, "while down")
    await advance(60)
    assert len(transport.tries("down.example")) == 1  # backed off for an hour
    transport.modes["down.example"] = "ok"
    resp = await fh.request(
        "POST", f"{BASE}/down.example/reset_connection", json={}, token=admin.token
    )
    assert ok(resp) == {}
    await settle()
    assert len(transport.to("down.example")) == 1  # caught up at once
    body = ok(await fh.request("GET", f"{BASE}/down.example", token=admin.token))
    assert (body["retry_last_ts"], body["retry_interval"], body["failure_ts"]) == (0, 0, None)
    assert isinstance(body["last_successful_stream_ordering"], int)
