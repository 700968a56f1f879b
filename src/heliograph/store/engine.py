"""Opening the store: engines for SQLite (WAL) and PostgreSQL, and migrations at start-up."""

from __future__ import annotations

import sqlite3
from collections.abc import Callable
from pathlib import Path
from typing import Any, cast

import orjson
from alembic import command
from alembic.config import Config
from sqlalchemy import Engine, create_engine, event

MIGRATIONS = Path(__file__).parent / "migrations"


def _sqlite_pragmas(dbapi_connection: sqlite3.Connection, _record: Any) -> None:
    cursor = dbapi_connection.cursor()
    # Only takes effect before the first table exists (a new file): freed pages can then be
    # given back to the OS after retention (``PRAGMA incremental_vacuum``). An existing file
    # keeps its mode until one full VACUUM (``heliograph retention run --vacuum``).
    cursor.execute("PRAGMA auto_vacuum=INCREMENTAL")
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.execute("PRAGMA busy_timeout=10000")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.close()


def fast_sqlite_binding() -> None:
    """Bind None, bools and bytes without sqlite3's adaptation protocol lookups.

    sqlite3 binds int, float and str directly, but for any other type it looks for
    ``__adapt__`` and ``__conform__`` first, two failed attribute lookups per value, before
    binding the value as it is. A record row is about half None and booleans, and that was a
    third of its insert time. Registered adapters hand back the same value (NULL, the int a
    bool is, the same bytes), so what is stored is unchanged. Idempotent; process-wide.
    """
    answer_none = cast("Callable[[None], None]", {}.get)  # a C callable: cheaper than a lambda
    sqlite3.register_adapter(type(None), answer_none)
    sqlite3.register_adapter(bool, int)
    sqlite3.register_adapter(bytes, bytes)  # bytes(b) is b for exact bytes


def _json_dumps(value: Any) -> str:
    return orjson.dumps(value).decode()


def make_engine(url: str, *, pool_size: int = 5) -> Engine:
    """An engine with the settings each dialect needs; SQLite files get WAL mode."""
    if url.startswith("sqlite"):
        path = url.split(":///", 1)[1] if ":///" in url else ""
        if path and path != ":memory:":
            Path(path).parent.mkdir(parents=True, exist_ok=True)
        # A small pool: opening a SQLite connection (and its pragmas) costs milliseconds,
        # more than most dashboard queries. Each connection is used by one thread at a time.
        engine = create_engine(
            url,
            pool_size=pool_size,
            max_overflow=pool_size * 2,
            pool_timeout=30,
            connect_args={"check_same_thread": False, "timeout": 30},
            json_serializer=_json_dumps,
            json_deserializer=orjson.loads,
        )
        event.listen(engine, "connect", _sqlite_pragmas)
        fast_sqlite_binding()
        return engine
    return create_engine(
        url,
        pool_size=pool_size,
        max_overflow=pool_size,
        pool_pre_ping=True,
        pool_recycle=1800,
        json_serializer=_json_dumps,
        json_deserializer=orjson.loads,
        connect_args={"connect_timeout": 5},
    )


def alembic_config(engine: Engine) -> Config:
    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    cfg.set_main_option("sqlalchemy.url", engine.url.render_as_string(hide_password=False))
    return cfg


def migrate(engine: Engine, revision: str = "head") -> None:
    """Bring the schema up to ``revision``; safe to run on every start."""
    cfg = alembic_config(engine)
    with engine.begin() as conn:
        cfg.attributes["connection"] = conn
        command.upgrade(cfg, revision)


def current_revision(engine: Engine) -> str | None:
    from alembic.runtime.migration import MigrationContext

    with engine.connect() as conn:
        return MigrationContext.configure(conn).get_current_revision()
