"""FHIR R4 CGM Observations (HL7 CGM implementation guide, STU 1) as a history.

The guide's sensor readings are Observations coded LOINC ``99504-3`` (glucose, mass/volume, in
interstitial fluid; ``valueQuantity`` in UCUM ``mg/dL``) or ``105272-9`` (moles/volume; ``mmol/L``),
timed by ``effectiveDateTime`` (``effectiveInstant`` and ``effectivePeriod.start`` are accepted).
A ``valueQuantity.code`` that does not match the LOINC code is an error naming the resource and
field path (``Observation/abc.valueQuantity.code``); a value with a ``comparator`` (``<40``) is
kept at its bound with a ``censored`` issue.  Observations with status ``entered-in-error``,
``cancelled`` or ``registered`` are set aside with a ``skipped`` issue each; other Observations
(the guide's summaries, other LOINC codes) and other resource types are counted in ``skipped``
issues.  All readings must belong to one ``subject``, which becomes the history's patient id.

This is plain JSON with the checks a CGM reader needs; full FHIR validation lives in
:mod:`medtwin.interop.fhir`.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import pandas as pd

from medtwin.history import DataIssue, PatientHistory
from medtwin.interop.wearables._quality import (
    MAX_GAP_MIN,
    WARM_UP_MIN,
    RawReading,
    Tally,
    assemble_history,
    check_units,
    fail,
    parse_time,
)
from medtwin.units import glucose_to_mg_dl

__all__ = ["CGM_LOINC", "read_fhir_observations"]

LOINC = "http://loinc.org"
UCUM = "http://unitsofmeasure.org"
CGM_LOINC = {"99504-3": "mg/dL", "105272-9": "mmol/L"}
"""LOINC codes of the HL7 CGM guide's sensor readings and the UCUM unit each requires."""

_USABLE_STATUS = {"final", "amended", "corrected", "preliminary"}
_SKIPPED_STATUS = {"entered-in-error", "cancelled", "registered"}


def read_fhir_observations(
    source: str | os.PathLike[str] | Mapping[str, Any] | Sequence[Mapping[str, Any]],
    *,
    sensor_starts: Iterable[pd.Timestamp] = (),
    warm_up_min: float = WARM_UP_MIN,
    max_gap_min: float = MAX_GAP_MIN,
) -> PatientHistory:
    """Read FHIR R4 CGM Observations into a :class:`PatientHistory`.

    Parameters
    ----------
    source
        A path to a JSON file (a Bundle, an array of resources or one Observation) or an NDJSON
        file (one resource per line, as FHIR bulk export writes), or the loaded JSON itself.
    sensor_starts, warm_up_min, max_gap_min
        Sensor start times known from elsewhere (UTC), the warm-up after each that is excluded,
        and the longest interval between readings not reported as a gap.

    Raises
    ------
    DataFormatError
        Invalid JSON, a missing or wrongly typed field, or a unit that contradicts the LOINC
        code; the message names the resource (``Observation/abc``) and the field path.
    UnitError
        The values plainly are in the other unit than the code declares.

    Examples
    --------
    >>> obs = {"resourceType": "Observation", "id": "a", "status": "final",
    ...        "code": {"coding": [{"system": "http://loinc.org", "code": "105272-9"}]},
    ...        "effectiveDateTime": "2026-01-01T08:00:00Z",
    ...        "valueQuantity": {"value": 5.5, "system": "http://unitsofmeasure.org",
    ...                          "code": "mmol/L"}}
    >>> round(float(read_fhir_observations([obs]).glucose()[0]), 2)
    99.09
    """
    name, resources = _resources(source)
    readings: list[RawReading] = []
    by_unit: dict[str, list[float]] = {"mg/dL": [], "mmol/L": []}
    issues: list[DataIssue] = []
    other = Tally("resources")
    patient = ""
    patient_where = ""
    for where, res in resources:
        kind = res.get("resourceType")
        if kind != "Observation":
            other.add(str(kind), where)
            continue
        ref = f"Observation/{res['id']}" if isinstance(res.get("id"), str) else where
        unit = _cgm_unit(res, ref, name)
        if unit is None:
            other.add("Observation (not a CGM reading)", ref)
            continue
        status = res.get("status")
        if not isinstance(status, str):
            raise fail(name, "", f"{ref}.status is missing; FHIR R4 requires it")
        time = _effective(res, ref, name)
        if status in _SKIPPED_STATUS:
            issues.append(
                DataIssue("skipped", f"status {status!r}: not a reading", where=ref, time=time)
            )
            continue
        if status not in _USABLE_STATUS:
            raise fail(name, "", f"{ref}.status {status!r} is not an Observation status")
        if "valueQuantity" not in res and "dataAbsentReason" in res:
            issues.append(DataIssue("skipped", "no value (dataAbsentReason)", where=ref, time=time))
            continue
        value, comparator = _quantity(res, ref, name, unit)
        subject = res.get("subject", {})
        reference = subject.get("reference", "") if isinstance(subject, Mapping) else ""
        if reference:
            if patient and reference != patient:
                raise fail(
                    name, "", f"{ref}.subject.reference is {reference!r} but {patient_where} "
                    f"belongs to {patient!r}; read one patient at a time"
                )  # fmt: skip
            patient, patient_where = reference, patient_where or ref
        mg_dl = value if unit == "mg/dL" else glucose_to_mg_dl(value, unit)
        readings.append(RawReading(time, mg_dl, ref))
        if comparator:
            issues.append(
                DataIssue(
                    "censored",
                    f"value {comparator}{value:g} {unit}: kept at its bound",
                    where=ref,
                    time=time,
                )
            )
        else:
            by_unit[unit].append(value)
    issues.extend(other.issues())
    for unit, values in by_unit.items():
        issues[:0] = check_units(values, unit, source=f"{name} ({unit} readings)")
    return assemble_history(
        readings,
        issues=issues,
        sensor_starts=sensor_starts,
        warm_up_min=warm_up_min,
        max_gap_min=max_gap_min,
        source=f"fhir:{name}",
        patient_id=patient,
    )


def _resources(source: object) -> tuple[str, list[tuple[str, Mapping[str, Any]]]]:
    if isinstance(source, (str, os.PathLike)):
        name = str(Path(source))
        text = Path(source).read_text(encoding="utf-8-sig")
        try:
            data: object = json.loads(text)
        except json.JSONDecodeError as exc:
            if exc.msg != "Extra data":
                raise fail(
                    name, f"line {exc.lineno}, column {exc.colno}", f"invalid JSON: {exc.msg}"
                ) from exc
            return name, _ndjson(text, name)
    else:
        name, data = "observations", source
    if isinstance(data, Mapping):
        if data.get("resourceType") == "Bundle":
            entries = data.get("entry", [])
            if not isinstance(entries, list):
                raise fail(name, "", "Bundle.entry must be an array")
            out = []
            for i, entry in enumerate(entries):
                resource = entry.get("resource") if isinstance(entry, Mapping) else None
                if not isinstance(resource, Mapping):
                    raise fail(name, "", f"Bundle.entry[{i}].resource is missing or not an object")
                out.append((f"Bundle.entry[{i}]", resource))
            return name, out
        return name, [(_label(data, "[0]"), data)]
    if isinstance(data, Sequence) and not isinstance(data, (str, bytes)):
        out = []
        for i, item in enumerate(data):
            if not isinstance(item, Mapping):
                raise fail(name, f"[{i}]", f"expected a FHIR resource object, got {item!r}")
            out.append((f"[{i}]", item))
        return name, out
    raise fail(name, "", f"expected a Bundle, an array or NDJSON of resources, got {data!r:.80}")


def _ndjson(text: str, name: str) -> list[tuple[str, Mapping[str, Any]]]:
    out = []
    for line_no, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        try:
            item = json.loads(line)
        except json.JSONDecodeError as exc:
            raise fail(
                name, f"line {line_no}, column {exc.colno}", f"invalid NDJSON: {exc.msg}"
            ) from exc
        if not isinstance(item, Mapping):
            raise fail(name, f"line {line_no}", "expected one FHIR resource object per line")
        out.append((f"line {line_no}", item))
    return out


def _label(res: Mapping[str, Any], default: str) -> str:
    return f"Observation/{res['id']}" if isinstance(res.get("id"), str) else default


def _cgm_unit(res: Mapping[str, Any], ref: str, name: str) -> str | None:
    code = res.get("code")
    codings = code.get("coding") if isinstance(code, Mapping) else None
    if not isinstance(codings, list):
        raise fail(name, "", f"{ref}.code.coding is missing; FHIR R4 requires Observation.code")
    for coding in codings:
        if isinstance(coding, Mapping) and coding.get("system") == LOINC:
            unit = CGM_LOINC.get(str(coding.get("code")))
            if unit is not None:
                return unit
    return None


def _effective(res: Mapping[str, Any], ref: str, name: str) -> pd.Timestamp:
    for key in ("effectiveDateTime", "effectiveInstant"):
        if key in res:
            return parse_time(res[key], source=name, where=f"{ref}.{key}", tz=None)
    period = res.get("effectivePeriod")
    if isinstance(period, Mapping) and "start" in period:
        return parse_time(
            period["start"], source=name, where=f"{ref}.effectivePeriod.start", tz=None
        )
    raise fail(name, "", f"{ref}.effectiveDateTime is missing (nor effectivePeriod.start)")


def _quantity(res: Mapping[str, Any], ref: str, name: str, unit: str) -> tuple[float, str]:
    q = res.get("valueQuantity")
    if not isinstance(q, Mapping):
        raise fail(name, "", f"{ref}.valueQuantity is missing; a CGM reading needs one")
    value = q.get("value")
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise fail(name, "", f"{ref}.valueQuantity.value must be a JSON number, got {value!r}")
    if value != value or value in (float("inf"), float("-inf")):
        raise fail(name, "", f"{ref}.valueQuantity.value is not finite")
    if q.get("system", UCUM) != UCUM:
        raise fail(name, "", f"{ref}.valueQuantity.system must be {UCUM!r}, got {q['system']!r}")
    code = q.get("code")
    if code is None:
        raise fail(name, "", f"{ref}.valueQuantity.code is missing; expected {unit!r}")
    if code != unit:
        loinc = next(k for k, v in CGM_LOINC.items() if v == unit)
        raise fail(
            name, "", f"{ref}.valueQuantity.code is {code!r} but LOINC {loinc} is measured in "
            f"{unit!r}; fix the unit or the code"
        )  # fmt: skip
    comparator = q.get("comparator", "")
    if comparator not in ("", "<", "<=", ">", ">="):
        raise fail(name, "", f"{ref}.valueQuantity.comparator {comparator!r} is not valid")
    return float(value), str(comparator)
