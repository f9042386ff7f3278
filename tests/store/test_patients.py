from __future__ import annotations

from datetime import date
from pathlib import Path

import pytest
import sqlalchemy as sa

from medtwin.errors import AuthenticationError, ConflictError, DataFormatError, NotFoundError
from medtwin.records import PatientRecord

ADA = PatientRecord(
    "p1",
    identifier="urn:mrn|12345",
    name="Ada Lovelace",
    birth_date=date(1815, 12, 10),
    sex="female",
)
PLAIN = [b"12345", b"Lovelace", b"1815-12-10"]


def test_patient_round_trip(store):
    assert store.add_patient(ADA) == "p1"
    assert store.get_patient("p1") == ADA
    assert store.add_patient(ADA) == "p1"  # the same patient again changes nothing
    assert store.list_patients() == ["p1"]
    with pytest.raises(NotFoundError, match="patient 'nobody' does not exist"):
        store.get_patient("nobody")


def test_new_id_when_none_given(store):
    pid = store.add_patient(PatientRecord("", name="Anonymous"))
    assert len(pid) == 32 and store.get_patient(pid).name == "Anonymous"


def test_phi_is_encrypted_at_rest(store, raw, db_url):
    store.add_patient(ADA)
    with raw.connect() as conn:
        row = conn.execute(sa.text("SELECT * FROM patients")).mappings().one()
    stored = b"|".join(
        v if isinstance(v, bytes) else str(v).encode() for v in row.values() if v is not None
    )
    for text in PLAIN:
        assert text not in stored
    assert row["sex"] == "female" and row["identifier_index"] != ADA.identifier
    if db_url.startswith("sqlite"):
        path = Path(sa.make_url(db_url).database)
        on_disk = b"".join(p.read_bytes() for p in path.parent.glob(path.name + "*"))
        assert b"p1" in on_disk  # the file is there and holds the row ...
        for text in PLAIN:
            assert text not in on_disk  # ... but no PHI in clear text


def test_ciphertext_is_bound_to_its_row(store, raw):
    store.add_patient(ADA)
    store.add_patient(PatientRecord("p2", name="Someone Else"))
    with raw.begin() as conn:
        conn.execute(
            sa.text(
                "UPDATE patients SET name_enc = (SELECT name_enc FROM patients WHERE id = 'p1') "
                "WHERE id = 'p2'"
            )
        )
    with pytest.raises(AuthenticationError):
        store.get_patient("p2")


def test_find_patient_by_blind_index(store):
    store.add_patient(ADA)
    store.add_patient(PatientRecord("p2", identifier="urn:mrn|999"))
    assert store.find_patient("urn:mrn|12345") == "p1"
    assert store.find_patient("urn:mrn|999") == "p2"
    assert store.find_patient("urn:mrn|1234") is None


def test_conflicting_patients_are_refused(store):
    store.add_patient(ADA)
    with pytest.raises(ConflictError, match=r"patient\[0\]\.name: patient 'p1' is already stored"):
        store.add_patient(PatientRecord("p1", identifier=ADA.identifier, name="Other"))
    with pytest.raises(ConflictError, match="identifier already belongs to another patient"):
        store.add_patient(PatientRecord("p2", identifier=ADA.identifier))
    assert store.list_patients() == ["p1"] and store.get_patient("p1") == ADA


def test_bad_patient_fields(store):
    with pytest.raises(DataFormatError, match=r"patient\[0\]\.sex"):
        store.add_patient(PatientRecord("p1", sex="x"))  # type: ignore[arg-type]
    with pytest.raises(DataFormatError, match=r"patient\[0\]\.id"):
        store.add_patient(PatientRecord("p" * 65))
    assert store.list_patients() == []


def test_care_team(store):
    doc = store.create_user("dr.house", "pw-1", "clinician")
    other = store.create_user("dr.who", "pw-2", "clinician")
    store.add_patient(ADA, clinicians=[doc])
    store.add_patient(PatientRecord("p2"))
    store.add_patient(PatientRecord("p3"))
    store.assign_clinician("p3", doc)
    store.assign_clinician("p3", doc)  # no-op
    store.assign_clinician("p2", other)
    assert store.on_care_team(doc, "p1") and store.on_care_team(doc, "p3")
    assert not store.on_care_team(doc, "p2") and not store.on_care_team(other, "p1")
    assert store.list_patients(clinician=doc) == ["p1", "p3"]
    assert store.list_patients(clinician=other) == ["p2"]
    assert store.list_patients() == ["p1", "p2", "p3"]
    with pytest.raises(NotFoundError, match="user 'ghost'"):
        store.assign_clinician("p2", "ghost")
    with pytest.raises(NotFoundError, match="patient 'p9'"):
        store.assign_clinician("p9", doc)
    # A patient with an unknown clinician is not stored either: one transaction.
    with pytest.raises(NotFoundError, match="user 'ghost'"):
        store.add_patient(PatientRecord("p4"), clinicians=["ghost"])
    assert "p4" not in store.list_patients()


def test_pseudonym_is_stable_and_keyed(store, keyring):
    from medtwin.security import Keyring
    from medtwin.store import Store

    p = store.pseudonym("p1")
    assert p == store.pseudonym("p1") and p != store.pseudonym("p2") and p.startswith("P-")
    other = Store(store._engine, keyring=Keyring.from_bytes(bytes(32)))
    assert other.pseudonym("p1") != p
