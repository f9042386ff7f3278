from __future__ import annotations

import subprocess
import sys
import threading
from datetime import UTC

import pytest
import sqlalchemy as sa

from medtwin.errors import ParameterError
from medtwin.security import GENESIS, chain_hash


def fill(store, n: int = 5) -> None:
    for i in range(n):
        store.audit("u1", "clinician", "read", f"Patient/p{i}", "granted", patient_id=f"p{i}")


def test_append_and_read_back(store, keyring):
    e1 = store.audit("u1", "clinician", "read", "Patient/p1", "granted", patient_id="p1")
    e2 = store.audit("u2", "researcher", "export", "Patient", "denied", detail="not on care team")
    assert (e1.seq, e2.seq) == (1, 2) and e1.time.tzinfo is UTC
    assert store.audit_log() == [e2, e1]
    assert store.audit_log(limit=1) == [e2]
    assert store.audit_log(before_seq=2) == [e1]
    assert store.audit_log(patient_id="p1") == [e1]
    report = store.verify_audit()
    assert report.ok and report.n_entries == 2
    with store._engine.connect() as conn:
        rows = conn.execute(sa.text("SELECT prev_hash, hash FROM audit ORDER BY seq")).all()
    assert rows[0] == (GENESIS, chain_hash(keyring.audit_key, GENESIS, e1))
    assert rows[1] == (rows[0][1], chain_hash(keyring.audit_key, rows[0][1], e2))
    with pytest.raises(ParameterError, match="outcome"):
        store.audit("u1", "admin", "read", "x", "maybe")
    assert store.verify_audit().n_entries == 2  # the bad entry took no seq


def test_empty_log_verifies(store):
    report = store.verify_audit()
    assert report.ok and report.n_entries == 0


def test_an_edited_row_breaks_the_chain(store, raw):
    fill(store)
    with raw.begin() as conn:
        conn.execute(sa.text("UPDATE audit SET outcome = 'denied' WHERE seq = 3"))
    report = store.verify_audit()
    assert not report.ok and report.first_bad_seq == 3 and report.reason.startswith("edited")


def test_an_invalid_edit_breaks_the_chain(store, raw):
    fill(store)
    with raw.begin() as conn:
        conn.execute(sa.text("UPDATE audit SET outcome = 'whatever' WHERE seq = 2"))
    report = store.verify_audit()
    assert not report.ok and report.first_bad_seq == 2 and report.n_entries == 5


def test_a_deleted_row_breaks_the_chain(store, raw):
    fill(store)
    with raw.begin() as conn:
        conn.execute(sa.text("DELETE FROM audit WHERE seq = 2"))
    report = store.verify_audit()
    assert not report.ok and report.first_bad_seq == 2 and report.reason.startswith("deleted")


def test_a_cut_tail_breaks_the_chain(store, raw):
    fill(store)
    with raw.begin() as conn:
        conn.execute(sa.text("DELETE FROM audit WHERE seq >= 4"))
    report = store.verify_audit()
    assert not report.ok and report.first_bad_seq == 4
    assert report.reason == "deleted: seqs 4-5 missing from the end (the chain head is seq 5)"
    # Appends go on after the gap, never re-using a seq.
    assert store.audit("u1", "admin", "read", "x", "granted").seq == 6


def test_concurrent_appends_from_threads(store):
    errors: list[BaseException] = []

    def work(k: int) -> None:
        try:
            for i in range(25):
                store.audit(f"user{k}", "clinician", "read", f"Patient/p{i}", "granted")
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(k,)) for k in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    report = store.verify_audit()
    assert report.ok and report.n_entries == 200
    assert [e.seq for e in store.audit_log(limit=1000)] == list(range(200, 0, -1))


APPENDER = """
import sys
from medtwin.security import Keyring
from medtwin.store import Store
with Store.open(sys.argv[1], keyring=Keyring.from_bytes(bytes(range(32)))) as store:
    store.audit("proc", "device", "warm up", "Observation", "granted")
    print("ready", flush=True)
    sys.stdin.readline()
    for i in range(50):
        store.audit("proc", "device", "create", "Observation", "granted")
"""


def test_concurrent_appends_from_processes(store, db_url):
    # Another process (its own engine and connections) appends while this one does.
    proc = subprocess.Popen(
        [sys.executable, "-c", APPENDER, db_url],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stdout is not None and proc.stdin is not None
        assert proc.stdout.readline() == "ready\n"
        proc.stdin.write("go\n")
        proc.stdin.flush()
        fill(store, 50)
        assert proc.wait(timeout=60) == 0
    finally:
        proc.kill()
        proc.communicate()
    report = store.verify_audit()
    assert report.ok and report.n_entries == 101
    actors = [e.actor for e in store.audit_log(limit=1000)]
    assert actors.count("proc") == 51 and actors.count("u1") == 50


def test_memory_database_is_safe_across_threads(keyring):
    from medtwin.store import Store

    with Store.open("sqlite://", keyring=keyring) as store:
        test_concurrent_appends_from_threads(store)
