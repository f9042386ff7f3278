from __future__ import annotations

import copy
import json
from datetime import date

import pytest

from medtwin.errors import DataFormatError
from medtwin.records import PatientRecord
from medtwin.security import Keyring, deidentify_fhir, deidentify_patient, pseudonym

KEY = Keyring.from_bytes(bytes(range(32))).pseudonym_key
AS_OF = date(2026, 6, 1)
JANE = PatientRecord(
    "p1", "urn:mrn|12345", "Jane Doe", date(1980, 5, 17), "female", "fhir:Patient/p1"
)
PHI = ("Jane", "Doe", "12345", "1980-05-17", "555-0100", "Elm Street", 'p1"')

FHIR_PATIENT = {
    "resourceType": "Patient",
    "id": "p1",
    "meta": {"versionId": "1"},
    "text": {"status": "generated", "div": "<div>Jane Doe, MRN 12345</div>"},
    "extension": [
        {
            "url": "http://hl7.org/fhir/StructureDefinition/patient-birthPlace",
            "valueAddress": {"city": "Springfield"},
        }
    ],
    "identifier": [{"system": "urn:mrn", "value": "12345"}],
    "active": True,
    "name": [{"family": "Doe", "given": ["Jane"]}],
    "telecom": [{"system": "phone", "value": "555-0100"}],
    "gender": "female",
    "birthDate": "1980-05-17",
    "deceasedDateTime": "2025-02-03T04:05:06Z",
    "address": [{"line": ["1 Elm Street"], "city": "Springfield"}],
    "contact": [{"name": {"family": "Doe"}}],
    "photo": [{"url": "http://x/jane.png"}],
    "generalPractitioner": [{"reference": "Practitioner/dr1", "display": "Dr Who"}],
    "link": [{"other": {"reference": "Patient/p0"}, "type": "seealso"}],
}


def _dump(obj) -> str:
    return json.dumps(obj)


def test_deidentify_patient():
    view = deidentify_patient(JANE, KEY, as_of=AS_OF)
    assert view == {
        "pseudonym": pseudonym(KEY, "p1"),
        "birth_year": 1980,
        "age_90_or_older": False,
        "sex": "female",
    }
    assert not any(s in _dump(view) for s in PHI)


@pytest.mark.parametrize(
    ("born", "year", "old"),
    [
        (date(1937, 1, 1), 1937, False),  # 89 all of 2026
        (date(1936, 12, 31), None, True),  # turns 90 in 2026: the year would say "89 or 90"
        (date(1936, 1, 1), None, True),
        (date(1900, 1, 1), None, True),
        (date(2026, 5, 1), 2026, False),
    ],
)
def test_ages_over_89_are_collapsed(born, year, old):
    view = deidentify_patient(PatientRecord("p1", birth_date=born, sex="male"), KEY, as_of=AS_OF)
    assert view["birth_year"] == year and view["age_90_or_older"] is old
    assert str(born.year) not in _dump(view) or not old


def test_unknown_birth_date():
    view = deidentify_patient(PatientRecord("p1"), KEY)
    assert view["birth_year"] is None and view["age_90_or_older"] is None and view["sex"] is None


def test_deidentify_patient_rejects_other_types():
    with pytest.raises(DataFormatError):
        deidentify_patient({"id": "p1"}, KEY)  # type: ignore[arg-type]


def test_fhir_patient_is_stripped():
    original = copy.deepcopy(FHIR_PATIENT)
    out = deidentify_fhir(FHIR_PATIENT, KEY, as_of=AS_OF)
    assert original == FHIR_PATIENT  # the input is not modified
    assert out == {
        "resourceType": "Patient",
        "id": pseudonym(KEY, "p1"),
        "meta": {"versionId": "1"},
        "active": True,
        "gender": "female",
        "birthDate": "1980",
        "deceasedBoolean": True,
    }


def test_fhir_patient_and_record_share_the_pseudonym():
    out = deidentify_fhir(FHIR_PATIENT, KEY, as_of=AS_OF)
    assert out["id"] == deidentify_patient(JANE, KEY, as_of=AS_OF)["pseudonym"]


def test_fhir_patient_over_89_loses_the_birth_year():
    out = deidentify_fhir(FHIR_PATIENT | {"birthDate": "1930-02"}, KEY, as_of=AS_OF)
    assert "birthDate" not in out


@pytest.mark.parametrize(
    "ref",
    [
        "Patient/p1",
        "https://ehr.example.org/fhir/Patient/p1",
        "Patient/p1/_history/3",
    ],
)
def test_subject_reference_is_pseudonymised(ref):
    obs = {
        "resourceType": "Observation",
        "id": "o1",
        "status": "final",
        "text": {"status": "generated", "div": "<div>Jane Doe</div>"},
        "subject": {"reference": ref, "display": "Jane Doe", "identifier": {"value": "12345"}},
        "valueQuantity": {"value": 112, "unit": "mg/dL"},
    }
    out = deidentify_fhir(obs, KEY)
    assert out["subject"] == {"reference": f"Patient/{pseudonym(KEY, 'p1')}"}
    assert "text" not in out and out["valueQuantity"] == obs["valueQuantity"]
    assert not any(s in _dump(out) for s in ("Jane", "12345", "/p1"))


def test_patient_reference_element_and_logical_reference():
    device = {"resourceType": "Device", "id": "d1", "patient": {"reference": "Patient/p1"}}
    assert deidentify_fhir(device, KEY)["patient"]["reference"] == f"Patient/{pseudonym(KEY, 'p1')}"
    cond = {
        "resourceType": "Condition",
        "subject": {
            "type": "Patient",
            "identifier": {"system": "urn:mrn", "value": "12345"},
            "display": "Jane Doe",
        },
    }
    assert deidentify_fhir(cond, KEY)["subject"] == {"type": "Patient"}


def test_other_references_are_kept():
    obs = {
        "resourceType": "Observation",
        "device": {"reference": "Device/cgm-7"},
        "subject": {"reference": "Group/g1"},
    }
    assert deidentify_fhir(obs, KEY) == obs


def test_bundle_entries_and_contained_resources():
    bundle = {
        "resourceType": "Bundle",
        "type": "collection",
        "entry": [
            {"fullUrl": "https://ehr.example.org/fhir/Patient/p1", "resource": FHIR_PATIENT},
            {
                "fullUrl": "urn:uuid:0b1c",
                "resource": {
                    "resourceType": "Observation",
                    "text": {"div": "<div>Jane</div>"},
                    "contained": [dict(FHIR_PATIENT, id="c1")],
                    "subject": {"reference": "Patient/p1"},
                },
            },
        ],
    }
    out = deidentify_fhir(bundle, KEY, as_of=AS_OF)
    text = _dump(out)
    assert not any(s in text for s in PHI)
    assert out["entry"][0]["fullUrl"] == f"Patient/{pseudonym(KEY, 'p1')}"
    assert out["entry"][1]["fullUrl"] == "urn:uuid:0b1c"
    assert out["entry"][0]["resource"]["id"] == pseudonym(KEY, "p1")
    assert "name" not in out["entry"][1]["resource"]["contained"][0]


def test_other_key_other_pseudonym():
    other = Keyring.from_bytes(bytes(32)).pseudonym_key
    a = deidentify_fhir(FHIR_PATIENT, KEY)["id"]
    assert a != deidentify_fhir(FHIR_PATIENT, other)["id"]


@pytest.mark.parametrize("bad", [{}, {"resourceType": 3}, [], "Patient"])
def test_not_a_resource(bad):
    with pytest.raises(DataFormatError):
        deidentify_fhir(bad, KEY)  # type: ignore[arg-type]
