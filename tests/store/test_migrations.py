from __future__ import annotations

import datetime as dt

import pytest
import sqlalchemy as sa
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext

from medtwin.errors import ConfigurationError
from medtwin.records import PatientRecord
from medtwin.security import GENESIS
from medtwin.store import Store, default_url
from medtwin.store._engine import MIGRATIONS, create_engine, downgrade, migrate
from medtwin.store._schema import Base

HEAD = "0002"


def _diffs(engine: sa.Engine) -> list[object]:
    with engine.connect() as conn:
        return list(compare_metadata(MigrationContext.configure(conn), Base.metadata))


def _revision(engine: sa.Engine) -> str | None:
    with engine.connect() as conn:
        return MigrationContext.configure(conn).get_current_revision()


def test_migrations_produce_exactly_the_models(fresh_url):
    engine = create_engine(fresh_url)
    try:
        assert _diffs(engine) != []  # nothing there yet: every table is missing
        migrate(engine)
        assert _revision(engine) == HEAD
        assert _diffs(engine) == []
        with engine.connect() as conn:
            assert conn.execute(sa.text("SELECT id, seq, hash FROM audit_head")).all() == [
                (1, 0, GENESIS)
            ]
        # The comparison sees a difference when there is one.
        with engine.begin() as conn:
            conn.exec_driver_sql("DROP INDEX ix_observations_patient_id_time")
        diffs = _diffs(engine)
        assert [d[0] for d in diffs] == ["add_index"]  # type: ignore[index]
    finally:
        engine.dispose()


def test_downgrade_then_upgrade(fresh_url):
    engine = create_engine(fresh_url)
    try:
        migrate(engine)
        downgrade(engine, "base")
        assert set(sa.inspect(engine).get_table_names()) == {"alembic_version"}
        migrate(engine)
        assert _diffs(engine) == []
    finally:
        engine.dispose()


def test_open_migrates_once_and_reopens(db_url, keyring):
    with Store.open(db_url, keyring=keyring) as a:
        a.add_patient(PatientRecord("p1", name="Ada"))
    with Store.open(db_url, keyring=keyring) as b:
        assert b.get_patient("p1").name == "Ada"
    engine = create_engine(db_url)
    try:
        assert _revision(engine) == HEAD
    finally:
        engine.dispose()


def test_migrations_ship_with_the_package():
    assert (MIGRATIONS / "env.py").is_file()
    assert (MIGRATIONS / "script.py.mako").is_file()
    assert sorted(p.name for p in (MIGRATIONS / "versions").glob("*.py")) == [
        "0001_initial.py",
        "0002_adt_events.py",
    ]


def test_upgrade_from_0001_keeps_the_data(fresh_url, keyring):
    """A database of the first schema gains the ADT table, keeps its data, and can go back."""
    engine = create_engine(fresh_url)
    try:
        migrate(engine, "0001")
        assert "adt_events" not in sa.inspect(engine).get_table_names()
        with engine.begin() as conn:
            conn.execute(
                sa.text("INSERT INTO patients (id, sex, created_at) VALUES ('p1', 'female', :t)"),
                {"t": dt.datetime(2026, 1, 1, tzinfo=dt.UTC)},
            )
    finally:
        engine.dispose()
    with Store.open(fresh_url, keyring=keyring) as store:  # upgrades to head
        assert store.get_patient("p1").sex == "female"
        assert store.count_adt_events() == 0
    engine = create_engine(fresh_url)
    try:
        assert _revision(engine) == HEAD and _diffs(engine) == []
        downgrade(engine, "0001")
        assert "adt_events" not in sa.inspect(engine).get_table_names()
        with engine.connect() as conn:
            assert conn.execute(sa.text("SELECT id FROM patients")).scalars().all() == ["p1"]
    finally:
        engine.dispose()


def test_sqlite_settings(tmp_path, keyring):
    with (
        Store.open(f"sqlite:///{tmp_path / 'a.db'}", keyring=keyring) as store,
        store._engine.connect() as conn,
    ):
        pragma = {
            name: conn.exec_driver_sql(f"PRAGMA {name}").scalar()
            for name in ("journal_mode", "foreign_keys", "synchronous", "busy_timeout")
        }
    assert pragma == {
        "journal_mode": "wal",
        "foreign_keys": 1,
        "synchronous": 1,
        "busy_timeout": 30000,
    }


def test_default_url(tmp_path, monkeypatch, keyring):
    monkeypatch.delenv("MEDTWIN_DATABASE_URL", raising=False)
    monkeypatch.setenv("MEDTWIN_HOME", str(tmp_path / "home"))
    assert default_url() == f"sqlite:///{tmp_path / 'home' / 'medtwin.db'}"
    with Store.open(keyring=keyring) as store:
        assert store.backend == "sqlite"
    assert (tmp_path / "home" / "medtwin.db").is_file()
    monkeypatch.setenv("MEDTWIN_DATABASE_URL", "postgresql+pg8000://u:secret@db/medtwin")
    assert default_url() == "postgresql+pg8000://u:secret@db/medtwin"


def test_default_home_is_medtwin_data(tmp_path, monkeypatch):
    monkeypatch.delenv("MEDTWIN_DATABASE_URL", raising=False)
    monkeypatch.delenv("MEDTWIN_HOME", raising=False)
    monkeypatch.chdir(tmp_path)
    assert default_url() == f"sqlite:///{tmp_path / 'medtwin-data' / 'medtwin.db'}"


def test_unsupported_database(keyring):
    with pytest.raises(
        ConfigurationError, match="unsupported database URL 'mysql://u:\\*\\*\\*@h/d'"
    ):
        Store.open("mysql://u:pw@h/d", keyring=keyring)


def test_url_hides_the_password(keyring):
    engine = create_engine("postgresql://u:secret@127.0.0.1:1/x")
    try:
        assert engine.dialect.driver == "pg8000"
        assert Store(engine, keyring=keyring).url == "postgresql+pg8000://u:***@127.0.0.1:1/x"
    finally:
        engine.dispose()
