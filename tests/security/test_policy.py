from __future__ import annotations

import pytest

from medtwin.errors import AuthorizationError, ParameterError
from medtwin.security import (
    ROLE_SCOPES,
    Decision,
    Principal,
    Role,
    authorize,
    parse_scopes,
)

ADMIN = Principal("u0", "root", Role.admin, ROLE_SCOPES[Role.admin])
DOCTOR = Principal("u1", "dr.who", Role.clinician, ROLE_SCOPES[Role.clinician])
RESEARCHER = Principal("u2", "ann", Role.researcher, ROLE_SCOPES[Role.researcher])
DEVICE = Principal("u3", "cgm-7", Role.device, ROLE_SCOPES[Role.device], patient_id="p1")


@pytest.mark.parametrize("perm", list("cruds"))
@pytest.mark.parametrize("resource", ["Patient", "Observation", "AuditEvent"])
def test_admin_may_do_anything(perm, resource):
    d = authorize(ADMIN, perm, resource, patient_id="p9")
    assert d.allowed and d and "admin" in d.reason


@pytest.mark.parametrize("perm", list("cruds"))
def test_clinician_on_care_team(perm):
    assert authorize(DOCTOR, perm, "Observation", patient_id="p1", on_care_team=True).allowed


@pytest.mark.parametrize("perm", list("cruds"))
def test_clinician_off_care_team_is_denied(perm):
    d = authorize(DOCTOR, perm, "Observation", patient_id="p2")
    assert not d.allowed and not d
    assert "care team" in d.reason and "p2" in d.reason


def test_clinician_without_a_patient_is_left_to_the_caller_to_filter():
    assert authorize(DOCTOR, "s", "Patient").allowed


def test_clinician_deidentified_view_still_needs_the_care_team():
    assert not authorize(DOCTOR, "r", "Observation", patient_id="p2", deidentified=True).allowed


@pytest.mark.parametrize("perm", ["r", "s"])
def test_researcher_reads_deidentified(perm):
    assert authorize(RESEARCHER, perm, "Observation", patient_id="p1", deidentified=True).allowed


@pytest.mark.parametrize("perm", ["r", "s"])
def test_researcher_identified_view_is_denied(perm):
    d = authorize(RESEARCHER, perm, "Patient", patient_id="p1", on_care_team=True)
    assert not d.allowed and "de-identified" in d.reason


@pytest.mark.parametrize("perm", ["c", "u", "d"])
def test_researcher_writes_are_denied(perm):
    d = authorize(RESEARCHER, perm, "Observation", deidentified=True)
    assert not d.allowed and "scope" in d.reason  # user/*.rs does not allow writes


def test_researcher_writes_are_denied_even_with_a_broad_scope():
    broad = Principal("u2", "ann", Role.researcher, parse_scopes("user/*.cruds"))
    d = authorize(broad, "u", "Observation", deidentified=True)
    assert not d.allowed and "only read and search" in d.reason


def test_device_creates_observation_for_its_patient():
    d = authorize(DEVICE, "c", "Observation", patient_id="p1")
    assert d.allowed and "p1" in d.reason


@pytest.mark.parametrize("patient", ["p2", None])
def test_device_other_patient_is_denied(patient):
    assert not authorize(DEVICE, "c", "Observation", patient_id=patient).allowed


@pytest.mark.parametrize(
    ("perm", "resource"),
    [("r", "Observation"), ("s", "Observation"), ("c", "Patient"), ("u", "Observation")],
)
def test_device_never_reads_or_writes_other_things(perm, resource):
    assert not authorize(DEVICE, perm, resource, patient_id="p1", on_care_team=True).allowed


def test_device_with_broad_scope_still_only_creates_observations():
    broad = Principal("u3", "cgm-7", Role.device, parse_scopes("user/*.cruds"), patient_id="p1")
    d = authorize(broad, "r", "Observation", patient_id="p1")
    assert not d.allowed and "only create Observation" in d.reason
    assert not authorize(broad, "c", "Observation", patient_id="p2").allowed


def test_device_without_a_patient_is_denied():
    orphan = Principal("u3", "cgm-7", Role.device, ROLE_SCOPES[Role.device])
    assert not authorize(orphan, "c", "Observation", patient_id="p1").allowed


def test_scope_denial_even_for_admin_role():
    narrow = Principal("u0", "root", Role.admin, parse_scopes("user/Observation.r"))
    d = authorize(narrow, "d", "Patient", patient_id="p1")
    assert not d.allowed and "no scope" in d.reason and "delete Patient" in d.reason
    assert authorize(narrow, "r", "Observation").allowed


def test_no_scopes_no_access():
    nobody = Principal("u5", "eve", Role.admin, ())
    assert not authorize(nobody, "r", "Patient").allowed


def test_patient_scope_is_bound_to_the_principals_patient():
    p = Principal("u6", "pat", Role.clinician, parse_scopes("patient/*.rs"), patient_id="p1")
    assert authorize(p, "r", "Observation", patient_id="p1", on_care_team=True).allowed
    assert not authorize(p, "r", "Observation", patient_id="p2", on_care_team=True).allowed
    assert not authorize(p, "s", "Observation", on_care_team=True).allowed


@pytest.mark.parametrize("perm", ["read", "x", "", "rs"])
def test_unknown_permission_is_a_programming_error(perm):
    with pytest.raises(ParameterError):
        authorize(ADMIN, perm, "Patient")


def test_decision_raise_if_denied():
    Decision(True, "ok").raise_if_denied()
    with pytest.raises(AuthorizationError, match="care team"):
        authorize(DOCTOR, "r", "Patient", patient_id="p2").raise_if_denied()


def test_every_denial_has_a_reason():
    for p in (ADMIN, DOCTOR, RESEARCHER, DEVICE):
        for perm in "cruds":
            d = authorize(p, perm, "Observation", patient_id="p7")
            assert d.reason.strip()


def test_only_admins_touch_the_audit_log_and_accounts():
    from medtwin.security import ROLE_SCOPES, Principal, Role, authorize

    dr = Principal("u1", "dr.who", Role.clinician, ROLE_SCOPES[Role.clinician])
    admin = Principal("u0", "root", Role.admin, ROLE_SCOPES[Role.admin])
    for resource in ("AuditEvent", "User"):
        decision = authorize(dr, "r", resource)
        assert not decision.allowed and "only admins" in decision.reason
        assert authorize(admin, "r", resource).allowed


FEED = Principal("u4", "adt-feed", Role.interface, ROLE_SCOPES[Role.interface])


def test_interface_creates_encounters_only():
    assert authorize(FEED, "c", "Encounter").allowed
    for perm, resource in [("r", "Encounter"), ("s", "Encounter"), ("u", "Encounter"),
                           ("c", "Observation"), ("r", "Patient"), ("r", "Location")]:  # fmt: skip
        d = authorize(FEED, perm, resource)
        assert not d.allowed, (perm, resource)


@pytest.mark.parametrize("who", [DOCTOR, RESEARCHER, DEVICE])
def test_only_the_feed_and_admins_write_encounters(who):
    d = authorize(who, "c", "Encounter", patient_id=who.patient_id, on_care_team=True)
    assert not d.allowed
    assert authorize(ADMIN, "c", "Encounter").allowed


def test_clinicians_read_encounters_researchers_only_deidentified_locations():
    assert authorize(DOCTOR, "r", "Encounter").allowed
    assert not authorize(RESEARCHER, "r", "Encounter").allowed
    assert authorize(RESEARCHER, "r", "Location", deidentified=True).allowed
    assert not authorize(DEVICE, "r", "Location", deidentified=True).allowed
