"""The one place where exceptions become HTTP responses.

Every :class:`~medtwin.errors.MedtwinError` maps to a status code here and nowhere else; FHIR
endpoints (``/fhir/...``) answer with an OperationOutcome, the rest with ``{"error", "detail"}``.
Anything unexpected becomes a 500 with a reference number: the stack trace goes to the log, never
to the client.
"""

from __future__ import annotations

import logging
import uuid
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from medtwin.errors import (
    AuditChainError,
    AuthenticationError,
    AuthorizationError,
    ConfigurationError,
    ConflictError,
    DataFormatError,
    FHIRValidationError,
    MedtwinError,
    NotCalibratedError,
    NotFoundError,
    ParameterError,
    ScheduleError,
    SimulationError,
    UnitError,
    UnknownPatientError,
)

__all__ = ["STATUS", "install_error_handlers", "status_of"]

log = logging.getLogger("medtwin.api")

STATUS: tuple[tuple[type[MedtwinError], int], ...] = (
    (AuthenticationError, 401),
    (AuthorizationError, 403),
    (NotFoundError, 404),
    (UnknownPatientError, 404),
    (ConflictError, 409),
    (NotCalibratedError, 409),
    (FHIRValidationError, 422),
    (DataFormatError, 400),
    (UnitError, 400),
    (ParameterError, 400),
    (ScheduleError, 400),
    (ConfigurationError, 400),
    (SimulationError, 422),
    (AuditChainError, 500),
)
"""Status code of each error class (the first match in this order wins)."""

_FHIR_CODE = {400: "invalid", 401: "login", 403: "forbidden", 404: "not-found", 409: "conflict",
              422: "processing", 500: "exception"}  # fmt: skip


def status_of(exc: MedtwinError) -> int:
    """The HTTP status of a medtwin error."""
    for cls, status in STATUS:
        if isinstance(exc, cls):
            return status
    return 400


def _is_fhir(request: Request) -> bool:
    return request.url.path.startswith("/fhir")


def _outcome(status: int, message: str, expression: str | None = None) -> dict[str, Any]:
    issue: dict[str, Any] = {
        "severity": "error" if status < 500 else "fatal",
        "code": _FHIR_CODE.get(status, "processing"),
        "diagnostics": message,
    }
    if expression:
        issue["expression"] = [expression]
    return {"resourceType": "OperationOutcome", "issue": [issue]}


def _respond(request: Request, status: int, error: str, message: str, **extra: Any) -> JSONResponse:
    headers = {"WWW-Authenticate": "Bearer"} if status == 401 else None
    if _is_fhir(request):
        body = extra.get("outcome") or _outcome(status, message)
        return JSONResponse(body, status, headers=headers, media_type="application/fhir+json")
    payload: dict[str, Any] = {"error": error, "detail": message}
    payload.update({k: v for k, v in extra.items() if k != "outcome" and v is not None})
    if extra.get("outcome") is not None:
        payload["outcome"] = extra["outcome"]
    return JSONResponse(payload, status, headers=headers)


def install_error_handlers(app: FastAPI) -> None:
    """Register the handlers on ``app``."""

    @app.exception_handler(MedtwinError)
    async def medtwin_error(request: Request, exc: MedtwinError) -> JSONResponse:
        status = status_of(exc)
        outcome = getattr(exc, "outcome", None)
        if status >= 500:
            ref = uuid.uuid4().hex[:12]
            log.error("error %s on %s %s: %s", ref, request.method, request.url.path, exc)
            return _respond(request, status, type(exc).__name__, f"internal error (ref {ref})")
        # ``acks``: per-message HL7 acknowledgements of a refused ADT batch
        acks = getattr(exc, "acks", None)
        return _respond(request, status, type(exc).__name__, str(exc), outcome=outcome, acks=acks)

    @app.exception_handler(RequestValidationError)
    async def validation_error(request: Request, exc: RequestValidationError) -> JSONResponse:
        problems = []
        for err in exc.errors():
            where = ".".join(str(p) for p in err.get("loc", ()))
            problems.append(f"{where}: {err.get('msg', 'invalid')}")
        message = "; ".join(problems) or "invalid request"
        return _respond(request, 422, "RequestValidationError", message)

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        return _respond(request, exc.status_code, "HTTPError", str(exc.detail))

    @app.exception_handler(Exception)
    async def unexpected(request: Request, exc: Exception) -> JSONResponse:
        ref = uuid.uuid4().hex[:12]
        log.exception("unexpected error %s on %s %s", ref, request.method, request.url.path)
        return _respond(request, 500, "InternalError", f"internal error (ref {ref})")
