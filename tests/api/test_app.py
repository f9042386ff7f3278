"""The API end to end through FastAPI's TestClient: auth, patients, ingestion, twins, alerts, audit."""

from __future__ import annotations

import datetime as dt
import json

import numpy as np
import pytest
from fastapi.testclient import TestClient

from medtwin.api import Service, Settings, create_app
from medtwin.records import DeviceRecord, PatientRecord
from medtwin.security import Principal, Role, TokenIssuer, parse_scopes

T0 = dt.datetime(2026, 3, 2, 6, 0, tzinfo=dt.UTC)


@pytest.fixture
def service(tmp_path):
    svc = Service.open(Settings(home=tmp_path, n_members=100, save_every=5))
    yield svc


@pytest.fixture
def client(service):
    with TestClient(create_app(service), raise_server_exceptions=False) as c:
        yield c


def login(client, username, password):
    r = client.post("/auth/token", data={"username": username, "password": password})
    assert r.status_code == 200, r.text
    return {"Authorization": f"Bearer {r.json()['access_token']}"}


@pytest.fixture
def world(service, client):
    """An admin, two clinicians with one patient each, a researcher, a device."""
    admin_pw = service.bootstrap_admin()
    store = service.store
    a = store.create_user("dr.a", "password-a-123456", Role.clinician)
    b = store.create_user("dr.b", "password-b-123456", Role.clinician)
    store.create_user("res", "password-r-123456", Role.researcher)
    store.add_patient(
        PatientRecord("pa", identifier="urn:mrn|A-1", name="Alice Example"), clinicians=(a,)
    )
    store.add_patient(
        PatientRecord("pb", identifier="urn:mrn|B-2", name="Bob Example"), clinicians=(b,)
    )
    store.add_device(DeviceRecord("cgm-pa", "pa", "cgm"))
    return {
        "admin": login(client, "admin", admin_pw),
        "a": login(client, "dr.a", "password-a-123456"),
        "b": login(client, "dr.b", "password-b-123456"),
        "res": login(client, "res", "password-r-123456"),
        "device": {"Authorization": f"Bearer {service.device_token('cgm-pa')}"},
    }


def readings(n, start=T0, level=140.0, slope=0.0):
    times = [(start + dt.timedelta(minutes=5 * i)).isoformat() for i in range(n)]
    return times, [level + slope * 5 * i for i in range(n)]


def test_openapi_and_health(client):
    spec = client.get("/openapi.json").json()
    assert spec["info"]["title"] == "medtwin"
    assert "/api/patients/{patient_id}/forecast" in spec["paths"]
    assert client.get("/healthz").json()["status"] == "ok"


def test_login_is_audited_and_bad_password_refused(client, service, world):
    r = client.post("/auth/token", data={"username": "dr.a", "password": "wrong"})
    assert r.status_code == 401
    assert r.headers["www-authenticate"] == "Bearer"
    log = service.store.audit_log(limit=1000)
    assert any(e.action == "login" and e.outcome == "denied" and e.actor == "dr.a" for e in log)
    assert service.store.verify_audit().ok


def test_tokens_expired_or_wrongly_signed_are_refused(client, service, world):
    p = Principal("x", "dr.a", Role.clinician, parse_scopes("user/*.cruds"))
    other = TokenIssuer(b"k" * 32).issue(p)
    expired = service.tokens.issue(p, now=dt.datetime.now(dt.UTC) - dt.timedelta(hours=3))
    for token in (other, expired, "not-a-jwt"):
        r = client.get("/api/patients", headers={"Authorization": f"Bearer {token}"})
        assert r.status_code == 401, token
    assert client.get("/api/patients").status_code == 401
    denied = [e for e in service.store.audit_log(limit=1000) if e.actor == "anonymous"]
    assert len(denied) == 4


def test_clinician_sees_only_own_patients(client, world):
    ids = [p["id"] for p in client.get("/api/patients", headers=world["a"]).json()]
    assert ids == ["pa"]
    assert client.get("/api/patients/pb", headers=world["a"]).status_code == 403
    assert client.get("/api/patients/pa", headers=world["a"]).json()["name"] == "Alice Example"
    r = client.get("/api/patients/pb/observations", headers=world["a"])
    assert r.status_code == 403
    assert sorted(p["id"] for p in client.get("/api/patients", headers=world["admin"]).json()) == [
        "pa",
        "pb",
    ]


def test_device_writes_its_patient_but_cannot_read(client, world):
    times, values = readings(3)
    body = {"first_seq": 0, "times": times, "values": values}
    r = client.post("/api/devices/cgm-pa/readings", json=body, headers=world["device"])
    assert r.status_code == 200, r.text
    assert r.json() == {"accepted": 3, "duplicates": 0}
    again = client.post("/api/devices/cgm-pa/readings", json=body, headers=world["device"])
    assert again.json() == {"accepted": 0, "duplicates": 3}
    assert client.get("/api/patients/pa/observations", headers=world["device"]).status_code == 403
    assert client.get("/api/patients", headers=world["device"]).status_code == 403
    r = client.post(
        "/api/patients/pb/observations",
        json=[{"time": times[0], "value": 100, "source_id": "x"}],
        headers=world["device"],
    )
    assert r.status_code == 403


def test_researcher_sees_no_direct_identifiers(client, world):
    assert client.get("/api/patients", headers=world["res"]).status_code == 403
    r = client.get("/api/research/patients", headers=world["res"])
    assert r.status_code == 200
    text = r.text
    for secret in ("Alice", "Bob", "A-1", "B-2", '"pa"', '"pb"'):
        assert secret not in text
    assert len(r.json()) == 2


def test_batch_is_atomic_and_idempotent(client, service, world):
    times, values = readings(4)
    batch = [
        {"time": t, "value": v, "source_id": f"s{i}"}
        for i, (t, v) in enumerate(zip(times, values, strict=True))
    ]
    bad = json.dumps([*batch[:2], {"time": times[2], "value": 0, "source_id": "s2"}, batch[3]])
    bad = bad.replace('"value": 0,', '"value": 1e999,')  # a number JSON can carry, not finite
    r = client.post(
        "/api/patients/pa/observations",
        content=bad,
        headers={**world["a"], "Content-Type": "application/json"},
    )
    assert r.status_code == 422
    assert "Traceback" not in r.text
    assert service.store.observations("pa") == []
    bad_code = [*batch[:2], {**batch[2], "code": "1234-5"}]
    r = client.post("/api/patients/pa/observations", json=bad_code, headers=world["a"])
    assert r.status_code == 400, r.text
    assert "1234-5" in r.json()["detail"]
    assert service.store.observations("pa") == []
    headers = {**world["a"], "Idempotency-Key": "batch-1"}
    assert client.post("/api/patients/pa/observations", json=batch, headers=headers).json() == {
        "accepted": 4,
        "duplicates": 0,
    }
    again = client.post("/api/patients/pa/observations", json=batch, headers=headers)
    assert again.status_code == 200 and again.json()["accepted"] == 0
    changed = [{**batch[0], "value": 99.0}, *batch[1:]]
    assert (
        client.post("/api/patients/pa/observations", json=changed, headers=headers).status_code
        == 409
    )
    assert len(service.store.observations("pa")) == 4


def test_twin_forecast_risk_compare_and_alert(client, service, world):
    from tests.conftest import hypo_trace

    events, times, values = hypo_trace(T0)
    logged = [
        {"time": t.isoformat(), "kind": k, "value": v, "unit": u, "source_id": f"ev{i}"}
        for i, (k, t, v, u) in enumerate(events)
    ]
    assert (
        client.post("/api/patients/pa/events", json=logged, headers=world["a"]).status_code == 200
    )
    body = {"first_seq": 0, "times": [t.isoformat() for t in times], "values": values}
    r = client.post("/api/devices/cgm-pa/readings", json=body, headers=world["device"])
    assert r.status_code == 200
    assert service.host.wait_idle(120)
    state = client.get("/api/patients/pa/twin", headers=world["a"]).json()
    assert state["n_members"] == 100 and "Vmx" in state["parameters"]
    fc = client.get("/api/patients/pa/forecast?horizon_min=60", headers=world["a"]).json()
    assert len(fc["median"]) == 13
    lo, hi = np.array(fc["bands"]["95"]["lower"]), np.array(fc["bands"]["95"]["upper"])
    assert np.all(lo <= np.array(fc["median"])) and np.all(np.array(fc["median"]) <= hi)
    risk = client.get(
        "/api/patients/pa/risk?event=hypoglycaemia&within_min=60", headers=world["a"]
    ).json()
    assert 0.0 <= risk["probability"] <= 1.0
    cmp = client.post(
        "/api/patients/pa/compare",
        json={
            "scenarios": {"nothing": [], "30 g carbs": [{"kind": "carbs", "value": 30}]},
            "horizon_min": 120,
        },
        headers=world["a"],
    ).json()
    assert cmp["outcomes"]["30 g carbs"]["nadir_mg_dl"] > cmp["outcomes"]["nothing"]["nadir_mg_dl"]
    assert client.get("/api/patients/pa/forecast", headers=world["b"]).status_code == 403
    alerts = client.get("/api/alerts?patient_id=pa", headers=world["a"]).json()
    assert alerts and alerts[0]["kind"] == "hypoglycaemia"
    assert client.get("/api/alerts", headers=world["b"]).json() == []
    acked = client.post(f"/api/alerts/{alerts[0]['id']}/ack", headers=world["a"]).json()
    assert acked["acknowledged_by"] == "dr.a"


def test_audit_endpoint_for_admin_only(client, world):
    assert client.get("/api/audit", headers=world["a"]).status_code == 403
    entries = client.get("/api/audit?limit=500", headers=world["admin"]).json()
    assert any(e["outcome"] == "denied" for e in entries) or entries
    assert client.get("/api/audit/verify", headers=world["admin"]).json()["ok"] is True


def test_errors_never_leak_stack_traces(client, world):
    r = client.post("/api/patients/pa/compare", json={"scenarios": "nope"}, headers=world["a"])
    assert r.status_code == 422 and "Traceback" not in r.text
    r = client.get("/api/patients/nobody", headers=world["admin"])
    assert r.status_code == 404 and r.json()["error"] == "NotFoundError"


def test_the_hosts_risks_equal_the_twins_own(service, client, world):
    from medtwin.api._host import RISKS, _risks
    from tests.conftest import hypo_trace

    _events, times, values = hypo_trace(T0)
    body = {"first_seq": 0, "times": [t.isoformat() for t in times], "values": values}
    client.post("/api/devices/cgm-pa/readings", json=body, headers=world["device"])
    assert service.host.wait_idle(120)
    twin = service.host.twin("pa")
    expected = {
        s.kind: round(twin.risk(s.kind, below=s.below, above=s.above, within_min=s.window_min), 4)
        for s in RISKS
    }
    assert _risks(twin) == expected


def test_batched_risks_equal_one_twin_at_a_time(service, client, world):
    from medtwin.api._host import _risks, _risks_many
    from medtwin.twin import Twin
    from medtwin.twin._twin import forecast_many
    from tests.conftest import hypo_trace

    _events, times, values = hypo_trace(T0)
    body = {"first_seq": 0, "times": [t.isoformat() for t in times], "values": values}
    client.post("/api/devices/cgm-pa/readings", json=body, headers=world["device"])
    assert service.host.wait_idle(120)
    blob = service.host.twin("pa").to_bytes()
    twins = []
    for basal in (None, 0.2, 3.0):  # the patients' basal rates differ
        twin = Twin.from_bytes(blob)
        twin.basal_u_per_h_ = basal
        twins.append(twin)
    one_by_one = [_risks(twin) for twin in twins]
    assert _risks_many(twins) == one_by_one
    fcs = forecast_many(twins, 60.0, with_sensor_noise=False, with_bands=False)
    # each twin's own basal rate reaches its forecast: more insulin, lower glucose
    assert fcs[2].members[:, -1].mean() < fcs[1].members[:, -1].mean() - 1
