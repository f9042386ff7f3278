"""Store ingestion throughput: the light path (device readings) and the full path (records).

Run with ``.venv/bin/python benchmarks/store.py`` (``--quick`` for a smoke run).  Measures, on a
SQLite file in a temporary folder and on PostgreSQL when 127.0.0.1:5432 answers (a throw-away
database ``medtwin_bench_<hex>``, dropped afterwards):

- ``ingest_readings``: one CGM's readings in batches of ``--batch`` (target >= 25,000/s on SQLite),
- ``ingest``: the same number of ObservationRecords in batches, each batch a message with a
  ``message_id`` (target >= 10,000/s),
- a resubmission of every batch of readings (all duplicates).

Each batch is one transaction and one commit, as a device upload or a FHIR Bundle would be.
"""

from __future__ import annotations

import argparse
import secrets
import socket
import sys
import tempfile
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

import sqlalchemy as sa

from medtwin.records import DeviceRecord, ObservationRecord, PatientRecord
from medtwin.security import Keyring
from medtwin.store import Store

PG_ADMIN = "postgresql+pg8000://postgres@127.0.0.1:5432/test"
T0 = datetime(2026, 1, 1, tzinfo=UTC)
TARGETS = {"readings": 25_000.0, "records": 10_000.0}


def _rate(n: int, fn: Callable[[], None]) -> float:
    t0 = time.perf_counter()
    fn()
    return n / (time.perf_counter() - t0)


def run(url: str, n: int, batch: int) -> dict[str, float]:
    """Readings/s of each path on the database at ``url`` (freshly migrated)."""
    store = Store.open(url, keyring=Keyring.from_bytes(secrets.token_bytes(32)))
    try:
        store.add_patient(PatientRecord("p1", identifier="urn:mrn|1", name="Bench Patient"))
        store.add_device(DeviceRecord("cgm-1", "p1", "cgm"))
        store.add_device(DeviceRecord("cgm-2", "p1", "cgm"))
        times = [T0 + timedelta(minutes=5 * i) for i in range(n)]
        values = [100.0 + (i % 200) for i in range(n)]
        starts = range(0, n, batch)

        def readings() -> None:
            for s in starts:
                store.ingest_readings(
                    "p1", "cgm-1", times[s : s + batch], values[s : s + batch], first_seq=s
                )

        records = [
            ObservationRecord(
                "p1", "99504-3", t, v, "mg/dL", device_id="cgm-2", source_id=f"fhir:Observation/{i}"
            )
            for i, (t, v) in enumerate(zip(times, values, strict=True))
        ]

        def full() -> None:
            for s in starts:
                store.ingest(observations=records[s : s + batch], message_id=f"bundle-{s}")

        out = {
            "readings": _rate(n, readings),
            "records": _rate(n, full),
            "readings resubmitted": _rate(n, readings),
        }
        assert len(store.observations_frame("p1")) == 2 * n
        return out
    finally:
        store.close()


def _pg_up() -> bool:
    try:
        socket.create_connection(("127.0.0.1", 5432), timeout=1).close()
    except OSError:
        return False
    return True


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=100_000, help="readings per path")
    ap.add_argument("--batch", type=int, default=1_000, help="readings per transaction")
    ap.add_argument("--quick", action="store_true", help="10,000 readings")
    args = ap.parse_args()
    n = 10_000 if args.quick else args.n
    results: dict[str, dict[str, float]] = {}
    with tempfile.TemporaryDirectory() as d:
        results["SQLite"] = run(f"sqlite:///{Path(d) / 'bench.db'}", n, args.batch)
    if _pg_up():
        name = f"medtwin_bench_{secrets.token_hex(4)}"
        admin = sa.create_engine(PG_ADMIN, isolation_level="AUTOCOMMIT")
        try:
            with admin.connect() as c:
                c.exec_driver_sql(f"CREATE DATABASE {name}")
            try:
                results["PostgreSQL"] = run(PG_ADMIN.rsplit("/", 1)[0] + f"/{name}", n, args.batch)
            finally:
                with admin.connect() as c:
                    c.exec_driver_sql(f"DROP DATABASE {name} WITH (FORCE)")
        finally:
            admin.dispose()
    else:
        print("PostgreSQL: 127.0.0.1:5432 unreachable, skipped", file=sys.stderr)
    print(f"{n:,} readings in batches of {args.batch:,} (one transaction each)")
    for backend, rates in results.items():
        for path, rate in rates.items():
            target = TARGETS.get(path)
            mark = "" if target is None else f"  (target {target:,.0f}/s: {rate / target:.1f}x)"
            print(f"{backend:>10}  {path:<21} {rate:>10,.0f} readings/s{mark}")


if __name__ == "__main__":
    main()
