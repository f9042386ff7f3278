"""Tracking a simulated patient: truth is adult#001 with a 60% higher insulin sensitivity (Vmx).

The CGM is the truth's subcutaneous glucose plus Gaussian noise of SD 8 mg/dL every 5 minutes
for 24 h, with three logged meals and boluses (carb ratio of the catalogue).  Bounds were set from
measured values (seed 0; measured numbers in the comments) with a margin for platform noise.
"""

import numpy as np
import pytest

from medtwin.assimilate import EnsembleKalmanFilter, ParticleFilter
from medtwin.models import UvaPadova2008, load_patients
from medtwin.simulate import Schedule, simulate

H = 60.0
T = 24 * H
GRID = np.arange(0, T + 1, 5.0)
SECOND_HALF = GRID >= T / 2
UNLOGGED_AT = 15 * H
FILTERS = [EnsembleKalmanFilter, ParticleFilter]


@pytest.fixture(scope="module")
def scenario():
    vp = load_patients("adult#001")
    cr = vp.carb_ratio_g_per_u[0]
    logged = Schedule()
    for t, g in [(7 * H, 50), (12 * H, 70), (18.5 * H, 80)]:
        logged = logged.meal(t, g).bolus(t, g / cr)
    truth_params = dict(vp.params) | {"Vmx": vp.params["Vmx"] * 1.6}
    rng = np.random.default_rng(1)

    def truth(schedule):
        g = simulate(UvaPadova2008, schedule, GRID, params=truth_params, x0=vp.x0)["Gsub"][0]
        return g, g + 8.0 * rng.standard_normal(g.size)

    open_loop = simulate(UvaPadova2008, logged, GRID, params=vp.params, x0=vp.x0)["Gsub"][0]
    return {
        "vp": vp,
        "logged": logged,
        "truth_params": truth_params,
        "plain": truth(logged),
        "unlogged": truth(logged.meal(UNLOGGED_AT, 50)),
        "open_loop": open_loop,
    }


def run(f, ens, readings, schedule):
    means, infos = [float(ens.weights @ ens.observation())], []
    for k in range(1, GRID.size):
        ens = f.update(ens, GRID[k], readings[k], schedule)
        means.append(float(ens.weights @ ens.observation()))
        infos.append(ens.info)
    return ens, np.array(means), infos


def rmse(a, b, mask):
    return float(np.sqrt(np.mean((a[mask] - b[mask]) ** 2)))


@pytest.mark.parametrize("F", FILTERS)
def test_tracks_glucose_and_learns_insulin_sensitivity(F, scenario):
    vp, (truth, cgm) = scenario["vp"], scenario["plain"]
    f = F(n_members=500, seed=0)
    ens = f.init(vp.params, param_sd=0.3)
    ens, means, _ = run(f, ens, cgm, scenario["logged"])
    err = rmse(means, truth, SECOND_HALF)
    open_loop = rmse(scenario["open_loop"], truth, SECOND_HALF)  # 25.3 mg/dL
    assert err < 6.0  # measured: EnKF 2.9, PF 3.2 (the CGM itself: 7.8)
    assert err < 0.3 * open_loop
    vmx_true = scenario["truth_params"]["Vmx"][0]
    before = abs(np.log(vp.params["Vmx"][0] / vmx_true))  # 0.47
    after = abs(np.log(ens.mean(["Vmx"])["Vmx"] / vmx_true))  # measured: EnKF 0.07, PF 0.14
    assert after < 0.5 * before


@pytest.mark.parametrize("F", FILTERS)
def test_recovers_from_an_unannounced_meal(F, scenario):
    vp, (truth, cgm) = scenario["vp"], scenario["unlogged"]
    window = (GRID >= UNLOGGED_AT) & (GRID <= UNLOGGED_AT + 2 * H)
    later = (GRID >= UNLOGGED_AT + H) & (GRID <= UNLOGGED_AT + 3 * H)
    errors = {}
    for label, kwargs in {"on": {}, "off": {"meal_fraction": 0.0, "max_inflation": 1.0}}.items():
        f = F(n_members=500, seed=0, **kwargs)
        _, means, infos = run(f, f.init(vp.params, param_sd=0.3), cgm, scenario["logged"])
        errors[label] = np.abs(means - truth)
        if label == "on":
            fired = [i for i in infos if UNLOGGED_AT < i.t <= UNLOGGED_AT + 2 * H]
            assert sum(i.n_meal_members for i in fired) > 0
    # measured max error in the 2 h after the meal: EnKF 12 (off: 21), PF 14 (off: 20)
    assert errors["on"][window].max() < 18.0
    assert errors["on"][window].max() < errors["off"][window].max()
    # within an hour the error is back to the size of the sensor noise
    assert np.sqrt(np.mean(errors["on"][later] ** 2)) < 8.0


@pytest.mark.parametrize("F", FILTERS)
def test_a_surprising_reading_inflates_and_injects_meals(F, scenario):
    vp = scenario["vp"]
    kwargs = {"n_members": 500, "seed": 0}
    f = F(**kwargs)
    rigid = F(**kwargs, meal_fraction=0.0, max_inflation=1.0)
    ens = f.init(vp.params, param_sd=0.1)
    predicted = ens.observation()
    reading = float(predicted.mean() + 6 * np.hypot(predicted.std(), 8.0))
    a, b = f.update(ens, 5.0, reading), rigid.update(ens, 5.0, reading)
    assert a.info.normalized_innovation > 2.5 and a.info.inflation > 1.0 and b.info.inflation == 1.0
    assert 0.15 * 500 < a.info.n_meal_members < 0.35 * 500 and b.info.n_meal_members == 0
    assert (a.states["Qgut"] > 0).sum() == a.info.n_meal_members
    gap_a = abs(reading - a.weights @ a.observation())
    gap_b = abs(reading - b.weights @ b.observation())
    assert gap_a < gap_b


@pytest.mark.parametrize("F", FILTERS)
def test_tracks_from_the_population_prior(F, scenario):
    truth, cgm = scenario["plain"]
    f = F(n_members=500, seed=0)
    _, means, _ = run(f, f.init(None), cgm, scenario["logged"])
    # measured: EnKF 6.7, PF 6.4; the first hour of a prior-started EnKF is far off
    assert rmse(means, truth, SECOND_HALF) < 12.0
