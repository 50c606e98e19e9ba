"""Fixtures of the federated e2ee tests: two tenants, a.test and b.test."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from typing import Any

import pytest

from tests.e2e.federated_support import A, B, SlowTransport
from tests.support.federation import homeservers_fetching_with
from tests.support.harness import Harness, start_harness


@pytest.fixture
def transport() -> Iterator[SlowTransport]:
    t = SlowTransport()
    with homeservers_fetching_with(t):
        yield t


@pytest.fixture
async def h(make_hs_config: Any, transport: SlowTransport) -> AsyncIterator[Harness]:
    """Tenants a.test and b.test, their senders sending through `transport`."""
    h = await start_harness([make_hs_config(A), make_hs_config(B)])
    transport.harness = h
    for name in (A, B):
        hs = h.servers[name]
        hs.federation_sender.attach_transport(transport.signed_by(name, hs.signing_key))
    yield h
    await h.close()
