from __future__ import annotations

import math
import threading
from datetime import UTC, date, datetime, timedelta, timezone

import numpy as np
import pandas as pd
import pytest
import sqlalchemy as sa

from medtwin.errors import ConflictError, DataFormatError, NotFoundError
from medtwin.records import (
    ConditionRecord,
    DeviceRecord,
    EventRecord,
    ObservationRecord,
    PatientRecord,
)

T0 = datetime(2026, 1, 1, 8, tzinfo=UTC)
CGM = "99504-3"


def cgm(i: int, value: float = 100.0, *, patient: str = "p1", device: str | None = "cgm-1"):
    return ObservationRecord(
        patient, CGM, T0 + timedelta(minutes=5 * i), value, "mg/dL", device, f"fhir:Observation/{i}"
    )


def count(raw: sa.Engine, table: str = "observations") -> int:
    with raw.connect() as conn:
        return int(conn.execute(sa.text(f"SELECT count(*) FROM {table}")).scalar_one())


@pytest.fixture
def p1(store):
    store.add_patient(PatientRecord("p1"))
    store.add_device(DeviceRecord("cgm-1", "p1", "cgm", "Dexcom", "G7"))
    return store


def test_one_message_with_everything(store):
    patients = [PatientRecord("p1", identifier="urn:mrn|1", name="Ada", sex="female")]
    devices = [DeviceRecord("cgm-1", "p1", "cgm")]
    observations = [cgm(i, 100.0 + i) for i in range(3)] + [
        ObservationRecord("p1", "8867-4", T0, 72.0, "/min", source_id="hr-1")
    ]
    events = [
        EventRecord("p1", "carbs", T0, 50.0, "g", "meal-1"),
        EventRecord("p1", "bolus", T0, 5.0, "U", "bolus-1", {"type": "normal"}),
    ]
    conditions = [
        ConditionRecord(
            "p1",
            "http://snomed.info/sct",
            "46635009",
            "Type 1 diabetes",
            date(2010, 5, 1),
            "fhir:Condition/c1",
        )
    ]
    result = store.ingest(
        patients=patients,
        devices=devices,
        observations=observations,
        events=events,
        conditions=conditions,
    )
    assert (result.accepted, result.duplicates, result.replayed) == (9, 0, False)
    assert result.ids == (
        "p1",
        "cgm-1",
        *(f"fhir:Observation/{i}" for i in range(3)),
        "hr-1",
        "meal-1",
        "bolus-1",
        "fhir:Condition/c1",
    )
    assert store.observations("p1", code=CGM) == observations[:3]
    # oldest first; at the same time by code
    assert store.observations("p1") == [observations[3], observations[0], *observations[1:3]]
    assert store.events("p1") == events
    assert store.events("p1", kind="bolus") == events[1:]
    assert store.conditions("p1") == conditions
    assert store.get_device("cgm-1") == devices[0]
    again = store.ingest(
        patients=patients,
        devices=devices,
        observations=observations,
        events=events,
        conditions=conditions,
    )
    assert (again.accepted, again.duplicates, again.ids) == (0, 9, ())


def test_times_come_back_aware_utc(p1):
    cet = timezone(timedelta(hours=1))
    t = datetime(2026, 3, 1, 9, 30, 15, 123456, tzinfo=cet)
    p1.ingest(observations=[ObservationRecord("p1", CGM, t, 99.0, "mg/dL", source_id="a")])
    (obs,) = p1.observations("p1")
    assert obs.time == t and obs.time.tzinfo is UTC and obs.time.hour == 8
    assert obs.time.microsecond == 123456
    # Bounds in any zone: start <= time < end.
    assert p1.observations("p1", start=t, end=t + timedelta(microseconds=1)) == [obs]
    assert p1.observations("p1", start=t.astimezone(UTC) + timedelta(microseconds=1)) == []
    assert p1.observations("p1", end=t) == []
    frame = p1.observations_frame("p1")
    assert str(frame["time"].dtype) == "datetime64[us, UTC]" or str(frame["time"].dtype).endswith(
        ", UTC]"
    )
    assert frame["time"].iloc[0] == pd.Timestamp(t)
    with pytest.raises(DataFormatError, match="timezone-aware"):
        p1.observations("p1", start=datetime(2026, 1, 1))


def test_naive_times_are_refused(p1, raw):
    bad = ObservationRecord("p1", CGM, datetime(2026, 1, 1), 100.0, "mg/dL", source_id="x")
    with pytest.raises(
        DataFormatError, match=r"observations\[1\]\.time: expected a timezone-aware"
    ):
        p1.ingest(observations=[cgm(0), bad])
    with pytest.raises(DataFormatError, match=r"readings\[0\]\.time"):
        p1.ingest_readings("p1", "cgm-1", [datetime(2026, 1, 1)], [100.0], first_seq=0)
    assert count(raw) == 0


def test_idempotent_reingest(p1, raw):
    batch = [cgm(i, 100.0 + i) for i in range(50)]
    first = p1.ingest(observations=batch)
    assert (first.accepted, first.duplicates) == (50, 0)
    # Overlapping resubmission: the old half are duplicates, the new half accepted.
    second = p1.ingest(observations=batch[25:] + [cgm(i, 100.0 + i) for i in range(50, 75)])
    assert (second.accepted, second.duplicates) == (25, 25)
    assert second.ids == tuple(f"fhir:Observation/{i}" for i in range(50, 75))
    assert count(raw) == 75


def test_records_without_source_id_are_idempotent_too(p1, raw):
    rec = ObservationRecord("p1", "29463-7", T0, 70.5, "kg")
    assert p1.ingest(observations=[rec]).accepted == 1
    assert p1.ingest(observations=[rec]).duplicates == 1
    with pytest.raises(ConflictError, match=r"already stored with value=70\.5"):
        p1.ingest(observations=[ObservationRecord("p1", "29463-7", T0, 71.0, "kg")])
    weights = [
        ObservationRecord("p1", "29463-7", T0 + timedelta(days=d), 70.0, "kg") for d in (1, 2)
    ]
    assert p1.ingest(observations=weights).accepted == 2
    assert p1.ingest(observations=weights).duplicates == 2
    meal = EventRecord("p1", "carbs", T0, 40.0, "g")
    assert p1.ingest(events=[meal, meal]).duplicates == 1
    assert count(raw) == 3 and count(raw, "events") == 1


def test_conflict_rolls_back_the_whole_batch(p1, raw):
    p1.ingest(observations=[cgm(i) for i in range(10)])
    batch = (
        [cgm(i) for i in range(10, 20)] + [cgm(5, value=180.0)] + [cgm(i) for i in range(20, 30)]
    )
    with pytest.raises(
        ConflictError,
        match=r"observations\[10\]\.value: source_id 'fhir:Observation/5' is already stored "
        r"with value=100.0, not 180.0",
    ):
        p1.ingest(observations=batch, patients=[PatientRecord("p2")])
    assert count(raw) == 10 and count(raw, "patients") == 1
    assert p1.observations("p1")[5].value == 100.0


def test_conflict_within_one_batch(p1, raw):
    assert p1.ingest(observations=[cgm(1), cgm(1)]).duplicates == 1
    with pytest.raises(ConflictError, match=r"observations\[2\]\.value: observations\[0\]"):
        p1.ingest(observations=[cgm(7), cgm(8), cgm(7, value=101.0)])
    assert count(raw) == 1


@pytest.mark.parametrize(
    ("bad", "match"),
    [
        (cgm(0, value=math.nan), r"observations\[500\]\.value: nan is not a finite number"),
        (cgm(0, value=math.inf), r"observations\[500\]\.value: inf is not a finite number"),
        (
            ObservationRecord("p1", CGM, T0, 6.0, "mmol/L", source_id="u"),
            r"observations\[500\]\.unit: 'mmol/L' is not the unit of 99504-3",
        ),
        (
            ObservationRecord("p1", "105272-9", T0, 6.0, "mmol/L", source_id="c"),
            r"observations\[500\]\.code: '105272-9' is not a code the store accepts",
        ),
        (
            ObservationRecord("p1", CGM, T0, "high", "mg/dL", source_id="s"),  # type: ignore[arg-type]
            r"observations\[500\]\.value: expected a number",
        ),
    ],
)
def test_a_bad_record_in_the_middle_stores_nothing(p1, raw, bad, match):
    p1.ingest(observations=[cgm(i) for i in range(5)])
    before = count(raw)
    batch = [cgm(i) for i in range(1000, 1500)] + [bad] + [cgm(i) for i in range(1500, 2000)]
    with pytest.raises(DataFormatError, match=match):
        p1.ingest(observations=batch, patients=[PatientRecord("p2")])
    assert count(raw) == before and count(raw, "patients") == 1


def test_bad_events_and_conditions(p1, raw):
    with pytest.raises(DataFormatError, match=r"events\[1\]\.unit: 'mg' is not the unit of bolus"):
        p1.ingest(
            events=[
                EventRecord("p1", "carbs", T0, 1.0, "g"),
                EventRecord("p1", "bolus", T0, 1.0, "mg"),
            ]
        )
    with pytest.raises(DataFormatError, match=r"events\[0\]\.value: -1.0 is negative"):
        p1.ingest(events=[EventRecord("p1", "bolus", T0, -1.0, "U")])
    with pytest.raises(DataFormatError, match=r"events\[0\]\.kind: 'snack'"):
        p1.ingest(events=[EventRecord("p1", "snack", T0, 1.0, "g")])  # type: ignore[arg-type]
    with pytest.raises(DataFormatError, match=r"events\[0\]\.detail: not JSON-serialisable"):
        p1.ingest(events=[EventRecord("p1", "carbs", T0, 1.0, "g", "e", {"f": object()})])
    with pytest.raises(DataFormatError, match=r"conditions\[0\]\.onset: expected a date"):
        p1.ingest(conditions=[ConditionRecord("p1", "s", "c", onset=T0)])  # type: ignore[arg-type]
    assert count(raw, "events") == 0 and count(raw, "conditions") == 0


def test_unknown_patient_or_device_stores_nothing(p1, raw):
    with pytest.raises(NotFoundError, match=r"observations\[1\]\.patient_id: patient 'p9'"):
        p1.ingest(observations=[cgm(0), cgm(1, patient="p9")], patients=[PatientRecord("p2")])
    with pytest.raises(NotFoundError, match=r"observations\[0\]\.device_id: device 'cgm-9'"):
        p1.ingest(observations=[cgm(0, device="cgm-9")])
    with pytest.raises(NotFoundError, match=r"events\[0\]\.patient_id: patient 'p9'"):
        p1.ingest(events=[EventRecord("p9", "carbs", T0, 1.0, "g")])
    with pytest.raises(NotFoundError, match=r"devices\[0\]\.patient_id: patient 'p9'"):
        p1.ingest(devices=[DeviceRecord("d9", "p9", "pump")])
    with pytest.raises(NotFoundError, match="patient 'p9'"):
        p1.ingest_readings("p9", "cgm-1", [T0], [100.0], first_seq=0)
    assert count(raw) == 0 and count(raw, "patients") == 1 and count(raw, "devices") == 1


def test_a_device_writes_for_its_own_patient_only(p1, raw):
    p1.add_patient(PatientRecord("p2"))
    with pytest.raises(ConflictError, match="device 'cgm-1' belongs to another patient"):
        p1.ingest_readings("p2", "cgm-1", [T0], [100.0], first_seq=0)
    with pytest.raises(ConflictError, match=r"device\[0\]\.patient_id: device 'cgm-1'"):
        p1.add_device(DeviceRecord("cgm-1", "p2", "cgm", "Dexcom", "G7"))
    assert p1.add_device(DeviceRecord("cgm-1", "p1", "cgm", "Dexcom", "G7")) == "cgm-1"
    assert count(raw) == 0


def test_message_id_makes_a_resubmission_a_no_op(p1, raw):
    batch = [cgm(i) for i in range(10)]
    first = p1.ingest(observations=batch, message_id="bundle-1")
    assert (first.accepted, first.duplicates, first.replayed) == (10, 0, False)
    again = p1.ingest(observations=batch, message_id="bundle-1")
    assert (again.accepted, again.duplicates, again.replayed) == (0, 10, True)
    with pytest.raises(ConflictError, match="message_id 'bundle-1' was ingested before"):
        p1.ingest(observations=[*batch, cgm(10)], message_id="bundle-1")
    # Same records under a new message id: record-level idempotency still holds.
    other = p1.ingest(observations=[*batch, cgm(10)], message_id="bundle-2")
    assert (other.accepted, other.duplicates) == (1, 10)
    assert count(raw) == 11 and count(raw, "messages") == 2


def test_a_failed_message_can_be_retried(p1, raw):
    bad = [cgm(0), cgm(1, patient="p9")]
    with pytest.raises(NotFoundError):
        p1.ingest(observations=bad, message_id="m")
    assert count(raw, "messages") == 0  # the message id was not burnt
    assert p1.ingest(observations=[cgm(0)], message_id="m").accepted == 1


def test_readings_light_path(p1, raw):
    times = [T0 + timedelta(minutes=5 * i) for i in range(1000)]
    values = np.linspace(80.0, 250.0, 1000)
    r = p1.ingest_readings("p1", "cgm-1", times, values, first_seq=1)
    assert (r.accepted, r.duplicates) == (1000, 0) and r.ids[:2] == ("cgm-1:1", "cgm-1:2")
    r = p1.ingest_readings("p1", "cgm-1", times[500:], list(values[500:]), first_seq=501)
    assert (r.accepted, r.duplicates) == (0, 500)
    frame = p1.observations_frame("p1", code=CGM)
    assert len(frame) == 1000 and frame["value"].tolist() == values.tolist()
    assert frame["device_id"].unique().tolist() == ["cgm-1"]
    # A reading that also arrives as a FHIR Observation is stored once ...
    same = ObservationRecord("p1", CGM, times[3], float(values[3]), "mg/dL", "cgm-1", "fhir:x")
    assert p1.ingest(observations=[same]).duplicates == 1
    # ... and one that contradicts it is refused.
    with pytest.raises(
        ConflictError, match="the 99504-3 reading of device 'cgm-1' at 2026-01-01T08:15:00"
    ):
        p1.ingest(observations=[ObservationRecord("p1", CGM, times[3], 1.0, "mg/dL", "cgm-1", "y")])
    with pytest.raises(ConflictError, match="source_id 'cgm-1:1'"):
        p1.ingest_readings("p1", "cgm-1", [times[0]], [999.0], first_seq=1)
    assert count(raw) == 1000


def test_readings_checks(p1, raw):
    with pytest.raises(DataFormatError, match=r"readings\[2\]\.value: nan is not a finite number"):
        p1.ingest_readings(
            "p1",
            "cgm-1",
            [T0, T0 + timedelta(1), T0 + timedelta(2)],
            [1.0, 2.0, float("nan")],
            first_seq=0,
        )
    with pytest.raises(DataFormatError, match="2 times but 1 values"):
        p1.ingest_readings("p1", "cgm-1", [T0, T0], [1.0], first_seq=0)
    with pytest.raises(DataFormatError, match=r"readings\.unit: 'mmol/L'"):
        p1.ingest_readings("p1", "cgm-1", [T0], [5.0], unit="mmol/L", first_seq=0)
    with pytest.raises(NotFoundError, match="device 'cgm-9'"):
        p1.ingest_readings("p1", "cgm-9", [T0], [5.0], first_seq=0)
    hr = p1.ingest_readings("p1", "cgm-1", [T0], [61.0], code="8867-4", unit="/min")
    assert hr.accepted == 1 and hr.ids[0].startswith("auto:")
    assert (
        p1.ingest_readings("p1", "cgm-1", [T0], [61.0], code="8867-4", unit="/min").duplicates == 1
    )
    assert count(raw) == 1


def test_concurrent_ingestion(store, raw):
    store.add_patient(PatientRecord("p1"))
    for k in range(4):
        store.add_device(DeviceRecord(f"cgm-{k}", "p1", "cgm"))
    times = [T0 + timedelta(minutes=5 * i) for i in range(200)]
    errors: list[BaseException] = []

    def upload(k: int) -> None:
        try:
            for s in range(0, 200, 50):
                store.ingest_readings(
                    "p1", f"cgm-{k}", times[s : s + 50], [100.0] * 50, first_seq=s
                )
                store.ingest_readings(
                    "p1", f"cgm-{k}", times[s : s + 50], [100.0] * 50, first_seq=s
                )
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=upload, args=(k,)) for k in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == [] and count(raw) == 800


def test_readings_of_many_devices_in_one_transaction(store):
    import datetime as _dt

    from medtwin.records import DeviceRecord, PatientRecord
    from medtwin.store import ReadingBatch

    store.add_patient(PatientRecord("m1"))
    store.add_patient(PatientRecord("m2"))
    store.add_device(DeviceRecord("dm1", "m1", "cgm"))
    store.add_device(DeviceRecord("dm2", "m2", "cgm"))
    t0 = _dt.datetime(2026, 1, 1, tzinfo=_dt.UTC)
    times = [t0 + _dt.timedelta(minutes=5 * i) for i in range(3)]
    batches = [
        ReadingBatch("m1", "dm1", times, [100.0, 101.0, 102.0], first_seq=0),
        ReadingBatch("m2", "dm2", times, [90.0, 91.0, 92.0], first_seq=0),
    ]
    result = store.ingest_readings_many(batches)
    assert (result.accepted, result.duplicates) == (6, 0)
    assert store.ingest_readings_many(batches).duplicates == 6
    bad = [*batches, ReadingBatch("m1", "dm1", times[:1], [float("nan")], first_seq=10)]
    with pytest.raises(DataFormatError):
        store.ingest_readings_many(bad)
    assert len(store.observations("m1")) == 3  # the whole lot or nothing


def test_audit_many_chains_like_single_appends(store):
    store.audit("a", "admin", "one", "X", "granted")
    entries = store.audit_many(
        [
            {
                "actor": f"dev{i}",
                "role": "device",
                "action": "device readings",
                "resource": "Device/d",
                "outcome": "granted",
                "detail": f"{i}",
            }
            for i in range(5)
        ]
    )
    assert [e.seq for e in entries] == [2, 3, 4, 5, 6]
    store.audit("b", "admin", "two", "X", "denied")
    assert store.verify_audit().ok
