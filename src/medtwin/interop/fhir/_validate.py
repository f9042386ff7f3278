"""Validation in three layers, reported together as one OperationOutcome.

1. Structure and types: the fhir.resources R4B model of the resource type (pydantic), its error
   locations translated into element paths (``Observation.component[0].valueQuantity.value``).
2. FHIRPath invariants (:mod:`medtwin.interop.fhir._invariants`), once the structure is sound.
3. Required code sets: status codes, ``Patient.gender``, ``Bundle.type``, request methods, ...
   (:data:`medtwin.interop.fhir._codes.REQUIRED_CODES`).

A Bundle is checked as its shell (type, entries' fullUrl, request, search) and then each entry's
resource on its own, so an issue names ``Bundle.entry[3].resource.status``.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from functools import lru_cache
from typing import Any

from fhir.resources.R4B import get_fhir_model_class
from pydantic import ValidationError
from pydantic_core import ErrorDetails

from medtwin.interop.fhir._codes import (
    CONDITION_CLINICAL,
    CONDITION_VERIFICATION,
    REQUIRED_CODES,
)
from medtwin.interop.fhir._invariants import invariant_issues
from medtwin.interop.fhir._outcome import Issue, rebase, rejection

__all__ = ["bundle_issues", "resource_issues", "validate"]

_INDEX = re.compile(r"\[\d+\]")
_CHOICE_LIST = re.compile(r"from this list \[([^\]]*)\]")
_BY_TYPE: dict[str, list[tuple[tuple[str, ...], frozenset[str]]]] = {
    kind: [(path, allowed) for (k, path), allowed in REQUIRED_CODES.items() if k == kind]
    for kind, _ in REQUIRED_CODES
}
_REQUIRED_PRIMITIVES = {
    "Observation": ("status",),
    "RiskAssessment": ("status",),
    "MedicationAdministration": ("status",),
    "Bundle": ("type",),
}
_CODEABLE = {
    "Condition": (
        ("clinicalStatus", CONDITION_CLINICAL),
        ("verificationStatus", CONDITION_VERIFICATION),
    )
}


def validate(resource: dict[str, Any]) -> dict[str, Any]:
    """Validate a FHIR R4B resource or Bundle; return it unchanged.

    Checks the structure and types (fhir.resources R4B models), FHIRPath invariants (obs-6, obs-7,
    ras-2, bdl-3, ... and medtwin's rules: a subject that is a Patient, effective[x] with every
    value, the UCUM unit of each LOINC code medtwin imports, probabilities in 0-1) and the required
    code sets (status, gender, Bundle.type, request.method, ...).  A LOINC code medtwin does not
    import is valid here; :func:`~medtwin.interop.fhir.to_records` rejects it.

    Raises
    ------
    FHIRValidationError
        One issue per problem in ``.outcome`` (an OperationOutcome dict), each naming its element
        in ``expression``.

    Examples
    --------
    >>> obs = {"resourceType": "Observation", "status": "final",
    ...        "code": {"coding": [{"system": "http://loinc.org", "code": "99504-3"}]},
    ...        "subject": {"reference": "Patient/p1"}, "effectiveDateTime": "2026-01-01T08:00:00Z",
    ...        "valueQuantity": {"value": 112, "system": "http://unitsofmeasure.org",
    ...                          "code": "mg/dL"}}
    >>> validate(obs) is obs
    True
    >>> from medtwin.errors import FHIRValidationError
    >>> try:
    ...     validate({**obs, "status": "done"})
    ... except FHIRValidationError as exc:
    ...     print(exc.outcome["issue"][0]["expression"])
    ['Observation.status']
    """
    issues = resource_issues(resource)
    if issues:
        kind = resource.get("resourceType") if isinstance(resource, dict) else None
        raise rejection(str(kind or "resource"), issues)
    return resource


def resource_issues(resource: Any) -> list[Issue]:
    """Every problem with ``resource`` (a Bundle's include its entries'), rooted at its type."""
    if not isinstance(resource, dict):
        return [
            Issue(
                "structure",
                "",
                f"expected a FHIR resource (a JSON object), got {type(resource).__name__}",
            )
        ]
    kind = resource.get("resourceType")
    if kind == "Bundle":
        shell, entries = bundle_issues(resource)
        return shell + [i for _, found in sorted(entries.items()) for i in found]
    return _one_resource(resource)


def bundle_issues(bundle: dict[str, Any]) -> tuple[list[Issue], dict[int, list[Issue]]]:
    """A Bundle's own problems, and each entry's (``{index: issues}``, only entries that have any)."""
    entries = bundle.get("entry")
    shell = dict(bundle)
    if isinstance(entries, list):
        shell["entry"] = [
            {k: v for k, v in e.items() if k != "resource"} if isinstance(e, dict) else e
            for e in entries
        ]
    issues = _structure(shell, "Bundle")
    structure_ok = not issues
    issues += _code_sets(bundle, "Bundle")
    # FHIRPath on a broken structure or an unknown Bundle.type would only repeat the symptoms
    if structure_ok and not any(i.expression == "Bundle.type" for i in issues):
        issues += invariant_issues(bundle, "Bundle")
    per_entry: dict[int, list[Issue]] = {}
    for i, entry in enumerate(entries if isinstance(entries, list) else []):
        if not isinstance(entry, dict) or "resource" not in entry:
            continue
        root = f"Bundle.entry[{i}].resource"
        found = [rebase(issue, root) for issue in resource_issues(entry["resource"])]
        if found:
            per_entry[i] = found
    return issues, per_entry


def _one_resource(resource: dict[str, Any]) -> list[Issue]:
    kind = resource.get("resourceType")
    if not isinstance(kind, str):
        return [
            Issue(
                "required",
                "resourceType",
                "resourceType is missing: every FHIR resource names its type",
            )
        ]
    issues = _structure(resource, kind)
    structure_ok = not issues
    issues += _code_sets(resource, kind)
    if structure_ok:  # FHIRPath on a broken structure would only repeat the symptoms
        issues += invariant_issues(resource, kind)
    return issues


@lru_cache(maxsize=256)  # bounded: resourceType comes from outside
def _model(kind: str) -> Any:
    try:
        return get_fhir_model_class(kind)
    except (ValueError, KeyError, AttributeError, ImportError):
        return None


def _structure(resource: dict[str, Any], kind: str) -> list[Issue]:
    model = _model(kind)
    if model is None:
        return [
            Issue(
                "not-supported",
                "resourceType",
                f"unknown resourceType {kind!r}: not a FHIR R4B resource",
            )
        ]
    try:
        model.model_validate(resource)
    except ValidationError as exc:
        issues = [_pydantic_issue(kind, err) for err in exc.errors()]
        # fhir.resources checks required primitives only once every field is valid: say it now
        reported = {i.expression for i in issues}
        for name in _REQUIRED_PRIMITIVES.get(kind, ()):
            where = f"{kind}.{name}"
            if resource.get(name) is None and where not in reported:
                issues.insert(0, Issue("required", where, f"{where} is required"))
        return issues
    except (KeyError, TypeError, ValueError) as exc:  # fhir.resources on unknown contained types
        return [Issue("structure", kind, f"cannot be read as FHIR R4B {kind}: {exc!r}")]
    return []


def _path(kind: str, loc: tuple[int | str, ...]) -> str:
    out = kind
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
            continue
        name = "resourceType" if part == "resource_type" else part
        name = name.removesuffix("__ext").lstrip("_")
        out += f".{name}"
    return out


def _pydantic_issue(kind: str, err: ErrorDetails) -> Issue:
    where = _path(kind, tuple(err["loc"]))
    kind_of_error = str(err["type"])
    msg = str(err["msg"]).removeprefix("Value error, ")
    value = err.get("input")
    choice = _CHOICE_LIST.search(msg)
    if choice:
        names = [n.strip(" '\"") for n in choice.group(1).split(",")]
        stem = _common_prefix(names)
        present = sorted(n for n in names if isinstance(value, dict) and n in value)
        if "but got multiple" in msg:
            return Issue(
                "structure",
                f"{where}.{stem}[x]",
                f"only one {stem}[x] may be present, got {', '.join(present)}",
            )
        return Issue(
            "required", f"{where}.{stem}[x]", f"{stem}[x] is required: one of {', '.join(names)}"
        )
    if kind_of_error.endswith("missing"):
        return Issue("required", where, f"{where} is required")
    if kind_of_error == "extra_forbidden":
        return Issue("structure", where, f"{where} is not an element of FHIR R4B {kind}")
    if kind_of_error in {"json_invalid", "model_type", "dict_type"} or kind_of_error.endswith(
        "_type"
    ):
        expected = "a JSON object" if kind_of_error in {"json_invalid", "model_type"} else msg
        return Issue("structure", where, f"wrong JSON type: {expected} (got {_show(value)})")
    if kind_of_error.startswith("fhir-validation-wrong-resource-type"):
        return Issue("invalid", where, msg.split("\n")[0])
    return Issue("value", where, f"{msg} (got {_show(value)})")


def _show(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def _common_prefix(names: list[str]) -> str:
    stem = names[0] if names else ""
    for n in names[1:]:
        while not n.startswith(stem):
            stem = stem[:-1]
    # the type names may share letters (valueDateTime, valueDecimal): back off to a word boundary
    first = names[0] if names else ""
    while stem and len(first) > len(stem) and not first[len(stem)].isupper():
        stem = stem[:-1]
    return stem


def _walk(data: Any, path: tuple[str, ...], where: str) -> Iterator[tuple[str, Any]]:
    if not path:
        yield where, data
        return
    if not isinstance(data, dict):
        return
    head, rest = path[0], path[1:]
    value = data.get(head)
    if value is None:
        return
    if isinstance(value, list):
        for i, item in enumerate(value):
            yield from _walk(item, rest, f"{where}.{head}[{i}]")
    else:
        yield from _walk(value, rest, f"{where}.{head}")


def _code_sets(resource: dict[str, Any], kind: str) -> list[Issue]:
    issues = []
    for path, allowed in _BY_TYPE.get(kind, ()):
        for where, value in _walk(resource, path, kind):
            if isinstance(value, str) and value not in allowed:
                issues.append(
                    Issue(
                        "code-invalid",
                        where,
                        f"unknown code {value!r}; {_INDEX.sub('', where)} (a FHIR R4 required "
                        f"binding) allows {', '.join(sorted(allowed))}",
                    )
                )
    for element, (system, allowed) in _CODEABLE.get(kind, ()):
        concept = resource.get(element)
        if not isinstance(concept, dict) or not isinstance(concept.get("coding"), list):
            continue
        ours = [
            (i, c)
            for i, c in enumerate(concept["coding"])
            if isinstance(c, dict) and c.get("system") == system
        ]
        for i, coding in ours:
            if isinstance(coding.get("code"), str) and coding["code"] not in allowed:
                issues.append(
                    Issue(
                        "code-invalid",
                        f"{kind}.{element}.coding[{i}].code",
                        f"unknown code {coding['code']!r}; {kind}.{element} (a FHIR R4 "
                        f"required binding) allows {', '.join(sorted(allowed))}",
                    )
                )
        if not ours:
            issues.append(
                Issue(
                    "code-invalid",
                    f"{kind}.{element}.coding",
                    f"{kind}.{element} needs a coding from {system} (a FHIR R4 required "
                    f"binding: {', '.join(sorted(allowed))})",
                )
            )
    return issues
