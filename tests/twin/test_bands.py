"""Self-calibrating predictive bands (split conformal on the twin's own recent forecast errors)."""

from __future__ import annotations

import numpy as np
import pytest

from medtwin.twin._bands import BandCalibration


def _stream(cal: BandCalibration, rng: np.random.Generator, n: int, true_sd: float) -> float:
    """Forecasts claiming SD 1 (95% half-width 1.96) while readings scatter with ``true_sd``.

    Returns the share of readings inside the calibrated 95% band issued 30 minutes before.
    """
    horizon = np.arange(0.0, 65.0, 5.0)
    inside = []
    glucose = 120.0
    for k in range(n):
        t = 5.0 * k
        # the reading at t is scored against every open forecast, then a new forecast is issued
        reading = glucose + true_sd * rng.standard_normal()
        cal.score(t, reading)
        median = np.full(horizon.size, glucose)
        lo, hi = median - 1.96, median + 1.96
        bands = cal.apply(horizon, median, lo, hi, {0.95: (lo, hi)})
        cal.record(t + horizon, median, lo, hi)
        if k > 300:  # check the band issued now against the reading 30 minutes on (fresh draw)
            future = glucose + true_sd * rng.standard_normal()
            b_lo, b_hi = bands[0.95][0][6], bands[0.95][1][6]
            inside.append(b_lo <= future <= b_hi)
    return float(np.mean(inside))


@pytest.mark.parametrize("true_sd", [0.5, 3.0])
def test_bands_reach_their_nominal_coverage_whatever_the_ensemble_claims(true_sd: float) -> None:
    rng = np.random.default_rng(1)
    cal = BandCalibration(window=576, min_residuals=36)
    coverage = _stream(cal, rng, 1500, true_sd)
    assert coverage == pytest.approx(0.95, abs=0.025)
    # the 95% scale estimates true_sd (1.96 true_sd / 1.96)
    s = cal.scales(np.array([30.0]), 0.95)[0]
    assert s == pytest.approx(true_sd, rel=0.15)


def test_no_residuals_no_change_and_the_store_round_trips() -> None:
    cal = BandCalibration(min_residuals=5)
    h = np.array([0.0, 5.0, 10.0])
    med, lo, hi = np.full(3, 100.0), np.full(3, 90.0), np.full(3, 112.0)
    same = cal.apply(h, med, lo, hi, {0.8: (lo + 3, hi - 3)})
    np.testing.assert_array_equal(same[0.8][0], lo + 3)
    for k in range(10):
        cal.record(5.0 * k + h, med, lo, hi)
        cal.score(5.0 * (k + 1), 124.0)  # 24 above the median: twice the upper half-width
    assert cal.n_residuals()[5] >= 5
    wide = cal.apply(h, med, lo, hi, {0.95: (lo, hi)})[0.95]
    assert wide[1][1] == pytest.approx(124.0)  # median + 2 x the upper half-width (12)
    assert wide[0][1] == pytest.approx(80.0)  # and 2 x the lower one (10)
    assert wide[1][0] == hi[0]  # horizon 0 is never scored: the ensemble's band stays
    back = BandCalibration(min_residuals=5)
    back.restore(cal.state())
    assert back.n_residuals() == cal.n_residuals()
    np.testing.assert_array_equal(back.scales(h, 0.95), cal.scales(h, 0.95))
