"""HomeServer lifecycle on both engines: no side effects, clean shutdown, nothing left."""

from __future__ import annotations

import asyncio
import gc
import os
import stat
import traceback
import weakref
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from hamlet.config import HomeServerConfig
from hamlet.handlers.common.service import BuildContext, Service, ServiceBase
from hamlet.handlers.container import Services
from hamlet.handlers.media.repository import MediaRepository
from hamlet.homeserver import HomeServer
from hamlet.storage import migrations
from hamlet.storage.engines.postgres import PostgresDatabase
from hamlet.storage.engines.sqlite import SqliteDatabase
from hamlet.storage.errors import MigrationError
from hamlet.storage.migrations import Migration
from tests.conftest import advance, settle
from tests.support.harness import RecordingHandler

MakeConfig = Callable[..., HomeServerConfig]


def open_fds() -> set[str]:
    return set(os.listdir("/proc/self/fd"))


def tree(path: Path) -> set[Path]:
    return set(path.rglob("*"))


class Baseline:
    """What the process holds before a homeserver exists."""

    def __init__(self) -> None:
        gc.collect()
        self.fds = open_fds()
        self.tasks = set(asyncio.all_tasks())


async def assert_nothing_left(hs: HomeServer, baseline: Baseline) -> None:
    assert hs.state == "shut_down"
    assert hs.clock.pending_count() == 0
    assert hs.clock.is_shut_down
    await settle()
    assert set(asyncio.all_tasks()) - baseline.tasks == set()
    db = hs._db
    if isinstance(db, SqliteDatabase):
        assert not db.is_open
    elif isinstance(db, PostgresDatabase):
        assert db._pool._pool is None  # its private pool is closed
    # Sockets and files: back to where we started.
    await settle()
    assert open_fds() - baseline.fds == set()


def forget(info: pytest.ExceptionInfo[BaseException]) -> None:
    """Drop the locals of the failed setup's frames.

    The exception's traceback (held here and by pytest's log capture, which
    keeps the logged record) references the frames of setup(), whose `self`
    is the homeserver; the test is about what the homeserver itself keeps.
    """
    traceback.clear_frames(info.tb)


def assert_collected(ref: weakref.ref[HomeServer]) -> None:
    gc.collect()
    referrers = [] if ref() is None else gc.get_referrers(ref())
    assert ref() is None, f"HomeServer still referenced by {referrers!r}"


async def test_constructing_a_homeserver_has_no_side_effects(
    make_hs_config: MakeConfig, tmp_path: Path
) -> None:
    config = make_hs_config()
    before_files = tree(tmp_path)
    baseline = Baseline()
    hs = HomeServer(config)
    assert hs.state == "created"
    assert hs.clock.pending_count() == 0
    assert set(asyncio.all_tasks()) == baseline.tasks
    assert tree(tmp_path) == before_files
    assert open_fds() == baseline.fds
    with pytest.raises(RuntimeError, match="not set up"):
        _ = hs.db
    # Shutting down something never set up is fine too.
    await hs.shutdown()
    await assert_nothing_left(hs, baseline)
    ref = weakref.ref(hs)
    del hs
    assert_collected(ref)


async def test_setup_start_shutdown(
    make_hs_config: MakeConfig, log_records: RecordingHandler
) -> None:
    config = make_hs_config()
    baseline = Baseline()
    hs = HomeServer(config)
    await hs.setup()
    assert hs.state == "ready"
    assert await hs.db.fetchval("probe", "SELECT 1") == 1
    with pytest.raises(RuntimeError):
        await hs.setup()
    await hs.start()
    assert hs.state == "running"
    await advance(1)
    # Background work (the DB-time looping call) started once the loop ran.
    assert hs.clock.pending_count() >= 1
    await advance(30)
    db_lines = log_records.matching("Total database time")
    assert len(db_lines) == 3
    assert {(r.server_name, r.request) for r in db_lines} == {(hs.server_name, "looping_call")}  # type: ignore[attr-defined]
    (running,) = log_records.matching("running")
    assert running.request == "call_when_running"  # type: ignore[attr-defined]

    await hs.shutdown()
    await hs.shutdown()  # idempotent
    await assert_nothing_left(hs, baseline)
    with pytest.raises(RuntimeError):
        await hs.start()
    ref = weakref.ref(hs)
    del hs
    assert_collected(ref)


async def test_migrations_recorded_once_across_restarts(make_hs_config: MakeConfig) -> None:
    config = make_hs_config()
    for _ in range(2):
        hs = HomeServer(config)
        await hs.setup()
        rows = await hs.db.fetchall("v", "SELECT version FROM schema_version ORDER BY version")
        assert [r[0] for r in rows] == [m.version for m in migrations.load_migrations()]
        await hs.shutdown()


async def test_shutdown_after_a_failed_migration(
    make_hs_config: MakeConfig, monkeypatch: pytest.MonkeyPatch
) -> None:
    config = make_hs_config()
    real = migrations.load_migrations()

    def broken(schema_dir: Path = migrations.SCHEMA_DIR) -> list[Migration]:
        return [*real, Migration(9999, "broken", "CREATE TABLE ok (x INTEGER);\nNOT SQL AT ALL;\n")]

    # The package's migrations are parsed once per process: read them afresh.
    monkeypatch.setattr(migrations, "_packaged", None)
    monkeypatch.setattr(migrations, "load_migrations", broken)
    baseline = Baseline()
    hs = HomeServer(config)
    with pytest.raises(MigrationError) as info:
        await hs.setup()
    forget(info)
    assert hs.state == "shut_down"
    await hs.shutdown()
    await assert_nothing_left(hs, baseline)
    ref = weakref.ref(hs)
    del hs
    assert_collected(ref)

    # The database was left at the last good version: a fixed setup carries on.
    monkeypatch.setattr(migrations, "_packaged", None)
    monkeypatch.setattr(migrations, "load_migrations", lambda *a: real)
    hs2 = HomeServer(config)
    await hs2.setup()
    versions = await hs2.db.fetchall("v", "SELECT version FROM schema_version")
    assert 9999 not in {v[0] for v in versions}
    await hs2.shutdown()


async def test_shutdown_after_a_service_constructor_fails(
    make_hs_config: MakeConfig, monkeypatch: pytest.MonkeyPatch
) -> None:
    built: list[Any] = []

    class Service(ServiceBase):
        def __init__(self, hs: Services) -> None:
            self.hs = hs  # services hold their homeserver
            self.stopped = False

        async def shutdown(self) -> None:
            self.stopped = True

    def build(ctx: BuildContext, hs: Services) -> None:
        service = Service(hs)
        built.append(weakref.ref(service))
        ctx.own(service)
        ctx.clock.looping_call(lambda: None, 5)
        ctx.clock.call_later(100, lambda: None)
        raise ValueError("service constructor bug")

    monkeypatch.setattr(HomeServer, "builders", (*HomeServer.builders[:1], build))
    baseline = Baseline()
    hs = HomeServer(make_hs_config())
    with pytest.raises(ValueError, match="service constructor bug") as info:
        await hs.setup()
    service = built[0]()
    assert service is not None and service.stopped
    del service
    forget(info)
    await hs.shutdown()
    await assert_nothing_left(hs, baseline)
    ref = weakref.ref(hs)
    del hs
    assert_collected(ref)
    assert built[0]() is None


async def test_shutdown_while_requests_and_jobs_are_in_flight(make_hs_config: MakeConfig) -> None:
    baseline = Baseline()
    hs = HomeServer(make_hs_config())
    await hs.setup()
    await hs.start()

    async def job(server: HomeServer) -> None:
        await server.db.fetchval("job", "SELECT 1")
        await server.clock.sleep(1000)

    hs.clock.run_as_background_process("job", job, hs)
    hs.clock.looping_call(job, 7, hs)
    await advance(10)
    await hs.shutdown()
    await assert_nothing_left(hs, baseline)
    ref = weakref.ref(hs)
    del hs
    assert_collected(ref)


async def test_signing_key_generated_on_first_run_and_reused(
    make_hs_config: MakeConfig, tmp_path: Path
) -> None:
    config = make_hs_config()
    path = Path(config.signing_key_path)
    assert read_key_file(path) is None
    hs = HomeServer(config)
    await hs.setup()
    first = hs.signing_key
    await hs.shutdown()
    found = read_key_file(path)
    assert found is not None
    content, mode = found
    assert mode == 0o600
    assert content.startswith(f"ed25519 {first.version} ")

    hs = HomeServer(config)
    await hs.setup()
    assert hs.signing_key.key_id == first.key_id
    assert hs.signing_key.seed == first.seed
    await hs.shutdown()
    assert read_key_file(path) == (content, 0o600)


def read_key_file(path: Path) -> tuple[str, int] | None:
    if not path.exists():
        return None
    return path.read_text(), stat.S_IMODE(path.stat().st_mode)


@pytest.mark.parametrize("late_step", ["last_builder", "last_load"])
async def test_a_late_setup_failure_shuts_every_service_down_in_reverse_order(
    make_hs_config: MakeConfig, monkeypatch: pytest.MonkeyPatch, late_step: str
) -> None:
    registered: list[Service] = []
    stopped: list[Service] = []

    def watch(service: Service) -> None:
        real = service.shutdown

        async def shutdown() -> None:
            stopped.append(service)
            await real()

        setattr(service, "shutdown", shutdown)  # noqa: B010 (an instance override)

    def last_builder(ctx: BuildContext, hs: Services) -> None:
        registered.extend(ctx.registry)
        for service in registered:
            watch(service)
        if late_step == "last_builder":
            raise ValueError("late builder bug")

    async def failing_load(self: MediaRepository) -> None:
        raise OSError("media store unreadable")

    monkeypatch.setattr(HomeServer, "builders", (*HomeServer.builders, last_builder))
    if late_step == "last_load":
        monkeypatch.setattr(MediaRepository, "load", failing_load)
    baseline = Baseline()
    hs = HomeServer(make_hs_config())
    with pytest.raises((ValueError, OSError)) as info:
        await hs.setup()
    forget(info)
    assert hs.state == "shut_down"
    assert len(registered) > 20
    assert hs.notifier in registered and hs.media in registered
    assert stopped == registered[::-1]
    assert hs.services == ()
    await assert_nothing_left(hs, baseline)
    registered.clear()
    stopped.clear()
    ref = weakref.ref(hs)
    del hs
    assert_collected(ref)


async def test_a_failing_service_start_fails_start_and_rolls_back(
    make_hs_config: MakeConfig, monkeypatch: pytest.MonkeyPatch, log_records: RecordingHandler
) -> None:
    def failing_start(self: MediaRepository) -> None:
        raise OSError("media store unwritable")

    monkeypatch.setattr(MediaRepository, "start", failing_start)
    baseline = Baseline()
    hs = HomeServer(make_hs_config())
    await hs.setup()
    with pytest.raises(OSError, match="media store unwritable") as info:
        await hs.start()
    forget(info)
    # The services started before it (looping calls among them) are gone too.
    await assert_nothing_left(hs, baseline)
    (logged,) = log_records.matching("Start of")
    assert logged.server_name == hs.server_name  # type: ignore[attr-defined]
    assert not log_records.matching("callback")  # raised to start(), not only logged
    ref = weakref.ref(hs)
    del hs
    assert_collected(ref)
