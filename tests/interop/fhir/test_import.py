from __future__ import annotations

from datetime import UTC, date, datetime

import pytest

from medtwin.errors import FHIRValidationError
from medtwin.interop.fhir import IMPORT_CODES, ImportResult, read_bundle, to_records
from medtwin.records import OBSERVATION_CODES, ConditionRecord, DeviceRecord, PatientRecord
from medtwin.units import glucose_to_mg_dl
from tests.interop.fhir.resources import (
    PATIENT_UUID,
    RXNORM,
    blood_pressure,
    cgm,
    condition,
    device,
    edited,
    insulin,
    metformin,
    patient,
    transaction_of_50,
    vital,
)


def _rejected(resource, reader=to_records):
    with pytest.raises(FHIRValidationError) as info:
        reader(resource)
    return info.value.outcome["issue"]


def _where(resource, reader=to_records):
    return [i["expression"][0] for i in _rejected(resource, reader)]


def test_import_codes_store_known_codes():
    for code in IMPORT_CODES.values():
        if code.kind == "observation":
            assert code.stored in OBSERVATION_CODES
    assert IMPORT_CODES["99504-3"].units == ("mg/dL",)


# --- Observations ---------------------------------------------------------------------------


def test_cgm_guide_example_mass():
    [r] = to_records(cgm()).observations
    assert (r.patient_id, r.code, r.value, r.unit, r.device_id, r.source_id) == (
        "patientExample",
        "99504-3",
        120.0,
        "mg/dL",
        "cgm-1",
        "fhir:Observation/cgmSensorReadingMassExample",
    )
    assert r.time == datetime(2024, 5, 2, 10, 15, tzinfo=UTC)


def test_cgm_mmol_converted_and_stored_as_99504_3():
    [r] = to_records(cgm(value=6.7, molar=True)).observations
    assert r.code == "99504-3" and r.unit == "mg/dL"
    assert r.value == pytest.approx(glucose_to_mg_dl(6.7, "mmol/L"))
    assert r.value == pytest.approx(120.70, abs=0.01)  # 6.7 mmol/L x 18.0156


def test_blood_pressure_panel_two_records():
    records = to_records(blood_pressure()).observations
    assert [(r.code, r.value, r.unit) for r in records] == [
        ("8480-6", 107.0, "mm[Hg]"),
        ("8462-4", 60.0, "mm[Hg]"),
    ]
    assert [r.source_id for r in records] == [
        "fhir:Observation/blood-pressure#8480-6",
        "fhir:Observation/blood-pressure#8462-4",
    ]
    assert {r.time for r in records} == {datetime(2024, 5, 2, 7, 30, tzinfo=UTC)}  # +02:00


def test_blood_pressure_panel_without_components():
    bad = edited(blood_pressure(), component=None)
    assert _where(bad) == ["Observation.component"]


@pytest.mark.parametrize(
    ("loinc", "value", "unit", "stored", "expected", "stored_unit"),
    [
        ("8867-4", 72, "/min", "8867-4", 72.0, "/min"),
        ("8867-4", 72, "{beats}/min", "8867-4", 72.0, "/min"),
        ("2708-6", 97, "%", "59408-5", 97.0, "%"),
        ("59408-5", 95, "%", "59408-5", 95.0, "%"),
        ("41950-7", 8042, "/(24.h)", "41950-7", 8042.0, "/(24.h)"),
        ("29463-7", 70.5, "kg", "29463-7", 70.5, "kg"),
        ("29463-7", 70500, "g", "29463-7", 70.5, "kg"),
        ("29463-7", 154, "[lb_av]", "29463-7", 69.85322498, "kg"),  # 154 x 0.45359237
    ],
)
def test_vital_signs_units(loinc, value, unit, stored, expected, stored_unit):
    [r] = to_records(vital("v1", loinc, value, unit)).observations
    assert (r.code, r.unit) == (stored, stored_unit)
    assert r.value == pytest.approx(expected)
    assert OBSERVATION_CODES[r.code].unit == r.unit


@pytest.mark.parametrize(
    ("loinc", "unit"),
    [("8867-4", "mg/dL"), ("29463-7", "[stone_av]"), ("2708-6", "1"), ("41950-7", "km")],
)
def test_unit_that_does_not_fit_the_code(loinc, unit):
    [issue] = _rejected(vital("v1", loinc, 1, unit))
    assert issue["expression"] == ["Observation.valueQuantity.code"]
    assert loinc in issue["diagnostics"]


def test_unit_system_and_number_checked():
    bad = cgm()
    bad["valueQuantity"]["system"] = "http://snomed.info/sct"
    assert _where(bad) == ["Observation.valueQuantity.system"]
    bad = cgm()
    bad["valueQuantity"]["value"] = "120"  # a decimal string fhir.resources lets through
    assert _where(bad) == ["Observation.valueQuantity.value"]


def test_carbohydrate_intake_is_an_event():
    result = to_records(vital("carbs-1", "9059-7", 45, "g"))
    assert result.observations == []
    [e] = result.events
    assert (e.kind, e.value, e.unit, e.source_id) == (
        "carbs",
        45.0,
        "g",
        "fhir:Observation/carbs-1",
    )


def test_unsupported_loinc_rejected_naming_code_and_listing_supported():
    other = cgm()
    other["code"]["coding"][0]["code"] = "2339-0"
    [issue] = _rejected(other)
    assert issue["expression"] == ["Observation.code.coding"]
    assert issue["code"] == "code-invalid"
    assert "2339-0" in issue["diagnostics"]
    assert all(code in issue["diagnostics"] for code in IMPORT_CODES)


def test_status_and_absent_values_set_aside_with_a_warning():
    result = to_records(edited(cgm(), status="entered-in-error"))
    assert result.n_records == 0
    [warning] = result.issues
    assert warning.severity == "warning" and warning.expression == "Observation.status"
    result = to_records(edited(cgm(), valueQuantity=None, dataAbsentReason={"text": "no signal"}))
    assert result.n_records == 0 and result.issues[0].expression == "Observation.dataAbsentReason"


def test_censored_value_kept_at_its_bound_with_a_warning():
    low = cgm(value=40)
    low["valueQuantity"]["comparator"] = "<"
    result = to_records(low)
    assert result.observations[0].value == 40.0
    assert result.issues[0].expression == "Observation.valueQuantity.comparator"


def test_value_types_other_than_quantity_rejected():
    assert _where(edited(cgm(), valueQuantity=None, valueString="120")) == [
        "Observation.valueString"
    ]


def test_times_need_an_offset_and_a_time_of_day():
    assert _where(edited(cgm(), effectiveDateTime="2024-05-02")) == [
        "Observation.effectiveDateTime"
    ]
    period = edited(
        cgm(), effectiveDateTime=None, effectivePeriod={"start": "2024-05-02T10:00:00Z"}
    )
    assert to_records(period).observations[0].time == datetime(2024, 5, 2, 10, tzinfo=UTC)
    instant = edited(cgm(), effectiveDateTime=None, effectiveInstant="2024-05-02T10:00:00.5+01:00")
    assert to_records(instant).observations[0].time == datetime(2024, 5, 2, 9, 0, 0, 500000, UTC)


# --- subjects -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("reference", "code"),
    [
        ("urn:uuid:7c9e6679-7425-40de-944b-e07fc1f90ae7", "not-found"),  # outside a Bundle
        ("https://ehr.example.org/fhir/Patient/p1", "not-supported"),  # another server
    ],
)
def test_subject_that_cannot_be_resolved(reference, code):
    [issue] = _rejected(edited(cgm(), subject={"reference": reference}))
    assert issue["expression"] == ["Observation.subject.reference"] and issue["code"] == code


def test_versioned_relative_reference():
    ref = edited(cgm(), subject={"reference": "Patient/p7/_history/2"})
    assert to_records(ref).observations[0].patient_id == "p7"


def test_contained_subject_rejected_clearly():
    bad = edited(cgm(), subject={"reference": "#p1"}, contained=[patient("p1")])
    [issue] = _rejected(bad)
    assert issue["expression"] == ["Observation.subject.reference"]
    assert "contained" in issue["diagnostics"]


# --- medication -----------------------------------------------------------------------------


@pytest.mark.parametrize("unit", ["U", "[iU]", "[IU]"])
def test_insulin_is_a_bolus_in_units(unit):
    [e] = to_records(insulin(units=4, code=unit)).events
    assert (e.kind, e.value, e.unit, e.source_id) == (
        "bolus",
        4.0,
        "U",
        "fhir:MedicationAdministration/bolus-1",
    )
    assert e.detail == {"medication": "insulin lispro", "rxnorm": "86009"}


def test_insulin_recognised_by_text_and_basal_rate():
    by_text = insulin()
    by_text["medicationCodeableConcept"] = {"text": "Insulin glargine 100 units/mL pen"}
    by_text["dosage"] = {
        "rateQuantity": {"value": 0.8, "system": "http://unitsofmeasure.org", "code": "U/h"}
    }
    [e] = to_records(by_text).events
    assert (e.kind, e.value, e.unit) == ("basal", 0.8, "U/h")


def test_insulin_from_a_contained_medication():
    ma = insulin()
    del ma["medicationCodeableConcept"]
    ma["contained"] = [
        {
            "resourceType": "Medication",
            "id": "med",
            "code": {"coding": [{"system": RXNORM, "code": "274783"}]},
        }
    ]
    ma["medicationReference"] = {"reference": "#med"}
    assert to_records(ma).events[0].kind == "bolus"


def test_insulin_in_other_units_rejected():
    bad = insulin()
    bad["dosage"]["dose"]["code"] = "mL"
    [issue] = _rejected(bad)
    assert issue["expression"] == ["MedicationAdministration.dosage.dose.code"]
    assert "'U'" in issue["diagnostics"]


@pytest.mark.parametrize(
    ("value", "unit", "mg"), [(0.5, "g", 500.0), (500, "mg", 500.0), (250, "ug", 0.25)]
)
def test_other_medication_in_mg(value, unit, mg):
    [e] = to_records(metformin(value=value, unit=unit)).events
    assert (e.kind, e.unit) == ("medication", "mg") and e.value == pytest.approx(mg)
    assert e.time == datetime(2024, 5, 2, 8, tzinfo=UTC)  # effectivePeriod.start


@pytest.mark.parametrize("unit", ["mL", "{tbl}", "mcg"])
def test_other_medication_in_non_mass_units_rejected(unit):
    [issue] = _rejected(metformin(value=1, unit=unit))
    assert issue["expression"] == ["MedicationAdministration.dosage.dose.code"]
    assert "mg" in issue["diagnostics"]


def test_not_given_is_set_aside():
    result = to_records(edited(insulin(), status="not-done"))
    assert result.events == [] and result.issues[0].expression == "MedicationAdministration.status"


# --- Patient, Condition, Device, other types ------------------------------------------------


def test_patient_condition_device():
    assert to_records(patient()).patients == [
        PatientRecord(
            "patientExample",
            "http://example.org|ee8d4ac0-545c-4501-8d7e-646bfbda1db5",
            "Amy Peters",
            date(1964, 6, 20),
            "female",
            "fhir:Patient/patientExample",
        )
    ]
    assert to_records(condition()).conditions == [
        ConditionRecord(
            "patientExample",
            "http://snomed.info/sct",
            "46635009",
            "Diabetes mellitus type 1",
            date(1980, 3, 1),
            "fhir:Condition/t1d",
        )
    ]
    assert to_records(device()).devices == [
        DeviceRecord(
            "cgm-1",
            "patientExample",
            "Continuous glucose monitoring system",
            "Dexcom",
            "G7",
            "fhir:Device/cgm-1",
        )
    ]


def test_partial_dates_kept_out_with_a_warning():
    result = to_records(edited(patient(), birthDate="1964"))
    assert result.patients[0].birth_date is None
    assert result.issues[0].expression == "Patient.birthDate"


def test_refuted_condition_set_aside_and_uncoded_rejected():
    refuted = condition()
    refuted["verificationStatus"]["coding"][0]["code"] = "refuted"
    assert to_records(refuted).conditions == []
    assert _where(edited(condition(), code={"text": "diabetes"})) == ["Condition.code.coding"]


def test_other_resource_types_and_missing_ids_rejected():
    encounter = {
        "resourceType": "Encounter",
        "id": "e1",
        "status": "finished",
        "class": {"code": "AMB"},
    }
    [issue] = _rejected(encounter)
    assert issue["code"] == "not-supported" and "Observation" in issue["diagnostics"]
    assert _where(edited(cgm(), id=None)) == ["Observation.id"]


def test_invalid_resources_are_rejected_before_translation():
    assert _where(edited(cgm(), status="done")) == ["Observation.status"]


# --- Bundles --------------------------------------------------------------------------------


def test_transaction_of_50_mixed_entries():
    result = read_bundle(transaction_of_50())
    pid = PATIENT_UUID.removeprefix("urn:uuid:")
    assert isinstance(result, ImportResult) and result.entry_outcomes == []
    assert [p.id for p in result.patients] == [pid]
    assert result.patients[0].source_id == PATIENT_UUID  # no id: its fullUrl
    assert (
        len(result.observations),
        len(result.events),
        len(result.conditions),
        len(result.devices),
    ) == (42, 5, 2, 1)
    assert result.n_records == 51  # 50 entries, the blood-pressure panel gives two
    records = [*result.observations, *result.events, *result.conditions]
    assert {r.patient_id for r in records} == {pid}
    assert result.devices[0].patient_id == pid
    assert sorted({r.code for r in result.observations}) == sorted(
        {"99504-3", "8480-6", "8462-4", "8867-4", "59408-5", "41950-7", "29463-7"}
    )
    assert sorted(e.kind for e in result.events) == [
        "bolus",
        "bolus",
        "bolus",
        "carbs",
        "medication",
    ]
    assert len({r.source_id for r in records}) == len(records)


def test_transaction_resolves_to_the_patients_own_id():
    tx = transaction_of_50()
    tx["entry"][0]["resource"]["id"] = "amy"
    result = read_bundle(tx)
    assert {r.patient_id for r in result.observations} == {"amy"}
    assert result.patients[0].source_id == "fhir:Patient/amy"


def test_transaction_is_all_or_nothing_with_every_problem_listed():
    tx = transaction_of_50()
    tx["entry"][5]["resource"]["status"] = "done"  # unknown status
    tx["entry"][9]["resource"]["valueQuantity"]["code"] = "mmol/L"  # unit does not fit 99504-3
    tx["entry"][12]["resource"]["subject"] = {
        "reference": "urn:uuid:00000000-0000-0000-0000-000000000000"
    }
    tx["entry"][20]["resource"]["code"]["coding"][0]["code"] = "2339-0"  # not imported
    issues = _rejected(tx, read_bundle)
    assert [i["expression"][0] for i in issues] == [
        "Bundle.entry[5].resource.status",
        "Bundle.entry[9].resource.valueQuantity.code",
        "Bundle.entry[12].resource.subject.reference",
        "Bundle.entry[20].resource.code.coding",
    ]
    assert issues[2]["code"] == "not-found" and "unknown reference" in issues[2]["diagnostics"]


def test_reference_to_a_non_patient_entry():
    tx = transaction_of_50()
    tx["entry"][4]["resource"]["subject"] = {"reference": tx["entry"][1]["fullUrl"]}  # the Device
    [issue] = _rejected(tx, read_bundle)
    assert issue["expression"] == ["Bundle.entry[4].resource.subject.reference"]
    assert "Device" in issue["diagnostics"]


def test_batch_gives_per_entry_outcomes_and_keeps_good_entries():
    batch = transaction_of_50()
    batch["type"] = "batch"
    batch["entry"][3]["resource"]["status"] = "done"
    batch["entry"][4]["request"] = {"method": "DELETE", "url": "Observation/g2"}
    result = read_bundle(batch)
    outcomes = dict(result.entry_outcomes)
    assert sorted(outcomes) == list(range(50))
    assert [i for i, o in outcomes.items() if o is not None] == [3, 4]
    assert outcomes[3]["issue"][0]["expression"] == ["Bundle.entry[3].resource.status"]
    assert outcomes[4]["issue"][0]["expression"] == ["Bundle.entry[4].request.method"]
    assert len(result.observations) == 40 and "fhir:Observation/g1" not in {
        r.source_id for r in result.observations
    }


def test_batch_entries_about_a_rejected_patient_are_rejected_with_it():
    batch = transaction_of_50()
    batch["type"] = "batch"
    batch["entry"][0]["resource"]["gender"] = "f"
    result = read_bundle(batch)
    assert result.n_records == 0  # everything here is about the new patient (or its Device)
    outcome = dict(result.entry_outcomes)[7]
    assert outcome["issue"][0]["code"] == "not-found"
    assert "rejected" in outcome["issue"][0]["diagnostics"]


def test_put_ids_and_collections():
    bundle = {
        "resourceType": "Bundle",
        "type": "transaction",
        "entry": [
            {
                "resource": edited(cgm(), id=None),
                "request": {"method": "PUT", "url": "Observation/g7"},
            },
        ],
    }
    assert read_bundle(bundle).observations[0].source_id == "fhir:Observation/g7"
    bundle["entry"][0]["request"]["url"] = "Observation?identifier=x"
    assert _where(bundle, read_bundle) == ["Bundle.entry[0].request.url"]
    collection = {
        "resourceType": "Bundle",
        "type": "collection",
        "entry": [{"resource": cgm()}, {"resource": patient()}],
    }
    assert to_records(collection).n_records == 2  # to_records passes Bundles to read_bundle


@pytest.mark.parametrize("kind", ["document", "history", "transaction-response"])
def test_other_bundle_types_rejected(kind):
    bundle = {"resourceType": "Bundle", "type": kind, "entry": [{"resource": cgm()}]}
    issues = _rejected(bundle, read_bundle)
    assert "Bundle.type" in [i["expression"][0] for i in issues]


def test_not_a_bundle():
    assert _where(cgm(), read_bundle) == ["resourceType"]


def test_device_and_absolute_full_urls_resolve_inside_the_bundle():
    tx = transaction_of_50()
    tx["entry"][2]["resource"]["device"] = {"reference": tx["entry"][1]["fullUrl"]}
    tx["entry"][0]["fullUrl"] = "https://ehr.example.org/fhir/Patient/amy"
    tx["entry"][0]["resource"]["id"] = "amy"
    for entry in tx["entry"][1:]:
        for key in ("subject", "patient"):
            if key in entry["resource"]:
                entry["resource"][key] = {"reference": "https://ehr.example.org/fhir/Patient/amy"}
    result = read_bundle(tx)
    assert result.observations[0].device_id == "cgm-9"
    assert {r.patient_id for r in [*result.observations, *result.events]} == {"amy"}
