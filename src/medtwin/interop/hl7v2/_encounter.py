"""FHIR R4 Encounters as ADT events.

A FHIR Encounter is a document of the visit's state, not an event: each version says where the
patient has been (``location[]`` with periods), in which class (``class``, ``classHistory``) and
whether the visit is over (``status``, ``period``).  :func:`events_from_encounter` turns one
version into the ADT events that lead to that state; a census fed every version of an Encounter
(or only the latest) ends in the same state, because the events a later version repeats are
recognised as repeats of the same content (see :class:`medtwin.hospital.census.Census`).
"""

from __future__ import annotations

import itertools
import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from medtwin.errors import FHIRValidationError
from medtwin.hospital._records import ADTEvent, PatientClass
from medtwin.interop.fhir import Issue, operation_outcome, validate

__all__ = ["ENCOUNTER_CLASSES", "events_from_encounter"]

ENCOUNTER_CLASSES: dict[str, PatientClass] = {
    "EMER": "E",
    "IMP": "I",
    "ACUTE": "I",
    "NONAC": "I",
    "AMB": "O",
    "OBSENC": "O",
    "SS": "O",
}
"""``Encounter.class`` codes (v3 ActCode) read, and the HL7 patient class each becomes.
Home health (HH), virtual (VR), field (FLD) and pre-admission (PRENC) encounters are rejected:
they are not a presence in the hospital."""

_STATUSES = frozenset(
    {
        "planned",
        "arrived",
        "triaged",
        "in-progress",
        "onleave",
        "finished",
        "cancelled",
        "entered-in-error",
        "unknown",
    }
)
_PRESENT = frozenset({"arrived", "triaged", "in-progress", "onleave"})
_RETRACTED = frozenset({"cancelled", "entered-in-error"})
_REFERENCE = re.compile(
    r"(?:.*/)?(?P<type>[A-Z][A-Za-z]+)/(?P<id>[A-Za-z0-9.\-]{1,64})(?:/_history/.*)?"
)
_VISIT_NUMBER = "http://terminology.hl7.org/CodeSystem/v2-0203"


@dataclass(frozen=True, slots=True)
class _Stay:
    unit: str
    bed: str | None
    start: datetime


def events_from_encounter(resource: Mapping[str, Any] | Any) -> list[ADTEvent]:
    """The ADT events one version of a FHIR R4 Encounter stands for, in time order.

    ``resource`` is an Encounter as a dict or a fhir.resources model.  It is validated first
    (:func:`medtwin.interop.fhir.validate`), then read:

    - ``location[]`` entries with status ``active`` or ``completed`` (or none), ordered by
      ``period.start``: the first is the arrival, the others transfers (A02, prior location the
      entry before).  A Location reference gives the unit (``Location/ICU`` is ``ICU``, else its
      ``display``); entries whose ``physicalType`` is ``bd`` (bed) or ``ro`` (room) give the bed
      of the unit entry their period starts in.  ``planned`` and ``reserved`` entries are not
      presence and are skipped.
    - ``class`` (and ``classHistory`` when given) the patient class (:data:`ENCOUNTER_CLASSES`):
      an arrival as an inpatient is an A01, else an A04; a move into the inpatient class is an
      A01 (at the location it coincides with, else where the patient is).
    - ``status``: ``planned`` gives no events; ``arrived``, ``triaged``, ``in-progress`` and
      ``onleave`` the arrival and transfers; ``finished`` also an A03 at ``period.end``;
      ``cancelled`` and ``entered-in-error`` the events and a cancel (A13, A12, A11) of each,
      latest first, after ``meta.lastUpdated``, so a census that saw earlier versions drops the
      visit; ``unknown`` is rejected.
    - ``subject`` the patient (``Patient/<id>``); the visit is the ``identifier`` of type VN
      (table 0203 visit number) when there is one, else the Encounter's id; ``priority`` (as
      HL7 PV2-25 maps to it) the acuity; ``meta.lastUpdated`` the recorded time.

    Message ids are ``Encounter/<id>/_history/<versionId>#<n>`` (``#<n>`` numbers the events of
    that version).  An Encounter without a usable location gives no events: it says nothing
    about where the patient is.

    Raises
    ------
    FHIRValidationError
        The resource is not a valid Encounter, or lacks what the events need (id, subject,
        period.end when finished, a start time for each location); ``.outcome`` names the element.

    Examples
    --------
    >>> enc = {"resourceType": "Encounter", "id": "e1", "meta": {"versionId": "2"},
    ...        "status": "in-progress", "subject": {"reference": "Patient/p1"},
    ...        "class": {"system": "http://terminology.hl7.org/CodeSystem/v3-ActCode",
    ...                  "code": "EMER"},
    ...        "location": [
    ...            {"location": {"reference": "Location/ED"}, "status": "completed",
    ...             "period": {"start": "2026-01-05T08:00:00Z", "end": "2026-01-05T10:00:00Z"}},
    ...            {"location": {"reference": "Location/ICU"}, "status": "active",
    ...             "period": {"start": "2026-01-05T10:00:00Z"}}]}
    >>> [(e.message_id, e.event_type, e.unit, e.prior_unit) for e in events_from_encounter(enc)]
    [('Encounter/e1/_history/2#0', 'A04', 'ED', None), ('Encounter/e1/_history/2#1', 'A02', 'ICU', 'ED')]
    """
    if not isinstance(resource, Mapping) and hasattr(resource, "model_dump"):
        resource = resource.model_dump(mode="json", by_alias=True, exclude_none=True)
    if not isinstance(resource, Mapping):
        raise _reject(
            "", "", f"expected an Encounter (a dict or model), got {type(resource).__name__}"
        )
    enc = dict(resource)
    if enc.get("resourceType") != "Encounter":
        raise _reject(
            "",
            "resourceType",
            f"expected resourceType 'Encounter', got {enc.get('resourceType')!r}",
        )
    validate(enc)
    rid = enc.get("id")
    if not isinstance(rid, str):
        raise _reject("", "Encounter.id", "an id is required: message ids are built from it")
    status = enc.get("status")
    if status not in _STATUSES:
        raise _reject(rid, "Encounter.status", f"unknown status {status!r}", "code-invalid")
    if status == "unknown":
        raise _reject(
            rid, "Encounter.status", "status 'unknown' says nothing about where the patient is"
        )
    if status == "planned":
        return []
    patient_id = _reference_id(enc.get("subject"), "Patient")
    if patient_id is None:
        raise _reject(
            rid, "Encounter.subject", "a reference to the Patient (Patient/<id>) is required"
        )
    meta = enc.get("meta") or {}
    version = meta.get("versionId")
    base = f"Encounter/{rid}/_history/{version}" if version else f"Encounter/{rid}"
    recorded_at = (
        _time(meta["lastUpdated"], rid, "Encounter.meta.lastUpdated")
        if meta.get("lastUpdated")
        else None
    )
    visit_id = _visit_number(enc) or rid
    acuity = _code(enc.get("priority"))
    stays = _stays(enc, rid)
    if not stays:
        return []
    classes = _classes(enc, rid, stays[0].start)

    def class_at(when: datetime, *, before: bool = False) -> PatientClass:
        current = classes[0][1]
        for start, cls in classes:
            if start < when or (start == when and not before):
                current = cls
        return current

    drafts: list[dict[str, Any]] = []
    first = stays[0]
    arrival_class = class_at(first.start)
    drafts.append(
        dict(
            event_type="A01" if arrival_class == "I" else "A04",
            occurred_at=first.start,
            unit=first.unit,
            bed=first.bed,
            patient_class=arrival_class,
        )
    )
    for previous, stay in itertools.pairwise(stays):
        becomes_inpatient = class_at(stay.start) == "I" and class_at(stay.start, before=True) != "I"
        drafts.append(
            dict(
                event_type="A01" if becomes_inpatient else "A02",
                occurred_at=stay.start,
                unit=stay.unit,
                bed=stay.bed,
                prior_unit=previous.unit,
                prior_bed=previous.bed,
                patient_class=class_at(stay.start),
            )
        )
    starts = {s.start for s in stays}
    for start, cls in classes[1:]:
        if start in starts or start < first.start:
            continue
        here = [s for s in stays if s.start <= start][-1]
        kind = "A01" if cls == "I" and class_at(start, before=True) != "I" else "A08"
        drafts.append(
            dict(
                event_type=kind, occurred_at=start, unit=here.unit, bed=here.bed, patient_class=cls
            )
        )
    drafts.sort(key=lambda d: d["occurred_at"])
    if status == "finished" or status in _RETRACTED:
        end = _period(enc, rid).get("end")
        if end is None and status == "finished":
            raise _reject(rid, "Encounter.period.end", "is required when status is 'finished'")
        if end is not None:
            if end < drafts[-1]["occurred_at"]:
                raise _reject(rid, "Encounter.period.end", "is before the last location's start")
            last = stays[-1]
            drafts.append(
                dict(
                    event_type="A03",
                    occurred_at=end,
                    unit=last.unit,
                    bed=last.bed,
                    patient_class=class_at(end),
                )
            )
    if status in _RETRACTED:
        drafts += _cancels(drafts, recorded_at)
    return [
        ADTEvent(
            message_id=f"{base}#{n}",
            patient_id=patient_id,
            visit_id=visit_id,
            acuity=acuity,
            recorded_at=recorded_at,
            **draft,
        )
        for n, draft in enumerate(drafts)
    ]


def _cancels(drafts: list[dict[str, Any]], recorded_at: datetime | None) -> list[dict[str, Any]]:
    """A cancel of each event, latest first, one second apart after the visit's last event."""
    when = max(drafts[-1]["occurred_at"], recorded_at or drafts[-1]["occurred_at"])
    out: list[dict[str, Any]] = []
    for draft in reversed(drafts):
        kind = draft["event_type"]
        if kind == "A08":
            continue
        when += timedelta(seconds=1)
        if kind == "A03":
            out.append(
                dict(event_type="A13", occurred_at=when, unit=draft["unit"], bed=draft["bed"])
            )
        elif kind == "A02":
            out.append(
                dict(
                    event_type="A12",
                    occurred_at=when,
                    unit=draft["prior_unit"],
                    bed=draft["prior_bed"],
                    prior_unit=draft["unit"],
                    prior_bed=draft["bed"],
                )
            )
        else:
            out.append(
                dict(
                    event_type="A11",
                    occurred_at=when,
                    unit=draft["unit"],
                    bed=draft["bed"],
                    patient_class=draft["patient_class"],
                )
            )
    return out


def _reject(rid: str, where: str, message: str, code: str = "invalid") -> FHIRValidationError:
    what = f"Encounter/{rid}" if rid else "Encounter"
    located = f"{where}: " if where else ""
    return FHIRValidationError(
        f"{what} rejected: {located}{message}", operation_outcome([Issue(code, where, message)])
    )


def _time(value: Any, rid: str, where: str) -> datetime:
    text = value if isinstance(value, str) else ""
    if "T" not in text:
        raise _reject(rid, where, f"{value!r} has no time of day; an ADT event needs one")
    parsed = datetime.fromisoformat(text.replace("Z", "+00:00"))
    if parsed.tzinfo is None:
        raise _reject(rid, where, f"{value!r} has no UTC offset")
    return parsed.astimezone(UTC)


def _period(node: Mapping[str, Any], rid: str, where: str = "Encounter") -> dict[str, datetime]:
    period = node.get("period") or {}
    return {
        key: _time(period[key], rid, f"{where}.period.{key}")
        for key in ("start", "end")
        if period.get(key) is not None
    }


def _reference_id(ref: Any, kind: str) -> str | None:
    if not isinstance(ref, Mapping) or not isinstance(ref.get("reference"), str):
        return None
    match = _REFERENCE.fullmatch(ref["reference"])
    return match.group("id") if match is not None and match.group("type") == kind else None


def _code(concept: Any) -> str | None:
    if not isinstance(concept, Mapping):
        return None
    for coding in concept.get("coding") or ():
        if isinstance(coding, Mapping) and coding.get("code"):
            return str(coding["code"])
    text = concept.get("text")
    return str(text) if text else None


def _visit_number(enc: Mapping[str, Any]) -> str | None:
    for ident in enc.get("identifier") or ():
        for coding in (ident.get("type") or {}).get("coding") or ():
            if coding.get("code") == "VN" and coding.get("system", _VISIT_NUMBER) == _VISIT_NUMBER:
                value = ident.get("value")
                return str(value) if value else None
    return None


def _name(entry: Mapping[str, Any]) -> str | None:
    ref = entry.get("location") or {}
    found = _reference_id(ref, "Location")
    return found or (str(ref["display"]) if ref.get("display") else None)


def _stays(enc: Mapping[str, Any], rid: str) -> list[_Stay]:
    units: list[tuple[datetime | None, str, int]] = []
    beds: list[tuple[datetime, str]] = []
    entries = enc.get("location") or []
    for i, entry in enumerate(entries):
        where = f"Encounter.location[{i}]"
        if entry.get("status") in ("planned", "reserved"):
            continue
        name = _name(entry)
        if name is None:
            raise _reject(rid, f"{where}.location", "needs a Location reference or a display")
        start = _period(entry, rid, where).get("start")
        kind = _code(entry.get("physicalType"))
        if kind in ("bd", "ro"):
            if start is not None:
                beds.append((start, name))
            continue
        units.append((start, name, i))
    if len(units) == 1 and units[0][0] is None:
        start = _period(enc, rid).get("start")
        units[0] = (start, units[0][1], units[0][2])
    stays: list[_Stay] = []
    for start, name, i in units:
        if start is None:
            raise _reject(
                rid, f"Encounter.location[{i}].period.start", "is required to order the locations"
            )
        stays.append(_Stay(name, None, start))
    stays.sort(key=lambda s: s.start)
    out = []
    for k, stay in enumerate(stays):
        end = stays[k + 1].start if k + 1 < len(stays) else None
        inside = sorted(b for b in beds if b[0] >= stay.start and (end is None or b[0] < end))
        out.append(_Stay(stay.unit, inside[0][1] if inside else None, stay.start))
    return out


def _classes(
    enc: Mapping[str, Any], rid: str, arrival: datetime
) -> list[tuple[datetime, PatientClass]]:
    def patient_class(coding: Any, where: str) -> PatientClass:
        code = coding.get("code") if isinstance(coding, Mapping) else None
        if code not in ENCOUNTER_CLASSES:
            raise _reject(
                rid,
                where,
                f"class {code!r} is not a hospital presence medtwin reads "
                f"({', '.join(ENCOUNTER_CLASSES)})",
                "code-invalid",
            )
        return ENCOUNTER_CLASSES[code]

    current = patient_class(enc.get("class"), "Encounter.class")
    history = []
    for i, item in enumerate(enc.get("classHistory") or ()):
        where = f"Encounter.classHistory[{i}]"
        start = _period(item, rid, where).get("start")
        if start is not None:
            history.append((start, patient_class(item.get("class"), f"{where}.class")))
    history.sort(key=lambda h: h[0])
    if not history:
        return [(arrival, current)]
    if history[0][0] > arrival:
        history.insert(0, (arrival, history[0][1]))
    return history
