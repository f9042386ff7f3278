"""The flow model against queueing theory.

References: Gross, Shortle, Thompson & Harris, *Fundamentals of Queueing Theory*, 4th ed.
(Wiley 2008), §2.3 (M/M/c, Erlang's C formula) and §1.4 (Little's law); Law, *Simulation
Modeling and Analysis*, 5th ed. (2015), §8.6 (non-stationary Poisson process).

Run lengths.  At rho = 0.85 the waits of an M/M/5 queue are strongly autocorrelated: a
replication of 85,000 customers estimates Wq with a relative standard deviation of about 6.3%
(measured), so the standard error of the mean over N customers is about 6.3% * sqrt(85,000 / N);
that of P(wait) is about 0.4% * sqrt(10^6 / N).  The full check (Wq within 3% with 0.8726 in the
95% interval; P(wait) within 3%) needs ~4 million customers for a 3.4-sigma margin on Wq: it is
``slow`` (a few minutes on 2 busy cores; SimPy spends ~15-30 us per customer).  The quick check
runs 100,000 customers and asserts what that resolves with a margin of at least 3.5 sigma:
Wq within 20%, P(wait) within 6%, and Little's law within 0.5% in every replication (a
sample-path identity, off only by edge effects).
"""

import math

import numpy as np
import pytest

from medtwin.hospital import confidence_interval, erlang_c, replicate, simulate

C, RHO, MU = 5, 0.85, 1.0
LAM = RHO * C * MU  # per hour


def mmc_spec(servers=C, arrival_rate=LAM):
    """M/M/c in the hospital's own terms: one class, one step on ``servers`` servers."""
    return {
        "name": f"M/M/{servers}",
        "ed": {
            "arrivals": {"rate_per_hour": arrival_rate},
            "classes": {"all": {"share": 1, "pathway": "queue"}},
            "pathways": {
                "queue": [
                    {
                        "name": "service",
                        "use": ["server"],
                        "provider": True,
                        "duration": {"dist": "exponential", "mean": 1 / MU, "unit": "h"},
                    }
                ]
            },
            "resources": {"server": {"capacity": servers}},
        },
    }


def test_erlang_c_formula_gives_the_textbook_values():
    r = erlang_c(C, LAM, MU)
    # Gross et al. (2008) eqs. 2.31-2.33 at c = 5, rho = 0.85
    assert r.p_wait == pytest.approx(0.6545, abs=5e-5)
    assert r.wq == pytest.approx(0.8726, abs=5e-5)
    assert r.l == pytest.approx(LAM * r.w)  # Little
    # c = 1 is M/M/1: P(wait) = rho, Wq = rho / (mu - lambda)
    one = erlang_c(1, 0.5, 1.0)
    assert one.p_wait == pytest.approx(0.5)
    assert one.wq == pytest.approx(1.0)
    # a large c stays finite (terms are built iteratively)
    assert 0 < erlang_c(500, 480.0, 1.0).p_wait < 1
    with pytest.raises(ValueError, match="unstable"):
        erlang_c(2, 2.0, 1.0)


def _mmc(replications, hours, seed, workers=None):
    return replicate(
        mmc_spec(),
        replications=replications,
        days=hours / 24,
        warmup_days=100 / 24,
        seed=seed,
        workers=workers,
    ).kpis


def _littles_law_gaps(k):
    """|L / (lambda W) - 1| per replication: time-average number in system against the
    observed arrival rate times the mean time in system."""
    lam_w = k["arrivals_per_day"] / 24 * k["ed_los_h"]
    return (k["ed_census"] / lam_w - 1).abs()


def test_mmc_quick_check_against_erlang_c():
    theory = erlang_c(C, LAM, MU)
    k = _mmc(replications=4, hours=6_000, seed=2024)
    assert abs(k["wait_min:service"].mean() / 60 / theory.wq - 1) < 0.20
    assert abs(k["waited:service"].mean() / theory.p_wait - 1) < 0.06
    assert (_littles_law_gaps(k) < 0.005).all()


@pytest.mark.slow
def test_mmc_reproduces_erlang_c():
    """c = 5, rho = 0.85, mu = 1: Wq = 0.8726 and P(wait) = 0.6545 (Gross et al. 2008).

    48 replications of 20,000 hours (4.1 million customers): the standard error of Wq is
    about 0.9%, so 3% is a 3.4-sigma margin; that of P(wait) about 0.2%.
    """
    theory = erlang_c(C, LAM, MU)
    k = _mmc(replications=48, hours=20_000, seed=11, workers=2)
    mean, low, high = confidence_interval(k["wait_min:service"] / 60)
    assert abs(mean / theory.wq - 1) < 0.03
    assert low < theory.wq < high
    assert abs(k["waited:service"].mean() / theory.p_wait - 1) < 0.03
    assert (_littles_law_gaps(k) < 0.005).all()


def test_nonstationary_arrivals_reproduce_the_hourly_profile():
    """A 7 x 24 profile: each hour-of-day mean count within 5% over 200 days (Law 2015 §8.6).

    The quietest hour has 32 arrivals/h: 6,400 over 200 days, a standard error of 1.25%, so 5%
    is a 4-sigma margin for each of the 24 hours; weekday totals are tighter still.
    """
    hod = np.array(
        [
            2.6,
            2.1,
            1.8,
            1.5,
            1.4,
            1.4,
            1.8,
            2.8,
            4.4,
            5.8,
            6.6,
            6.7,
            6.4,
            6.2,
            6.0,
            5.8,
            5.7,
            5.6,
            5.5,
            5.2,
            4.7,
            4.1,
            3.6,
            3.1,
        ]
    )
    dow = np.array([1.10, 1.01, 0.99, 0.98, 0.98, 0.96, 0.98])
    rates = np.outer(dow, 32 + (hod - hod.min()) / (hod.max() - hod.min()) * 40)
    assert rates.min() >= 32 * 0.96
    spec = {
        "name": "arrivals",
        "ed": {
            "arrivals": {"rate_per_hour": rates.tolist()},
            "classes": {"all": {"share": 1, "pathway": "p"}},
            "pathways": {"p": [{"name": "register", "duration": {"dist": "fixed", "value": 0}}]},
        },
    }
    days = 200
    run = simulate(spec, days=days, seed=5)
    counts = run.hourly()["arrivals"].to_numpy().reshape(days, 24)
    weekday = np.arange(days) % 7  # the run starts on a Monday at midnight
    expected_by_hour = np.array([rates[weekday, h].mean() for h in range(24)])
    np.testing.assert_allclose(counts.mean(axis=0), expected_by_hour, rtol=0.05)
    by_day = np.array([counts[weekday == d].sum(axis=1).mean() for d in range(7)])
    np.testing.assert_allclose(by_day, rates.sum(axis=1), rtol=0.05)
    # the hours differ by a factor of 2.2: a stationary process would fail
    assert counts.mean(axis=0).max() / counts.mean(axis=0).min() > 2


def test_a_rate_of_zero_means_no_arrivals():
    rates = [0.0] * 6 + [10.0] * 12 + [0.0] * 6
    spec = mmc_spec()
    spec["ed"]["arrivals"] = {"rate_per_hour": rates}
    run = simulate(spec, days=5, seed=1)
    counts = run.hourly()["arrivals"].to_numpy().reshape(5, 24)
    assert counts[:, :6].sum() == 0 and counts[:, 18:].sum() == 0
    assert math.isclose(counts[:, 6:18].mean(), 10, rel_tol=0.2)
