"""One real Synapse per test session, for the interop tests in this directory."""

from __future__ import annotations

import os
from collections.abc import Generator, Iterator
from pathlib import Path

import pytest

from tests.interop.synapse import SYNAPSE_PYTHON, Synapse, start_synapse
from tests.support.tls import make_self_signed

# The one way to run without Synapse (as HAMLET_SKIP_POSTGRES for PostgreSQL):
# otherwise a missing venv fails these tests instead of silently skipping them.
SKIP_SYNAPSE = os.environ.get("HAMLET_SKIP_SYNAPSE") == "1"


@pytest.fixture
def engine() -> str:
    """These tests check the protocol against Synapse, one engine is enough:
    storage under federation runs on both in tests/federation's two-tenant
    tests, and a second Synapse round would add minutes to the suite."""
    return "sqlite"


@pytest.fixture(scope="session")
def synapse(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Synapse]:
    if SKIP_SYNAPSE:
        pytest.skip("HAMLET_SKIP_SYNAPSE=1")
    if not SYNAPSE_PYTHON.exists():
        pytest.fail(
            f"Synapse is not installed at {SYNAPSE_PYTHON}: run `make .venv-synapse/.installed` "
            "(make test does), or set HAMLET_SKIP_SYNAPSE=1 to skip the interop tests"
        )
    directory = Path(tmp_path_factory.mktemp("synapse"))
    tls = make_self_signed(directory / "tls")
    server = start_synapse(directory, tls)
    print(f"Synapse {server.server_name} started in {server.startup_s:.1f}s, logs in {directory}")
    yield server
    server.stop()


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(
    item: pytest.Item, call: pytest.CallInfo[None]
) -> Generator[None, pytest.TestReport, None]:
    """A failed test's report carries the end of Synapse's log."""
    outcome = yield
    report: pytest.TestReport = outcome.get_result()  # type: ignore[attr-defined]
    server = getattr(item, "funcargs", {}).get("synapse")
    if report.failed and isinstance(server, Synapse):
        report.sections.append(("Synapse log", server.log_tail()))
