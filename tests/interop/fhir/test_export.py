from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

import numpy as np
import pandas as pd
import pytest

from medtwin.errors import DataFormatError, FHIRValidationError, ParameterError
from medtwin.interop.fhir import (
    Issue,
    alert_to_fhir,
    bundle,
    forecast_to_fhir,
    observation_to_fhir,
    operation_outcome,
    patient_to_fhir,
    read_bundle,
    risk_to_fhir,
    to_records,
    validate,
)
from medtwin.records import OBSERVATION_CODES, AlertRecord, ObservationRecord, PatientRecord
from medtwin.twin import Forecast

T0 = datetime(2026, 1, 1, 8, tzinfo=UTC)


def _records():
    return [
        ObservationRecord(
            "p1",
            code,
            T0 + timedelta(minutes=5 * k),
            100.0 + k,
            spec.unit,
            device_id="cgm-7" if code == "99504-3" else None,
            source_id=f"cgm-7:{k}",
        )
        for k, (code, spec) in enumerate(OBSERVATION_CODES.items())
    ]


@pytest.mark.parametrize("record", _records(), ids=lambda r: r.code)
def test_observation_round_trip(record):
    resource = observation_to_fhir(record, f"obs-{record.code}")
    assert validate(resource) is resource
    assert to_records(resource).observations == [record]


def test_observation_without_source_id_gets_the_fhir_one():
    record = ObservationRecord("p1", "8867-4", T0, 72.0, "/min")
    [back] = to_records(observation_to_fhir(record, "hr-1")).observations
    assert back.source_id == "fhir:Observation/hr-1" and back.value == 72.0


def test_microseconds_and_offsets_survive():
    moment = datetime(2026, 1, 1, 9, 0, 0, 123456, tzinfo=UTC).astimezone()
    record = ObservationRecord("p1", "99504-3", moment, 99.5, "mg/dL", source_id="x")
    resource = observation_to_fhir(record, "g1")
    assert resource["effectiveDateTime"] == "2026-01-01T09:00:00.123456Z"
    assert to_records(resource).observations == [record]


def test_observation_record_problems():
    with pytest.raises(DataFormatError, match="not one medtwin stores"):
        observation_to_fhir(ObservationRecord("p1", "2339-0", T0, 1.0, "mg/dL"), "x")
    with pytest.raises(DataFormatError, match="stored in 'mg/dL'"):
        observation_to_fhir(ObservationRecord("p1", "99504-3", T0, 5.5, "mmol/L"), "x")
    with pytest.raises(DataFormatError, match="no timezone"):
        observation_to_fhir(
            ObservationRecord("p1", "99504-3", T0.replace(tzinfo=None), 1.0, "mg/dL"), "x"
        )


@pytest.mark.parametrize(
    "record",
    [
        PatientRecord(
            "p1",
            "urn:oid:1.2.36.146.595.217.0.1|12345",
            "Ada Lovelace",
            date(1990, 5, 1),
            "female",
            source_id="fhir:Patient/p1",
        ),
        PatientRecord("p2", "MRN-9", None, None, None, source_id="hl7v2:PID|9"),
        PatientRecord("p3"),
    ],
)
def test_patient_round_trip(record):
    resource = validate(patient_to_fhir(record))
    [back] = to_records(resource).patients
    expected = (
        record
        if record.source_id
        else PatientRecord(
            **{**{f: getattr(record, f) for f in record.__slots__}, "source_id": "fhir:Patient/p3"}
        )
    )
    assert back == expected


def _forecast(n=7):
    times = pd.date_range("2026-01-01T08:05Z", periods=n, freq="5min")
    median = np.linspace(120, 90, n)
    bands = {level: (median - 30 * level, median + 30 * level) for level in (0.5, 0.8, 0.95)}
    return Forecast(
        times, np.arange(1, n + 1) * 5.0, median, bands, np.tile(median, (4, 1)), np.full(4, 0.25)
    )


def test_forecast_observation():
    resource = forecast_to_fhir("p1", _forecast(), model="UvaPadova2008", issued=T0)
    assert validate(resource) is resource
    assert resource["status"] == "preliminary"
    assert resource["code"]["coding"][0]["code"] == "99504-3"
    assert resource["method"] == {"text": "UvaPadova2008"}
    assert resource["effectivePeriod"] == {
        "start": "2026-01-01T08:05:00Z",
        "end": "2026-01-01T08:35:00Z",
    }
    assert resource["issued"] == "2026-01-01T08:00:00Z"
    median = resource["valueSampledData"]
    assert median["period"] == 300_000 and median["dimensions"] == 1
    assert [float(v) for v in median["data"].split()] == pytest.approx(np.linspace(120, 90, 7))
    codes = [c["code"]["coding"][0]["code"] for c in resource["component"]]
    assert codes == ["lower-50", "upper-50", "lower-80", "upper-80", "lower-95", "upper-95"]
    upper95 = resource["component"][5]["valueSampledData"]["data"].split()
    assert float(upper95[0]) == pytest.approx(120 + 28.5)


def test_forecast_needs_even_spacing():
    fc = _forecast()
    uneven = Forecast(
        fc.time,
        np.array([5.0, 10, 15, 20, 30, 35, 40]),
        fc.median,
        fc.bands,
        fc.members,
        fc.weights,
    )
    with pytest.raises(DataFormatError, match="evenly spaced"):
        forecast_to_fhir("p1", uneven, model="m", issued=T0)


def test_risk_assessment():
    resource = risk_to_fhir(
        "p1", "hypoglycaemia", 0.23, 30, model="UvaPadova2008", issued=T0, threshold_mg_dl=70
    )
    assert validate(resource) is resource
    [prediction] = resource["prediction"]
    assert prediction["probabilityDecimal"] == 0.23
    assert prediction["whenPeriod"] == {
        "start": "2026-01-01T08:00:00Z",
        "end": "2026-01-01T08:30:00Z",
    }
    assert "70 mg/dL" in prediction["rationale"]
    assert resource["method"] == {"text": "UvaPadova2008"}


@pytest.mark.parametrize("probability", [1.5, -0.01, float("nan")])
def test_risk_probability_must_be_0_1(probability):
    with pytest.raises(ParameterError, match="within 0-1"):
        risk_to_fhir(
            "p1", "hypoglycaemia", probability, 30, model="m", issued=T0, threshold_mg_dl=70
        )


def test_alert():
    alert = AlertRecord(
        "p1",
        T0,
        "hypoglycaemia",
        0.41,
        0.3,
        45,
        "UvaPadova2008",
        message="Glucose below 70 mg/dL likely within 45 min",
        id=12,
    )
    resource = alert_to_fhir(alert)
    assert validate(resource) is resource
    assert resource["id"] == "12" and resource["resourceType"] == "RiskAssessment"
    assert resource["prediction"][0]["whenPeriod"]["end"] == "2026-01-01T08:45:00Z"
    assert resource["note"] == [{"text": alert.message}]
    assert "0.30" in resource["prediction"][0]["rationale"]


def test_every_export_in_a_searchset_bundle_validates():
    resources = [
        patient_to_fhir(PatientRecord("p1", "urn:mrn|1", "Ada", date(1990, 1, 1), "female")),
        *[observation_to_fhir(r, f"o{i}") for i, r in enumerate(_records())],
        forecast_to_fhir("p1", _forecast(), model="m", issued=T0),
        risk_to_fhir("p1", "hyperglycaemia", 0.1, 60, model="m", issued=T0, threshold_mg_dl=250),
        alert_to_fhir(AlertRecord("p1", T0, "hypoglycaemia", 0.5, 0.3, 30, "m")),
        operation_outcome([Issue("informational", "", "done", severity="information")]),
    ]
    searchset = bundle(resources, base_url="https://medtwin.example/fhir/")
    assert validate(searchset) is searchset
    assert searchset["total"] == len(resources)
    assert searchset["entry"][1]["fullUrl"] == "https://medtwin.example/fhir/Observation/o0"
    assert searchset["entry"][-1]["search"] == {"mode": "outcome"}


def test_transaction_bundle_export_imports_back():
    records = _records()
    patient = PatientRecord("p1", source_id="fhir:Patient/p1")
    resources = [
        patient_to_fhir(patient),
        *[observation_to_fhir(r, f"o{i}") for i, r in enumerate(records)],
    ]
    tx = bundle(resources, "transaction")
    assert validate(tx) is tx
    assert tx["entry"][0]["request"] == {"method": "PUT", "url": "Patient/p1"}
    result = read_bundle(tx)
    assert result.patients == [patient] and result.observations == records
    posted = bundle([{"resourceType": "Patient", "gender": "male"}], "batch")
    assert posted["entry"][0]["fullUrl"].startswith("urn:uuid:")
    assert posted == bundle([{"resourceType": "Patient", "gender": "male"}], "batch")
    assert validate(posted) is posted


@pytest.mark.parametrize("kind", ["searchset", "collection", "history", "batch", "transaction"])
def test_bundle_types_validate(kind):
    resources = [
        patient_to_fhir(PatientRecord("p1")),
        {"resourceType": "Patient", "gender": "male"},
    ]
    out = bundle(resources, kind)
    assert validate(out) is out and out["type"] == kind
    assert [e["resource"] for e in out["entry"]] == resources


def test_bundle_type_checked():
    with pytest.raises(ParameterError, match="Bundle type"):
        bundle([], "bag")
    assert validate(bundle([])) == {"resourceType": "Bundle", "type": "searchset", "total": 0}


def test_operation_outcome():
    oo = operation_outcome(
        [
            Issue("value", "Observation.valueQuantity.code", "wrong unit"),
            {"severity": "warning", "code": "informational", "diagnostics": "x"},
        ]
    )
    assert validate(oo) is oo
    assert oo["issue"][0] == {
        "severity": "error",
        "code": "value",
        "diagnostics": "wrong unit",
        "expression": ["Observation.valueQuantity.code"],
    }
    with pytest.raises(FHIRValidationError, match=r"OperationOutcome\.issue\[0\]\.code"):
        validate(operation_outcome([Issue("oops", "", "?")]))
