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
