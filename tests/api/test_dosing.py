"""Model-informed precision dosing through the API: models, a patient's dose, refusals, bad input."""

from __future__ import annotations

import pytest
from fastapi.testclient import TestClient

from medtwin.api import Service, Settings, create_app
from medtwin.records import PatientRecord
from medtwin.security import Role

N_DRAWS = 200

# the worked example of docs/population.md: 80 kg, CrCL 60 mL/min, 1 g q12h over 1 h, two levels
EXAMPLE = {
    "model": "vancomycin-goti2018",
    "covariates": {"weight_kg": 80.0, "crcl_ml_min": 60.0},
    "doses": [{"time_h": 12.0 * i, "dose_mg": 1000.0, "duration_h": 1.0} for i in range(4)],
    "levels": [
        {"time_h": 38.0, "concentration_mg_l": 27.5},
        {"time_h": 47.5, "concentration_mg_l": 21.0},
    ],
    "target": {"kind": "auc24", "low": 400.0, "high": 600.0},
    "toxicity": {"kind": "trough", "above": 20.0},
    "candidates": [
        {"dose_mg": 1000.0, "every_h": 12.0, "duration_h": 1.0},
        {"dose_mg": 750.0, "every_h": 12.0, "duration_h": 1.0},
        {"dose_mg": 1250.0, "every_h": 24.0, "duration_h": 1.25},
    ],
    "n_draws": N_DRAWS,
    "seed": 0,
}


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    """A client, and tokens of two clinicians each caring for one patient."""
    svc = Service.open(Settings(home=tmp_path_factory.mktemp("dosing"), n_members=100))
    store = svc.store
    a = store.create_user("dr.a", "password-a-123456", Role.clinician)
    b = store.create_user("dr.b", "password-b-123456", Role.clinician)
    store.add_patient(PatientRecord("pa", name="Alice Example"), clinicians=(a,))
    store.add_patient(PatientRecord("pb", name="Bob Example"), clinicians=(b,))
    with TestClient(create_app(svc), raise_server_exceptions=False) as client:
        tokens = {}
        for who, pw in (("dr.a", "password-a-123456"), ("dr.b", "password-b-123456")):
            r = client.post("/auth/token", data={"username": who, "password": pw})
            tokens[who] = {"Authorization": f"Bearer {r.json()['access_token']}"}
        yield client, svc, tokens


def post(world, body, *, patient="pa", who="dr.a"):
    client, _, tokens = world
    return client.post(f"/api/patients/{patient}/dosing", json=body, headers=tokens[who])


def test_models_lists_vancomycin_with_units_and_citation(world):
    client, _, tokens = world
    assert client.get("/api/dosing/models").status_code == 401
    models = client.get("/api/dosing/models", headers=tokens["dr.a"]).json()
    (vanco,) = [m for m in models if m["name"] == "vancomycin-goti2018"]
    units = {c["name"]: c["unit"] for c in vanco["covariates"]}
    assert units == {"weight_kg": "kg", "crcl_ml_min": "mL/min", "haemodialysis": "1"}
    assert vanco["parameters"]["CL"] == "L/h" and vanco["parameters"]["V1"] == "L"
    assert "Goti" in vanco["reference"] and "Ther Drug Monit" in vanco["reference"]
    assert vanco["iiv_cv_percent"]["eta_CL"] == pytest.approx(39.8, abs=0.1)
    assert vanco["default_target"] == {"kind": "auc24", "low": 400.0, "high": 600.0}


def test_worked_vancomycin_example(world):
    r = post(world, EXAMPLE)
    assert r.status_code == 200, r.text
    out = r.json()
    assert out["patient_id"] == "pa" and out["n_draws"] == N_DRAWS and out["n_levels"] == 2
    assert out["target"]["unit"] == "mg.h/L" and out["toxicity"]["unit"] == "mg/L"
    cl = out["parameters"]["CL"]
    assert cl["unit"] == "L/h" and cl["lower_90"] < cl["map"] < cl["upper_90"]
    times = out["times_h"]
    assert times[0] == 0.0 and times == sorted(times) and times[-1] >= 48.0 + 72.0
    assert len(out["candidates"]) == 3
    for c in out["candidates"]:
        assert 0.0 <= c["pta"] <= 1.0 and 0.0 < c["pta_mcse"] < 0.1
        assert 0.0 <= c["p_toxic"] <= 1.0 and c["p_toxic_mcse"] >= 0.0
        assert c["pta"] + c["p_below"] + c["p_above"] == pytest.approx(1.0, abs=1e-3)
        auc = c["exposure"]["auc24"]
        assert auc["unit"] == "mg.h/L" and auc["lower_90"] <= auc["median"] <= auc["upper_90"]
        assert c["exposure"]["trough"]["unit"] == "mg/L"
        assert c["start_h"] == 48.0  # the next dose of the q12h regimen given so far
        curve = c["curve"]
        assert len(curve["median"]) == len(curve["lower_90"]) == len(times)
        assert all(
            lo <= m <= hi
            for lo, m, hi in zip(curve["lower_90"], curve["median"], curve["upper_90"], strict=True)
        )
    current, lower, daily = out["candidates"]
    # the current 1 g q12h overshoots (median AUC24 ~850): a lower dose attains the target more
    assert current["exposure"]["auc24"]["median"] > 600.0
    assert lower["pta"] > current["pta"] and daily["pta"] > current["pta"]
    assert sum(c["recommended"] for c in out["candidates"]) == 1
    best = out["candidates"][out["recommended_index"]]
    assert best["recommended"] and best["pta"] == max(c["pta"] for c in out["candidates"])
    assert "PTA" in out["recommendation"] and "MC SE" in out["recommendation"]
    # the curves pass near the measured levels (the MAP fit): same history before 48 h
    i38 = times.index(38.0)
    assert 15.0 < current["curve"]["median"][i38] < 40.0
    assert current["curve"]["median"][i38] == lower["curve"]["median"][i38]


def test_recommend_searches_regimens(world):
    body = {**EXAMPLE, "candidates": "recommend", "toxicity": None, "posterior": "importance"}
    r = post(world, body)
    assert r.status_code == 200, r.text
    out = r.json()
    assert out["toxicity"] is None and 1 <= len(out["candidates"]) <= 5
    best = out["candidates"][out["recommended_index"]]
    assert best["recommended"] and best["p_toxic"] is None and best["p_toxic_mcse"] is None
    assert 0.0 < best["pta"] <= 1.0 and best["pta_mcse"] > 0.0
    assert best["pta"] >= max(c["pta"] for c in out["candidates"])


def test_another_clinicians_patient_is_refused_and_audited(world):
    r = post(world, EXAMPLE, patient="pb", who="dr.a")
    assert r.status_code == 403, r.text
    _, svc, _ = world
    log = svc.store.audit_log(limit=50)
    assert any(e.actor == "dr.a" and e.patient_id == "pb" and e.outcome == "denied" for e in log)
    assert any(e.actor == "dr.a" and e.action == "dosing" and e.outcome == "granted" for e in log)


@pytest.mark.parametrize(
    ("change", "status", "field"),
    [
        ({"doses": [{"time_h": 0.0, "dose_mg": -1000.0, "duration_h": 1.0}]}, 422, "dose_mg"),
        ({"model": "gentamicin-nobody"}, 400, "model"),
        (
            {
                "doses": [{"time_h": 10.0, "dose_mg": 1000.0, "duration_h": 1.0}],
                "levels": [{"time_h": 5.0, "concentration_mg_l": 12.0}],
            },
            422,
            "levels[0].time_h",
        ),
        ({"covariates": {"weight_kg": 80.0}}, 400, "covariates.crcl_ml_min"),
        ({"covariates": {"weight_kg": -3.0, "crcl_ml_min": 60.0}}, 400, "covariates.weight_kg"),
        ({"covariates": {"wt": 80.0, "crcl_ml_min": 60.0}}, 400, "covariates.wt"),
        ({"candidates": [{"dose_mg": 1000.0, "every_h": 2.0, "duration_h": 2.0}]}, 422, "every_h"),
        (
            {"candidates": [{"dose_mg": 1000.0, "every_h": 0.001, "duration_h": 0.0}]},
            422,
            "every_h",
        ),
        ({"target": {"kind": "auc24", "low": 600.0, "high": 400.0}}, 422, "target.low"),
        ({"target": {"kind": "cmax", "low": 1.0, "high": 2.0}}, 422, "kind"),
        ({"n_draws": 10**6}, 422, "n_draws"),
    ],
)
def test_bad_input_is_a_clear_4xx(world, change, status, field):
    r = post(world, {**EXAMPLE, **change})
    assert r.status_code == status, r.text
    assert field in r.json()["detail"]
