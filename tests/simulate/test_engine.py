import dataclasses

import jax.numpy as jnp
import numpy as np
import pytest

from medtwin.errors import (
    ConfigurationError,
    ParameterError,
    ScheduleError,
    SimulationError,
    UnknownPatientError,
)
from medtwin.models import AbstractModel, Param, State, UvaPadova2008, load_patients
from medtwin.simulate import RK4, Adaptive, Schedule, simulate

DAY = np.arange(0, 1441, 5.0)
MEALS = Schedule().meal(60, 45).meal(360, 70)


@pytest.fixture(scope="module")
def three():
    return load_patients(["adolescent#001", "adult#004", "child#007"])


def run(vp, schedule=MEALS, t=DAY, **kw):
    return simulate(
        UvaPadova2008, schedule, t, params=vp.params, x0=vp.x0, patient_ids=vp.names, **kw
    )


def test_basal_only_stays_at_steady_state(three):
    sol = run(three, Schedule())
    g = sol["Gsub"]
    assert np.abs(g - g[:, :1]).max() < 1e-6
    # the basal delivered in each 5-minute interval is 5 x u2ss*BW/6000
    np.testing.assert_allclose(sol["insulin_delivered"][:, 0], 5 * three.basal_u_per_min)


def test_meals_raise_glucose_and_insulin_lowers_it(three):
    no_bolus = run(three)
    bolus = run(three, MEALS.bolus(60, 4.0).bolus(360, 6.0))
    assert (no_bolus["Gsub"].max(axis=1) > no_bolus["Gsub"][:, 0] + 30).all()
    assert (bolus["Gsub"].max(axis=1) < no_bolus["Gsub"].max(axis=1)).all()
    assert no_bolus["cho_announced"].sum(axis=1) == pytest.approx([115.0] * 3)


def test_chunking_does_not_change_the_result(three):
    whole = run(three)
    chunked = run(three, chunk_size=2)
    np.testing.assert_array_equal(whole["Gsub"], chunked["Gsub"])


def test_per_patient_schedules(three):
    sol = run(three, [Schedule().meal(60, 80), Schedule(), Schedule()])
    rise = sol["Gsub"].max(axis=1) - sol["Gsub"][:, 0]
    assert rise[0] > 50 and rise[1] < 1e-6 and rise[2] < 1e-6


def test_basal_rate_in_u_per_h_is_converted(three):
    vp = load_patients("adult#001")
    rate_u_per_h = float(vp.basal_u_per_min[0] * 60)
    explicit = run(vp, Schedule().basal(0, rate_u_per_h))
    factor = run(vp, Schedule().basal(0, factor=1.0))
    np.testing.assert_allclose(explicit["Gsub"], factor["Gsub"], rtol=1e-12)
    suspended = run(vp, Schedule().basal(0, factor=0.0))
    assert suspended["Gsub"][0, -1] > explicit["Gsub"][0, -1] + 20


def test_float32_tracks_float64(three):
    f64 = run(three)
    f32 = run(three, dtype="float32")
    assert f32["Gsub"].dtype == np.float32
    assert np.abs(f32["Gsub"] - f64["Gsub"]).max() < 0.5


def test_records_states_and_converts_to_pandas_and_xarray(three):
    sol = run(three, record="all")
    assert sol["Gp"].shape == (3, DAY.size)
    df = sol.to_pandas()
    assert len(df) == 3 * DAY.size and {"patient", "t_min", "Gsub", "Gp"} <= set(df.columns)
    ds = sol.to_xarray()
    assert ds["Gsub"].attrs["units"] == "mg/dL" and list(ds.patient.values) == list(three.names)


def test_continuing_from_the_final_state_matches_one_run(three):
    full = run(three, Schedule().meal(60, 45).meal(900, 30), t=np.arange(0, 1441, 5.0))
    first = run(three, Schedule().meal(60, 45), t=np.arange(0, 721, 5.0))
    second = simulate(
        UvaPadova2008,
        Schedule().meal(900, 30),
        np.arange(720, 1441, 5.0),
        params=three.params,
        x0=first.final_state,
    )
    np.testing.assert_allclose(second["Gsub"], full["Gsub"][:, 144:], rtol=1e-10)


def test_adaptive_solver_agrees_with_rk4():
    vp = load_patients("adult#002")
    t = np.arange(0, 181, 5.0)
    rk4 = run(vp, Schedule().meal(30, 50).bolus(30, 5), t=t, solver=RK4(dt=1.0, substeps=2))
    dopri = run(vp, Schedule().meal(30, 50).bolus(30, 5), t=t, solver=Adaptive(dt=1.0))
    assert np.abs(rk4["Gsub"] - dopri["Gsub"]).max() < 0.01


@dataclasses.dataclass(frozen=True)
class _Proportional:
    """A test controller: basal plus a bolus for announced carbohydrate, every sample."""

    controls = ("insulin",)
    basal: np.ndarray
    ratio: float = 10.0

    def arrays(self, n):
        return {"basal": self.basal, "ratio": self.ratio}

    def init(self, arrays):
        return {"calls": jnp.zeros_like(arrays["basal"])}

    def step(self, obs, state, arrays):
        bolus_u = obs.announced["cho"] / arrays["ratio"]
        rate = arrays["basal"] + bolus_u / obs.period
        return {"insulin": rate}, {"calls": state["calls"] + 1}


@dataclasses.dataclass(frozen=True)
class _Sampler:
    observation: str = "Gsub"
    sample_time: float = 5.0

    def noise(self, key, n_samples):
        return jnp.zeros(n_samples)

    def read(self, value, noise):
        return value + noise


def test_closed_loop_sees_announced_meals_once_per_sample(three):
    ctrl = _Proportional(basal=three.basal_u_per_min)
    sol = run(three, Schedule().meal(60, 50), controller=ctrl, sensor=_Sampler())
    delivered = sol["insulin_delivered"]
    basal_per_interval = 5 * three.basal_u_per_min[:, None]
    extra = delivered[:, :-1] - basal_per_interval
    # the 50 g announced during [60, 65) is bolused (5 U) over the next sample period [65, 70)
    np.testing.assert_allclose(extra[:, 13], 5.0, rtol=1e-12)
    assert np.abs(np.delete(extra, 13, axis=1)).max() < 1e-12
    np.testing.assert_allclose(sol["sensor"], sol["Gsub"], rtol=1e-12)


def test_closed_loop_equals_open_loop_with_the_same_insulin(three):
    ctrl = _Proportional(basal=three.basal_u_per_min)
    closed = run(three, Schedule().meal(60, 50), controller=ctrl, sensor=_Sampler())
    open_ = run(three, Schedule().meal(60, 50).bolus(65, 5.0, duration=5))
    np.testing.assert_allclose(closed["Gsub"], open_["Gsub"], rtol=1e-10)


@pytest.mark.parametrize(
    ("kwargs", "error", "message"),
    [
        ({"params": {"BW": np.nan}}, ParameterError, "'BW' is not finite"),
        ({"params": {"BW": -70.0}}, ParameterError, "outside the support"),
        ({"params": {"weight": 70.0}}, ParameterError, "no parameter"),
        ({"params": {"BW": np.ones(3)}, "n": 2}, ParameterError, "batch sizes disagree"),
        ({"x0": {"Gp": 100.0}}, ParameterError, "missing"),
        ({"t": np.array([0.0, 2.5, 5.0])}, ConfigurationError, "multiple of the solver step"),
        ({"t": np.array([0.0, 5.0, 7.0])}, ConfigurationError, "equally spaced"),
        ({"t": None}, ConfigurationError, "required"),
        ({"record": ["glucose"]}, ConfigurationError, "cannot record"),
        ({"dtype": "float16"}, ConfigurationError, "dtype"),
        ({"schedule": Schedule().meal(2000, 30)}, ScheduleError, "outside the simulated time"),
    ],
)
def test_bad_input_raises_a_named_error(kwargs, error, message):
    kw = {"schedule": Schedule(), "t": DAY} | kwargs
    with pytest.raises(error, match=message):
        simulate(UvaPadova2008, **kw)


def test_unknown_patient():
    with pytest.raises(UnknownPatientError, match="adult#011"):
        load_patients("adult#011")


class _Explodes(AbstractModel):
    """dx/dt = k x^2: finite-time blow-up, for the NaN guard."""

    reference = "test"
    time_unit = "min"
    states = (State("A", "mg"),)
    params = (Param("k", "1/min", 1.0),)

    def rhs(self, t, x, p, u):
        return {"A": p["k"] * x["A"] ** 2}


def test_non_finite_trajectories_raise_instead_of_returning_nan():
    with pytest.raises(SimulationError, match="non-finite for patient 0"):
        simulate(_Explodes, None, np.arange(0, 100, 1.0), x0={"A": 1.0})
