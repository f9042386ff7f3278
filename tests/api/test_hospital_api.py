"""The hospital twin through the API: ADT in (HL7 v2, FHIR, MLLP), census, forecast, what-ifs, auth."""

from __future__ import annotations

import asyncio
import dataclasses
import datetime as dt

import pytest
from fastapi.testclient import TestClient

from medtwin.api import Service, Settings, create_app
from medtwin.hospital import load_hospital
from medtwin.hospital.census import Census
from medtwin.hospital.synthetic import synthetic_adt_stream
from medtwin.interop.hl7v2 import build_adt_message, parse_ack, send_mllp
from medtwin.records import DeviceRecord, PatientRecord
from medtwin.security import Role
from tests.conftest import synthetic_hospital

HL7 = {"Content-Type": "application/hl7-v2"}


@pytest.fixture(autouse=True)
def quick(monkeypatch):
    """No patient twins here: skip their JIT warm-up; argon2 at its cheapest for the logins."""
    import functools

    from argon2 import PasswordHasher, profiles

    from medtwin.api._host import TwinHost
    from medtwin.security import hash_password
    from medtwin.store import _store

    monkeypatch.setattr(TwinHost, "_warm_up", lambda self: None)
    cheap = PasswordHasher.from_parameters(profiles.CHEAPEST)
    monkeypatch.setattr(_store, "hash_password", functools.partial(hash_password, hasher=cheap))


@pytest.fixture(scope="module")
def stream():
    return synthetic_adt_stream(days=2, seed=5)


@pytest.fixture(scope="module")
def spec():
    return load_hospital(synthetic_hospital())


@pytest.fixture
def service(tmp_path, spec):
    svc = Service.open(Settings(home=tmp_path, n_members=100))
    svc.open_hospital(spec)
    return svc


@pytest.fixture
def client(service):
    with TestClient(create_app(service), raise_server_exceptions=False) as c:
        yield c


def login(client, username, password):
    r = client.post("/auth/token", data={"username": username, "password": password})
    assert r.status_code == 200, r.text
    return {"Authorization": f"Bearer {r.json()['access_token']}"}


@pytest.fixture
def who(service, client):
    """A token per role: admin, clinician, researcher, the ADT feed (interface), a device."""
    admin_pw = service.bootstrap_admin()
    store = service.store
    for name, role in (("dr", Role.clinician), ("res", Role.researcher), ("feed", Role.interface)):
        store.create_user(name, f"password-{name}-12345", role)
    store.add_patient(PatientRecord("p1"))
    store.add_device(DeviceRecord("cgm-p1", "p1", "cgm"))
    return {
        "admin": login(client, "admin", admin_pw),
        "dr": login(client, "dr", "password-dr-12345"),
        "res": login(client, "res", "password-res-12345"),
        "feed": login(client, "feed", "password-feed-12345"),
        "device": {"Authorization": f"Bearer {service.device_token('cgm-p1')}"},
    }


def post_hl7(client, headers, messages, **params):
    body = "\n\n".join(messages).encode()
    return client.post("/api/hospital/adt", content=body, headers={**headers, **HL7}, params=params)


def occupants(snapshot):
    return sorted((o.visit_id, o.unit, o.bed, o.patient_class) for o in snapshot.occupants)


def test_ingestion_is_idempotent_and_acknowledged(client, service, who, stream):
    messages = stream.messages[:300]
    r = post_hl7(client, who["feed"], messages)
    assert r.status_code == 200, r.text
    out = r.json()
    distinct = len({d.event.message_id for d in stream.deliveries[:300]})
    assert out["accepted"] == distinct and out["duplicates"] == 300 - distinct
    first = out["messages"][0]
    assert first["ack"] == "AA" and first["index"] == 1
    assert parse_ack(first["ack_message"]).message_id == first["message_id"]
    again = post_hl7(client, who["feed"], messages).json()
    assert again["accepted"] == 0 and again["duplicates"] == 300
    assert {m["status"] for m in again["messages"]} == {"duplicate"}
    assert again["census_version"] == out["census_version"]
    assert service.store.count_adt_events() == distinct


def test_census_equals_the_census_built_directly_and_survives_a_restart(
    client, service, who, stream, tmp_path, spec
):
    messages = stream.messages
    for i in range(0, len(messages), 700):  # batches, with their resends and late messages
        assert post_hl7(client, who["feed"], messages[i : i + 700]).status_code == 200
    direct = Census.from_events(stream.events)
    hosted = service.hospital_host()
    assert occupants(hosted.snapshot()[0]) == occupants(direct.snapshot())
    # and the synthetic stream's ground truth
    truth = stream.truth_after(len(stream.deliveries))
    assert {v: (o.unit, o.bed) for v, o in truth.items()} == {
        o.visit_id: (o.unit, o.bed) for o in hosted.snapshot()[0].occupants
    }
    view = client.get("/api/hospital/census", headers=who["dr"]).json()
    counts = {u["unit"]: u["occupied"] for u in view["units"]}
    assert {u: n for u, n in counts.items() if n} == direct.counts()
    assert view["as_of"] is not None and view["patients"] is None
    beds = client.get("/api/hospital/census?patients=true", headers=who["dr"]).json()
    assert len(beds["patients"]) == len(direct)
    assert {p["visit_id"] for p in beds["patients"]} == set(direct.occupants)
    # a restarted service rebuilds the same census from the store
    service.close()
    reopened = Service.open(Settings(home=tmp_path, n_members=100))
    try:
        reopened.open_hospital(spec)
        assert occupants(reopened.hospital_host().snapshot()[0]) == occupants(direct.snapshot())
    finally:
        reopened.store.close()


def test_a_malformed_message_rejects_the_batch_naming_it(client, service, who, stream):
    good = stream.messages[:5]
    event = dataclasses.replace(stream.events[5], message_id="BAD-7")
    broken = build_adt_message(event).replace(event.visit_id, "")  # no visit number
    r = post_hl7(client, who["feed"], [*good, broken])
    assert r.status_code == 400, r.text
    body = r.json()
    assert (
        "message 6" in body["detail"] and "BAD-7" in body["detail"] and "PV1-19" in body["detail"]
    )
    assert "nothing of this batch was stored" in body["detail"]
    assert [a["ack"] for a in body["acks"]] == ["AR"] * 5 + ["AE"]
    assert body["acks"][5]["message_id"] == "BAD-7"
    assert service.store.count_adt_events() == 0
    assert service.hospital_host().census.n_applied == 0


@pytest.mark.parametrize(
    ("body", "kind", "message"),
    [
        (b"", "text/plain", "no HL7 v2 message"),
        (b"hello", "text/plain", "message 1"),
        (b"MSH|^~\\&|A", "application/json", "content type"),
    ],
)
def test_bad_bodies_are_400(client, who, body, kind, message):
    r = client.post(
        "/api/hospital/adt", content=body, headers={**who["feed"], "Content-Type": kind}
    )
    assert r.status_code == 400 and message in r.json()["detail"], r.text


def test_conflicts_are_409_and_store_nothing(client, service, who, stream):
    first = stream.events[0]
    assert post_hl7(client, who["feed"], [build_adt_message(first)]).status_code == 200
    changed = dataclasses.replace(first, unit="ICU", bed="7")
    other = dataclasses.replace(stream.events[1], message_id="NEW-1")
    r = post_hl7(client, who["feed"], [build_adt_message(other), build_adt_message(changed)])
    assert r.status_code == 409, r.text
    assert first.message_id in r.json()["detail"] and "unit" in r.json()["detail"]
    # a visit may not change patient
    stolen = dataclasses.replace(first, message_id="NEW-2", patient_id="SOMEONE-ELSE")
    r = post_hl7(client, who["feed"], [build_adt_message(stolen)])
    assert r.status_code == 409 and "belongs to another patient" in r.json()["detail"]
    assert service.store.count_adt_events() == 1


def test_events_dated_in_the_future_are_refused(client, service, who, stream):
    ahead = dataclasses.replace(
        stream.events[0], occurred_at=dt.datetime.now(dt.UTC) + dt.timedelta(hours=3)
    )
    r = post_hl7(client, who["feed"], [build_adt_message(ahead)])
    assert r.status_code == 400 and "ahead of the server's clock" in r.json()["detail"]
    assert service.store.count_adt_events() == 0


def encounter(version: str, *, finished: bool = False) -> dict:
    enc = {
        "resourceType": "Encounter", "id": "enc-1", "meta": {"versionId": version},
        "status": "finished" if finished else "in-progress",
        "subject": {"reference": "Patient/mrn-9"},
        "class": {"system": "http://terminology.hl7.org/CodeSystem/v3-ActCode", "code": "EMER"},
        "location": [
            {"location": {"reference": "Location/ED"}, "status": "completed",
             "period": {"start": "2026-01-05T08:00:00Z", "end": "2026-01-05T10:00:00Z"}},
            {"location": {"reference": "Location/ICU"}, "status": "active",
             "period": {"start": "2026-01-05T10:00:00Z"}},
        ],
    }  # fmt: skip
    if finished:
        enc["period"] = {"start": "2026-01-05T08:00:00Z", "end": "2026-01-06T09:00:00Z"}
    return enc


def test_fhir_encounters(client, service, who):
    r = client.post("/api/hospital/encounters", json=encounter("1"), headers=who["feed"])
    assert r.status_code == 200, r.text
    assert [m["event_type"] for m in r.json()["messages"]] == ["A04", "A02"]
    assert service.hospital_host().census.counts() == {"ICU": 1}
    entries = [{"resource": encounter("1")}, {"resource": encounter("2", finished=True)}]
    bundle = {"resourceType": "Bundle", "type": "collection", "entry": entries}
    r = client.post("/api/hospital/encounters", json=bundle, headers=who["feed"])
    assert r.status_code == 200, r.text
    assert r.json()["accepted"] == 3  # version 2 repeats version 1's events and adds the A03
    assert service.hospital_host().census.counts() == {}
    bad = {**encounter("3"), "status": "sleeping"}
    r = client.post("/api/hospital/encounters", json=bad, headers=who["feed"])
    assert r.status_code == 422 and "status" in r.text
    patient = {"resource": {"resourceType": "Patient"}}
    bundle = {"resourceType": "Bundle", "type": "collection", "entry": [patient]}
    r = client.post("/api/hospital/encounters", json=bundle, headers=who["feed"])
    assert r.status_code == 400 and "entry[0]" in r.json()["detail"]


def test_who_may_do_what(client, service, who, stream):
    messages = stream.messages[:50]
    assert client.get("/api/hospital/census").status_code == 401
    for name in ("dr", "res", "device"):
        assert post_hl7(client, who[name], messages).status_code == 403, name
    assert post_hl7(client, who["admin"], messages).status_code == 200
    assert post_hl7(client, who["feed"], messages).status_code == 200
    for name in ("feed", "device"):
        for path in ("/api/hospital/census", "/api/hospital/spec", "/api/hospital/census/history"):
            assert client.get(path, headers=who[name]).status_code == 403, (name, path)
    assert client.get("/api/hospital/census", headers=who["res"]).status_code == 200
    assert client.get("/api/hospital/spec", headers=who["res"]).status_code == 200
    r = client.get("/api/hospital/census?patients=true", headers=who["res"])
    assert r.status_code == 403 and "de-identified" in r.json()["detail"]
    for name in ("dr", "admin"):
        r = client.get("/api/hospital/census?patients=true", headers=who[name])
        assert r.status_code == 200 and r.json()["patients"], name
    log = service.store.audit_log(limit=500)
    assert any(e.actor == "res" and e.action == "read census with patients"
               and e.outcome == "denied" for e in log)  # fmt: skip
    assert any(e.actor == "dr" and e.action == "read census with patients"
               and e.outcome == "granted" for e in log)  # fmt: skip
    assert any(e.actor == "dr" and e.action == "ingest ADT (HL7 v2)"
               and e.outcome == "denied" for e in log)  # fmt: skip
    assert service.store.verify_audit().ok


def test_history(client, who, stream):
    post_hl7(client, who["feed"], stream.messages)
    r = client.get("/api/hospital/census/history", params={"freq": "6h"}, headers=who["res"])
    assert r.status_code == 200, r.text
    out = r.json()
    assert set(out["units"]) >= {"ED", "MED"} and len(out["times"]) == len(out["units"]["MED"])
    direct = Census.from_events(stream.events)
    last = dt.datetime.fromisoformat(out["times"][-1])
    assert {u: v[-1] for u, v in out["units"].items() if v[-1]} == direct.counts(at=last)
    for params, message in [
        ({"freq": "1 week"}, "freq"),
        ({"freq": "1min", "start": "2020-01-01T00:00:00Z"}, "time points"),
        ({"start": "2026-01-06T00:00:00"}, "time zone"),
    ]:
        r = client.get("/api/hospital/census/history", params=params, headers=who["res"])
        assert r.status_code == 400 and message in r.json()["detail"], (params, r.text)


def test_forecast_is_cached_per_census_version(client, service, who, stream):
    n = len(stream.messages) // 2
    post_hl7(client, who["feed"], stream.messages[:n])
    params = {"horizon_hours": 6, "replications": 3}
    r = client.get("/api/hospital/forecast", params=params, headers=who["res"])
    assert r.status_code == 200, r.text
    fc = r.json()
    assert len(fc["times"]) == 7 and {u["unit"] for u in fc["units"]} == set(
        synthetic_hospital()["units"]
    )
    med = next(u for u in fc["units"] if u["unit"] == "MED")
    now = service.hospital_host().census.counts().get("MED", 0)
    assert med["occupied"]["median"][0] == now and med["beds"] == 300
    assert all(lo <= m <= hi for lo, m, hi in zip(med["occupied"]["lower_90"], med["occupied"]["median"],
                                                  med["occupied"]["upper_90"], strict=True))  # fmt: skip
    assert set(fc["ed"]) >= {"ed", "waiting", "boarding"} and not fc["stale"]
    again = client.get("/api/hospital/forecast", params=params, headers=who["res"]).json()
    assert again["computed_at"] == fc["computed_at"]
    post_hl7(client, who["feed"], stream.messages[n:])
    stale = client.get("/api/hospital/forecast", params=params, headers=who["res"]).json()
    assert stale["computed_at"] == fc["computed_at"] and stale["stale"]
    fresh = client.get(
        "/api/hospital/forecast", params={**params, "max_age_s": 0}, headers=who["res"]
    )
    assert fresh.json()["census_version"] == fresh.json()["current_version"] > fc["census_version"]
    r = client.get("/api/hospital/forecast", params={"horizon_hours": 168, "replications": 500},
                   headers=who["res"])  # fmt: skip
    assert r.status_code == 400 and "budget" in r.json()["detail"]


def test_scenarios(client, who, stream):
    post_hl7(client, who["feed"], stream.messages)
    body = {"scenarios": {"+30 MED": {"extra_beds": {"MED": 30}}}, "replications": 2, "days": 0.5}
    r = client.post("/api/hospital/scenarios", json=body, headers=who["res"])
    assert r.status_code == 200, r.text
    out = r.json()
    assert out["scenarios"] == ["+30 MED"] and out["from_census"] and out["census_at"]
    rows = {(x["kpi"], x["scenario"]): x for x in out["rows"]}
    diff = rows[("occupancy:MED", "+30 MED")]
    assert diff["difference"] < 0 and diff["significant"] is not None
    assert rows[("occupancy:MED", "baseline")]["difference"] is None
    bad = [
        ({**body, "scenarios": {"x": {"extra_beds": {"NOWHERE": 3}}}}, 400, "NOWHERE"),
        ({**body, "scenarios": {"x": {"los_multiplier": -1}}}, 400, "los_multiplier"),
        ({**body, "scenarios": {"baseline": {"extra_beds": {"MED": 1}}}}, 400, "baseline"),
        ({**body, "kpis": ["nonsense"]}, 400, "nonsense"),
        ({**body, "replications": 30, "days": 90, "from_census": False}, 400, "budget"),
        ({**body, "replications": 1000}, 422, "replications"),
        ({**body, "scenarios": {}}, 422, "scenarios"),
    ]
    for payload, status, message in bad:
        r = client.post("/api/hospital/scenarios", json=payload, headers=who["res"])
        assert r.status_code == status and message in r.text, (payload, r.text)


def test_spec(client, who):
    r = client.get("/api/hospital/spec", headers=who["res"])
    assert r.status_code == 200
    out = r.json()
    assert out["name"] == "Synthetic stream hospital"
    assert {u["name"]: u["beds"] for u in out["units"]}["MED"] == 300
    assert out["ed"]["spaces"] == 60 and out["spec"]["units"]["ICU"]["beds"] == 40


def test_without_a_hospital_the_endpoints_say_so(tmp_path):
    svc = Service.open(Settings(home=tmp_path, n_members=100))
    password = svc.bootstrap_admin()
    with TestClient(create_app(svc), raise_server_exceptions=False) as c:
        r = c.get("/api/hospital/census", headers=login(c, "admin", password))
        assert r.status_code == 404 and "--hospital" in r.json()["detail"]


def test_mllp_listener_feeds_the_same_path(tmp_path, spec, stream):
    svc = Service.open(Settings(home=tmp_path, n_members=100, mllp_port=0))
    svc.open_hospital(spec)
    with TestClient(create_app(svc), raise_server_exceptions=False):
        port = svc.extras["mllp_port"]
        messages = stream.messages[:40]
        broken = messages[0].replace("PID|", "PIX|")
        acks = asyncio.run(send_mllp([*messages, messages[0], broken], "127.0.0.1", port))
        codes = [parse_ack(a).code for a in acks]
        assert codes == ["AA"] * 41 + ["AE"]
        direct = Census.from_events(stream.events[:40])
        assert occupants(svc.hospital_host().snapshot()[0]) == occupants(direct.snapshot())
        assert svc.store.count_adt_events() == len({e.message_id for e in stream.events[:40]})
        log = svc.store.audit_log(limit=100)
        assert sum(e.actor == "mllp" and e.outcome == "granted" for e in log) == 41
