"""Code systems, required value sets (FHIR R4) and the LOINC codes medtwin imports, with their units.

The value sets are the R4 required bindings, copied from the specification
(https://hl7.org/fhir/R4/valueset-*.html); R4B did not change them.  The CGM codes and their units
come from :data:`medtwin.interop.wearables.fhir.CGM_LOINC`, the stored codes and units from
:data:`medtwin.records.OBSERVATION_CODES`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from medtwin.interop.wearables.fhir import CGM_LOINC, LOINC, UCUM

__all__ = [
    "BP_COMPONENTS",
    "BP_PANEL",
    "CARBS_LOINC",
    "CATEGORY_SYSTEM",
    "CGM_LOINC",
    "CONDITION_CLINICAL",
    "CONDITION_VERIFICATION",
    "FORECAST_BAND_SYSTEM",
    "IMPORT_CODES",
    "INSULIN_RXNORM",
    "LOINC",
    "REQUIRED_CODES",
    "RXNORM",
    "SOURCE_ID_SYSTEM",
    "UCUM",
    "ImportCode",
]

RXNORM = "http://www.nlm.nih.gov/research/umls/rxnorm"
CATEGORY_SYSTEM = "http://terminology.hl7.org/CodeSystem/observation-category"
FORECAST_BAND_SYSTEM = "https://medtwin.org/fhir/CodeSystem/forecast-band"
"""Codes of a forecast's band bounds (``lower-80``, ``upper-95``, ...), medtwin's own system."""

SOURCE_ID_SYSTEM = "https://medtwin.org/fhir/NamingSystem/source-id"
"""Identifier system of a record's ``source_id``: exported with it, imported back as it."""

_OBSERVATION_STATUS = frozenset(
    {
        "registered",
        "preliminary",
        "final",
        "amended",
        "corrected",
        "cancelled",
        "entered-in-error",
        "unknown",
    }
)
_ISSUE_TYPE = frozenset(
    {
        "invalid",
        "structure",
        "required",
        "value",
        "invariant",
        "security",
        "login",
        "unknown",
        "expired",
        "forbidden",
        "suppressed",
        "processing",
        "not-supported",
        "duplicate",
        "multiple-matches",
        "not-found",
        "deleted",
        "too-long",
        "code-invalid",
        "extension",
        "too-costly",
        "business-rule",
        "conflict",
        "transient",
        "lock-error",
        "no-store",
        "exception",
        "timeout",
        "incomplete",
        "throttled",
        "informational",
    }
)

REQUIRED_CODES: dict[tuple[str, tuple[str, ...]], frozenset[str]] = {
    ("Observation", ("status",)): _OBSERVATION_STATUS,
    ("Observation", ("valueQuantity", "comparator")): frozenset({"<", "<=", ">=", ">"}),
    ("Observation", ("component", "valueQuantity", "comparator")): frozenset(
        {"<", "<=", ">=", ">"}
    ),
    ("RiskAssessment", ("status",)): _OBSERVATION_STATUS,
    ("MedicationAdministration", ("status",)): frozenset(
        {
            "in-progress",
            "not-done",
            "on-hold",
            "completed",
            "entered-in-error",
            "stopped",
            "unknown",
        }
    ),
    ("Device", ("status",)): frozenset({"active", "inactive", "entered-in-error", "unknown"}),
    ("Patient", ("gender",)): frozenset({"male", "female", "other", "unknown"}),
    ("Bundle", ("type",)): frozenset(
        {
            "document",
            "message",
            "transaction",
            "transaction-response",
            "batch",
            "batch-response",
            "history",
            "searchset",
            "collection",
        }
    ),
    ("Bundle", ("entry", "request", "method")): frozenset(
        {"GET", "HEAD", "POST", "PUT", "DELETE", "PATCH"}
    ),
    ("Bundle", ("entry", "search", "mode")): frozenset({"match", "include", "outcome"}),
    ("OperationOutcome", ("issue", "severity")): frozenset(
        {"fatal", "error", "warning", "information"}
    ),
    ("OperationOutcome", ("issue", "code")): _ISSUE_TYPE,
}
"""Required bindings on ``code`` elements: (resource type, element path) -> the allowed codes."""

CONDITION_CLINICAL = (
    "http://terminology.hl7.org/CodeSystem/condition-clinical",
    frozenset({"active", "recurrence", "relapse", "inactive", "remission", "resolved"}),
)
CONDITION_VERIFICATION = (
    "http://terminology.hl7.org/CodeSystem/condition-ver-status",
    frozenset(
        {"unconfirmed", "provisional", "differential", "confirmed", "refuted", "entered-in-error"}
    ),
)


@dataclass(frozen=True, slots=True)
class ImportCode:
    """A LOINC code medtwin imports: what it is stored as and the UCUM units it may arrive in."""

    loinc: str
    stored: str
    units: tuple[str, ...]
    kind: Literal["observation", "carbs", "panel"] = "observation"


BP_PANEL = "85354-9"
BP_COMPONENTS = ("8480-6", "8462-4")
CARBS_LOINC = "9059-7"

IMPORT_CODES: dict[str, ImportCode] = {
    c.loinc: c
    for c in (
        ImportCode("99504-3", "99504-3", (CGM_LOINC["99504-3"],)),
        ImportCode("105272-9", "99504-3", (CGM_LOINC["105272-9"],)),
        ImportCode("8867-4", "8867-4", ("/min", "{beats}/min", "1/min")),
        ImportCode("8480-6", "8480-6", ("mm[Hg]",)),
        ImportCode("8462-4", "8462-4", ("mm[Hg]",)),
        ImportCode(BP_PANEL, BP_PANEL, (), kind="panel"),
        ImportCode("2708-6", "59408-5", ("%",)),
        ImportCode("59408-5", "59408-5", ("%",)),
        ImportCode("41950-7", "41950-7", ("/(24.h)", "/d", "{steps}/d", "{steps}")),
        ImportCode("29463-7", "29463-7", ("kg", "g", "[lb_av]")),
        ImportCode(CARBS_LOINC, "carbs", ("g",), kind="carbs"),
    )
}
"""LOINC codes :func:`~medtwin.interop.fhir.to_records` accepts, with their accepted UCUM codes.

Every stored code is a key of :data:`medtwin.records.OBSERVATION_CODES`; units other than the
stored one are converted (mmol/L glucose, g and [lb_av] body weight) or are other spellings of the
same quantity (``{beats}/min`` for ``/min``).
"""

INSULIN_RXNORM = frozenset(
    {
        "5856",  # insulin
        "253182",  # insulin regular, human
        "86009",  # insulin lispro
        "51428",  # insulin aspart
        "400008",  # insulin glulisine
        "274783",  # insulin glargine
        "139825",  # insulin detemir
        "1670007",  # insulin degludec
    }
)
"""RxNorm ingredient codes of insulins (a medication coded with one of them is a bolus in U)."""
