"""One fixture, two backends: every store test runs on SQLite and on PostgreSQL.

SQLite lives in ``tmp_path``.  PostgreSQL is a database of its own for this test session
(``medtwin_test_<hex>``, created through an AUTOCOMMIT connection to ``test`` and dropped at the
end), migrated once and truncated before each test.  PostgreSQL tests carry the ``service`` marker:
they skip when 127.0.0.1:5432 does not answer, and fail instead under MEDTWIN_REQUIRE_SERVICES=1.
"""

from __future__ import annotations

import functools
import os
import secrets
import socket
from collections.abc import Callable, Iterator

import pytest
import sqlalchemy as sa
from argon2 import PasswordHasher, profiles

from medtwin.security import GENESIS, Keyring, hash_password
from medtwin.store import Store, _store
from medtwin.store._engine import create_engine, migrate
from medtwin.store._schema import Base

PG_ADMIN_URL = os.environ.get(
    "MEDTWIN_TEST_POSTGRES_URL", "postgresql+pg8000://postgres@127.0.0.1:5432/test"
)
BACKENDS = ["sqlite", pytest.param("postgresql", marks=pytest.mark.service)]


def _pg_reachable() -> bool:
    url = sa.make_url(PG_ADMIN_URL)
    try:
        socket.create_connection((url.host or "127.0.0.1", url.port or 5432), timeout=1).close()
    except OSError:
        return False
    return True


class PostgresServer:
    """Creates and drops throw-away databases on the test server."""

    def __init__(self) -> None:
        self.admin = sa.create_engine(PG_ADMIN_URL, isolation_level="AUTOCOMMIT")
        self.created: list[str] = []

    def create(self) -> str:
        name = f"medtwin_test_{secrets.token_hex(6)}"
        with self.admin.connect() as conn:
            conn.exec_driver_sql(f"CREATE DATABASE {name}")
        self.created.append(name)
        return sa.make_url(PG_ADMIN_URL).set(database=name).render_as_string(hide_password=False)

    def drop_all(self) -> None:
        with self.admin.connect() as conn:
            for name in self.created:
                conn.exec_driver_sql(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
        self.admin.dispose()


@pytest.fixture(scope="session")
def postgres() -> Iterator[PostgresServer]:
    if not _pg_reachable():
        url = sa.make_url(PG_ADMIN_URL)
        pytest.skip(f"PostgreSQL is not reachable at {url.host}:{url.port or 5432}")
    server = PostgresServer()
    try:
        yield server
    finally:
        server.drop_all()


@pytest.fixture(scope="session")
def pg_url(postgres: PostgresServer) -> str:
    """The session's PostgreSQL database, migrated once."""
    url = postgres.create()
    engine = create_engine(url)
    try:
        migrate(engine)
    finally:
        engine.dispose()
    return url


def _truncate(url: str) -> None:
    engine = create_engine(url)
    try:
        with engine.begin() as conn:
            names = ", ".join(t.name for t in Base.metadata.sorted_tables)
            conn.exec_driver_sql(f"TRUNCATE {names} RESTART IDENTITY CASCADE")
            conn.execute(sa.text("INSERT INTO audit_head VALUES (1, 0, :g)"), {"g": GENESIS})
    finally:
        engine.dispose()


@pytest.fixture(params=BACKENDS)
def backend(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def db_url(backend: str, tmp_path, request: pytest.FixtureRequest) -> str:
    """An empty, migrated database of ``backend``."""
    if backend == "sqlite":
        return f"sqlite:///{tmp_path / 'medtwin.db'}"
    url = str(request.getfixturevalue("pg_url"))
    _truncate(url)
    return url


@pytest.fixture
def fresh_url(backend: str, tmp_path, request: pytest.FixtureRequest) -> str:
    """A database of ``backend`` with no tables at all (for the migration tests)."""
    if backend == "sqlite":
        return f"sqlite:///{tmp_path / 'fresh.db'}"
    return request.getfixturevalue("postgres").create()


@pytest.fixture(autouse=True)
def cheap_passwords(monkeypatch: pytest.MonkeyPatch) -> None:
    """argon2id at its cheapest (as medtwin.security's tests do): hashing is slow by design."""
    cheap = PasswordHasher.from_parameters(profiles.CHEAPEST)
    monkeypatch.setattr(_store, "hash_password", functools.partial(hash_password, hasher=cheap))


@pytest.fixture(scope="session")
def keyring() -> Keyring:
    return Keyring.from_bytes(bytes(range(32)))


@pytest.fixture
def open_store(db_url: str, keyring: Keyring) -> Iterator[Callable[[], Store]]:
    """Opens more stores on the test database (all closed at the end)."""
    stores: list[Store] = []

    def make() -> Store:
        stores.append(Store.open(db_url, keyring=keyring))
        return stores[-1]

    yield make
    for s in stores:
        s.close()


@pytest.fixture
def store(open_store: Callable[[], Store]) -> Store:
    return open_store()


@pytest.fixture
def raw(db_url: str) -> Iterator[sa.Engine]:
    """A plain engine on the test database, for raw SQL behind the store's back."""
    engine = create_engine(db_url)
    yield engine
    engine.dispose()
