from __future__ import annotations

import pytest

from medtwin.errors import DataFormatError, FHIRValidationError
from medtwin.interop.fhir import operation_outcome, validate
from medtwin.interop.fhir._invariants import INVARIANTS, holds
from tests.interop.fhir.resources import (
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


def _issues(resource):
    with pytest.raises(FHIRValidationError) as info:
        validate(resource)
    outcome = info.value.outcome
    assert outcome is not None and outcome["resourceType"] == "OperationOutcome"
    assert validate(operation_outcome(outcome["issue"])) is not None  # the outcome is valid FHIR
    return outcome["issue"]


def _expressions(resource):
    return [i["expression"][0] for i in _issues(resource)]


def _risk(probability):
    return {
        "resourceType": "RiskAssessment",
        "status": "final",
        "subject": {"reference": "Patient/p1"},
        "prediction": [
            {"outcome": {"text": "hypoglycaemia"}, "probabilityDecimal": 0.2},
            {"outcome": {"text": "hypoglycaemia"}, "probabilityDecimal": probability},
        ],
    }


@pytest.mark.parametrize(
    "resource",
    [
        patient(),
        cgm(),
        cgm(molar=True, value=6.7),
        blood_pressure(),
        insulin(),
        metformin(),
        condition(),
        device(),
        vital("hr", "8867-4", 72, "/min"),
        transaction_of_50(),
        _risk(0.5),
    ],
)
def test_realistic_resources_are_valid_and_returned_unchanged(resource):
    before = repr(resource)
    assert validate(resource) is resource
    assert repr(resource) == before


def test_unsupported_loinc_is_valid_fhir():
    other = cgm()
    other["code"]["coding"][0]["code"] = "2339-0"  # glucose in blood: valid FHIR, not imported
    assert validate(other) is other


# --- layer 1: structure and types ----------------------------------------------------------


def test_structure_errors_name_each_element_and_all_are_listed():
    bad = edited(cgm(), status=5, foo=1)
    bad["valueQuantity"]["value"] = "abc"
    issues = _issues(bad)
    assert [(i["code"], i["expression"][0]) for i in issues] == [
        ("structure", "Observation.status"),
        ("value", "Observation.valueQuantity.value"),
        ("structure", "Observation.foo"),
    ]
    assert all(i["severity"] == "error" and i["diagnostics"] for i in issues)


def test_nested_lists_and_missing_elements():
    bad = blood_pressure()
    bad["component"][1]["valueQuantity"]["value"] = "high"
    del bad["status"]
    assert _expressions(bad) == [
        "Observation.status",
        "Observation.component[1].valueQuantity.value",
    ]
    assert _issues(bad)[0]["code"] == "required"


def test_choice_types_named_with_x():
    issues = _issues(edited(cgm(), valueString="120"))
    assert issues[0]["expression"] == ["Observation.value[x]"]
    assert "valueQuantity, valueString" in issues[0]["diagnostics"]
    issues = _issues(edited(insulin(), medicationCodeableConcept=None))
    assert issues[0]["expression"] == ["MedicationAdministration.medication[x]"]
    assert issues[0]["code"] == "required"


def test_not_a_resource():
    assert _expressions({"resourceType": "Spaceship"}) == ["resourceType"]
    assert _expressions({"status": "final"}) == ["resourceType"]
    with pytest.raises(FHIRValidationError, match="expected a FHIR resource"):
        validate([cgm()])  # type: ignore[arg-type]
    with pytest.raises(DataFormatError):  # FHIRValidationError is a DataFormatError
        validate({"resourceType": "Observation", "contained": [{"resourceType": "Spaceship"}]})


# --- layer 2: FHIRPath invariants ----------------------------------------------------------


def test_obs6_data_absent_reason_with_a_value():
    issues = _issues(edited(cgm(), dataAbsentReason={"text": "sensor error"}))
    assert issues[0]["expression"] == ["Observation.dataAbsentReason"]
    assert issues[0]["diagnostics"].startswith("obs-6")


def test_obs7_component_repeats_the_code():
    bad = blood_pressure()
    bad["valueQuantity"] = {"value": 1, "system": "http://unitsofmeasure.org", "code": "1"}
    bad["component"][0]["code"] = bad["code"]
    assert "Observation.component" in _expressions(bad)


def test_medtwin_rules_effective_subject():
    assert _expressions(edited(cgm(), effectiveDateTime=None)) == ["Observation.effective[x]"]
    assert _expressions(edited(cgm(), subject=None)) == ["Observation.subject"]
    for ref in ("Group/g1", "#p1", "Device/cgm-1"):
        bad = edited(cgm(), subject={"reference": ref})
        assert _expressions(bad) == ["Observation.subject.reference"], ref
    assert _expressions(edited(condition(), subject={"display": "Amy"})) == ["Condition.subject"]
    for ref in (
        "Patient/p1",
        "https://ehr.example.org/fhir/Patient/p1/_history/3",
        "urn:uuid:7c9e6679-7425-40de-944b-e07fc1f90ae7",
    ):
        validate(edited(cgm(), subject={"reference": ref}))


def test_cgm_unit_must_match_code():
    bad = cgm()
    bad["valueQuantity"]["code"] = "mmol/L"
    [issue] = _issues(bad)
    assert issue["expression"] == ["Observation.valueQuantity.code"]
    assert issue["code"] == "value" and "99504-3" in issue["diagnostics"]
    assert "'mg/dL'" in issue["diagnostics"]
    bad = blood_pressure()
    bad["component"][1]["valueQuantity"]["code"] = "mmHg"
    assert _expressions(bad) == ["Observation.component[1].valueQuantity.code"]


@pytest.mark.parametrize(
    ("probability", "keys"),
    [
        (1.5, ["medtwin-ras-probability"]),
        (150, ["ras-2", "medtwin-ras-probability"]),
        (-0.1, ["medtwin-ras-probability"]),
    ],
)
def test_risk_probability_outside_0_1(probability, keys):
    issues = _issues(_risk(probability))
    assert [i["expression"] for i in issues] == [
        ["RiskAssessment.prediction[1].probabilityDecimal"]
    ] * len(keys)
    assert [i["diagnostics"].split(":")[0] for i in issues] == keys
    assert all(i["code"] == "value" for i in issues)


def test_bundle_invariants_name_the_entry():
    tx = transaction_of_50()
    del tx["entry"][3]["request"]
    tx["entry"][7]["fullUrl"] = tx["entry"][8]["fullUrl"]
    tx["total"] = 50
    assert _expressions(tx) == [
        "Bundle.total",
        "Bundle.entry[3].request",
        "Bundle.entry.fullUrl",
    ]


def test_memoised_invariants_agree_with_fresh_evaluation():
    # The cache keys on the inputs each invariant declares it reads; if a declaration missed an
    # input, some resource below would get a cached verdict that a fresh evaluation contradicts.
    variants = [
        patient(),
        cgm(),
        cgm(molar=True),
        blood_pressure(),
        insulin(),
        metformin(),
        condition(),
        device(),
        _risk(0.5),
        _risk(1.5),
        _risk(150),
        transaction_of_50(),
        edited(cgm(), dataAbsentReason={"text": "x"}),
        edited(cgm(), effectiveDateTime=None),
        edited(cgm(), subject={"reference": "#p"}),
        edited(cgm(), subject=None),
        edited(cgm(), valueQuantity=None),
        edited(blood_pressure(), valueQuantity={"value": 1}),
        edited(condition(), abatementDateTime="2020-01-01"),
        edited(patient(), contact=[{"gender": "male"}, {"name": {"text": "Bo"}}]),
        edited(transaction_of_50(), type="collection", total=3),
    ]
    bp = blood_pressure()
    bp["component"][0]["code"] = bp["code"]
    variants.append(edited(bp, valueQuantity={"value": 1}))
    unit = cgm()
    unit["valueQuantity"]["code"] = "mmol/L"
    variants.append(unit)
    checked = 0
    for resource in variants * 2:  # the second pass reads the cache
        for inv in INVARIANTS.get(resource["resourceType"], ()):
            items = [resource] if not inv.context else resource.get(inv.context) or []
            for item in items if isinstance(items, list) else [items]:
                fresh = holds(inv, item, resource, memo=False)
                assert holds(inv, item, resource) == fresh, (inv.key, resource.get("id"))
                checked += not fresh
    assert checked >= 2 * 14  # the variants do break invariants


# --- layer 3: required code sets -----------------------------------------------------------


@pytest.mark.parametrize(
    ("resource", "element"),
    [
        (edited(cgm(), status="done"), "Observation.status"),
        (edited(_risk(0.1), status="done"), "RiskAssessment.status"),
        (edited(insulin(), status="given"), "MedicationAdministration.status"),
        (edited(device(), status="on"), "Device.status"),
        (edited(patient(), gender="F"), "Patient.gender"),
    ],
)
def test_unknown_status_and_codes_rejected_naming_the_element(resource, element):
    [issue] = _issues(resource)
    assert issue["expression"] == [element] and issue["code"] == "code-invalid"
    assert "allows" in issue["diagnostics"]


def test_condition_status_codings():
    bad = condition()
    bad["clinicalStatus"]["coding"][0]["code"] = "ongoing"
    bad["verificationStatus"]["coding"][0]["system"] = "http://snomed.info/sct"
    assert _expressions(bad) == [
        "Condition.clinicalStatus.coding[0].code",
        "Condition.verificationStatus.coding",
    ]


def test_bundle_codes_in_entries():
    tx = transaction_of_50()
    tx["entry"][3]["request"]["method"] = "UPSERT"
    tx["entry"][5]["resource"]["status"] = "done"
    assert _expressions(tx) == [
        "Bundle.entry[3].request.method",
        "Bundle.entry[5].resource.status",
    ]
    assert _expressions(edited(tx, type="bag"))[0] == "Bundle.type"


def test_comparator_code_set():
    bad = cgm()
    bad["valueQuantity"]["comparator"] = "~"
    assert _expressions(bad) == ["Observation.valueQuantity.comparator"]


def test_all_layers_reported_together():
    tx = transaction_of_50()
    tx["entry"][1]["resource"]["status"] = "on"  # the Device: code set
    tx["entry"][2]["resource"]["valueQuantity"]["value"] = "x"  # structure
    tx["entry"][3]["resource"]["dataAbsentReason"] = {"text": "?"}  # invariant
    expressions = _expressions(tx)
    assert expressions == [
        "Bundle.entry[1].resource.status",
        "Bundle.entry[2].resource.valueQuantity.value",
        "Bundle.entry[3].resource.dataAbsentReason",
    ]


def test_message_names_first_problem_and_counts_the_rest():
    with pytest.raises(FHIRValidationError, match=r"Observation\.status: .*\(and 1 more problem"):
        validate(edited(cgm(), status="done", effectiveDateTime=None))
