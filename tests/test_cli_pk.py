import math
import re
from pathlib import Path

import pandas as pd
import pytest
from typer.testing import CliRunner

from medtwin.calibrate.population import NLMEEstimator
from medtwin.cli import app
from tests.calibrate.population.models import NLMIXR, theoph_data

THEOPH = Path(__file__).resolve().parent / "interop" / "data" / "theoph.csv"
runner = CliRunner()


def _nonmem_csv(path: Path) -> Path:
    """The theophylline data written as a NONMEM data set (dose rows, then observations)."""
    theoph = pd.read_csv(THEOPH)
    lines = ["ID,TIME,AMT,CMT,EVID,MDV,DV,WT"]
    for sid, rows in theoph.groupby("Subject", sort=False):
        wt, dose = rows["Wt"].iloc[0], rows["Dose"].iloc[0]
        lines.append(f"{sid},0,{float(dose * wt)!r},1,1,1,.,{wt}")
        lines += [
            f"{sid},{t},0,2,0,0,{c},{wt}" for t, c in zip(rows["Time"], rows["conc"], strict=True)
        ]
    path.write_text("\n".join(lines) + "\n")
    return path


def _number_after(label: str, text: str) -> float:
    match = re.search(rf"{re.escape(label)}\s+(-?[\d.]+)", text)
    assert match, f"{label!r} not in the output:\n{text}"
    return float(match.group(1))


@pytest.fixture(scope="module")
def library_fit():
    # the library's own nlmixr2-style fit: ka, CL, V log-normal with IIV, additive error, FOCE-I
    return NLMEEstimator(NLMIXR, method="focei").fit(theoph_data(per_kg=False))


def test_fit_prints_nonmem_table_matching_the_library(tmp_path, library_fit):
    data = _nonmem_csv(tmp_path / "theoph_nm.csv")
    out = tmp_path / "fit"
    result = runner.invoke(
        app,
        ["pk", "fit", str(data), "--model", "oral1", "--iiv", "CL,V,KA", "--error", "additive",
         "--out", str(out), "--vpc-n-sim", "20", "--vpc-bins", "4"],
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    text = result.output
    assert _number_after("OFV", text) == pytest.approx(library_fit.ofv_, abs=0.01)
    assert _number_after("log-likelihood", text) == pytest.approx(library_fit.loglik_, abs=0.01)
    theta = library_fit.theta_
    assert _number_after("CL (L/h)", text) == pytest.approx(math.exp(theta["tcl"]), rel=2e-3)
    assert _number_after("V (L)", text) == pytest.approx(math.exp(theta["tv"]), rel=2e-3)
    assert _number_after("KA (1/h)", text) == pytest.approx(math.exp(theta["tka"]), rel=5e-3)
    assert _number_after("add_sd (mg/L)", text) == pytest.approx(
        library_fit.sigma_["add_sd"], rel=5e-3
    )
    assert _number_after("eta_CL (variance)", text) == pytest.approx(
        library_fit.omega_.loc["eta_cl", "eta_cl"], rel=0.02
    )
    for word in ("THETA", "OMEGA", "SIGMA", "RSE%", "95% CI", "shrink%", "CV%", "converged"):
        assert word in text
    estimates = pd.read_csv(out / "estimates.csv")
    assert set(estimates["block"]) == {"THETA", "OMEGA", "SIGMA"}
    ebe = pd.read_csv(out / "ebe.csv")
    assert len(ebe) == 12 and {"eta_CL", "CL_L_per_h", "KA_1_per_h"} <= set(ebe.columns)
    predictions = pd.read_csv(out / "predictions.csv")
    assert len(predictions) == 132 and {"PRED", "IPRED", "CWRES"} <= set(predictions.columns)
    for png in ("gof.png", "individual_fits.png", "vpc.png"):
        assert (out / png).read_bytes()[:4] == b"\x89PNG"


def test_fit_rejects_bad_input_clearly(tmp_path):
    unknown = runner.invoke(app, ["pk", "fit", str(THEOPH), "--model", "oral9"])
    assert unknown.exit_code == 2
    assert "unknown model 'oral9'" in unknown.output
    assert "oral1" in unknown.output and "iv2" in unknown.output

    bad = _nonmem_csv(tmp_path / "bad.csv")
    lines = bad.read_text().splitlines()
    lines[4] = lines[4].replace(",0,2,0,0,", ",0,2,0,0,abc", 1)  # DV 'abc<number>'
    bad.write_text("\n".join(lines) + "\n")
    result = runner.invoke(app, ["pk", "fit", str(bad), "--no-plots"])
    assert result.exit_code == 2
    assert "error:" in result.output and "line 5" in result.output

    iiv = runner.invoke(app, ["pk", "fit", str(THEOPH), "--iiv", "CL,Q2"])
    assert iiv.exit_code == 2 and "no parameter 'Q2'" in iiv.output
    err = runner.invoke(app, ["pk", "fit", str(THEOPH), "--error", "exponential"])
    assert err.exit_code == 2 and "additive, proportional, combined" in err.output


def test_simulate_one_subject_and_a_population(tmp_path):
    one = runner.invoke(
        app,
        ["pk", "simulate", "--model", "iv1", "--dose-mg", "1000", "--every-h", "12", "--doses",
         "4", "--param", "CL=5,V=50", "--out", str(tmp_path / "one.csv")],
    )  # fmt: skip
    assert one.exit_code == 0, one.output
    # steady state is nearly reached after 4 doses (k = 0.1/h): AUC over tau -> dose/CL = 200
    assert 180.0 < _number_after("AUC (mg.h/L)", one.output) <= 200.0
    profile = pd.read_csv(tmp_path / "one.csv")
    assert list(profile.columns) == ["time_h", "conc_mg_l"]
    assert profile["conc_mg_l"].iloc[1] == pytest.approx(1000 / 50 * math.exp(-0.1 * 0.25))

    csv, png = tmp_path / "pop.csv", tmp_path / "pop.png"
    pop = runner.invoke(
        app,
        ["pk", "simulate", "--model", "oral2", "--dose-mg", "500", "--every-h", "12", "--doses",
         "14", "--param", "CL=6", "--n", "50", "--iiv", "CL=0.3,V=0.2", "--out", str(csv),
         "--plot", str(png), "--subjects-out", str(tmp_path / "subjects.csv")],
    )  # fmt: skip
    assert pop.exit_code == 0, pop.output
    assert "50 subjects" in pop.output and "95th pct" in pop.output
    table = pd.read_csv(csv)
    assert {"conc_p5_mg_l", "conc_median_mg_l", "conc_p95_mg_l"} <= set(table.columns)
    assert (table["conc_p5_mg_l"] <= table["conc_p95_mg_l"]).all()
    assert png.read_bytes()[:4] == b"\x89PNG"
    subjects = pd.read_csv(tmp_path / "subjects.csv")
    assert len(subjects) == 50 and subjects["CL"].std() > 0 and (subjects["Q2"] == 10.0).all()


def test_simulate_rejects_bad_options():
    unknown = runner.invoke(app, ["pk", "simulate", "--model", "mm"])
    assert unknown.exit_code == 2 and "oral2 (TwoCompartmentOral)" in unknown.output
    param = runner.invoke(app, ["pk", "simulate", "--model", "oral1", "--param", "VMAX=3"])
    assert param.exit_code == 2 and "CL, V, KA" in param.output
    malformed = runner.invoke(app, ["pk", "simulate", "--param", "CL:3"])
    assert malformed.exit_code == 2 and "NAME=VALUE" in malformed.output
    lonely = runner.invoke(app, ["pk", "simulate", "--iiv", "CL=0.3"])
    assert lonely.exit_code == 2 and "--n" in lonely.output


def test_nca_per_subject(tmp_path):
    out = tmp_path / "nca.csv"
    result = runner.invoke(app, ["pk", "nca", str(THEOPH), "--out", str(out)])
    assert result.exit_code == 0, result.output
    table = pd.read_csv(out, index_col="ID")
    assert len(table) == 12
    # subject 1 (R Theoph): Cmax 10.5 mg/L at 1.12 h
    assert table.loc[1, "cmax_mg_l"] == 10.5 and table.loc[1, "tmax_h"] == 1.12
    assert (table["auc_inf_mg_h_l"] > table["auc_last_mg_h_l"]).all()
    assert "half_life_h" in result.output and "median" in result.output


def test_nca_names_the_bad_row(tmp_path):
    bad = tmp_path / "theoph_bad.csv"
    lines = THEOPH.read_text().splitlines()
    lines[7] = lines[7].rsplit(",", 1)[0] + ",n/a"
    bad.write_text("\n".join(lines) + "\n")
    result = runner.invoke(app, ["pk", "nca", str(bad)])
    assert result.exit_code == 2
    assert "line 8" in result.output and "'n/a'" in result.output
    missing = runner.invoke(app, ["pk", "nca", str(tmp_path / "none.csv")])
    assert missing.exit_code == 2 and "no such data file" in missing.output


DOSE = ["pk", "dose", "--model", "vancomycin-goti2018", "--weight-kg", "80", "--crcl-ml-min",
        "60", "--given", "0:1000:12:4", "--level", "38:27.5", "--level", "47.5:21.0",
        "--n-draws", "300", "--doses-mg", "750,1000,1250,1500", "--intervals-h", "12,24"]  # fmt: skip


def test_dose_compares_regimens_and_recommends(tmp_path):
    out = tmp_path / "candidates.csv"
    result = runner.invoke(app, [*DOSE, "--target", "auc24:400-600", "--out", str(out)])
    assert result.exit_code == 0, result.output
    text = result.output
    assert "recommendation: " in text and "current: 1000 mg q12h" in text
    assert "PTA" in text and "P(toxic)" in text and "+-" in text
    table = pd.read_csv(out)
    assert len(table) == 8
    best = table.iloc[0]
    assert f"recommendation: {best['dose_mg']:g} mg every {best['tau_h']:g} h" in text
    # the levels say this patient clears less than typical; the MAP CL is below the prior's
    assert re.search(r"CL\s+2\.\d+\s+2\.5", text)

    capped = runner.invoke(app, [*DOSE, "--max-toxicity", "5%", "--out", str(out)])
    assert capped.exit_code == 0, capped.output
    picked = re.search(r"P\(toxic\) ([\d.]+)%", capped.output.split("recommendation:")[1])
    table = pd.read_csv(out)
    assert picked and float(picked.group(1)) <= max(5.0, 100 * table["p_toxic"].min() + 0.05)


def test_dose_rejects_bad_input():
    level = runner.invoke(app, [*DOSE, "--level", "38"])
    assert level.exit_code == 2 and "TIME_H:CONC_MG_L" in level.output
    target = runner.invoke(app, [*DOSE, "--target", "auc:400-600"])
    assert target.exit_code == 2 and "auc24, trough, peak" in target.output
    given = runner.invoke(app, [*DOSE, "--given", "0:1g"])
    assert given.exit_code == 2 and "'1g' is not a number" in given.output
    model = runner.invoke(app, ["pk", "dose", "--model", "gentamicin"])
    assert model.exit_code == 2 and "vancomycin-goti2018" in model.output
    weight = runner.invoke(app, ["pk", "dose", "--crcl-ml-min", "60"])
    assert weight.exit_code == 2 and "--weight-kg" in weight.output


def test_help_shows_option_formats():
    result = runner.invoke(app, ["pk", "dose", "--help"], terminal_width=200)
    assert result.exit_code == 0
    for text in ("TIME_H:CONC_MG_L", "START_H:DOSE_MG", "0:1000:12:4", "auc24:400-600",
                 "--weight-kg", "--crcl-ml-min"):  # fmt: skip
        assert text in result.output
