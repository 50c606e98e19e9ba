"""Two tenants, a.test and b.test, federating through one harness with
every request signed and checked; import `h` as a fixture."""

from __future__ import annotations

from typing import Any

import pytest

from tests.federation.conftest import StartServers
from tests.support.federation import HarnessTransport
from tests.support.harness import Harness

A, B = "a.test", "b.test"
V1 = "/_matrix/federation/v1"
V2 = "/_matrix/federation/v2"


@pytest.fixture
async def h(
    make_hs_config: Any, start_servers: StartServers, transport: HarnessTransport
) -> Harness:
    h = await start_servers(make_hs_config(A), make_hs_config(B))
    for name in (A, B):
        hs = h.servers[name]
        hs.federation_sender.attach_transport(transport.signed_by(name, hs.signing_key))
    return h
