from __future__ import annotations

import math

import jax.numpy as jnp
import numpy as np
import pandas as pd
import pytest

from medtwin.errors import ParameterError
from medtwin.metrics import (
    coefficient_of_variation,
    glycaemic_summary,
    gmi,
    hbgi,
    lbgi,
    risk_index,
    time_above,
    time_below,
    time_in_range,
)
from medtwin.metrics.glucose import SUMMARY_COLUMNS


def _r(bg: float) -> float:
    """Kovatchev et al. 1997 risk function, written out independently of the module."""
    return 10 * (1.509 * (math.log(bg) ** 1.084 - 5.381)) ** 2


# Readings on and around every consensus threshold (Battelino et al. 2019):
# TIR 70-180 inclusive, TBR < 70 and < 54, TAR > 180 and > 250.
EDGES = [53.9, 54.0, 69.9, 70.0, 180.0, 180.1, 250.0, 250.1]


def test_ranges_follow_the_consensus_bounds() -> None:
    assert float(time_in_range(EDGES)) == 25.0  # 70 and 180
    assert float(time_below(EDGES)) == 37.5  # 53.9, 54, 69.9
    assert float(time_below(EDGES, 54.0)) == 12.5  # 53.9
    assert float(time_above(EDGES)) == 37.5  # 180.1, 250, 250.1
    assert float(time_above(EDGES, 250.0)) == 12.5  # 250.1
    assert float(time_in_range(EDGES, 54.0, 250.0)) == 75.0


def test_ranges_partition_the_trace() -> None:
    g = np.random.default_rng(1).uniform(30.0, 400.0, (5, 288))
    total = time_below(g) + time_in_range(g) + time_above(g)
    np.testing.assert_allclose(total, 100.0)
    assert total.shape == (5,)


def test_risk_function_anchor_points() -> None:
    # Kovatchev et al. 1997: the transform is symmetric about 112.5 mg/dL and maps the clinical
    # range 20-600 mg/dL onto +-sqrt(10), so r(20) = r(600) = 100 and r(112.5) = 0.
    assert float(lbgi([20.0])) == pytest.approx(100.0, abs=0.1)
    assert float(hbgi([600.0])) == pytest.approx(100.0, abs=0.1)
    assert float(lbgi([112.5])) == pytest.approx(0.0, abs=1e-5)
    assert float(hbgi([112.5])) == 0.0  # f(112.5) is just below zero
    assert float(hbgi([20.0])) == 0.0
    assert float(lbgi([600.0])) == 0.0


def test_risk_indices_average_over_all_readings() -> None:
    g = [50.0, 200.0, 200.0, 200.0]
    assert float(lbgi(g)) == pytest.approx(_r(50.0) / 4, rel=1e-12)
    assert float(hbgi(g)) == pytest.approx(3 * _r(200.0) / 4, rel=1e-12)
    assert float(risk_index(g)) == pytest.approx(float(lbgi(g) + hbgi(g)), rel=1e-12)
    # simglucose 0.2.11 report.risk_index_trace on this trace (one 60-min window at 15 min):
    # LBGI 5.625111, HBGI 8.703561, Risk Index 14.328672 -- the published definition.
    assert float(lbgi(g)) == pytest.approx(5.625111, abs=1e-6)
    assert float(hbgi(g)) == pytest.approx(8.703561, abs=1e-6)
    assert float(risk_index(g)) == pytest.approx(14.328672, abs=1e-6)
    # simglucose 0.2.11 analysis.risk.risk_index averages over the low (high) readings only:
    # (22.500445, 11.604748, 34.105194) -- documented, not reproduced.
    assert float(lbgi(g)) != pytest.approx(22.500445, rel=0.1)


def test_cv_uses_the_sample_sd() -> None:
    g = np.array([[100.0, 200.0], [120.0, 120.0]])
    np.testing.assert_allclose(coefficient_of_variation(g), [100 * math.sqrt(5000) / 150, 0.0])
    with pytest.raises(ParameterError, match="at least 2 reading"):
        coefficient_of_variation([120.0])


@pytest.mark.parametrize(
    ("mean_mg_dl", "gmi_percent"),
    # Bergenstal et al., Diabetes Care 41:2275 (2018), Table 1: mean CGM glucose -> GMI
    [(100, 5.7), (125, 6.3), (150, 6.9), (154, 7.0), (175, 7.5), (200, 8.1), (300, 10.5)],
)
def test_gmi_matches_bergenstal_table(mean_mg_dl: float, gmi_percent: float) -> None:
    g = [mean_mg_dl - 20.0, mean_mg_dl, mean_mg_dl + 20.0]
    assert float(gmi(g)) == pytest.approx(gmi_percent, abs=0.05)


def test_metrics_return_one_value_per_trace() -> None:
    g = np.full((2, 3, 48), 150.0)
    for metric in (time_in_range, time_below, time_above, lbgi, hbgi, risk_index, gmi):
        out = metric(g)
        assert isinstance(out, np.ndarray)
        assert out.shape == (2, 3), metric.__name__
        assert out.dtype == np.float64
    assert np.asarray(gmi([150.0])).shape == ()
    # JAX arrays are accepted
    assert float(time_in_range(jnp.array([60.0, 100.0]))) == 50.0


@pytest.mark.parametrize(
    ("bad", "match"),
    [
        ([100.0, math.nan, math.nan, 120.0], r"2 of 4 readings that are NaN \(2\)"),
        ([100.0, 0.0, -5.0], r"2 of 3 readings"),
        ([100.0, math.inf], r"1 of 2 readings"),
        ([], "at least 1 reading"),
        (120.0, "at least 1 reading"),
        (["high"], "must be numbers"),
    ],
)
def test_bad_glucose_is_rejected(bad: object, match: str) -> None:
    for metric in (time_in_range, time_below, time_above, lbgi, hbgi, risk_index, gmi):
        with pytest.raises(ParameterError, match=match):
            metric(bad)


def test_risk_needs_glucose_of_at_least_one_mg_dl() -> None:
    with pytest.raises(ParameterError, match=">= 1 mg/dL"):
        lbgi([0.5, 100.0])
    assert float(time_below([0.5, 100.0])) == 50.0


def test_time_in_range_rejects_reversed_bounds() -> None:
    with pytest.raises(ParameterError, match="low_mg_dl <= high_mg_dl"):
        time_in_range([100.0], 180.0, 70.0)


def test_summary_has_one_row_per_patient() -> None:
    rng = np.random.default_rng(2)
    g = rng.uniform(40.0, 350.0, (3, 288))
    summary = glycaemic_summary(g, ["adult#001", "adult#002", "child#001"])
    assert isinstance(summary, pd.DataFrame)
    assert tuple(summary.columns) == SUMMARY_COLUMNS
    assert list(summary.index) == ["adult#001", "adult#002", "child#001"]
    assert summary.index.name == "patient"
    np.testing.assert_allclose(summary["mean_mg_dl"], g.mean(axis=1))
    np.testing.assert_allclose(summary["sd_mg_dl"], g.std(axis=1, ddof=1))
    np.testing.assert_allclose(summary["cv_percent"], coefficient_of_variation(g))
    np.testing.assert_allclose(summary["tir_70_180_percent"], time_in_range(g))
    np.testing.assert_allclose(summary["tbr_54_percent"], time_below(g, 54.0))
    np.testing.assert_allclose(summary["tar_250_percent"], time_above(g, 250.0))
    np.testing.assert_allclose(summary["risk_index"], summary["lbgi"] + summary["hbgi"])
    np.testing.assert_allclose(summary["gmi_percent"], gmi(g))
    assert summary.dtypes.eq(np.float64).all()


def test_summary_of_one_trace_and_default_names() -> None:
    summary = glycaemic_summary([100.0, 150.0, 200.0])
    assert list(summary.index) == [0]
    assert summary.loc[0, "mean_mg_dl"] == 150.0


def test_summary_rejects_mismatched_names_and_3d_input() -> None:
    with pytest.raises(ParameterError, match="2 patient names for 3 glucose traces"):
        glycaemic_summary(np.full((3, 10), 120.0), ["a", "b"])
    with pytest.raises(ParameterError, match="shape"):
        glycaemic_summary(np.full((2, 3, 10), 120.0))
