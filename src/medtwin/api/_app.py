"""The FastAPI application: routers, error handlers, the dashboard, and the service's lifecycle."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Any

from fastapi import FastAPI

from medtwin import __version__
from medtwin.api._mllp import start_mllp
from medtwin.api._service import Service
from medtwin.api.errors import install_error_handlers
from medtwin.api.routers import (
    alerts,
    audit,
    auth,
    dosing,
    fhir,
    hospital,
    live,
    nightscout,
    observations,
    patients,
    research,
    twins,
)

__all__ = ["create_app"]

DESCRIPTION = """\
Patient digital twins behind a door only the right people can open.

Log in at `/auth/token` (OAuth2 password flow) for a bearer JWT carrying SMART-on-FHIR scopes.
Every access, granted or denied, is written to a hash-chained audit log. FHIR R4 endpoints live
under `/fhir`, live updates on `/ws/patients/{id}` and `/ws/ward`.
"""


def create_app(
    service: Service,
    *,
    on_startup: Callable[[Service], Any] | None = None,
    on_shutdown: Callable[[Service], Any] | None = None,
    close_service: bool = True,
) -> FastAPI:
    """The API around a :class:`Service` (started on startup, closed on shutdown)."""

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        service.start()
        if on_startup is not None:
            on_startup(service)
        mllp = await start_mllp(service)
        try:
            yield
        finally:
            if mllp is not None:
                mllp.close()
                await mllp.wait_closed()
            if on_shutdown is not None:
                on_shutdown(service)
            if close_service:
                service.close()

    app = FastAPI(
        title="medtwin",
        version=__version__,
        description=DESCRIPTION,
        lifespan=lifespan,
        # Swagger UI and ReDoc load their scripts from a CDN: the service must work offline.
        docs_url=None,
        redoc_url=None,
        license_info={"name": "Apache-2.0", "identifier": "Apache-2.0"},
    )
    app.state.service = service
    install_error_handlers(app)
    for module in (auth, patients, observations, twins, alerts, audit, research, nightscout, fhir):
        app.include_router(module.router)
    app.include_router(dosing.router)
    app.include_router(hospital.router)
    app.include_router(live.router)

    @app.get("/healthz", tags=["service"])
    def healthz() -> dict[str, Any]:
        """Liveness: the store answers and the twins' workers run."""
        service.store.list_users()
        return {"status": "ok", "version": __version__}

    from medtwin.web import mount_dashboard

    mount_dashboard(app)
    return app
