"""The FOCE-I and Laplace objectives: exact where they must be, and their gradients."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pandas as pd
import pytest

from medtwin.calibrate.population import Additive, PopulationData, PopulationModel
from medtwin.calibrate.population._objective import compiled
from tests.calibrate.population.models import (
    FM3,
    exact_linear_ofv,
    linear_predict,
    simulate_linear,
    theoph_data,
)

OMEGA = np.array([[1.0, 0.2], [0.2, 0.09]])


def _ofv(model: PopulationModel, data: PopulationData, method: str) -> tuple[float, np.ndarray]:
    fns = compiled(model, method)
    p = jnp.asarray(fns.layout.pack(model))
    args = (data.subjects(), jnp.asarray(data.dv), jnp.asarray(data.mask))
    eta, done, _ = fns.inner(p, jnp.zeros((data.n_subjects, fns.layout.q)), *args)
    assert bool(np.all(done))
    values, grads = fns.per_subject(p, eta, *args)
    return float(np.sum(values)), np.asarray(grads).sum(axis=0)


@pytest.mark.parametrize("method", ["focei", "laplace"])
def test_objective_is_the_exact_likelihood_of_a_linear_model(method):
    # f is linear in eta and the error additive: the marginal is Gaussian and both
    # approximations are exact, at any parameter values (here not the optimum)
    frame = simulate_linear(12, seed=3, omega=OMEGA, sd=0.5)
    omega = np.array([[0.8, -0.1], [-0.1, 0.2]])
    model = PopulationModel(
        linear_predict,
        {"a": 9.0, "b": -0.8},
        pd.DataFrame(omega, index=["eta_a", "eta_b"], columns=["eta_a", "eta_b"]),
        Additive(0.7),
    )
    value, _ = _ofv(model, PopulationData.from_frame(frame), method)
    assert value == pytest.approx(exact_linear_ofv(frame, 9.0, -0.8, omega, 0.7), rel=1e-10)


@pytest.mark.parametrize("method", ["focei", "laplace"])
def test_gradient_is_exact(method):
    # the eta modes move with the population parameters; the implicit derivative must be in
    data = theoph_data()
    fns = compiled(FM3, method)
    p0 = fns.layout.pack(FM3)
    _, grad = _ofv(FM3, data, method)
    numeric = np.zeros_like(p0)
    for k in range(p0.size):
        h = 1e-5
        up, down = p0.copy(), p0.copy()
        up[k] += h
        down[k] -= h
        lay = fns.layout
        hi = _ofv(FM3.replace(**_unpack(lay, up)), data, method)[0]
        lo = _ofv(FM3.replace(**_unpack(lay, down)), data, method)[0]
        numeric[k] = (hi - lo) / (2 * h)
    np.testing.assert_allclose(grad, numeric, rtol=1e-5, atol=1e-5)


def _unpack(lay, p):
    chol = np.asarray(lay.chol(jnp.asarray(p)))
    return {
        "theta": dict(zip(lay.theta_names, p[: lay.n_theta].tolist(), strict=True)),
        "omega": chol @ chol.T,
        "sigma": dict(zip(lay.sigma_names, np.exp(p[lay.n_theta + lay.n_omega :]), strict=True)),
    }


def test_focei_is_nonmems_linearised_objective():
    # NONMEM's FOCE: the model linearised in eta at the mode, y ~ N(f(eta^) - G eta^, G W G' + R),
    # here computed independently (G by finite differences, numpy linear algebra)
    data = theoph_data()
    value, _ = _ofv(FM3, data, "focei")
    fns = compiled(FM3, "focei")
    p = jnp.asarray(fns.layout.pack(FM3))
    args = (data.subjects(), jnp.asarray(data.dv), jnp.asarray(data.mask))
    eta, _, _ = fns.inner(p, jnp.zeros((data.n_subjects, 2)), *args)
    eta = np.asarray(eta)
    omega, sd = FM3.omega_matrix, FM3.error.values[0]
    total = 0.0
    for i in range(data.n_subjects):
        subj = data.subject(i)
        m = data.mask[i]

        def f(e, subj=subj):
            return np.asarray(
                FM3.predict(FM3.theta, dict(zip(FM3.eta_names, e, strict=True)), subj)
            )

        g = np.column_stack([(f(eta[i] + d) - f(eta[i] - d)) / 2e-6 for d in np.eye(2) * 1e-6])[m]
        c = g @ omega @ g.T + sd**2 * np.eye(m.sum())
        e = data.dv[i, m] - f(eta[i])[m] + g @ eta[i]
        total += np.linalg.slogdet(c)[1] + e @ np.linalg.solve(c, e)
    assert value == pytest.approx(total, rel=1e-7)


def test_laplace_and_focei_differ_for_a_nonlinear_model():
    data = theoph_data()
    focei, _ = _ofv(FM3, data, "focei")
    laplace, _ = _ofv(FM3, data, "laplace")
    assert abs(focei - laplace) > 0.1


def test_inner_problem_finds_the_mode():
    data = theoph_data()
    fns = compiled(FM3, "laplace")
    p = jnp.asarray(fns.layout.pack(FM3))
    args = (data.subjects(), jnp.asarray(data.dv), jnp.asarray(data.mask))
    eta, done, _ = fns.inner(p, jnp.zeros((data.n_subjects, 2)), *args)
    assert bool(np.all(done))

    def l_total(e):
        f, r = fns.predictions(p, e, args[0])
        res = jnp.where(args[2], args[1] - f, 0.0)
        return jnp.sum(jnp.where(args[2], res**2 / r + jnp.log(r), 0.0)) + jnp.sum(
            e**2 / jnp.diag(jnp.asarray(FM3.omega_matrix))
        )

    g = jax.grad(l_total)(eta)
    # at the mode to rounding: l_i is about 20, its gradient is zero to 1e-5
    assert float(jnp.max(jnp.abs(g))) < 1e-5
    assert float(jnp.max(jnp.abs(jax.grad(l_total)(jnp.zeros_like(eta))))) > 1.0
