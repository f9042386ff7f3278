"""Model-informed precision dosing: the shipped population PK models, and a patient's dose.

``POST /api/patients/{id}/dosing`` individualises a population model on the patient's
covariates, doses and measured levels (MAP Bayes, :class:`~medtwin.twin.dosing.DosingTwin`) and
compares candidate regimens by their probability of target attainment (PTA) and of toxicity,
each with its Monte-Carlo standard error, plus each candidate's concentration curve (posterior
median and 90% band) from the first dose given through three days of the new regimen.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
from fastapi import APIRouter

from medtwin.api._auth import CurrentAccess
from medtwin.api.schemas import (
    DosingCandidateOut,
    DosingCovariateOut,
    DosingCurveOut,
    DosingIn,
    DosingLimitIn,
    DosingModelOut,
    DosingOut,
    DosingParameterOut,
    DosingTargetIn,
    ExposureOut,
    RegimenIn,
)
from medtwin.errors import ParameterError
from medtwin.models.pk import Administration, Dose, DoseTable, Regimen
from medtwin.twin.dosing import (
    METRICS,
    DosingTwin,
    ExposureLimit,
    ExposureTarget,
    PopulationPK,
    TDMHistory,
    vancomycin_goti2018,
)

router = APIRouter(tags=["dosing"])

N_SHOWN = 5
"""Candidates returned when the service searches the regimens itself (``"recommend"``)."""
CURVE_POINTS = 400
"""Points of the concentration curves (plus every dose start and infusion end)."""
CURVE_DAYS = 3.0
"""How long the curves follow each candidate regimen (days)."""
_LABELS = {"auc24": "AUC24", "trough": "trough", "peak": "peak"}


@dataclass(frozen=True, slots=True)
class _Covariate:
    name: str  # in the API, with its unit
    model_name: str  # in the population model
    unit: str
    description: str
    minimum: float
    maximum: float
    default: float | None = None


@dataclass(frozen=True, slots=True)
class _Shipped:
    name: str
    drug: str
    structure: str
    population: Callable[[], PopulationPK]
    covariates: tuple[_Covariate, ...]
    target: DosingTargetIn
    toxicity: DosingLimitIn
    route: str = "iv"


MODELS: dict[str, _Shipped] = {
    "vancomycin-goti2018": _Shipped(
        name="vancomycin-goti2018",
        drug="vancomycin",
        structure="two-compartment, intravenous infusion into the central compartment",
        population=vancomycin_goti2018,
        covariates=(
            _Covariate("weight_kg", "WT", "kg", "total body weight", 20.0, 300.0),
            _Covariate(
                "crcl_ml_min",
                "CRCL",
                "mL/min",
                "Cockcroft-Gault creatinine clearance (the model truncates it at 150)",
                1.0,
                300.0,
            ),
            _Covariate(
                "haemodialysis",
                "DIAL",
                "1",
                "1 if on intermittent haemodialysis, else 0",
                0.0,
                1.0,
                default=0.0,
            ),
        ),
        target=DosingTargetIn(kind="auc24", low=400.0, high=600.0),
        toxicity=DosingLimitIn(kind="trough", above=20.0),
    )
}
"""The population models the service offers, by API name."""


def _shipped(name: str) -> _Shipped:
    if name not in MODELS:
        raise ParameterError(
            f"model: unknown dosing model {name!r}; choose one of {', '.join(MODELS)} "
            "(GET /api/dosing/models)"
        )
    return MODELS[name]


def _model_out(spec: _Shipped) -> DosingModelOut:
    model = spec.population()
    omega = np.diag(model.population.omega_matrix)
    return DosingModelOut(
        name=spec.name,
        drug=spec.drug,
        structure=spec.structure,
        route=spec.route,
        covariates=[
            DosingCovariateOut(
                name=c.name,
                unit=c.unit,
                description=c.description,
                minimum=c.minimum,
                maximum=c.maximum,
                default=c.default,
            )
            for c in spec.covariates
        ],
        parameters={p.name: p.unit for p in model.pk_model.params},
        theta={k: float(v) for k, v in model.theta.items()},
        iiv_cv_percent={
            name: round(100.0 * math.sqrt(math.expm1(float(var))), 1)
            for name, var in zip(model.population.eta_names, omega, strict=True)
        },
        default_target=spec.target,
        default_toxicity=spec.toxicity,
        reference=model.reference,
    )


@router.get("/api/dosing/models", response_model=list[DosingModelOut])
def dosing_models(access: CurrentAccess) -> list[DosingModelOut]:
    """The population PK models for dosing, with their covariates, units and citation."""
    return [_model_out(spec) for spec in MODELS.values()]


def _covariates(spec: _Shipped, given: dict[str, float]) -> dict[str, float]:
    """The API's covariates (``weight_kg``...) checked and renamed to the model's (``WT``...)."""
    known = {c.name: c for c in spec.covariates}
    unknown = sorted(set(given) - set(known))
    if unknown:
        raise ParameterError(
            f"covariates.{unknown[0]}: {spec.name} does not use it; it takes "
            + ", ".join(f"{c.name} ({c.unit})" for c in spec.covariates)
        )
    out = {}
    for c in spec.covariates:
        value = given.get(c.name, c.default)
        if value is None:
            raise ParameterError(f"covariates.{c.name} ({c.unit}) is required by {spec.name}")
        if not c.minimum <= value <= c.maximum:
            raise ParameterError(
                f"covariates.{c.name} must be between {c.minimum:g} and {c.maximum:g} {c.unit}, "
                f"got {value:g}"
            )
        if c.unit == "1" and value not in (0.0, 1.0):
            raise ParameterError(f"covariates.{c.name} must be 0 or 1, got {value:g}")
        out[c.model_name] = float(value)
    return out


def _history(model: PopulationPK, body: DosingIn) -> TDMHistory:
    cmt = model.pk_model.dose_cmt("iv")
    doses = [Dose(d.time_h, d.dose_mg, cmt, d.duration_h) for d in body.doses]
    return TDMHistory(
        covariates=_covariates(MODELS[body.model], body.covariates),
        doses=doses or None,
        time_h=[lv.time_h for lv in body.levels],
        conc_mg_l=[lv.concentration_mg_l for lv in body.levels],
    )


def _next_dose_h(body: DosingIn, every_h: float) -> float:
    """When a new regimen starts: when the next dose of the current one is due."""
    if body.next_dose_h is not None:
        return body.next_dose_h
    if not body.doses:
        return 0.0
    times = sorted({d.time_h for d in body.doses})
    gap = times[-1] - times[-2] if len(times) > 1 else every_h
    last_level = max((lv.time_h for lv in body.levels), default=0.0)
    return max(times[-1] + gap, last_level)


def _regimen(r: RegimenIn) -> Regimen:
    return Regimen((Administration("iv", r.dose_mg, 0.0, r.every_h, 1, r.duration_h, True),))


def _candidates(twin: DosingTwin, body: DosingIn) -> tuple[list[RegimenIn], pd.DataFrame, int]:
    """The candidates, their comparison table and the index of the recommended one."""
    if body.candidates == "recommend":
        rec = twin.recommend(max_toxicity=body.max_p_toxic)
        table = rec.candidates
        best = table.index[
            (table["dose_mg"] == rec.summary["dose_mg"]) & (table["tau_h"] == rec.summary["tau_h"])
        ][0]
        shown = [*dict.fromkeys([int(best), *range(min(N_SHOWN, len(table)))])][:N_SHOWN]
        table = table.loc[shown].reset_index(drop=True)
        regimens = [
            RegimenIn(dose_mg=float(d), every_h=float(t), duration_h=float(h))
            for d, t, h in zip(table["dose_mg"], table["tau_h"], table["infusion_h"], strict=True)
        ]
        return regimens, table, 0
    regimens = list(body.candidates)
    table = twin.compare([_regimen(r) for r in regimens])
    return regimens, table, twin.best(table, max_toxicity=body.max_p_toxic)


def _grid(body: DosingIn, regimens: Sequence[RegimenIn]) -> np.ndarray:
    """Curve times: even steps from 0, plus each dose start, infusion end and level time."""
    start = max(_next_dose_h(body, r.every_h) for r in regimens)
    end = start + max(CURVE_DAYS * 24.0, *(3 * r.every_h for r in regimens))
    knots = [t for d in body.doses for t in (d.time_h, d.time_h + d.duration_h)]
    knots += [lv.time_h for lv in body.levels]
    for r in regimens:
        s = _next_dose_h(body, r.every_h)
        for k in range(int((end - s) // r.every_h) + 1):
            knots += [s + k * r.every_h, s + k * r.every_h + r.duration_h]
    times = np.concatenate([np.linspace(0.0, end, CURVE_POINTS + 1), knots])
    return np.unique(np.round(times[(times >= 0) & (times <= end)], 4))


def _curve(
    twin: DosingTwin, model: PopulationPK, body: DosingIn, r: RegimenIn, times: np.ndarray
) -> DosingCurveOut:
    """The doses given, then the candidate from when the next dose is due, over every draw."""
    cmt = model.pk_model.dose_cmt("iv")
    start = _next_dose_h(body, r.every_h)
    n_new = int((times[-1] - start) // r.every_h) + 1
    records = [Dose(d.time_h, d.dose_mg, cmt, d.duration_h) for d in body.doses]
    records.append(Dose(start, r.dose_mg, cmt, r.duration_h, ii_h=r.every_h, addl=n_new - 1))
    lo, med, hi = twin.bands(DoseTable.from_doses([records]), times, (0.05, 0.5, 0.95))
    return DosingCurveOut(
        median=[round(float(v), 3) for v in med],
        lower_90=[round(float(v), 3) for v in lo],
        upper_90=[round(float(v), 3) for v in hi],
    )


def _number(v: Any, digits: int = 4) -> float | None:
    x = float(v)
    return None if math.isnan(x) else round(x, digits)


@router.post("/api/patients/{patient_id}/dosing", response_model=DosingOut)
def dosing(patient_id: str, body: DosingIn, access: CurrentAccess) -> DosingOut:
    """Individualise the PK model on the patient's levels and compare candidate regimens.

    Per candidate: PTA and P(toxic) with Monte-Carlo standard errors, the median and 90%
    interval of AUC24 (mg.h/L), trough and peak (mg/L) at steady state, and its concentration
    curve (median, 90% band) at ``times_h``.  The recommended one has the highest PTA (ties:
    lower daily dose, lower P(toxic), longer interval).
    """
    access.require("r", "Observation", patient_id=patient_id, action="dosing")
    access.service.store.get_patient(patient_id)
    spec = _shipped(body.model)
    model = spec.population()
    history = _history(model, body)
    target = ExposureTarget(
        body.target.kind,
        body.target.low,
        math.inf if body.target.high is None else body.target.high,
    )
    toxicity = (
        None if body.toxicity is None else ExposureLimit(body.toxicity.kind, body.toxicity.above)
    )
    twin = DosingTwin(
        model,
        target=target,
        toxicity=toxicity,
        posterior=body.posterior,
        n_samples=body.n_draws,
        seed=body.seed,
    ).fit(history)
    regimens, table, best = _candidates(twin, body)
    times = _grid(body, regimens)
    units = {p.name: p.unit for p in model.pk_model.params}
    candidates = []
    for i, (r, row) in enumerate(zip(regimens, table.to_dict("records"), strict=True)):
        candidates.append(
            DosingCandidateOut(
                dose_mg=r.dose_mg,
                every_h=r.every_h,
                duration_h=r.duration_h,
                daily_dose_mg=round(r.dose_mg * 24.0 / r.every_h, 2),
                start_h=_next_dose_h(body, r.every_h),
                pta=round(float(row["pta"]), 4),
                pta_mcse=round(float(row["pta_mcse"]), 4),
                p_below=round(float(row["p_below"]), 4),
                p_above=round(float(row["p_above"]), 4),
                p_toxic=_number(row["p_toxic"]),
                p_toxic_mcse=_number(row["p_toxic_mcse"]),
                exposure={
                    m: ExposureOut(
                        median=round(float(row[f"{m}_median"]), 2),
                        lower_90=round(float(row[f"{m}_lower_90"]), 2),
                        upper_90=round(float(row[f"{m}_upper_90"]), 2),
                        unit=unit,
                    )
                    for m, unit in METRICS.items()
                },
                recommended=i == best,
                curve=_curve(twin, model, body, r, times),
            )
        )
    c = candidates[best]
    tox = "" if c.p_toxic is None else f", P(toxic) {c.p_toxic:.1%} ± {c.p_toxic_mcse or 0.0:.1%}"
    recommendation = (
        f"{c.dose_mg:g} mg every {c.every_h:g} h"
        + (f" (infused over {c.duration_h:g} h)" if c.duration_h > 0 else "")
        + f": PTA {c.pta:.1%} ± {c.pta_mcse:.1%} (MC SE){tox}, "
        + f"median {_LABELS[target.metric]} {c.exposure[target.metric].median:.0f} {METRICS[target.metric]}"
    )
    return DosingOut(
        patient_id=patient_id,
        model=spec.name,
        posterior=body.posterior,
        n_draws=body.n_draws,
        ess=round(float(twin.ess_), 1),
        seed=body.seed,
        n_levels=history.n_levels,
        target={**body.target.model_dump(), "unit": METRICS[body.target.kind]},
        toxicity=None
        if body.toxicity is None
        else {**body.toxicity.model_dump(), "unit": METRICS[body.toxicity.kind]},
        parameters={
            str(name): DosingParameterOut(
                map=round(float(p["map"]), 4),
                typical=round(float(p["typical"]), 4),
                lower_90=round(float(p["lower_90"]), 4),
                upper_90=round(float(p["upper_90"]), 4),
                unit=units.get(str(name), ""),
            )
            for name, p in twin.parameters_.iterrows()
        },
        recommendation=recommendation,
        recommended_index=best,
        times_h=[float(t) for t in times],
        candidates=candidates,
    )
