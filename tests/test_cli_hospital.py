"""``medtwin hospital simulate|forecast|compare|calibrate`` through the command line."""

from __future__ import annotations

import json

import pytest
import yaml
from typer.testing import CliRunner

from medtwin._cli_hospital import parse_scenario
from medtwin.cli import app
from medtwin.errors import ConfigurationError
from medtwin.hospital.census import Census
from medtwin.hospital.eventlog import write_event_log
from medtwin.hospital.synthetic import synthetic_adt_stream
from tests.conftest import synthetic_hospital

runner = CliRunner()


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    """A spec with the synthetic stream's units, the stream as HL7 v2 and as an event log."""
    folder = tmp_path_factory.mktemp("hospital")
    stream = synthetic_adt_stream(days=2, seed=4)
    spec = folder / "hospital.yaml"
    spec.write_text(yaml.safe_dump(synthetic_hospital()))
    hl7 = folder / "adt.hl7"
    hl7.write_text("\n\n".join(stream.messages))
    csv = folder / "events.csv"
    write_event_log(stream.events, csv)
    return {"spec": spec, "hl7": hl7, "csv": csv, "stream": stream, "folder": folder}


def invoke(*args):
    return runner.invoke(app, ["hospital", *map(str, args)])


def test_simulate_replications_json_and_report(tmp_path):
    report = tmp_path / "sim.html"
    r = invoke("simulate", "example_hospital", "--days", 4, "--warmup-days", 1, "--replications",
               3, "--seed", 2, "--json", "--no-progress", "--report", report)  # fmt: skip
    assert r.exit_code == 0, r.output
    out = json.loads(r.stdout)
    assert out["replications"] == 3 and out["days"] == 4 and out["warmup_days"] == 1
    occ = out["kpis"]["occupancy"]
    assert occ["n"] == 3 and occ["ci_low"] <= occ["mean"] <= occ["ci_high"]
    page = report.read_text()
    assert "Headline KPIs" in page and page.count("data:image/png;base64,") == 2
    assert "<script" not in page and "http" not in page.split("</style>", 1)[1]


def test_simulate_one_run_prints_the_kpis():
    r = invoke("simulate", "example_hospital", "--days", 3, "--warmup-days", 0,
               "--scenario", "beds=extra_beds.medicine=20")  # fmt: skip
    assert r.exit_code == 0, r.output
    assert "1 replication(s) of 3 days" in r.stdout
    assert "occupancy:medicine" in r.stdout and "ED attendances per day" in r.stdout


@pytest.mark.parametrize("which", ["hl7", "csv"])
def test_forecast_from_an_adt_file(files, which, tmp_path):
    report = tmp_path / "forecast.html"
    r = invoke("forecast", "--hospital", files["spec"], "--census", files[which], "--horizon", 6,
               "--replications", 3, "--json", "--no-progress", "--report", report)  # fmt: skip
    assert r.exit_code == 0, r.output
    out = json.loads(r.stdout)
    direct = Census.from_events(files["stream"].events)
    assert out["census"] == direct.counts()
    assert len(out["times"]) == 7 and out["units"]["MED"]["beds"] == 300
    assert out["units"]["MED"]["median"][0] == direct.counts()["MED"]
    assert "probability full" in report.read_text()


def test_forecast_text_and_a_census_time(files):
    r = invoke("forecast", "--hospital", files["spec"], "--census", files["csv"], "--at",
               "2026-01-06T12:00:00Z", "--horizon", 24, "--replications", 2, "--no-progress")  # fmt: skip
    assert r.exit_code == 0, r.output
    assert "at 2026-01-06T12:00:00+00:00" in r.stdout and "24 h: median [90%]" in r.stdout


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--at", "yesterday"], "not an ISO 8601 time"),
        (["--at", "2026-01-06T12:00:00"], "needs a UTC offset"),
        (["--format", "pdf"], "--format"),
    ],
)
def test_forecast_errors(files, args, message):
    r = invoke("forecast", "--hospital", files["spec"], "--census", files["csv"], *args)
    assert r.exit_code == 2 and message in r.output, r.output


def test_errors_exit_2_with_the_message(files, tmp_path):
    r = invoke("simulate", "nowhere_hospital")
    assert r.exit_code == 2 and "no hospital file 'nowhere_hospital'" in r.output
    r = invoke("forecast", "--hospital", files["spec"], "--census", tmp_path / "missing.hl7")
    assert r.exit_code == 2 and "no census file" in r.output
    # the example hospital has no CARD or DAY unit: named, not dropped
    r = invoke("forecast", "--hospital", "example_hospital", "--census", files["csv"])
    assert r.exit_code == 2 and "CARD" in r.output and "aliases" in r.output
    bad = tmp_path / "bad.hl7"
    bad.write_text(files["hl7"].read_text().replace("PV1|", "PVX|", 1))
    r = invoke("forecast", "--hospital", files["spec"], "--census", bad)
    assert r.exit_code == 2 and "message 1" in r.output and "PV1" in r.output


def test_compare_scenarios_from_flags_and_a_file(files, tmp_path):
    scenarios = tmp_path / "scenarios.yaml"
    scenarios.write_text(yaml.safe_dump({"shorter stays": {"los_multiplier": 0.8}}))
    report = tmp_path / "compare.html"
    r = invoke("compare", "--hospital", files["spec"], "--scenario", "beds=extra_beds.MED=40",
               "--scenarios", scenarios, "--census", files["csv"], "--days", 1,
               "--replications", 2, "--json", "--no-progress", "--report", report)  # fmt: skip
    assert r.exit_code == 0, r.output
    out = json.loads(r.stdout)
    assert set(out["scenarios"]) == {"beds", "shorter stays"} and out["warmup_days"] == 0
    rows = {(x["kpi"], x["scenario"]): x for x in out["rows"]}
    assert rows[("occupancy:MED", "beds")]["difference"] < 0
    assert rows[("occupancy:MED", "baseline")]["significant"] is None
    assert "paired difference" in report.read_text()
    text = invoke("compare", "--hospital", "example_hospital", "--scenario",
                  "surge=surge.multiplier=1.3", "--days", 2, "--warmup-days", 0,
                  "--replications", 2, "--no-progress")  # fmt: skip
    assert text.exit_code == 0, text.output
    assert "surge: difference [95% CI]" in text.stdout and "arrivals_per_day" in text.stdout


@pytest.mark.parametrize(
    ("args", "message"),
    [
        ([], "no scenario"),
        (["--scenario", "just-a-name"], "NAME=KEY=VALUE"),
        (["--scenario", "x=extra_beds.NOWHERE=3"], "NOWHERE"),
        (["--scenario", "a=los_multiplier=0.9", "--scenario", "a=los_multiplier=0.8"], "twice"),
    ],
)
def test_compare_errors(args, message):
    r = invoke("compare", "--hospital", "example_hospital", "--days", 1, "--warmup-days", 0,
               "--replications", 2, "--no-progress", *args)  # fmt: skip
    assert r.exit_code == 2 and message in r.output, r.output


def test_parse_scenario():
    assert parse_scenario("a=extra_staff.doctor=1,discharge_shift_h=-2,surge.to_h=12") == (
        "a",
        {"extra_staff": {"doctor": 1}, "discharge_shift_h": -2, "surge": {"to_h": 12}},
    )
    with pytest.raises(ConfigurationError, match="twice"):
        parse_scenario("a=surge=2,surge.multiplier=1.2")


def test_calibrate_from_an_event_log(tmp_path):
    import datetime as dt

    from medtwin.hospital import load_hospital, simulate

    run = simulate("example_hospital", days=7, warmup_days=0, seed=3,
                   start=dt.datetime(2026, 1, 5, tzinfo=dt.UTC))  # fmt: skip
    log = tmp_path / "history.csv"
    write_event_log(run.adt_events(), log)
    out, report = tmp_path / "calibrated.yaml", tmp_path / "calibration.html"
    r = invoke("calibrate", "--hospital", "example_hospital", "--events", log, "--out", out,
               "--transfer-wait", "ignore", "--report", report, "--json")  # fmt: skip
    assert r.exit_code == 0, r.output
    fitted = json.loads(r.stdout)
    # a week from an empty hospital: enough completed stays on the big units (ICU may be too few)
    assert {row["unit"] for row in fitted["los"]} >= {"AMU", "medicine"}
    assert fitted["notes"] and load_hospital(out).units["medicine"].beds == 179
    assert "Lengths of stay chosen" in report.read_text()
    r = invoke("calibrate", "--hospital", "example_hospital", "--events", log, "--out", out,
               "--unit-map", "CARD")  # fmt: skip
    assert r.exit_code == 2 and "DATA_UNIT=HOSPITAL_UNIT" in r.output
