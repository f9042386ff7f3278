"""Persistence behind one interface: SQLite (the default, zero set-up) or PostgreSQL by URL.

SQLAlchemy 2 with Alembic migrations (shipped in ``medtwin/store/migrations``; :meth:`Store.open`
upgrades the database to the newest schema).  PHI columns are AES-GCM ciphertexts, ingestion is
idempotent and atomic, and every access can be written to a hash-chained audit log.

>>> from datetime import UTC, datetime, timedelta
>>> from medtwin.records import DeviceRecord, PatientRecord
>>> from medtwin.security import Keyring
>>> with Store.open("sqlite://", keyring=Keyring.from_bytes(bytes(32))) as store:
...     _ = store.add_patient(PatientRecord("p1"))
...     _ = store.add_device(DeviceRecord("cgm-7", "p1", "cgm"))
...     t0 = datetime(2026, 1, 1, tzinfo=UTC)
...     times = [t0 + timedelta(minutes=5 * i) for i in range(3)]
...     first = store.ingest_readings("p1", "cgm-7", times, [110.0, 115.0, 121.0], first_seq=1)
...     again = store.ingest_readings("p1", "cgm-7", times, [110.0, 115.0, 121.0], first_seq=1)
...     frame = store.observations_frame("p1")
>>> (first.accepted, again.accepted, again.duplicates), list(frame["value"])
((3, 0, 3), [110.0, 115.0, 121.0])
"""

from __future__ import annotations

from medtwin.store._engine import default_url
from medtwin.store._ingest import IngestResult
from medtwin.store._store import ReadingBatch, Store, StoredForecast, UserInfo

__all__ = ["IngestResult", "ReadingBatch", "Store", "StoredForecast", "UserInfo", "default_url"]
