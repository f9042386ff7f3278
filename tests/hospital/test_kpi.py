import numpy as np
import pandas as pd
import pytest
from scipy import stats

from medtwin.errors import ConfigurationError
from medtwin.hospital import (
    choose_warmup,
    confidence_interval,
    mser5,
    paired_difference,
    replicate_until,
    simulate,
)
from medtwin.hospital.kpi import summarise

# a ward filled by direct admissions only: starts empty, fills over ~3 weeks
WARD = {
    "name": "ward",
    "units": {
        "W": {
            "beds": 80,
            "los": {"dist": "lognormal", "mean": 6, "sd": 5, "unit": "d"},
            "discharge_window": False,
        }
    },
    "admissions": {
        "direct": {
            "unit": "W",
            "per_weekday": [11] * 7,
            "poisson": True,
            "between": ["00:00", "24:00"],
            "elective": False,
        }
    },
}


def test_confidence_interval_is_the_t_interval_and_covers():
    x = [3.1, 2.9, 3.4, 3.0, 2.6]
    m, lo, hi = confidence_interval(x)
    h = stats.t.ppf(0.975, 4) * np.std(x, ddof=1) / np.sqrt(5)
    assert (m, lo, hi) == pytest.approx((np.mean(x), np.mean(x) - h, np.mean(x) + h))
    # coverage of the 95% interval for n = 8 normal samples: 0.95 within 3 standard errors
    rng = np.random.default_rng(0)
    samples = rng.normal(10.0, 2.0, size=(4000, 8))
    covered = [lo < 10.0 < hi for _, lo, hi in map(confidence_interval, samples)]
    assert np.mean(covered) == pytest.approx(0.95, abs=3 * np.sqrt(0.95 * 0.05 / 4000))
    assert np.isnan(confidence_interval([1.0])[1])
    d, lo, hi = paired_difference([2.0, 3.0, 4.1], [1.0, 2.1, 3.0])
    assert d == pytest.approx(1.0) and lo < 1.0 < hi


def test_summarise_reports_relative_half_width():
    table = pd.DataFrame({"a": [1.0, 1.1, 0.9, 1.0], "zero": [0.0] * 4})
    s = summarise(table)
    assert s.loc["a", "relative_half_width"] == pytest.approx(
        (s.loc["a", "ci_high"] - s.loc["a", "ci_low"]) / 2 / s.loc["a", "mean"]
    )
    assert s.loc["zero", "relative_half_width"] == 0.0


def test_mser5_finds_the_end_of_a_transient():
    rng = np.random.default_rng(1)
    t = np.arange(600)
    transient = 50 * np.exp(-t / 20)  # gone after ~100 observations
    x = 100 - transient + rng.normal(0, 2, t.size)
    cut, stat = mser5(x)
    assert 40 <= cut <= 150 and cut % 5 == 0
    assert stat.size == 600 // 5 // 2 + 1
    assert mser5(rng.normal(0, 1, 500))[0] <= 50  # stationary from the start
    with pytest.raises(ValueError, match="at least 10"):
        mser5([1.0] * 9)


def test_choose_warmup_on_a_filling_ward():
    choice = choose_warmup(WARD, days=150, replications=3, seed=2)
    assert 10 <= choice.days <= 60 and not choice.at_limit
    # after the cut the ward is near its equilibrium: 11/day x 6 d = 66 beds
    assert choice.series[choice.days :].mean() == pytest.approx(66, rel=0.08)
    assert choice.series[:5].mean() < 40
    with pytest.raises(ConfigurationError, match="series"):
        choose_warmup(WARD, days=30, replications=2, series="queue")


def test_replications_until_the_target_precision():
    reps = replicate_until(
        "treat_sim_nelson2013",
        kpis=("ed_los_h", "wait_min:registration"),
        target=0.06,
        min_replications=5,
        max_replications=100,
        seed=7,
    )
    n = reps.n
    assert 5 < n < 100 and reps.precision["met"]
    rel = summarise(reps.kpis[["ed_los_h", "wait_min:registration"]])["relative_half_width"]
    assert (rel <= 0.06).all()
    shorter = summarise(reps.kpis.iloc[: n - 1][["ed_los_h", "wait_min:registration"]])
    assert (shorter["relative_half_width"] > 0.06).any()  # n is the first that meets it
    # the answer does not depend on how replications are batched
    again = replicate_until(
        "treat_sim_nelson2013",
        kpis=("ed_los_h", "wait_min:registration"),
        target=0.06,
        min_replications=5,
        max_replications=100,
        seed=7,
        batch=17,
    )
    pd.testing.assert_frame_equal(reps.kpis, again.kpis)
    capped = replicate_until(
        "treat_sim_nelson2013", kpis=("ed_los_h",), target=0.001, max_replications=8, seed=7
    )
    assert capped.n == 8 and not capped.precision["met"]
    with pytest.raises(ConfigurationError, match="unknown KPIs"):
        replicate_until("treat_sim_nelson2013", kpis=("nonsense",), max_replications=6)


def test_kpis_skip_the_warmup():
    run = simulate(WARD, days=60, warmup_days=30, seed=4)
    k = run.kpis()
    hourly = run.hourly()["occupied:W"].to_numpy()
    assert k["occupancy:W"] * 80 == pytest.approx(hourly[30 * 24 :].mean())
    assert k["occupancy:W"] * 80 > hourly.mean()  # the empty start is left out
    with pytest.raises(ConfigurationError, match="warmup_days"):
        simulate(WARD, days=10, warmup_days=10)
