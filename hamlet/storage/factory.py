"""Builds the Database a homeserver config asks for."""

from __future__ import annotations

from typing import TYPE_CHECKING

from hamlet.config import HomeServerConfig
from hamlet.storage.database import Database
from hamlet.storage.engines.sqlite import SqliteDatabase

if TYPE_CHECKING:
    from hamlet.storage.engines.postgres import PgPool


def make_database(config: HomeServerConfig, pg_pool: PgPool | None = None) -> Database:
    """`pg_pool` is the host's shared pool; without one the database owns a private pool."""
    db_config = config.database
    if db_config.is_sqlite:
        return SqliteDatabase(db_config.sqlite_path())
    # asyncpg (5 MB resident) is imported only by a process that uses PostgreSQL.
    from hamlet.storage.engines.postgres import PgPool, PostgresDatabase

    if pg_pool is not None:
        return PostgresDatabase(pg_pool, db_config.pg_schema)
    pool = PgPool(
        db_config.pg_dsn_kwargs(), min_size=min(db_config.cp_min, 1), max_size=db_config.cp_max
    )
    return PostgresDatabase(pool, db_config.pg_schema, owns_pool=True)
