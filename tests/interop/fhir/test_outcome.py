from __future__ import annotations

from medtwin.errors import FHIRValidationError
from medtwin.interop.fhir import Issue, operation_outcome
from medtwin.interop.fhir._outcome import rebase, rejection


def test_rebase_onto_a_bundle_entry():
    root = "Bundle.entry[3].resource"
    assert rebase(Issue("value", "Observation.status", "x"), root).expression == f"{root}.status"
    assert rebase(Issue("value", "Observation", "x"), root).expression == root
    assert rebase(Issue("value", "resourceType", "x"), root).expression == f"{root}.resourceType"
    assert rebase(Issue("value", "", "x"), root).expression == root


def test_rejection_message_and_outcome():
    issues = [
        Issue("informational", "Patient.birthDate", "partial", severity="warning"),
        Issue("required", "Patient.id", "needs an id"),
    ]
    exc = rejection("Patient", issues)
    assert isinstance(exc, FHIRValidationError)
    assert str(exc) == "Patient rejected: Patient.id: needs an id"
    assert exc.outcome == operation_outcome(issues)
    assert [i["severity"] for i in exc.outcome["issue"]] == ["warning", "error"]
