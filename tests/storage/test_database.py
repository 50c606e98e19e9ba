"""The Database interface on both engines (SQLite and the throwaway PostgreSQL)."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import pytest

from hamlet.config import HomeServerConfig
from hamlet.runtime.clock import Clock
from hamlet.runtime.logcontext import LoggingContext, current_context
from hamlet.storage import migrations
from hamlet.storage.database import TXN_LOG_INTERVAL_S, Database, Transaction
from hamlet.storage.engines.postgres import to_pg_sql
from hamlet.storage.errors import IntegrityError, MigrationError, StorageError
from hamlet.storage.factory import make_database
from hamlet.storage.migrations import load_migrations, migrate, render
from tests.conftest import advance
from tests.support.harness import RecordingHandler

MakeConfig = Callable[..., HomeServerConfig]


@pytest.fixture
async def db(make_hs_config: MakeConfig) -> AsyncIterator[Database]:
    database = make_database(make_hs_config())
    await database.open()
    yield database
    await database.close()


@pytest.fixture
async def sqlite_t(make_hs_config: MakeConfig, engine: str) -> AsyncIterator[Database]:
    """A SQLite database with a table `t (x INTEGER)`; the test is skipped on PostgreSQL."""
    if engine != "sqlite":
        pytest.skip("SQLite's blocking pool")
    database = make_database(make_hs_config())
    await database.open()
    await database.execute("mk", "CREATE TABLE t (x INTEGER)")
    yield database
    await database.close()


def write_schema(directory: Path, files: dict[str, str]) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    for name, sql in files.items():
        (directory / name).write_text(sql)
    return directory


FIRST = """
CREATE TABLE things (
    id {{SERIAL_PK}},
    name TEXT NOT NULL UNIQUE,
    data {{BLOB}}
);
CREATE INDEX things_name ON things (name);
"""


async def versions(db: Database) -> list[tuple[Any, ...]]:
    return await db.fetchall("v", "SELECT version, name FROM schema_version ORDER BY version")


async def test_migrations_apply_once_and_are_recorded(db: Database, tmp_path: Path) -> None:
    schema = write_schema(tmp_path / "schema", {"0001_things.sql": FIRST})
    assert await migrate(db, schema) == 1
    assert await versions(db) == [(1, "things")]
    await db.execute("ins", "INSERT INTO things (name, data) VALUES (?, ?)", "a", b"\x00\x01")
    # Running again changes nothing (the table would otherwise be recreated or fail).
    assert await migrate(db, schema) == 1
    assert await versions(db) == [(1, "things")]
    assert await db.fetchall("sel", "SELECT id, name, data FROM things") == [(1, "a", b"\x00\x01")]

    write_schema(schema, {"0002_more.sql": "ALTER TABLE things ADD COLUMN extra INTEGER;\n"})
    assert await migrate(db, schema) == 2
    assert await versions(db) == [(1, "things"), (2, "more")]


async def test_a_migration_landing_below_the_highest_is_still_applied(
    db: Database, tmp_path: Path
) -> None:
    schema = write_schema(
        tmp_path / "schema",
        {"0001_things.sql": FIRST, "0003_late.sql": "CREATE TABLE late (x INTEGER);\n"},
    )
    assert await migrate(db, schema) == 3
    # A branch merged afterwards brings number 2.
    write_schema(schema, {"0002_between.sql": "CREATE TABLE between_ (y INTEGER);\n"})
    assert await migrate(db, schema) == 3
    assert await versions(db) == [(1, "things"), (2, "between"), (3, "late")]
    await db.execute("ins", "INSERT INTO between_ (y) VALUES (?)", 1)


async def test_failing_migration_leaves_the_previous_version(
    db: Database, tmp_path: Path, log_records: RecordingHandler
) -> None:
    schema = write_schema(tmp_path / "schema", {"0001_things.sql": FIRST})
    await migrate(db, schema)
    write_schema(
        schema,
        {
            "0002_broken.sql": (
                "CREATE TABLE half_done (x INTEGER);\n"
                "INSERT INTO half_done (x) VALUES (1);\n"
                "THIS IS NOT SQL;\n"
            ),
            "0003_later.sql": "CREATE TABLE later (x INTEGER);\n",
        },
    )
    with pytest.raises(MigrationError, match="0002_broken"):
        await migrate(db, schema)
    assert await versions(db) == [(1, "things")]
    # The failed file ran in one transaction: none of it remains, nor anything after it.
    for table in ("half_done", "later"):
        with pytest.raises(StorageError):
            await db.fetchall("probe", f"SELECT * FROM {table}")
    # Once fixed, it applies.
    (schema / "0002_broken.sql").write_text("CREATE TABLE half_done (x INTEGER);\n")
    assert await migrate(db, schema) == 3


async def test_pending_migrations_run_as_one_transaction(db: Database, tmp_path: Path) -> None:
    files = {f"{n:04d}_t{n}.sql": f"CREATE TABLE t{n} (x INTEGER);\n" for n in range(1, 6)}
    assert await migrate(db, write_schema(tmp_path / "schema", files)) == 5
    # A new database is one commit, not one per file.
    assert db.txn_totals["migrate"][0] == 1
    assert [v for v, _ in await versions(db)] == [1, 2, 3, 4, 5]
    # Files applied together fail together: the database keeps the version it had.
    broken = {"0006_fine.sql": "CREATE TABLE fine (x INTEGER);\n", "0007_bad.sql": "NOT SQL;\n"}
    with pytest.raises(MigrationError, match="0007_bad"):
        await migrate(db, write_schema(tmp_path / "schema", broken))
    assert [v for v, _ in await versions(db)] == [1, 2, 3, 4, 5]
    with pytest.raises(StorageError):
        await db.fetchall("probe", "SELECT * FROM fine")


def test_load_migrations_rejects_bad_names_and_duplicates(tmp_path: Path) -> None:
    bad = write_schema(tmp_path / "bad", {"1_things.sql": "SELECT 1;"})
    with pytest.raises(MigrationError, match="badly named"):
        load_migrations(bad)
    dup = write_schema(tmp_path / "dup", {"0001_a.sql": "SELECT 1;", "0001_b.sql": "SELECT 1;"})
    with pytest.raises(MigrationError, match="share a number"):
        load_migrations(dup)
    ok = write_schema(tmp_path / "ok", {"0002_b.sql": "", "0001_a.sql": ""})
    assert [(m.version, m.name) for m in load_migrations(ok)] == [(1, "a"), (2, "b")]
    # A migration may come once per engine, but then for both and alone.
    per_engine = {"0001_a.sqlite.sql": "SELECT 1;", "0001_a.postgres.sql": "SELECT 2;"}
    (both,) = load_migrations(write_schema(tmp_path / "both", per_engine))
    assert (both.sql_for("sqlite"), both.sql_for("postgres")) == ("SELECT 1;", "SELECT 2;")
    for name, files in [
        ("one", {"0001_a.sqlite.sql": ""}),
        ("mixed", {**per_engine, "0001_a.sql": ""}),
        ("renamed", {"0001_a.sqlite.sql": "", "0001_b.postgres.sql": ""}),
    ]:
        with pytest.raises(MigrationError, match="share a number"):
            load_migrations(write_schema(tmp_path / name, files))


def test_real_migrations_load_and_render_for_both_engines() -> None:
    for migration in load_migrations():
        for engine in ("sqlite", "postgres"):
            for statement in render(migration.sql_for(engine), engine):
                assert "{{" not in statement, (migration.name, engine)


def test_render_drops_comment_lines() -> None:
    sql = (
        "-- A header; with a semicolon;\n"
        "CREATE TABLE a (\n"
        "    -- the key (see ratelimit_override);\n"
        "    x INTEGER\n"
        ");\n"
        "\n-- trailing comment;\n"
        "CREATE INDEX a_x ON a (x)"
    )
    assert render(sql, "postgres") == [
        "CREATE TABLE a (\n    x INTEGER\n)",
        "CREATE INDEX a_x ON a (x)",
    ]


async def test_comment_only_migration_file(db: Database, tmp_path: Path) -> None:
    schema = write_schema(
        tmp_path / "schema",
        {"0001_c.sql": "-- nothing yet;\n", "0002_t.sql": "-- t;\nCREATE TABLE t (x INTEGER);\n"},
    )
    assert await migrate(db, schema) == 2
    assert await db.fetchall("t", "SELECT x FROM t") == []


def test_dialect_tokens_and_placeholders() -> None:
    sql = "CREATE TABLE t (id {{SERIAL_PK}}, b {{BLOB}});\nSELECT 1;\n"
    assert render(sql, "sqlite") == [
        "CREATE TABLE t (id INTEGER PRIMARY KEY AUTOINCREMENT, b BLOB)",
        "SELECT 1",
    ]
    assert render(sql, "postgres")[0] == "CREATE TABLE t (id BIGSERIAL PRIMARY KEY, b BYTEA)"
    assert to_pg_sql("SELECT * FROM t WHERE a = ? AND b IN (?, ?)") == (
        "SELECT * FROM t WHERE a = $1 AND b IN ($2, $3)"
    )


async def make_things(db: Database, tmp_path: Path) -> None:
    await migrate(db, write_schema(tmp_path / "schema", {"0001_things.sql": FIRST}))


async def test_transaction_rolls_back_on_error(db: Database, tmp_path: Path) -> None:
    await make_things(db, tmp_path)

    async def half(txn: Transaction) -> None:
        assert await txn.execute("INSERT INTO things (name) VALUES (?)", ("kept?",)) == 1
        raise ValueError("handler bug")

    with pytest.raises(ValueError):
        await db.run_interaction("half", half)
    assert await db.fetchval("count", "SELECT COUNT(*) FROM things") == 0

    async def whole(txn: Transaction) -> int:
        await txn.executemany("INSERT INTO things (name) VALUES (?)", [("a",), ("b",), ("c",)])
        row = await txn.fetchone("SELECT COUNT(*) FROM things")
        assert row is not None
        return int(row[0])

    assert await db.run_interaction("whole", whole) == 3
    assert await db.fetchone("one", "SELECT name FROM things WHERE name = ?", "b") == ("b",)
    assert await db.fetchone("none", "SELECT name FROM things WHERE name = ?", "zz") is None
    assert await db.execute("upd", "UPDATE things SET data = ? WHERE name <> ?", b"x", "a") == 2


async def test_integrity_error_is_mapped_and_the_db_stays_usable(
    db: Database, tmp_path: Path
) -> None:
    await make_things(db, tmp_path)
    await db.execute("ins", "INSERT INTO things (name) VALUES (?)", "dup")

    async def twice(txn: Transaction) -> None:
        await txn.execute("INSERT INTO things (name) VALUES (?)", ("other",))
        await txn.execute("INSERT INTO things (name) VALUES (?)", ("dup",))

    with pytest.raises(IntegrityError):
        await db.run_interaction("twice", twice)
    with pytest.raises(IntegrityError):
        await db.execute("again", "INSERT INTO things (name) VALUES (?)", "dup")
    with pytest.raises(StorageError) as info:
        await db.execute("bad", "SELECT nope FROM nowhere")
    assert not isinstance(info.value, IntegrityError)
    assert await db.fetchall("all", "SELECT name FROM things") == [("dup",)]


async def test_db_time_is_charged_to_the_context(db: Database) -> None:
    with LoggingContext("GET-1", "test.local", request="GET-1") as ctx:
        for _ in range(3):
            await db.fetchval("one", "SELECT 1")
        child = ctx.child("sub")
        with child:
            await db.fetchval("two", "SELECT 2")
    assert ctx.usage.db_txn_count == 4
    assert child.usage.db_txn_count == 1
    assert ctx.usage.db_s > 0
    assert ctx.usage.db_s >= child.usage.db_s


async def test_periodic_db_time_line_logs_under_looping_call(
    db: Database, log_records: RecordingHandler
) -> None:
    clock = Clock("tenant.test")
    with LoggingContext("GET-1", "tenant.test", request="GET-1"):
        db.start_txn_logging(clock)
        await db.fetchval("get_answer", "SELECT 42")
    await advance(TXN_LOG_INTERVAL_S - 1)
    assert log_records.matching("Total database time") == []
    await advance(1)
    (first,) = log_records.matching("Total database time")
    assert first.server_name == "tenant.test"  # type: ignore[attr-defined]
    assert first.request == "looping_call"  # type: ignore[attr-defined]
    message = first.getMessage()
    assert message.startswith("Total database time: ") and "%" in message
    assert "get_answer(1): " in message
    await advance(TXN_LOG_INTERVAL_S)
    lines = log_records.matching("Total database time")
    assert len(lines) == 2
    assert "get_answer" not in lines[1].getMessage()  # stats reset each interval
    await clock.shutdown()
    assert clock.pending_count() == 0


async def test_cancelled_transaction_rolls_back_and_frees_the_connection(
    db: Database, tmp_path: Path, engine: str
) -> None:
    if engine != "postgres":
        pytest.skip("on SQLite a transaction function cannot wait on the loop (next test)")
    await make_things(db, tmp_path)
    clock = Clock("test.local")

    async def slow(txn: Transaction) -> None:
        await txn.execute("INSERT INTO things (name) VALUES (?)", ("cancelled",))
        await clock.sleep(60)

    task = clock.run_in_background(db.run_interaction, "slow", slow)
    await advance(1)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert current_context() is None
    assert await db.fetchval("count", "SELECT COUNT(*) FROM things") == 0
    await db.execute("ins", "INSERT INTO things (name) VALUES (?)", "after")
    assert await db.fetchall("all", "SELECT name FROM things") == [("after",)]
    await clock.shutdown()


async def test_sqlite_cancel_while_a_statement_runs_in_a_thread(
    sqlite_t: Database, monkeypatch: pytest.MonkeyPatch
) -> None:
    from hamlet.storage.engines import sqlite as sqlite_engine

    db = sqlite_t
    started, release = threading.Event(), threading.Event()
    real_execute = sqlite_engine._execute

    def slow_begin(conn: Any, sql: str, args: tuple[object, ...]) -> int:
        result = real_execute(conn, sql, args)
        if sql == "BEGIN" and not release.is_set():
            started.set()
            release.wait(10)
        return result

    monkeypatch.setattr(sqlite_engine, "_execute", slow_begin)

    async def insert(txn: Transaction) -> None:
        await txn.execute("INSERT INTO t (x) VALUES (1)")

    clock = Clock("test.local")
    task = clock.run_in_background(db.run_interaction, "ins", insert)
    assert await asyncio.to_thread(started.wait, 10), "BEGIN never ran"
    task.cancel()  # the transaction is running in a pool thread
    # One turn of the loop delivers the cancellation; the task keeps waiting
    # for the thread.
    await asyncio.sleep(0)
    assert not task.done()
    release.set()
    with pytest.raises(asyncio.CancelledError):
        await task
    # The started transaction finished (committed) before the task gave up
    # the connection, which is not left inside it.
    await db.execute("ins2", "INSERT INTO t (x) VALUES (2)")
    assert await db.fetchall("all", "SELECT x FROM t") == [(1,), (2,)]
    await clock.shutdown()


async def test_sqlite_runs_a_whole_transaction_in_one_hop(
    sqlite_t: Database, monkeypatch: pytest.MonkeyPatch
) -> None:
    from hamlet.storage.engines import sqlite as sqlite_engine

    db = sqlite_t
    hops: list[str] = []
    real_run_db = sqlite_engine.run_db

    async def counting_run_db(fn: Callable[..., Any], *args: object) -> Any:
        hops.append(getattr(fn, "__name__", "?"))
        return await real_run_db(fn, *args)

    monkeypatch.setattr(sqlite_engine, "run_db", counting_run_db)
    outer = LoggingContext("request", "test.local")

    async def several(txn: Transaction) -> tuple[int, LoggingContext | None]:
        for x in range(3):
            await txn.execute("INSERT INTO t (x) VALUES (?)", (x,))
        await txn.executemany("INSERT INTO t (x) VALUES (?)", [(10,), (11,)])
        total = await txn.fetchval("SELECT SUM(x) FROM t")
        return total, current_context()

    statements = db.total_statements
    with outer:
        total, inside = await db.run_interaction("several", several)
    assert (total, inside) == (24, outer)
    assert hops == ["_drive"]
    assert db.total_statements - statements == 5


async def test_sqlite_transaction_function_awaiting_anything_else_fails_and_rolls_back(
    sqlite_t: Database,
) -> None:
    db = sqlite_t

    class Yields:
        def __await__(self) -> Any:
            yield None

    async def bare_yield(txn: Transaction) -> None:
        await txn.execute("INSERT INTO t (x) VALUES (1)")
        await Yields()

    async def loop_wait(txn: Transaction) -> None:
        await txn.execute("INSERT INTO t (x) VALUES (2)")
        await asyncio.sleep(1)

    with pytest.raises(StorageError, match="not one of its statements"):
        await db.run_interaction("yields", bare_yield)
    # No event loop in the database thread: a wait on the loop fails there.
    with pytest.raises(RuntimeError, match="event loop"):
        await db.run_interaction("sleeps", loop_wait)
    await db.execute("ins", "INSERT INTO t (x) VALUES (3)")
    assert await db.fetchall("all", "SELECT x FROM t") == [(3,)]


async def test_closed_database_refuses_work_and_close_is_idempotent(
    make_hs_config: MakeConfig,
) -> None:
    db = make_database(make_hs_config())
    await db.open()
    await db.fetchval("one", "SELECT 1")
    await db.close()
    await db.close()
    with pytest.raises(StorageError, match="closed"):
        await db.fetchval("one", "SELECT 1")


async def test_real_schema_migrates_on_both_engines(db: Database) -> None:
    version = await migrate(db)
    expected = max((m.version for m in load_migrations()), default=0)
    assert version == expected
    assert await migrate(db) == expected
    assert migrations.SCHEMA_DIR.is_dir()


async def test_a_lone_statement_commits_on_its_own(
    make_hs_config: MakeConfig, tmp_path: Path
) -> None:
    config = make_hs_config()
    db, other = make_database(config), make_database(config)
    await db.open()
    await other.open()
    try:
        await make_things(db, tmp_path)
        assert await db.execute("ins", "INSERT INTO things (name) VALUES (?)", "a") == 1
        # Seen from another connection at once: nothing was left in a transaction.
        assert await other.fetchall("all", "SELECT name FROM things") == [("a",)]
        assert await other.execute("ins", "INSERT INTO things (name) VALUES (?)", "b") == 1
        rows = await db.fetchall("all", "SELECT name FROM things ORDER BY name")
        assert rows == [("a",), ("b",)]
        assert db.txn_totals["ins"][0] == 1
    finally:
        await other.close()
        await db.close()


async def test_a_current_schema_is_checked_with_one_query(db: Database) -> None:
    version = await migrate(db)
    before = {name: count for name, (count, _s) in db.txn_totals.items()}
    assert await migrate(db) == version
    after = {name: count for name, (count, _s) in db.txn_totals.items()}
    ran = {name: after[name] - before.get(name, 0) for name in after}
    assert {name: n for name, n in ran.items() if n} == {"get_schema_versions": 1}


async def test_the_packaged_migrations_are_read_once(
    make_hs_config: MakeConfig, monkeypatch: pytest.MonkeyPatch
) -> None:
    reads: list[Path] = []

    def counting(schema_dir: Path = migrations.SCHEMA_DIR) -> list[migrations.Migration]:
        reads.append(schema_dir)
        return load_migrations(schema_dir)

    monkeypatch.setattr(migrations, "_packaged", None)
    monkeypatch.setattr(migrations, "load_migrations", counting)
    expected = max(m.version for m in load_migrations())
    for _ in range(2):
        database = make_database(make_hs_config())
        await database.open()
        try:
            assert await migrate(database) == expected
        finally:
            await database.close()
    assert reads == [migrations.SCHEMA_DIR]
