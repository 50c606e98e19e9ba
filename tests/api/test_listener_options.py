"""A listener's own options: x_forwarded (the client address) and compress."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from hamlet.config import HomeServerConfig
from hamlet.config.model import ListenerConfig, ResourceConfig
from tests.accounts.conftest import OPEN_REGISTRATION
from tests.conftest import settle
from tests.support.harness import Harness, Response, start_harness

MakeConfig = Callable[..., HomeServerConfig]
V3 = "/_matrix/client/v3"
CLIENT = (ResourceConfig(names=("client",)),)
BEHIND_PROXY = ListenerConfig(port=0, x_forwarded=True, resources=CLIENT)
DIRECT = ListenerConfig(port=0, resources=CLIENT)


async def _register(h: Harness, username: str, forwarded_for: str) -> Response:
    body: dict[str, Any] = {
        "username": username,
        "password": "correct horse",
        "auth": {"type": "m.login.dummy"},
    }
    return await h.request(
        "POST", f"{V3}/register", json=body, headers={"X-Forwarded-For": forwarded_for}
    )


async def _last_seen_ips(h: Harness, token: str, forwarded_for: str) -> list[str | None]:
    """The devices' last-seen addresses after a request with that header."""
    await h.request(
        "GET", f"{V3}/account/whoami", token=token, headers={"X-Forwarded-For": forwarded_for}
    )
    # The last-seen write happens in the background; settle() returns once it committed.
    await settle()
    resp = await h.request("GET", f"{V3}/devices", token=token)
    return [d.get("last_seen_ip") for d in resp.json["devices"]]


async def _harness(make_hs_config: MakeConfig, listener: ListenerConfig) -> Harness:
    config = make_hs_config(
        **{**OPEN_REGISTRATION, "rc_registration": {"per_second": 0.001, "burst_count": 1}}
    )
    return await start_harness([config], listener=listener)


async def test_x_forwarded_listener_limits_each_forwarded_address(
    make_hs_config: MakeConfig,
) -> None:
    h = await _harness(make_hs_config, BEHIND_PROXY)
    try:
        first = await _register(h, "a1", "203.0.113.1, 10.0.0.1")
        assert first.status == 200, first.body
        assert (await _register(h, "a2", "203.0.113.1")).status == 429
        # Another client behind the same proxy has its own bucket.
        assert (await _register(h, "b1", "203.0.113.2, 10.0.0.1")).status == 200
        # Garbage is not an address: the proxy's own address is used.
        assert (await _register(h, "c1", "not-an-ip")).status == 200
        assert (await _register(h, "c2", "also not")).status == 429

        token = first.json["access_token"]
        assert await _last_seen_ips(h, token, "203.0.113.1") == ["203.0.113.1"]
    finally:
        await h.close()


async def test_a_listener_without_x_forwarded_ignores_the_header(
    make_hs_config: MakeConfig,
) -> None:
    h = await _harness(make_hs_config, DIRECT)
    try:
        first = await _register(h, "a1", "203.0.113.1")
        assert first.status == 200, first.body
        assert (await _register(h, "b1", "203.0.113.2")).status == 429
        token = first.json["access_token"]
        assert await _last_seen_ips(h, token, "203.0.113.1") == ["127.0.0.1"]
    finally:
        await h.close()


async def _versions(h: Harness, accept: str) -> Response:
    return await h.request("GET", "/_matrix/client/versions", headers={"Accept-Encoding": accept})


async def test_compress_gzips_json_for_clients_that_accept_it(
    make_hs_config: MakeConfig,
) -> None:
    listener = ListenerConfig(port=0, resources=(ResourceConfig(("client",), compress=True),))
    h = await start_harness([make_hs_config()], listener=listener)
    try:
        resp = await _versions(h, "gzip")
        assert resp.status == 200
        assert resp.headers["Content-Encoding"] == "gzip"
        assert b"versions" in resp.body  # the client undid the gzip
        plain = await _versions(h, "identity")
        assert "Content-Encoding" not in plain.headers
        assert plain.body == resp.body
    finally:
        await h.close()


async def test_without_compress_nothing_is_gzipped(make_hs_config: MakeConfig) -> None:
    h = await start_harness([make_hs_config()], listener=DIRECT)
    try:
        resp = await _versions(h, "gzip")
        assert resp.status == 200 and "Content-Encoding" not in resp.headers
    finally:
        await h.close()


async def test_large_json_is_streamed_whole_compressed_or_not(make_hs_config: MakeConfig) -> None:
    listener = ListenerConfig(port=0, resources=(ResourceConfig(("client",), compress=True),))
    # Account data is paged at 1 MiB per sync by default: raised so one body is over it.
    config = make_hs_config(
        **OPEN_REGISTRATION, limits={"max_account_data_sync_bytes": 4 * 1024**2}
    )
    h = await start_harness([config], listener=listener)
    try:
        reg = await _register(h, "big", "203.0.113.9")
        token = reg.json["access_token"]
        user_id = reg.json["user_id"]
        # Over a megabyte of JSON: written a chunk at a time, gzipped chunk by chunk.
        pads = [bytes(range(256)).hex() * 100 for _ in range(25)]
        for i, pad in enumerate(pads):
            resp = await h.request(
                "PUT", f"{V3}/user/{user_id}/account_data/big.{i}", token=token, json={"p": pad}
            )
            assert resp.status == 200, resp.body
        for accept in ("gzip", "identity"):
            resp = await h.request(
                "GET", f"{V3}/sync", token=token, headers={"Accept-Encoding": accept}
            )
            assert resp.status == 200
            assert ("Content-Encoding" in resp.headers) == (accept == "gzip")
            events = {e["type"]: e["content"] for e in resp.json["account_data"]["events"]}
            assert [events[f"big.{i}"]["p"] for i in range(25)] == pads
    finally:
        await h.close()
