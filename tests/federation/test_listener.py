"""The federation listener: TLS from the config's files, /version, well-known, unknown paths."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest

from hamlet import __version__
from hamlet.config import HomeServerConfig
from hamlet.host.process import HostProcess
from hamlet.runtime.clock import Clock
from hamlet.runtime.http_client import ALLOW_ALL, ConnectionFailedError, HttpClient
from tests.federation.fakes import make_client
from tests.support.harness import start_harness
from tests.support.tls import SelfSigned

MakeConfig = Callable[..., HomeServerConfig]
FEDERATION_TLS = {"port": 0, "tls": True, "resources": [{"names": ["federation"]}]}


@pytest.fixture
async def process(make_hs_config: MakeConfig, tls_cert: SelfSigned) -> AsyncIterator[HostProcess]:
    config = make_hs_config(
        listeners=[FEDERATION_TLS],
        tls_certificate_path=str(tls_cert.certificate),
        tls_private_key_path=str(tls_cert.private_key),
    )
    process = HostProcess([config])
    await process.start()
    yield process
    await process.stop()


@pytest.fixture
async def http() -> AsyncIterator[HttpClient]:
    client = HttpClient()
    yield client
    await client.close()


async def test_the_tls_listener_serves_federation(
    process: HostProcess, http: HttpClient, clock: Clock
) -> None:
    (port,) = process.bound_ports
    # A Hamlet federation client finds the server by its IP literal and speaks TLS to it.
    client = make_client(http, clock)
    version = await client.get_json(f"127.0.0.1:{port}", "/_matrix/federation/v1/version")
    assert version == {"server": {"name": "Hamlet", "version": __version__}}
    unknown = await http.request(
        "GET",
        f"https://127.0.0.1:{port}/_matrix/federation/v1/nonsense",
        clock=clock,
        timeout_s=10,
        ip_filter=ALLOW_ALL,
        verify_tls=False,
    )
    assert unknown.status == 404
    assert b'"M_UNRECOGNIZED"' in unknown.body
    # Plain HTTP on the TLS port gets nowhere.
    with pytest.raises(ConnectionFailedError):
        await http.request(
            "GET",
            f"http://127.0.0.1:{port}/_matrix/federation/v1/version",
            clock=clock,
            timeout_s=10,
            ip_filter=ALLOW_ALL,
        )


async def test_tenants_share_the_process_client_and_it_closes_with_the_process(
    make_hs_config: MakeConfig,
) -> None:
    process = HostProcess([make_hs_config("a.test", listeners=[]), make_hs_config("b.test")])
    await process.start()
    shared = process.manager.http_client
    try:
        servers = [process.registry.get_tenant(name) for name in ("a.test", "b.test")]
        assert all(
            t is not None and t.hs is not None and t.hs.http_client is shared for t in servers
        )
    finally:
        await process.stop()
    assert shared.closed


async def test_a_homeserver_on_its_own_closes_its_private_client(
    make_hs_config: MakeConfig,
) -> None:
    h = await start_harness([make_hs_config()])
    client = h.hs.http_client
    await h.close()
    assert client.closed


@pytest.mark.parametrize(
    ("overrides", "expected"),
    [
        ({}, None),
        ({"serve_server_wellknown": True}, {"m.server": "test.local:443"}),
        (
            {"serve_server_wellknown": True, "public_baseurl": "https://matrix.test.local/"},
            {"m.server": "matrix.test.local:443"},
        ),
        (
            {"serve_server_wellknown": True, "public_baseurl": "https://[2001:db8::1]:8443/"},
            {"m.server": "[2001:db8::1]:8443"},
        ),
    ],
)
async def test_server_well_known_follows_serve_server_wellknown(
    make_hs_config: MakeConfig, overrides: dict[str, Any], expected: dict[str, str] | None
) -> None:
    h = await start_harness([make_hs_config(**overrides)])
    try:
        resp = await h.request("GET", "/.well-known/matrix/server")
        if expected is None:
            assert (resp.status, resp.json["errcode"]) == (404, "M_UNRECOGNIZED")
        else:
            assert (resp.status, resp.json) == (200, expected)
    finally:
        await h.close()
