"""Calibration from ADT history: recovering a simulated hospital's known parameters.

The truth is the example hospital run for 26 weeks from empty (about 27,000 ED attendances and
11,000 bed stays), written as its ADT feed (``SimulationRun.adt_events``).  Estimates are held to
the truth in units of their own standard errors (|z| < 4: a false failure has probability below
1e-4 per check) and, where the data are plentiful, to a few per cent.  Measured with seed 3 (the
numbers the docs quote): ED arrivals 150.1/day (truth 150); clinical mean LOS AMU 21.9 h (21.6;
23.6 without the transfer-wait correction), medicine 218.4 h (216), surgery 131.5 h (132),
elective surgery 61.0 h (60), orthopaedics 206.1 h (216, -4.6%, z = -1.8), elective
orthopaedics 70.2 h (72), ICU 127.2 h (120, z = 1.0), elective ICU 36.7 h (36); the log-normal
chosen by AIC for every group.  About 60 s on one core.
"""

import dataclasses
import math
from datetime import UTC, datetime, timedelta

import numpy as np
import pandas as pd
import pytest

from medtwin.errors import ConfigurationError
from medtwin.hospital import (
    Census,
    load_hospital,
    simulate,
    stays_from_events,
    synthetic_adt_stream,
    visits_from_events,
)
from medtwin.hospital.calibrate import REPORT_TABLES, calibrate_hospital
from medtwin.hospital.synthetic import DISCHARGES_BY_HOUR, ED_ARRIVALS_BY_HOUR, UNITS

EXAMPLE = load_hospital("example_hospital")
Z = 4.0


def _z(est, truth, lower, upper, level=0.95):
    se = (upper - lower) / (2 * 1.959964)
    return (est - truth) / se


def _log_z(est, truth, lower, upper):
    """z on the log scale, for intervals made there (lengths of stay)."""
    se = (math.log(upper) - math.log(lower)) / (2 * 1.959964)
    return (math.log(est) - math.log(truth)) / se


@pytest.fixture(scope="module")
def history():
    # Monday 1 April to 30 September 2024: British Summer Time throughout (the flow model keeps
    # the UTC offset it starts with; the calibration reads the data's clock in the hospital's
    # zone, as it must for real data)
    run = simulate(EXAMPLE, days=182, warmup_days=0, seed=3, start=datetime(2024, 4, 1))
    events = run.adt_events()
    t0 = run.start.astimezone(UTC)
    end = t0 + timedelta(minutes=run.horizon_min)
    a = run.attendance_frame()
    records = pd.DataFrame(
        {
            "visit_id": [f"sim-ed-{i}" for i in range(len(a))],
            "left_unseen": (a["outcome"] == "lwbs").to_numpy(),
            "seen_at": [
                t0 + timedelta(minutes=float(t)) if np.isfinite(t) else pd.NaT for t in a["t_seen"]
            ],
        }
    )
    return run, events, end, records


@pytest.fixture(scope="module")
def fit(history):
    _, events, end, records = history
    return calibrate_hospital(events, EXAMPLE, end=end, ed_records=records)


# -- the run as an ADT feed ---------------------------------------------------------------------


def test_the_adt_feed_rebuilds_the_runs_census():
    run = simulate(EXAMPLE, days=21, warmup_days=0, seed=8)
    events = run.adt_events()
    assert {e.event_type for e in events} == {"A01", "A02", "A03", "A04", "A08"}
    assert [e.occurred_at for e in events] == sorted(e.occurred_at for e in events)
    assert len({e.message_id for e in events}) == len(events)
    census = Census.from_events(events)
    assert census.issues == []  # no bed conflicts, nothing out of place
    snap = run.snapshot()

    def key(o):
        arrived = o.arrived_at.astimezone(UTC) if o.unit == "ED" else None
        return (o.unit, o.unit_since.astimezone(UTC), arrived, o.patient_class, o.acuity)

    assert sorted(map(key, census.snapshot(at=snap.at).occupants)) == sorted(
        map(key, snap.occupants)
    )
    # the census on every hour is the model's own count of occupied beds
    t0 = run.start.astimezone(UTC)
    hist = census.history(freq="1h", start=t0, end=snap.at)
    levels = run.census()
    for u in EXAMPLE.units:
        np.testing.assert_array_equal(hist[u].to_numpy(), levels[f"occupied:{u}"].to_numpy())
    # visits are named after the model's records: attendance i is sim-ed-i
    a = run.attendance_frame()
    lwbs = set(np.flatnonzero(a["outcome"] == "lwbs"))
    visits = visits_from_events(events).set_index("visit_id")
    for i in list(lwbs)[:20]:
        assert visits.loc[f"sim-ed-{i}", "path"] == "ED"
    boarders = [e for e in events if e.event_type == "A08"]
    assert boarders and all(e.patient_class == "I" and e.unit == "ED" for e in boarders)


# -- ED arrivals, classes, admission, routing ----------------------------------------------------


def test_ed_arrival_rates_are_recovered(fit):
    assert fit.spec.ed.arrivals.per_day == pytest.approx(150, rel=0.02)
    by_hour = fit.report["arrivals_by_hour"]
    # the base hospital is the truth here: "base" is the true rate of each hour of the day
    z = _z(by_hour["rate"], by_hour["base"], by_hour["lower"], by_hour["upper"])
    assert z.abs().max() < Z
    assert (by_hour["fitted"] / by_hour["base"] - 1).abs().mean() < 0.03
    by_day = fit.report["arrivals_by_weekday"]
    assert _z(by_day["per_day"], by_day["base"], by_day["lower"], by_day["upper"]).abs().max() < Z
    # the calibrated hospital's 168 hourly rates against the truth's
    ratio = fit.spec.ed.arrivals.week_rates() / EXAMPLE.ed.arrivals.week_rates()
    assert np.abs(ratio - 1).mean() < 0.03 and np.abs(ratio - 1).max() < 0.15
    tests = fit.report["arrival_tests"].set_index("test")
    assert (tests["p_value"] > 1e-3).all()  # Poisson, and weekday x hour multiplicative
    assert tests["ratio"].between(0.85, 1.15).all()


def test_classes_admission_and_routing_are_recovered(fit):
    classes = fit.report["classes"]
    truth = np.array([k.share for k in EXAMPLE.ed.classes.values()])
    p = classes["share"].to_numpy()
    se = np.sqrt(p * (1 - p) / classes["n"].sum())
    assert np.abs((p - truth / truth.sum()) / se).max() < Z
    adm = fit.report["admission"].set_index("class")
    for cname, k in EXAMPLE.ed.classes.items():
        row = adm.loc[cname]
        p_hat, n = row["probability"], row["n"]
        se = math.sqrt(max(p_hat * (1 - p_hat), 1e-4) / n)
        assert abs(p_hat - k.admission.probability) / se < Z, cname
    routing = fit.report["routing"]
    checked = 0
    for src, g in routing.groupby("from"):
        n = g["n"].sum()
        for _, row in g.iterrows():
            truth = row["base"]
            se = math.sqrt(max(truth * (1 - truth), 1e-4) / n)
            assert abs(row["probability"] - truth) / se < Z, (src, row["to"])
            checked += 1
    assert checked >= 25
    assert fit.spec.units["ICU"].next["medicine"] == pytest.approx(0.5, abs=0.06)


def test_lwbs_and_patience_from_ed_records(fit):
    lwbs = fit.report["lwbs"].set_index("class")
    assert lwbs.loc["non_urgent", "share"] > lwbs.loc["urgent", "share"] > 0.01
    patience = fit.report["patience"]
    chosen = patience[patience["chosen"]].set_index("class")
    assert set(chosen.index) == {"urgent", "standard", "non_urgent"}  # very_urgent: 4 left
    for cname, row in chosen.iterrows():
        truth = EXAMPLE.ed.classes[cname].patience.mean_min / 60
        assert abs(_log_z(row["mean_h"], truth, row["mean_lower_h"], row["mean_upper_h"])) < Z
        assert row["family"] == "lognormal"


def test_without_ed_records_reneging_is_not_invented(history):
    _, events, end, _ = history
    short = [e for e in events if e.occurred_at < end - timedelta(days=140)]
    fit = calibrate_hospital(short, EXAMPLE, end=end - timedelta(days=140))
    assert any("without being seen" in n for n in fit.notes)
    assert fit.report["lwbs"].empty and fit.report["patience"].empty
    for cname, k in EXAMPLE.ed.classes.items():
        assert fit.spec.ed.classes[cname].patience == k.patience


# -- lengths of stay ------------------------------------------------------------------------------


def test_clinical_lengths_of_stay_are_recovered(fit):
    los = fit.report["los"]
    chosen = los[los["chosen"]]
    assert len(chosen) == 8  # 5 units + 3 elective groups
    assert (chosen["family"] == "lognormal").all()  # the truth's family, by AIC
    for _, row in chosen.iterrows():
        unit = EXAMPLE.units[row["unit"]]
        dist = unit.los if row["group"] == "(all)" else unit.los_by_class[row["group"]]
        mu, _ = dist.mu_sigma
        mean_h, median_h = dist.mean_min / 60, math.exp(mu) / 60
        z_mean = _log_z(row["mean_h"], mean_h, row["mean_lower_h"], row["mean_upper_h"])
        z_med = _log_z(row["median_h"], median_h, row["median_lower_h"], row["median_upper_h"])
        assert abs(z_mean) < Z and abs(z_med) < Z, (row["unit"], row["group"], z_mean, z_med)
        rel_se = (math.log(row["mean_upper_h"]) - math.log(row["mean_lower_h"])) / 3.92
        if rel_se < 0.02:  # plentiful data: within 5% outright
            assert row["mean_h"] == pytest.approx(mean_h, rel=0.05), row["unit"]
            assert row["median_h"] == pytest.approx(median_h, rel=0.05), row["unit"]
        # Kolmogorov-Smirnov distance of the Kaplan-Meier curve of observed stays from the fit's
        # (the p-values are small for AMU: 5,300 stays see the approximations of the wait)
        assert row["ks_stat"] < 0.06
    # the calibrated spec carries them, in the base file's units (days)
    amu = fit.spec.units["AMU"].los
    assert amu.dist == "lognormal" and amu.unit == "d"
    assert amu.mean == pytest.approx(0.9, rel=0.05)


def test_transfers_include_the_wait_for_a_bed_which_is_corrected(history, fit):
    _, events, end, _ = history
    waits = fit.report["transfer_wait"].set_index("unit")
    assert waits.loc["AMU", "mean_wait_h"] > 1  # ready AMU patients wait for medicine beds
    plain = calibrate_hospital(events, EXAMPLE, end=end, transfer_wait="ignore")
    amu = plain.report["los"].query("chosen and unit == 'AMU'").iloc[0]
    corrected = fit.report["los"].query("chosen and unit == 'AMU'").iloc[0]
    # taken as clinical, AMU stays that end in a transfer make its LOS some 9% too long
    assert amu["mean_h"] > 1.05 * 21.6
    assert corrected["mean_h"] == pytest.approx(21.6, rel=0.04)
    assert any("transfer_wait" in n for n in plain.notes)


def test_open_stays_are_censored_not_dropped(history):
    """Six weeks of data: most long medical stays are still open at the end."""
    _, events, _, _ = history
    cut = events[0].occurred_at + timedelta(days=42)
    window = [e for e in events if e.occurred_at < cut]
    fit = calibrate_hospital(window, EXAMPLE, end=cut)
    row = fit.report["los"].query("chosen and unit == 'medicine'").iloc[0]
    truth = EXAMPLE.units["medicine"].los.mean_min / 60
    assert row["censored"] > 100
    assert abs(_log_z(row["mean_h"], truth, row["mean_lower_h"], row["mean_upper_h"])) < Z
    assert row["mean_h"] == pytest.approx(truth, rel=0.12)
    # what dropping them would give: the completed stays are the short ones (and these even
    # include the wait for a discharge window)
    stays = stays_from_events(window)
    done = stays[(stays["unit"] == "medicine") & (stays["exit"] != "open")]
    assert done["los_hours"].mean() < 0.85 * truth


# -- discharge profile, admissions, the calibrated file ----------------------------------------


def test_discharge_profile_and_admissions(fit):
    dis = fit.report["discharge"]
    truth = np.asarray(EXAMPLE.discharge.hour_profile) / sum(EXAMPLE.discharge.hour_profile)
    p, n = dis["share"].to_numpy(), dis["n"].sum()
    se = np.sqrt(np.maximum(truth * (1 - truth), 1e-6) / n)
    assert np.abs((p - truth) / se).max() < Z
    adm = fit.report["admissions"]
    direct = adm[adm["stream"] == "gp_direct"]
    # a week of direct admissions (bed times may fall on the next weekday: compare the week)
    weekly, expo = direct["n"].sum(), direct["exposure_d"].sum() / 7
    assert weekly / expo == pytest.approx(
        sum(EXAMPLE.admissions["gp_direct"].per_weekday), rel=0.05
    )
    # electives cancelled for want of a bed are not in the feed: never more than booked
    surgery = adm[adm["stream"] == "elective_surgery"]
    assert (surgery["per_day"] <= surgery["base"] + 4 * np.sqrt(surgery["base"] / 26) + 1e-9).all()
    assert fit.spec.admissions["gp_direct"].between == EXAMPLE.admissions["gp_direct"].between


def test_report_and_yaml_round_trip(fit, tmp_path):
    assert list(fit.report) == list(REPORT_TABLES)
    assert not fit.report["substituted"].empty
    path = fit.to_yaml(tmp_path / "calibrated.yaml")
    again = load_hospital(path)
    assert again == fit.spec
    assert again.units["medicine"].beds == 179  # what ADT cannot show is the base's
    assert "(calibrated)" in again.name
    summary = fit.summary()
    assert len(summary) == 8 and set(summary["family"]) == {"lognormal"}


def test_frames_give_the_same_fit_as_events(history):
    _, events, end, _ = history
    short = [e for e in events if e.occurred_at < end - timedelta(days=150)]
    t_end = end - timedelta(days=150)
    a = calibrate_hospital(short, EXAMPLE, end=t_end, transfer_wait="ignore")
    stays, visits = stays_from_events(short), visits_from_events(short)
    b = calibrate_hospital(
        None, EXAMPLE, stays=stays, visits=visits, end=t_end, transfer_wait="ignore"
    )
    assert a.spec.ed.arrivals == b.spec.ed.arrivals
    assert a.spec.units == b.spec.units


# -- a messy HL7-derived feed of another hospital ---------------------------------------------


def test_calibrating_from_a_messy_synthetic_hl7_feed():
    stream = synthetic_adt_stream(days=28, seed=2)
    with pytest.raises(ConfigurationError, match=r"\['CARD', 'DAY'\].*unit_map"):
        calibrate_hospital(stream.events, EXAMPLE)
    # the example hospital resized to the synthetic one (beds are not fitted)
    data = EXAMPLE.model_dump()
    data["units"]["medicine"]["beds"] = UNITS["MED"] + UNITS["CARD"]
    data["units"]["surgery"]["beds"] = UNITS["SURG"]
    data["units"]["ICU"]["beds"] = UNITS["ICU"]
    base = load_hospital(data)
    fit = calibrate_hospital(
        stream.events, base, unit_map={"CARD": "medicine", "DAY": None}, end=stream.end
    )
    assert any("DAY" in n for n in fit.notes)
    assert fit.spec.ed.arrivals.per_day == pytest.approx(285, rel=0.04)
    by_hour = fit.report["arrivals_by_hour"]
    truth = np.asarray(ED_ARRIVALS_BY_HOUR) / np.mean(ED_ARRIVALS_BY_HOUR) * 285 / 24
    assert np.abs(_z(by_hour["rate"], truth, by_hour["lower"], by_hour["upper"])).max() < Z
    dis = fit.report["discharge"]
    share = np.asarray(DISCHARGES_BY_HOUR) / sum(DISCHARGES_BY_HOUR)
    assert (dis.loc[share == 0, "n"] == 0).all()
    se = np.sqrt(np.maximum(share * (1 - share), 1e-6) / dis["n"].sum())
    assert np.abs((dis["share"] - share) / se).max() < Z
    classes = fit.report["classes"].set_index("class")["share"]
    esi = {"immediate": 0.01, "very_urgent": 0.12, "urgent": 0.45, "standard": 0.32}
    for cname, p in esi.items():
        assert classes[cname] == pytest.approx(p, abs=4 * math.sqrt(p * (1 - p) / 8000) + 0.005)
    # ESI 3: 2% to the ICU, 33% to a ward
    adm = fit.report["admission"].set_index("class")
    assert adm.loc["urgent", "probability"] == pytest.approx(0.35, abs=0.03)
    assert fit.spec.units["medicine"].beds == 400


def test_bad_settings_are_rejected(history):
    _, events, _, _ = history
    few = events[:50]
    with pytest.raises(ConfigurationError, match="not units of hospital"):
        calibrate_hospital(few, EXAMPLE, unit_map={"X": "ward9"})
    with pytest.raises(ConfigurationError, match="not both"):
        calibrate_hospital(few, EXAMPLE, stays=pd.DataFrame())
    with pytest.raises(ConfigurationError, match="no ADT events"):
        calibrate_hospital([], EXAMPLE)
    with pytest.raises(ConfigurationError, match="window is empty"):
        calibrate_hospital(few, EXAMPLE, end=few[0].occurred_at)
    renamed = [dataclasses.replace(e, unit="EDX") if e.unit == "ED" else e for e in few]
    with pytest.raises(ConfigurationError, match=r"\['EDX'\].*unknown_units='skip'"):
        calibrate_hospital(renamed, EXAMPLE)
