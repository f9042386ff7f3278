"""Contract tests run over both filters: shapes, weights, determinism, time handling, schedules."""

import numpy as np
import pytest

from medtwin.assimilate import (
    Ensemble,
    EnsembleKalmanFilter,
    ParticleFilter,
    UpdateInfo,
    systematic_resample,
)
from medtwin.errors import ConfigurationError, ParameterError
from medtwin.models import UvaPadova2008, load_patients
from medtwin.simulate import Schedule, simulate

FILTERS = [EnsembleKalmanFilter, ParticleFilter]
N = 64


@pytest.fixture(scope="module")
def patient():
    return load_patients("adult#001")


@pytest.mark.parametrize("F", FILTERS)
def test_shapes_weights_and_info(F, patient):
    f = F(n_members=N, seed=3)
    ens = f.init(patient.params, param_sd=0.2)
    assert isinstance(ens, Ensemble) and ens.n == N and ens.t == 0.0 and ens.info is None
    names = set(UvaPadova2008.state_names()) | {s.name for s in UvaPadova2008.discrete_states}
    sched = Schedule().meal(10, 40).bolus(10, 4)
    for k in range(1, 7):
        ens = f.update(ens, 5.0 * k, 150.0 + 5 * k, sched)
        assert set(ens.states) == names
        assert set(ens.params) == set(UvaPadova2008.param_names())
        assert all(v.shape == (N,) and np.isfinite(v).all() for v in ens.states.values())
        assert all(v.shape == (N,) and (v > 0).all() for v in ens.params.values())
        assert ens.weights.shape == (N,) and ens.weights.sum() == pytest.approx(1.0)
        assert (ens.weights >= 0).all()
        for s in ("Qsto1", "Qsto2", "Qgut", "Gp", "Gt", "Gs", "Ip", "Isc1", "Isc2"):
            assert (ens.states[s] >= 0).all(), s
    assert isinstance(ens.info, UpdateInfo) and ens.info.t == 30.0 and ens.info.reading == 180.0
    assert 1.0 <= ens.info.ess <= N
    assert ens.step == 6
    assert ens.observation().shape == (N,)
    q = ens.quantiles((0.1, 0.5, 0.9))["Gsub"]
    assert q[0] <= q[1] <= q[2]
    assert set(ens.mean()) == names | set(UvaPadova2008.param_names())


@pytest.mark.parametrize("F", FILTERS)
def test_same_seed_same_result(F, patient):
    def run(seed):
        f = F(n_members=N, seed=seed)
        ens = f.init(None)
        for k, y in enumerate([130.0, 160.0, 240.0, 120.0], start=1):
            ens = f.update(ens, 5.0 * k, y)
        return ens

    a, b, c = run(1), run(1), run(2)
    for k in a.states:
        np.testing.assert_array_equal(a.states[k], b.states[k])
    np.testing.assert_array_equal(a.params["Vmx"], b.params["Vmx"])
    np.testing.assert_array_equal(a.weights, b.weights)
    assert not np.array_equal(a.params["Vmx"], c.params["Vmx"])


@pytest.mark.parametrize("F", FILTERS)
def test_noise_free_propagation_continues_the_engine_exactly(F, patient):
    # whole schedule passed every time: only events acting on each window apply, a basal change
    # is carried into later windows and a 30-minute bolus is split across them
    within = Schedule().meal(12, 45).bolus(12, 4, duration=30).basal(33, factor=0.5)
    sched = within.meal(200, 30)
    f = F(n_members=4, param_drift=0.0, process_noise=0.0)
    ens = f.init(patient.params)
    for t in np.arange(5.0, 121.0, 5.0):
        ens = f.propagate(ens, t, sched)
    ref = simulate(UvaPadova2008, within, np.arange(0, 121.0, 5.0), params=patient.params)
    np.testing.assert_allclose(ens.observation()[0], ref["Gsub"][0, -1], rtol=1e-9)
    np.testing.assert_allclose(ens.states["Isc1"][0], ref.final_state["Isc1"][0], rtol=1e-9)


@pytest.mark.parametrize("F", FILTERS)
def test_times_round_to_the_solver_grid_and_must_increase(F, patient):
    f = F(n_members=8)
    ens = f.update(f.init(patient.params), 4.6, 140.0)
    assert ens.t == 5.0
    ens = f.update(ens, 5.2, 141.0)  # same minute: analysis only
    assert ens.t == 5.0
    with pytest.raises(ConfigurationError, match="time order"):
        f.update(ens, 1.0, 140.0)
    with pytest.raises(ConfigurationError, match="finite"):
        f.update(ens, 10.0, float("nan"))
    with pytest.raises(ConfigurationError, match="not made by this filter"):
        F(n_members=9).update(ens, 10.0, 140.0)


@pytest.mark.parametrize("F", FILTERS)
def test_init_sources(F, patient):
    class Posterior:
        def sample(self, n, seed):
            rng = np.random.default_rng(seed)
            return {"Vmx": patient.params["Vmx"][0] * np.exp(0.1 * rng.standard_normal(n))}

    f = F(n_members=16, seed=5)
    ens = f.init(Posterior())
    assert np.ptp(ens.params["Vmx"]) > 0 and np.ptp(ens.params["kp1"]) == 0
    x0 = {k: v[0] for k, v in patient.x0.items()}
    ens = f.init(patient.params, x0=x0, t0=60.0, param_sd={"Vmx": 0.3})
    assert ens.t == 60.0 and np.ptp(ens.states["Gp"]) == 0 and np.ptp(ens.params["Vmx"]) > 0
    with pytest.raises(ParameterError):
        f.init({"Vmx": np.ones(3)})
    with pytest.raises(ParameterError):
        f.init({"nope": 1.0})


@pytest.mark.parametrize(
    "kwargs",
    [
        {"estimate": ("BW", "nope")},
        {"n_members": 1},
        {"inflation": 0.9},
        {"obs_sd_mg_dl": 0.0},
        {"meal_fraction": 1.5},
        {"update_states": ("Gp", "nope")},
        {"transforms": {"Gp": "sqrt"}},
        {"process_noise": {"nope": 0.1}},
    ],
)
def test_bad_settings_are_rejected(kwargs):
    with pytest.raises((ConfigurationError, ParameterError)):
        EnsembleKalmanFilter(**kwargs)


def test_particle_filter_settings():
    with pytest.raises(ConfigurationError):
        ParticleFilter(resample_threshold=1.5)
    with pytest.raises(ConfigurationError):
        ParticleFilter(roughening=-1.0)


def test_systematic_resample_counts():
    import jax

    w = np.array([0.5, 0.25, 0.125, 0.125, 0.0])
    for s in range(5):
        idx = np.asarray(systematic_resample(jax.random.PRNGKey(s), w))
        counts = np.bincount(idx, minlength=w.size)
        # systematic resampling keeps each count within one of N * w
        assert (np.abs(counts - w.size * w) < 1).all()


def test_weighted_quantiles(patient):
    f = ParticleFilter(n_members=1000)
    ens = f.init(patient.params, param_sd={"Vmx": 0.5})
    v = ens.params["Vmx"]
    q = ens.quantiles((0.25, 0.5, 0.75), names=["Vmx"])["Vmx"]
    np.testing.assert_allclose(q, np.quantile(v, (0.25, 0.5, 0.75)), rtol=0.02)
    heavy = Ensemble(
        ens.model, 0.0, ens.states, ens.params, np.where(v > np.median(v), 2.0, 0.0) / 1000
    )
    assert heavy.quantiles((0.01,), names=["Vmx"])["Vmx"][0] >= np.median(v) * 0.999
