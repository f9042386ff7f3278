from __future__ import annotations

import json

import pandas as pd
import pytest

from medtwin.errors import DataFormatError, UnitError
from medtwin.interop.wearables import CGM_LOINC, read_fhir_observations
from tests.interop.wearables.formats import observation


def _obs(k, value, **kw):
    t = pd.Timestamp("2026-01-01T08:00Z") + pd.Timedelta(minutes=5 * k)
    return observation(f"o{k}", t.isoformat(), value, **kw)


def _bundle(resources):
    return {"resourceType": "Bundle", "type": "collection",
            "entry": [{"resource": r} for r in resources]}  # fmt: skip


def _kinds(h):
    return [i.kind for i in h.issues]


def test_loinc_codes_of_the_cgm_guide():
    assert CGM_LOINC == {"99504-3": "mg/dL", "105272-9": "mmol/L"}


def test_bundle_array_ndjson_and_single_resource(tmp_path):
    resources = [_obs(0, 100), _obs(1, 110)]
    bundle = tmp_path / "bundle.json"
    bundle.write_text(json.dumps(_bundle(resources)))
    ndjson = tmp_path / "obs.ndjson"
    ndjson.write_text("\n".join(json.dumps(r) for r in resources) + "\n")
    for source in (bundle, ndjson, resources, _bundle(resources)):
        h = read_fhir_observations(source)
        assert h.glucose().tolist() == [100.0, 110.0], source
        assert h.patient_id == "Patient/p1" and h.issues == ()
    assert read_fhir_observations(resources[0]).glucose().tolist() == [100.0]


def test_mmol_readings_converted_and_mixed_units_allowed():
    h = read_fhir_observations([_obs(0, 5.5, loinc="105272-9", code="mmol/L"), _obs(1, 120)])
    assert h.glucose().round(2).tolist() == [99.09, 120.0]


def test_effective_period_start_accepted():
    res = _obs(0, 100)
    del res["effectiveDateTime"]
    res["effectivePeriod"] = {
        "start": "2026-01-01T09:00:00+01:00",
        "end": "2026-01-01T09:05:00+01:00",
    }
    assert read_fhir_observations([res]).cgm["time"][0] == pd.Timestamp("2026-01-01T08:00Z")


def test_entered_in_error_skipped_with_an_issue():
    h = read_fhir_observations(
        [_obs(0, 100), _obs(1, 300, status="entered-in-error"), _obs(2, 110)]
    )
    assert h.glucose().tolist() == [100.0, 110.0]
    [issue] = h.issues
    assert issue.kind == "skipped" and issue.where == "Observation/o1"
    assert "entered-in-error" in issue.message


def test_other_resources_and_codes_counted_as_skipped():
    patient = {"resourceType": "Patient", "id": "p1"}
    tir = _obs(5, 71.0, loinc="97510-2", code="%")  # a CGM summary, not a reading
    h = read_fhir_observations(_bundle([patient, _obs(0, 100), tir]))
    assert h.glucose().tolist() == [100.0]
    assert sorted(i.message.split("'")[1] for i in h.issues) == [
        "Observation (not a CGM reading)", "Patient",
    ]  # fmt: skip


def test_comparator_kept_as_censored():
    low = _obs(0, 40)
    low["valueQuantity"]["comparator"] = "<"
    h = read_fhir_observations([low, _obs(1, 45)])
    assert h.glucose().tolist() == [40.0, 45.0] and _kinds(h) == ["censored"]


def test_quality_checks_apply():
    h = read_fhir_observations([_obs(1, 110), _obs(0, 100), _obs(0, 100), _obs(9, 600)])
    assert _kinds(h) == ["out_of_order", "duplicate", "implausible"]
    assert h.issues[2].where == "Observation/o9"


def test_unit_confusion_detected():
    readings = [_obs(k, v, loinc="105272-9", code="mmol/L") for k, v in enumerate([99, 140, 180])]
    with pytest.raises(UnitError, match=r"\(mmol/L readings\).*look like mg/dL"):
        read_fhir_observations(readings)


def _broken(edit):
    res = _obs(0, 100)
    edit(res)
    return res


@pytest.mark.parametrize(
    ("edit", "message"),
    [
        (lambda r: r["valueQuantity"].update(code="mmol/L"),
         r"Observation/o0\.valueQuantity\.code is 'mmol/L' but LOINC 99504-3 is measured in 'mg/dL'"),
        (lambda r: r["valueQuantity"].update(value="100"), r"Observation/o0\.valueQuantity\.value"),
        (lambda r: r["valueQuantity"].pop("code"), r"Observation/o0\.valueQuantity\.code is missing"),
        (lambda r: r["valueQuantity"].update(system="http://snomed.info/sct"),
         r"Observation/o0\.valueQuantity\.system"),
        (lambda r: r.pop("valueQuantity"), r"Observation/o0\.valueQuantity is missing"),
        (lambda r: r.pop("effectiveDateTime"), r"Observation/o0\.effectiveDateTime is missing"),
        (lambda r: r.update(effectiveDateTime="2026-01-01T08:00:00"),
         r"Observation/o0\.effectiveDateTime: time .* has no UTC offset"),
        (lambda r: r.update(effectiveDateTime="2026-01-01"), r"effectiveDateTime: .*no time of day"),
        (lambda r: r.pop("status"), r"Observation/o0\.status is missing"),
        (lambda r: r.update(status="done"), r"Observation/o0\.status 'done'"),
        (lambda r: r.pop("code"), r"Observation/o0\.code\.coding is missing"),
        (lambda r: r["valueQuantity"].update(comparator="~"), r"valueQuantity\.comparator"),
    ],
)  # fmt: skip
def test_malformed_observations_name_resource_and_field(edit, message):
    with pytest.raises(DataFormatError, match=message):
        read_fhir_observations([_obs(1, 110), _broken(edit)])


def test_two_patients_rejected():
    other = _obs(1, 110)
    other["subject"] = {"reference": "Patient/p2"}
    with pytest.raises(
        DataFormatError, match=r"Observation/o1\.subject\.reference is 'Patient/p2'"
    ):
        read_fhir_observations([_obs(0, 100), other])


def test_malformed_json_and_containers(tmp_path):
    path = tmp_path / "bad.json"
    path.write_text('{"resourceType": "Bundle",\n "entry": [}')
    with pytest.raises(DataFormatError, match=r"bad\.json, line 2, column 12: invalid JSON"):
        read_fhir_observations(path)
    path.write_text(json.dumps(_obs(0, 100)) + "\n{oops}\n")
    with pytest.raises(DataFormatError, match=r"bad\.json, line 2, column 2: invalid NDJSON"):
        read_fhir_observations(path)
    with pytest.raises(DataFormatError, match=r"Bundle\.entry\[0\]\.resource is missing"):
        read_fhir_observations({"resourceType": "Bundle", "entry": [{"fullUrl": "x"}]})
    with pytest.raises(DataFormatError, match=r"observations\[1\]: expected a FHIR resource"):
        read_fhir_observations([_obs(0, 100), 7])
    with pytest.raises(DataFormatError, match="expected a Bundle"):
        read_fhir_observations(42)  # type: ignore[arg-type]
