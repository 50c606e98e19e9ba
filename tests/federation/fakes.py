"""A federation client wired to loopback servers: fake DNS and SRV, real TLS and HTTP."""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence

from hamlet.config import FederationTransportConfig
from hamlet.core.crypto import SigningKey, generate_signing_key
from hamlet.handlers.federation.client import FederationClient, federation_ip_filter
from hamlet.handlers.federation.discovery import ServerDiscovery, SrvTarget
from hamlet.runtime.clock import Clock
from hamlet.runtime.http_client import HttpClient

ORIGIN = "origin.test"
#: Federation with loopback allowed (as the interop setup) and self-signed certificates.
LOOPBACK_CONFIG = FederationTransportConfig(
    verify_certificates=False,
    federation_ip_range_blacklist=(),
    federation_ip_range_whitelist=(),
)


class FakeSrv:
    def __init__(self, records: Mapping[str, Sequence[SrvTarget]] | None = None) -> None:
        self.records = dict(records or {})
        self.lookups: list[str] = []

    async def resolve_srv(self, name: str) -> tuple[Sequence[SrvTarget], float]:
        self.lookups.append(name)
        return self.records.get(name, []), 300.0


def srv(host: str, port: int, priority: int = 10, weight: int = 0) -> SrvTarget:
    return SrvTarget(host=host, port=port, priority=priority, weight=weight)


def make_discovery(
    http: HttpClient,
    clock: Clock,
    *,
    config: FederationTransportConfig = LOOPBACK_CONFIG,
    srv_records: FakeSrv | None = None,
    well_known_port: int = 443,
) -> ServerDiscovery:
    return ServerDiscovery(
        http,
        srv_records or FakeSrv(),
        clock,
        ip_filter=federation_ip_filter(config),
        verify_tls=config.verify_certificates,
        well_known_port=well_known_port,
    )


def make_client(
    http: HttpClient,
    clock: Clock,
    *,
    config: FederationTransportConfig = LOOPBACK_CONFIG,
    srv_records: FakeSrv | None = None,
    well_known_port: int = 443,
    max_concurrent: int = 50,
    signing_key: SigningKey | None = None,
    discovery: ServerDiscovery | None = None,
    domain_whitelist: frozenset[str] | None = None,
    client_timeout_ms: int = 60_000,
    **overrides: object,
) -> FederationClient:
    """`discovery` replaces the one made from `config` (a filter of its own)."""
    config = dataclasses.replace(config, **overrides)  # type: ignore[arg-type]
    return FederationClient(
        server_name=ORIGIN,
        signing_key=signing_key or generate_signing_key(),
        http=http,
        discovery=discovery
        or make_discovery(
            http, clock, config=config, srv_records=srv_records, well_known_port=well_known_port
        ),
        clock=clock,
        transport=config,
        domain_whitelist=domain_whitelist,
        client_timeout_ms=client_timeout_ms,
        max_concurrent=max_concurrent,
    )
