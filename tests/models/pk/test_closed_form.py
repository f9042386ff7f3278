"""Closed-form concentrations against an independent matrix-exponential solution and textbooks.

The reference integrates each model's linear system exactly with scipy's ``expm`` (the augmented
matrix trick for a constant infusion), dose by dose; it shares no code with the closed form.
"""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import scipy.linalg as sl

from medtwin.errors import ParameterError, ScheduleError
from medtwin.models.pk import (
    DOSE_KINDS,
    Dose,
    DoseTable,
    MichaelisMenten,
    OneCompartment,
    OneCompartmentOral,
    Regimen,
    ThreeCompartment,
    ThreeCompartmentOral,
    TwoCompartment,
    TwoCompartmentOral,
    concentration,
    disposition,
    dose_kinds,
)

ORAL = (OneCompartmentOral, TwoCompartmentOral, ThreeCompartmentOral)


def system_matrix(cls, p):
    """d(amounts)/dt = J amounts, from the model's own rhs (linear, so exact)."""
    model = cls()
    q = model.with_derived({k: jnp.asarray(v) for k, v in p.items()})
    names = cls.state_names()
    zero = {i.name: jnp.asarray(0.0) for i in cls.inputs}

    def f(x):
        dx = model.rhs(0.0, dict(zip(names, x, strict=True)), q, zero)
        return jnp.stack([dx[s] for s in names])

    return np.asarray(jax.jacfwd(f)(jnp.zeros(len(names))))


def expm_reference(cls, p, records, times):
    """Central concentration by exact propagation of every (expanded) dose."""
    jac = system_matrix(cls, p)
    names = cls.state_names()
    n = len(names)
    volume = p.get("V", p.get("V1"))
    out = []
    for t in times:
        x = np.zeros(n)
        for rec in records:
            for d in rec.expand():
                k = d.cmt - 1
                depot = names[k] == "depot"
                entry = d.time_h + (p["ALAG"] if depot else 0.0)
                amount = d.amount_mg * (p["F"] if depot else 1.0)
                if t < entry:
                    continue
                b = np.zeros(n)
                if d.duration_h == 0:
                    b[k] = amount
                    x += sl.expm(jac * (t - entry)) @ b
                else:
                    on = min(t - entry, d.duration_h)
                    aug = np.zeros((n + 1, n + 1))
                    aug[:n, :n] = jac
                    aug[k, n] = amount / d.duration_h
                    x += sl.expm(jac * (t - entry - on)) @ sl.expm(aug * on)[:n, n]
        out.append(x[names.index("central")] / volume)
    return np.array(out)


def params_of(cls, seed=5):
    p = {k: float(v[0]) for k, v in cls.sample_params(1, seed=seed).items()}
    if "F" in p:
        p.update(F=0.7, ALAG=0.4)
    return p


@pytest.mark.parametrize("cls", ORAL, ids=lambda c: c.__name__)
def test_mixed_regimen_matches_the_matrix_exponential(cls):
    p = params_of(cls)
    records = [
        Dose(0.0, 100.0, 1, ii_h=12.0, addl=2),  # oral, lagged, with F
        Dose(5.0, 50.0, 2, duration_h=2.0),  # IV infusion
        Dose(6.0, 30.0, 2),  # IV bolus
        Dose(7.0, 40.0, 1, duration_h=3.0),  # zero-order input into the depot
    ]
    times = np.array([0.0, 0.3, 0.4, 1.0, 2.5, 5.5, 6.0, 7.5, 12.2, 13.0, 30.0, 50.0])
    got = np.asarray(concentration(cls, p, DoseTable.from_doses([records]), times))[0]
    want = expm_reference(cls, p, records, times)
    np.testing.assert_allclose(got, want, rtol=1e-12, atol=1e-14)
    # the oral dose enters the depot at ALAG = 0.4 h: nothing in the plasma until then
    assert got[1] == 0.0 and got[2] == 0.0 and got[3] > 0.1


@pytest.mark.parametrize(
    ("n", "cls"), [(1, OneCompartment), (2, TwoCompartment), (3, ThreeCompartment)]
)
def test_disposition_exponents_are_the_system_eigenvalues(n, cls):
    p = params_of(cls, seed=3)
    lam, coef = disposition(p, n)
    eig = np.sort(-np.linalg.eigvals(system_matrix(cls, p)).real)
    np.testing.assert_allclose(np.sort(np.asarray(lam)), eig, rtol=1e-12)
    # a unit bolus starts at 1/V1
    volume = p.get("V", p.get("V1"))
    assert float(np.sum(coef)) == pytest.approx(1 / volume, rel=1e-12)


# ---------------------------------------------------------------------------------------------
# Steady state equals the analytic accumulation formula (Gibaldi & Perrier 1982, ch. 3)
# ---------------------------------------------------------------------------------------------

TAU = 12.0
T_SS = np.array([0.0, 0.25, 1.0, 1.5, 2.0, 5.0, 11.99])


def test_steady_state_bolus_one_compartment():
    # C_ss(t) = D/V exp(-k t) / (1 - exp(-k tau))
    cl, v, dose = 4.0, 40.0, 250.0
    k = cl / v
    want = dose / v * np.exp(-k * T_SS) / (1 - np.exp(-k * TAU))
    ss = Regimen.bolus(dose, every_h=TAU, steady_state=True)
    got = np.asarray(concentration(OneCompartment, {"CL": cl, "V": v}, ss, T_SS))
    np.testing.assert_allclose(got, want, rtol=1e-8, atol=0)


def test_steady_state_oral_one_compartment_with_lag():
    # C_ss(t) = F D KA / (V (KA - k)) [exp(-k t') / (1 - exp(-k tau)) - exp(-KA t') / (1 - e^(-KA tau))]
    # with t' = t - ALAG, and t' + tau for the dose still in the gut before the lag has passed
    cl, v, ka, f, lag, dose = 3.0, 30.0, 1.2, 0.8, 0.5, 400.0
    k = cl / v
    tp = np.where(lag <= T_SS, T_SS - lag, T_SS - lag + TAU)
    want = (f * dose * ka / (v * (ka - k))) * (
        np.exp(-k * tp) / (1 - np.exp(-k * TAU)) - np.exp(-ka * tp) / (1 - np.exp(-ka * TAU))
    )
    ss = Regimen.oral(dose, every_h=TAU, steady_state=True)
    p = {"CL": cl, "V": v, "KA": ka, "F": f, "ALAG": lag}
    got = np.asarray(concentration(OneCompartmentOral, p, ss, T_SS))
    np.testing.assert_allclose(got, want, rtol=1e-8, atol=0)


def test_steady_state_infusion_one_compartment():
    # during the infusion: R/CL [(1 - e^(-k t)) + e^(-k t) (1 - e^(-k T)) e^(-k (tau - T)) / (1 - e^(-k tau))]
    # after it:            R/CL (1 - e^(-k T)) e^(-k (t - T)) / (1 - e^(-k tau))
    cl, v, dose, dur = 6.0, 50.0, 600.0, 1.5
    k, rate = cl / v, dose / dur
    acc = 1 / (1 - np.exp(-k * TAU))
    during = (
        rate
        / cl
        * (
            (1 - np.exp(-k * T_SS))
            + np.exp(-k * T_SS) * (1 - np.exp(-k * dur)) * np.exp(-k * (TAU - dur)) * acc
        )
    )
    after = rate / cl * (1 - np.exp(-k * dur)) * np.exp(-k * (T_SS - dur)) * acc
    want = np.where(dur >= T_SS, during, after)
    ss = Regimen.infusion(dose, dur, every_h=TAU, steady_state=True)
    got = np.asarray(concentration(OneCompartment, {"CL": cl, "V": v}, ss, T_SS))
    np.testing.assert_allclose(got, want, rtol=1e-8, atol=0)


@pytest.mark.parametrize(("n", "cls"), [(2, TwoCompartment), (3, ThreeCompartment)])
def test_steady_state_bolus_multi_compartment(n, cls):
    # C_ss(t) = D sum_i A_i exp(-l_i t) / (1 - exp(-l_i tau))
    p = cls.defaults()
    lam, coef = (np.asarray(a) for a in disposition(p, n))
    want = 100 * (coef * np.exp(-np.outer(T_SS, lam)) / (1 - np.exp(-lam * TAU))).sum(axis=1)
    got = np.asarray(
        concentration(cls, p, Regimen.bolus(100, every_h=TAU, steady_state=True), T_SS)
    )
    np.testing.assert_allclose(got, want, rtol=1e-8, atol=0)


@pytest.mark.parametrize("duration_h", [0.0, 3.0, 30.0])  # 30 h infusions every 12 h overlap
@pytest.mark.parametrize(
    "cls", [TwoCompartmentOral, ThreeCompartmentOral], ids=lambda c: c.__name__
)
def test_steady_state_is_the_limit_of_many_doses(cls, duration_h):
    p = params_of(cls)
    t = np.array([0.0, 0.2, 0.5, 3.0, 7.0, 11.9])  # within one interval of the SS dose
    for cmt in (1, 2):
        ss = DoseTable.from_doses([[Dose(0.0, 100.0, cmt, duration_h, ii_h=12.0, ss=1)]])
        many = DoseTable.from_doses([[Dose(0.0, 100.0, cmt, duration_h, ii_h=12.0, addl=600)]])
        got = np.asarray(concentration(cls, p, ss, t))
        want = np.asarray(concentration(cls, p, many, t + 12.0 * 500))
        np.testing.assert_allclose(got, want, rtol=1e-10)


def test_reset_cancels_earlier_doses_and_ss2_adds():
    p = {"CL": 5.0, "V": 50.0}
    t = np.array([5.0, 9.9, 10.0, 15.0])
    first = Dose(0.0, 100.0, 1, ii_h=4.0, addl=5)
    reset = DoseTable.from_doses([[first, Dose(10.0, 0.0, 1, reset=True)]])
    got = np.asarray(concentration(OneCompartment, p, reset, t))[0]
    plain = np.asarray(concentration(OneCompartment, p, DoseTable.from_doses([[first]]), t))[0]
    np.testing.assert_allclose(got[:2], plain[:2], rtol=1e-14)
    assert got[2] == got[3] == 0.0  # the pending additional doses at 12, 16, 20 h are cancelled
    ss2 = DoseTable.from_doses([[Dose(0.0, 100.0, 1), Dose(10.0, 50.0, 1, ii_h=4.0, ss=2)]])
    alone = DoseTable.from_doses([[Dose(10.0, 50.0, 1, ii_h=4.0, ss=1)]])
    both = np.asarray(concentration(OneCompartment, p, ss2, t))[0]
    single = np.asarray(
        concentration(OneCompartment, p, DoseTable.from_doses([[Dose(0.0, 100.0, 1)]]), t)
    )
    ss_part = np.asarray(concentration(OneCompartment, p, alone, t))[0]
    np.testing.assert_allclose(both, single[0] + ss_part, rtol=1e-14)


def test_batches_broadcast_and_per_subject_tables():
    cls = OneCompartmentOral
    cl = np.array([2.0, 4.0, 8.0])
    shared = concentration(
        cls, {"CL": cl}, Regimen.oral(100, every_h=12, doses=2), np.arange(0, 24.0)
    )
    assert shared.shape == (3, 24)
    assert np.all(np.diff(np.asarray(shared)[:, -1]) < 0)  # faster clearance, lower concentration
    table = DoseTable.from_doses([[Dose(0, 100, 1)], [Dose(0, 100, 1)], [Dose(0, 200, 1)]])
    per = np.asarray(concentration(cls, {"CL": 4.0}, table, np.tile(np.arange(1.0, 5.0), (3, 1))))
    np.testing.assert_allclose(per[2], 2 * per[0], rtol=1e-14)


def test_gradients_are_exact_and_finite_where_ka_equals_k():
    t = jnp.linspace(0.5, 24, 12)
    regimen = Regimen.oral(100, every_h=8, doses=3)

    def total(ka, cl):
        return jnp.sum(
            concentration(OneCompartmentOral, {"KA": ka, "CL": cl, "V": 50.0}, regimen, t)
        )

    grad = jax.grad(total, argnums=(0, 1))
    for ka in (0.1, 0.1 * (1 + 1e-9), 1.3):  # CL/V = 0.1: flip-flop equality and its neighbourhood
        g_ka, g_cl = (float(g) for g in grad(ka, 5.0))
        # central differences with steps large enough to leave the KA ~ k neighbourhood, where
        # the closed form switches to its midpoint difference (values agree there to ~1e-10)
        fd_ka = (total(ka + 1e-5, 5.0) - total(ka - 1e-5, 5.0)) / 2e-5
        fd_cl = (total(ka, 5.0 + 1e-3) - total(ka, 5.0 - 1e-3)) / 2e-3
        assert g_ka == pytest.approx(float(fd_ka), rel=1e-6)
        assert g_cl == pytest.approx(float(fd_cl), rel=1e-6)
    # the value is continuous through KA = k (t e^{-k t} limit)
    near = [float(total(0.1 * (1 + e), 5.0)) for e in (-1e-7, 0.0, 1e-7)]
    assert near[0] == pytest.approx(near[1], rel=1e-6) and near[2] == pytest.approx(
        near[1], rel=1e-6
    )


def test_traced_dose_tables_work_under_jit_and_vmap():
    table = DoseTable.from_doses([[Dose(0, 100, 1)], [Dose(0, 50, 1, ii_h=12, addl=1)]])
    t = np.arange(0.0, 30.0, 3.0)
    eager = np.asarray(concentration(OneCompartmentOral, {}, table, t))
    jitted = jax.jit(lambda d: concentration(OneCompartmentOral, {}, d, t))(table)
    kinds = dose_kinds(OneCompartmentOral, table)
    assert kinds == {"depot"} and kinds <= DOSE_KINDS
    mapped = jax.vmap(
        lambda d: concentration(OneCompartmentOral, {}, d, t, kinds=kinds),
        in_axes=(DoseTable(*[0] * 8),),
    )(table)
    np.testing.assert_allclose(np.asarray(jitted), eager, rtol=1e-14)
    np.testing.assert_allclose(np.asarray(mapped), eager, rtol=1e-14)


def test_models_by_name():
    by_name = concentration("one_compartment", {}, Regimen.bolus(50), [0.0])
    assert float(by_name[0]) == pytest.approx(1.0)


@pytest.mark.parametrize(
    ("call", "error", "message"),
    [
        (
            lambda: concentration(MichaelisMenten, {}, Regimen.oral(1), [1.0]),
            ParameterError,
            "no closed form",
        ),
        (
            lambda: concentration(OneCompartment, {"KA": 1.0}, Regimen.bolus(1), [1.0]),
            ParameterError,
            "KA",
        ),
        (
            lambda: concentration("two_cmt", {}, Regimen.bolus(1), [1.0]),
            ParameterError,
            "unknown PK model",
        ),
        (
            lambda: concentration(OneCompartment, {}, Regimen.oral(1), [1.0]),
            ParameterError,
            "no 'oral'",
        ),
        (
            lambda: concentration(
                TwoCompartment, {}, DoseTable.from_doses([[Dose(0, 1, 2)]]), [1.0]
            ),
            ScheduleError,
            "peripheral2",
        ),
        (
            lambda: concentration(OneCompartment, {}, Regimen.bolus(1), [1.0], kinds={"x"}),
            ParameterError,
            "kinds",
        ),
    ],
)
def test_bad_calls_are_rejected(call, error, message):
    with pytest.raises(error, match=message):
        call()


def test_an_iv_model_under_jit_without_kinds():
    import jax
    import jax.numpy as jnp

    from medtwin.models.pk import Regimen, TwoCompartment, concentration

    doses = Regimen.bolus(100.0, every_h=12, doses=3).to_doses(TwoCompartment)
    t = jnp.linspace(0.0, 36.0, 10)
    p = {"CL": 5.0, "V1": 20.0, "Q2": 2.0, "V2": 30.0}
    direct = concentration(TwoCompartment, p, doses, t)
    traced = jax.jit(lambda q, d: concentration(TwoCompartment, q, d, t))(p, doses)
    assert jnp.allclose(direct, traced, rtol=1e-12)
