"""A Nightscout-compatible upload endpoint, so real CGM uploaders can point at medtwin.

Uploaders (xDrip+, AndroidAPS, Loop) are configured with the base URL
``https://<host>/nightscout/<device-id>/`` and the device's Nightscout secret, which
``medtwin device secret <device-id>`` shows.  As the Nightscout API v1 defines, they send the
SHA-1 hex digest of the secret in the ``api-secret`` header; a device bearer token (``?token=``
or ``Authorization``) works too.  The secret is derived from the service's key and the device id
(HMAC), so nothing secret is stored.

Entries go through the same reader as Nightscout exports (:func:`medtwin.interop.read_nightscout`):
implausible values and duplicates are set aside and reported back, never stored.
"""

from __future__ import annotations

import hashlib
import hmac
from typing import Annotated, Any

from fastapi import APIRouter, Body, Header, Request

from medtwin.api._auth import Access, service_of, token_of
from medtwin.errors import AuthenticationError, AuthorizationError
from medtwin.interop.wearables import read_nightscout
from medtwin.records import EventRecord, ObservationRecord

router = APIRouter(prefix="/nightscout/{device_id}/api/v1", tags=["nightscout"])


def nightscout_secret(token_key: bytes, device_id: str) -> str:
    """The device's Nightscout API secret (derived, never stored)."""
    return hmac.new(token_key, f"nightscout:{device_id}".encode(), hashlib.sha256).hexdigest()[:24]


def _device_access(request: Request, device_id: str, api_secret: str | None) -> Access:
    service = service_of(request)
    if api_secret:
        expected = hashlib.sha1(  # the Nightscout protocol's digest, not a password hash
            nightscout_secret(service.keyring.token_key, device_id).encode(), usedforsecurity=False
        ).hexdigest()
        if not hmac.compare_digest(api_secret.lower(), expected):
            service.store.audit(f"device:{device_id}", "device", "nightscout upload",
                                f"Device/{device_id}", "denied", detail="wrong api-secret")  # fmt: skip
            raise AuthenticationError("wrong api-secret for this device")
        return Access(service.device_principal(device_id), service)
    token = token_of(request, None)
    try:
        if not token:
            raise AuthenticationError("send the api-secret header or a device token (?token=)")
        principal = service.tokens.verify(token)
    except AuthenticationError as exc:
        service.store.audit("anonymous", "none", "nightscout upload", f"Device/{device_id}",
                            "denied", detail=str(exc))  # fmt: skip
        raise
    if principal.device_id not in (None, device_id):
        reason = f"this token belongs to device {principal.device_id!r}"
        service.store.audit(principal.username, str(principal.role), "nightscout upload",
                            f"Device/{device_id}", "denied", detail=reason)  # fmt: skip
        raise AuthorizationError(reason)
    return Access(principal, service)


def _uploader(
    request: Request, device_id: str, api_secret: str | None, action: str
) -> tuple[Access, str]:
    """The authorised uploader and the patient its device measures."""
    access = _device_access(request, device_id, api_secret)
    patient_id = access.service.store.get_device(device_id).patient_id or ""
    access.require("c", "Observation", patient_id=patient_id, action=action)
    return access, patient_id


@router.get("/status.json")
def status(device_id: str) -> dict[str, Any]:
    """What uploaders check before they upload."""
    return {"status": "ok", "name": "medtwin", "version": "0.1.0", "apiEnabled": True,
            "settings": {"units": "mg/dl"}, "device": device_id}  # fmt: skip


@router.post("/entries")
def upload_entries(
    device_id: str,
    request: Request,
    entries: Annotated[list[dict[str, Any]], Body(max_length=10_000)],
    api_secret: Annotated[str | None, Header(alias="api-secret", max_length=100)] = None,
) -> dict[str, Any]:
    """Store uploaded SGV entries as CGM observations of the device's patient."""
    access, patient_id = _uploader(request, device_id, api_secret, "nightscout upload")
    sgv = [e for e in entries if e.get("type", "sgv") == "sgv"]
    history = read_nightscout(sgv)
    records = [
        ObservationRecord(
            patient_id,
            "99504-3",
            t.to_pydatetime(),
            float(v),
            "mg/dL",
            device_id=device_id,
            source_id=f"ns:{device_id}:{int(t.value // 1_000_000)}",
        )
        for t, v in zip(history.cgm["time"], history.cgm["glucose_mg_dl"], strict=True)
    ]
    result = access.service.ingest_records(observations=records)
    return {
        "accepted": result.accepted,
        "duplicates": result.duplicates,
        "set_aside": [f"{i.kind}: {i.message}" for i in history.issues if i.kind != "gap"],
    }


@router.post("/treatments")
def upload_treatments(
    device_id: str,
    request: Request,
    treatments: Annotated[list[dict[str, Any]], Body(max_length=10_000)],
    api_secret: Annotated[str | None, Header(alias="api-secret", max_length=100)] = None,
) -> dict[str, Any]:
    """Store uploaded treatments (insulin boluses, carbohydrate, temp basals) as events."""
    access, patient_id = _uploader(request, device_id, api_secret, "nightscout treatments")
    history = read_nightscout([], treatments)
    units = {"bolus": "U", "basal": "U/h", "carbs": "g"}
    records = [
        EventRecord(
            patient_id,
            kind,
            t.to_pydatetime(),
            float(v),
            units[kind],
            source_id=f"ns:{device_id}:{kind}:{int(t.value // 1_000_000)}",
        )
        for t, kind, v in zip(
            history.events["time"], history.events["kind"], history.events["value"], strict=True
        )
    ]
    result = access.service.ingest_records(events=records)
    return {"accepted": result.accepted, "duplicates": result.duplicates}
