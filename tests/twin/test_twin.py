import numpy as np
import pandas as pd
import pytest

from medtwin.assimilate import EnsembleKalmanFilter
from medtwin.errors import ConfigurationError, NotCalibratedError, ParameterError
from medtwin.history import PatientHistory
from medtwin.models import UvaPadova2008
from medtwin.simulate import Schedule
from medtwin.twin import Twin, make_bench


class CatalogueCalibrator:
    """Stands in for personalisation: the bench patient's catalogue parameters, 20% log spread."""

    def __init__(self, params):
        self.params = params

    def fit(self, history):
        self.posterior_ = self
        return self

    def sample(self, n, seed=0):
        rng = np.random.default_rng(seed)
        out = {k: np.full(n, v) for k, v in self.params.items()}
        for k in ("Vmx", "kp1", "kabs"):
            out[k] = self.params[k] * np.exp(0.2 * rng.standard_normal(n))
        return out


@pytest.fixture(scope="module")
def patient():
    return make_bench(n_patients=1, days=2, seed=11)[0]


@pytest.fixture(scope="module")
def fitted(patient):
    from medtwin.models import load_patients

    vp = load_patients(patient.based_on)
    base = {k: float(v[0]) for k, v in vp.params.items()}
    h = patient.history
    day1 = h.between(h.start, h.start + pd.Timedelta(hours=20))
    twin = Twin(
        UvaPadova2008,
        calibrator=CatalogueCalibrator(base),
        filter=EnsembleKalmanFilter(UvaPadova2008, n_members=100, seed=2),
    )
    return twin.fit(day1)


def test_forecast_bands_are_nested_around_the_median(fitted):
    fc = fitted.forecast(120)
    assert fc.members.shape == (100, 25)
    assert fc.t_min[0] == 0 and fc.t_min[-1] == 120
    lo95, hi95 = fc.bands[0.95]
    lo50, hi50 = fc.bands[0.5]
    assert (lo95 <= lo50 + 1e-9).all() and (lo50 <= fc.median + 1e-9).all()
    assert (fc.median <= hi50 + 1e-9).all() and (hi50 <= hi95 + 1e-9).all()
    assert (hi95 - lo95)[-1] > (hi95 - lo95)[0]  # uncertainty grows with the horizon
    assert list(fc.to_pandas().columns[:2]) == ["time", "median"]


def test_forecast_tracks_the_patient(fitted, patient):
    # the twin's current estimate sits close to the truth it never saw
    now = fitted.now
    truth = patient.truth.set_index("time")["glucose_mg_dl"]
    fc = fitted.forecast(30, with_sensor_noise=False)
    assert abs(fc.median[0] - truth.loc[now]) < 25.0


def test_bolus_scenarios_order_as_physiology_says(fitted):
    table = fitted.compare(
        {"none": None, "4 U": Schedule().bolus(0, 4.0), "8 U": Schedule().bolus(0, 8.0)}, 240
    )
    assert table.loc["8 U", "nadir_mg_dl"] < table.loc["4 U", "nadir_mg_dl"]
    assert table.loc["4 U", "nadir_mg_dl"] < table.loc["none", "nadir_mg_dl"]
    assert (table["nadir_mg_dl_lo"] <= table["nadir_mg_dl"]).all()
    hypo_big = fitted.risk("hypoglycaemia", within_min=240, scenario=Schedule().bolus(0, 15.0))
    hypo_none = fitted.risk("hypoglycaemia", within_min=240)
    assert 0.0 <= hypo_none < hypo_big <= 1.0


def test_save_and_load_restore_the_same_forecast(fitted, tmp_path):
    path = fitted.save(tmp_path / "twin.npz")
    restored = Twin.load(path)
    a = fitted.forecast(60, with_sensor_noise=False)
    b = restored.forecast(60, with_sensor_noise=False)
    np.testing.assert_array_equal(a.members, b.members)
    assert restored.now == fitted.now


def test_bytes_round_trip_and_garbage_is_refused(fitted):
    restored = Twin.from_bytes(fitted.to_bytes())
    a = fitted.forecast(30, with_sensor_noise=False)
    np.testing.assert_array_equal(a.members, restored.forecast(30, with_sensor_noise=False).members)
    with pytest.raises(ConfigurationError, match="not a saved medtwin twin"):
        Twin.from_bytes(b"not a twin", name="blob")


def test_a_twin_started_from_the_prior_is_usable_at_once(patient):
    from medtwin.assimilate import ParticleFilter
    from medtwin.calibrate import PriorCalibrator

    h = patient.history
    first_hours = h.between(h.start, h.start + pd.Timedelta(hours=2))
    twin = Twin(calibrator=PriorCalibrator(), filter=ParticleFilter(n_members=50)).fit(first_hours)
    fc = twin.forecast(60)
    assert np.isfinite(fc.median).all()
    assert twin.posterior_.names == ("Vmx", "kp3", "kp1", "kabs")


def test_observe_is_idempotent_for_resubmitted_readings(patient, fitted, tmp_path):
    twin = Twin.load(fitted.save(tmp_path / "t.npz"))
    h = patient.history
    nxt = h.between(fitted.now + pd.Timedelta(minutes=1), fitted.now + pd.Timedelta(minutes=31))
    twin.observe(nxt)
    t_after = twin.ensemble_.t
    state = {k: v.copy() for k, v in twin.ensemble_.states.items()}
    twin.observe(nxt)
    assert twin.ensemble_.t == t_after
    for k, v in state.items():
        np.testing.assert_array_equal(twin.ensemble_.states[k], v)


def test_errors():
    with pytest.raises(NotCalibratedError):
        Twin().forecast(30)
    empty = PatientHistory.from_frames(
        pd.DataFrame({"time": pd.to_datetime(["2026-01-01T00:00Z"], utc=True),
                      "glucose_mg_dl": [100.0]})
    )  # fmt: skip
    with pytest.raises(ParameterError, match="at least an hour"):
        Twin().fit(empty)


def test_unknown_risk_event(fitted):
    with pytest.raises(ConfigurationError, match="unknown event"):
        fitted.risk("ketoacidosis")


class _WithBase(CatalogueCalibrator):
    """A calibrator that, like MAPEstimator, has params_ besides a posterior of a few."""

    def fit(self, history):
        self.params_ = dict(self.params) | {"BW": 51.5}
        self.posterior_ = self
        return self

    def sample(self, n, seed=0):
        return {"Vmx": np.full(n, 0.04)}


def test_the_calibrators_other_parameters_reach_the_ensemble(patient):
    from medtwin.models import load_patients

    vp = load_patients(patient.based_on)
    base = {k: float(v[0]) for k, v in vp.params.items()}
    h = patient.history
    twin = Twin(
        UvaPadova2008,
        calibrator=_WithBase(base),
        filter=EnsembleKalmanFilter(UvaPadova2008, estimate=("Vmx",), n_members=20, seed=1),
    ).fit(h.between(h.start, h.start + pd.Timedelta(hours=2)))
    assert (twin.ensemble_.params["BW"] == 51.5).all()
    assert twin.ensemble_.params["kp3"][0] == pytest.approx(base["kp3"])


def _prior_pf_twin(seed, n_members=40):
    from medtwin.assimilate import ParticleFilter
    from medtwin.calibrate import PriorCalibrator

    return Twin(
        calibrator=PriorCalibrator(),
        filter=ParticleFilter(n_members=n_members, seed=seed),
        seed=seed,
    )


def _with_events(h, events):
    frame = pd.DataFrame(events, columns=["time", "kind", "value"])
    frame["time"] = pd.to_datetime(frame["time"], utc=True)
    return PatientHistory.from_frames(h.cgm, pd.concat([h.events, frame], ignore_index=True))


def test_observe_many_and_forecast_many_equal_one_twin_at_a_time(monkeypatch):
    import medtwin.assimilate
    from medtwin.assimilate import particle
    from medtwin.twin._twin import forecast_many, observe_many

    batched_runs = []

    def counted(fn):
        def wrapper(*args, **kwargs):
            batched_runs.append(fn.__name__)
            return fn(*args, **kwargs)

        return wrapper

    monkeypatch.setattr(particle, "run_steps", counted(particle.run_steps))
    batched_sim = counted(medtwin.assimilate.simulate_members)
    monkeypatch.setattr(medtwin.assimilate, "simulate_members", batched_sim)

    patients = make_bench(n_patients=3, days=1, seed=5)
    starts, news = [], []
    for k, p in enumerate(patients):
        h = p.history
        t0 = h.start
        first = h.between(t0, t0 + pd.Timedelta(hours=2))
        # different basal rates per patient, set before the batch and (patient 1) inside it
        first = _with_events(first, [(t0 + pd.Timedelta(minutes=30), "basal", 0.6 + 0.4 * k)])
        nxt = h.between(
            t0 + pd.Timedelta(hours=2, minutes=1), t0 + pd.Timedelta(hours=2, minutes=31)
        )
        if k == 1:
            at = t0 + pd.Timedelta(hours=2, minutes=12)
            nxt = _with_events(nxt, [(at, "bolus", 3.0), (at, "carbs", 40.0), (at, "basal", 1.5)])
        if k == 2:  # fewer readings: the twins' updates fall out of step
            nxt = PatientHistory.from_frames(nxt.cgm.iloc[::2], nxt.events)
        starts.append(first)
        news.append(nxt)
    one = [_prior_pf_twin(10 + k).fit(h) for k, h in enumerate(starts)]
    many = [_prior_pf_twin(10 + k).fit(h) for k, h in enumerate(starts)]
    for twin, nxt in zip(one, news, strict=True):
        twin.observe(nxt)
    assert observe_many(many, news) == many
    assert batched_runs.count("run_steps") >= 3  # the twins were updated together
    assert len({twin.basal_u_per_h_ for twin in many}) == 3
    for a, b in zip(one, many, strict=True):
        assert a.ensemble_.t == b.ensemble_.t and a.ensemble_.step == b.ensemble_.step
        assert a.n_readings_ == b.n_readings_
        np.testing.assert_allclose(b.ensemble_.weights, a.ensemble_.weights, rtol=1e-9, atol=1e-15)
        for k in a.ensemble_.states:
            np.testing.assert_allclose(b.ensemble_.states[k], a.ensemble_.states[k], rtol=1e-9)
        for k in a.ensemble_.params:
            np.testing.assert_allclose(b.ensemble_.params[k], a.ensemble_.params[k], rtol=1e-9)
        assert b.ensemble_.info.resampled == a.ensemble_.info.resampled
        assert b.filter_.ess_ == pytest.approx(a.filter_.ess_, rel=1e-9)
    # a pending carbohydrate event lies inside one twin's forecast
    before = one[0].forecast(60.0, with_sensor_noise=False).members
    many[0]._pending_events = one[0]._pending_events = pd.DataFrame(
        {"time": [one[0].now + pd.Timedelta(minutes=20)], "kind": ["carbs"], "value": [50.0]}
    )
    for noise in (False, True):
        batched_runs.clear()
        batched = forecast_many(many, 60.0, with_sensor_noise=noise)
        for a, fb in zip(one, batched, strict=True):
            fa = a.forecast(60.0, with_sensor_noise=noise)
            assert (fa.time == fb.time).all()
            np.testing.assert_allclose(fb.members, fa.members, rtol=1e-9)
            np.testing.assert_allclose(fb.median, fa.median, rtol=1e-9)
            for level in fa.bands:
                np.testing.assert_allclose(fb.bands[level], fa.bands[level], rtol=1e-9)
        assert batched_runs == ["simulate_members"]  # one engine run for the three forecasts
    eaten = forecast_many(many, 60.0, with_sensor_noise=False)[0].members
    assert eaten[:, -1].mean() > before[:, -1].mean() + 10


def test_fit_without_assimilating_then_observe_is_fit(patient):
    from medtwin.assimilate import ParticleFilter
    from medtwin.calibrate import PriorCalibrator

    h = patient.history.between(
        patient.history.start, patient.history.start + pd.Timedelta(hours=3)
    )

    def twin():
        return Twin(
            calibrator=PriorCalibrator(), filter=ParticleFilter(n_members=40, seed=3), seed=3
        )

    whole = twin().fit(h)
    staged = twin().fit(h, assimilate=False)
    assert staged.now == h.start
    staged.observe(h)
    assert staged.now == whole.now and staged.n_readings_ == whole.n_readings_
    a = whole.forecast(60, with_sensor_noise=False).members
    b = staged.forecast(60, with_sensor_noise=False).members
    np.testing.assert_allclose(a, b, rtol=1e-12)


def test_a_resubmitted_bolus_is_not_given_twice(patient):
    from medtwin.assimilate import ParticleFilter
    from medtwin.calibrate import PriorCalibrator

    h = patient.history
    start = h.start
    first = h.between(start, start + pd.Timedelta(hours=2))
    bolus_at = start + pd.Timedelta(hours=2, minutes=2)
    events = pd.DataFrame({"time": [bolus_at], "kind": ["bolus"], "value": [5.0]})

    def twin():
        t = Twin(calibrator=PriorCalibrator(), filter=ParticleFilter(n_members=40, seed=1), seed=1)
        return t.fit(first)

    def window(a, b):
        cgm = h.between(start + pd.Timedelta(a), start + pd.Timedelta(b)).cgm
        return PatientHistory.from_frames(cgm, events)

    once, again = twin(), twin()
    once.observe(window("2h", "2h30min"))
    again.observe(window("2h", "2h30min"))
    # the next data set comes with the same bolus (a service re-reads events it already had)
    once.observe(PatientHistory.from_frames(window("2h30min", "3h").cgm))
    again.observe(window("2h30min", "3h"))
    np.testing.assert_allclose(
        once.forecast(60, with_sensor_noise=False).members,
        again.forecast(60, with_sensor_noise=False).members,
        rtol=1e-12,
    )
