"""Resolving server names (spec: "Resolving server names") against loopback servers.

Names resolve through a fake DNS table to 127.0.0.1, where a TLS server
with a self-signed certificate answers `/.well-known/matrix/server` as each
test wants; SRV records come from a fake table. Loopback is allowed unless
a test says otherwise.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from typing import Any

import orjson
import pytest
from aiohttp import web

from hamlet.config import FederationTransportConfig
from hamlet.handlers.federation.discovery import (
    WELL_KNOWN_MAX_BYTES,
    WELL_KNOWN_MAX_REDIRECTS,
    ServerAddress,
    ServerDiscovery,
)
from hamlet.runtime.clock import Clock
from hamlet.runtime.http_client import HttpClient
from tests.conftest import advance
from tests.federation.fakes import FakeSrv, make_discovery, srv
from tests.support.local_server import FakeResolver, serve
from tests.support.tls import SelfSigned

WellKnown = Callable[[web.Request], web.StreamResponse]


@dataclass
class Site:
    """A TLS server on loopback whose well-known answer each test sets."""

    port: int
    answers: dict[str, WellKnown] = field(default_factory=dict)
    hits: list[str] = field(default_factory=list)

    def delegate(self, host: str, body: Any, headers: dict[str, str] | None = None) -> None:
        self.answers[host] = lambda _req: web.Response(
            body=orjson.dumps(body), content_type="application/json", headers=headers
        )


@pytest.fixture
async def site(tls_cert: SelfSigned) -> AsyncIterator[Site]:
    holder: list[Site] = []

    async def handle(request: web.Request) -> web.StreamResponse:
        host = (request.host or "").rsplit(":", 1)[0]
        holder[0].hits.append(f"{host}{request.path}")
        answer = holder[0].answers.get(host)
        if answer is None:
            raise web.HTTPNotFound()
        return answer(request)

    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", handle)
    async with serve(app, tls_cert.server_context()) as port:
        holder.append(Site(port))
        yield holder[0]


@pytest.fixture
async def http() -> AsyncIterator[HttpClient]:
    resolver = FakeResolver({name: ["127.0.0.1"] for name in ("example.test", "other.test")})
    client = HttpClient(resolver_factory=lambda: resolver)
    yield client
    await client.close()


def discovery_for(
    http: HttpClient, clock: Clock, site: Site, srv_records: FakeSrv | None = None
) -> ServerDiscovery:
    return make_discovery(http, clock, srv_records=srv_records, well_known_port=site.port)


async def test_ip_literals_and_explicit_ports_are_used_as_given(
    http: HttpClient, clock: Clock, site: Site
) -> None:
    srv_records = FakeSrv()
    d = discovery_for(http, clock, site, srv_records)
    assert await d.resolve("1.2.3.4") == ServerAddress("1.2.3.4", 8448, "1.2.3.4", None)
    assert await d.resolve("1.2.3.4:99") == ServerAddress("1.2.3.4", 99, "1.2.3.4:99", None)
    v6 = await d.resolve("[2001:db8::1]:8000")
    assert v6 == ServerAddress("2001:db8::1", 8000, "[2001:db8::1]:8000", None)
    assert v6.url("/x?y=1") == "https://[2001:db8::1]:8000/x?y=1"
    named = await d.resolve("example.test:1234")
    assert named == ServerAddress("example.test", 1234, "example.test:1234", "example.test")
    # No well-known and no SRV for any of them.
    assert site.hits == [] and srv_records.lookups == []
    with pytest.raises(ValueError):
        await d.resolve("not a server name")
    with pytest.raises(ValueError):
        await d.resolve("example.test:0")


async def test_well_known_delegation_is_followed_and_cached(
    http: HttpClient, clock: Clock, site: Site
) -> None:
    site.delegate("example.test", {"m.server": "delegated.test:4321"})
    d = discovery_for(http, clock, site)
    expected = ServerAddress("delegated.test", 4321, "delegated.test:4321", "delegated.test")
    assert await d.resolve("example.test") == expected
    assert await d.resolve("example.test") == expected
    assert site.hits == ["example.test/.well-known/matrix/server"]
    # A day by default: asked again once that has passed.
    site.delegate("example.test", {"m.server": "1.2.3.4"})
    await advance(24 * 3600 + 1)
    assert await d.resolve("example.test") == ServerAddress("1.2.3.4", 8448, "1.2.3.4", None)
    assert len(site.hits) == 2


async def test_cache_control_sets_the_well_known_lifetime_within_bounds(
    http: HttpClient, clock: Clock, site: Site
) -> None:
    # max-age=1 is raised to the 5 minute floor.
    site.delegate("example.test", {"m.server": "a.test:1"}, {"Cache-Control": "max-age=1"})
    d = discovery_for(http, clock, site)
    await d.resolve("example.test")
    await advance(60)
    await d.resolve("example.test")
    assert len(site.hits) == 1
    await advance(5 * 60)
    await d.resolve("example.test")
    assert len(site.hits) == 2


async def test_delegation_without_port_uses_srv_of_the_delegated_name(
    http: HttpClient, clock: Clock, site: Site
) -> None:
    site.delegate("example.test", {"m.server": "delegated.test"})
    records = FakeSrv(
        {
            "_matrix-fed._tcp.delegated.test": [
                srv("backup.test.", 2, priority=20),
                srv("fed.test.", 8449, priority=10),
            ]
        }
    )
    d = discovery_for(http, clock, site, records)
    # Host header and TLS name stay the delegated name, not the SRV target.
    assert await d.resolve("example.test") == ServerAddress(
        "fed.test", 8449, "delegated.test", "delegated.test"
    )


async def test_without_well_known_srv_then_legacy_srv_then_8448(
    http: HttpClient, clock: Clock, site: Site
) -> None:
    records = FakeSrv({"_matrix-fed._tcp.example.test": [srv("fed.test", 1111)]})
    d = discovery_for(http, clock, site, records)
    assert await d.resolve("example.test") == ServerAddress(
        "fed.test", 1111, "example.test", "example.test"
    )
    legacy = FakeSrv({"_matrix._tcp.other.test": [srv("old.test", 2222)]})
    d = discovery_for(http, clock, site, legacy)
    assert await d.resolve("other.test") == ServerAddress(
        "old.test", 2222, "other.test", "other.test"
    )
    assert legacy.lookups == ["_matrix-fed._tcp.other.test", "_matrix._tcp.other.test"]
    # A "." target means "no service": fall through to 8448.
    none = FakeSrv({"_matrix-fed._tcp.example.test": [srv(".", 0)]})
    d = discovery_for(http, clock, site, none)
    assert await d.resolve("example.test") == ServerAddress(
        "example.test", 8448, "example.test", "example.test"
    )


@pytest.mark.parametrize(
    "body",
    [b"not json", b"[]", b'{"m.server": 5}', b'{"m.server": "bad name!"}', b"{}"],
)
async def test_an_invalid_well_known_means_no_delegation(
    http: HttpClient, clock: Clock, site: Site, body: bytes
) -> None:
    site.answers["example.test"] = lambda _req: web.Response(body=body)
    d = discovery_for(http, clock, site)
    assert (await d.resolve("example.test")).host == "example.test"


async def test_well_known_redirects_are_bounded(http: HttpClient, clock: Clock, site: Site) -> None:
    def redirect_chain(hops: int) -> WellKnown:
        def answer(request: web.Request) -> web.StreamResponse:
            step = int(request.query.get("step", "0"))
            if step < hops:
                raise web.HTTPFound(f"/.well-known/matrix/server?step={step + 1}")
            return web.json_response({"m.server": f"after{hops}.test:1"})

        return answer

    site.answers["example.test"] = redirect_chain(WELL_KNOWN_MAX_REDIRECTS)
    site.answers["other.test"] = redirect_chain(WELL_KNOWN_MAX_REDIRECTS + 1)
    d = discovery_for(http, clock, site)
    assert (await d.resolve("example.test")).host == f"after{WELL_KNOWN_MAX_REDIRECTS}.test"
    assert (await d.resolve("other.test")).host == "other.test"
    assert sum(h.startswith("other.test") for h in site.hits) == WELL_KNOWN_MAX_REDIRECTS + 1


async def test_a_well_known_body_over_the_limit_is_ignored(
    http: HttpClient, clock: Clock, site: Site
) -> None:
    padding = "x" * WELL_KNOWN_MAX_BYTES
    site.delegate("example.test", {"m.server": "big.test:1", "pad": padding})
    d = discovery_for(http, clock, site)
    assert (await d.resolve("example.test")).host == "example.test"


async def test_the_default_filter_never_fetches_a_well_known_from_loopback(
    http: HttpClient, clock: Clock, site: Site
) -> None:
    site.delegate("example.test", {"m.server": "delegated.test:4321"})
    d = make_discovery(http, clock, config=FederationTransportConfig(), well_known_port=site.port)
    assert (await d.resolve("example.test")).host == "example.test"
    assert site.hits == []
