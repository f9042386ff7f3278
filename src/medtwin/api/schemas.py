"""Request and response bodies of the API (pydantic v2; used only at this boundary)."""

from __future__ import annotations

import math
from datetime import date, datetime
from typing import Literal

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, field_validator, model_validator

__all__ = [
    "AdtIngestOut",
    "AdtMessageOut",
    "AlertOut",
    "BandOut",
    "CensusHistoryOut",
    "CensusIssueOut",
    "CensusOut",
    "CompareIn",
    "CompareOut",
    "DoseGivenIn",
    "DosingCandidateOut",
    "DosingCovariateOut",
    "DosingCurveOut",
    "DosingIn",
    "DosingLimitIn",
    "DosingModelOut",
    "DosingOut",
    "DosingParameterOut",
    "DosingTargetIn",
    "EventIn",
    "EventOut",
    "ExposureOut",
    "ForecastOut",
    "HospitalForecastOut",
    "HospitalSpecOut",
    "HospitalUnitOut",
    "IngestOut",
    "LevelIn",
    "ObservationIn",
    "ObservationOut",
    "OccupantOut",
    "PatientIn",
    "PatientOut",
    "ReadingsIn",
    "RegimenIn",
    "RiskOut",
    "ScenarioAction",
    "ScenarioCompareIn",
    "ScenarioCompareOut",
    "ScenarioRowOut",
    "TokenOut",
    "TwinOut",
    "UnitCensusOut",
    "UnitForecastOut",
    "UserOut",
]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class TokenOut(BaseModel):
    """An OAuth2 access token."""

    access_token: str
    token_type: Literal["bearer"] = "bearer"
    expires_in: int
    scope: str
    role: str


class UserOut(BaseModel):
    """Who the token belongs to."""

    username: str
    role: str
    scope: str
    patient_id: str | None = None


class PatientIn(_Strict):
    """A patient to register; ``identifier`` (MRN), name and birth date are stored encrypted."""

    id: str = Field(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9\-\.]{1,64}$")
    identifier: str | None = Field(default=None, max_length=200)
    name: str | None = Field(default=None, max_length=200)
    birth_date: date | None = None
    sex: Literal["male", "female", "other", "unknown"] | None = None
    clinicians: list[str] = Field(default_factory=list, max_length=50)


class PatientOut(BaseModel):
    """A patient as a clinician sees it, with the latest twin update."""

    id: str
    identifier: str | None = None
    name: str | None = None
    birth_date: str | None = None
    sex: str | None = None
    latest: dict[str, object] | None = None


def _finite(v: float) -> float:
    if not math.isfinite(v):
        raise ValueError("must be a finite number")
    return v


class ObservationIn(_Strict):
    """One observation in the code's canonical unit (see ``medtwin.records.OBSERVATION_CODES``)."""

    time: AwareDatetime
    code: str = Field(default="99504-3", max_length=20)
    value: float
    unit: str = Field(default="mg/dL", max_length=20)
    device_id: str | None = Field(default=None, max_length=64)
    source_id: str = Field(min_length=1, max_length=200)

    _check = field_validator("value")(_finite)


class EventIn(_Strict):
    """A logged bolus (U), basal rate (U/h), carbohydrate (g) or other medication (mg)."""

    time: AwareDatetime
    kind: Literal["bolus", "basal", "carbs", "medication"]
    value: float = Field(ge=0)
    unit: str = Field(max_length=20)
    source_id: str = Field(min_length=1, max_length=200)

    _check = field_validator("value")(_finite)


class ReadingsIn(_Strict):
    """The light path for a device: readings numbered from ``first_seq`` (its message sequence)."""

    first_seq: int = Field(ge=0, le=2**62)
    times: list[AwareDatetime] = Field(min_length=1, max_length=10_000)
    values: list[float] = Field(min_length=1, max_length=10_000)
    code: str = Field(default="99504-3", max_length=20)
    unit: str = Field(default="mg/dL", max_length=20)

    @field_validator("values")
    @classmethod
    def _all_finite(cls, v: list[float]) -> list[float]:
        for i, x in enumerate(v):
            if not math.isfinite(x):
                raise ValueError(f"values[{i}] is not a finite number")
        return v


class EventOut(BaseModel):
    """A stored event: bolus (U), basal rate (U/h), carbohydrate (g), medication (mg)."""

    time: datetime
    kind: str
    value: float
    unit: str


class IngestOut(BaseModel):
    """What an ingestion stored: ``accepted`` new records, ``duplicates`` already there."""

    accepted: int
    duplicates: int


class ObservationOut(BaseModel):
    """A stored observation."""

    time: datetime
    code: str
    value: float
    unit: str
    device_id: str | None = None


class TwinOut(BaseModel):
    """A hosted twin's state: clock, members, parameter estimates."""

    patient_id: str
    model: str
    now: datetime
    n_members: int
    n_readings: int
    parameters: dict[str, dict[str, float]]
    latest: dict[str, object] | None = None


class ForecastOut(BaseModel):
    """A forecast: median and 50/80/95% bands (mg/dL) at each time."""

    patient_id: str
    model: str
    issued: datetime
    times: list[datetime]
    median: list[float | None]
    bands: dict[str, dict[str, list[float]]]


class RiskOut(BaseModel):
    """Probability of an event within a window."""

    patient_id: str
    event: str
    probability: float
    within_min: float
    threshold_mg_dl: float
    model: str
    alert_threshold: float = Field(description="probability at which the service raises an alert")


class ScenarioAction(_Strict):
    """One action of a what-if scenario, ``at_min`` minutes from now."""

    kind: Literal["bolus", "carbs", "basal"]
    at_min: float = Field(default=0.0, ge=0, le=1440)
    value: float = Field(ge=0, le=1000)


class CompareIn(_Strict):
    """Two to five named scenarios (an empty list means "do nothing")."""

    scenarios: dict[str, list[ScenarioAction]] = Field(min_length=1, max_length=5)
    horizon_min: float = Field(default=240.0, gt=0, le=1440)


class CompareOut(BaseModel):
    """Outcomes per scenario, each with its 95% range over the twin's members."""

    patient_id: str
    horizon_min: float
    outcomes: dict[str, dict[str, float]]
    forecasts: dict[str, ForecastOut]


class AlertOut(BaseModel):
    """A stored alert."""

    id: int | None
    patient_id: str
    time: datetime
    kind: str
    probability: float
    threshold: float
    window_min: float
    model: str
    message: str
    acknowledged_by: str | None = None


# -- model-informed precision dosing ----------------------------------------------------------

_DOSING_METRIC = Literal["auc24", "trough", "peak"]
_MAX_TIME_H = 24.0 * 365  # a year of dosing history


class DoseGivenIn(_Strict):
    """A dose given: ``dose_mg`` at ``time_h`` (h from the first dose) over ``duration_h`` (0: bolus)."""

    time_h: float = Field(ge=0, le=_MAX_TIME_H)
    dose_mg: float = Field(gt=0, le=100_000)
    duration_h: float = Field(default=1.0, ge=0, le=48)


class LevelIn(_Strict):
    """A measured concentration (mg/L) at ``time_h`` (hours from the first dose)."""

    time_h: float = Field(ge=0, le=_MAX_TIME_H)
    concentration_mg_l: float = Field(ge=0, le=10_000)


class DosingTargetIn(_Strict):
    """The exposure window aimed at: AUC24 in mg.h/L, trough or peak in mg/L (no ``high``: none)."""

    kind: _DOSING_METRIC = "auc24"
    low: float = Field(default=400.0, ge=0, le=100_000)
    high: float | None = Field(default=600.0, gt=0, le=100_000)

    @model_validator(mode="after")
    def _ordered(self) -> DosingTargetIn:
        if self.high is not None and not self.low < self.high:
            raise ValueError(f"target.low ({self.low}) must be below target.high ({self.high})")
        return self


class DosingLimitIn(_Strict):
    """A toxicity threshold: exposure ``above`` it counts as toxic (mg.h/L for AUC24, else mg/L)."""

    kind: _DOSING_METRIC = "trough"
    above: float = Field(gt=0, le=100_000)


class RegimenIn(_Strict):
    """A candidate maintenance regimen: ``dose_mg`` every ``every_h`` infused over ``duration_h``."""

    dose_mg: float = Field(gt=0, le=20_000)
    every_h: float = Field(ge=1, le=168)
    duration_h: float = Field(default=1.0, ge=0, le=48)

    @model_validator(mode="after")
    def _fits(self) -> RegimenIn:
        if not self.duration_h < self.every_h:
            raise ValueError(
                f"duration_h ({self.duration_h}) must be shorter than every_h ({self.every_h})"
            )
        return self


class DosingIn(_Strict):
    """A dosing question: the patient's covariates, doses and levels, the target, the candidates.

    ``candidates="recommend"`` searches 250-4000 mg every 8, 12 or 24 h (infused at 1 g/h, at
    least 1 h) and returns the best few.  Times are hours from the first dose.
    """

    model: str = Field(default="vancomycin-goti2018", min_length=1, max_length=64)
    covariates: dict[str, float] = Field(max_length=20)
    doses: list[DoseGivenIn] = Field(default_factory=list, max_length=1000)
    levels: list[LevelIn] = Field(default_factory=list, max_length=200)
    target: DosingTargetIn = Field(default_factory=DosingTargetIn)
    toxicity: DosingLimitIn | None = Field(
        default_factory=lambda: DosingLimitIn(kind="trough", above=20.0),
        description="null for none; default trough > 20 mg/L",
    )
    candidates: list[RegimenIn] | Literal["recommend"] = Field(default="recommend")
    max_p_toxic: float | None = Field(
        default=None, ge=0, le=1, description="only regimens with P(toxic) at most this qualify"
    )
    next_dose_h: float | None = Field(
        default=None,
        ge=0,
        le=_MAX_TIME_H,
        description="when a candidate's first dose is given (default: when the next one is due)",
    )
    posterior: Literal["laplace", "importance"] = "laplace"
    n_draws: int = Field(default=1000, ge=50, le=5000)
    seed: int = Field(default=0, ge=0, le=2**32 - 1)

    @field_validator("covariates")
    @classmethod
    def _covariates_finite(cls, v: dict[str, float]) -> dict[str, float]:
        for k, x in v.items():
            if not math.isfinite(x):
                raise ValueError(f"covariates.{k} is not a finite number")
        return v

    @field_validator("candidates")
    @classmethod
    def _some_candidates(
        cls, v: list[RegimenIn] | Literal["recommend"]
    ) -> list[RegimenIn] | Literal["recommend"]:
        if isinstance(v, list) and not 1 <= len(v) <= 8:
            raise ValueError(f'give 1 to 8 candidate regimens or "recommend", got {len(v)}')
        return v

    @model_validator(mode="after")
    def _levels_after_doses(self) -> DosingIn:
        if self.levels and not self.doses:
            raise ValueError("levels need the doses that produced them: give doses")
        if self.doses:
            first = min(d.time_h for d in self.doses)
            for i, level in enumerate(self.levels):
                if level.time_h <= first:
                    raise ValueError(
                        f"levels[{i}].time_h ({level.time_h} h) is not after the first dose "
                        f"(at {first} h): times are hours from the first dose"
                    )
        return self


class DosingCovariateOut(BaseModel):
    """A covariate a dosing model needs, with its unit and accepted range."""

    name: str
    unit: str
    description: str
    minimum: float
    maximum: float
    default: float | None = None


class DosingModelOut(BaseModel):
    """A shipped population PK model for dosing."""

    name: str
    drug: str
    structure: str
    route: str
    covariates: list[DosingCovariateOut]
    parameters: dict[str, str] = Field(description="PK parameter -> unit")
    theta: dict[str, float]
    iiv_cv_percent: dict[str, float]
    default_target: DosingTargetIn
    default_toxicity: DosingLimitIn
    reference: str


class DosingParameterOut(BaseModel):
    """A PK parameter of the patient: MAP estimate, typical value (eta = 0), 90% interval."""

    map: float
    typical: float
    lower_90: float
    upper_90: float
    unit: str


class ExposureOut(BaseModel):
    """A steady-state exposure over the posterior: median and 90% interval."""

    median: float
    lower_90: float
    upper_90: float
    unit: str


class DosingCurveOut(BaseModel):
    """Concentration (mg/L) at ``DosingOut.times_h``: posterior median and 90% band."""

    median: list[float | None]
    lower_90: list[float | None]
    upper_90: list[float | None]


class DosingCandidateOut(BaseModel):
    """One candidate regimen: probabilities with their Monte-Carlo standard errors, exposures."""

    dose_mg: float
    every_h: float
    duration_h: float
    daily_dose_mg: float
    start_h: float = Field(description="when its first dose is given (hours from the first dose)")
    pta: float = Field(description="probability of target attainment at steady state")
    pta_mcse: float
    p_below: float
    p_above: float
    p_toxic: float | None
    p_toxic_mcse: float | None
    exposure: dict[str, ExposureOut]
    recommended: bool
    curve: DosingCurveOut


class DosingOut(BaseModel):
    """The patient's individualised PK and each candidate's outlook."""

    patient_id: str
    model: str
    posterior: str
    n_draws: int
    ess: float = Field(description="effective sample size of the posterior draws")
    seed: int
    n_levels: int
    target: dict[str, object]
    toxicity: dict[str, object] | None
    parameters: dict[str, DosingParameterOut]
    recommendation: str
    recommended_index: int
    times_h: list[float]
    candidates: list[DosingCandidateOut]


# -- the hospital twin ---------------------------------------------------------------------------


class AdtMessageOut(BaseModel):
    """One ADT event accepted: whether it was stored now (else before) and its ACK."""

    index: int = Field(description="1-based position in the batch")
    message_id: str
    event_type: str
    status: Literal["applied", "duplicate"] = Field(
        description="applied: the census took it; duplicate: a message id or content seen before"
    )
    stored: bool = Field(description="stored by this request (false: it was stored before)")
    ack: Literal["AA"] = "AA"
    ack_message: str | None = Field(default=None, description="the HL7 v2 ACK (HL7 batches)")


class AdtIngestOut(BaseModel):
    """What a batch of ADT events did."""

    accepted: int = Field(description="events stored by this request")
    duplicates: int = Field(description="events stored before (resubmissions)")
    census_version: int
    messages: list[AdtMessageOut]


class UnitCensusOut(BaseModel):
    """Occupancy of one unit: the ED against its cubicles, a ward against its beds."""

    unit: str
    kind: Literal["ed", "ward"]
    occupied: int
    capacity: int | None
    occupancy: float | None
    boarding: int | None = Field(description="ED patients admitted and waiting for a bed")


class OccupantOut(BaseModel):
    """A patient in the hospital now (PHI: clinicians and admins only)."""

    unit: str
    bed: str | None
    visit_id: str
    patient_id: str
    unit_since: datetime
    arrived_at: datetime
    patient_class: str | None
    acuity: str | None


class CensusIssueOut(BaseModel):
    """Something in the ADT data to look at (a bed conflict, an unmatched cancel, ...)."""

    kind: str
    detail: str
    visit_ids: list[str]
    message_id: str | None


class CensusOut(BaseModel):
    """The live census: per unit against capacity; patients only for those who may see them."""

    hospital: str
    as_of: datetime | None = Field(description="time of the latest event applied")
    version: int = Field(description="changes with every event that changed the census")
    units: list[UnitCensusOut]
    unknown_units: dict[str, int] = Field(description="census units the hospital spec lacks")
    inpatients: int
    beds: int
    occupancy: float | None
    events_applied: int
    events_duplicate: int
    issues: dict[str, int] = Field(description="data issues by kind")
    patients: list[OccupantOut] | None = None
    issue_list: list[CensusIssueOut] | None = None


class CensusHistoryOut(BaseModel):
    """Patients per unit on a regular time grid."""

    freq: str
    times: list[datetime]
    units: dict[str, list[int]]


class BandOut(BaseModel):
    """Quantiles across replications, by hour: median, 50% and 90% central intervals."""

    median: list[float | None]
    lower_50: list[float | None]
    upper_50: list[float | None]
    lower_90: list[float | None]
    upper_90: list[float | None]
    mean: list[float | None]


class UnitForecastOut(BaseModel):
    """One ward's forecast: patients in beds, and the probability that every bed is taken."""

    unit: str
    beds: int
    occupied: BandOut
    p_full: list[float]


class HospitalForecastOut(BaseModel):
    """Hourly bands from the census time to the horizon, per ward and for the ED."""

    hospital: str
    census_at: datetime
    census_version: int = Field(description="the census version the forecast started from")
    current_version: int
    stale: bool = Field(description="the census has changed since (the forecast is reused)")
    computed_at: datetime
    elapsed_s: float
    horizon_hours: int
    replications: int
    seed: int
    times: list[datetime]
    units: list[UnitForecastOut]
    ed: dict[str, BandOut] = Field(description="ed, waiting, boarding, arrivals (per hour)")


class ScenarioCompareIn(_Strict):
    """What-if scenarios (``medtwin.hospital.Scenario`` fields) against the unchanged hospital.

    ``from_census``: the next ``days`` from the live census (no warm-up); else from an empty
    hospital, ``warmup_days`` (default: the spec's) deleted from every KPI.
    """

    scenarios: dict[str, dict[str, object]] = Field(min_length=1, max_length=4)
    replications: int = Field(default=5, ge=2, le=30)
    days: float = Field(default=3.0, gt=0, le=90)
    from_census: bool = True
    warmup_days: float | None = Field(default=None, ge=0, le=120)
    seed: int = Field(default=0, ge=0, le=2**32 - 1)
    kpis: list[str] | None = Field(default=None, min_length=1, max_length=60)

    @field_validator("scenarios")
    @classmethod
    def _names(cls, v: dict[str, dict[str, object]]) -> dict[str, dict[str, object]]:
        for name in v:
            if not name.strip() or len(name) > 64:
                raise ValueError(f"scenario name {name[:70]!r} must have 1 to 64 characters")
        return v


class ScenarioRowOut(BaseModel):
    """One KPI of one scenario: mean with its 95% CI, and the paired difference from baseline."""

    kpi: str
    scenario: str
    mean: float | None
    ci_low: float | None
    ci_high: float | None
    difference: float | None = None
    diff_low: float | None = None
    diff_high: float | None = None
    significant: bool | None = None


class ScenarioCompareOut(BaseModel):
    """The comparison: every KPI of the baseline and each scenario, side by side."""

    hospital: str
    scenarios: list[str]
    replications: int
    days: float
    warmup_days: float
    from_census: bool
    census_at: datetime | None
    seed: int
    simulated_days: float
    elapsed_s: float
    rows: list[ScenarioRowOut]


class HospitalUnitOut(BaseModel):
    """A unit of the hospital spec."""

    name: str
    beds: int
    aliases: list[str]
    description: str


class HospitalSpecOut(BaseModel):
    """The hospital the twin models: its units, ED, and the whole validated spec."""

    name: str
    description: str
    timezone: str
    ed: dict[str, object] | None
    units: list[HospitalUnitOut]
    spec: dict[str, object]
