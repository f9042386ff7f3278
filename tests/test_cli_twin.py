import shutil
from pathlib import Path

import pytest
from typer.testing import CliRunner

from medtwin.cli import app

DATA = Path(__file__).resolve().parents[1] / "examples" / "data"
runner = CliRunner()


@pytest.fixture(scope="module")
def fitted(tmp_path_factory):
    folder = tmp_path_factory.mktemp("twin")
    out = folder / "twin.npz"
    result = runner.invoke(
        app,
        ["twin", "fit", str(DATA / "nightscout_entries.json"), "--treatments",
         str(DATA / "nightscout_treatments.json"), "--out", str(out), "--members", "100"],
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    return out, result.output


def test_fit_reports_the_data_and_the_personalisation(fitted):
    out, output = fitted
    assert out.exists()
    assert "840 CGM readings" in output
    assert "Vmx" in output and "identified" in output


def test_forecast_prints_bands_and_risks_and_draws(fitted, tmp_path):
    out, _ = fitted
    png = tmp_path / "f.png"
    table = tmp_path / "f.csv"
    result = runner.invoke(
        app, ["twin", "forecast", str(out), "--horizon", "120", "--bolus", "2",
              "--plot", str(png), "--csv", str(table)],
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    assert "P(hypoglycaemia) within 30 min" in result.output
    assert "upper_95" in table.read_text().splitlines()[0]
    assert png.read_bytes()[:4] == b"\x89PNG"


def test_replay_writes_a_report(tmp_path):
    report = tmp_path / "replay.html"
    result = runner.invoke(
        app,
        ["twin", "replay", str(DATA / "nightscout_entries.json"), "--treatments",
         str(DATA / "nightscout_treatments.json"), "--fit-days", "2", "--members", "50",
         "--report", str(report)],
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    assert "persistence_rmse_mg_dl" in result.output
    html = report.read_text()
    assert "Forecast errors" in html and "data:image/png;base64" in html


def test_bad_input_is_a_clear_error(tmp_path):
    bad = tmp_path / "bad.json"
    bad.write_text('[{"sgv": "abc", "date": 1}]')
    result = runner.invoke(app, ["twin", "fit", str(bad), "--out", str(tmp_path / "t.npz")])
    assert result.exit_code == 2
    assert "error:" in result.output and "sgv" in result.output
    missing = runner.invoke(app, ["twin", "forecast", str(tmp_path / "none.npz")])
    assert missing.exit_code == 2
    copy = tmp_path / "x.csv"
    shutil.copy(DATA / "nightscout_entries.json", copy)
    wrong = runner.invoke(app, ["twin", "fit", str(copy), "--format", "clarity"])
    assert wrong.exit_code == 2
