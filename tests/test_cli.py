"""The medtwin command: simulate, models, demo, --version, and clean errors for bad input.

Every simulation here is one day of few patients; configurations repeat so that the engine's
compiled loop is reused (one compilation per distinct configuration, about 2 s each).
"""

import subprocess
import sys

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

import medtwin
from medtwin.cli import app, daily_schedule, format_time, parse_spec, parse_time
from medtwin.errors import ScheduleError

runner = CliRunner()
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
ONE_MEAL = ["simulate", "-p", "adult#001", "--meal", "07:00:60", "--bolus", "07:00:3"]


def invoke(*args: str):
    return runner.invoke(app, list(args))


def test_version():
    result = invoke("--version")
    assert result.exit_code == 0
    assert result.stdout.strip() == f"medtwin {medtwin.__version__}"


def test_simulate_to_csv_glucose_rises_after_the_meal(tmp_path):
    out = tmp_path / "run.csv"
    result = invoke(*ONE_MEAL, "--out", str(out))
    assert result.exit_code == 0, result.output
    df = pd.read_csv(out)
    assert list(df.columns[:3]) == ["patient", "virtual_patient", "t_min"]
    assert {"Gsub", "Gplasma", "Iplasma", "insulin_delivered", "cho_announced"} <= set(df.columns)
    assert len(df) == 289  # 0, 5, ..., 1440 min
    assert (df.patient == "adult#001").all()
    assert np.allclose(df.t_min.diff().dropna(), 5.0)
    before = df.loc[df.t_min == 420, "Gsub"].item()
    peak = df.loc[(df.t_min > 420) & (df.t_min <= 600), "Gsub"].max()
    assert 60 < before < 200 and peak > before + 20
    assert df.cho_announced.sum() == pytest.approx(60.0)
    # 3 U bolus plus about a day of basal
    basal_day = df.loc[df.t_min == 0, "insulin_delivered"].item() * 288
    assert df.insulin_delivered.sum() == pytest.approx(3.0 + basal_day, rel=1e-6)
    # the metrics table is printed per patient
    assert "adult#001" in result.stdout and "tir_70_180_percent" in result.stdout


def test_simulate_to_parquet_with_plot(tmp_path):
    out, png = tmp_path / "run.parquet", tmp_path / "sub" / "glucose.png"
    result = invoke(*ONE_MEAL, "--out", str(out), "--plot", str(png), "--no-summary")
    assert result.exit_code == 0, result.output
    df = pd.read_parquet(out)
    assert df.shape[0] == 289 and df.Gsub.between(40, 400).all()
    data = png.read_bytes()
    assert data.startswith(PNG_SIGNATURE) and len(data) > 10_000
    assert "tir_70_180_percent" not in result.stdout


def test_scenario_file_and_flags_override_it(tmp_path):
    scenario = tmp_path / "day.yaml"
    scenario.write_text(
        "patients: adult#001\nmeals:\n  - ['07:00', 60]\n  - {time: '12:00', carbs_g: 30}\n"
        "boluses: [[420, 3]]\nseed: 4\n"
    )
    out = tmp_path / "a.csv"
    result = invoke("simulate", "--scenario", str(scenario), "--out", str(out), "--no-summary")
    assert result.exit_code == 0, result.output
    df = pd.read_csv(out)
    assert df.loc[df.cho_announced > 0, "t_min"].tolist() == [420.0, 720.0]
    # --meal replaces the file's meals; the file's boluses stay
    result = invoke(
        "simulate", "--scenario", str(scenario), "--meal", "08:00:20", "--out", str(out),
        "--no-summary",
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    df = pd.read_csv(out)
    assert df.loc[df.cho_announced > 0, "t_min"].tolist() == [480.0]
    assert df.insulin_delivered.max() > 2.9


def test_cohort_cycles_the_chosen_patients():
    result = invoke(
        "simulate", "-p", "adult#001", "-p", "child#001", "--n", "3", "--meal", "420:50"
    )
    assert result.exit_code == 0, result.output
    for pid in ("adult#001/1", "child#001/1", "adult#001/2"):
        assert pid in result.stdout


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (["--meal", "07:00:-20"], "must be >= 0"),
        (["--meal", "07:00:lots"], "'lots' is not a number"),
        (["--meal", "breakfast"], "malformed --meal 'breakfast'"),
        (["--meal", "07:00"], "reads as a time with no GRAMS"),
        (["--meal", "7:75:20"], "minutes must be 00-59"),
        (["--meal", "25:00:40"], "after the end of the simulation"),
        (["--bolus", "1441:2"], "after the end of the simulation"),
        (["-p", "adult#099"], "unknown virtual patient 'adult#099'"),
        (["--sensor", "Libre"], "unknown sensor 'Libre'"),
        (["--pump", "Omnipod5"], "unknown pump 'Omnipod5'"),
        (["--controller", "mpc"], "unknown controller 'mpc'"),
        (["--out", "run.xlsx"], "use a .csv or .parquet file"),
        (["--plot", "glucose.doc"], "unknown image format"),
        (["--days", "0"], "--days must be > 0"),
        (["--output-every", "7"], "not a whole number of 7-min outputs"),
        (["--scenario", "/nonexistent/day.yaml"], "cannot read scenario"),
    ],
)
def test_bad_input_exits_2_with_a_message(args, expected):
    result = invoke("simulate", *args)
    assert result.exit_code == 2, result.output
    assert result.stderr.startswith("error: ")
    assert expected in result.stderr
    assert "Traceback" not in result.output


def test_bad_scenario_keys_are_named(tmp_path):
    scenario = tmp_path / "typo.yaml"
    scenario.write_text("meal: [[420, 50]]\n")
    result = invoke("simulate", "--scenario", str(scenario))
    assert result.exit_code == 2
    assert "unknown keys ['meal']" in result.stderr


def test_bad_input_in_a_real_process_prints_no_traceback():
    proc = subprocess.run(
        [sys.executable, "-m", "medtwin.cli", "simulate", "--meal", "07:00:-5"],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert proc.returncode == 2
    assert "Traceback" not in proc.stderr
    last = proc.stderr.strip().splitlines()[-1]
    assert last == "error: --meal '07:00:-5': GRAMS must be >= 0, got -5"
    assert proc.stdout == ""


def test_models_lists_the_catalogue():
    result = invoke("models")
    assert result.exit_code == 0
    assert "UvaPadova2008" in result.stdout
    assert "Gsub" in result.stdout and "kabs" in result.stdout


def test_models_lists_the_30_patients():
    result = invoke("models", "--patients")
    assert result.exit_code == 0
    lines = [ln for ln in result.stdout.splitlines() if "#0" in ln]
    assert len(lines) == 30
    assert "CR_g_per_U" in result.stdout and "basal_U_per_h" in result.stdout


def test_demo_writes_its_four_files(tmp_path):
    result = invoke("demo", "--out", str(tmp_path / "demo"))
    assert result.exit_code == 0, result.output
    folder = tmp_path / "demo"
    for name in ("demo.csv", "demo.png", "metrics.csv", "report.html"):
        assert (folder / name).stat().st_size > 1000, name
        assert str(folder / name) in result.stdout
    data = pd.read_csv(folder / "demo.csv")
    assert data.patient.nunique() == 30 and "sensor" in data.columns
    metrics = pd.read_csv(folder / "metrics.csv", index_col="patient")
    assert len(metrics) == 30 and set(metrics.group) == {"adolescents", "adults", "children"}
    assert metrics.tir_70_180_percent.between(0, 100).all()
    # basal-bolus therapy keeps the adults mostly in range
    assert metrics.loc[metrics.group == "adults", "tir_70_180_percent"].mean() > 70
    page = (folder / "report.html").read_text()
    assert "data:image/png;base64," in page and "adult#010" in page and "children" in page
    for group in ("adolescents", "adults", "children"):
        assert group in result.stdout


def test_parse_helpers():
    assert parse_time("07:30") == 450.0 and parse_time("450") == 450.0
    assert parse_spec("450:60", "--meal", "GRAMS") == (450.0, 60.0)
    assert format_time(1500) == "25:00"
    with pytest.raises(ScheduleError, match="not a time"):
        parse_time("noon")


def test_daily_schedule_repeats_the_first_day_and_keeps_later_events_once():
    s = daily_schedule({"meals": [[420, 50], [1500, 20]], "boluses": [[420, 4]]}, days=2.5)
    meals = [(e.time, e.value) for e in s.events if e.input == "meal"]
    assert meals == [(420.0, 50.0), (1500.0, 20.0), (1860.0, 50.0), (3300.0, 50.0)]
    assert [e.time for e in s.events if e.input == "insulin"] == [420.0, 1860.0, 3300.0]
