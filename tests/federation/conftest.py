from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from pathlib import Path

import pytest

from hamlet.api.router import Router
from hamlet.config import HomeServerConfig
from hamlet.runtime.clock import Clock
from tests.support.federation import HarnessTransport, homeservers_fetching_with
from tests.support.harness import Harness, start_harness
from tests.support.tls import SelfSigned, make_self_signed

StartServers = Callable[..., Awaitable[Harness]]


@pytest.fixture
def transport() -> Iterator[HarnessTransport]:
    t = HarnessTransport()
    with homeservers_fetching_with(t):
        yield t


@pytest.fixture
async def start_servers(transport: HarnessTransport) -> AsyncIterator[StartServers]:
    """Start tenants in one harness whose keyrings reach each other through `transport`."""
    started: list[Harness] = []

    async def start(*configs: HomeServerConfig, router: Router | None = None) -> Harness:
        h = await start_harness(list(configs), router=router)
        transport.harness = h
        started.append(h)
        return h

    yield start
    for h in started:
        await h.close()


@pytest.fixture(scope="session")
def tls_cert(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SelfSigned]:
    yield make_self_signed(Path(tmp_path_factory.mktemp("tls")))


@pytest.fixture
async def clock() -> AsyncIterator[Clock]:
    clock = Clock("origin.test")
    clock.start()
    yield clock
    await clock.shutdown()
