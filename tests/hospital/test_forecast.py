from datetime import UTC, datetime, timedelta

import numpy as np
import pytest

from medtwin.errors import ConfigurationError
from medtwin.hospital import CensusSnapshot, Occupant, forecast, load_hospital, simulate

EXAMPLE = load_hospital("example_hospital")


@pytest.fixture(scope="module")
def census():
    """A live-looking census: the example hospital after four weeks, dated in real time."""
    snap = simulate(EXAMPLE, days=28, warmup_days=0, seed=100).snapshot()
    # move it to a Tuesday 09:30 UTC (the ADT feed's clock), keeping everyone's elapsed stay
    at = datetime(2025, 1, 14, 9, 30, tzinfo=UTC)
    shift = at - snap.at
    occupants = tuple(
        Occupant(
            o.visit_id,
            o.patient_id,
            o.unit,
            o.bed,
            o.unit_since + shift,
            o.arrived_at + shift,
            o.patient_class,
            o.acuity,
        )
        for o in snap.occupants
    )
    return CensusSnapshot(at, occupants)


@pytest.fixture(scope="module")
def fc(census):
    return forecast(EXAMPLE, census, horizon_hours=48, replications=12, seed=1)


def test_the_forecast_starts_from_the_census(census, fc):
    assert fc.times[0] == census.at and len(fc.times) == 49
    assert fc.replications == 12
    counts = census.counts()
    for u in EXAMPLE.units:
        assert (fc.samples[f"occupied:{u}"][:, 0] == counts.get(u, 0)).all(), u
    assert (fc.samples["ed"][:, 0] == counts.get("ED", 0)).all()
    boarders = sum(o.unit == "ED" and o.patient_class == "I" for o in census.occupants)
    assert (fc.samples["boarding"][:, 0] == boarders).all()
    # and then spreads out
    assert fc.samples["occupied:medicine"][:, -1].std() > 0


def test_bands_are_ordered_quantiles(fc):
    bands = fc.bands(["occupied:medicine", "ed", "boarding"])
    for series in ("occupied:medicine", "ed", "boarding"):
        b = bands[series]
        assert (b["q0.05"] <= b["q0.5"]).all() and (b["q0.5"] <= b["q0.95"]).all()
        assert (b["q0.25"] <= b["q0.75"]).all()
    occ = fc.occupancy()
    assert ((occ >= 0) & (occ <= 1)).all().all()
    assert set(occ.columns.get_level_values("unit")) == set(EXAMPLE.units)
    full = fc.probability_full()
    assert ((full >= 0) & (full <= 1)).all().all()
    ed = fc.ed()
    assert {"ed", "waiting", "boarding", "arrivals"} <= set(ed.columns.get_level_values("series"))
    # a day of arrivals is about the hospital's 150
    daily = fc.samples["arrivals"][:, :24].sum(axis=1).mean()
    assert daily == pytest.approx(150, rel=0.15)
    with pytest.raises(ConfigurationError, match="unknown series"):
        fc.bands(["occupied:ward9"])


def test_same_seed_same_forecast(census, fc):
    # replication r's path depends on (seed, r) only, not on how many are run
    again = forecast(EXAMPLE, census, horizon_hours=48, replications=3, seed=1)
    for name, x in again.samples.items():
        np.testing.assert_array_equal(np.nan_to_num(x), np.nan_to_num(fc.samples[name][:3]))
    other = forecast(EXAMPLE, census, horizon_hours=48, replications=3, seed=2)
    assert not np.array_equal(other.samples["ed"], again.samples["ed"])


def test_long_stayers_are_expected_to_stay_longer():
    """Residual stay is drawn given the time already spent: X - e | X > e.

    A ward with no admissions and a lognormal stay (mean 5 d, sd 6 d): of 40 patients who have
    been in for ``e``, on average ``40 S(e + 3 d) / S(e)`` are still there three days later.
    """
    ward = {
        "name": "ward",
        "units": {
            "W": {
                "beds": 60,
                "aliases": ["W1"],
                "discharge_window": False,
                "los": {"dist": "lognormal", "mean": 5, "sd": 6, "unit": "d"},
            }
        },
    }
    at = datetime(2025, 3, 3, 8, tzinfo=UTC)
    sf = load_hospital(ward).units["W"].los.frozen().sf
    for elapsed_d in (0.05, 4.0, 20.0):
        since = at - timedelta(days=elapsed_d)
        snap = CensusSnapshot(
            at, tuple(Occupant(f"v{i}", f"p{i}", "W1", None, since, since) for i in range(40))
        )
        fc = forecast(ward, snap, horizon_hours=72, replications=50, seed=3)
        left = fc.samples["occupied:W"]
        assert (left[:, 0] == 40).all()  # "W1" is an alias of W
        e = elapsed_d * 1440
        expected = 40 * sf(e + 3 * 1440) / sf(e)
        # 2000 patient paths: a binomial standard error under 0.3 patients
        assert left[:, -1].mean() == pytest.approx(expected, abs=1.2), elapsed_d


def test_a_what_if_forecast(census, fc):
    more = forecast(
        EXAMPLE,
        census,
        horizon_hours=48,
        replications=12,
        seed=1,
        scenario={"extra_beds": {"medicine": 20}},
    )
    assert more.beds["medicine"] == EXAMPLE.units["medicine"].beds + 20
    assert more.samples["boarding"][:, 24:].mean() <= fc.samples["boarding"][:, 24:].mean()


def test_an_unknown_unit_is_an_error(census):
    at = census.at
    bad = CensusSnapshot(at, (*census.occupants[:3], Occupant("x", "y", "WARD 7", None, at, at)))
    with pytest.raises(ConfigurationError, match=r"WARD 7.*aliases"):
        forecast(EXAMPLE, bad, horizon_hours=6, replications=2)
    naive = CensusSnapshot(at.replace(tzinfo=None), census.occupants[:2])
    with pytest.raises(ConfigurationError, match="timezone-aware"):
        forecast(EXAMPLE, naive, horizon_hours=6, replications=2)
    with pytest.raises(ConfigurationError, match="horizon_hours"):
        forecast(EXAMPLE, census, horizon_hours=0, replications=2)
