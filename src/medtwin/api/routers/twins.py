"""The hosted twins: state, forecast with bands, risk, and what-if comparisons."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Literal

import numpy as np
from fastapi import APIRouter, Query

from medtwin.api._auth import CurrentAccess
from medtwin.api.schemas import CompareIn, CompareOut, ForecastOut, RiskOut, TwinOut
from medtwin.simulate import Schedule
from medtwin.twin import Forecast
from medtwin.twin._twin import weighted_quantile

router = APIRouter(prefix="/api/patients/{patient_id}", tags=["twins"])

_DEFAULT_THRESHOLDS = {"hypoglycaemia": 70.0, "hyperglycaemia": 250.0}


def forecast_out(patient_id: str, model: str, fc: Forecast) -> ForecastOut:
    """A :class:`~medtwin.twin.Forecast` as JSON (levels as percentages: "50", "80", "95")."""
    return ForecastOut(
        patient_id=patient_id,
        model=model,
        issued=datetime.now(UTC),
        times=[t.to_pydatetime() for t in fc.time],
        median=[round(float(v), 2) for v in fc.median],
        bands={
            f"{round(level * 100)}": {
                "lower": [round(float(v), 2) for v in lo],
                "upper": [round(float(v), 2) for v in hi],
            }
            for level, (lo, hi) in fc.bands.items()
        },
    )


@router.get("/twin", response_model=TwinOut)
def twin_state(patient_id: str, access: CurrentAccess) -> TwinOut:
    """The twin's clock, ensemble size and parameter estimates (median, 2.5%, 97.5%)."""
    access.require("r", "Observation", patient_id=patient_id, action="read twin")
    twin = access.service.host.twin(patient_id)
    ens = twin.ensemble_
    w = np.asarray(ens.weights, dtype=float)
    params: dict[str, dict[str, float]] = {}
    for name in getattr(twin.filter_, "estimate", ()):
        values = np.asarray(ens.params[name], dtype=float)[:, None]
        lo, med, hi = (float(weighted_quantile(values, w, q)[0]) for q in (0.025, 0.5, 0.975))
        params[name] = {"median": med, "lower": lo, "upper": hi}
    return TwinOut(
        patient_id=patient_id,
        model=type(twin.model).__name__,
        now=twin.now.to_pydatetime(),
        n_members=int(w.size),
        n_readings=twin.n_readings_,
        parameters=params,
        latest=access.service.host.latest(patient_id),
    )


@router.get("/forecast", response_model=ForecastOut)
def forecast(
    patient_id: str,
    access: CurrentAccess,
    horizon_min: Annotated[float, Query(gt=0, le=1440)] = 240.0,
) -> ForecastOut:
    """Forecast from now with median and 50/80/95% bands (mg/dL)."""
    access.require("r", "Observation", patient_id=patient_id, action="forecast")
    host = access.service.host
    fc = host.forecast(patient_id, horizon_min)
    return forecast_out(patient_id, type(host.model).__name__, fc)


@router.get("/risk", response_model=RiskOut)
def risk(
    patient_id: str,
    access: CurrentAccess,
    event: Literal["hypoglycaemia", "hyperglycaemia"] = "hypoglycaemia",
    within_min: Annotated[float, Query(gt=0, le=1440)] = 30.0,
    threshold_mg_dl: Annotated[float | None, Query(gt=0, le=600)] = None,
) -> RiskOut:
    """Probability that glucose crosses the threshold within the window."""
    access.require("r", "RiskAssessment", patient_id=patient_id, action="risk")
    level = threshold_mg_dl if threshold_mg_dl is not None else _DEFAULT_THRESHOLDS[event]
    below = level if event == "hypoglycaemia" else None
    above = level if event == "hyperglycaemia" else None
    host = access.service.host
    p = host.risk(patient_id, event, within_min=within_min, below=below, above=above)
    return RiskOut(
        patient_id=patient_id,
        event=event,
        probability=round(p, 4),
        within_min=within_min,
        threshold_mg_dl=level,
        model=type(host.model).__name__,
        alert_threshold=access.service.settings.alert_threshold,
    )


@router.post("/compare", response_model=CompareOut)
def compare(patient_id: str, body: CompareIn, access: CurrentAccess) -> CompareOut:
    """What-if: each scenario's outcomes (TIR, TBR, peak, nadir) with 95% ranges, paired."""
    access.require("r", "Observation", patient_id=patient_id, action="what-if")
    host = access.service.host
    schedules: dict[str, Schedule | None] = {}
    for name, actions in body.scenarios.items():
        s = Schedule()
        for a in actions:
            if a.kind == "bolus":
                s = s.bolus(a.at_min, a.value)
            elif a.kind == "carbs":
                s = s.meal(a.at_min, a.value)
            else:
                s = s.basal(a.at_min, a.value)
        schedules[name] = s if actions else None
    table = host.compare(patient_id, schedules, body.horizon_min)
    model = type(host.model).__name__
    forecasts = {
        name: forecast_out(patient_id, model, host.forecast(patient_id, body.horizon_min, sched))
        for name, sched in schedules.items()
    }
    outcomes = {
        str(name): {str(k): round(float(v), 2) for k, v in row.items()}
        for name, row in table.iterrows()
    }
    return CompareOut(
        patient_id=patient_id, horizon_min=body.horizon_min, outcomes=outcomes, forecasts=forecasts
    )
