"""Two tenants, a.test and b.test, federating through one harness with
every request signed and checked; import `h` as a fixture."""

from __future__ import annotations

from typing import Any

import pytest

from hamlet.config import HomeServerConfig
from tests.federation.conftest import StartServers
from tests.support.federation import HarnessTransport
from tests.support.harness import Harness

A, B = "a.test", "b.test"
V1 = "/_matrix/federation/v1"
V2 = "/_matrix/federation/v2"


async def start_federating(
    start_servers: StartServers, transport: HarnessTransport, *configs: HomeServerConfig
) -> Harness:
    """Tenants whose federation senders reach each other through `transport`."""
    h = await start_servers(*configs)
    for config in configs:
        hs = h.servers[config.server_name]
        hs.federation_sender.attach_transport(transport.signed_by(hs.server_name, hs.signing_key))
    return h


@pytest.fixture
async def h(
    make_hs_config: Any, start_servers: StartServers, transport: HarnessTransport
) -> Harness:
    return await start_federating(start_servers, transport, make_hs_config(A), make_hs_config(B))
