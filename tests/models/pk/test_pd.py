"""PD and nonlinear PK models against closed-form special cases."""

import jax
import numpy as np
import pytest

from medtwin.models.pk import (
    DirectEmax,
    EffectCompartment,
    IndirectResponseII,
    MichaelisMenten,
    OneCompartment,
    OneCompartmentOral,
    OneCompartmentOralDirectEmax,
    OneCompartmentOralIndirectResponseI,
    OneCompartmentOralIndirectResponseII,
    OneCompartmentOralIndirectResponseIII,
    OneCompartmentOralIndirectResponseIV,
    Regimen,
    concentration,
    hill,
    pkpd,
    sigmoid_emax,
)
from medtwin.simulate import RK4, simulate

T = np.arange(0.0, 48.5, 0.5)


def test_direct_emax_is_the_sigmoid_of_the_concentration():
    p = {"EMAX": -80.0, "E0": 100.0, "EC50": 3.0, "HILL": 2.5}
    sol = simulate(
        OneCompartmentOralDirectEmax, Regimen.oral(500, every_h=12, doses=4), T, params=p
    )
    np.testing.assert_allclose(
        sol["E"][0], sigmoid_emax(sol["Cc"][0], 100.0, -80.0, 3.0, 2.5), rtol=1e-12
    )
    assert sol["E"][0].min() < 40.0  # a real drop: the test would notice a missing effect


def test_effect_compartment_matches_its_closed_form():
    # IV bolus D into 1-cmt, Ce(t) = KE0 D/V (exp(-k t) - exp(-KE0 t)) / (KE0 - k)
    model = pkpd(OneCompartment, EffectCompartment())
    assert model.state_names() == ("central", "Ce") and "KE0" in model.param_names()
    p = {"CL": 5.0, "V": 50.0, "KE0": 0.7, "EC50": 1.0, "EMAX": 1.0, "HILL": 1.0}
    sol = simulate(model, Regimen.bolus(100), T, params=p, record=["Ce", "E"])
    k = 0.1
    ce = 0.7 * 2.0 * (np.exp(-k * T) - np.exp(-0.7 * T)) / (0.7 - k)
    np.testing.assert_allclose(sol["Ce"][0], ce, rtol=1e-7, atol=1e-12)
    np.testing.assert_allclose(sol["E"][0], ce / (1.0 + ce), rtol=1e-7, atol=1e-12)


@pytest.mark.parametrize(
    ("model", "direction"),
    [
        (OneCompartmentOralIndirectResponseI, -1),
        (OneCompartmentOralIndirectResponseII, +1),
        (OneCompartmentOralIndirectResponseIII, +1),
        (OneCompartmentOralIndirectResponseIV, -1),
    ],
    ids=lambda v: getattr(v, "__name__", str(v)),
)
def test_indirect_responses_move_from_baseline_and_return(model, direction):
    sol = simulate(model, Regimen.oral(500), np.arange(0.0, 241.0, 4.0), params={"R0": 50.0})
    r = sol["E"][0]
    assert r[0] == 50.0
    peak = r.max() if direction > 0 else r.min()
    assert direction * (peak - 50.0) > 5.0
    assert abs(r[-1] - 50.0) < 0.5  # the drug is gone after 10 days (half-life 7 h)


def test_indirect_response_ii_steady_state_under_constant_concentration():
    # constant C: R_ss = R0 / (1 - I(C)) for model II
    pd = IndirectResponseII()
    c = 5.0
    p = {"R0": 10.0, "KOUT": 0.3, "IMAX": 0.6, "IC50": 5.0, "HILL": 1.0}
    r_ss = 10.0 / (1 - 0.6 * 0.5)
    assert float(pd.rhs(c, {"R": r_ss}, p)["R"]) == pytest.approx(0.0, abs=1e-12)


def test_michaelis_menten_is_linear_far_below_km():
    # CL = VMAX/KM when C << KM: the 1-cmt closed form with CL = 20/500 = 0.04 L/h... scaled
    p_mm = {"VMAX": 2000.0, "KM": 500.0, "V": 50.0, "KA": 1.2}
    sol = simulate(
        MichaelisMenten, Regimen.oral(10, every_h=12, doses=3), T, params=p_mm, solver=RK4(dt=0.02)
    )
    linear = np.asarray(
        concentration(
            OneCompartmentOral,
            {"CL": 4.0, "V": 50.0, "KA": 1.2},
            Regimen.oral(10, every_h=12, doses=3),
            T,
        )
    )
    np.testing.assert_allclose(sol["Cc"][0], linear, rtol=2e-3)  # C/KM < 0.001
    saturated = simulate(MichaelisMenten, Regimen.oral(1000), T, params={"VMAX": 20.0, "KM": 0.05})
    # far above KM elimination is zero order: VMAX = 20 mg/h leaves the body (C 16 -> 12 mg/L)
    drop = (saturated["Cc"][0, 20] - saturated["Cc"][0, 40]) * 50.0 / 10.0
    assert drop == pytest.approx(20.0, rel=0.01)


def test_hill_has_finite_gradients_at_zero():
    g = jax.grad(lambda c, gamma: hill(c, 2.0, gamma), argnums=(0, 1))(0.0, 0.5)
    assert all(np.isfinite(float(x)) for x in g)
    assert float(hill(4.0, 2.0, 1.0)) == pytest.approx(2.0 / 3.0)
    assert DirectEmax().params[0].name == "E0"
