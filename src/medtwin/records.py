"""The service's shared vocabulary: what the readers produce, the store keeps and the API serves.

Records are plain frozen values in canonical units.  Translation from FHIR, HL7 v2, MQTT payloads
and Nightscout uploads into records happens in :mod:`medtwin.interop`; :mod:`medtwin.store` keeps
them; :mod:`medtwin.api` serves them.  Times are timezone-aware UTC :class:`datetime.datetime`.

Every record carries a ``source_id``: the identity of the message it came from (a FHIR
``Observation.id`` with its source, a device id and sequence number, a Nightscout ``_id``).  The
store uses it to make ingestion idempotent: a resubmitted record with the same ``source_id`` changes
nothing; the same ``source_id`` with different content is a conflict.

>>> from datetime import UTC, datetime
>>> r = ObservationRecord("p1", "99504-3", datetime(2026, 1, 1, tzinfo=UTC), 112.0, "mg/dL",
...                       source_id="cgm-7:1")
>>> OBSERVATION_CODES[r.code].unit == r.unit
True
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, datetime
from typing import Any, Literal

__all__ = [
    "EVENT_UNITS",
    "OBSERVATION_CODES",
    "AlertRecord",
    "ConditionRecord",
    "DeviceRecord",
    "EventRecord",
    "ObservationCode",
    "ObservationRecord",
    "PatientRecord",
]


@dataclass(frozen=True, slots=True)
class ObservationCode:
    """A LOINC code medtwin stores, with its canonical UCUM unit."""

    loinc: str
    display: str
    unit: str


OBSERVATION_CODES: dict[str, ObservationCode] = {
    c.loinc: c
    for c in (
        # CGM readings are stored in mg/dL whatever they arrived in (105272-9 mmol/L is converted).
        ObservationCode("99504-3", "Glucose [Mass/volume] in Interstitial fluid", "mg/dL"),
        ObservationCode("8867-4", "Heart rate", "/min"),
        ObservationCode("8480-6", "Systolic blood pressure", "mm[Hg]"),
        ObservationCode("8462-4", "Diastolic blood pressure", "mm[Hg]"),
        ObservationCode("59408-5", "Oxygen saturation in Arterial blood by Pulse oximetry", "%"),
        ObservationCode("41950-7", "Number of steps in 24 hour Measured", "/(24.h)"),
        ObservationCode("29463-7", "Body weight", "kg"),
    )
}
"""Codes the store accepts, keyed by LOINC, with the unit values are stored in.

Aliases translated at the boundary: 105272-9 (CGM in mmol/L) -> 99504-3; 2708-6 (SpO2) -> 59408-5;
the blood-pressure panel 85354-9 -> one record per component (8480-6, 8462-4).
"""

EventKind = Literal["bolus", "basal", "carbs", "medication"]

EVENT_UNITS: dict[str, str] = {"bolus": "U", "basal": "U/h", "carbs": "g", "medication": "mg"}
"""Canonical unit of each event kind (``medication`` doses other than insulin, in mg)."""


@dataclass(frozen=True, slots=True)
class PatientRecord:
    """A patient.  ``identifier`` (e.g. an MRN, ``system|value``), name and birth date are PHI."""

    id: str
    identifier: str | None = None
    name: str | None = None
    birth_date: date | None = None
    sex: Literal["male", "female", "other", "unknown"] | None = None
    source_id: str | None = None


@dataclass(frozen=True, slots=True)
class ObservationRecord:
    """One measurement in the unit :data:`OBSERVATION_CODES` gives for its code."""

    patient_id: str
    code: str
    time: datetime
    value: float
    unit: str
    device_id: str | None = None
    source_id: str | None = None


@dataclass(frozen=True, slots=True)
class EventRecord:
    """A dose, meal or basal-rate change in the unit :data:`EVENT_UNITS` gives for its kind."""

    patient_id: str
    kind: EventKind
    time: datetime
    value: float
    unit: str
    source_id: str | None = None
    detail: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class ConditionRecord:
    """A diagnosis (``system`` is the code system URI, e.g. SNOMED CT or ICD-10)."""

    patient_id: str
    system: str
    code: str
    display: str | None = None
    onset: date | None = None
    source_id: str | None = None


@dataclass(frozen=True, slots=True)
class DeviceRecord:
    """A device (CGM, pump, watch) and the patient it is attached to."""

    id: str
    patient_id: str | None
    kind: str
    manufacturer: str | None = None
    model: str | None = None
    source_id: str | None = None


@dataclass(frozen=True, slots=True)
class AlertRecord:
    """A risk that crossed its threshold: ``probability`` of ``kind`` within ``window_min``."""

    patient_id: str
    time: datetime
    kind: str
    probability: float
    threshold: float
    window_min: float
    model: str
    message: str = ""
    id: int | None = None
    acknowledged_by: str | None = None
