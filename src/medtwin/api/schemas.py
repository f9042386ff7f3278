"""Request and response bodies of the API (pydantic v2; used only at this boundary)."""

from __future__ import annotations

import math
from datetime import date, datetime
from typing import Literal

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, field_validator

__all__ = [
    "AlertOut",
    "CompareIn",
    "CompareOut",
    "EventIn",
    "EventOut",
    "ForecastOut",
    "IngestOut",
    "ObservationIn",
    "ObservationOut",
    "PatientIn",
    "PatientOut",
    "ReadingsIn",
    "RiskOut",
    "ScenarioAction",
    "TokenOut",
    "TwinOut",
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
    median: list[float]
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
