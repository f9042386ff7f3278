"""The Nightscout-compatible upload endpoint, as xDrip+/AndroidAPS call it."""

from __future__ import annotations

import datetime as dt
import hashlib

import pytest
from fastapi.testclient import TestClient

from medtwin.api import Service, Settings, create_app
from medtwin.api.routers.nightscout import nightscout_secret
from medtwin.records import DeviceRecord, PatientRecord

T0 = dt.datetime(2026, 3, 2, 6, 0, tzinfo=dt.UTC)


@pytest.fixture
def setup(tmp_path):
    service = Service.open(Settings(home=tmp_path, n_members=50))
    service.store.add_patient(PatientRecord("p1"))
    service.store.add_patient(PatientRecord("p2"))
    service.store.add_device(DeviceRecord("xdrip-1", "p1", "cgm"))
    service.store.add_device(DeviceRecord("xdrip-2", "p2", "cgm"))
    with TestClient(create_app(service), raise_server_exceptions=False) as client:
        yield service, client


def _sha1(text: str) -> str:
    return hashlib.sha1(text.encode(), usedforsecurity=False).hexdigest()


def _entries(n, start=T0, sgv=120):
    return [
        {
            "type": "sgv",
            "sgv": sgv + i,
            "date": int((start + dt.timedelta(minutes=5 * i)).timestamp() * 1000),
            "device": "xDrip-DexcomG6",
            "direction": "Flat",
        }
        for i in range(n)
    ]


def test_upload_with_api_secret_is_stored_once(setup):
    service, client = setup
    secret = nightscout_secret(service.keyring.token_key, "xdrip-1")
    headers = {"api-secret": _sha1(secret)}
    assert client.get("/nightscout/xdrip-1/api/v1/status.json").json()["status"] == "ok"
    r = client.post("/nightscout/xdrip-1/api/v1/entries", json=_entries(6), headers=headers)
    assert r.status_code == 200, r.text
    assert r.json()["accepted"] == 6
    again = client.post("/nightscout/xdrip-1/api/v1/entries", json=_entries(6), headers=headers)
    assert again.json() == {"accepted": 0, "duplicates": 6, "set_aside": []}
    stored = service.store.observations("p1")
    assert [o.value for o in stored] == [120.0 + i for i in range(6)]
    assert all(o.device_id == "xdrip-1" and o.unit == "mg/dL" for o in stored)


def test_wrong_secret_or_another_devices_secret_is_refused_and_audited(setup):
    service, client = setup
    other = nightscout_secret(service.keyring.token_key, "xdrip-2")
    for secret in ("guess", other):
        r = client.post(
            "/nightscout/xdrip-1/api/v1/entries",
            json=_entries(2),
            headers={"api-secret": _sha1(secret)},
        )
        assert r.status_code == 401
    assert client.post("/nightscout/xdrip-1/api/v1/entries", json=_entries(2)).status_code == 401
    # a device token of xdrip-2 cannot upload as xdrip-1
    token = service.device_token("xdrip-2")
    r = client.post(f"/nightscout/xdrip-1/api/v1/entries?token={token}", json=_entries(2))
    assert r.status_code == 403
    assert service.store.observations("p1") == []
    denied = [e for e in service.store.audit_log(limit=100) if e.outcome == "denied"]
    assert len(denied) >= 4  # two wrong secrets, no credentials, another device's token


def test_implausible_readings_are_set_aside_and_reported(setup):
    service, client = setup
    token = service.device_token("xdrip-1")
    entries = _entries(3)
    entries[1]["sgv"] = 5  # below what a CGM can read
    r = client.post(f"/nightscout/xdrip-1/api/v1/entries?token={token}", json=entries)
    assert r.status_code == 200
    body = r.json()
    assert body["accepted"] == 2
    assert any(s.startswith("implausible") for s in body["set_aside"])


def test_treatments_become_events(setup):
    service, client = setup
    secret = nightscout_secret(service.keyring.token_key, "xdrip-1")
    when = T0.isoformat().replace("+00:00", "Z")
    treatments = [
        {"eventType": "Meal Bolus", "created_at": when, "insulin": 4.5, "carbs": 45},
        {"eventType": "Correction Bolus", "created_at": "2026-03-02T08:00:00Z", "insulin": 1.0},
    ]
    r = client.post(
        "/nightscout/xdrip-1/api/v1/treatments",
        json=treatments,
        headers={"api-secret": _sha1(secret)},
    )
    assert r.status_code == 200, r.text
    events = service.store.events("p1")
    assert sorted((e.kind, e.value) for e in events) == [
        ("bolus", 1.0),
        ("bolus", 4.5),
        ("carbs", 45.0),
    ]
