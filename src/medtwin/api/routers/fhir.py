"""FHIR R4 endpoints: import resources and Bundles, search by patient and date, export the twins.

Resources are validated (R4B models, FHIRPath invariants, required code sets) by
:mod:`medtwin.interop.fhir`; a bad one is answered with an OperationOutcome naming the element.
Searches cover ``patient``/``subject``, ``date`` (``ge``/``gt``/``le``/``lt``/``eq`` prefixes),
``code``, ``_count``, ``_include`` and ``_revinclude``; every resource a search returns, included
ones too, passes the same authorisation as a direct read.
"""

from __future__ import annotations

import hashlib
import json
from datetime import UTC, datetime, timedelta
from typing import Annotated, Any

from fastapi import APIRouter, Body, Query, Request
from fastapi.responses import JSONResponse

from medtwin.api._auth import Access, CurrentAccess
from medtwin.api._host import RISKS
from medtwin.errors import AuthorizationError, DataFormatError, NotFoundError
from medtwin.interop.fhir import (
    alert_to_fhir,
    bundle,
    forecast_to_fhir,
    observation_to_fhir,
    patient_to_fhir,
    read_bundle,
    risk_to_fhir,
    to_records,
)
from medtwin.records import ObservationRecord

router = APIRouter(prefix="/fhir", tags=["fhir"])

FHIR_JSON = "application/fhir+json"
IMPORTABLE = ("Patient", "Observation", "MedicationAdministration", "Condition", "Device")


def _fhir(body: dict[str, Any], status: int = 200) -> JSONResponse:
    return JSONResponse(body, status, media_type=FHIR_JSON)


def _observation_id(r: ObservationRecord) -> str:
    """A stable FHIR id for a stored observation (from its source id, time and code)."""
    key = f"{r.patient_id}|{r.source_id}|{r.code}|{r.time.isoformat()}"
    return hashlib.sha256(key.encode()).hexdigest()[:32]


def _date_range(values: list[str]) -> tuple[datetime | None, datetime | None]:
    """``date=ge2026-01-01&date=lt2026-01-02`` -> [start, end)."""
    start = end = None
    for raw in values:
        prefix, text = (
            (raw[:2], raw[2:]) if raw[:2] in ("ge", "gt", "le", "lt", "eq") else ("eq", raw)
        )
        try:
            when = datetime.fromisoformat(text.replace("Z", "+00:00"))
        except ValueError:
            raise DataFormatError(
                f"date={raw!r}: expected [ge|gt|le|lt|eq]YYYY-MM-DD[Thh:mm:ssZ]"
            ) from None
        if when.tzinfo is None:
            when = when.replace(tzinfo=UTC)
        if prefix in ("ge", "gt"):
            start = when + (timedelta(microseconds=1) if prefix == "gt" else timedelta(0))
        elif prefix in ("le", "lt"):
            end = when + (timedelta(microseconds=1) if prefix == "le" else timedelta(0))
        else:
            start, end = (
                when,
                when + (timedelta(days=1) if len(text) == 10 else timedelta(seconds=1)),
            )
    return start, end


def _patient_param(request: Request) -> str | None:
    raw = request.query_params.get("patient") or request.query_params.get("subject")
    if raw is None:
        return None
    return raw.removeprefix("Patient/")


def _patients_to_search(access: Access, patient_id: str | None, resource_type: str) -> list[str]:
    """The patients a search may touch: the asked one if allowed, or all visible ones.

    A search for a patient the caller may not see finds nothing (the denial is audited): an
    empty result does not tell whether that patient exists.
    """
    if patient_id is not None:
        try:
            access.require(
                "s", resource_type, patient_id=patient_id, action=f"FHIR search {resource_type}"
            )
        except AuthorizationError:
            return []
        return [patient_id]
    access.require("s", resource_type, action=f"FHIR search {resource_type}")
    visible = access.visible_patients()
    return list(access.service.store.list_patients()) if visible is None else visible


def _observations(
    access: Access,
    pids: list[str],
    *,
    start: datetime | None = None,
    end: datetime | None = None,
    code: str | None = None,
) -> list[dict[str, Any]]:
    out = []
    for pid in pids:
        for r in access.service.store.observations(pid, code=code, start=start, end=end):
            out.append(observation_to_fhir(r, _observation_id(r)))
    return out


@router.get("/metadata")
def capability_statement() -> JSONResponse:
    """The server's CapabilityStatement."""
    resources = [
        {"type": t, "interaction": [{"code": "create"}, {"code": "search-type"}, {"code": "read"}],
         "searchParam": [{"name": "patient", "type": "reference"}, {"name": "date", "type": "date"}]}
        for t in (*IMPORTABLE, "RiskAssessment")
    ]  # fmt: skip
    return _fhir(
        {
            "resourceType": "CapabilityStatement",
            "status": "active",
            "date": "2026-11-28",
            "kind": "instance",
            "fhirVersion": "4.0.1",
            "format": ["json"],
            "software": {"name": "medtwin"},
            "rest": [{"mode": "server", "resource": resources,
                      "interaction": [{"code": "transaction"}, {"code": "batch"}]}],
        }
    )  # fmt: skip


def _authorise_records(access: Access, records: Any) -> None:
    patients = {p.id for p in records.patients}
    touched = set()
    for group in (records.observations, records.events, records.conditions):
        touched |= {r.patient_id for r in group}
    touched |= {d.patient_id for d in records.devices if d.patient_id}
    for pid in sorted(touched - patients):
        access.require("c", "Observation", patient_id=pid, action="FHIR import")
    if patients:
        access.require("c", "Patient", action="FHIR import Patient")


@router.post("")
def transaction(
    access: CurrentAccess,
    body: Annotated[dict[str, Any], Body(media_type=FHIR_JSON)],
) -> JSONResponse:
    """A transaction (all or nothing) or batch Bundle; the response Bundle lists each entry."""
    result = read_bundle(body)
    _authorise_records(access, result)
    digest = hashlib.sha256(json.dumps(body, sort_keys=True).encode()).hexdigest()
    message_id = f"fhir-bundle:{body.get('id') or digest}"
    stored = access.service.ingest_records(
        patients=result.patients,
        observations=result.observations,
        events=result.events,
        conditions=result.conditions,
        devices=result.devices,
        message_id=message_id,
    )
    kind = "transaction-response" if body.get("type") == "transaction" else "batch-response"
    entries = []
    outcomes = dict(getattr(result, "entry_outcomes", []) or [])
    for i, _entry in enumerate(body.get("entry", [])):
        problem = outcomes.get(i)
        if problem is not None:
            entries.append({"response": {"status": "422 Unprocessable Entity", "outcome": problem}})
        else:
            entries.append({"response": {"status": "201 Created"}})
    return _fhir(
        {
            "resourceType": "Bundle",
            "type": kind,
            "entry": entries,
            "meta": {
                "tag": [
                    {"code": f"accepted:{stored.accepted}"},
                    {"code": f"duplicates:{stored.duplicates}"},
                ]
            },
        }
    )


@router.post("/{resource_type}", status_code=201)
def create(
    resource_type: str,
    access: CurrentAccess,
    body: Annotated[dict[str, Any], Body(media_type=FHIR_JSON)],
) -> JSONResponse:
    """Create one resource (validated; a resubmitted one changes nothing)."""
    if resource_type not in IMPORTABLE:
        raise NotFoundError(f"medtwin imports {', '.join(IMPORTABLE)}; not {resource_type!r}")
    if body.get("resourceType") != resource_type:
        raise DataFormatError(
            f"the body is a {body.get('resourceType')!r}, posted to /fhir/{resource_type}"
        )
    result = to_records(body)  # validates (structure, invariants, code sets) first
    _authorise_records(access, result)
    access.service.ingest_records(
        patients=result.patients,
        observations=result.observations,
        events=result.events,
        conditions=result.conditions,
        devices=result.devices,
    )
    return _fhir(body, 201)


@router.get("/Patient/{patient_id}")
def read_patient(patient_id: str, access: CurrentAccess) -> JSONResponse:
    """One Patient."""
    access.require("r", "Patient", patient_id=patient_id, action="FHIR read Patient")
    return _fhir(patient_to_fhir(access.service.store.get_patient(patient_id)))


@router.get("/Patient/{patient_id}/_history")
def patient_history(patient_id: str, access: CurrentAccess) -> JSONResponse:
    """The Patient's versions (medtwin keeps the current one)."""
    access.require("r", "Patient", patient_id=patient_id, action="FHIR history Patient")
    resource = patient_to_fhir(access.service.store.get_patient(patient_id))
    return _fhir(bundle([resource], type="history"))


@router.get("/Patient")
def search_patients(
    request: Request,
    access: CurrentAccess,
    _count: Annotated[int, Query(ge=1, le=10_000)] = 1000,
) -> JSONResponse:
    """Patients by ``_id`` or ``identifier``; ``_revinclude=Observation:patient`` adds theirs."""
    store = access.service.store
    wanted = request.query_params.get("_id")
    identifier = request.query_params.get("identifier")
    if identifier is not None:
        found = store.find_patient(identifier)
        if found is None or (wanted is not None and wanted != found):
            return _fhir(bundle([], type="searchset"))
        wanted = found
    pids = _patients_to_search(access, wanted, "Patient")
    if wanted is not None and pids:
        try:
            store.get_patient(wanted)
        except NotFoundError:
            pids = []
    resources = [patient_to_fhir(store.get_patient(pid)) for pid in pids[:_count]]
    revinclude = request.query_params.getlist("_revinclude")
    if "Observation:patient" in revinclude or "Observation:subject" in revinclude:
        for pid in pids[:_count]:
            access.require("s", "Observation", patient_id=pid, action="FHIR _revinclude")
        resources += _observations(access, pids[:_count])
    return _fhir(bundle(resources, type="searchset"))


@router.get("/Observation")
def search_observations(request: Request, access: CurrentAccess) -> JSONResponse:
    """Observations by ``patient``, ``date`` and ``code``; ``_include=Observation:patient``."""
    pids = _patients_to_search(access, _patient_param(request), "Observation")
    start, end = _date_range(request.query_params.getlist("date"))
    code = request.query_params.get("code")
    code = code.split("|")[-1] if code else None
    resources = _observations(access, pids, start=start, end=end, code=code)
    if request.query_params.get("_include") in ("Observation:patient", "Observation:subject"):
        for pid in sorted({r["subject"]["reference"].split("/")[-1] for r in resources}):
            access.require("r", "Patient", patient_id=pid, action="FHIR _include")
            resources.append(patient_to_fhir(access.service.store.get_patient(pid)))
    return _fhir(bundle(resources, type="searchset"))


@router.get("/RiskAssessment")
def search_risks(request: Request, access: CurrentAccess) -> JSONResponse:
    """Stored alerts as RiskAssessments, by ``patient`` and ``date``."""
    pids = _patients_to_search(access, _patient_param(request), "RiskAssessment")
    start, end = _date_range(request.query_params.getlist("date"))
    resources = []
    for pid in pids:
        for alert in access.service.store.alerts(patient_id=pid, since=start):
            if end is None or alert.time < end:
                resources.append(alert_to_fhir(alert))
    return _fhir(bundle(resources, type="searchset"))


@router.get("/Patient/{patient_id}/$forecast")
def forecast(
    patient_id: str,
    access: CurrentAccess,
    horizon_min: Annotated[float, Query(gt=0, le=1440)] = 240.0,
) -> JSONResponse:
    """The twin's glucose forecast as an Observation, with its risks as RiskAssessments."""
    access.require("r", "Observation", patient_id=patient_id, action="FHIR $forecast")
    host = access.service.host
    model = type(host.model).__name__
    fc = host.forecast(patient_id, horizon_min)
    issued = datetime.now(UTC)
    resources = [forecast_to_fhir(patient_id, fc, model=model, issued=issued)]
    for spec in RISKS:
        p = host.risk(patient_id, spec.kind, within_min=spec.window_min, below=spec.below,
                      above=spec.above)  # fmt: skip
        threshold = spec.below if spec.below is not None else spec.above
        resources.append(
            risk_to_fhir(
                patient_id,
                spec.kind,
                p,
                spec.window_min,
                model=model,
                issued=issued,
                threshold_mg_dl=float(threshold or 0),
            )
        )
    return _fhir(bundle(resources, type="collection"))
