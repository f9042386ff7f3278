"""Published population fits of the theophylline data, reproduced.

Data: R ``datasets::Theoph`` (tests/interop/data/theoph.csv), all 132 rows kept
(including the three non-zero concentrations at time 0).
"""

from __future__ import annotations

import math

import numpy as np
import pytest

from medtwin.calibrate.population import NLMEEstimator
from tests.calibrate.population.models import FM3, NLMIXR, theoph_data

# Pinheiro JC, Bates DM (2000). Mixed-Effects Models in S and S-PLUS. Springer. Chapter 8,
# model fm3Theo.nlme: one-compartment first-order absorption on the log scale (lKe, lKa, lCl),
# dose in mg/kg, diagonal random effects on lKa and lCl, additive error, maximum likelihood
# (nlme's Lindstrom-Bates approximation).
NLME_FM3 = {
    "lKe": -2.4547,
    "lKa": 0.4657,
    "lCl": -3.2272,
    "sd_lKa": 0.6436,
    "sd_lCl": 0.1669,
    "sigma": 0.7093,
    "loglik": -177.02,
}

# nlmixr2 theophylline example (``one.cmt`` on ``theo_sd``, est = "focei"): dose in mg
# (Dose x Wt), ka/CL/V log-normal with IIV on all three, additive error.  IIV SDs are given in
# the order of the ini() block, eta.ka, eta.cl, eta.v: 0.632 (ka), 0.263 (CL), 0.138 (V).
NLMIXR_FOCEI = {
    "ofv": 116.85,
    "tcl": 1.012,
    "tv": 3.460,
    "tka": 0.466,
    "add_sd": 0.695,
    "sd_ka": 0.632,
    "sd_cl": 0.263,
    "sd_v": 0.138,
}


@pytest.fixture(scope="module")
def data():
    return theoph_data()


@pytest.fixture(scope="module")
def fm3_focei(data):
    return NLMEEstimator(FM3, method="focei").fit(data)


@pytest.fixture(scope="module")
def fm3_laplace(data):
    return NLMEEstimator(FM3, method="laplace").fit(data)


def _check_fm3_parameters(fit):
    ref = NLME_FM3
    assert fit.converged_
    assert fit.theta_["lKe"] == pytest.approx(ref["lKe"], abs=0.013)
    assert fit.theta_["lKa"] == pytest.approx(ref["lKa"], abs=0.05)
    assert fit.theta_["lCl"] == pytest.approx(ref["lCl"], abs=0.015)
    assert fit.iiv_sd_["eta_lKa"] == pytest.approx(ref["sd_lKa"], rel=0.05)
    assert fit.iiv_sd_["eta_lCl"] == pytest.approx(ref["sd_lCl"], rel=0.05)
    assert fit.sigma_["add_sd"] == pytest.approx(ref["sigma"], rel=0.02)


def test_nlme_fm3_by_focei(fm3_focei):
    _check_fm3_parameters(fm3_focei)
    assert fm3_focei.loglik_ == pytest.approx(NLME_FM3["loglik"], abs=0.5)
    # the NONMEM convention drops n ln(2 pi) from -2 ln L
    assert fm3_focei.ofv_ == pytest.approx(-2 * fm3_focei.loglik_ - 132 * math.log(2 * math.pi))


def test_nlme_fm3_by_laplace(fm3_laplace, fm3_focei):
    # Laplace keeps the curvature of the predictions in eta that FOCE-I (and nlme's
    # Lindstrom-Bates step) drop: the same estimates within the published tolerances, a
    # log-likelihood 0.88 lower (-177.87, outside nlme's +-0.5; our own value, pinned here)
    _check_fm3_parameters(fm3_laplace)
    assert fm3_laplace.loglik_ == pytest.approx(-177.87, abs=0.05)
    assert fm3_laplace.loglik_ < fm3_focei.loglik_ - 0.5


def test_fm3_standard_errors_and_diagnostics(fm3_focei):
    table = fm3_focei.parameters_
    assert fm3_focei.covariance_ok_
    assert (table["se"] > 0).all()
    # lCl is well determined (about 2.5 % RSE), lKa poorly (about 40 %)
    assert table.loc["lCl", "rse_pct"] < 5 < table.loc["lKa", "rse_pct"]
    d = fm3_focei.diagnostics_
    assert len(d) == 132
    assert abs(d["CWRES"].mean()) < 0.2
    assert d["CWRES"].std() == pytest.approx(1.0, abs=0.15)
    assert set(fm3_focei.shrinkage_.index) == {"eta_lKa", "eta_lCl", "epsilon"}


def test_nlmixr2_theophylline_by_focei():
    fit = NLMEEstimator(NLMIXR, method="focei").fit(theoph_data(per_kg=False))
    ref = NLMIXR_FOCEI
    assert fit.converged_
    assert fit.ofv_ <= ref["ofv"]
    assert fit.theta_["tcl"] == pytest.approx(ref["tcl"], abs=0.01)
    assert fit.theta_["tv"] == pytest.approx(ref["tv"], abs=0.01)
    assert fit.theta_["tka"] == pytest.approx(ref["tka"], abs=0.03)
    assert fit.sigma_["add_sd"] == pytest.approx(ref["add_sd"], abs=0.005)
    assert fit.iiv_sd_["eta_ka"] == pytest.approx(ref["sd_ka"], rel=0.10)
    assert fit.iiv_sd_["eta_cl"] == pytest.approx(ref["sd_cl"], rel=0.10)
    assert fit.iiv_sd_["eta_v"] == pytest.approx(ref["sd_v"], rel=0.10)


def test_closed_form_is_the_textbook_formula():
    # the PK library's one-compartment oral closed form, against the formula written out
    import jax.numpy as jnp

    from tests.calibrate.population.models import one_compartment_oral, theoph_fm3

    data = theoph_data()
    s = data.subject(0)
    theta = {"lKe": -2.45, "lKa": 0.47, "lCl": -3.23}
    eta = {"eta_lKa": 0.1, "eta_lCl": -0.05}
    ke, ka, cl = np.exp(-2.45), np.exp(0.57), np.exp(-3.28)
    expected = one_compartment_oral(4.02, ka, ke, cl / ke, jnp.asarray(data.time[0]))
    np.testing.assert_allclose(theoph_fm3(theta, eta, s), expected, rtol=1e-12)


def test_poor_initial_estimates_reach_the_same_optimum():
    # V five times too small, CL and ka far off, Omega and sigma far too large: the one-
    # compartment oral model has two modes per subject (ka and ke swapped), and the inner
    # problem must not follow the optimiser's path into the wrong one
    start = NLMIXR.replace(
        theta={"tka": 0.0, "tcl": 0.0, "tv": 2.0},
        omega=np.eye(3),
        sigma={"add_sd": 3.0},
    )
    fit = NLMEEstimator(start, covariance=None).fit(theoph_data(per_kg=False))
    assert fit.converged_
    assert fit.ofv_ == pytest.approx(116.803, abs=1e-3)
    assert fit.theta_["tka"] == pytest.approx(0.464, abs=2e-3)
