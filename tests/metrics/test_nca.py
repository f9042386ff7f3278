"""NCA against analytic profiles: the linear-up/log-down rule is exact for linear rises and
exponential declines, and log-linear regression recovers a mono-exponential's rate exactly."""

import numpy as np
import pytest

from medtwin.errors import ParameterError
from medtwin.metrics import auc, exposure, lambda_z, nca


def test_linear_up_log_down_is_exact_on_a_rise_then_an_exponential_decline():
    # C rises linearly to 10 at 2 h, then falls as 10 exp(-0.2 (t - 2))
    t = np.array([0.0, 1.0, 2.0, 4.0, 8.0, 12.0])
    c = np.where(t <= 2, 5 * t, 10 * np.exp(-0.2 * (t - 2)))
    exact = 10.0 + 10 / 0.2 * (1 - np.exp(-0.2 * 10))
    assert float(auc(t, c)) == pytest.approx(exact, rel=1e-12)
    # the plain linear trapezoid overestimates the decline: the rule matters
    assert float(np.trapezoid(c, t)) > exact * 1.01


def test_nca_of_a_one_compartment_oral_profile():
    ka, k, dose, v = 1.5, 0.1, 100.0, 20.0
    t = np.array([0.25, 0.5, 1, 2, 3, 4, 6, 8, 12, 24, 36, 48])
    c = dose / v * ka / (ka - k) * (np.exp(-k * t) - np.exp(-ka * t))
    row = nca(t, c, dose_mg=dose).iloc[0]
    assert row.tmax_h == 2.0 and row.cmax == c.max()
    # best adjusted R^2 takes 6 h onwards, where absorption still adds exp(-1.5 x 6) = 1e-4
    assert row.lambda_z_per_h == pytest.approx(k, rel=2e-3)
    assert row.half_life_h == pytest.approx(np.log(2) / row.lambda_z_per_h, rel=1e-12)
    assert lambda_z(t, c, n_points=3)["lambda_z_per_h"] == pytest.approx(k, rel=1e-9)
    # AUCinf of the model is dose / CL = dose / (k V) = 50; the samples miss only the first 0.25 h
    assert row.auc_inf == pytest.approx(50.0, rel=0.01)
    assert row.cl_f_l_per_h == pytest.approx(2.0, rel=0.01)
    assert row.vz_f_l == pytest.approx(20.0, rel=0.01)
    extrapolated = row.clast / row.lambda_z_per_h
    assert row.auc_inf == pytest.approx(row.auc_last + extrapolated, rel=1e-12)
    assert row.auc_extrapolated_percent == pytest.approx(100 * extrapolated / row.auc_inf, rel=1e-9)


def test_lambda_z_picks_the_terminal_phase_by_adjusted_r2():
    # biexponential: a fast phase (2/h) dies out; the last points follow exp(-0.1 t)
    t = np.array([0.5, 1, 2, 3, 4, 6, 8, 12, 16, 24])
    c = 50 * np.exp(-2 * t) + 5 * np.exp(-0.1 * t)
    fit = lambda_z(t, c)
    assert fit["lambda_z_per_h"] == pytest.approx(0.1, rel=2e-3)
    assert fit["n_lambda_z"] == 6  # 4 h on: the fast phase is left out
    assert fit["r2_adj"] == pytest.approx(0.99999317, abs=1e-8)  # that of the chosen fit
    assert lambda_z(t, c, n_points=9)["lambda_z_per_h"] > 0.11  # as it would bias the slope
    assert np.isnan(lambda_z(t, c, n_points=10)["lambda_z_per_h"])  # only 9 points follow Cmax
    fixed = lambda_z(t, c, n_points=3)
    assert fixed["n_lambda_z"] == 3


def test_profiles_are_vectorised_and_zeros_after_tlast_are_ignored():
    t = np.array([0.0, 1.0, 2.0, 3.0, 4.0, 5.0])
    c = np.array([[0, 8, 4, 2, 1, 0.5], [0, 8, 4, 2, 0, 0]], dtype=float)
    table = nca(t, c)
    assert table.tlast_h.tolist() == [5.0, 3.0]
    # the BLQ zeros after tlast add nothing to AUClast
    assert table.auc_last[1] == pytest.approx(4 + 4 / np.log(2) + 2 / np.log(2))
    assert table.lambda_z_per_h[0] == pytest.approx(np.log(2))
    e = exposure(t, c, start_h=1.0, end_h=3.0)
    assert e.cmax.tolist() == [8.0, 8.0] and e.cmin.tolist() == [2.0, 2.0]


@pytest.mark.parametrize(
    ("t", "c", "message"),
    [
        ([0, 1, 2], [1, np.nan, 1], "finite"),
        ([0, 1, 2], [1, -1, 1], ">= 0"),
        ([0, 2, 1], [1, 1, 1], "increasing"),
        ([0, 1], [[1, 1, 1]], "do not match"),
    ],
)
def test_bad_profiles_are_rejected(t, c, message):
    with pytest.raises(ParameterError, match=message):
        nca(t, c)
