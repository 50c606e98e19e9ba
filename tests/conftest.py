from __future__ import annotations

import asyncio
import logging
import os
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path

import pytest

from hamlet.runtime.virtual_time import VirtualTimeEventLoop
from tests.support.harness import Harness, RecordingHandler, make_config, start_harness
from tests.support.postgres import PostgresCluster, start_cluster

ENGINES = ["sqlite", "postgres"]


def pytest_asyncio_loop_factories(
    config: pytest.Config, item: pytest.Item
) -> dict[str, Callable[[], asyncio.AbstractEventLoop]]:
    # Every async test runs on a loop whose time the test moves by hand.
    return {"vt": VirtualTimeEventLoop}


@pytest.fixture(scope="session")
def pg_cluster() -> Iterator[PostgresCluster | None]:
    cluster = start_cluster()
    if cluster is None and os.environ.get("HAMLET_REQUIRE_POSTGRES"):
        raise RuntimeError("HAMLET_REQUIRE_POSTGRES is set but initdb/postgres were not found")
    yield cluster
    if cluster is not None:
        cluster.stop()


@pytest.fixture(params=ENGINES)
def engine(request: pytest.FixtureRequest, pg_cluster: PostgresCluster | None) -> str:
    if request.param == "postgres" and pg_cluster is None:
        pytest.skip("PostgreSQL binaries not available")
    name: str = request.param
    return name


@pytest.fixture
def make_hs_config(tmp_path: Path, engine: str, pg_cluster: PostgresCluster | None):  # type: ignore[no-untyped-def]
    def make(server_name: str = "test.local", **overrides: object):  # type: ignore[no-untyped-def]
        return make_config(tmp_path, engine, pg_cluster, server_name, **overrides)

    return make


@pytest.fixture
async def harness(make_hs_config) -> AsyncIterator[Harness]:  # type: ignore[no-untyped-def]
    h = await start_harness([make_hs_config()])
    yield h
    await h.close()


@pytest.fixture
def log_records() -> Iterator[RecordingHandler]:
    handler = RecordingHandler()
    root = logging.getLogger()
    old_level = root.level
    root.addHandler(handler)
    root.setLevel(logging.DEBUG)
    yield handler
    root.removeHandler(handler)
    root.setLevel(old_level)


def _loop() -> VirtualTimeEventLoop:
    loop = asyncio.get_running_loop()
    assert isinstance(loop, VirtualTimeEventLoop)
    return loop


async def advance(seconds: float) -> None:
    """Move the running test loop's virtual time forward, settling at each due timer."""
    await _loop().advance(seconds)


async def settle() -> None:
    """Wait, without moving virtual time, until work already started has finished.

    Returns once no callback is ready, no timer is due and no database
    round trip or pool thread is in flight (`VirtualTimeEventLoop.settle`):
    a background write a request started has committed, on both engines.
    """
    await _loop().settle()
