"""Records, forecasts and risks out as FHIR R4B resources; each one passes :func:`validate`."""

from __future__ import annotations

import json
import math
import uuid
from collections.abc import Iterable, Sequence
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

import numpy as np

from medtwin.errors import DataFormatError, ParameterError
from medtwin.interop.fhir._codes import (
    CATEGORY_SYSTEM,
    FORECAST_BAND_SYSTEM,
    LOINC,
    REQUIRED_CODES,
    SOURCE_ID_SYSTEM,
    UCUM,
)
from medtwin.records import OBSERVATION_CODES, AlertRecord, ObservationRecord, PatientRecord
from medtwin.units import glucose_to_mg_dl

if TYPE_CHECKING:
    from medtwin.twin import Forecast

__all__ = [
    "alert_to_fhir",
    "bundle",
    "forecast_to_fhir",
    "observation_to_fhir",
    "patient_to_fhir",
    "risk_to_fhir",
]

_CATEGORY = {
    "99504-3": ("laboratory", "Laboratory"),
    "41950-7": ("activity", "Activity"),
}
_VITAL_SIGNS = ("vital-signs", "Vital Signs")
_CGM = "99504-3"


def _instant(moment: datetime, what: str) -> str:
    """A FHIR instant in UTC (``2026-01-01T08:00:00Z``, microseconds when there are any)."""
    if moment.tzinfo is None:
        raise DataFormatError(f"{what} {moment.isoformat()} has no timezone; medtwin times are UTC")
    utc = moment.astimezone(UTC)
    text = f"{utc.year:04d}-{utc.month:02d}-{utc.day:02d}T{utc.hour:02d}:{utc.minute:02d}:"
    text += f"{utc.second:02d}"
    return text + (f".{utc.microsecond:06d}Z" if utc.microsecond else "Z")


def _source_identifier(source_id: str | None) -> list[dict[str, str]]:
    return [{"system": SOURCE_ID_SYSTEM, "value": source_id}] if source_id else []


def patient_to_fhir(record: PatientRecord) -> dict[str, Any]:
    """A Patient resource (``identifier`` ``system|value`` split in two; name as its text).

    Examples
    --------
    >>> from datetime import date
    >>> p = patient_to_fhir(PatientRecord("p1", "urn:mrn|123", "Ada L", date(1990, 5, 1), "female"))
    >>> p["identifier"], p["name"], p["birthDate"]
    ([{'system': 'urn:mrn', 'value': '123'}], [{'text': 'Ada L'}], '1990-05-01')
    """
    resource: dict[str, Any] = {"resourceType": "Patient", "id": record.id}
    identifiers = []
    if record.identifier:
        system, bar, value = record.identifier.rpartition("|")
        identifiers.append({"system": system, "value": value} if bar else {"value": value})
    identifiers += _source_identifier(record.source_id)
    if identifiers:
        resource["identifier"] = identifiers
    if record.name:
        resource["name"] = [{"text": record.name}]
    if record.sex:
        resource["gender"] = record.sex
    if record.birth_date:
        resource["birthDate"] = record.birth_date.isoformat()
    return resource


def observation_to_fhir(record: ObservationRecord, id: str) -> dict[str, Any]:
    """An Observation with the record's LOINC code, time, ``valueQuantity`` and device.

    The record's ``source_id`` travels as an identifier (medtwin's source-id system), so that
    importing the Observation again gives the same record.

    Examples
    --------
    >>> from datetime import UTC, datetime
    >>> r = ObservationRecord("p1", "8867-4", datetime(2026, 1, 1, 8, tzinfo=UTC), 72.0, "/min")
    >>> o = observation_to_fhir(r, "hr-1")
    >>> o["code"]["coding"][0]["code"], o["effectiveDateTime"], o["valueQuantity"]["code"]
    ('8867-4', '2026-01-01T08:00:00Z', '/min')
    """
    known = OBSERVATION_CODES.get(record.code)
    if known is None:
        raise DataFormatError(
            f"observation code {record.code!r} is not one medtwin stores "
            f"({', '.join(OBSERVATION_CODES)})"
        )
    if record.unit != known.unit:
        raise DataFormatError(
            f"observation {record.code} ({known.display}) is stored in {known.unit!r}, "
            f"but the record says {record.unit!r}"
        )
    if not math.isfinite(record.value):
        raise DataFormatError(f"observation value {record.value!r} is not finite")
    category, display = _CATEGORY.get(record.code, _VITAL_SIGNS)
    resource: dict[str, Any] = {"resourceType": "Observation", "id": id}
    if record.source_id:
        resource["identifier"] = _source_identifier(record.source_id)
    resource |= {
        "status": "final",
        "category": [
            {"coding": [{"system": CATEGORY_SYSTEM, "code": category, "display": display}]}
        ],
        "code": {
            "coding": [{"system": LOINC, "code": record.code, "display": known.display}],
            "text": known.display,
        },
        "subject": {"reference": f"Patient/{record.patient_id}"},
        "effectiveDateTime": _instant(record.time, "observation time"),
        "valueQuantity": {
            "value": record.value,
            "unit": record.unit,
            "system": UCUM,
            "code": record.unit,
        },
    }
    if record.device_id:
        resource["device"] = {"reference": f"Device/{record.device_id}"}
    return resource


def _sampled(values: Sequence[float] | np.ndarray, period_ms: float) -> dict[str, Any]:
    data = " ".join(f"{v:.1f}" if math.isfinite(v) else "E" for v in np.asarray(values, float))
    return {
        "origin": {"value": 0, "unit": "mg/dL", "system": UCUM, "code": "mg/dL"},
        "period": period_ms,
        "dimensions": 1,
        "data": data,
    }


def forecast_to_fhir(
    patient_id: str, forecast: Forecast, *, model: str, issued: datetime
) -> dict[str, Any]:
    """A glucose forecast as a ``preliminary`` Observation (LOINC 99504-3, mg/dL).

    ``valueSampledData`` holds the median (one value per forecast time, ``period`` in ms,
    ``effectivePeriod`` from the first time to the last); one component per band bound
    (``lower-80``, ``upper-80``, ... in medtwin's forecast-band code system), each a
    ``valueSampledData`` on the same times; ``method.text`` names the model.

    Examples
    --------
    >>> from datetime import UTC, datetime
    >>> from types import SimpleNamespace
    >>> import numpy as np, pandas as pd
    >>> times = pd.date_range("2026-01-01T08:05Z", periods=3, freq="5min")
    >>> fc = SimpleNamespace(time=times, t_min=np.array([5.0, 10, 15]),
    ...                      median=np.array([110.0, 112, 115]),
    ...                      bands={0.8: (np.array([100.0, 99, 98]), np.array([120.0, 125, 131]))},
    ...                      unit="mg/dL")
    >>> o = forecast_to_fhir("p1", fc, model="UvaPadova2008", issued=datetime(2026, 1, 1, 8, tzinfo=UTC))
    >>> o["valueSampledData"]["data"], o["valueSampledData"]["period"]
    ('110.0 112.0 115.0', 300000.0)
    >>> [c["code"]["coding"][0]["code"] for c in o["component"]]
    ['lower-80', 'upper-80']
    """
    t_min = np.asarray(forecast.t_min, dtype=float)
    if t_min.size == 0:
        raise DataFormatError("the forecast has no times")
    steps = np.diff(t_min)
    if steps.size and (np.any(steps <= 0) or not np.allclose(steps, steps[0], rtol=1e-6)):
        raise DataFormatError(
            "forecast times are not evenly spaced; FHIR SampledData needs one period"
        )
    period_ms = float(steps[0] * 60_000) if steps.size else 0.0
    unit = getattr(forecast, "unit", "mg/dL")

    def mg_dl(values: Any) -> np.ndarray:
        arr = np.asarray(values, dtype=float)
        return arr if unit == "mg/dL" else np.array([glucose_to_mg_dl(v, unit) for v in arr])

    components = []
    for level, (lo, hi) in sorted(forecast.bands.items()):
        pct = round(level * 100)
        for side, values in (("lower", lo), ("upper", hi)):
            components.append(
                {
                    "code": {
                        "coding": [
                            {
                                "system": FORECAST_BAND_SYSTEM,
                                "code": f"{side}-{pct}",
                                "display": f"{side.title()} bound of the {pct}% predictive band",
                            }
                        ]
                    },
                    "valueSampledData": _sampled(mg_dl(values), period_ms),
                }
            )
    times = list(forecast.time)
    resource: dict[str, Any] = {
        "resourceType": "Observation",
        "status": "preliminary",
        "code": {
            "coding": [{"system": LOINC, "code": _CGM, "display": OBSERVATION_CODES[_CGM].display}],
            "text": "Forecast glucose (median and predictive bands)",
        },
        "subject": {"reference": f"Patient/{patient_id}"},
        "effectivePeriod": {
            "start": _instant(times[0], "forecast time"),
            "end": _instant(times[-1], "forecast time"),
        },
        "issued": _instant(issued, "issued"),
        "method": {"text": model},
        "valueSampledData": _sampled(mg_dl(forecast.median), period_ms),
    }
    if components:
        resource["component"] = components
    return resource


def _risk(
    patient_id: str,
    kind: str,
    probability: float,
    window_min: float,
    *,
    model: str,
    issued: datetime,
    rationale: str,
) -> dict[str, Any]:
    if not (0.0 <= probability <= 1.0):  # also rejects NaN
        raise ParameterError(f"probability {probability!r} of {kind!r} must be within 0-1")
    if not (math.isfinite(window_min) and window_min > 0):
        raise ParameterError(f"window_min must be a positive number of minutes, got {window_min}")
    start = _instant(issued, "issued")
    end = _instant(issued + timedelta(minutes=window_min), "issued")
    return {
        "resourceType": "RiskAssessment",
        "status": "final",
        "code": {"text": f"Risk of {kind}"},
        "subject": {"reference": f"Patient/{patient_id}"},
        "occurrenceDateTime": start,
        "method": {"text": model},
        "prediction": [
            {
                "outcome": {"text": kind},
                "probabilityDecimal": float(probability),
                "whenPeriod": {"start": start, "end": end},
                "rationale": rationale,
            }
        ],
    }


def risk_to_fhir(
    patient_id: str,
    kind: str,
    probability: float,
    window_min: float,
    *,
    model: str,
    issued: datetime,
    threshold_mg_dl: float,
) -> dict[str, Any]:
    """A RiskAssessment: ``probability`` of ``kind`` within ``window_min`` after ``issued``.

    ``prediction.probabilityDecimal`` (0-1), ``whenPeriod`` (issued .. issued + window),
    ``rationale`` naming the glucose threshold, ``method.text`` the model.

    Raises
    ------
    ParameterError
        ``probability`` outside 0-1 or a window that is not a positive number of minutes.

    Examples
    --------
    >>> from datetime import UTC, datetime
    >>> ra = risk_to_fhir("p1", "hypoglycaemia", 0.12, 30, model="UvaPadova2008",
    ...                   issued=datetime(2026, 1, 1, 8, tzinfo=UTC), threshold_mg_dl=70)
    >>> ra["prediction"][0]["probabilityDecimal"], ra["prediction"][0]["whenPeriod"]["end"]
    (0.12, '2026-01-01T08:30:00Z')
    """
    rationale = (
        f"Probability of {kind} (glucose crossing {threshold_mg_dl:g} mg/dL) within "
        f"{window_min:g} min, from the {model} twin's ensemble forecast"
    )
    return _risk(
        patient_id, kind, probability, window_min, model=model, issued=issued, rationale=rationale
    )


def alert_to_fhir(alert: AlertRecord) -> dict[str, Any]:
    """An alert as a RiskAssessment (its id, the probability that crossed its threshold, note).

    Examples
    --------
    >>> from datetime import UTC, datetime
    >>> a = AlertRecord("p1", datetime(2026, 1, 1, 8, tzinfo=UTC), "hypoglycaemia", 0.4, 0.3, 30,
    ...                 "UvaPadova2008", "Low glucose likely", id=7)
    >>> ra = alert_to_fhir(a)
    >>> ra["id"], ra["prediction"][0]["probabilityDecimal"], ra["note"]
    ('7', 0.4, [{'text': 'Low glucose likely'}])
    """
    rationale = (
        f"Probability {alert.probability:.2f} of {alert.kind} within {alert.window_min:g} min "
        f"crossed the alert threshold {alert.threshold:.2f} ({alert.model})"
    )
    resource = _risk(
        alert.patient_id,
        alert.kind,
        alert.probability,
        alert.window_min,
        model=alert.model,
        issued=alert.time,
        rationale=rationale,
    )
    if alert.id is not None:
        resource = {"resourceType": "RiskAssessment", "id": str(alert.id)} | resource
    if alert.message:
        resource["note"] = [{"text": alert.message}]
    return resource


def bundle(
    resources: Iterable[dict[str, Any]],
    type: str = "searchset",
    *,
    base_url: str | None = None,
) -> dict[str, Any]:
    """A Bundle of ``resources``.

    ``searchset``: ``total`` and ``search.mode`` (``match``; ``outcome`` for OperationOutcomes).
    ``transaction``/``batch``: a request per entry (``PUT <Type>/<id>``, or ``POST <Type>`` with a
    ``urn:uuid:`` fullUrl derived from the entry, so the same input gives the same Bundle);
    ``history``: a request and a response per entry.
    ``base_url`` gives resources with an id their absolute ``fullUrl``.

    Examples
    --------
    >>> b = bundle([{"resourceType": "Patient", "id": "p1"}], base_url="https://example.org/fhir")
    >>> b["total"], b["entry"][0]["fullUrl"], b["entry"][0]["search"]
    (1, 'https://example.org/fhir/Patient/p1', {'mode': 'match'})
    """
    if type not in REQUIRED_CODES[("Bundle", ("type",))]:
        raise ParameterError(f"unknown Bundle type {type!r}")
    entries = []
    for i, resource in enumerate(resources):
        kind, rid = resource["resourceType"], resource.get("id")
        entry: dict[str, Any] = {}
        if base_url and rid:
            entry["fullUrl"] = f"{base_url.rstrip('/')}/{kind}/{rid}"
        elif type in ("transaction", "batch") and not rid:
            text = json.dumps(resource, sort_keys=True, default=str)
            entry["fullUrl"] = f"urn:uuid:{uuid.uuid5(uuid.NAMESPACE_URL, f'{i}:{text}')}"
        entry["resource"] = resource
        if type == "searchset":
            entry["search"] = {"mode": "outcome" if kind == "OperationOutcome" else "match"}
        elif type in ("transaction", "batch", "history"):
            entry["request"] = (
                {"method": "PUT", "url": f"{kind}/{rid}"}
                if rid
                else {"method": "POST", "url": kind}
            )
            if type == "history":  # bdl-3, bdl-4: a history records both sides of each request
                entry["response"] = {"status": "200 OK" if rid else "201 Created"}
        entries.append(entry)
    out: dict[str, Any] = {"resourceType": "Bundle", "type": type}
    if type == "searchset":
        out["total"] = len(entries)
    if entries:
        out["entry"] = entries
    return out
