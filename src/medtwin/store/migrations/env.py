"""Alembic environment of the medtwin store.

:meth:`medtwin.store.Store.open` runs ``upgrade head`` with its own connection, passed in
``config.attributes["connection"]``.  For a developer's ``alembic revision --autogenerate`` the URL
comes from ``sqlalchemy.url`` or ``MEDTWIN_DATABASE_URL``.
"""

from __future__ import annotations

import os

import sqlalchemy as sa
from alembic import context

from medtwin.store._schema import Base

# Any constant will do: it only has to be the same in every process that migrates this database.
_PG_MIGRATION_LOCK = 0x6D6564747769


def _run(connection: sa.Connection) -> None:
    context.configure(
        connection=connection,
        target_metadata=Base.metadata,
        render_as_batch=connection.dialect.name == "sqlite",  # SQLite alters by copying tables
        compare_type=True,
    )
    with context.begin_transaction():
        if connection.dialect.name == "postgresql":
            # Two processes opening a fresh database at once: the second waits, then finds head.
            connection.execute(
                sa.text("SELECT pg_advisory_xact_lock(:k)"), {"k": _PG_MIGRATION_LOCK}
            )
        context.run_migrations()


def _main() -> None:
    config = context.config
    connection = config.attributes.get("connection")
    if connection is not None:
        _run(connection)
        return
    url = config.get_main_option("sqlalchemy.url") or os.environ.get("MEDTWIN_DATABASE_URL")
    if not url:
        raise RuntimeError("no database: set sqlalchemy.url or MEDTWIN_DATABASE_URL")
    if context.is_offline_mode():
        context.configure(url=url, target_metadata=Base.metadata, literal_binds=True)
        with context.begin_transaction():
            context.run_migrations()
        return
    engine = sa.create_engine(url)
    try:
        with engine.connect() as conn:
            _run(conn)
            conn.commit()
    finally:
        engine.dispose()


# Only inside Alembic: importing this file elsewhere (pytest's doctest collection) does nothing.
if getattr(context, "config", None) is not None:
    _main()
