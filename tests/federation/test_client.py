"""FederationClient against TLS servers on loopback: signing, errors, filters and caps."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

import orjson
import pytest
from aiohttp import web

from hamlet.config import FederationTransportConfig
from hamlet.core.crypto import generate_signing_key
from hamlet.core.xmatrix import parse_header, verify_request
from hamlet.handlers.federation.client import (
    FederationDeniedError,
    FederationUnavailableError,
    RemoteMatrixError,
)
from hamlet.runtime.clock import Clock
from hamlet.runtime.http_client import HttpClient
from hamlet.runtime.logcontext import LoggingContext, current_context
from tests.conftest import advance
from tests.federation.fakes import ORIGIN, FakeSrv, make_client, make_discovery, srv
from tests.support.harness import RecordingHandler
from tests.support.local_server import FakeResolver, serve
from tests.support.tls import SelfSigned


@dataclass
class Remote:
    """A federation server on loopback that records what it was sent."""

    port: int
    requests: list[web.Request] = field(default_factory=list)
    bodies: list[bytes] = field(default_factory=list)
    hold: asyncio.Event = field(default_factory=asyncio.Event)
    hanging: int = 0
    arrived: asyncio.Event = field(default_factory=asyncio.Event)
    two_hanging: asyncio.Event = field(default_factory=asyncio.Event)

    @property
    def name(self) -> str:
        return f"127.0.0.1:{self.port}"


@pytest.fixture
async def remote(tls_cert: SelfSigned) -> AsyncIterator[Remote]:
    holder: list[Remote] = []

    async def handle(request: web.Request) -> web.StreamResponse:
        r = holder[0]
        r.requests.append(request)
        r.arrived.set()
        r.bodies.append(await request.read())
        if request.path == "/echo":
            return web.json_response({"ok": True, "uri": request.raw_path})
        if request.path == "/forbidden":
            return web.json_response({"errcode": "M_FORBIDDEN", "error": "no"}, status=403)
        if request.path == "/html":
            return web.Response(text="<html>", status=200)
        if request.path == "/list":
            return web.json_response([1, 2])
        if request.path == "/bad-gateway":
            return web.Response(text="upstream down", status=502)
        if request.path == "/hang":
            r.hanging += 1
            if r.hanging >= 2:
                r.two_hanging.set()
            await r.hold.wait()
            return web.json_response({})
        if request.path == "/.well-known/matrix/server":
            target = request.host.rsplit(":", 1)[0]
            if target == "slow.test":
                await r.hold.wait()
            return web.json_response({"m.server": WELL_KNOWN_TARGETS[target]})
        raise web.HTTPNotFound()

    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", handle)
    async with serve(app, tls_cert.server_context()) as port:
        holder.append(Remote(port))
        yield holder[0]
        holder[0].hold.set()


@pytest.fixture
async def http() -> AsyncIterator[HttpClient]:
    resolver = FakeResolver(
        {
            "to-loopback.test": ["127.0.0.1"],
            "to-private.test": ["127.0.0.1"],
            "to-v6.test": ["127.0.0.1"],
            "srv-loopback.test": ["127.0.0.1"],
            "internal.test": ["10.0.0.1"],
            "slow.test": ["127.0.0.1"],
        }
    )
    client = HttpClient(resolver_factory=lambda: resolver)
    yield client
    await client.close()


WELL_KNOWN_TARGETS = {
    "to-loopback.test": "127.0.0.1:8448",
    "to-private.test": "10.1.2.3:8448",
    "to-v6.test": "[::1]:8448",
    "slow.test": "127.0.0.1:8448",
}


async def test_requests_are_signed_with_x_matrix(
    http: HttpClient, clock: Clock, remote: Remote
) -> None:
    key = generate_signing_key()
    client = make_client(http, clock, signing_key=key)
    got = await client.get_json(remote.name, "/echo", {"a": "1", "b": ["x y", "z"]})
    assert got == {"ok": True, "uri": "/echo?a=1&b=x+y&b=z"}
    sent = await client.put_json(remote.name, "/echo", {"pdus": [{"k": "v"}]})
    assert sent["ok"] is True
    post = await client.post_json(remote.name, "/echo", {"n": 1}, args={"v": "2"})
    assert post["uri"] == "/echo?v=2"
    for request, body in zip(remote.requests, remote.bodies, strict=True):
        assert request.headers["Host"] == remote.name
        auth = parse_header(request.headers["Authorization"])
        assert (auth.origin, auth.destination, auth.key_id) == (ORIGIN, remote.name, key.key_id)
        verify_request(
            auth,
            method=request.method,
            uri=request.raw_path,
            destination=remote.name,
            content=orjson.loads(body) if body else None,
            verify_key=key.verify_key,
        )
    assert remote.requests[1].headers["Content-Type"] == "application/json"


async def test_errors_are_typed(http: HttpClient, clock: Clock, remote: Remote) -> None:
    client = make_client(http, clock)
    with pytest.raises(RemoteMatrixError) as forbidden:
        await client.get_json(remote.name, "/forbidden")
    assert (forbidden.value.status, forbidden.value.errcode) == (403, "M_FORBIDDEN")
    with pytest.raises(RemoteMatrixError) as unknown:
        await client.get_json(remote.name, "/nowhere")
    assert unknown.value.status == 404
    with pytest.raises(RemoteMatrixError) as gateway:
        await client.get_json(remote.name, "/bad-gateway")
    assert (gateway.value.status, gateway.value.errcode) == (502, None)
    for not_an_object in ("/html", "/list"):
        with pytest.raises(FederationUnavailableError):
            await client.get_json(remote.name, not_an_object)
    # Nothing listens on the port next to the server's (connection refused).
    with pytest.raises(FederationUnavailableError):
        await client.get_json("127.0.0.1:1", "/echo")
    with pytest.raises(FederationUnavailableError):
        await client.get_json("not a server!", "/echo")


async def test_certificates_are_verified_when_configured(
    http: HttpClient, clock: Clock, remote: Remote
) -> None:
    client = make_client(http, clock, verify_certificates=True)
    with pytest.raises(FederationUnavailableError, match="certificate"):
        await client.get_json(remote.name, "/echo")


async def test_the_domain_whitelist_refuses_other_servers(
    http: HttpClient, clock: Clock, remote: Remote
) -> None:
    client = make_client(http, clock, domain_whitelist=frozenset({"friend.test"}))
    with pytest.raises(FederationDeniedError):
        await client.get_json(remote.name, "/echo")
    assert remote.requests == []
    allowed = make_client(http, clock, domain_whitelist=frozenset({remote.name}))
    assert (await allowed.get_json(remote.name, "/echo"))["ok"] is True


@pytest.mark.parametrize(
    ("destination", "records"),
    [
        ("127.0.0.1:{port}", {}),
        ("internal.test:{port}", {}),
        ("to-loopback.test", {}),
        ("to-private.test", {}),
        ("to-v6.test", {}),
        ("srv-loopback.test", {"_matrix-fed._tcp.srv-loopback.test": "127.0.0.1"}),
    ],
)
async def test_the_default_filter_blocks_internal_addresses_however_reached(
    http: HttpClient,
    clock: Clock,
    remote: Remote,
    destination: str,
    records: dict[str, str],
) -> None:
    """Directly, by DNS, by a well-known (fetched with loopback allowed) or by SRV."""
    srv_records = FakeSrv({name: [srv(host, remote.port)] for name, host in records.items()})
    # The well-known itself is served on loopback, so the discovery that
    # reads it may reach loopback; the request it leads to may not.
    lenient = make_discovery(http, clock, srv_records=srv_records, well_known_port=remote.port)
    strict = make_client(http, clock, config=FederationTransportConfig(verify_certificates=False))
    client = make_client(
        http, clock, config=FederationTransportConfig(verify_certificates=False), discovery=lenient
    )
    for c in (client, strict):
        with pytest.raises(FederationUnavailableError, match="blocked"):
            await c.get_json(destination.format(port=remote.port), "/echo")
    assert [r.path for r in remote.requests if r.path == "/echo"] == []


async def test_one_tenant_is_capped_and_its_neighbour_is_not(
    http: HttpClient, clock: Clock, remote: Remote
) -> None:
    capped = make_client(http, clock, max_concurrent=2)
    neighbour = make_client(http, clock)
    loop = asyncio.get_running_loop()
    stuck = [
        loop.create_task(capped.get_json(remote.name, "/hang", timeout_ms=30_000)) for _ in range(5)
    ]
    await remote.two_hanging.wait()
    assert capped.in_flight == 2
    # The neighbour's requests go through while the capped tenant waits.
    assert (await neighbour.get_json(remote.name, "/echo"))["ok"] is True
    assert remote.hanging == 2
    await advance(31)
    results: list[Any] = await asyncio.gather(*stuck, return_exceptions=True)
    assert all(isinstance(r, FederationUnavailableError) for r in results)
    assert capped.in_flight == 0


async def test_a_slow_discovery_counts_against_the_request_timeout(
    http: HttpClient, clock: Clock, remote: Remote, log_records: RecordingHandler
) -> None:
    client = make_client(http, clock, well_known_port=remote.port)
    with LoggingContext("PUT-7", "origin.test", request="PUT-7") as mine:
        pending = asyncio.get_running_loop().create_task(
            client.put_json("slow.test", "/send/1", {}, timeout_ms=5_000)
        )
        while not any(r.host.startswith("slow.test") for r in remote.requests):
            await remote.arrived.wait()
            remote.arrived.clear()
        await advance(5.5)
        with pytest.raises(FederationUnavailableError, match="timed out"):
            await pending
        assert current_context() is mine
    (line,) = log_records.matching("Timed out after")
    assert line.request == "PUT-7"  # type: ignore[attr-defined]
