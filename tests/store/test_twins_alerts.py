from __future__ import annotations

import dataclasses
from datetime import UTC, datetime, timedelta

import pytest

from medtwin.errors import DataFormatError, NotFoundError
from medtwin.records import AlertRecord, PatientRecord

T0 = datetime(2026, 1, 1, 8, tzinfo=UTC)


@pytest.fixture
def p1(store):
    store.add_patient(PatientRecord("p1"))
    store.add_patient(PatientRecord("p2"))
    return store


def test_twin_blob_save_and_load(p1):
    assert p1.load_twin("p1") is None
    blob = bytes(range(256)) * 1000
    p1.save_twin("p1", blob, model="UvaPadova2008", as_of=T0)
    assert p1.load_twin("p1") == blob
    p1.save_twin("p1", b"newer", model="UvaPadova2008", as_of=T0 + timedelta(hours=1))
    assert p1.load_twin("p1") == b"newer" and p1.load_twin("p2") is None
    with pytest.raises(NotFoundError, match="patient 'p9'"):
        p1.save_twin("p9", b"x", model="m", as_of=T0)
    with pytest.raises(DataFormatError, match="as_of"):
        p1.save_twin("p1", b"x", model="m", as_of=datetime(2026, 1, 1))


def test_forecasts(p1):
    assert p1.latest_forecast("p1") is None
    a = p1.add_forecast("p1", T0 + timedelta(minutes=10), {"median": [1.0, 2.0], "model": "m"})
    p1.add_forecast("p1", T0, {"median": [0.0]})  # made earlier, stored later
    latest = p1.latest_forecast("p1")
    assert latest is not None and latest.id == a and latest.payload["median"] == [1.0, 2.0]
    assert latest.made_at == T0 + timedelta(minutes=10) and latest.made_at.tzinfo is UTC
    with pytest.raises(DataFormatError, match="payload: not JSON-serialisable"):
        p1.add_forecast("p1", T0, {"x": object()})
    with pytest.raises(NotFoundError):
        p1.add_forecast("p9", T0, {})


def alert(patient: str, minutes: int, p: float = 0.8) -> AlertRecord:
    return AlertRecord(
        patient,
        T0 + timedelta(minutes=minutes),
        "hypo",
        p,
        0.5,
        30.0,
        "UvaPadova2008",
        "hypo: 80% within 30 min",
    )


def test_alerts_and_acknowledgement(p1):
    doc = p1.create_user("dr.a", "pw", "clinician")
    doc2 = p1.create_user("dr.b", "pw", "clinician")
    a1 = p1.add_alert(alert("p1", 0))
    a2 = p1.add_alert(alert("p1", 10))
    a3 = p1.add_alert(alert("p2", 5))
    assert a1.id is not None and a1 == dataclasses.replace(alert("p1", 0), id=a1.id)
    assert p1.alerts() == [a2, a3, a1]  # newest first
    assert p1.alerts(patient_id="p1") == [a2, a1]
    assert p1.alerts(since=T0 + timedelta(minutes=5)) == [a2, a3]
    acked = p1.acknowledge_alert(a2.id, doc)
    assert acked == dataclasses.replace(a2, acknowledged_by=doc)
    assert p1.acknowledge_alert(a2.id, doc2).acknowledged_by == doc  # the first one stands
    assert p1.alerts(active=True) == [a3, a1]
    assert p1.alerts(active=False) == [acked]
    assert p1.alerts(patient_id="p1", active=True) == [a1]
    assert p1.get_alert(a2.id) == acked
    with pytest.raises(NotFoundError, match="alert 999"):
        p1.acknowledge_alert(999, doc)
    with pytest.raises(NotFoundError, match="user 'ghost'"):
        p1.acknowledge_alert(a1.id, "ghost")
    with pytest.raises(NotFoundError, match="alert 999"):
        p1.get_alert(999)


def test_bad_alerts(p1):
    with pytest.raises(DataFormatError, match=r"probability: 1\.5 is not a probability"):
        p1.add_alert(alert("p1", 0, p=1.5))
    with pytest.raises(DataFormatError, match="probability: nan is not a finite number"):
        p1.add_alert(alert("p1", 0, p=float("nan")))
    with pytest.raises(NotFoundError, match="patient 'p9'"):
        p1.add_alert(alert("p9", 0))
    assert p1.alerts() == []
