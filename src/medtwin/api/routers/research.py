"""De-identified views for researchers: pseudonyms instead of ids, no direct identifiers."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from fastapi import APIRouter

from medtwin.api._auth import CurrentAccess
from medtwin.errors import NotFoundError
from medtwin.security import deidentify_patient

router = APIRouter(prefix="/api/research", tags=["research"])


def _by_pseudonym(access: CurrentAccess) -> dict[str, str]:
    store = access.service.store
    return {store.pseudonym(pid): pid for pid in store.list_patients()}


@router.get("/patients")
def patients(access: CurrentAccess) -> list[dict[str, Any]]:
    """Every patient, de-identified (pseudonym, birth year, sex)."""
    access.require("s", "Patient", deidentified=True, action="research search Patient")
    store = access.service.store
    key = access.service.keyring.pseudonym_key
    return [deidentify_patient(store.get_patient(pid), key) for pid in store.list_patients()]


@router.get("/patients/{pseudonym}/observations")
def observations(
    pseudonym: str,
    access: CurrentAccess,
    code: str | None = None,
    start: datetime | None = None,
    end: datetime | None = None,
) -> list[dict[str, Any]]:
    """A pseudonymised patient's observations (values and times only)."""
    access.require("s", "Observation", deidentified=True, action="research search Observation")
    patient_id = _by_pseudonym(access).get(pseudonym)
    if patient_id is None:
        raise NotFoundError(f"no patient with pseudonym {pseudonym!r}")
    rows = access.service.store.observations(patient_id, code=code, start=start, end=end)
    return [
        {
            "patient": pseudonym,
            "time": r.time.isoformat(),
            "code": r.code,
            "value": r.value,
            "unit": r.unit,
        }
        for r in rows
    ]
