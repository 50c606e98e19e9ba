"""The database section."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from hamlet.config import ConfigError, DatabaseConfig, validate_config


def db(database: Any, config_dir: Path = Path("/etc/hamlet")) -> DatabaseConfig:
    config, _ = validate_config(
        {"server_name": "example.com", "database": database}, config_dir=config_dir
    )
    return config.database


def db_errors(database: Any) -> list[str]:
    with pytest.raises(ConfigError) as info:
        validate_config({"server_name": "example.com", "database": database}, config_dir=Path("/"))
    return info.value.errors


def test_sqlite_relative_path_resolved() -> None:
    d = db({"name": "sqlite3", "args": {"database": "data/hs.db"}})
    assert d.is_sqlite and not d.is_postgres
    assert d.sqlite_path() == "/etc/hamlet/data/hs.db"
    assert d.cp_min == 1 and d.cp_max == 1


def test_sqlite_absolute_path_and_memory() -> None:
    assert db({"name": "sqlite3", "args": {"database": "/var/hs.db"}}).sqlite_path() == "/var/hs.db"
    assert db({"name": "sqlite3", "args": {"database": ":memory:"}}).sqlite_path() == ":memory:"


def test_sqlite_requires_database_path() -> None:
    assert db_errors({"name": "sqlite3"}) == ["database.args.database: missing required key"]
    assert db_errors({"name": "sqlite3", "args": {}}) == [
        "database.args.database: missing required key"
    ]
    assert db_errors({"name": "sqlite3", "args": {"database": 1}}) == [
        "database.args.database: must be a string"
    ]


def test_postgres() -> None:
    d = db(
        {
            "name": "psycopg2",
            "txn_limit": 10000,
            "args": {
                "user": "synapse",
                "password": "pw",
                "dbname": "hs",
                "host": "db.local",
                "port": 5433,
                "cp_min": 2,
                "cp_max": 20,
                "schema": "tenant_a",
            },
        }
    )
    assert d.is_postgres
    assert d.txn_limit == 10000
    assert d.pg_dsn_kwargs() == {
        "host": "db.local",
        "port": 5433,
        "user": "synapse",
        "password": "pw",
        "database": "hs",
    }
    assert d.pg_schema == "tenant_a"
    assert (d.cp_min, d.cp_max) == (2, 20)
    with pytest.raises(ValueError):
        d.sqlite_path()


def test_postgres_defaults() -> None:
    d = db({"name": "psycopg2", "args": {"database": "hs"}})
    assert d.pg_dsn_kwargs() == {"database": "hs"}
    assert d.pg_schema == "public"
    assert (d.cp_min, d.cp_max) == (5, 10)
    with pytest.raises(ValueError):
        db({"name": "sqlite3", "args": {"database": "x"}}).pg_dsn_kwargs()


def test_postgres_errors() -> None:
    errs = db_errors(
        {
            "name": "psycopg2",
            "args": {
                "user": 5,
                "port": "5432",
                "database": "a",
                "dbname": "b",
                "schema": "drop table;",
                "cp_min": 10,
                "cp_max": 5,
            },
        }
    )
    assert errs == [
        "database.args.user: must be a string",
        "database.args.dbname: conflicts with database (set only one of them)",
        "database.args.port: must be an integer between 1 and 65535",
        "database.args.schema: invalid schema name 'drop table;' (letters, digits and _, "
        "not starting with a digit, at most 63 characters)",
        "database.args.cp_max: must be >= cp_min (10)",
    ]


def test_unknown_engine() -> None:
    assert db_errors({"name": "mysql", "args": {"database": "x"}}) == [
        "database.name: unknown engine 'mysql' (expected sqlite3 or psycopg2)"
    ]


def test_engine_name_required() -> None:
    assert db_errors({"args": {"database": "x"}}) == ["database.name: missing required key"]


def test_database_must_be_mapping() -> None:
    assert db_errors("sqlite") == ["database: must be a mapping"]
