"""Engines and migrations: the SQLite settings, the default URL, ``alembic upgrade head``."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from alembic import command
from alembic.config import Config
from sqlalchemy import event
from sqlalchemy.engine import URL, make_url
from sqlalchemy.pool import StaticPool

from medtwin.errors import ConfigurationError

__all__ = [
    "MIGRATIONS",
    "WRITE",
    "create_engine",
    "default_url",
    "downgrade",
    "is_memory",
    "migrate",
]

MIGRATIONS = Path(__file__).resolve().parent / "migrations"
"""The Alembic script folder shipped inside the package."""

WRITE = "medtwin_write"
"""Execution option marking an engine whose transactions write (SQLite: ``BEGIN IMMEDIATE``)."""

_BUSY_TIMEOUT_MS = 30_000


def default_url() -> str:
    """``MEDTWIN_DATABASE_URL``, else the SQLite file ``<MEDTWIN_HOME or ./medtwin-data>/medtwin.db``."""
    url = os.environ.get("MEDTWIN_DATABASE_URL")
    if url:
        return url
    home = Path(os.environ.get("MEDTWIN_HOME") or "medtwin-data")
    return f"sqlite:///{home.resolve() / 'medtwin.db'}"


def is_memory(url: URL) -> bool:
    """Whether ``url`` is an in-memory SQLite database."""
    return url.get_backend_name() == "sqlite" and url.database in (None, "", ":memory:")


def create_engine(url: str | URL) -> sa.Engine:
    """An engine for ``url``: SQLite (WAL, foreign keys, busy timeout) or PostgreSQL via pg8000."""
    u = make_url(url)
    backend = u.get_backend_name()
    if backend == "sqlite":
        kwargs: dict[str, Any] = {"connect_args": {"check_same_thread": False}}
        if is_memory(u):
            # One connection, or every connection would see its own empty database.
            kwargs["poolclass"] = StaticPool
        elif u.database and not u.database.startswith("file:"):
            Path(u.database).expanduser().parent.mkdir(parents=True, exist_ok=True)
        engine = sa.create_engine(u, **kwargs)
        event.listen(engine, "connect", _sqlite_connect)
        event.listen(engine, "begin", _sqlite_begin)
        return engine
    if backend == "postgresql":
        if u.drivername == "postgresql":
            u = u.set(drivername="postgresql+pg8000")
        return sa.create_engine(u, pool_pre_ping=True)
    raise ConfigurationError(
        f"unsupported database URL {u.render_as_string(hide_password=True)!r}: use "
        "sqlite:///path/medtwin.db or postgresql+pg8000://user@host/dbname"
    )


def _sqlite_connect(dbapi_conn: Any, _record: object) -> None:
    # The driver's own transaction handling would BEGIN only before the first write, so reads
    # earlier in a transaction would run outside it; _sqlite_begin emits BEGIN instead.
    dbapi_conn.isolation_level = None
    cur = dbapi_conn.cursor()
    cur.execute("PRAGMA journal_mode=WAL")
    # In WAL mode synchronous=NORMAL still never corrupts the database and a committed
    # transaction survives a crash of the process; only a power loss or OS crash can roll back
    # the last few commits (the WAL is fsynced at checkpoints, not at every commit).
    cur.execute("PRAGMA synchronous=NORMAL")
    cur.execute("PRAGMA foreign_keys=ON")
    cur.execute(f"PRAGMA busy_timeout={_BUSY_TIMEOUT_MS}")
    cur.close()


def _sqlite_begin(conn: sa.Connection) -> None:
    # A write transaction takes the write lock at BEGIN: one that read first and wrote later
    # could otherwise fail with SQLITE_BUSY (no busy wait) when another writer got in between,
    # and the audit chain's head must be read under the lock that its append holds.
    write = conn.get_execution_options().get(WRITE, False)
    conn.exec_driver_sql("BEGIN IMMEDIATE" if write else "BEGIN")


def migrate(engine: sa.Engine, revision: str = "head") -> None:
    """Run ``alembic upgrade <revision>`` with the package's migrations on ``engine``."""
    _alembic(engine, command.upgrade, revision)


def downgrade(engine: sa.Engine, revision: str) -> None:
    """Run ``alembic downgrade <revision>`` (``"base"``: drop everything) on ``engine``."""
    _alembic(engine, command.downgrade, revision)


def _alembic(engine: sa.Engine, fn: Callable[[Config, str], None], revision: str) -> None:
    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    with engine.execution_options(**{WRITE: True}).connect() as conn:
        cfg.attributes["connection"] = conn
        fn(cfg, revision)
        conn.commit()
