"""``medtwin pk``: population PK fits, simulations, NCA and model-informed dosing from the shell.

Units throughout: time in h, amounts in mg, volumes in L, concentrations in mg/L (the units of
:mod:`medtwin.models.pk`).  Data sets are NONMEM-style CSVs (:func:`medtwin.interop.nonmem.read_nonmem`)
or R's ``Theoph`` layout (``Subject,Wt,Dose,Time,conc``, detected from the header).  Every
:class:`~medtwin.errors.MedtwinError` ends as ``error: <message>`` through the command's shared
boundary (:func:`medtwin.cli._errors_to_exit`).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import numpy as np
import pandas as pd
import typer

from medtwin.errors import ConfigurationError, DataFormatError, ParameterError, ScheduleError

if TYPE_CHECKING:
    from medtwin.calibrate.population import NLMEEstimator
    from medtwin.interop.nonmem import NonmemData
    from medtwin.models.pk import PKModel, Regimen

__all__ = ["pk_app"]

pk_app = typer.Typer(
    name="pk",
    help="Pharmacokinetics: fit a population model, simulate regimens, NCA, precision dosing. "
    "Units: h, mg, L, mg/L.",
    no_args_is_help=True,
)

MODEL_NAMES: dict[str, str] = {
    "oral1": "OneCompartmentOral",
    "oral2": "TwoCompartmentOral",
    "oral3": "ThreeCompartmentOral",
    "iv1": "OneCompartment",
    "iv2": "TwoCompartment",
    "iv3": "ThreeCompartment",
}
"""Structural models by their command-line name (NONMEM ADVAN2, 4, 12, 1, 3, 11)."""

ERRORS = ("additive", "proportional", "combined")
METHODS = ("focei", "laplace")
DOSING_MODELS = ("vancomycin-goti2018",)
_NOT_FITTED = ("F", "ALAG")  # bioavailability is not identifiable without IV data; no lag
_OMEGA_INIT = 0.1  # initial IIV variance (about 32 % CV)
_MAX_VALUES = 50_000_000  # subjects x time points held in memory by `simulate`


def _errors() -> Any:
    from medtwin.cli import _errors_to_exit

    return _errors_to_exit()


# ---------------------------------------------------------------------------------------------
# Parsing
# ---------------------------------------------------------------------------------------------


def resolve_pk_model(name: str) -> type[PKModel]:
    """The structural model named ``oral1``... (case-insensitive); unknown names list the known.

    >>> resolve_pk_model("oral2").__name__
    'TwoCompartmentOral'
    """
    import medtwin.models.pk as pk

    key = name.strip().lower()
    if key not in MODEL_NAMES:
        known = ", ".join(f"{k} ({v})" for k, v in MODEL_NAMES.items())
        raise ConfigurationError(f"unknown model {name!r}; choose one of {known}")
    cls: type[PKModel] = getattr(pk, MODEL_NAMES[key])
    return cls


def structural_params(cls: type[PKModel]) -> tuple[str, ...]:
    """The parameters a fit estimates (bioavailability and lag time stay at 1 and 0)."""
    return tuple(p for p in cls.param_names() if p not in _NOT_FITTED)


def _canonical_param(cls: type[PKModel], name: str, option: str) -> str:
    """``V`` means ``V1`` on a multi-compartment model; case-insensitive."""
    names = cls.param_names()
    upper = name.strip().upper()
    if upper == "V" and "V" not in names and "V1" in names:
        upper = "V1"
    if upper not in names:
        raise ConfigurationError(
            f"{option}: {cls.__name__} has no parameter {name.strip()!r}; "
            f"its parameters are {', '.join(names)}"
        )
    return upper


def parse_assignments(
    specs: Sequence[str] | None, cls: type[PKModel], option: str, *, positive: bool = True
) -> dict[str, float]:
    """``["CL=5,V1=30", "KA=1.2"]`` -> ``{"CL": 5.0, "V1": 30.0, "KA": 1.2}`` (checked names).

    >>> from medtwin.models.pk import OneCompartmentOral
    >>> parse_assignments(["CL=5,v=30", "KA=1.2"], OneCompartmentOral, "--param")
    {'CL': 5.0, 'V': 30.0, 'KA': 1.2}
    """
    out: dict[str, float] = {}
    for spec in specs or ():
        for item in spec.split(","):
            if not item.strip():
                continue
            name, sep, value = item.partition("=")
            if not sep or not name.strip():
                raise ConfigurationError(
                    f"malformed {option} {item.strip()!r}: write NAME=VALUE, e.g. {option} CL=5"
                )
            key = _canonical_param(cls, name, option)
            number = _number(value, f"{option} {item.strip()!r}")
            if positive and not number > 0:
                raise ConfigurationError(f"{option} {item.strip()!r}: the value must be > 0")
            out[key] = number
    return out


def _number(text: str, what: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise ConfigurationError(f"{what}: {text.strip()!r} is not a number") from None
    if not math.isfinite(value):
        raise ConfigurationError(f"{what}: the value must be finite")
    return value


def _split_fields(
    spec: str, option: str, form: str, example: str, sizes: Sequence[int]
) -> list[float]:
    parts = spec.split(":")
    if len(parts) not in sizes:
        raise ScheduleError(
            f"malformed {option} {spec!r}: expected {form}, e.g. {option} {example}"
        )
    values = []
    for part in parts:
        try:
            value = float(part)
        except ValueError:
            raise ScheduleError(
                f"malformed {option} {spec!r}: {part.strip()!r} is not a number "
                f"(expected {form}, e.g. {option} {example})"
            ) from None
        if not math.isfinite(value) or value < 0:
            raise ScheduleError(f"{option} {spec!r}: every field must be a finite number >= 0")
        values.append(value)
    return values


def parse_level(spec: str) -> tuple[float, float]:
    """``TIME_H:CONC_MG_L`` -> (h, mg/L).

    >>> parse_level("38:27.5")
    (38.0, 27.5)
    """
    t, c = _split_fields(spec, "--level", "TIME_H:CONC_MG_L", "38:27.5", (2,))
    return t, c


def parse_given(spec: str) -> Regimen:
    """``START_H:DOSE_MG[:EVERY_H:N_DOSES[:INFUSION_H]]`` -> an intravenous :class:`Regimen`.

    The infusion lasts 1 h unless a fifth field says otherwise (0: a bolus).

    >>> r = parse_given("0:1000:12:4")
    >>> r.dose_times_h().tolist(), r.administrations[0].duration_h
    ([0.0, 12.0, 24.0, 36.0], 1.0)
    """
    from medtwin.models.pk import Regimen

    form = "START_H:DOSE_MG[:EVERY_H:N_DOSES[:INFUSION_H]]"
    values = _split_fields(spec, "--given", form, "0:1000:12:4", (2, 4, 5))
    start, dose = values[0], values[1]
    every, n = (values[2], values[3]) if len(values) >= 4 else (0.0, 1.0)
    infusion = values[4] if len(values) == 5 else 1.0
    if n != int(n) or n < 1:
        raise ScheduleError(f"--given {spec!r}: N_DOSES must be a whole number >= 1, got {n:g}")
    if n > 1 and not every > 0:
        raise ScheduleError(f"--given {spec!r}: several doses need EVERY_H > 0")
    if not dose > 0:
        raise ScheduleError(f"--given {spec!r}: DOSE_MG must be > 0")
    if infusion > 0:
        return Regimen.infusion(dose, infusion, every_h=every, doses=int(n), start_h=start)
    return Regimen.bolus(dose, every_h=every, doses=int(n), start_h=start)


def parse_target(spec: str) -> Any:
    """``METRIC:LOW-HIGH`` or ``METRIC:LOW`` (no upper limit) -> an ``ExposureTarget``.

    >>> str(parse_target("auc24:400-600"))
    'auc24 400-600 mg.h/L'
    """
    from medtwin.twin.dosing import METRICS, ExposureTarget

    example = "--target auc24:400-600 or --target trough:10-15"
    metric, sep, window = spec.partition(":")
    metric = metric.strip().lower()
    if not sep or metric not in METRICS:
        raise ConfigurationError(
            f"malformed --target {spec!r}: expected METRIC:LOW-HIGH with METRIC one of "
            f"{', '.join(METRICS)}, e.g. {example}"
        )
    low_text, dash, high_text = window.partition("-")
    low = _number(low_text, f"--target {spec!r}")
    high = _number(high_text, f"--target {spec!r}") if dash else math.inf
    return ExposureTarget(metric, low, high)  # type: ignore[arg-type]


def parse_toxicity(spec: str) -> Any:
    """``METRIC:ABOVE`` (``trough:20``) -> an ``ExposureLimit``; ``none`` -> ``None``."""
    from medtwin.twin.dosing import METRICS, ExposureLimit

    if spec.strip().lower() == "none":
        return None
    metric, sep, above = spec.partition(":")
    metric = metric.strip().lower()
    if not sep or metric not in METRICS:
        raise ConfigurationError(
            f"malformed --toxicity {spec!r}: expected METRIC:ABOVE with METRIC one of "
            f"{', '.join(METRICS)}, e.g. --toxicity trough:20, or none"
        )
    return ExposureLimit(metric, _number(above, f"--toxicity {spec!r}"))  # type: ignore[arg-type]


def parse_probability(text: str, option: str) -> float:
    """``0.1`` or ``10%`` -> 0.1.

    >>> parse_probability("10%", "--max-toxicity"), parse_probability("0.25", "--max-toxicity")
    (0.1, 0.25)
    """
    s = text.strip()
    value = _number(s.rstrip("%"), option) / (100.0 if s.endswith("%") else 1.0)
    if not 0.0 <= value <= 1.0:
        raise ConfigurationError(f"{option} {text!r} must be a probability (0-1 or 0-100%)")
    return value


def _numbers(text: str, option: str) -> list[float]:
    values = [_number(x, option) for x in text.split(",") if x.strip()]
    if not values or any(v <= 0 for v in values):
        raise ConfigurationError(f"{option} {text!r}: expected positive numbers, e.g. 8,12,24")
    return values


# ---------------------------------------------------------------------------------------------
# Data
# ---------------------------------------------------------------------------------------------

_THEOPH_COLUMNS = ["Subject", "Wt", "Dose", "Time", "conc"]


def read_pk_data(path: Path) -> NonmemData:
    """A NONMEM-style CSV, or R's ``Theoph`` layout (told apart by the header)."""
    from medtwin.interop.nonmem import read_nonmem, read_theophylline

    if not path.is_file():
        raise DataFormatError(f"{path}: no such data file")
    with path.open(encoding="utf-8", errors="replace") as fh:
        header = [c.strip() for c in fh.readline().split(",")]
    if header == _THEOPH_COLUMNS:
        _check_theoph_rows(path)
        return read_theophylline(path)
    return read_nonmem(path)


def _check_theoph_rows(path: Path) -> None:
    # read_theophylline names the bad value but not its line; find the line first
    frame = pd.read_csv(path, dtype=str, keep_default_na=False)
    for i, row in enumerate(frame.itertuples(index=False), start=2):
        for column, value in zip(_THEOPH_COLUMNS[1:], row[1:], strict=True):
            try:
                ok = math.isfinite(float(value))
            except ValueError:
                ok = False
            if not ok:
                raise DataFormatError(f"{path}, line {i}: {column} {value!r} is not a number")


def _total_dose_mg(subject: Any) -> float:
    return float(sum(d.amount_mg * (1 + d.addl) for d in subject.doses))


def nca_table(data: NonmemData, *, n_points: int | None = None) -> pd.DataFrame:
    """NCA of every subject's observations (one row each), dose = every dose the subject got."""
    from medtwin.metrics import nca

    rows = []
    for s in data.subjects:
        t, c = np.asarray(s.observation_time_h, float), np.asarray(s.dv, float)
        dose = _total_dose_mg(s)
        if t.size < 3:
            raise DataFormatError(
                f"subject {s.id} has {t.size} observation(s); NCA needs at least 3"
            )
        try:
            row = nca(t, c, dose_mg=dose if dose > 0 else None, n_points=n_points).iloc[0]
        except ParameterError as exc:
            raise DataFormatError(f"subject {s.id}: {exc}") from None
        rows.append(
            {
                "ID": s.id,
                "dose_mg": dose,
                "cmax_mg_l": row["cmax"],
                "tmax_h": row["tmax_h"],
                "auc_last_mg_h_l": row["auc_last"],
                "auc_inf_mg_h_l": row["auc_inf"],
                "auc_extrap_percent": row["auc_extrapolated_percent"],
                "lambda_z_per_h": row["lambda_z_per_h"],
                "half_life_h": row["half_life_h"],
                "r2_adj": row["r2_adj"],
                "n_lambda_z": int(row["n_lambda_z"]),
                "cl_f_l_per_h": row.get("cl_f_l_per_h", math.nan),
                "vz_f_l": row.get("vz_f_l", math.nan),
            }
        )
    return pd.DataFrame(rows).set_index("ID")


def _ka_from_tmax(tmax_h: float, k_per_h: float) -> float:
    """Absorption rate with ``tmax = ln(ka/k)/(ka - k)`` (ka > k), the flip-flop-free root."""
    from scipy.optimize import brentq

    def f(ka: float) -> float:
        return math.log(ka / k_per_h) / (ka - k_per_h) - tmax_h

    lo, hi = k_per_h * 1.001, k_per_h * 1e4
    if not (tmax_h > 0 and k_per_h > 0) or f(lo) * f(hi) > 0:
        return math.nan
    return float(brentq(f, lo, hi))


def initial_estimates(data: NonmemData, cls: type[PKModel]) -> dict[str, float]:
    """NCA-based starting values: CL = dose/AUCinf, V = Vz, KA from Tmax (medians over subjects).

    Parameters the data cannot inform (or subjects without a usable profile) fall back to the
    model's defaults; peripheral volumes split Vz and inter-compartmental clearances equal CL.
    """
    defaults = {p: float(cls.param(p).default) for p in structural_params(cls)}
    try:
        table = nca_table(data)
    except DataFormatError:
        return defaults
    ok = table[np.isfinite(table["cl_f_l_per_h"]) & (table["cl_f_l_per_h"] > 0)]
    if ok.empty:
        return defaults
    cl = float(ok["cl_f_l_per_h"].median())
    vz = float(ok["vz_f_l"].median())
    k = cl / vz
    out = dict(defaults)
    n = int(cls.n_compartments)
    if n == 1:
        out |= {"CL": cl, "V": vz}
    else:
        out |= {"CL": cl, "V1": vz / n, "V2": vz / n, "Q2": cl}
        if n == 3:
            out |= {"V3": vz / n, "Q3": cl / 2.0}
    if "KA" in out:
        ka = _ka_from_tmax(float(ok["tmax_h"].median()), k)
        if math.isfinite(ka):
            out["KA"] = ka
    return {p: v if math.isfinite(v) and v > 0 else defaults[p] for p, v in out.items()}


# ---------------------------------------------------------------------------------------------
# Population model for a fit
# ---------------------------------------------------------------------------------------------


def build_population_model(
    cls: type[PKModel],
    data: Any,
    *,
    initial: Mapping[str, float],
    iiv: Sequence[str],
    error: str,
) -> Any:
    """Log-normal parameters ``P = exp(log_P + eta_P)`` (eta only on ``iiv``), closed-form PK."""
    import jax.numpy as jnp

    from medtwin.calibrate.population import Additive, Combined, PopulationModel, Proportional
    from medtwin.models.pk import concentration, dose_kinds

    if data.doses is None:
        raise DataFormatError("the data set has no doses; a PK fit needs AMT/CMT records")
    names = structural_params(cls)
    kinds = dose_kinds(cls, data.doses)
    with_iiv = frozenset(iiv)

    def predict(theta: Any, eta: Any, subject: Any) -> Any:
        params = {}
        for p in names:
            log_p = theta[f"log_{p}"]
            if p in with_iiv:
                log_p = log_p + eta[f"eta_{p}"]
            params[p] = jnp.exp(log_p)
        return concentration(cls, params, subject["doses"], subject["time"], kinds=kinds)

    dv = np.asarray(data.dv)[np.asarray(data.mask)]
    scale = float(np.median(dv[dv > 0])) if np.any(dv > 0) else 1.0
    residual: Any = {
        "additive": lambda: Additive(0.1 * scale),
        "proportional": lambda: Proportional(0.2),
        "combined": lambda: Combined(0.05 * scale, 0.1),
    }[error]()
    return PopulationModel(
        predict,
        theta={f"log_{p}": math.log(initial[p]) for p in names},
        omega={f"eta_{p}": _OMEGA_INIT for p in iiv},
        error=residual,
    )


def estimates_table(fit: NLMEEstimator, cls: type[PKModel]) -> pd.DataFrame:
    """NONMEM-style table: THETA on the natural scale, OMEGA as variance/SD/CV/shrinkage, SIGMA."""
    from scipy.stats import norm

    par = fit.parameters_
    shrink = fit.shrinkage_
    z = float(norm.ppf(0.975))
    rows: list[dict[str, Any]] = []
    for name, r in par.iterrows():
        name = str(name)
        row: dict[str, Any] = {"block": "", "parameter": name}
        if name.startswith("log_"):
            p = name[4:]
            est, se_log = math.exp(r["estimate"]), r["se"]
            row |= {
                "block": "THETA",
                "parameter": f"{p} ({cls.param(p).unit})",
                "estimate": est,
                "se": est * se_log,
                "rse_pct": 100.0 * se_log,
                "lower_95": math.exp(r["estimate"] - z * se_log),
                "upper_95": math.exp(r["estimate"] + z * se_log),
            }
        elif name.startswith("omega2["):
            eta = name[len("omega2[") : -1]
            var = float(r["estimate"])
            row |= {
                "block": "OMEGA",
                "parameter": f"{eta} (variance)",
                "estimate": var,
                "se": r["se"],
                "rse_pct": r["rse_pct"],
                "lower_95": r["lower_95"],
                "upper_95": r["upper_95"],
                "sd": math.sqrt(var),
                "cv_pct": 100.0 * math.sqrt(math.expm1(var)),
                "shrinkage_pct": 100.0 * float(shrink.get(eta, math.nan)),
            }
        elif name.startswith("omega["):
            row |= {"block": "OMEGA", **{k: r[k] for k in
                    ("estimate", "se", "rse_pct", "lower_95", "upper_95")}}  # fmt: skip
        else:
            unit = " (mg/L)" if name == "add_sd" else ""
            row |= {
                "block": "SIGMA",
                "parameter": name + unit,
                **{k: r[k] for k in ("estimate", "se", "rse_pct", "lower_95", "upper_95")},
            }
            if name == "add_sd" or name == "prop_cv":
                row["shrinkage_pct"] = 100.0 * float(shrink.get("epsilon", math.nan))
        rows.append(row)
    return pd.DataFrame(rows)


def _fmt(value: Any, width: int = 10) -> str:
    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        return "-".rjust(width)
    v = float(value)
    text = f"{v:.4g}" if abs(v) < 1e5 else f"{v:.3e}"
    return text.rjust(width)


def print_estimates(fit: NLMEEstimator, table: pd.DataFrame) -> None:
    method = {"focei": "FOCE-I", "laplace": "Laplace"}[fit.method]
    status = "converged" if fit.converged_ else "NOT CONVERGED"
    typer.echo(
        f"{method}: {fit.n_subjects_} subjects, {fit.n_observations_} observations, "
        f"{fit.n_iter_} iterations, {status}, {fit.fit_time_s_:.1f} s"
    )
    typer.echo(
        f"OFV {fit.ofv_:.3f} (NONMEM: -2 log L - n log 2 pi)   log-likelihood {fit.loglik_:.3f}"
        f"   AIC {fit.aic_:.2f}   BIC {fit.bic_:.2f}"
    )
    if not fit.covariance_ok_:
        typer.echo("covariance step failed (R not positive definite): SEs are not available")
    head = f"{'parameter':<22}{'estimate':>10}{'SE':>10}{'RSE%':>8}   {'95% CI':<22}"
    for block in ("THETA", "OMEGA", "SIGMA"):
        part = table[table["block"] == block]
        if part.empty:
            continue
        extra = f"{'SD':>8}{'CV%':>8}{'shrink%':>9}" if block == "OMEGA" else ""
        if block == "SIGMA":
            extra = f"{'':>16}{'shrink%':>9}"
        typer.echo(f"\n{block}" + (" (log-normal; CI from the log scale)" if block == "THETA"
                                   else " (inter-individual variability)" if block == "OMEGA"
                                   else " (residual error)"))  # fmt: skip
        typer.echo(head + extra)
        for _, r in part.iterrows():
            rse = r.get("rse_pct")
            rse_text = "-" if rse is None or not math.isfinite(rse) else f"{rse:.1f}"
            lo, hi = float(r.get("lower_95", math.nan)), float(r.get("upper_95", math.nan))
            ci = f"[{lo:.4g}, {hi:.4g}]" if math.isfinite(lo) and math.isfinite(hi) else "-"
            line = f"{r['parameter']:<22}{_fmt(r['estimate'])}{_fmt(r.get('se'))}{rse_text:>8}   {ci:<22}"
            if block == "OMEGA":
                line += f"{_fmt(r.get('sd'), 8)}{_fmt(r.get('cv_pct'), 8)}{_fmt(r.get('shrinkage_pct'), 9)}"
            elif block == "SIGMA":
                line += f"{'':>16}{_fmt(r.get('shrinkage_pct'), 9)}"
            typer.echo(line)


# ---------------------------------------------------------------------------------------------
# fit
# ---------------------------------------------------------------------------------------------


@pk_app.command("fit")
def fit_command(
    data: Annotated[
        Path,
        typer.Argument(
            metavar="DATA.csv",
            help="NONMEM-style CSV (ID, TIME, AMT, CMT, DV, EVID/MDV, ...) or R's Theoph layout.",
        ),
    ],
    model: Annotated[
        str,
        typer.Option(help="Structural model: oral1 | oral2 | oral3 | iv1 | iv2 | iv3."),
    ] = "oral1",
    iiv: Annotated[
        str,
        typer.Option(
            help="Parameters with inter-individual variability, comma-separated (e.g. CL,V,KA; "
            "V means V1 on 2-3 compartments)."
        ),
    ] = "CL,V",
    error: Annotated[
        str, typer.Option(help="Residual error: additive | proportional | combined.")
    ] = "additive",
    method: Annotated[str, typer.Option(help="Estimation: focei | laplace.")] = "focei",
    init: Annotated[
        list[str] | None,
        typer.Option(
            metavar="NAME=VALUE",
            help="Initial estimate on the natural scale (CL=2.5, V=30; L/h, L, 1/h), overriding "
            "the NCA-based one; repeatable or comma-separated.",
        ),
    ] = None,
    out: Annotated[
        Path | None,
        typer.Option(
            metavar="DIR",
            help="Folder for estimates.csv, predictions.csv (PRED/IPRED/CWRES), ebe.csv "
            "(EBEs and individual parameters) and the plots gof.png, individual_fits.png, vpc.png.",
        ),
    ] = None,
    vpc_n_sim: Annotated[int, typer.Option(help="Replicates simulated for the VPC.")] = 200,
    vpc_bins: Annotated[int, typer.Option(help="Time bins of the VPC.")] = 8,
    plots: Annotated[bool, typer.Option("--plots/--no-plots", help="Draw the plots.")] = True,
) -> None:
    """Fit a population PK model (FOCE-I or Laplace) to a NONMEM-style data set.

    Example: medtwin pk fit theoph.csv --model oral1 --iiv CL,V,KA --error additive --out fit/
    """
    from medtwin.calibrate.population import (
        NLMEEstimator,
        PopulationData,
        plot_gof,
        plot_individual_fits,
        plot_vpc,
    )

    with _errors():
        cls = resolve_pk_model(model)
        if error not in ERRORS:
            raise ConfigurationError(
                f"unknown --error {error!r}; choose one of {', '.join(ERRORS)}"
            )
        if method not in METHODS:
            raise ConfigurationError(
                f"unknown --method {method!r}; choose one of {', '.join(METHODS)}"
            )
        names = structural_params(cls)
        eta_on = [_canonical_param(cls, p, "--iiv") for p in iiv.split(",") if p.strip()]
        bad = [p for p in eta_on if p not in names]
        if bad:
            raise ConfigurationError(
                f"--iiv: {bad} are not estimated; choose among {', '.join(names)}"
            )
        if not eta_on:
            raise ConfigurationError("--iiv needs at least one parameter, e.g. --iiv CL,V")
        overrides = parse_assignments(init, cls, "--init")
        bad = [p for p in overrides if p not in names]
        if bad:
            raise ConfigurationError(
                f"--init: {bad} are not estimated; choose among {', '.join(names)}"
            )
        if vpc_n_sim < 10:
            raise ConfigurationError("--vpc-n-sim must be at least 10")

        nm = read_pk_data(data)
        pdata = PopulationData.from_nonmem(nm)
        start = initial_estimates(nm, cls) | overrides
        typer.echo(
            f"{data}: {pdata.n_subjects} subjects, {pdata.n_observations} observations; "
            f"{cls.__name__}, IIV on {', '.join(eta_on)}, {error} error",
            err=True,
        )
        typer.echo(
            "initial estimates: "
            + ", ".join(f"{p} {v:.4g}" for p, v in start.items())
            + (" (NCA-based)" if not overrides else ""),
            err=True,
        )
        pop = build_population_model(cls, pdata, initial=start, iiv=eta_on, error=error)
        typer.echo(f"fitting by {method.upper()} (compilation takes a few seconds)...", err=True)
        fit = NLMEEstimator(pop, method=method).fit(pdata)
        table = estimates_table(fit, cls)
        print_estimates(fit, table)
        if out is not None:
            _write_fit(fit, cls, table, out, plots=plots, vpc_n_sim=vpc_n_sim, vpc_bins=vpc_bins,
                       plotters=(plot_gof, plot_individual_fits, plot_vpc))  # fmt: skip


def _write_fit(
    fit: NLMEEstimator,
    cls: type[PKModel],
    table: pd.DataFrame,
    out: Path,
    *,
    plots: bool,
    vpc_n_sim: int,
    vpc_bins: int,
    plotters: tuple[Callable[..., Any], ...],
) -> None:
    out.mkdir(parents=True, exist_ok=True)
    table.to_csv(out / "estimates.csv", index=False)
    fit.diagnostics_.to_csv(out / "predictions.csv", index=False)
    ebe = fit.eta_.copy()
    for p in structural_params(cls):
        log_p = fit.theta_[f"log_{p}"] + ebe.get(f"eta_{p}", 0.0)
        ebe[f"{p}_{cls.param(p).unit.replace('/', '_per_')}"] = np.exp(log_p)
    ebe.to_csv(out / "ebe.csv")
    written = [out / "estimates.csv", out / "predictions.csv", out / "ebe.csv"]
    if plots:
        gof, individual, vpc = plotters
        jobs: list[tuple[str, Callable[[], Any]]] = [
            ("gof.png", lambda: gof(fit, out / "gof.png")),
            ("individual_fits.png", lambda: individual(fit, out / "individual_fits.png")),
            ("vpc.png", lambda: vpc(fit, out / "vpc.png", n_sim=vpc_n_sim, bins=vpc_bins)),
        ]
        with typer.progressbar(jobs, label="diagnostic plots", file=_stderr()) as bar:
            for name, job in bar:
                job()
                written.append(out / name)
    for path in written:
        typer.echo(f"wrote {path}")


def _stderr() -> Any:
    import sys

    return sys.stderr


# ---------------------------------------------------------------------------------------------
# simulate
# ---------------------------------------------------------------------------------------------


@pk_app.command("simulate")
def simulate_command(
    model: Annotated[
        str, typer.Option(help="Structural model: oral1 | oral2 | oral3 | iv1 | iv2 | iv3.")
    ] = "oral1",
    dose_mg: Annotated[float, typer.Option(help="Each dose, mg.")] = 100.0,
    every_h: Annotated[float, typer.Option(help="Dosing interval, h (0: one dose).")] = 0.0,
    doses: Annotated[int, typer.Option(help="Number of doses.")] = 1,
    infusion_h: Annotated[
        float, typer.Option(help="IV models: infusion duration, h (0: bolus).")
    ] = 0.0,
    param: Annotated[
        list[str] | None,
        typer.Option(
            metavar="NAME=VALUE",
            help="Typical parameter (CL=5, V1=30, KA=1.2; L/h, L, 1/h); repeatable or "
            "comma-separated. Others keep the model's defaults.",
        ),
    ] = None,
    n: Annotated[int, typer.Option(help="Subjects: 1, or a virtual population.")] = 1,
    iiv: Annotated[
        list[str] | None,
        typer.Option(
            metavar="NAME=CV",
            help="Log-normal IIV as a CV (CL=0.3 is 30 %, omega^2 = ln(1 + CV^2)); needs --n > 1.",
        ),
    ] = None,
    seed: Annotated[int, typer.Option(help="Seed of the population draw.")] = 0,
    step_h: Annotated[float, typer.Option(help="Output time step, h.")] = 0.25,
    out: Annotated[
        Path | None,
        typer.Option(help="CSV: time_h, conc_mg_l (one subject) or the 5th/50th/95th percentiles."),
    ] = None,
    plot: Annotated[
        Path | None, typer.Option(help="Draw the profile(s) to an image (.png).")
    ] = None,
    subjects_out: Annotated[
        Path | None, typer.Option(help="CSV: each subject's parameters and exposures.")
    ] = None,
) -> None:
    """Simulate one subject or a virtual population under a regimen; summarise exposure.

    Example: medtwin pk simulate --model oral2 --dose-mg 500 --every-h 12 --doses 14
    --param CL=6 --n 1000 --iiv CL=0.3,V1=0.2 --out conc.csv --plot conc.png
    """
    from medtwin.models.pk import Regimen
    from medtwin.trials import PopulationModel

    with _errors():
        cls = resolve_pk_model(model)
        if not (dose_mg > 0 and math.isfinite(dose_mg)):
            raise ConfigurationError(f"--dose-mg must be > 0, got {dose_mg:g}")
        if doses < 1:
            raise ConfigurationError(f"--doses must be >= 1, got {doses}")
        if doses > 1 and not every_h > 0:
            raise ConfigurationError("several --doses need --every-h > 0")
        if not step_h > 0:
            raise ConfigurationError(f"--step-h must be > 0, got {step_h:g}")
        if n < 1:
            raise ConfigurationError(f"--n must be >= 1, got {n}")
        theta = parse_assignments(param, cls, "--param")
        cvs = parse_assignments(iiv, cls, "--iiv")
        if cvs and n == 1:
            raise ConfigurationError("--iiv describes a population; give --n > 1 as well")
        if cls.depot is not None:
            if infusion_h > 0:
                raise ConfigurationError(f"--infusion-h is for the iv models, not {model}")
            regimen = Regimen.oral(dose_mg, every_h=every_h, doses=doses)
        elif infusion_h > 0:
            regimen = Regimen.infusion(dose_mg, infusion_h, every_h=every_h, doses=doses)
        else:
            regimen = Regimen.bolus(dose_mg, every_h=every_h, doses=doses)
        end = float(regimen.dose_times_h()[-1]) + (every_h if every_h > 0 else 24.0)
        t = np.arange(0.0, end + step_h / 2, step_h)
        if n * t.size > _MAX_VALUES:
            raise ConfigurationError(
                f"{n} subjects x {t.size} times is too many values to hold; raise --step-h or "
                "lower --n"
            )
        omega = {p: math.log1p(cv**2) for p, cv in cvs.items()}
        population = PopulationModel(cls, theta=theta, omega=omega or None).sample(n, seed=seed)
        conc, expo = _simulate_chunks(population, regimen, t)
        _print_exposure(expo, n)
        if out is not None:
            _write_profiles(t, conc, out)
        if subjects_out is not None:
            frame = population.to_pandas().join(expo)
            frame.index.name = "subject"
            frame.to_csv(subjects_out)
            typer.echo(f"wrote {subjects_out}")
        if plot is not None:
            _plot_profiles(t, conc, plot, title=f"{cls.__name__}: {_regimen_text(regimen)}")
            typer.echo(f"wrote {plot}")


def _simulate_chunks(
    population: Any, regimen: Regimen, t: np.ndarray
) -> tuple[np.ndarray, pd.DataFrame]:
    from medtwin.trials import exposures, simulate_population

    n = len(population)
    chunk = 10_000
    starts = list(range(0, n, chunk))
    conc = np.empty((n, t.size))
    parts = []
    label = f"simulating {n} subjects"
    with typer.progressbar(starts, label=label, file=_stderr(), hidden=n <= chunk) as bar:
        for s in bar:
            idx = slice(s, min(s + chunk, n))
            part = replace(
                population,
                params={k: v[idx] for k, v in population.params.items()},
                eta=population.eta[idx],
                covariates={k: v[idx] for k, v in population.covariates.items()},
            )
            conc[idx] = simulate_population(part, regimen, t)
            parts.append(exposures(part, regimen))
    expo = pd.concat(parts, ignore_index=True)
    expo["tmax_h"] -= float(regimen.dose_times_h()[-1])  # after the last dose
    return conc, expo


def _regimen_text(regimen: Regimen) -> str:
    a = regimen.administrations[0]
    how = {"oral": "oral", "iv": "IV bolus" if a.duration_h == 0 else f"IV over {a.duration_h:g} h"}
    every = f" every {a.every_h:g} h" if a.n_doses > 1 else ""
    return f"{a.n_doses} x {a.dose_mg:g} mg {how[a.route]}{every}"


def _print_exposure(expo: pd.DataFrame, n: int) -> None:
    columns = {
        "auc_mg_h_l": "AUC (mg.h/L)",
        "cmax_mg_l": "Cmax (mg/L)",
        "cmin_mg_l": "Cmin (mg/L)",
        "tmax_h": "Tmax (h)",  # after the last dose
    }
    typer.echo("exposure over the last dosing interval:")
    if n == 1:
        for key, label in columns.items():
            typer.echo(f"  {label:<14}{float(expo[key].iloc[0]):>10.4g}")
        return
    typer.echo(f"  {'':<14}{'median':>10}{'5th pct':>10}{'95th pct':>10}   ({n} subjects)")
    for key, label in columns.items():
        lo, med, hi = np.quantile(expo[key].to_numpy(), [0.05, 0.5, 0.95])
        typer.echo(f"  {label:<14}{med:>10.4g}{lo:>10.4g}{hi:>10.4g}")


def _write_profiles(t: np.ndarray, conc: np.ndarray, out: Path) -> None:
    if conc.shape[0] == 1:
        frame = pd.DataFrame({"time_h": t, "conc_mg_l": conc[0]})
    else:
        lo, med, hi = np.quantile(conc, [0.05, 0.5, 0.95], axis=0)
        frame = pd.DataFrame(
            {"time_h": t, "conc_p5_mg_l": lo, "conc_median_mg_l": med, "conc_p95_mg_l": hi}
        )
    out.parent.mkdir(parents=True, exist_ok=True)
    frame.to_csv(out, index=False)
    typer.echo(f"wrote {out}")


def _plot_profiles(t: np.ndarray, conc: np.ndarray, path: Path, *, title: str) -> None:
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(9, 4.5), layout="constrained")
    FigureCanvasAgg(fig)
    ax = fig.add_subplot()
    if conc.shape[0] == 1:
        ax.plot(t, conc[0], color="tab:blue", lw=1.2)
    else:
        lo, med, hi = np.quantile(conc, [0.05, 0.5, 0.95], axis=0)
        ax.fill_between(t, lo, hi, color="tab:blue", alpha=0.25, lw=0, label="90% range")
        ax.plot(t, med, color="tab:blue", lw=1.2, label=f"median of {conc.shape[0]}")
        ax.legend(loc="upper right", fontsize=8)
    ax.set_xlabel("time [h]")
    ax.set_ylabel("concentration [mg/L]")
    ax.set_title(title, fontsize=10)
    ax.grid(alpha=0.3)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=120)


# ---------------------------------------------------------------------------------------------
# nca
# ---------------------------------------------------------------------------------------------


@pk_app.command("nca")
def nca_command(
    data: Annotated[
        Path,
        typer.Argument(metavar="DATA.csv", help="NONMEM-style CSV or R's Theoph layout."),
    ],
    out: Annotated[Path | None, typer.Option(help="Write the table to a CSV.")] = None,
    n_points: Annotated[
        int | None,
        typer.Option(help="Points for lambda_z (default: best adjusted R^2, at least 3)."),
    ] = None,
) -> None:
    """Non-compartmental analysis per subject: Cmax, Tmax, AUC (linear-up/log-down), t1/2, AUCinf.

    The dose is every dose the subject received (for CL/F and Vz/F); AUCs are in mg.h/L.
    Example: medtwin pk nca theoph.csv --out nca.csv
    """
    with _errors():
        table = nca_table(read_pk_data(data), n_points=n_points)
        shown = table[["dose_mg", "cmax_mg_l", "tmax_h", "auc_last_mg_h_l", "auc_inf_mg_h_l",
                       "auc_extrap_percent", "half_life_h", "r2_adj", "cl_f_l_per_h",
                       "vz_f_l"]]  # fmt: skip
        summary = pd.DataFrame({"median": shown.median(), "gmean": _gmean(shown)}).T
        with pd.option_context("display.width", 200, "display.max_columns", 40):
            typer.echo(pd.concat([shown, summary]).to_string(float_format=lambda v: f"{v:.4g}"))
        if out is not None:
            out.parent.mkdir(parents=True, exist_ok=True)
            table.to_csv(out)
            typer.echo(f"wrote {out}")


def _gmean(frame: pd.DataFrame) -> pd.Series:
    values = frame.to_numpy(dtype=float)
    with np.errstate(divide="ignore", invalid="ignore"):
        logs = np.where(values > 0, np.log(np.where(values > 0, values, 1.0)), np.nan)
    return pd.Series(np.exp(np.nanmean(logs, axis=0)), index=frame.columns)


# ---------------------------------------------------------------------------------------------
# dose
# ---------------------------------------------------------------------------------------------


def _dosing_model(name: str) -> Any:
    from medtwin.twin.dosing import vancomycin_goti2018

    factories: dict[str, Callable[[], Any]] = {"vancomycin-goti2018": vancomycin_goti2018}
    if name.strip().lower() not in factories:
        raise ConfigurationError(
            f"unknown dosing model {name!r}; choose one of {', '.join(DOSING_MODELS)}"
        )
    return factories[name.strip().lower()]()


@pk_app.command("dose")
def dose_command(
    model: Annotated[
        str, typer.Option(help="Population model: vancomycin-goti2018 (Goti et al. 2018).")
    ] = "vancomycin-goti2018",
    weight_kg: Annotated[float | None, typer.Option(help="Body weight, kg.")] = None,
    crcl_ml_min: Annotated[
        float | None, typer.Option(help="Creatinine clearance (Cockcroft-Gault), mL/min.")
    ] = None,
    dialysis: Annotated[
        bool, typer.Option("--dialysis/--no-dialysis", help="On intermittent haemodialysis.")
    ] = False,
    level: Annotated[
        list[str] | None,
        typer.Option(
            metavar="TIME_H:CONC_MG_L",
            help="Measured concentration at a time from the first dose; repeatable. "
            "E.g. --level 38:27.5 --level 47.5:21.0. None: a priori dosing.",
        ),
    ] = None,
    given: Annotated[
        list[str] | None,
        typer.Option(
            metavar="START_H:DOSE_MG[:EVERY_H:N_DOSES[:INFUSION_H]]",
            help="Doses given before the levels; repeatable. 0:1000:12:4 = 1000 mg at 0, 12, "
            "24, 36 h, each infused over 1 h (default); 0:1000:12:4:2 over 2 h; "
            "60:1500 one dose at 60 h; a 5th field 0 = bolus.",
        ),
    ] = None,
    target: Annotated[
        str,
        typer.Option(
            metavar="METRIC:LOW-HIGH",
            help="Steady-state target window: auc24 (mg.h/L), trough or peak (mg/L), e.g. "
            "auc24:400-600, trough:10-15, auc24:400 (no upper limit).",
        ),
    ] = "auc24:400-600",
    toxicity: Annotated[
        str,
        typer.Option(
            metavar="METRIC:ABOVE", help="Toxic exposure, e.g. trough:20, auc24:800; none."
        ),
    ] = "trough:20",
    max_toxicity: Annotated[
        str | None,
        typer.Option(
            metavar="P",
            help="Only recommend regimens with P(toxic) <= P (0.1 or 10%).",
        ),
    ] = None,
    intervals_h: Annotated[
        str, typer.Option(help="Candidate dosing intervals, h, comma-separated.")
    ] = "8,12,24",
    doses_mg: Annotated[
        str | None,
        typer.Option(help="Candidate doses, mg, comma-separated (default 250-4000 by 250)."),
    ] = None,
    infusion_rate_mg_h: Annotated[
        float, typer.Option(help="Candidates are infused at this rate (at least 1 h), mg/h.")
    ] = 1000.0,
    posterior: Annotated[
        str, typer.Option(help="Posterior draws: laplace | importance (exact, weighted).")
    ] = "laplace",
    n_draws: Annotated[int, typer.Option(help="Monte-Carlo posterior draws.")] = 4000,
    seed: Annotated[int, typer.Option(help="Seed of the draws.")] = 0,
    show: Annotated[int, typer.Option(help="Candidate regimens listed (best first).")] = 10,
    out: Annotated[Path | None, typer.Option(help="Write every candidate to a CSV.")] = None,
) -> None:
    """MAP-Bayesian dosing from TDM levels: compare regimens by PTA and P(toxic), recommend one.

    Example (vancomycin, 80 kg, CrCL 60 mL/min, 1 g q12h over 1 h x 4, two levels):

    medtwin pk dose --weight-kg 80 --crcl-ml-min 60 --given 0:1000:12:4
    --level 38:27.5 --level 47.5:21.0 --target auc24:400-600 --max-toxicity 10%
    """
    from medtwin.models.pk import Regimen
    from medtwin.twin.dosing import DosingTwin, TDMHistory

    with _errors():
        pk = _dosing_model(model)
        covariates = {"WT": weight_kg, "CRCL": crcl_ml_min, "DIAL": 1.0 if dialysis else 0.0}
        flags = {"WT": "--weight-kg", "CRCL": "--crcl-ml-min", "DIAL": "--dialysis"}
        missing = [flags.get(k, k) for k in pk.covariates if covariates.get(k) is None]
        if missing:
            raise ConfigurationError(f"{model} needs {', '.join(missing)}")
        for key in ("WT", "CRCL"):
            value = covariates[key]
            if value is not None and not (math.isfinite(value) and value > 0):
                raise ConfigurationError(f"{flags[key]} must be > 0, got {value:g}")
        goal = parse_target(target)
        limit = parse_toxicity(toxicity)
        cap = parse_probability(max_toxicity, "--max-toxicity") if max_toxicity else None
        taus = _numbers(intervals_h, "--intervals-h")
        amounts = _numbers(doses_mg, "--doses-mg") if doses_mg else None
        levels = [parse_level(s) for s in level or ()]
        regimens = [parse_given(s) for s in given or ()]
        if levels and not regimens:
            raise ScheduleError("levels need the doses that produced them: add --given")
        doses_given: Regimen | None = None
        for r in regimens:
            doses_given = r if doses_given is None else doses_given + r
        if levels and doses_given is not None:
            first = float(doses_given.dose_times_h()[0])
            early = [t for t, _ in levels if t < first]
            if early:
                raise ScheduleError(
                    f"--level at {early[0]:g} h comes before the first dose ({first:g} h)"
                )
        history = TDMHistory(
            covariates={k: float(v) for k, v in covariates.items() if k in pk.covariates
                        and v is not None},
            doses=doses_given,
            time_h=[t for t, _ in levels],
            conc_mg_l=[c for _, c in levels],
        )  # fmt: skip
        typer.echo(f"{pk.name}: {pk.reference}" if pk.reference else pk.name)
        units = {k: "" if u == "1" else f" {u}" for k, u in pk.covariates.items()}
        typer.echo("patient: " + ", ".join(f"{k} {v:g}{units[k]}"
                                           for k, v in history.covariates.items()))  # fmt: skip
        for r in regimens:
            typer.echo(f"given: {_given_text(r)}")
        if levels:
            typer.echo("levels: " + ", ".join(f"{c:g} mg/L at {t:g} h" for t, c in levels))
        typer.echo("MAP-Bayes on the levels..." if levels else "a priori (no levels)...", err=True)
        twin = DosingTwin(pk, target=goal, toxicity=limit, posterior=posterior,
                          n_samples=n_draws, seed=seed).fit(history)  # fmt: skip
        typer.echo("\nindividual parameters (MAP, 90% posterior interval; typical = population):")
        with pd.option_context("display.width", 200):
            typer.echo(twin.parameters_.to_string(float_format=lambda v: f"{v:.4g}"))
        if posterior == "importance":
            typer.echo(f"importance sampling: effective sample size {twin.ess_:.0f} of {n_draws}")
        typer.echo(f"evaluating {len(taus) * (len(amounts) if amounts else 16)} candidate "
                   "regimens at steady state...", err=True)  # fmt: skip
        rec = twin.recommend(doses_mg=amounts, intervals_h=taus,
                             infusion_rate_mg_h=infusion_rate_mg_h, max_toxicity=cap)  # fmt: skip
        current = None
        last = regimens[-1].administrations[-1] if regimens else None
        if last is not None and last.every_h > 0 and last.duration_h < last.every_h:
            current = twin.compare([Regimen((replace(last, start_h=0.0, n_doses=1),))])
        tox_text = str(limit) if limit is not None else "no threshold"
        typer.echo(f"\ncandidate regimens at steady state (target {goal}; toxic: {tox_text}; "
                   f"{n_draws} posterior draws, +- is the Monte-Carlo SE):")  # fmt: skip
        typer.echo(_candidates_text(rec.candidates.head(max(show, 1)), current))
        typer.echo(f"\nrecommendation: {_recommendation_text(rec.summary, cap)}")
        if out is not None:
            out.parent.mkdir(parents=True, exist_ok=True)
            rec.candidates.to_csv(out, index=False)
            typer.echo(f"wrote {out}")


def _given_text(regimen: Regimen) -> str:
    a = regimen.administrations[0]
    how = f"infused over {a.duration_h:g} h" if a.duration_h > 0 else "bolus"
    every = f" every {a.every_h:g} h" if a.n_doses > 1 else ""
    return f"{a.n_doses} x {a.dose_mg:g} mg{every} from {a.start_h:g} h, {how}"


def _row_text(label: str, r: pd.Series) -> str:
    tox = (
        "-"
        if not math.isfinite(r["p_toxic"])
        else f"{r['p_toxic']:6.1%} +- {r['p_toxic_mcse']:.1%}"
    )
    return (
        f"{label:<34}{r['pta']:6.1%} +- {r['pta_mcse']:.1%}   {tox:<17}"
        f"{r['auc24_median']:>9.0f}{r['trough_median']:>9.1f}{r['peak_median']:>9.1f}"
    )


def _regimen_label(r: pd.Series) -> str:
    how = f" over {r['infusion_h']:g} h" if r["infusion_h"] > 0 else ""
    return f"{r['dose_mg']:g} mg q{r['tau_h']:g}h{how}"


def _candidates_text(table: pd.DataFrame, current: pd.DataFrame | None) -> str:
    head = (
        f"{'regimen':<34}{'PTA':<17}{'P(toxic)':<17}{'AUC24':>9}{'trough':>9}{'peak':>9}\n"
        f"{'':<34}{'':<17}{'':<17}{'mg.h/L':>9}{'mg/L':>9}{'mg/L':>9}"
    )
    lines = [head]
    lines += [_row_text(_regimen_label(r), r) for _, r in table.iterrows()]
    if current is not None:
        r = current.iloc[0]
        lines.append(_row_text(f"current: {_regimen_label(r)}", r))
    lines.append("(exposures are posterior medians)")
    return "\n".join(lines)


def _recommendation_text(s: pd.Series, cap: float | None) -> str:
    how = f" infused over {s['infusion_h']:g} h" if s["infusion_h"] > 0 else ""
    text = (
        f"{s['dose_mg']:g} mg every {s['tau_h']:g} h{how}: PTA {s['pta']:.1%} +- "
        f"{s['pta_mcse']:.1%}"
    )
    if math.isfinite(s["p_toxic"]):
        text += f", P(toxic) {s['p_toxic']:.1%} +- {s['p_toxic_mcse']:.1%}"
        if cap is not None and s["p_toxic"] > cap:
            text += f" (no candidate meets --max-toxicity {cap:.0%}: the least toxic is shown)"
    return text + f", median AUC24 {s['auc24_median']:.0f} mg.h/L"
