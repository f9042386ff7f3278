"""UVA/Padova 2008 against simglucose 0.2.11, the implementation it reproduces.

Reference trajectories: tests/models/data/uva_padova_simglucose_reference.csv.gz, made by
tools/simglucose_reference.py (``make reference``) running simglucose 0.2.11 in its own venv, for
the 30 virtual patients under the scenarios of uva_padova_scenarios.json.  Acceptance (issue #2):
max |dBG| <= 0.5 mg/dL over 24 h for every patient and scenario.
"""

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from medtwin.control import BasalBolus
from medtwin.devices import CGMSensor, InsulinPump
from medtwin.models import UvaPadova2008, load_patients, patient_names
from medtwin.simulate import Schedule, simulate

DATA = Path(__file__).parent / "data"
TOLERANCE_MG_DL = 0.5


@pytest.fixture(scope="module")
def scenarios():
    return json.loads((DATA / "uva_padova_scenarios.json").read_text())


@pytest.fixture(scope="module")
def reference():
    return pd.read_csv(DATA / "uva_padova_simglucose_reference.csv.gz")


def _schedules(spec, vp):
    """One schedule per patient: meal boluses depend on each patient's carbohydrate ratio."""
    base = Schedule()
    for t, g in spec["meals"]:
        base = base.meal(t, g)
    for t, u in spec["boluses"]:
        base = base.bolus(t, u)
    for t, f in spec["basal_segments"]:
        base = base.basal(t, factor=f)
    if not spec["meal_bolus"]:
        return base
    out = []
    for cr in vp.carb_ratio_g_per_u:
        s = base
        for t, g in spec["meals"]:
            s = s.bolus(t, g / cr)
        out.append(s)
    return out


def test_the_reference_covers_every_patient_and_scenario(scenarios, reference):
    assert set(reference.scenario) == set(scenarios["scenarios"])
    assert set(reference.patient) == set(patient_names())
    assert len(reference) == len(scenarios["scenarios"]) * 30 * 289


@pytest.mark.parametrize(
    "name",
    [
        "basal_only",
        "meals_no_bolus",
        "meals_with_bolus",
        "correction_bolus",
        "basal_bolus_controller",
    ],
)
def test_subcutaneous_glucose_matches_simglucose(name, scenarios, reference):
    spec = scenarios["scenarios"][name]
    vp = load_patients()
    kw = {}
    if spec["controller"]:
        ctl = spec["controller"]
        kw = {
            "controller": BasalBolus.for_patients(vp, target_mg_dl=ctl["target_mg_dl"]),
            "sensor": CGMSensor.ideal(sample_time=ctl["sensor_sample_time_min"]),
            "pump": InsulinPump.named(ctl["pump"]),
        }
    t = np.arange(0, scenarios["duration_min"] + 1, scenarios["output_every_min"], dtype=float)
    sol = simulate(
        UvaPadova2008,
        _schedules(spec, vp),
        t,
        params=vp.params,
        x0=vp.x0,
        patient_ids=vp.names,
        **kw,
    )
    ref = (
        reference[reference.scenario == name]
        .pivot(index="patient", columns="t_min", values="bg_mg_dl")
        .loc[list(vp.names)]
    )
    np.testing.assert_array_equal(ref.columns.to_numpy(float), t)
    error = np.abs(sol["Gsub"] - ref.to_numpy())
    worst = np.unravel_index(error.argmax(), error.shape)
    assert error.max() <= TOLERANCE_MG_DL, (
        f"{name}: {vp.names[worst[0]]} differs by {error.max():.4f} mg/dL at t={t[worst[1]]:g} min"
    )
    # the scenario really moved glucose (a test that cannot fail would not)
    if name != "basal_only":
        assert np.ptp(ref.to_numpy(), axis=1).min() > 5.0


def test_initial_state_is_simglucose_steady_state():
    # the analytic fasting steady state reproduces the x0 shipped with the 30 patients
    import jax.numpy as jnp

    vp = load_patients()
    x = UvaPadova2008().initial_state({k: jnp.asarray(v) for k, v in vp.params.items()})
    for name, value in vp.x0.items():
        np.testing.assert_allclose(np.asarray(x[name]), value, rtol=1e-8, atol=1e-8)


def test_meals_are_eaten_at_five_grams_per_minute():
    vp = load_patients("adult#001")
    sol = simulate(
        UvaPadova2008,
        Schedule().meal(0, 23),
        np.arange(0, 11, 1.0),
        params=vp.params,
        x0=vp.x0,
        record=["Qsto1"],
    )
    # 23 g: 5 g/min for four minutes, then 3 g; the stomach fills with 5000 mg/min less emptying
    assert sol.final_state["planned_meal"][0] == 0.0
    assert sol.final_state["last_foodtaken"][0] == pytest.approx(23.0)
    assert sol["Qsto1"][0, 1] == pytest.approx(5000.0, rel=0.05)
