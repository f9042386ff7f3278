from __future__ import annotations

import copy
from datetime import UTC, datetime

import pytest

from medtwin.errors import FHIRValidationError
from medtwin.hospital.census import Census
from medtwin.hospital.eventlog import stays_from_events
from medtwin.interop.hl7v2 import events_from_encounter

ACT = "http://terminology.hl7.org/CodeSystem/v3-ActCode"
LOC_TYPE = "http://terminology.hl7.org/CodeSystem/location-physical-type"


def t(hour: int, day: int = 5) -> str:
    return f"2026-01-{day:02d}T{hour:02d}:00:00+01:00"


def utc(hour: int, day: int = 5) -> datetime:
    return datetime(2026, 1, day, hour - 1, tzinfo=UTC)


def place(ref: str, start: str, end: str | None = None, *, status: str | None = None, kind=None):
    entry = {"location": {"reference": f"Location/{ref}"}, "period": {"start": start}}
    if end:
        entry["period"]["end"] = end
    entry["status"] = status or ("completed" if end else "active")
    if kind:
        entry["physicalType"] = {"coding": [{"system": LOC_TYPE, "code": kind}]}
    return entry


def encounter(version: int, status: str, cls: str, locations, **more):
    enc = {
        "resourceType": "Encounter",
        "id": "enc-1",
        "meta": {"versionId": str(version), "lastUpdated": "2026-01-09T12:00:00Z"},
        "identifier": [
            {
                "type": {
                    "coding": [
                        {"system": "http://terminology.hl7.org/CodeSystem/v2-0203", "code": "VN"}
                    ]
                },
                "value": "V77",
            }
        ],
        "status": status,
        "class": {"system": ACT, "code": cls},
        "subject": {"reference": "Patient/p9"},
        "priority": {"coding": [{"system": "http://example.org/esi", "code": "2"}]},
        "period": {"start": t(8)},
        "location": locations,
    }
    enc.update(more)
    return enc


ED = place("ED", t(8), t(13))
WARD = place("MED", t(13), t(10, day=8))
CLASS_HISTORY = [
    {"class": {"system": ACT, "code": "EMER"}, "period": {"start": t(8), "end": t(13)}},
    {"class": {"system": ACT, "code": "IMP"}, "period": {"start": t(13)}},
]
V1 = encounter(1, "in-progress", "EMER", [place("ED", t(8))])
V2 = encounter(2, "in-progress", "IMP", [ED, place("MED", t(13))], classHistory=CLASS_HISTORY)
V3 = encounter(
    3,
    "finished",
    "IMP",
    [ED, WARD, place("MED-12", t(13), t(10, day=8), kind="bd")],
    classHistory=CLASS_HISTORY,
    period={"start": t(8), "end": t(10, day=8)},
)


def test_one_version_gives_the_events_that_lead_to_it():
    events = events_from_encounter(V3)
    assert [
        (e.message_id, e.event_type, e.occurred_at, e.unit, e.bed, e.prior_unit, e.patient_class)
        for e in events
    ] == [
        ("Encounter/enc-1/_history/3#0", "A04", utc(8), "ED", None, None, "E"),
        ("Encounter/enc-1/_history/3#1", "A01", utc(13), "MED", "MED-12", "ED", "I"),
        ("Encounter/enc-1/_history/3#2", "A03", utc(10, day=8), "MED", "MED-12", None, "I"),
    ]
    assert {(e.patient_id, e.visit_id, e.acuity) for e in events} == {("p9", "V77", "2")}
    assert events[0].recorded_at == datetime(2026, 1, 9, 12, tzinfo=UTC)


def test_every_version_or_only_the_last_leave_the_same_census():
    all_versions = Census()
    for version in (V1, V2, V3):
        for event in events_from_encounter(version):
            all_versions.apply(event)
    last_only = Census.from_events(events_from_encounter(V3))
    # v2 and v3 repeat the arrival; v3's admission has a bed v2's had not, so it is new
    assert all_versions.n_duplicates == 2
    assert all_versions.timeline("V77") == last_only.timeline("V77")
    assert len(all_versions) == 0  # discharged
    mid = Census.from_events(events_from_encounter(V1) + events_from_encounter(V2))
    assert mid.occupants["V77"].unit == "MED" and mid.occupants["V77"].unit_since == utc(13)
    stays = stays_from_events(events_from_encounter(V3))
    assert stays[["unit", "los_hours", "exit"]].values.tolist() == [
        ["ED", 5.0, "transfer"],
        ["MED", 69.0, "discharge"],
    ]


def test_without_class_history_a_move_is_a_transfer():
    enc = encounter(2, "in-progress", "EMER", [ED, place("ICU", t(13))])
    assert [(e.event_type, e.unit, e.prior_unit) for e in events_from_encounter(enc)] == [
        ("A04", "ED", None),
        ("A02", "ICU", "ED"),
    ]


@pytest.mark.parametrize("status", ["cancelled", "entered-in-error"])
def test_retracted_encounters_cancel_everything(status):
    census = Census()
    for version in (V1, V2):
        for event in events_from_encounter(version):
            census.apply(event)
    assert "V77" in census
    retracted = copy.deepcopy(V2)
    retracted["meta"]["versionId"] = "3"
    retracted["status"] = status
    events = events_from_encounter(retracted)
    assert [e.event_type for e in events] == ["A04", "A01", "A11", "A11"]
    for event in events:
        census.apply(event)
    assert "V77" not in census and census.issues == []


def test_planned_and_locationless_encounters_give_no_events():
    assert events_from_encounter(encounter(1, "planned", "IMP", [place("MED", t(13))])) == []
    assert events_from_encounter(encounter(1, "in-progress", "AMB", [])) == []
    planned_bed = [place("ED", t(8)), place("MED", t(13), status="planned")]
    assert len(events_from_encounter(encounter(1, "arrived", "EMER", planned_bed))) == 1


def test_a_fhir_resources_model_is_accepted():
    from fhir.resources.R4B.encounter import Encounter

    model = Encounter.model_validate(V3)
    assert events_from_encounter(model) == events_from_encounter(V3)


def test_visit_defaults_to_the_encounter_id():
    enc = encounter(1, "arrived", "EMER", [place("ED", t(8))])
    del enc["identifier"], enc["meta"]
    [event] = events_from_encounter(enc)
    assert (event.visit_id, event.message_id) == ("enc-1", "Encounter/enc-1#0")


@pytest.mark.parametrize(
    ("change", "where", "reason"),
    [
        ({"status": "unknown"}, "Encounter.status", "says nothing"),
        ({"status": "bogus"}, "Encounter.status", "unknown status 'bogus'"),
        ({"class": {"system": ACT, "code": "HH"}}, "Encounter.class", "'HH' is not a hospital"),
        ({"class": "EMER"}, "Encounter.class", "wrong JSON type"),
        ({"subject": {"reference": "Group/g1"}}, "Encounter.subject", "reference to the Patient"),
        ({"id": None}, "Encounter.id", "an id is required"),
        ({"status": "finished"}, "Encounter.period.end", "required when status is 'finished'"),
        (
            {"location": [{"location": {"reference": "Location/ED"}, "status": "active"}, WARD]},
            "Encounter.location[0].period.start",
            "required to order",
        ),
        (
            {"location": [{"location": {"display": "ED"}, "period": {"start": "2026-01-05"}}]},
            "Encounter.location[0].period.start",
            "no time of day",
        ),
        ({"resourceType": "Observation"}, "resourceType", "expected resourceType 'Encounter'"),
    ],
)
def test_bad_encounters_are_rejected_naming_the_element(change, where, reason):
    enc = {**V2, **change}
    enc = {k: v for k, v in enc.items() if v is not None}
    with pytest.raises(FHIRValidationError, match=reason) as info:
        events_from_encounter(enc)
    expressions = [e for i in info.value.outcome["issue"] for e in i.get("expression", [])]
    assert where in expressions
