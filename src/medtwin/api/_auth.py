"""Who is calling, and may they: bearer tokens, authorisation decisions, and their audit.

Every decision, granted or denied, is written to the audit log with the actor, the action, the
resource and the reason.  Tokens come in the ``Authorization: Bearer`` header; WebSockets (which
browsers cannot give headers) and Nightscout uploaders pass ``access_token`` or ``token`` in the
query string.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Annotated

from fastapi import Depends, Request
from fastapi.security import OAuth2PasswordBearer

from medtwin.errors import AuthenticationError, AuthorizationError
from medtwin.security import Principal, Role, authorize

if TYPE_CHECKING:
    from medtwin.api._service import Service

__all__ = ["Access", "CurrentAccess", "access_of", "oauth2", "service_of"]

oauth2 = OAuth2PasswordBearer(
    tokenUrl="/auth/token",
    auto_error=False,
    scopes={
        "user/*.cruds": "everything the user's role allows",
        "user/*.rs": "read and search",
        "patient/Observation.c": "a device writes its patient's observations",
        "system/*.rs": "a backend service reads",
    },
)


def service_of(request: Request) -> Service:
    """The running :class:`~medtwin.api._service.Service`."""
    service: Service = request.app.state.service
    return service


@dataclass(frozen=True, slots=True)
class Access:
    """A verified caller and the means to check and audit what it does."""

    principal: Principal
    service: Service

    def require(
        self,
        permission: str,
        resource_type: str,
        *,
        patient_id: str | None = None,
        deidentified: bool = False,
        action: str | None = None,
    ) -> None:
        """Raise :class:`AuthorizationError` unless allowed; audit the decision either way."""
        p = self.principal
        on_team = (
            p.role == Role.clinician
            and patient_id is not None
            and self.service.store.on_care_team(p.subject, patient_id)
        )
        decision = authorize(
            p,
            permission,
            resource_type,
            patient_id=patient_id,
            on_care_team=on_team,
            deidentified=deidentified,
        )
        self.audit(
            action or f"{permission} {resource_type}",
            f"{resource_type}" + (f"/{patient_id}" if patient_id else ""),
            "granted" if decision.allowed else "denied",
            patient_id=patient_id,
            detail=decision.reason,
        )
        if not decision.allowed:
            raise AuthorizationError(decision.reason)

    def audit(
        self,
        action: str,
        resource: str,
        outcome: str,
        *,
        patient_id: str | None = None,
        detail: str = "",
    ) -> None:
        """Write one audit entry for this caller."""
        self.service.store.audit(
            self.principal.username,
            str(self.principal.role),
            action,
            resource,
            outcome,
            patient_id=patient_id,
            detail=detail,
        )

    def visible_patients(self) -> list[str] | None:
        """Patient ids this caller may see; ``None`` means all (admin, system)."""
        if self.principal.role == Role.admin:
            return None
        if self.principal.role == Role.clinician:
            return list(self.service.store.list_patients(clinician=self.principal.subject))
        if self.principal.role == Role.device and self.principal.patient_id:
            return [self.principal.patient_id]
        return []


def token_of(request: Request, header_token: str | None) -> str | None:
    """The bearer token from the header, or from ``access_token``/``token`` in the query."""
    if header_token:
        return header_token
    return request.query_params.get("access_token") or request.query_params.get("token")


def access_of(
    request: Request, header_token: Annotated[str | None, Depends(oauth2)] = None
) -> Access:
    """FastAPI dependency: verify the token (401 and an audit entry when it fails)."""
    service = service_of(request)
    token = token_of(request, header_token)
    try:
        if not token:
            raise AuthenticationError("no bearer token: log in at /auth/token")
        principal = service.tokens.verify(token)
    except AuthenticationError as exc:
        service.store.audit(
            "anonymous",
            "none",
            f"{request.method} {request.url.path}",
            request.url.path,
            "denied",
            detail=str(exc),
        )
        raise
    return Access(principal, service)


CurrentAccess = Annotated[Access, Depends(access_of)]
