"""NLMEEstimator: exact maximum likelihood where it is known, recovery, standard errors, errors."""

from __future__ import annotations

import math

import jax.numpy as jnp
import numpy as np
import pandas as pd
import pytest
import scipy.optimize

from medtwin.calibrate.population import (
    Additive,
    Combined,
    NLMEEstimator,
    PopulationData,
    PopulationModel,
    Proportional,
    empirical_bayes,
)
from medtwin.errors import ConfigurationError, NotCalibratedError, ParameterError
from medtwin.models.pk import Dose, DoseTable, OneCompartmentOral, concentration
from tests.calibrate.population.models import (
    FM3,
    ORAL,
    exact_linear_ofv,
    linear_predict,
    simulate_linear,
    theoph_data,
)

OMEGA = np.array([[1.0, 0.2], [0.2, 0.09]])
ETAS = ["eta_a", "eta_b"]


@pytest.fixture(scope="module")
def linear_frame():
    return simulate_linear(40, seed=1, omega=OMEGA, sd=0.5)


@pytest.fixture(scope="module")
def linear_fit(linear_frame):
    model = PopulationModel(
        linear_predict,
        {"a": 9.0, "b": -0.8},
        pd.DataFrame(np.diag([0.5, 0.05]), index=ETAS, columns=ETAS),
        Additive(1.0),
        diagonal=False,
    )
    return NLMEEstimator(model, covariance="r").fit(linear_frame)


def _report(x):
    # (a, b, log L11, L21, log L22, log sd) -> (a, b, w11, w21, w22, sd)
    l11, l21, l22 = math.exp(x[2]), x[3], math.exp(x[4])
    return np.array([x[0], x[1], l11**2, l11 * l21, l21**2 + l22**2, math.exp(x[5])])


def _exact(frame, r):
    omega = np.array([[r[2], r[3]], [r[3], r[4]]])
    return exact_linear_ofv(frame, r[0], r[1], omega, r[5])


def test_linear_model_gives_the_exact_maximum_likelihood(linear_fit, linear_frame):
    res = scipy.optimize.minimize(
        lambda x: _exact(linear_frame, _report(x)),
        np.array([9.0, -0.8, 0.0, 0.0, -1.0, 0.0]),
        method="BFGS",
        options={"gtol": 1e-8},
    )
    assert linear_fit.converged_
    assert linear_fit.ofv_ == pytest.approx(res.fun, abs=1e-5)
    np.testing.assert_allclose(
        linear_fit.parameters_["estimate"].to_numpy(), _report(res.x), rtol=1e-3, atol=1e-4
    )
    assert list(linear_fit.parameters_.index) == [
        "a",
        "b",
        "omega2[eta_a]",
        "omega[eta_a,eta_b]",
        "omega2[eta_b]",
        "add_sd",
    ]


def test_standard_errors_are_the_inverse_observed_information(linear_fit, linear_frame):
    # covariance="r": R^-1 with R half the Hessian of the OFV in the reported parameters
    r0 = linear_fit.parameters_["estimate"].to_numpy()
    k = r0.size
    h = 1e-4 * np.maximum(1.0, np.abs(r0))
    hess = np.zeros((k, k))
    for i in range(k):
        for j in range(k):
            ei, ej = np.eye(k)[i] * h[i], np.eye(k)[j] * h[j]
            hess[i, j] = (
                _exact(linear_frame, r0 + ei + ej)
                - _exact(linear_frame, r0 + ei - ej)
                - _exact(linear_frame, r0 - ei + ej)
                + _exact(linear_frame, r0 - ei - ej)
            ) / (4 * h[i] * h[j])
    se = np.sqrt(np.diag(np.linalg.inv(0.5 * hess)))
    np.testing.assert_allclose(linear_fit.parameters_["se"].to_numpy(), se, rtol=0.02)
    assert linear_fit.covariance_.shape == (6, 6)


def test_cwres_whiten_the_linearised_model(linear_fit, linear_frame):
    # for a linear model the linearisation is exact: per subject, sum CWRES^2 = e' C^-1 e with
    # C = Z Omega Z' + sd^2 I the marginal covariance at the estimates
    d = linear_fit.diagnostics_
    r = linear_fit.parameters_["estimate"].to_numpy()
    omega = np.array([[r[2], r[3]], [r[3], r[4]]])
    for sid, g in linear_frame.groupby("ID"):
        t = g["TIME"].to_numpy()
        z = np.column_stack([np.ones_like(t), t])
        c = z @ omega @ z.T + r[5] ** 2 * np.eye(t.size)
        e = g["DV"].to_numpy() - (r[0] + r[1] * t)
        cw = d.loc[d["ID"] == sid, "CWRES"].to_numpy()
        assert cw @ cw == pytest.approx(e @ np.linalg.solve(c, e), rel=1e-8)
        np.testing.assert_allclose(cw, d.loc[d["ID"] == sid, "WRES"], atol=1e-8)
    assert abs(d["CWRES"].mean()) < 0.15
    assert d["CWRES"].std() == pytest.approx(1.0, abs=0.15)


def test_information_criteria_and_shrinkage(linear_fit):
    fit = linear_fit
    assert fit.n_parameters_ == 6
    assert fit.aic_ == pytest.approx(-2 * fit.loglik_ + 12)
    assert fit.bic_ == pytest.approx(-2 * fit.loglik_ + 6 * math.log(fit.n_observations_))
    sd_eta = fit.eta_.std(ddof=1)
    expected = 1 - sd_eta / np.sqrt(np.diag(fit.omega_))
    np.testing.assert_allclose(fit.shrinkage_[ETAS], expected)
    # 3-5 observations per subject determine the intercept well, the slope less so
    assert fit.shrinkage_["eta_a"] < fit.shrinkage_["eta_b"]


# -- a nonlinear model with doses in the data and a combined error -----------------------------


def one_cmt_doses(theta, eta, s):
    """Oral doses into a one-compartment model: the PK library's closed form."""
    params = {
        "KA": jnp.exp(theta["tka"] + eta["eta_ka"]),
        "CL": jnp.exp(theta["tcl"] + eta["eta_cl"]),
        "V": jnp.exp(theta["tv"] + eta["eta_v"]),
    }
    return concentration(OneCompartmentOral, params, s["doses"], s["time"], kinds=ORAL)


TRUTH = {"tka": math.log(1.2), "tcl": math.log(4.0), "tv": math.log(40.0)}
TRUE_OMEGA = {"eta_ka": 0.16, "eta_cl": 0.09, "eta_v": 0.04}
TRUE_ERROR = Combined(0.2, 0.1)


def simulate_doses(n: int, seed: int) -> tuple[PopulationData, np.ndarray]:
    """Two oral doses (250 or 500 mg, 12 h apart), eight samples, combined error; the etas."""
    rng = np.random.default_rng(seed)
    model = PopulationModel(one_cmt_doses, TRUTH, TRUE_OMEGA, TRUE_ERROR)
    times = np.array([0.5, 1.0, 2.0, 4.0, 8.0, 12.5, 14.0, 24.0])
    amounts = rng.choice([250.0, 500.0], size=n)
    doses = DoseTable.from_doses([[Dose(0.0, a, 1), Dose(12.0, a, 1)] for a in amounts])
    rows, etas = [], []
    for i in range(n):
        eta = {k: rng.normal(0.0, math.sqrt(w)) for k, w in TRUE_OMEGA.items()}
        etas.append(list(eta.values()))
        s = {"time": jnp.asarray(times), "doses": doses.subjects(i)}
        f = np.asarray(model.predict(TRUTH, eta, s))
        y = f + np.sqrt(0.2**2 + (0.1 * f) ** 2) * rng.standard_normal(f.size)
        rows += [(i, t, v) for t, v in zip(times, y, strict=True)]
    frame = pd.DataFrame(rows, columns=["ID", "TIME", "DV"])
    return PopulationData.from_frame(frame, doses=doses), np.array(etas)


@pytest.fixture(scope="module")
def dose_fit():
    start = PopulationModel(
        one_cmt_doses,
        {"tka": 0.0, "tcl": 1.0, "tv": 3.5},
        {"eta_ka": 0.1, "eta_cl": 0.1, "eta_v": 0.1},
        Combined(0.5, 0.2),
    )
    data, etas = simulate_doses(40, seed=7)
    return NLMEEstimator(start).fit(data), etas


def test_recovers_simulated_parameters(dose_fit):
    fit, etas = dose_fit
    assert fit.converged_ and fit.covariance_ok_
    table = fit.parameters_
    truth = TRUTH | {"add_sd": 0.2, "prop_cv": 0.1}
    for name, value in truth.items():
        est, se = table.loc[name, "estimate"], table.loc[name, "se"]
        assert abs(est - value) < 3 * se, (name, est, se, value)
    # variances against those of the etas actually drawn (40 draws scatter about Omega's)
    realised = etas.var(axis=0)
    for k, name in enumerate(TRUE_OMEGA):
        assert table.loc[f"omega2[{name}]", "estimate"] == pytest.approx(realised[k], rel=0.25)
    assert fit.parameters_.loc["tcl", "rse_pct"] < 10
    # the empirical Bayes estimates follow the drawn etas (CL is the best determined)
    assert np.corrcoef(fit.eta_["eta_cl"], etas[:, 1])[0, 1] > 0.9


def test_empirical_bayes_reproduces_the_fits_etas(dose_fit):
    dose_fit, _ = dose_fit
    eb = empirical_bayes(dose_fit.model_, dose_fit.data_)
    assert eb.converged.all()
    np.testing.assert_allclose(eb.mean, dose_fit.eta_.to_numpy(), atol=1e-6)
    np.testing.assert_allclose(eb.cov, dose_fit.eta_cov_, rtol=1e-6)
    # the data shrink every eta's uncertainty below its prior
    assert np.all(np.diagonal(eb.cov, axis1=1, axis2=2) < np.diag(dose_fit.omega_))


def test_fixed_parameters_stay_put():
    fit = NLMEEstimator(FM3, fix=("lKe",), covariance=None).fit(theoph_data())
    assert fit.theta_["lKe"] == FM3.theta["lKe"]
    assert fit.parameters_.loc["lKe", "fixed"]
    assert fit.n_parameters_ == 5
    assert "lKe" not in fit.covariance_.index
    assert fit.theta_["lKa"] != FM3.theta["lKa"]


def test_results_before_fit_raise():
    with pytest.raises(NotCalibratedError, match="theta_"):
        _ = NLMEEstimator(FM3).theta_
    with pytest.raises(AttributeError):
        _ = NLMEEstimator(FM3).nonsense


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"covariance": "hessian"}, "covariance must be one of"),
        ({"fix": ("eta_lKa",)}, "cannot fix"),
        ({"max_iter": 0}, "max_iter must be a positive integer"),
        ({"tol": -1.0}, "tol must be"),
    ],
)
def test_bad_settings_are_rejected(kwargs, match):
    with pytest.raises(ConfigurationError, match=match):
        NLMEEstimator(FM3, **kwargs).fit(theoph_data())


def test_model_and_data_types_are_checked():
    with pytest.raises(ConfigurationError, match="PopulationModel"):
        NLMEEstimator("fm3").fit(theoph_data())
    with pytest.raises(ConfigurationError, match="DataFrame"):
        NLMEEstimator(FM3).fit([1, 2, 3])


def test_non_finite_initial_objective_is_explained():
    # a proportional error cannot fit the pre-dose samples, predicted as exactly zero
    model = PopulationModel(
        FM3.predict,
        FM3.theta,
        dict(zip(FM3.eta_names, [0.36, 0.04], strict=True)),
        Proportional(0.1),
    )
    with pytest.raises(ParameterError, match=r"subject 1 at time 0 is 0 with residual variance 0"):
        NLMEEstimator(model).fit(theoph_data())
