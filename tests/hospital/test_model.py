import numpy as np
import pytest

from medtwin.hospital import load_hospital, replicate, simulate
from medtwin.hospital.model import ADMITTED, HOME, IN_ED, LWBS

EXAMPLE = load_hospital("example_hospital")


@pytest.fixture(scope="module")
def example_run():
    """The example hospital: its own 35-day warm-up, then three weeks measured."""
    return simulate(EXAMPLE, days=56, seed=1)


def test_the_example_hospital_gives_sane_kpis(example_run):
    k = example_run.kpis()
    assert k["arrivals_per_day"] == pytest.approx(150, rel=0.1)
    for u in EXAMPLE.units:
        assert 0.5 < k[f"occupancy:{u}"] < 1.0, u
        assert k[f"los_d:{u}"] > 0
    assert 0.8 < k["occupancy"] < 0.98  # G&A occupancy in England runs at ~93% (KH03)
    for r in EXAMPLE.ed.resources:
        assert 0 < k[f"utilisation:{r}"] <= 1.0, r
    assert 0 <= k["lwbs_rate"] < 0.10
    assert 0.5 < k["within_4h"] < 0.95
    assert 0.20 < k["admission_rate"] < 0.32
    assert 0 < k["door_to_provider_median_min"] < k["door_to_provider_min"] < 120
    assert 1 < k["ed_los_h"] < 8 and k["ed_los_median_h"] < k["ed_los_p95_h"]
    assert k["boarding_h"] > 0  # at ~90% occupancy some admitted patients wait for a bed
    assert k["admissions_per_day"] == pytest.approx(k["discharges_per_day"], rel=0.1)
    # discharges follow the hour-of-day profile: ~15% before noon
    profile = np.asarray(EXAMPLE.discharge.hour_profile)
    assert k["discharged_before_noon"] == pytest.approx(
        profile[:12].sum() / profile.sum(), abs=0.03
    )
    # the most urgent are seen first
    a = example_run.attendance_frame()
    seen = a.dropna(subset=["t_seen"])
    d2p = (seen["t_seen"] - seen["t_arrival"]).groupby(seen["cls"], observed=True).quantile(0.9)
    assert d2p["immediate"] < d2p["very_urgent"] < d2p["urgent"] < d2p["standard"]


def test_hourly_series_are_consistent(example_run):
    h = example_run.hourly()
    assert len(h) == 56 * 24
    assert (h.filter(like="queue:") >= 0).all().all()
    assert (h["ed"] >= h["waiting"]).all()
    for u, unit in EXAMPLE.units.items():
        assert h[f"occupied:{u}"].max() <= unit.beds
    # arrivals over a day follow the profile: more at 11:00 than at 04:00
    by_hour = h["arrivals"].groupby(h.index.hour).mean()
    assert by_hour[11] > 3 * by_hour[4]
    census = example_run.census()
    assert len(census) == 56 * 24 + 1
    # every attendance ended one way or another; outcomes match their records
    att = example_run.attendances
    done = att["outcome"] != IN_ED
    assert np.isfinite(att["t_departure"][done]).all()
    assert np.isnan(att["t_seen"][att["outcome"] == LWBS]).all()
    assert np.isfinite(att["t_dta"][att["outcome"] == ADMITTED]).all()
    assert np.isnan(att["t_dta"][att["outcome"] == HOME]).all()


def test_snapshot_of_a_run_is_its_final_census(example_run):
    snap = example_run.snapshot()
    census = example_run.census().iloc[-1]
    counts = snap.counts()
    for u in EXAMPLE.units:
        assert counts.get(u, 0) == census[f"occupied:{u}"]
    assert counts.get("ED", 0) == census["ed"]
    # a run started from it starts with the same census
    again = simulate(EXAMPLE, days=1, seed=9, snapshot=snap)
    first = again.census().iloc[0]
    for u in EXAMPLE.units:
        assert first[f"occupied:{u}"] == census[f"occupied:{u}"]
    assert first["ed"] == census["ed"]
    assert first["boarding"] == census["boarding"]


def test_same_seed_same_run_and_common_random_numbers():
    a = simulate(EXAMPLE, days=7, warmup_days=0, seed=4)
    b = simulate(EXAMPLE, days=7, warmup_days=0, seed=4)
    assert a.kpis() == b.kpis()
    other = simulate(EXAMPLE, days=7, warmup_days=0, seed=5)
    assert other.kpis()["ed_los_h"] != a.kpis()["ed_los_h"]
    # a scenario sees the same patients: arrival times, classes, activity times
    more = simulate(EXAMPLE, days=7, warmup_days=0, seed=4, scenario={"extra_beds": {"AMU": 10}})
    for key in ("t_arrival", "cls", "unit"):
        np.testing.assert_array_equal(a.attendances[key], more.attendances[key])
    da, dm = a.attendances["duration"], more.attendances["duration"]
    both = np.isfinite(da) & np.isfinite(dm)
    assert both.sum() > 1000
    np.testing.assert_array_equal(da[both], dm[both])


def test_a_surge_adds_patients_and_keeps_the_baseline_ones():
    base = simulate(EXAMPLE, days=5, warmup_days=0, seed=8)
    surge = simulate(
        EXAMPLE,
        days=5,
        warmup_days=0,
        seed=8,
        scenario={"surge": {"multiplier": 1.5, "from_h": 24, "to_h": 72}},
    )
    b, s = base.attendances, surge.attendances
    original = s["cohort"] == 0
    np.testing.assert_array_equal(s["t_arrival"][original], b["t_arrival"])
    np.testing.assert_array_equal(s["cls"][original], b["cls"])
    extra = s["t_arrival"][s["cohort"] == 1]
    assert extra.min() >= 24 * 60 and extra.max() < 72 * 60
    n_base = ((b["t_arrival"] >= 1440) & (b["t_arrival"] < 4320)).sum()
    assert len(extra) == pytest.approx(0.5 * n_base, rel=0.25)
    quiet = simulate(
        EXAMPLE, days=5, warmup_days=0, seed=8, scenario={"surge": {"multiplier": 0.5}}
    )
    kept = quiet.attendances["t_arrival"]
    assert np.isin(kept, b["t_arrival"]).all()
    assert len(kept) == pytest.approx(0.5 * len(b["t_arrival"]), rel=0.1)


def test_a_shift_change_never_interrupts_a_patient_in_service():
    """Two doctors from 08:00 to 12:00, none otherwise; every consultation takes 90 minutes."""
    spec = {
        "name": "clinic",
        "ed": {
            "arrivals": {"rate_per_hour": [0.0] * 7 + [3.0] * 7 + [0.0] * 10},
            "classes": {"all": {"share": 1, "pathway": "p"}},
            "pathways": {
                "p": [
                    {
                        "name": "consult",
                        "use": ["doctor"],
                        "provider": True,
                        "duration": {"dist": "fixed", "value": 90},
                    }
                ]
            },
            "resources": {"doctor": {"shifts": [{"start": "08:00", "end": "12:00", "staff": 2}]}},
        },
    }
    run = simulate(spec, days=3, seed=2)
    a = run.attendance_frame()
    served = a.dropna(subset=["t_seen"])
    start_clock = served["t_seen"] % 1440
    assert ((start_clock >= 8 * 60) & (start_clock < 12 * 60)).all()  # nobody starts off shift
    assert np.allclose(served["t_departure"] - served["t_seen"], 90.0)  # nobody is cut short
    end_clock = served["t_departure"] % 1440
    assert (end_clock > 12 * 60).any()  # consultations begun before noon finish after it
    # those not seen by the end of the day wait for the next morning's shift
    assert (a["t_seen"] - a["t_arrival"]).max() > 12 * 60
    busy = run.hourly()["busy:doctor"]
    assert busy[busy.index.hour == 12].max() > 0  # overtime after 12:00 is counted as busy


# treat-sim 3.0.0, default scenario, 100 replications (multiple_replications(Scenario(), n_reps=100),
# run in its own virtual environment as benchmarks/hospital.py does): mean and standard deviation
# across replications, minutes (arrivals: patients in the 19-hour run)
TREAT_SIM_100 = {
    "wait_min:triage": (31.92, 18.37),
    "wait_min:registration": (104.14, 23.72),
    "wait_min:examination": (24.59, 8.64),
    "wait_min:treatment": (134.91, 24.16),
    "wait_min:stabilisation": (155.55, 75.60),
    "wait_min:trauma_treatment": (17.95, 15.21),
    "ed_los_min:non_trauma": (228.93, 24.49),
    "ed_los_min:trauma": (295.69, 72.32),
    "arrivals": (227.4, 15.73),
}


def test_the_treat_sim_scenario_agrees_with_treat_sim():
    """Each mean within 3.5 standard errors of the difference of two 100-replication means."""
    k = replicate("treat_sim_nelson2013", replications=100, seed=3).kpis
    ours = k.filter(like="wait_min:").copy()
    for c in ("trauma", "non_trauma"):
        ours[f"ed_los_min:{c}"] = k[f"ed_los_h:{c}"] * 60
    ours["arrivals"] = k["arrivals_per_day"] * 19 / 24
    for name, (mean, sd) in TREAT_SIM_100.items():
        se = np.hypot(sd / 10, ours[name].std() / 10)
        assert abs(ours[name].mean() - mean) < 3.5 * se, (name, ours[name].mean(), mean, se)
