"""The FHIR endpoints, and the authorisation sweep across every read and search form."""

from __future__ import annotations

import datetime as dt

import pytest
from fastapi.testclient import TestClient

from medtwin.api import Service, Settings, create_app
from medtwin.interop.fhir import validate
from medtwin.records import DeviceRecord, EventRecord, PatientRecord
from medtwin.security import Role
from tests.conftest import hypo_trace

T0 = dt.datetime(2026, 3, 2, 6, 0, tzinfo=dt.UTC)
FHIR = {"Content-Type": "application/fhir+json"}


@pytest.fixture
def service(tmp_path):
    return Service.open(Settings(home=tmp_path, n_members=100))


@pytest.fixture
def client(service):
    with TestClient(create_app(service), raise_server_exceptions=False) as c:
        yield c


def _login(client, user, pw):
    r = client.post("/auth/token", data={"username": user, "password": pw})
    return {"Authorization": f"Bearer {r.json()['access_token']}"}


@pytest.fixture
def world(service, client):
    admin = service.bootstrap_admin()
    a = service.store.create_user("dr.a", "password-a-123456", Role.clinician)
    b = service.store.create_user("dr.b", "password-b-123456", Role.clinician)
    for pid, mrn, name, who in (("pa", "A-1", "Alice Example", a), ("pb", "B-2", "Bob Example", b)):
        record = PatientRecord(pid, identifier=f"urn:mrn|{mrn}", name=name)
        service.store.add_patient(record, clinicians=(who,))
        service.store.add_device(DeviceRecord(f"cgm-{pid}", pid, "cgm"))
        events, times, values = hypo_trace(T0)
        service.ingest_records(
            events=[EventRecord(pid, k, t, v, u, source_id=f"{pid}-{k}") for k, t, v, u in events]
        )
        token = service.device_token(f"cgm-{pid}")
        msg = {"token": token, "first_seq": 0, "times": times, "values": values}
        service.ingest_device_message(f"cgm-{pid}", msg)
    assert service.host.wait_idle(120)
    return {
        "admin": _login(client, "admin", admin),
        "a": {**_login(client, "dr.a", "password-a-123456"), **FHIR},
        "b": {**_login(client, "dr.b", "password-b-123456"), **FHIR},
    }


def _observation(i, patient="pa", value=120.0):
    return {
        "resourceType": "Observation",
        "id": f"hr-{i}",
        "status": "final",
        "code": {"coding": [{"system": "http://loinc.org", "code": "8867-4"}]},
        "subject": {"reference": f"Patient/{patient}"},
        "effectiveDateTime": (T0 + dt.timedelta(minutes=i)).isoformat(),
        "valueQuantity": {
            "value": value,
            "unit": "/min",
            "system": "http://unitsofmeasure.org",
            "code": "/min",
        },
    }


def test_transaction_bundle_is_all_or_nothing(client, service, world):
    good = {
        "resourceType": "Bundle",
        "type": "transaction",
        "entry": [
            {"resource": _observation(i), "request": {"method": "POST", "url": "Observation"}}
            for i in range(5)
        ],
    }
    bad = {
        **good,
        "entry": [
            *good["entry"][:4],
            {**good["entry"][4], "resource": {**_observation(4), "status": "nonsense"}},
        ],
    }
    r = client.post("/fhir", json=bad, headers=world["a"])
    assert r.status_code == 422
    outcome = r.json()
    assert outcome["resourceType"] == "OperationOutcome"
    assert any("status" in e for issue in outcome["issue"] for e in issue.get("expression", []))
    assert service.store.observations("pa", code="8867-4") == []
    r = client.post("/fhir", json=good, headers=world["a"])
    assert r.status_code == 200, r.text
    assert r.json()["type"] == "transaction-response"
    assert len(service.store.observations("pa", code="8867-4")) == 5
    again = client.post("/fhir", json=good, headers=world["a"])
    assert again.status_code == 200
    assert len(service.store.observations("pa", code="8867-4")) == 5


def test_search_by_patient_and_date_with_include(client, world):
    r = client.get(
        "/fhir/Observation",
        params={"patient": "pa", "date": ["ge2026-03-02T06:30:00Z", "lt2026-03-02T07:00:00Z"],
                "_include": "Observation:patient"},
        headers=world["a"],
    )  # fmt: skip
    assert r.status_code == 200
    bundle = r.json()
    types = [e["resource"]["resourceType"] for e in bundle["entry"]]
    assert types.count("Observation") == 6 and types.count("Patient") == 1
    for entry in bundle["entry"]:
        validate(entry["resource"])


def test_forecast_and_risk_export_validate(client, world):
    r = client.get("/fhir/Patient/pa/$forecast?horizon_min=60", headers=world["a"])
    assert r.status_code == 200, r.text
    resources = [e["resource"] for e in r.json()["entry"]]
    assert [x["resourceType"] for x in resources] == [
        "Observation",
        "RiskAssessment",
        "RiskAssessment",
    ]
    for resource in resources:
        validate(resource)
    p = resources[1]["prediction"][0]["probabilityDecimal"]
    assert 0.0 <= p <= 1.0
    risks = client.get("/fhir/RiskAssessment?patient=pa", headers=world["a"]).json()
    assert risks.get("entry"), "the hypoglycaemia alert is exported as a RiskAssessment"
    for e in risks["entry"]:
        validate(e["resource"])


def test_probability_outside_0_1_is_rejected_on_import(client, world):
    risk = {
        "resourceType": "RiskAssessment",
        "status": "final",
        "subject": {"reference": "Patient/pa"},
        "prediction": [{"probabilityDecimal": 1.5}],
    }
    r = client.post("/fhir/Observation", json=risk, headers=world["a"])
    assert r.status_code == 400
    bad = {**_observation(1), "status": "guessed"}
    r = client.post("/fhir/Observation", json=bad, headers=world["a"])
    assert r.status_code == 422
    assert "Observation.status" in str(r.json())


# Every read and search form a clinician might try on another clinician's patient.
SWEEP = [
    "/api/patients/pa",
    "/api/patients/pa/observations",
    "/api/patients/pa/twin",
    "/api/patients/pa/forecast",
    "/api/patients/pa/risk",
    "/api/alerts?patient_id=pa",
    "/fhir/Patient/pa",
    "/fhir/Patient/pa/_history",
    "/fhir/Patient?_id=pa",
    "/fhir/Patient?identifier=urn:mrn|A-1",
    "/fhir/Patient?_id=pa&_revinclude=Observation:patient",
    "/fhir/Observation?patient=pa",
    "/fhir/Observation?subject=Patient/pa",
    "/fhir/Observation?patient=pa&_include=Observation:patient",
    "/fhir/RiskAssessment?patient=pa",
    "/fhir/Patient/pa/$forecast",
]


def test_a_clinician_reads_nothing_of_another_clinicians_patient(client, service, world):
    leaked = []
    for url in SWEEP:
        r = client.get(url, headers=world["b"])
        body = r.text
        if r.status_code == 200 and ("Alice" in body or '"pa"' in body or "Patient/pa" in body):
            leaked.append(url)
        assert r.status_code in (200, 403), (url, r.status_code, body[:200])
    # searches without a patient return only dr.b's own patient
    for url in (
        "/api/patients",
        "/fhir/Observation",
        "/fhir/Patient",
        "/api/alerts",
        "/fhir/RiskAssessment",
    ):
        r = client.get(url, headers=world["b"])
        assert r.status_code == 200, url
        assert "Alice" not in r.text and "Patient/pa" not in r.text and '"pa"' not in r.text, url
    r = client.post("/api/patients/pa/compare", json={"scenarios": {"x": []}}, headers=world["b"])
    assert r.status_code == 403
    assert leaked == []
    denied = [
        e
        for e in service.store.audit_log(limit=1000)
        if e.outcome == "denied" and e.actor == "dr.b"
    ]
    assert len(denied) >= 14
    assert service.store.verify_audit().ok
    # and dr.a does read them
    for url in SWEEP:
        assert client.get(url, headers=world["a"]).status_code == 200, url
