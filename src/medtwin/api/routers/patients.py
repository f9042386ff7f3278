"""Patients: register, list (a clinician sees their care team's), read."""

from __future__ import annotations

from fastapi import APIRouter, status

from medtwin.api._auth import CurrentAccess
from medtwin.api.schemas import PatientIn, PatientOut
from medtwin.records import PatientRecord
from medtwin.security import Role

router = APIRouter(prefix="/api/patients", tags=["patients"])


def patient_out(access: CurrentAccess, patient_id: str) -> PatientOut:
    """A patient record with its latest twin update."""
    record = access.service.store.get_patient(patient_id)
    return PatientOut(
        id=record.id,
        identifier=record.identifier,
        name=record.name,
        birth_date=record.birth_date.isoformat() if record.birth_date else None,
        sex=record.sex,
        latest=access.service.host.latest(patient_id),
    )


@router.get("", response_model=list[PatientOut])
def list_patients(access: CurrentAccess) -> list[PatientOut]:
    """Patients the caller may see: all for an admin, their care team's for a clinician."""
    access.require("s", "Patient", action="search Patient")
    visible = access.visible_patients()
    ids = access.service.store.list_patients() if visible is None else visible
    return [patient_out(access, pid) for pid in ids]


@router.post("", response_model=PatientOut, status_code=status.HTTP_201_CREATED)
def create_patient(body: PatientIn, access: CurrentAccess) -> PatientOut:
    """Register a patient; a clinician who registers one joins its care team."""
    access.require("c", "Patient", action="create Patient")
    store = access.service.store
    clinicians = list(body.clinicians)
    if access.principal.role == Role.clinician:
        clinicians.append(access.principal.subject)
    record = PatientRecord(
        id=body.id,
        identifier=body.identifier,
        name=body.name,
        birth_date=body.birth_date,
        sex=body.sex,
        source_id=f"api:Patient/{body.id}",
    )
    store.add_patient(record, clinicians=tuple(clinicians))
    return patient_out(access, body.id)


@router.get("/{patient_id}", response_model=PatientOut)
def read_patient(patient_id: str, access: CurrentAccess) -> PatientOut:
    """One patient (identifiers decrypted for those allowed to see them)."""
    access.require("r", "Patient", patient_id=patient_id, action="read Patient")
    return patient_out(access, patient_id)
