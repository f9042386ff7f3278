"""Alerts raised by the hosted twins: list and acknowledge."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

from fastapi import APIRouter, Path

from medtwin.api._auth import CurrentAccess
from medtwin.api._host import alert_json
from medtwin.api.schemas import AlertOut
from medtwin.records import AlertRecord

router = APIRouter(prefix="/api/alerts", tags=["alerts"])

MAX_ID = 2**63 - 1
"""Largest id a database integer column holds."""


@router.get("", response_model=list[AlertOut])
def list_alerts(
    access: CurrentAccess,
    patient_id: str | None = None,
    since: datetime | None = None,
    active: bool | None = None,
) -> list[AlertOut]:
    """Alerts of the patients the caller may see (newest first)."""
    store = access.service.store
    if patient_id is not None:
        access.require("s", "RiskAssessment", patient_id=patient_id, action="search alerts")
        patients: list[str] | None = [patient_id]
    else:
        access.require("s", "RiskAssessment", action="search alerts")
        patients = access.visible_patients()
    rows = []
    for pid in patients if patients is not None else [None]:
        rows.extend(store.alerts(patient_id=pid, since=since, active=active))
    rows.sort(key=lambda a: a.time, reverse=True)
    return [_out(access, a) for a in rows]


def _out(access: CurrentAccess, alert: AlertRecord) -> AlertOut:
    """The alert with the acknowledging user's name rather than their id."""
    body = alert_json(alert)
    if alert.acknowledged_by is not None:
        body["acknowledged_by"] = access.service.store.get_user(alert.acknowledged_by).username
    return AlertOut(**body)


@router.post("/{alert_id}/ack", response_model=AlertOut)
def acknowledge(alert_id: Annotated[int, Path(ge=1, le=MAX_ID)], access: CurrentAccess) -> AlertOut:
    """Acknowledge an alert (by a clinician of the patient's care team, or an admin)."""
    store = access.service.store
    alert = store.get_alert(alert_id)
    access.require("u", "RiskAssessment", patient_id=alert.patient_id, action="acknowledge alert")
    return _out(access, store.acknowledge_alert(alert_id, access.principal.subject))
