"""ADT events at rest, on SQLite and PostgreSQL: idempotent, all-or-nothing, identifiers encrypted."""

from __future__ import annotations

import dataclasses
import datetime as dt

import pytest
import sqlalchemy as sa

from medtwin.errors import ConflictError, DataFormatError
from medtwin.hospital import ADTEvent
from medtwin.hospital.census import Census

T0 = dt.datetime(2026, 1, 5, 8, tzinfo=dt.UTC)
CET = dt.timezone(dt.timedelta(hours=1))


def events() -> list[ADTEvent]:
    return [
        ADTEvent("M1", "A04", T0, "MRN-4711", "V1", unit="ED", patient_class="E", acuity="2"),
        ADTEvent(
            "M2",
            "A01",
            T0 + dt.timedelta(hours=4),
            "MRN-4711",
            "V1",
            unit="medicine",
            bed="12-B",
            prior_unit="ED",
            patient_class="I",
            admission_type="E",
            recorded_at=T0 + dt.timedelta(hours=4, minutes=2),
        ),
        ADTEvent("M3", "A04", T0 + dt.timedelta(hours=1), "MRN-0815", "V2", unit="ED"),
    ]


def test_stored_events_come_back_in_arrival_order(store):
    first = store.ingest_adt(events(), source="hl7v2")
    assert (first.accepted, first.duplicates, first.ids) == (3, 0, ("M1", "M2", "M3"))
    late = ADTEvent("M0", "A03", T0 + dt.timedelta(hours=2), "MRN-0815", "V2", unit="ED")
    store.ingest_adt([late])
    back = store.adt_events()
    assert back == [*events(), late]
    assert all(e.occurred_at.tzinfo is not None for e in back)
    assert store.count_adt_events() == 4
    # the census rebuilt from the store is the census of the events
    assert Census.from_events(back).snapshot() == Census.from_events([*events(), late]).snapshot()


def test_resubmission_is_a_no_op_and_a_resend_time_does_not_matter(store):
    store.ingest_adt(events())
    resent = [dataclasses.replace(e, recorded_at=T0 + dt.timedelta(days=1)) for e in events()]
    shifted = dataclasses.replace(events()[0], occurred_at=T0.astimezone(CET))  # same instant
    again = store.ingest_adt([*resent, shifted])
    assert (again.accepted, again.duplicates, again.ids) == (0, 4, ())
    assert store.count_adt_events() == 3


def test_same_message_id_other_content_is_a_conflict_and_nothing_is_stored(store):
    store.ingest_adt(events()[:1])
    changed = dataclasses.replace(events()[0], unit="AMU", bed="3")
    new = ADTEvent("M9", "A03", T0 + dt.timedelta(hours=9), "MRN-0815", "V2", unit="ED")
    with pytest.raises(ConflictError, match=r"message M1 .*differs in unit, bed.*nothing"):
        store.ingest_adt([new, changed])
    assert [e.message_id for e in store.adt_events()] == ["M1"]


def test_conflict_within_one_batch(store):
    a = events()[0]
    with pytest.raises(ConflictError, match=r"message M1 .*acuity"):
        store.ingest_adt([a, dataclasses.replace(a, acuity="4")])
    assert store.count_adt_events() == 0
    twice = store.ingest_adt([a, a])
    assert (twice.accepted, twice.duplicates) == (1, 1)


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"message_id": ""}, "message_id"),
        ({"message_id": "x" * 256}, "message_id"),
        ({"patient_id": " "}, "patient_id"),
        ({"unit": "U" * 65}, "M1.unit"),
        ({"occurred_at": dt.datetime(2026, 1, 5, 8)}, "ADTEvent|timezone"),
        ({"patient_class": "P"}, "patient_class"),
    ],
)
def test_bad_events_are_refused_whole(store, change, message):
    with pytest.raises((DataFormatError, ValueError), match=message):
        store.ingest_adt([events()[1], dataclasses.replace(events()[0], **change)])
    assert store.count_adt_events() == 0


def test_unknown_source_is_refused(store):
    with pytest.raises(DataFormatError, match="source"):
        store.ingest_adt(events(), source="fax")


def test_identifiers_are_encrypted_at_rest(store, raw):
    store.ingest_adt(events(), source="fhir")
    with raw.connect() as conn:
        rows = conn.execute(sa.text("SELECT * FROM adt_events ORDER BY id")).mappings().all()
    assert [r["message_id"] for r in rows] == ["M1", "M2", "M3"]
    assert rows[1]["unit"] == "medicine" and rows[1]["source"] == "fhir"
    for r in rows:
        blob = bytes(r["patient_enc"]) + bytes(r["visit_enc"])
        assert b"MRN" not in blob and b"V1" not in blob
        assert len(r["digest"]) == 64 and "MRN" not in r["digest"]
    # a ciphertext moved to another row no longer decrypts
    with raw.begin() as conn:
        conn.execute(
            sa.text("UPDATE adt_events SET patient_enc = :b WHERE message_id = 'M3'"),
            {"b": bytes(rows[0]["patient_enc"])},
        )
    with pytest.raises(Exception, match="does not authenticate"):
        store.adt_events()


def test_two_stores_on_one_database_agree(open_store):
    a, b = open_store(), open_store()
    a.ingest_adt(events()[:2])
    assert b.ingest_adt(events()).ids == ("M3",)
    assert a.adt_events() == b.adt_events()
