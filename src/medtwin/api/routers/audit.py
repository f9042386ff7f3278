"""The audit log, for admins: read it, and verify its hash chain."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Query

from medtwin.api._auth import CurrentAccess

router = APIRouter(prefix="/api/audit", tags=["audit"])


@router.get("")
def audit_log(
    access: CurrentAccess,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
    before_seq: Annotated[int | None, Query(ge=1, le=2**63 - 1)] = None,
) -> list[dict[str, Any]]:
    """The newest audit entries (before ``before_seq`` to page back)."""
    access.require("r", "AuditEvent", action="read audit log")
    entries = access.service.store.audit_log(limit=limit, before_seq=before_seq)
    return [
        {
            "seq": e.seq,
            "time": e.time.isoformat(),
            "actor": e.actor,
            "role": e.role,
            "action": e.action,
            "resource": e.resource,
            "patient_id": e.patient_id,
            "outcome": e.outcome,
            "detail": e.detail,
        }
        for e in entries
    ]


@router.get("/verify")
def verify(access: CurrentAccess) -> dict[str, Any]:
    """Check the whole hash chain: ``ok`` false names the first entry that does not verify."""
    access.require("r", "AuditEvent", action="verify audit log")
    report = access.service.store.verify_audit()
    return {
        "ok": report.ok,
        "n_entries": report.n_entries,
        "first_bad_seq": report.first_bad_seq,
        "reason": report.reason,
    }
