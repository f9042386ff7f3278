from __future__ import annotations

import inspect

import medtwin.interop.fhir as fhir
from tests.test_public_api import _ruff_order

CONTRACT = [
    "validate",
    "to_records",
    "read_bundle",
    "ImportResult",
    "patient_to_fhir",
    "observation_to_fhir",
    "forecast_to_fhir",
    "risk_to_fhir",
    "alert_to_fhir",
    "operation_outcome",
    "bundle",
]


def test_all_sorted_resolves_and_documented():
    assert list(fhir.__all__) == sorted(fhir.__all__, key=_ruff_order)
    for name in fhir.__all__:
        obj = getattr(fhir, name)
        if callable(obj):
            assert obj.__doc__ and obj.__doc__.strip(), name


def test_contract_names_and_signatures():
    assert set(CONTRACT) <= set(fhir.__all__)
    params = {name: list(inspect.signature(getattr(fhir, name)).parameters) for name in CONTRACT}
    assert params["observation_to_fhir"] == ["record", "id"]
    assert params["forecast_to_fhir"] == ["patient_id", "forecast", "model", "issued"]
    assert params["risk_to_fhir"] == [
        "patient_id",
        "kind",
        "probability",
        "window_min",
        "model",
        "issued",
        "threshold_mg_dl",
    ]
    assert params["bundle"][:2] == ["resources", "type"]
    assert inspect.signature(fhir.bundle).parameters["type"].default == "searchset"
