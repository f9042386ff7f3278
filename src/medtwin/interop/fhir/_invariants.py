"""FHIRPath invariants: the specification's (obs-6, ras-2, bdl-3, ...) and medtwin's own rules.

Each expression is compiled once (:func:`fhirpathpy.compile`) and evaluated on the resource, or on
each item of its ``context`` element (``RiskAssessment.prediction``), so an issue names the item
(``RiskAssessment.prediction[0].probabilityDecimal``).  An invariant fails only when it evaluates
to ``false``; its issue's diagnostics start with its key (``obs-6: ...``).

Evaluating FHIRPath costs tens of microseconds per expression, too much for thousands of readings
a second, so results are memoised: an invariant lists the inputs it ``reads`` (element paths whose
value, or only presence, decides the result) and the result is cached under those inputs.  A batch
of CGM readings differs only in ids, times and values, which the invariants on them do not read,
so each is evaluated once per batch shape.  ``reads`` syntax: ``a.b`` the value at that path;
``?a`` only whether ``a`` is present; ``a[x]`` which ``a[x]`` choice elements are present;
``a[*].b`` the path inside each item of ``a``; ``%resource.a`` a path from the resource root.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from functools import cache
from typing import Any

import fhirpathpy
from fhirpathpy.engine.nodes import ResourceNode
from fhirpathpy.models import models

from medtwin.interop.fhir._codes import (
    CONDITION_CLINICAL,
    CONDITION_VERIFICATION,
    IMPORT_CODES,
    LOINC,
)
from medtwin.interop.fhir._outcome import Issue

__all__ = ["INVARIANTS", "Invariant", "holds", "invariant_issues"]

_MODEL = models["r4"]  # R4B changed none of the elements these expressions read
_MEMO: dict[tuple[str, str], bool] = {}
_MEMO_MAX = 50_000
_PATIENT_REFERENCE = (
    r"^((https?://[^ ]+/)?Patient/[A-Za-z0-9.-]{1,64}(/_history/[A-Za-z0-9.-]{1,64})?"
    r"|urn:uuid:[0-9a-fA-F-]{36})$"
)


@dataclass(frozen=True, slots=True)
class Invariant:
    """A FHIRPath rule on a resource type (``context``: evaluated on each item of that element)."""

    key: str
    resource_type: str
    expression: str
    element: str
    human: str
    code: str = "invalid"
    context: str = ""
    reads: tuple[str, ...] | None = None
    holds_if: Callable[[dict[str, Any]], bool] | None = None


# Every top-level Observation rule reads from these (a superset of each one's inputs costs no
# cache hits on CGM batches, whose values here repeat, and saves projecting the resource per rule).
_OBS_READS = (
    "?dataAbsentReason",
    "value[x]",
    "effective[x]",
    "code.coding",
    "component[*].code.coding",
    "component[*].value[x]",
    "?valueQuantity",
    "valueQuantity.code",
    "subject",
)


def _subject_rules(
    resource_type: str, reads: tuple[str, ...] = ("subject",)
) -> tuple[Invariant, ...]:
    what = {"Observation": "an Observation", "Condition": "a Condition"}.get(
        resource_type, f"a {resource_type}"
    )
    return (
        Invariant(
            "medtwin-subject-1",
            resource_type,
            "subject.reference.exists()",
            "subject",
            f"{what} needs subject.reference naming its Patient ('Patient/<id>'): medtwin "
            "files every clinical resource under a patient",
            code="required",
            reads=reads,
        ),
        Invariant(
            "medtwin-subject-2",
            resource_type,
            f"subject.reference.empty() or (subject.reference.matches('{_PATIENT_REFERENCE}') "
            "and (subject.type.empty() or subject.type = 'Patient'))",
            "subject.reference",
            "subject.reference must reference a Patient: 'Patient/<id>', a Patient's full URL or "
            "the urn:uuid: fullUrl of a Patient in the same Bundle (contained '#...' subjects, "
            "Groups and other resource types are not supported)",
            code="value",
            reads=reads,
        ),
    )


def _unit_rules() -> tuple[Invariant, ...]:
    out = []
    for c in IMPORT_CODES.values():
        if not c.units:
            continue
        units = " | ".join(f"'{u}'" for u in c.units)
        listed = ", ".join(repr(u) for u in c.units)
        expression = (
            f"code.coding.where(system = %loinc and code = '{c.loinc}').exists() implies "
            f"(valueQuantity.empty() or (valueQuantity.code.exists() and "
            f"(valueQuantity.code in ({units}))))"
        )
        human = (
            f"LOINC {c.loinc} is measured in {listed}: valueQuantity.code (UCUM) must be "
            f"{'one of ' if len(c.units) > 1 else ''}{listed}; fix the unit or the code"
        )
        out.append(
            Invariant(
                f"medtwin-unit-{c.loinc}",
                "Observation",
                expression,
                "valueQuantity.code",
                human,
                code="value",
                reads=_OBS_READS,
            )
        )
        out.append(
            Invariant(
                f"medtwin-unit-{c.loinc}",
                "Observation",
                expression,
                "valueQuantity.code",
                human,
                code="value",
                context="component",
                reads=("code.coding", "?valueQuantity", "valueQuantity.code"),
            )
        )
    return tuple(out)


def _distinct_full_urls(bundle: dict[str, Any]) -> bool:
    entries = bundle.get("entry")
    if not isinstance(entries, list):
        return True
    urls = [e.get("fullUrl") for e in entries if isinstance(e, dict) and "fullUrl" in e]
    return len(urls) == len(set(map(str, urls)))


# one projection serves every entry invariant (a superset of what each reads costs no hits)
_ENTRY_READS = ("?resource", "?request", "?response", "?search", "%resource.type")
_CLINICAL, _RESOLVED = CONDITION_CLINICAL[0], ("resolved", "remission", "inactive")
_VERIFICATION = CONDITION_VERIFICATION[0]

_ALL: tuple[Invariant, ...] = (
    Invariant(
        "obs-6",
        "Observation",
        "dataAbsentReason.empty() or value.empty()",
        "dataAbsentReason",
        "dataAbsentReason SHALL only be present if value[x] is not present",
        reads=_OBS_READS,
    ),
    Invariant(
        "obs-7",
        "Observation",
        "value.empty() or component.code.where(coding.intersect(%resource.code.coding)"
        ".exists()).empty()",
        "component",
        "a component SHALL NOT repeat Observation.code when Observation.value[x] is present",
        reads=_OBS_READS,
    ),
    Invariant(
        "medtwin-obs-effective",
        "Observation",
        "(value.exists() or component.value.exists()) implies effective.exists()",
        "effective[x]",
        "an Observation with a value needs effective[x] (effectiveDateTime, effectiveInstant or "
        "effectivePeriod): medtwin stores every reading at its time",
        code="required",
        reads=_OBS_READS,
    ),
    *_subject_rules("Observation", _OBS_READS),
    *_unit_rules(),
    Invariant(
        "ras-2",
        "RiskAssessment",
        "probability is decimal implies (probability as decimal) <= 100",
        "probability[x]",
        "probability must be less than or equal to 100",
        code="value",
        context="prediction",
        reads=("probability[x]", "probabilityDecimal"),
    ),
    Invariant(
        "medtwin-ras-probability",
        "RiskAssessment",
        "probability.empty() or ((probability as decimal) >= 0 and (probability as decimal) <= 1)",
        "probability[x]",
        "prediction.probabilityDecimal is a probability between 0 and 1 (not a percentage)",
        code="value",
        context="prediction",
        reads=("probability[x]", "probabilityDecimal"),
    ),
    *_subject_rules("RiskAssessment"),
    Invariant(
        "mad-1",
        "MedicationAdministration",
        "dosage.empty() or dosage.dose.exists() or dosage.rate.exists()",
        "dosage",
        "dosage SHALL have at least one of dosage.dose or dosage.rate[x]",
        reads=("?dosage", "dosage.?dose", "dosage.rate[x]"),
    ),
    *_subject_rules("MedicationAdministration"),
    Invariant(
        "con-4",
        "Condition",
        f"abatement.empty() or clinicalStatus.coding.where(system = '{_CLINICAL}' and "
        f"({' or '.join(f'code = {c!r}' for c in _RESOLVED)})).exists()",
        "abatement[x]",
        "if the condition is abated, clinicalStatus must be inactive, resolved or remission",
        reads=("abatement[x]", "clinicalStatus"),
    ),
    Invariant(
        "con-5",
        "Condition",
        f"verificationStatus.coding.where(system = '{_VERIFICATION}' and "
        "code = 'entered-in-error').empty() or clinicalStatus.empty()",
        "clinicalStatus",
        "clinicalStatus SHALL NOT be present if verificationStatus is entered-in-error",
        reads=("verificationStatus", "?clinicalStatus"),
    ),
    *_subject_rules("Condition"),
    Invariant(
        "pat-1",
        "Patient",
        "name.exists() or telecom.exists() or address.exists() or organization.exists()",
        "",
        "a contact SHALL have a name, telecom, address or organization",
        context="contact",
        reads=("?name", "?telecom", "?address", "?organization"),
    ),
    Invariant(
        "bdl-1",
        "Bundle",
        "total.empty() or (type = 'searchset') or (type = 'history')",
        "total",
        "total only when a search or history",
        reads=("?total", "type"),
    ),
    Invariant(
        "bdl-2",
        "Bundle",
        "search.empty() or (%resource.type = 'searchset')",
        "search",
        "entry.search only when a search",
        context="entry",
        reads=_ENTRY_READS,
    ),
    Invariant(
        "bdl-3",
        "Bundle",
        "request.exists() = (%resource.type = 'batch' or %resource.type = 'transaction' or "
        "%resource.type = 'history')",
        "request",
        "entry.request is mandatory for batch, transaction and history Bundles and "
        "otherwise prohibited",
        code="required",
        context="entry",
        reads=_ENTRY_READS,
    ),
    Invariant(
        "bdl-4",
        "Bundle",
        "response.exists() = (%resource.type = 'batch-response' or "
        "%resource.type = 'transaction-response' or %resource.type = 'history')",
        "response",
        "entry.response is mandatory for batch-response, transaction-response and "
        "history Bundles and otherwise prohibited",
        context="entry",
        reads=_ENTRY_READS,
    ),
    Invariant(
        "bdl-5",
        "Bundle",
        "resource.exists() or request.exists() or response.exists()",
        "",
        "an entry must contain a resource unless it is a request or response",
        code="required",
        context="entry",
        reads=_ENTRY_READS,
    ),
    Invariant(
        "bdl-7",
        "Bundle",
        "(type = 'history') or entry.where(fullUrl.exists())"
        ".select(fullUrl & resource.meta.versionId).isDistinct()",
        "entry.fullUrl",
        "fullUrl must be unique in a Bundle (or else entries with the same fullUrl "
        "must have different meta.versionId)",
        holds_if=_distinct_full_urls,
    ),
)

INVARIANTS: dict[str, tuple[Invariant, ...]] = {
    t: tuple(i for i in _ALL if i.resource_type == t) for t in {i.resource_type for i in _ALL}
}
"""The invariants checked on each resource type."""


@cache
def _compiled(expression: str) -> Callable[..., list[Any]]:
    return fhirpathpy.compile(expression, _MODEL)


def _choice_keys(data: dict[str, Any], name: str) -> list[str]:
    n, under = len(name), "_" + name
    return sorted(
        k
        for k in data
        if (k.startswith(name) and len(k) > n and k[n].isupper())
        or (k.startswith(under) and len(k) > n + 1 and k[n + 1].isupper())
    )


def _get(data: Any, path: list[str]) -> Any:
    # JSON objects are dicts; checking against Mapping costs an ABC lookup per step
    for i, head in enumerate(path):
        if not isinstance(data, dict):
            return None
        if head[0] == "?":
            return head[1:] in data or f"_{head[1:]}" in data
        if head[-1] == "]":
            if head.endswith("[x]"):
                return _choice_keys(data, head[:-3])
            items = data.get(head[:-3])
            items = items if isinstance(items, list) else [] if items is None else [items]
            return [_get(item, path[i + 1 :]) for item in items]
        data = data.get(head)
    return data


@cache
def _split(read: str) -> tuple[bool, list[str]]:
    if read.startswith("%resource."):
        return True, read.removeprefix("%resource.").split(".")
    return False, read.split(".")


def _projection(reads: tuple[str, ...], data: dict[str, Any], root: dict[str, Any]) -> str:
    # repr, not json.dumps: several times faster, and for JSON data equal reprs mean equal
    # inputs (a dict with its keys in another order only misses the cache)
    parts = []
    for read in reads:
        from_root, path = _split(read)
        parts.append(_get(root if from_root else data, path))
    return repr(parts)


def holds(
    inv: Invariant,
    data: dict[str, Any],
    root: dict[str, Any],
    *,
    memo: bool = True,
    seen: dict[tuple[str, ...], str] | None = None,
) -> bool:
    """Whether ``inv`` holds on ``data`` (the resource, or an item of its context element).

    ``seen`` keeps the projections already taken of this ``data``, shared by invariants that read
    the same inputs.
    """
    if inv.holds_if is not None and inv.holds_if(data):
        return True
    key = None
    if memo and inv.reads is not None:
        projection = seen.get(inv.reads) if seen is not None else None
        if projection is None:
            projection = _projection(inv.reads, data, root)
            if seen is not None:
                seen[inv.reads] = projection
        key = (f"{inv.resource_type}.{inv.context}:{inv.key}", projection)
        known = _MEMO.get(key)
        if known is not None:
            return known
    target: Any = data
    if inv.context:
        target = ResourceNode.create_node(data, f"{inv.resource_type}.{inv.context}")
    result = _compiled(inv.expression)(target, {"resource": root, "loinc": LOINC})
    ok = result != [False]
    if key is not None:
        if len(_MEMO) >= _MEMO_MAX:
            _MEMO.clear()
        _MEMO[key] = ok
    return ok


def _element(template: str, data: dict[str, Any]) -> str:
    head, dot, rest = template.partition(".")
    if head.endswith("[x]"):
        present = [k for k in _choice_keys(data, head[:-3]) if not k.startswith("_")]
        if len(present) == 1:
            head = present[0]
    return head + dot + rest


def invariant_issues(resource: dict[str, Any], resource_type: str) -> list[Issue]:
    """The invariants of ``resource_type`` that ``resource`` breaks, one issue each."""
    issues = []
    seen: dict[tuple[str, ...], str] = {}
    seen_items: dict[tuple[str, int], dict[tuple[str, ...], str]] = {}
    for inv in INVARIANTS.get(resource_type, ()):
        if not inv.context:
            if not holds(inv, resource, resource, seen=seen):
                where = _element(inv.element, resource)
                issues.append(
                    Issue(
                        inv.code, f"{resource_type}.{where}".rstrip("."), f"{inv.key}: {inv.human}"
                    )
                )
            continue
        items = resource.get(inv.context)
        if items is None:
            continue
        many = isinstance(items, list)
        for i, item in enumerate(items if many else [items]):
            if not isinstance(item, dict):
                continue
            item_seen = seen_items.setdefault((inv.context, i), {})
            if not holds(inv, item, resource, seen=item_seen):
                at = f"{resource_type}.{inv.context}" + (f"[{i}]" if many else "")
                where = _element(inv.element, item)
                issues.append(
                    Issue(inv.code, f"{at}.{where}".rstrip("."), f"{inv.key}: {inv.human}")
                )
    return issues
