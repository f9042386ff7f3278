"""Dose events on the engine: agreement with the closed form, exact steady state, behaviour.

Done-when (issue 5): closed form and ODE agree to < 1e-6 relative error for 1/2/3 compartments x
bolus/infusion/oral with lag and F x single dose/multiple dose/steady state.  One run per model
holds the nine (route x regimen) cases as nine subjects with their own dose tables.
"""

import numpy as np
import pytest

from medtwin.control import BasalBolus
from medtwin.errors import ConfigurationError, ScheduleError, SimulationError
from medtwin.models import UvaPadova2008, load_patients
from medtwin.models.pk import (
    Dose,
    DoseTable,
    MichaelisMenten,
    OneCompartment,
    OneCompartmentOral,
    OneCompartmentOralIndirectResponseIII,
    Regimen,
    ThreeCompartment,
    ThreeCompartmentOral,
    TwoCompartment,
    TwoCompartmentOral,
    concentration,
)
from medtwin.simulate import RK4, simulate, simulate_doses

T = np.linspace(0.0, 72.0, 289)[1:]  # every 15 min for 3 days, doses every 12 h
ROUTES = {"bolus": (2, 0.0), "infusion": (2, 1.5), "oral": (1, 0.0)}  # (CMT on oral models, h)


def _cases(iv_cmt):
    """One subject per (route, regimen): single dose, six doses, steady state then six doses."""
    names, subjects = [], []
    for route, (cmt, duration) in ROUTES.items():
        cmt = iv_cmt if iv_cmt and route != "oral" else cmt
        if iv_cmt and route == "oral":
            continue
        for regimen, extra in (
            ("single", {}),
            ("multiple", {"addl": 5}),
            ("ss", {"addl": 5, "ss": 1}),
        ):
            names.append(f"{route}/{regimen}")
            ii = 12.0 if extra else 0.0
            subjects.append([Dose(0.0, 100.0, cmt, duration, ii_h=ii, **extra)])
    return names, DoseTable.from_doses(subjects)


@pytest.mark.parametrize(
    ("cls", "iv_cmt"),
    [
        (OneCompartmentOral, 0),
        (TwoCompartmentOral, 0),
        (ThreeCompartmentOral, 0),
        (OneCompartment, 1),
        (TwoCompartment, 1),
        (ThreeCompartment, 1),
    ],
    ids=lambda v: getattr(v, "__name__", str(v)),
)
def test_ode_agrees_with_the_closed_form(cls, iv_cmt):
    params = dict(cls.defaults())
    if "F" in params:
        params.update(F=0.7, ALAG=0.3)  # the oral doses are lagged and incompletely absorbed
    names, table = _cases(iv_cmt)
    closed = np.asarray(concentration(cls, params, table, T))
    ode = simulate(cls, table, T, params=params)["Cc"]  # default solver: RK4 steps <= 0.05 h
    assert np.all(closed[:, -1] > 1e-3)  # every case still has drug on board to compare
    zero = closed == 0  # before the lag time both are exactly zero
    rel = np.abs(ode - closed) / np.where(zero, 1.0, np.abs(closed))
    worst = {name: float(r.max()) for name, r in zip(names, rel, strict=True)}
    assert max(worst.values()) < 1e-6, worst


def test_steady_state_on_the_ode_path_is_the_analytic_accumulation():
    # C_ss(t) = D/V exp(-k t) / (1 - exp(-k tau)): the periodic steady state, not many doses
    t = np.array([0.0, 0.5, 3.0, 11.5])
    sol = simulate_doses(
        OneCompartment,
        Regimen.bolus(250, every_h=12, steady_state=True),
        t,
        params={"CL": 4.0, "V": 40.0},
    )
    k = 0.1
    want = 250 / 40 * np.exp(-k * t) / (1 - np.exp(-k * 12))
    np.testing.assert_allclose(sol["Cc"][0], want, rtol=1e-8)


def test_nonlinear_steady_state_is_the_periodic_solution():
    # Michaelis-Menten: the SS start reproduces itself one interval later, and matches a long run
    t = np.arange(0.0, 24.1, 0.5)
    ss = simulate(MichaelisMenten, Regimen.oral(120, every_h=12, doses=2, steady_state=True), t)
    cc = ss["Cc"][0]
    np.testing.assert_allclose(cc[24], cc[0], rtol=1e-9)  # 12 h later, just before... the next dose
    long = simulate(MichaelisMenten, Regimen.oral(120, every_h=12, doses=150), t + 12 * 148)
    np.testing.assert_allclose(cc, long["Cc"][0], rtol=1e-7)
    # more than VMAX per hour has no steady state: rejected, not silently wrong
    with pytest.raises(ScheduleError, match="steady-state dose could not be solved"):
        simulate(MichaelisMenten, Regimen.oral(400, every_h=12, steady_state=True), t)


def test_steady_state_doses_whose_input_outlasts_the_interval_go_to_the_closed_form():
    table = DoseTable.from_doses([[Dose(0.0, 100.0, 1, duration_h=20.0, ii_h=12.0, ss=1)]])
    with pytest.raises(ScheduleError, match="closed form"):
        simulate_doses(OneCompartmentOral, table, [1.0, 2.0])


def test_chunking_and_per_subject_times_do_not_change_the_result(monkeypatch):
    n = 7
    rng = np.random.default_rng(3)
    params = {
        "CL": rng.uniform(2, 8, n),
        "KA": rng.uniform(0.5, 2, n),
        "ALAG": rng.uniform(0, 1, n),
    }
    regimen = Regimen.oral(200, every_h=8, doses=4)
    t = np.sort(rng.uniform(0, 40, (n, 9)), axis=1)
    whole = simulate_doses(OneCompartmentOral, regimen, t, params=params)
    chunked = simulate_doses(OneCompartmentOral, regimen, t, params=params, chunk_size=2)
    # each subject takes its own steps: other chunk sizes agree to rounding (XLA compiles each
    # shape on its own), and the same chunk size on one worker or two agrees bit for bit
    np.testing.assert_allclose(whole["Cc"], chunked["Cc"], rtol=1e-14)
    monkeypatch.setattr("medtwin.simulate._engine._workers", lambda: 1)
    one_worker = simulate_doses(OneCompartmentOral, regimen, t, params=params, chunk_size=2)
    np.testing.assert_array_equal(one_worker["Cc"], chunked["Cc"])
    shuffled = simulate_doses(OneCompartmentOral, regimen, t[:, ::-1], params=params)
    np.testing.assert_allclose(shuffled["Cc"][:, ::-1], whole["Cc"], rtol=1e-13)
    closed = np.asarray(concentration(OneCompartmentOral, params, regimen, t))
    np.testing.assert_allclose(whole["Cc"], closed, rtol=1e-6)
    assert whole.to_pandas().columns.tolist() == ["patient", "t_h", "Cc"]
    assert whole.to_pandas()["t_h"].to_numpy().reshape(n, 9).tolist() == t.tolist()


def test_doses_are_exact_events_not_input_periods():
    # a bolus at 3 h seen at 3 h (right-continuous) and just before
    sol = simulate_doses(
        OneCompartment, Regimen.bolus(100, start_h=3.0), [2.999999, 3.0], record="all"
    )
    assert sol["Cc"][0, 0] == 0.0
    assert sol["Cc"][0, 1] == pytest.approx(100 / 50, rel=1e-15)
    assert sol.final_state["central"][0] == pytest.approx(100.0)


def test_pd_models_run_from_their_baseline():
    t = np.arange(0.0, 49.0, 6.0)
    sol = simulate(OneCompartmentOralIndirectResponseIII, Regimen.oral(500, every_h=24, doses=2), t)
    assert sol["E"][0, 0] == pytest.approx(100.0)  # R0: no drug, baseline response
    assert sol["E"][0, 1:].min() > 100.0  # stimulated production raises the response


@pytest.mark.parametrize(
    ("kwargs", "error", "message"),
    [
        (
            {"controller": BasalBolus.for_patients(load_patients("adult#001"))},
            ConfigurationError,
            "open loop",
        ),
        ({"solver": RK4(dt=0.1), "dtype": "float32"}, ConfigurationError, "float64"),
    ],
)
def test_simulate_rejects_closed_loop_options_with_a_regimen(kwargs, error, message):
    with pytest.raises(error, match=message):
        simulate(OneCompartmentOral, Regimen.oral(100), [0.0, 1.0], **kwargs)


def test_bad_dose_runs_are_rejected():
    with pytest.raises(ConfigurationError, match="PK model"):
        simulate_doses(UvaPadova2008, Regimen.oral(100), [1.0])
    with pytest.raises(ScheduleError, match="no rate input"):
        simulate_doses(
            TwoCompartment, DoseTable.from_doses([[Dose(0, 10, 2, duration_h=1)]]), [1.0]
        )
    with pytest.raises(ScheduleError, match="compartment 4"):
        simulate_doses(TwoCompartment, DoseTable.from_doses([[Dose(0, 10, 4)]]), [1.0])
    with pytest.raises(ConfigurationError, match="record"):
        simulate_doses(OneCompartment, Regimen.bolus(1), [1.0], record=["nothing"])
    with pytest.raises(SimulationError, match="non-finite"):
        simulate_doses(OneCompartment, Regimen.bolus(1e308), [0.0, 1.0], params={"V": 1e-10})


def test_an_initial_state_is_taken_at_the_first_breakpoint():
    # 200 mg already in the body at t = 0, a 100 mg bolus at 10 h: C = (200 e^{-k t} + ...) / V
    t = np.array([0.0, 5.0, 10.0, 15.0])
    sol = simulate_doses(OneCompartment, Regimen.bolus(100, start_h=10.0), t, x0={"central": 200.0})
    k = 0.1
    want = (200 * np.exp(-k * t) + np.where(t >= 10, 100 * np.exp(-k * (t - 10)), 0.0)) / 50.0
    np.testing.assert_allclose(sol["Cc"][0], want, rtol=1e-8)
