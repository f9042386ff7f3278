"""Every kind of what-if moves its KPI the right way (paired replications, common random numbers).

All scenarios start from the same warm census of the example hospital (a 4-week run from
empty) and run one week, four replications each.  Where the effect is large the 95% interval
of the paired difference must exclude 0.
"""

import pytest

from medtwin.errors import ConfigurationError
from medtwin.hospital import Scenario, compare, load_hospital, simulate

EXAMPLE = load_hospital("example_hospital")

SCENARIOS = {
    "fewer_beds": {"extra_beds": {"medicine": -20, "AMU": -6}},
    "more_beds": Scenario(beds={"medicine": 199}, extra_beds={"AMU": 6}),
    "fewer_doctors": {"extra_staff": {"doctor": -2}},
    "new_roster": {
        "roster": {
            "doctor": {
                "shifts": [
                    {"start": "08:00", "end": "20:00", "staff": 12},
                    {"start": "20:00", "end": "08:00", "staff": 6},
                ]
            }
        }
    },
    "surge": {"surge": {"multiplier": 1.3, "from_h": 0, "to_h": 120}},
    "shorter_los": {"los_multiplier": 0.85},
    "lounge": {"discharge_lounge": {"capacity": 12}},
    "earlier_discharge": {"discharge_shift_h": -3},
}


@pytest.fixture(scope="module")
def comparison():
    warm = simulate(EXAMPLE, days=28, warmup_days=0, seed=100).snapshot()
    return compare(EXAMPLE, SCENARIOS, replications=4, days=7, seed=1, snapshot=warm)


def up(comparison, kpi, scenario):
    d, lo, hi = comparison.difference(kpi, scenario)
    assert lo > 0, (kpi, scenario, d, lo, hi)


def down(comparison, kpi, scenario):
    d, lo, hi = comparison.difference(kpi, scenario)
    assert hi < 0, (kpi, scenario, d, lo, hi)


def test_fewer_beds_mean_boarding(comparison):
    up(comparison, "boarding_h", "fewer_beds")
    up(comparison, "occupancy:medicine", "fewer_beds")
    up(comparison, "ed_los_h", "fewer_beds")


def test_more_beds_mean_less_boarding(comparison):
    d, _, _ = comparison.difference("boarding_h", "more_beds")
    assert d < 0
    down(comparison, "occupancy:medicine", "more_beds")


def test_fewer_doctors_mean_more_patients_leave_unseen(comparison):
    up(comparison, "lwbs_rate", "fewer_doctors")
    up(comparison, "door_to_provider_min", "fewer_doctors")
    up(comparison, "utilisation:doctor", "fewer_doctors")


def test_a_richer_roster_sees_patients_sooner(comparison):
    down(comparison, "door_to_provider_min", "new_roster")
    down(comparison, "utilisation:doctor", "new_roster")


def test_a_surge_crowds_the_ed(comparison):
    up(comparison, "arrivals_per_day", "surge")
    up(comparison, "ed_los_h", "surge")
    up(comparison, "lwbs_rate", "surge")


def test_shorter_stays_free_beds(comparison):
    down(comparison, "occupancy", "shorter_los")
    d, _, _ = comparison.difference("boarding_h", "shorter_los")
    assert d < 0


def test_a_discharge_lounge_frees_beds_earlier(comparison):
    down(comparison, "discharge_delay_h", "lounge")
    up(comparison, "discharged_before_noon", "lounge")
    assert comparison.kpis.loc["lounge", "lounge_per_day"].mean() > 5
    d, _, _ = comparison.difference("occupancy", "lounge")
    assert d < 0


def test_earlier_discharges_free_beds_earlier(comparison):
    down(comparison, "discharge_delay_h", "earlier_discharge")
    up(comparison, "discharged_before_noon", "earlier_discharge")
    d, _, _ = comparison.difference("occupancy", "earlier_discharge")
    assert d < 0


def test_the_comparison_table(comparison):
    table = comparison.table(["boarding_h", "lwbs_rate"])
    assert set(table.index.get_level_values("scenario")) == {"baseline", *SCENARIOS}
    row = table.loc[("lwbs_rate", "fewer_doctors")]
    assert row["significant"] and row["diff_low"] > 0
    assert row["ci_low"] <= row["mean"] <= row["ci_high"]
    # the baseline is the same run whatever scenarios ride along
    assert comparison.kpis.loc["baseline"].index.tolist() == [0, 1, 2, 3]


def test_scenario_names_must_be_unique_and_not_baseline():
    with pytest.raises(ConfigurationError, match="baseline"):
        compare("treat_sim_nelson2013", {"baseline": {}}, replications=2)
    with pytest.raises(ConfigurationError, match="unique"):
        compare("treat_sim_nelson2013", [Scenario(name="a"), Scenario(name="a")], replications=2)
