"""FHIR R4B at the boundary: validate, import into records, export records, forecasts and risks.

Pure translation and validation (no database).  :func:`validate` checks a resource or Bundle in
three layers (fhir.resources R4B structure, FHIRPath invariants, required code sets) and reports
every problem in one OperationOutcome, each issue naming its element.  :func:`to_records` and
:func:`read_bundle` turn Patients, Observations (CGM, vital signs, steps, weight, carbohydrate
intake), MedicationAdministrations, Conditions and Devices into :mod:`medtwin.records` values in
canonical units; the exporters write records, forecasts, risks and alerts as resources that pass
:func:`validate`.

>>> from datetime import UTC, datetime
>>> from medtwin.records import ObservationRecord
>>> r = ObservationRecord("p1", "99504-3", datetime(2026, 1, 1, 8, tzinfo=UTC), 112.0, "mg/dL",
...                       source_id="fhir:Observation/g1")
>>> to_records(validate(observation_to_fhir(r, "g1"))).observations == [r]
True
"""

from __future__ import annotations

from medtwin.interop.fhir._codes import IMPORT_CODES, SOURCE_ID_SYSTEM, ImportCode
from medtwin.interop.fhir._export import (
    alert_to_fhir,
    bundle,
    forecast_to_fhir,
    observation_to_fhir,
    patient_to_fhir,
    risk_to_fhir,
)
from medtwin.interop.fhir._import import ImportResult, read_bundle, to_records
from medtwin.interop.fhir._outcome import Issue, operation_outcome
from medtwin.interop.fhir._validate import validate

__all__ = [
    "IMPORT_CODES",
    "SOURCE_ID_SYSTEM",
    "ImportCode",
    "ImportResult",
    "Issue",
    "alert_to_fhir",
    "bundle",
    "forecast_to_fhir",
    "observation_to_fhir",
    "operation_outcome",
    "patient_to_fhir",
    "read_bundle",
    "risk_to_fhir",
    "to_records",
    "validate",
]
