"""FHIR resources and Bundles in, :mod:`medtwin.records` out, in canonical units.

A resource is validated first (:func:`~medtwin.interop.fhir.validate`); then what medtwin needs of
it is checked and translated: the LOINC code (aliases mapped to the stored code), the unit
(converted: mmol/L glucose to mg/dL, g and [lb_av] body weight to kg, g/ug doses to mg), the
subject (``Patient/<id>``, or a Patient entry's fullUrl inside a Bundle), the time (UTC).  What is
set aside on purpose (status ``entered-in-error``, a ``dataAbsentReason``, a censored value kept at
its bound, a partial date) is listed as a warning in :attr:`ImportResult.issues`, never dropped
silently.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from typing import Any, Literal

from medtwin.errors import UnitError
from medtwin.interop.fhir._codes import (
    BP_COMPONENTS,
    BP_PANEL,
    CONDITION_VERIFICATION,
    IMPORT_CODES,
    INSULIN_RXNORM,
    LOINC,
    RXNORM,
    SOURCE_ID_SYSTEM,
    UCUM,
    ImportCode,
)
from medtwin.interop.fhir._outcome import Issue, operation_outcome, rejection
from medtwin.interop.fhir._validate import bundle_issues, resource_issues
from medtwin.interop.wearables.fhir import _USABLE_STATUS
from medtwin.records import (
    OBSERVATION_CODES,
    ConditionRecord,
    DeviceRecord,
    EventRecord,
    ObservationRecord,
    PatientRecord,
)
from medtwin.units import convert, glucose_to_mg_dl, parse_unit

__all__ = ["ImportResult", "read_bundle", "to_records"]

IMPORTED_TYPES = ("Patient", "Observation", "MedicationAdministration", "Condition", "Device")
_BUNDLE_TYPES = ("transaction", "batch", "collection", "searchset")
_MEDICATION_USABLE = frozenset({"completed", "in-progress"})
_INSULIN_UNITS = frozenset({"U", "[iU]", "[IU]"})
_LB_AV_KG = 0.45359237  # the avoirdupois pound, exactly (UCUM [lb_av])
_ID = r"[A-Za-z0-9.-]{1,64}"
_RELATIVE = re.compile(
    rf"(?:https?://\S+/)?(?P<type>[A-Z][A-Za-z]+)/(?P<id>{_ID})(?:/_history/\S+)?"
)
_MASS = parse_unit("g").dims


@dataclass(frozen=True, slots=True)
class ImportResult:
    """Records translated from FHIR, ready for :meth:`medtwin.store.Store.ingest`.

    ``entry_outcomes`` (batch Bundles only): ``(index, OperationOutcome or None)`` for each entry,
    ``None`` when it was imported.  ``issues`` are warnings: what was set aside on purpose.
    """

    patients: list[PatientRecord] = field(default_factory=list)
    observations: list[ObservationRecord] = field(default_factory=list)
    events: list[EventRecord] = field(default_factory=list)
    conditions: list[ConditionRecord] = field(default_factory=list)
    devices: list[DeviceRecord] = field(default_factory=list)
    entry_outcomes: list[tuple[int, dict[str, Any] | None]] = field(default_factory=list)
    issues: list[Issue] = field(default_factory=list)

    @property
    def n_records(self) -> int:
        """How many records in all."""
        return (
            len(self.patients)
            + len(self.observations)
            + len(self.events)
            + len(self.conditions)
            + len(self.devices)
        )

    def _extend(self, other: ImportResult) -> None:
        self.patients.extend(other.patients)
        self.observations.extend(other.observations)
        self.events.extend(other.events)
        self.conditions.extend(other.conditions)
        self.devices.extend(other.devices)
        self.issues.extend(other.issues)


@dataclass(slots=True)
class _Refs:
    """What a Bundle's fullUrls stand for: the Patient ids, other entries' types, rejected ones."""

    patients: dict[str, str] = field(default_factory=dict)
    devices: dict[str, str] = field(default_factory=dict)
    kinds: dict[str, str] = field(default_factory=dict)
    rejected: set[str] = field(default_factory=set)
    in_bundle: bool = False


@dataclass(slots=True)
class _Job:
    """One resource being translated: where it is, its identity, and what was found."""

    resource: dict[str, Any]
    root: str
    refs: _Refs
    full_url: str | None = None
    put_id: str | None = None
    out: ImportResult = field(default_factory=ImportResult)
    errors: list[Issue] = field(default_factory=list)

    @property
    def own_id(self) -> str | None:
        """The resource's id: its own, a PUT's, or the uuid of its urn:uuid: fullUrl."""
        rid = self.resource.get("id") or self.put_id
        if rid is None and self.full_url is not None and self.full_url.startswith("urn:uuid:"):
            rid = self.full_url.removeprefix("urn:uuid:")
        return rid if isinstance(rid, str) else None

    @property
    def source_id(self) -> str | None:
        """``fhir:<ResourceType>/<id>``, or the entry's fullUrl when the resource has no id.

        A medtwin source-id identifier (the exporters write one) wins: re-importing what medtwin
        exported gives the records it came from.
        """
        for ident in self.resource.get("identifier", ()):
            if ident.get("system") == SOURCE_ID_SYSTEM and isinstance(ident.get("value"), str):
                return str(ident["value"])
        rid = self.resource.get("id") or self.put_id
        if isinstance(rid, str):
            return f"fhir:{self.resource.get('resourceType')}/{rid}"
        return self.full_url

    def error(self, code: str, element: str, message: str) -> None:
        self.errors.append(Issue(code, f"{self.root}.{element}".rstrip("."), message))

    def warn(self, element: str, message: str) -> None:
        where = f"{self.root}.{element}".rstrip(".")
        self.out.issues.append(Issue("informational", where, message, severity="warning"))


def to_records(resource: dict[str, Any]) -> ImportResult:
    """Translate a Patient, Observation, MedicationAdministration, Condition or Device into records.

    A Bundle is passed to :func:`read_bundle`.  Observations: CGM 99504-3 (mg/dL) and 105272-9
    (mmol/L, converted; stored as 99504-3), heart rate 8867-4, the blood-pressure panel 85354-9
    (one record per component, 8480-6 and 8462-4, ``source_id`` ending ``#<component code>``),
    SpO2 2708-6/59408-5 (stored as 59408-5), steps 41950-7, body weight 29463-7 (g and [lb_av]
    converted to kg), and carbohydrate intake 9059-7 (an event of kind ``carbs`` in g).
    MedicationAdministrations of insulin (an RxNorm insulin ingredient, or ``insulin`` in the text)
    become ``bolus`` events in U (``basal`` in U/h for a rate); others ``medication`` in mg.
    ``source_id`` is ``fhir:<ResourceType>/<id>``.

    Raises
    ------
    FHIRValidationError
        The resource is invalid (see :func:`~medtwin.interop.fhir.validate`) or cannot be stored:
        an unsupported resource type or LOINC code, a unit that does not fit its code, a subject
        that is not a Patient; ``.outcome`` names each element.

    Examples
    --------
    >>> obs = {"resourceType": "Observation", "id": "g1", "status": "final",
    ...        "code": {"coding": [{"system": "http://loinc.org", "code": "105272-9"}]},
    ...        "subject": {"reference": "Patient/p1"}, "effectiveDateTime": "2026-01-01T09:00:00+01:00",
    ...        "valueQuantity": {"value": 5.5, "system": "http://unitsofmeasure.org",
    ...                          "code": "mmol/L"}}
    >>> [r] = to_records(obs).observations
    >>> r.patient_id, r.code, round(r.value, 2), r.unit, r.time.isoformat(), r.source_id
    ('p1', '99504-3', 99.09, 'mg/dL', '2026-01-01T08:00:00+00:00', 'fhir:Observation/g1')
    """
    if isinstance(resource, dict) and resource.get("resourceType") == "Bundle":
        return read_bundle(resource)
    issues = resource_issues(resource)
    kind = (
        str(resource.get("resourceType", "resource")) if isinstance(resource, dict) else "resource"
    )
    if issues:
        raise rejection(kind, issues)
    job = _Job(resource, kind, _Refs())
    _translate(job)
    if job.errors:
        raise rejection(kind, job.errors + job.out.issues)
    return job.out


def read_bundle(bundle: dict[str, Any]) -> ImportResult:
    """Translate a transaction, batch, collection or searchset Bundle into records.

    A ``transaction`` (and a ``collection`` or ``searchset``) is all or nothing: any bad entry
    rejects the whole Bundle, with every problem listed.  A ``batch`` imports the good entries and
    gives each entry's outcome in :attr:`ImportResult.entry_outcomes`.  References to another
    entry's fullUrl (``urn:uuid:...``) resolve to that Patient's id (its ``id``, the id in a PUT
    ``request.url``, or else the uuid); entries may only POST or PUT.

    Raises
    ------
    FHIRValidationError
        The Bundle itself is invalid or of another type; for all-or-nothing types, any entry is.

    Examples
    --------
    >>> patient = {"resourceType": "Patient", "gender": "female"}
    >>> obs = {"resourceType": "Observation", "id": "hr1", "status": "final",
    ...        "code": {"coding": [{"system": "http://loinc.org", "code": "8867-4"}]},
    ...        "subject": {"reference": "urn:uuid:6f1c3a0e-8a8e-4c43-9d0b-6f3d3c2b1a00"},
    ...        "effectiveDateTime": "2026-01-01T08:00:00Z",
    ...        "valueQuantity": {"value": 72, "system": "http://unitsofmeasure.org", "code": "/min"}}
    >>> tx = {"resourceType": "Bundle", "type": "transaction", "entry": [
    ...     {"fullUrl": "urn:uuid:6f1c3a0e-8a8e-4c43-9d0b-6f3d3c2b1a00", "resource": patient,
    ...      "request": {"method": "POST", "url": "Patient"}},
    ...     {"resource": obs, "request": {"method": "POST", "url": "Observation"}}]}
    >>> result = read_bundle(tx)
    >>> result.patients[0].id, result.observations[0].patient_id
    ('6f1c3a0e-8a8e-4c43-9d0b-6f3d3c2b1a00', '6f1c3a0e-8a8e-4c43-9d0b-6f3d3c2b1a00')
    """
    if not isinstance(bundle, dict) or bundle.get("resourceType") != "Bundle":
        got = bundle.get("resourceType") if isinstance(bundle, dict) else type(bundle).__name__
        raise rejection(
            "Bundle", [Issue("invalid", "resourceType", f"expected a Bundle, got {got!r}")]
        )
    shell, per_entry = bundle_issues(bundle)
    kind = bundle.get("type")
    if isinstance(kind, str) and kind not in _BUNDLE_TYPES:
        shell.append(
            Issue(
                "not-supported",
                "Bundle.type",
                f"medtwin imports {', '.join(_BUNDLE_TYPES)} Bundles, not {kind!r}",
            )
        )
    entries = bundle.get("entry") or []
    if shell or not isinstance(entries, list):
        raise rejection(
            "Bundle", shell + [i for _, found in sorted(per_entry.items()) for i in found]
        )

    refs = _Refs(in_bundle=True)
    jobs: dict[int, _Job] = {}
    for i, entry in enumerate(entries):
        root = f"Bundle.entry[{i}]"
        url = entry.get("fullUrl")
        job = _Job(
            entry.get("resource") or {},
            f"{root}.resource",
            refs,
            url if isinstance(url, str) else None,
            _put_id(entry),
        )
        job.errors.extend(per_entry.get(i, []))
        jobs[i] = job
        if "resource" not in entry:
            job.errors.append(
                Issue(
                    "not-supported",
                    root,
                    "an entry without a resource: medtwin imports resources (POST, PUT)",
                )
            )
            continue
        _request(entry, job, kind)
        _register(job, refs)

    # Patients first, so that an entry about a rejected Patient (batch) is rejected with it.
    order = sorted(jobs, key=lambda i: jobs[i].resource.get("resourceType") != "Patient")
    result = ImportResult()
    for i in order:
        job = jobs[i]
        if not job.errors and not _is_outcome_entry(entries[i], kind):
            _translate(job)
        if job.errors and isinstance(entries[i].get("fullUrl"), str):
            refs.rejected.add(entries[i]["fullUrl"])
    if kind != "batch":
        problems = [issue for i in sorted(jobs) for issue in jobs[i].errors]
        if problems:
            raise rejection(f"{kind} Bundle", problems)
    for i in sorted(jobs):
        job = jobs[i]
        outcome = operation_outcome(job.errors) if job.errors else None
        if kind == "batch":
            result.entry_outcomes.append((i, outcome))
        if not job.errors:
            result._extend(job.out)
    return result


def _is_outcome_entry(entry: dict[str, Any], kind: Any) -> bool:
    search = entry.get("search")
    return kind == "searchset" and isinstance(search, dict) and search.get("mode") == "outcome"


def _request(entry: dict[str, Any], job: _Job, kind: Any) -> None:
    request = entry.get("request")
    if kind not in ("transaction", "batch") or not isinstance(request, dict):
        return
    root = job.root.removesuffix(".resource")
    method, url = request.get("method"), request.get("url")
    if method not in ("POST", "PUT"):
        job.errors.append(
            Issue(
                "not-supported",
                f"{root}.request.method",
                f"medtwin imports resources by POST or PUT, not {method!r}",
            )
        )
    elif method == "PUT":
        match = _RELATIVE.fullmatch(str(url))
        resource_id = job.resource.get("id")
        if match is None or match["type"] != job.resource.get("resourceType"):
            job.errors.append(
                Issue(
                    "not-supported",
                    f"{root}.request.url",
                    f"PUT needs request.url '<ResourceType>/<id>' naming this "
                    f"{job.resource.get('resourceType')}, got {url!r} (conditional updates "
                    "are not supported)",
                )
            )
        elif resource_id is not None and resource_id != match["id"]:
            job.errors.append(
                Issue(
                    "invalid",
                    f"{root}.request.url",
                    f"PUT {url!r} but the resource's id is {resource_id!r}; they must agree",
                )
            )


def _put_id(entry: dict[str, Any]) -> str | None:
    request = entry.get("request")
    if isinstance(request, dict) and request.get("method") == "PUT":
        match = _RELATIVE.fullmatch(str(request.get("url")))
        return match["id"] if match else None
    return None


def _register(job: _Job, refs: _Refs) -> None:
    if job.full_url is None:
        return
    kind = str(job.resource.get("resourceType"))
    refs.kinds[job.full_url] = kind
    own_id = job.own_id
    if kind == "Patient" and own_id:
        refs.patients[job.full_url] = own_id
    elif kind == "Device" and own_id:
        refs.devices[job.full_url] = own_id


def _translate(job: _Job) -> None:
    kind = job.resource.get("resourceType")
    translate = _TRANSLATORS.get(str(kind))
    if translate is None:
        job.error(
            "not-supported",
            "resourceType",
            f"medtwin does not import {kind} resources; it imports {', '.join(IMPORTED_TYPES)}",
        )
        return
    if job.source_id is None:
        job.error(
            "required",
            "id",
            f"a {kind} needs an id (or, in a Bundle, a fullUrl): records are identified by "
            "it so that a resubmission changes nothing",
        )
        return
    translate(job)


# --- references -----------------------------------------------------------------------------


def _reference(job: _Job, element: str, target: Literal["Patient", "Device"]) -> str | None:
    ref_obj = job.resource.get(element)
    ref = ref_obj.get("reference") if isinstance(ref_obj, dict) else None
    where = f"{element}.reference"
    if not isinstance(ref, str):
        if target == "Patient":
            job.error("required", element, f"{element}.reference naming the Patient is required")
        return None
    if ref in job.refs.rejected:
        job.error(
            "not-found",
            where,
            f"{ref!r} is a {target} entry of this Bundle that was rejected; fix that entry",
        )
        return None
    table = job.refs.patients if target == "Patient" else job.refs.devices
    if ref in table:
        return table[ref]
    if ref in job.refs.kinds and job.refs.kinds[ref] != target:
        job.error(
            "invalid", where, f"{ref!r} is a {job.refs.kinds[ref]} in this Bundle, not a {target}"
        )
        return None
    if ref.startswith("urn:"):
        job.error(
            "not-found",
            where,
            f"unknown reference {ref!r}: no entry of this Bundle has that fullUrl"
            if job.refs.in_bundle
            else f"{ref!r} can only be resolved inside a Bundle; reference '{target}/<id>'",
        )
        return None
    if ref.startswith("#"):
        job.error(
            "not-supported",
            where,
            f"contained {target}s ({ref!r}) are not supported; reference '{target}/<id>' "
            f"or put the {target} in the Bundle",
        )
        return None
    match = _RELATIVE.fullmatch(ref)
    if match is None or match["type"] != target:
        job.error("invalid", where, f"{ref!r} is not a {target} reference ('{target}/<id>')")
        return None
    if "://" in ref:
        job.error(
            "not-supported",
            where,
            f"{ref!r} is a {target} on another server; medtwin resolves only "
            f"'{target}/<id>' and the fullUrls of entries in the same Bundle",
        )
        return None
    return match["id"]


# --- times and quantities -------------------------------------------------------------------


def _datetime(job: _Job, element: str, text: Any) -> datetime | None:
    if not isinstance(text, str) or "T" not in text:
        job.error(
            "value",
            element,
            f"{text!r} has no time of day; medtwin needs a time to the second with its UTC offset",
        )
        return None
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        job.error("value", element, f"{text!r} is not a FHIR dateTime")
        return None
    if moment.tzinfo is None:
        job.error("value", element, f"{text!r} has no UTC offset; FHIR requires one with a time")
        return None
    return moment.astimezone(UTC)


def _date(job: _Job, element: str, text: Any) -> date | None:
    if not isinstance(text, str):
        return None
    if len(text) < 10:
        job.warn(
            element,
            f"{text!r} is a partial date; stored without it (medtwin keeps full dates only)",
        )
        return None
    return date.fromisoformat(text[:10])


def _effective(job: _Job, prefix: str = "effective") -> datetime | None:
    res = job.resource
    for suffix in ("DateTime", "Instant"):
        if f"{prefix}{suffix}" in res:
            return _datetime(job, f"{prefix}{suffix}", res[f"{prefix}{suffix}"])
    period = res.get(f"{prefix}Period")
    if isinstance(period, dict):
        if "start" not in period:
            job.error("required", f"{prefix}Period.start", "a period needs its start")
            return None
        return _datetime(job, f"{prefix}Period.start", period["start"])
    present = [k for k in res if k.startswith(prefix)]
    job.error(
        "not-supported" if present else "required",
        f"{prefix}[x]",
        f"{prefix}DateTime, {prefix}Instant or {prefix}Period is required"
        + (f", not {present[0]}" if present else ""),
    )
    return None


def _quantity(job: _Job, q: Any, element: str) -> tuple[float, str, str] | None:
    """(value, UCUM code, comparator) of a Quantity, or None with an error."""
    if not isinstance(q, dict):
        job.error("required", element, f"{element} is required")
        return None
    value = q.get("value")
    if isinstance(value, bool) or not isinstance(value, int | float):
        job.error("structure", f"{element}.value", f"must be a JSON number, got {value!r}")
        return None
    system = q.get("system")
    if system is not None and system != UCUM:
        job.error("value", f"{element}.system", f"units must be UCUM ({UCUM}), got {system!r}")
        return None
    unit = q.get("code")
    if not isinstance(unit, str):
        job.error("required", f"{element}.code", f"{element}.code (the UCUM unit) is required")
        return None
    return float(value), unit, str(q.get("comparator", ""))


# --- Patient, Device, Condition -------------------------------------------------------------


def _patient(job: _Job) -> None:
    res = job.resource
    pid = job.own_id
    if pid is None:
        job.error("required", "id", "a Patient needs an id (or a urn:uuid: fullUrl in a Bundle)")
        return
    identifier = None
    for ident in res.get("identifier", []):
        if isinstance(ident.get("value"), str) and ident.get("system") != SOURCE_ID_SYSTEM:
            system = ident.get("system")
            identifier = f"{system}|{ident['value']}" if system else ident["value"]
            break
    name = None
    names = res.get("name", [])
    if names:
        official = next((n for n in names if n.get("use") == "official"), names[0])
        name = (
            official.get("text")
            or " ".join(
                [
                    *official.get("given", []),
                    *([official["family"]] if "family" in official else []),
                ]
            )
            or None
        )
    birth = _date(job, "birthDate", res.get("birthDate"))
    job.out.patients.append(
        PatientRecord(pid, identifier, name, birth, res.get("gender"), source_id=job.source_id)
    )


def _device(job: _Job) -> None:
    res = job.resource
    if res.get("status") == "entered-in-error":
        job.warn("status", "status 'entered-in-error': not imported")
        return
    did = job.own_id
    if did is None:
        job.error("required", "id", "a Device needs an id")
        return
    patient = _reference(job, "patient", "Patient") if "patient" in res else None
    kind = "device"
    dtype = res.get("type")
    if isinstance(dtype, dict):
        coding = (dtype.get("coding") or [{}])[0]
        kind = dtype.get("text") or coding.get("display") or coding.get("code") or kind
    names = res.get("deviceName", [])
    model = res.get("modelNumber") or next(
        (n["name"] for n in names if n.get("type") == "model-name"), None
    )
    job.out.devices.append(
        DeviceRecord(did, patient, kind, res.get("manufacturer"), model, source_id=job.source_id)
    )


def _condition(job: _Job) -> None:
    res = job.resource
    system, _ = CONDITION_VERIFICATION
    for coding in (res.get("verificationStatus") or {}).get("coding", []):
        if coding.get("system") == system and coding.get("code") in ("entered-in-error", "refuted"):
            job.warn("verificationStatus", f"verificationStatus {coding['code']!r}: not imported")
            return
    patient = _reference(job, "subject", "Patient")
    codings = (res.get("code") or {}).get("coding", [])
    coded = next((c for c in codings if c.get("system") and c.get("code")), None)
    if coded is None:
        job.error(
            "required",
            "code.coding",
            "a Condition needs a coded diagnosis (code.coding with system and code, "
            "e.g. SNOMED CT or ICD-10)",
        )
        return
    onset = None
    if "onsetDateTime" in res:
        onset = _date(job, "onsetDateTime", res["onsetDateTime"])
    elif isinstance(res.get("onsetPeriod"), dict):
        onset = _date(job, "onsetPeriod.start", res["onsetPeriod"].get("start"))
    elif any(k.startswith("onset") for k in res):
        key = next(k for k in res if k.startswith("onset"))
        job.warn(key, f"{key} is not a date; stored without an onset")
    if patient is None:
        return
    job.out.conditions.append(
        ConditionRecord(
            patient,
            coded["system"],
            coded["code"],
            coded.get("display"),
            onset,
            source_id=job.source_id,
        )
    )


# --- Observation ----------------------------------------------------------------------------


def _loinc(job: _Job, concept: Any, element: str) -> ImportCode | None:
    codings = concept.get("coding", []) if isinstance(concept, dict) else []
    found = [c for c in codings if c.get("system") == LOINC and c.get("code") in IMPORT_CODES]
    targets = {IMPORT_CODES[c["code"]].stored for c in found}
    if len(targets) > 1:
        job.error(
            "code-invalid",
            f"{element}.coding",
            f"LOINC codes {sorted(c['code'] for c in found)} mean different measurements; send one",
        )
        return None
    if not found:
        given = [f"{c.get('system', '')}|{c.get('code', '')}" for c in codings] or ["none"]
        job.error(
            "code-invalid",
            f"{element}.coding",
            f"medtwin does not import this code ({', '.join(given)}); supported LOINC "
            f"codes: {', '.join(IMPORT_CODES)}",
        )
        return None
    return IMPORT_CODES[found[0]["code"]]


def _canonical(code: ImportCode, value: float, unit: str) -> float:
    if code.stored == "99504-3":
        return glucose_to_mg_dl(value, unit)
    if code.stored == "29463-7":
        return value * _LB_AV_KG if unit == "[lb_av]" else convert(value, unit, "kg")
    if code.kind == "carbs":
        return convert(value, unit, "g")
    return value  # the accepted units of the others are spellings of the stored one


def _observation(job: _Job) -> None:
    res = job.resource
    status = res.get("status")
    if status not in _USABLE_STATUS:
        job.warn("status", f"status {status!r}: not a usable reading, not imported")
        return
    code = _loinc(job, res.get("code"), "code")
    patient = _reference(job, "subject", "Patient")
    device = _reference(job, "device", "Device") if "device" in res else None
    time = _effective(job)
    if code is None or patient is None or time is None or job.errors:
        return
    if code.kind == "panel":
        _panel(job, patient, device, time)
        return
    if "valueQuantity" not in res:
        if "dataAbsentReason" in res:
            job.warn("dataAbsentReason", "no value (dataAbsentReason): not imported")
            return
        other = next((k for k in res if k.startswith("value")), None)
        job.error(
            "not-supported" if other else "required",
            other or "value[x]",
            f"LOINC {code.loinc} needs valueQuantity" + (f", not {other}" if other else ""),
        )
        return
    _reading(job, code, res["valueQuantity"], "valueQuantity", patient, device, time, "")


def _reading(
    job: _Job,
    code: ImportCode,
    q: Any,
    element: str,
    patient: str,
    device: str | None,
    time: datetime,
    suffix: str,
) -> None:
    quantity = _quantity(job, q, element)
    if quantity is None:
        return
    value, unit, comparator = quantity
    if unit not in code.units:
        job.error(
            "value",
            f"{element}.code",
            f"LOINC {code.loinc} is measured in {' or '.join(map(repr, code.units))}, not {unit!r}",
        )
        return
    try:
        stored = _canonical(code, value, unit)
    except UnitError as exc:  # pragma: no cover - the accepted units all convert
        job.error("value", f"{element}.code", str(exc))
        return
    if comparator:
        job.warn(f"{element}.comparator", f"value {comparator}{value:g} {unit}: kept at its bound")
    sid = f"{job.source_id}{suffix}"
    if code.kind == "carbs":
        job.out.events.append(EventRecord(patient, "carbs", time, stored, "g", source_id=sid))
        return
    unit_stored = OBSERVATION_CODES[code.stored].unit
    job.out.observations.append(
        ObservationRecord(patient, code.stored, time, stored, unit_stored, device, sid)
    )


def _panel(job: _Job, patient: str, device: str | None, time: datetime) -> None:
    components = job.resource.get("component", [])
    found = 0
    for loinc in BP_COMPONENTS:
        for i, comp in enumerate(components):
            codings = comp.get("code", {}).get("coding", [])
            if any(c.get("system") == LOINC and c.get("code") == loinc for c in codings):
                found += 1
                where = f"component[{i}]"
                if "valueQuantity" not in comp:
                    job.warn(where, f"component {loinc} has no valueQuantity: not imported")
                    break
                _reading(
                    job,
                    IMPORT_CODES[loinc],
                    comp["valueQuantity"],
                    f"{where}.valueQuantity",
                    patient,
                    device,
                    time,
                    f"#{loinc}",
                )
                break
    if not found:
        job.error(
            "required",
            "component",
            f"a blood-pressure panel ({BP_PANEL}) needs a systolic (8480-6) or diastolic "
            "(8462-4) component",
        )


# --- MedicationAdministration ---------------------------------------------------------------


def _medication(job: _Job) -> None:
    res = job.resource
    status = res.get("status")
    if status not in _MEDICATION_USABLE:
        job.warn("status", f"status {status!r}: no dose was given, not imported")
        return
    patient = _reference(job, "subject", "Patient")
    time = _effective(job)
    concept, element = _medication_concept(job)
    codings = concept.get("coding", []) if isinstance(concept, dict) else []
    texts = [concept.get("text", "")] if isinstance(concept, dict) else []
    texts += [c.get("display", "") for c in codings]
    if element == "medicationReference":
        texts.append(str(res.get("medicationReference", {}).get("display", "")))
    rxnorm = next((c["code"] for c in codings if c.get("system") == RXNORM and "code" in c), None)
    insulin = rxnorm in INSULIN_RXNORM or any("insulin" in t.lower() for t in texts if t)
    name = next((t for t in texts if t), None) or rxnorm
    detail = {k: v for k, v in (("medication", name), ("rxnorm", rxnorm)) if v}
    dosage = res.get("dosage")
    dosage = dosage if isinstance(dosage, dict) else {}
    if patient is None or time is None or job.errors:
        return
    if insulin and "rateQuantity" in dosage:
        _amount(
            job,
            dosage["rateQuantity"],
            "dosage.rateQuantity",
            "basal",
            "U/h",
            patient,
            time,
            detail,
        )
    elif "dose" in dosage:
        kind: Literal["bolus", "medication"] = "bolus" if insulin else "medication"
        _amount(
            job,
            dosage["dose"],
            "dosage.dose",
            kind,
            "U" if insulin else "mg",
            patient,
            time,
            detail,
        )
    else:
        job.error(
            "required",
            "dosage.dose",
            "medtwin needs the dose given (dosage.dose; for insulin also "
            "dosage.rateQuantity in U/h)",
        )


def _medication_concept(job: _Job) -> tuple[Any, str]:
    res = job.resource
    if "medicationCodeableConcept" in res:
        return res["medicationCodeableConcept"], "medicationCodeableConcept"
    ref = res.get("medicationReference", {}).get("reference", "")
    if isinstance(ref, str) and ref.startswith("#"):
        for contained in res.get("contained", []):
            if contained.get("resourceType") == "Medication" and f"#{contained.get('id')}" == ref:
                return contained.get("code"), "medicationReference"
    return None, "medicationReference"


def _amount(
    job: _Job,
    q: Any,
    element: str,
    kind: Literal["bolus", "basal", "medication"],
    unit: str,
    patient: str,
    time: datetime,
    detail: dict[str, Any],
) -> None:
    quantity = _quantity(job, q, element)
    if quantity is None:
        return
    value, given, _ = quantity
    try:
        if kind == "medication" and parse_unit(given).dims != _MASS:
            raise UnitError(f"{given!r} is not a mass")
        if kind == "bolus" and given not in _INSULIN_UNITS:
            raise UnitError(f"{given!r} is not an insulin unit")
        amount = convert(value, given, unit)
    except UnitError as exc:
        expected = {
            "bolus": "insulin doses are counted in units: 'U' or '[iU]'",
            "basal": "insulin rates are in 'U/h' (or '[iU]/h', 'U/min')",
            "medication": "medtwin stores other medication doses in mg: send a mass ('mg', 'g', "
            "'ug'); volumes and tablets cannot be converted",
        }[kind]
        job.error("value", f"{element}.code", f"{expected}; got {given!r} ({exc})")
        return
    job.out.events.append(
        EventRecord(patient, kind, time, amount, unit, source_id=job.source_id, detail=detail)
    )


_TRANSLATORS: dict[str, Callable[[_Job], None]] = {
    "Patient": _patient,
    "Observation": _observation,
    "MedicationAdministration": _medication,
    "Condition": _condition,
    "Device": _device,
}
