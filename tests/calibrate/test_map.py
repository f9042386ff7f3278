"""MAP personalisation: recovery of known parameters of virtual patients, errors, results."""

from __future__ import annotations

import jax.numpy as jnp
import numpy as np
import pandas as pd
import pytest

from medtwin.calibrate import LaplacePosterior, MAPEstimator
from medtwin.errors import MedtwinError, NotCalibratedError, ParameterError
from medtwin.history import PatientHistory
from medtwin.models import UvaPadova2008, load_patients
from medtwin.simulate import Schedule, trajectory_function

ORIGIN = pd.Timestamp("2026-01-01", tz="UTC")
DAYS = 2  # every fit here has the same length, so they share one compilation


def synthetic(
    patient: str, factors: dict[str, float], seed: int, noise_sd: float = 10.0
) -> tuple[PatientHistory, dict[str, float], dict[str, float]]:
    """A virtual patient with some parameters scaled: 3 meals a day with boluses, 5-min CGM."""
    rng = np.random.default_rng(seed)
    vp = load_patients(patient)
    base = {k: float(v[0]) for k, v in vp.params.items()}
    truth = base | {k: base[k] * f for k, f in factors.items()}
    cr = float(vp.carb_ratio_g_per_u[0])
    schedule, rows = Schedule(), []
    for day in range(DAYS):
        for hour, carbs in ((7, 45), (12.5, 70), (19, 80)):
            t = day * 1440 + hour * 60 + int(rng.integers(-30, 31))
            g = float(round(carbs * rng.uniform(0.7, 1.3)))
            u = round(g / cr * rng.uniform(0.8, 1.2), 1)
            schedule = schedule.meal(t, g).bolus(t, u)
            rows += [(t, "carbs", g), (t, "bolus", u)]
    grid = np.arange(0, DAYS * 1440 + 1, 1.0)
    p = {k: jnp.asarray([v]) for k, v in truth.items()}
    glucose = np.asarray(
        trajectory_function(UvaPadova2008, schedule, grid, record="Gsub")(
            p, UvaPadova2008().initial_state(p)
        )["Gsub"][0]
    )
    t_cgm = grid[::5]
    cgm = pd.DataFrame(
        {
            "time": ORIGIN + pd.to_timedelta(t_cgm, unit="min"),
            "glucose_mg_dl": glucose[::5] + rng.normal(0.0, noise_sd, t_cgm.size),
        }
    )
    events = pd.DataFrame(
        {
            "time": [ORIGIN + pd.Timedelta(minutes=r[0]) for r in rows],
            "kind": [r[1] for r in rows],
            "value": [r[2] for r in rows],
        }
    )
    return PatientHistory.from_frames(cgm, events), truth, base


@pytest.fixture(scope="module")
def fitted() -> tuple[MAPEstimator, dict[str, float]]:
    history, truth, base = synthetic("adult#003", {"Vmx": 1.4, "kp3": 0.8}, seed=3)
    return MAPEstimator(base_params=base, error_order=0).fit(history), truth


def test_recovers_insulin_sensitivity_within_its_interval(fitted) -> None:
    est, truth = fitted
    ci = est.posterior_.interval(0.95)
    assert ci.loc["Vmx", "lower"] <= truth["Vmx"] <= ci.loc["Vmx", "upper"]
    assert est.params_["Vmx"] == pytest.approx(truth["Vmx"], rel=0.15)
    assert est.converged_
    assert est.obs_sd_mg_dl_ == pytest.approx(10.0, rel=0.15)
    # fixed parameters stay at the base values
    assert est.params_["BW"] == truth["BW"] and est.params_["ki"] == truth["ki"]


def test_results_have_the_documented_shape(fitted) -> None:
    est, _ = fitted
    table = est.identifiability_
    assert list(table.index) == ["Vmx", "kp3", "kp1", "kabs"]
    assert list(table.columns) == [
        "estimate",
        "prior_median",
        "prior_sd_log",
        "posterior_sd_log",
        "sd_ratio",
        "identified",
    ]
    assert table.loc["Vmx", "identified"]
    np.testing.assert_allclose(table["sd_ratio"], table["posterior_sd_log"] / table["prior_sd_log"])
    assert set(est.params_) == set(UvaPadova2008.param_names())
    assert est.n_readings_ == DAYS * 288 + 1
    res = est.residuals_
    assert list(res.columns) == ["time", "observed", "predicted", "fitted"]
    assert float((res["observed"] - res["predicted"]).std()) < 13.0
    draws = est.posterior_.sample(500, seed=1)
    assert draws["Vmx"].shape == (500,)
    assert np.median(np.log(draws["Vmx"])) == pytest.approx(np.log(est.params_["Vmx"]), abs=0.02)
    np.testing.assert_allclose(np.diag(est.posterior_.corr), 1.0)


def test_results_before_fit_raise_not_calibrated() -> None:
    est = MAPEstimator()
    with pytest.raises(NotCalibratedError, match="before fit"):
        _ = est.params_
    with pytest.raises(NotCalibratedError):
        _ = est.posterior_
    with pytest.raises(AttributeError):
        _ = est.no_such_thing


def _tiny_history() -> PatientHistory:
    t = pd.date_range(ORIGIN, periods=30, freq="5min")
    return PatientHistory.from_frames(pd.DataFrame({"time": t, "glucose_mg_dl": 120.0}))


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"estimate": ("Vmx", "nope")}, "no parameter 'nope'"),
        ({"estimate": ("Vmx", "Fsnc")}, "Fixed"),
        ({"estimate": ("Vmx", "Vmx")}, "more than once"),
        ({"base_params": {"Vmx": -1.0}}, "must be > 0"),
        ({"prior_scale": 0.0}, "prior_scale"),
        ({"grid_min": 2.5}, "multiple of the solver step"),
    ],
)
def test_bad_settings_are_rejected(kwargs, match) -> None:
    with pytest.raises(MedtwinError, match=match):
        MAPEstimator(**kwargs).fit(_tiny_history())


def test_bad_histories_are_rejected() -> None:
    empty = PatientHistory.from_frames(pd.DataFrame({"time": [], "glucose_mg_dl": []}))
    with pytest.raises(ParameterError, match="no CGM readings"):
        MAPEstimator().fit(empty)
    with pytest.raises(ParameterError, match="PatientHistory"):
        MAPEstimator().fit(pd.DataFrame())  # type: ignore[arg-type]
    with pytest.raises(ParameterError, match="readings to fit"):
        MAPEstimator(warmup_min=140).fit(_tiny_history())


def test_laplace_posterior_checks_shapes() -> None:
    with pytest.raises(ParameterError, match="shape"):
        LaplacePosterior(("a", "b"), np.zeros(2), np.eye(3))


@pytest.mark.slow
def test_coverage_of_insulin_sensitivity_over_virtual_patients() -> None:
    """The done-when of issue 3: truth inside the 95% interval in >= 90% of cases."""
    rng = np.random.default_rng(2026)
    hits = 0
    n = 10
    for i in range(n):
        factors = {k: float(np.exp(rng.normal(0.0, 0.3))) for k in ("Vmx", "kp3")}
        history, truth, base = synthetic(f"adult#{i + 1:03d}", factors, seed=100 + i)
        ci = MAPEstimator(base_params=base, error_order=0).fit(history).posterior_.interval()
        hits += bool(ci.loc["Vmx", "lower"] <= truth["Vmx"] <= ci.loc["Vmx", "upper"])
    assert hits >= 0.9 * n
