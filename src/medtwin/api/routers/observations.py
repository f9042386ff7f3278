"""Observations and events in, observations out: HTTP batch ingestion and reads."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

from fastapi import APIRouter, Header, Query

from medtwin.api._auth import CurrentAccess
from medtwin.api.schemas import (
    EventIn,
    EventOut,
    IngestOut,
    ObservationIn,
    ObservationOut,
    ReadingsIn,
)
from medtwin.errors import AuthorizationError, DataFormatError, NotFoundError
from medtwin.records import EventRecord, ObservationRecord

router = APIRouter(tags=["observations"])


@router.post("/api/patients/{patient_id}/observations", response_model=IngestOut)
def post_observations(
    patient_id: str,
    observations: list[ObservationIn],
    access: CurrentAccess,
    idempotency_key: Annotated[str | None, Header(max_length=200)] = None,
) -> IngestOut:
    """Store a batch of observations whole or not at all; a resubmitted batch changes nothing.

    ``Idempotency-Key`` names the batch: the same key with different content is a 409.
    """
    access.require("c", "Observation", patient_id=patient_id, action="create Observation")
    records = [
        ObservationRecord(
            patient_id,
            o.code,
            o.time,
            o.value,
            o.unit,
            device_id=o.device_id,
            source_id=o.source_id,
        )
        for o in observations
    ]
    result = access.service.ingest_records(observations=records, message_id=idempotency_key)
    return IngestOut(accepted=result.accepted, duplicates=result.duplicates)


@router.post("/api/patients/{patient_id}/events", response_model=IngestOut)
def post_events(
    patient_id: str,
    events: list[EventIn],
    access: CurrentAccess,
    idempotency_key: Annotated[str | None, Header(max_length=200)] = None,
) -> IngestOut:
    """Store logged boluses, basal rates, carbohydrate and medication (whole or not at all)."""
    access.require("c", "MedicationAdministration", patient_id=patient_id, action="create event")
    records = [
        EventRecord(patient_id, e.kind, e.time, e.value, e.unit, source_id=e.source_id)
        for e in events
    ]
    result = access.service.ingest_records(events=records, message_id=idempotency_key)
    return IngestOut(accepted=result.accepted, duplicates=result.duplicates)


@router.get("/api/patients/{patient_id}/observations", response_model=list[ObservationOut])
def get_observations(
    patient_id: str,
    access: CurrentAccess,
    code: Annotated[str | None, Query(max_length=20)] = None,
    start: datetime | None = None,
    end: datetime | None = None,
) -> list[ObservationOut]:
    """A patient's observations, optionally of one LOINC code and within [start, end)."""
    access.require("s", "Observation", patient_id=patient_id, action="search Observation")
    rows = access.service.store.observations(patient_id, code=code, start=start, end=end)
    return [
        ObservationOut(time=r.time, code=r.code, value=r.value, unit=r.unit, device_id=r.device_id)
        for r in rows
    ]


@router.get("/api/patients/{patient_id}/events", response_model=list[EventOut])
def get_events(
    patient_id: str,
    access: CurrentAccess,
    start: datetime | None = None,
    end: datetime | None = None,
) -> list[EventOut]:
    """A patient's logged boluses, basal rates, carbohydrate and medication, oldest first."""
    access.require("s", "MedicationAdministration", patient_id=patient_id, action="search events")
    rows = access.service.store.events(patient_id, start=start, end=end)
    return [EventOut(time=e.time, kind=e.kind, value=e.value, unit=e.unit) for e in rows]


@router.post("/api/devices/{device_id}/readings", response_model=IngestOut)
def post_readings(device_id: str, body: ReadingsIn, access: CurrentAccess) -> IngestOut:
    """The light path for a device's readings (a device token may write only its own)."""
    device = access.service.store.get_device(device_id)
    if device.patient_id is None:
        raise NotFoundError(f"device {device_id!r} is not attached to a patient")
    p = access.principal
    if p.device_id is not None and p.device_id != device_id:
        access.audit("create Observation", f"Device/{device_id}", "denied",
                     patient_id=device.patient_id, detail="token of another device")  # fmt: skip
        raise AuthorizationError(f"this token belongs to device {p.device_id!r}, not {device_id!r}")
    access.require("c", "Observation", patient_id=device.patient_id, action="device readings")
    if len(body.times) != len(body.values):
        raise DataFormatError(
            f"times ({len(body.times)}) and values ({len(body.values)}) must have the same length"
        )
    result = access.service.ingest_readings(
        device.patient_id,
        device_id,
        body.times,
        body.values,
        first_seq=body.first_seq,
        code=body.code,
        unit=body.unit,
    )
    return IngestOut(accepted=result.accepted, duplicates=result.duplicates)
