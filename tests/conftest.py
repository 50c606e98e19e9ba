from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import os
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path

import pytest

import hamlet.homeserver
from hamlet.handlers.federation.sender import services as federation_sender
from hamlet.homeserver import HomeServer
from hamlet.runtime.virtual_time import VirtualTimeEventLoop
from tests.support.harness import Harness, RecordingHandler, make_config, start_harness
from tests.support.postgres import PostgresCluster, missing_binaries, start_cluster
from tests.support.templates import DatabaseTemplates, from_templates

ENGINES = ["sqlite", "postgres"]

# The one way to run the suite without PostgreSQL; without it, missing
# binaries stop the run instead of silently skipping half the tests.
SKIP_POSTGRES = os.environ.get("HAMLET_SKIP_POSTGRES") == "1"


def pytest_configure(config: pytest.Config) -> None:
    missing = missing_binaries()
    if missing and not SKIP_POSTGRES:
        pytest.exit(
            f"PostgreSQL server binaries not found ({', '.join(missing)}; looked on PATH and "
            "in /usr/lib/postgresql/*/bin). Install them (Debian: apt-get install postgresql) "
            "or run with HAMLET_SKIP_POSTGRES=1 to skip every PostgreSQL test.",
            returncode=pytest.ExitCode.USAGE_ERROR,
        )


def pytest_asyncio_loop_factories(
    config: pytest.Config, item: pytest.Item
) -> dict[str, Callable[[], asyncio.AbstractEventLoop]]:
    # Every async test runs on a loop whose time the test moves by hand.
    return {"vt": VirtualTimeEventLoop}


@pytest.fixture(autouse=True)
def federation_sender_offline() -> Iterator[None]:
    """Homeservers under test queue federation transactions without sending
    them: a test attaches the transport it wants (tests/federation/outbox_support.py),
    so no test reaches for the network by accident."""
    with pytest.MonkeyPatch.context() as mp:
        builders = tuple(
            functools.partial(federation_sender.build, offline=True)
            if builder is federation_sender.build
            else builder
            for builder in HomeServer.builders
        )
        mp.setattr(HomeServer, "builders", builders)
        yield


@pytest.fixture(scope="session")
def database_templates() -> Iterator[DatabaseTemplates]:
    templates = DatabaseTemplates()
    yield templates
    templates.close()


@pytest.fixture(autouse=True)
def migrated_from_templates(database_templates: DatabaseTemplates) -> Iterator[None]:
    """A homeserver starting on a new database finds it migrated already
    (tests/support/templates.py): the session migrates once per engine."""
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(
            hamlet.homeserver,
            "make_database",
            from_templates(database_templates, hamlet.homeserver.make_database),
        )
        yield
    database_templates.recycle()


@pytest.fixture(scope="session")
def pg_cluster(database_templates: DatabaseTemplates) -> Iterator[PostgresCluster | None]:
    if SKIP_POSTGRES:
        yield None
        return
    cluster = start_cluster()
    database_templates.add_postgres(cluster.dsn_kwargs())
    yield cluster
    database_templates.disconnect()
    cluster.stop()


@pytest.fixture(params=ENGINES)
def engine(request: pytest.FixtureRequest, pg_cluster: PostgresCluster | None) -> str:
    if request.param == "postgres" and pg_cluster is None:
        pytest.skip("HAMLET_SKIP_POSTGRES=1")
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


def time_stands_still() -> contextlib.AbstractContextManager[None]:
    """`with time_stands_still():` real time no longer moves virtual time.

    For counting what a rate limit lets through: the requests' own real
    duration would otherwise leak allowance back. `advance()` still works.
    """
    return _loop().time_stands_still()


async def settle() -> None:
    """Wait, without moving virtual time, until work already started has finished.

    Returns once no callback is ready, no timer is due and no database
    round trip or pool thread is in flight (`VirtualTimeEventLoop.settle`):
    a background write a request started has committed, on both engines.
    """
    await _loop().settle()
