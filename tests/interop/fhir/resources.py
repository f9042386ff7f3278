"""Realistic FHIR R4 resources for the tests: the HL7 CGM guide's examples, vital signs, doses."""

from __future__ import annotations

import copy
import uuid
from typing import Any

LOINC = "http://loinc.org"
UCUM = "http://unitsofmeasure.org"
RXNORM = "http://www.nlm.nih.gov/research/umls/rxnorm"
SNOMED = "http://snomed.info/sct"
CATEGORY = "http://terminology.hl7.org/CodeSystem/observation-category"
PATIENT_UUID = "urn:uuid:7c9e6679-7425-40de-944b-e07fc1f90ae7"


def patient(pid: str = "patientExample") -> dict[str, Any]:
    # HL7 CGM IG, input/fsh/examples.fsh: patientExample (a US Core Patient)
    return {
        "resourceType": "Patient",
        "id": pid,
        "identifier": [
            {
                "use": "official",
                "system": "http://example.org",
                "value": "ee8d4ac0-545c-4501-8d7e-646bfbda1db5",
            }
        ],
        "name": [{"family": "Peters", "given": ["Amy"]}],
        "gender": "female",
        "birthDate": "1964-06-20",
    }


def cgm(
    oid: str = "cgmSensorReadingMassExample",
    value: float = 120,
    *,
    t: str = "2024-05-02T10:15:00Z",
    subject: str = "Patient/patientExample",
    molar: bool = False,
) -> dict[str, Any]:
    # HL7 CGM IG: CGMSensorReadingMass / CGMSensorReadingMolar examples (laboratory category,
    # display units "mg/dl" and "mmol/l", UCUM codes mg/dL and mmol/L)
    return {
        "resourceType": "Observation",
        "id": oid,
        "status": "final",
        "category": [{"coding": [{"system": CATEGORY, "code": "laboratory"}]}],
        "code": {"coding": [{"system": LOINC, "code": "105272-9" if molar else "99504-3"}]},
        "subject": {"reference": subject},
        "effectiveDateTime": t,
        "valueQuantity": {
            "value": value,
            "unit": "mmol/l" if molar else "mg/dl",
            "system": UCUM,
            "code": "mmol/L" if molar else "mg/dL",
        },
        "device": {"reference": "Device/cgm-1"},
    }


def vital(
    oid: str,
    loinc: str,
    value: float,
    unit: str,
    *,
    t: str = "2024-05-02T10:00:00Z",
    subject: str = "Patient/patientExample",
) -> dict[str, Any]:
    return {
        "resourceType": "Observation",
        "id": oid,
        "status": "final",
        "category": [{"coding": [{"system": CATEGORY, "code": "vital-signs"}]}],
        "code": {"coding": [{"system": LOINC, "code": loinc}]},
        "subject": {"reference": subject},
        "effectiveDateTime": t,
        "valueQuantity": {"value": value, "unit": unit, "system": UCUM, "code": unit},
    }


def blood_pressure(
    oid: str = "blood-pressure",
    systolic: float = 107,
    diastolic: float = 60,
    *,
    subject: str = "Patient/patientExample",
) -> dict[str, Any]:
    # The FHIR R4 vital-signs example observation-example-bloodpressure, trimmed
    def component(loinc: str, display: str, value: float) -> dict[str, Any]:
        return {
            "code": {"coding": [{"system": LOINC, "code": loinc, "display": display}]},
            "valueQuantity": {"value": value, "unit": "mmHg", "system": UCUM, "code": "mm[Hg]"},
        }

    return {
        "resourceType": "Observation",
        "id": oid,
        "meta": {"profile": ["http://hl7.org/fhir/StructureDefinition/bp"]},
        "status": "final",
        "category": [
            {"coding": [{"system": CATEGORY, "code": "vital-signs", "display": "Vital Signs"}]}
        ],
        "code": {
            "coding": [
                {
                    "system": LOINC,
                    "code": "85354-9",
                    "display": "Blood pressure panel with all children optional",
                }
            ],
            "text": "Blood pressure systolic & diastolic",
        },
        "subject": {"reference": subject},
        "effectiveDateTime": "2024-05-02T09:30:00+02:00",
        "performer": [{"reference": "Practitioner/example"}],
        "interpretation": [
            {
                "coding": [
                    {
                        "system": "http://terminology.hl7.org/CodeSystem/v3-ObservationInterpretation",
                        "code": "L",
                        "display": "low",
                    }
                ]
            }
        ],
        "bodySite": {"coding": [{"system": SNOMED, "code": "368209003", "display": "Right arm"}]},
        "component": [
            component("8480-6", "Systolic blood pressure", systolic),
            component("8462-4", "Diastolic blood pressure", diastolic),
        ],
    }


def insulin(
    mid: str = "bolus-1",
    units: float = 4.0,
    *,
    code: str = "U",
    subject: str = "Patient/patientExample",
) -> dict[str, Any]:
    return {
        "resourceType": "MedicationAdministration",
        "id": mid,
        "status": "completed",
        "medicationCodeableConcept": {
            "coding": [{"system": RXNORM, "code": "86009", "display": "insulin lispro"}]
        },
        "subject": {"reference": subject},
        "effectiveDateTime": "2024-05-02T07:00:00Z",
        "dosage": {
            "route": {"text": "subcutaneous"},
            "dose": {"value": units, "unit": "U", "system": UCUM, "code": code},
        },
    }


def metformin(mid: str = "met-1", value: float = 0.5, unit: str = "g") -> dict[str, Any]:
    return {
        "resourceType": "MedicationAdministration",
        "id": mid,
        "status": "completed",
        "medicationCodeableConcept": {
            "coding": [{"system": RXNORM, "code": "6809", "display": "metformin"}]
        },
        "subject": {"reference": "Patient/patientExample"},
        "effectivePeriod": {"start": "2024-05-02T08:00:00Z", "end": "2024-05-02T08:01:00Z"},
        "dosage": {"dose": {"value": value, "system": UCUM, "code": unit}},
    }


def condition(cid: str = "t1d") -> dict[str, Any]:
    return {
        "resourceType": "Condition",
        "id": cid,
        "clinicalStatus": {
            "coding": [
                {
                    "system": "http://terminology.hl7.org/CodeSystem/condition-clinical",
                    "code": "active",
                }
            ]
        },
        "verificationStatus": {
            "coding": [
                {
                    "system": "http://terminology.hl7.org/CodeSystem/condition-ver-status",
                    "code": "confirmed",
                }
            ]
        },
        "code": {
            "coding": [
                {"system": SNOMED, "code": "46635009", "display": "Diabetes mellitus type 1"}
            ]
        },
        "subject": {"reference": "Patient/patientExample"},
        "onsetDateTime": "1980-03-01",
    }


def device(did: str = "cgm-1") -> dict[str, Any]:
    return {
        "resourceType": "Device",
        "id": did,
        "status": "active",
        "manufacturer": "Dexcom",
        "modelNumber": "G7",
        "type": {
            "coding": [
                {
                    "system": SNOMED,
                    "code": "462894001",
                    "display": "Continuous glucose monitoring system",
                }
            ]
        },
        "patient": {"reference": "Patient/patientExample"},
    }


def transaction_of_50() -> dict[str, Any]:
    """A transaction of 50 mixed entries: a new Patient (urn:uuid) and everything about it."""
    new = {k: v for k, v in patient().items() if k != "id"}
    resources: list[dict[str, Any]] = [new, device("cgm-9")]
    resources[1]["patient"] = {"reference": PATIENT_UUID}
    for k in range(36):
        minute = 5 * k
        resources.append(
            cgm(
                f"g{k}",
                100 + k,
                t=f"2024-05-02T{10 + minute // 60:02d}:{minute % 60:02d}:00Z",
                subject=PATIENT_UUID,
                molar=k % 6 == 5,
            )
        )
        if k % 6 == 5:
            resources[-1]["valueQuantity"]["value"] = round((100 + k) / 18.0156, 2)
    resources += [
        blood_pressure("bp-1", subject=PATIENT_UUID),
        vital("hr-1", "8867-4", 72, "/min", subject=PATIENT_UUID),
        vital("spo2-1", "2708-6", 97, "%", subject=PATIENT_UUID),
        vital("steps-1", "41950-7", 8042, "/(24.h)", subject=PATIENT_UUID),
        vital("wt-1", "29463-7", 154, "[lb_av]", subject=PATIENT_UUID),
        vital("carbs-1", "9059-7", 45, "g", subject=PATIENT_UUID),
        insulin("bolus-1", 4, subject=PATIENT_UUID),
        insulin("bolus-2", 2.5, code="[iU]", subject=PATIENT_UUID),
        metformin("met-1"),
        condition("t1d"),
        condition("htn"),
        insulin("bolus-3", 1, subject=PATIENT_UUID),
    ]
    for r in resources[-4:-1]:
        r["subject"] = {"reference": PATIENT_UUID}
    resources[-2]["code"] = {
        "coding": [{"system": SNOMED, "code": "38341003", "display": "Hypertensive disorder"}]
    }
    assert len(resources) == 50
    entries = []
    for i, r in enumerate(resources):
        url = PATIENT_UUID if i == 0 else f"urn:uuid:{uuid.UUID(int=i)}"
        entries.append(
            {"fullUrl": url, "resource": r, "request": {"method": "POST", "url": r["resourceType"]}}
        )
    return {"resourceType": "Bundle", "type": "transaction", "entry": entries}


def edited(resource: dict[str, Any], **changes: Any) -> dict[str, Any]:
    """A deep copy with top-level elements replaced (``None`` removes one)."""
    out = copy.deepcopy(resource)
    for key, value in changes.items():
        if value is None:
            out.pop(key, None)
        else:
            out[key] = value
    return out
