"""Serving the dashboard: page shells, its own static files and plotly.js from the plotly package.

Only files listed when the dashboard is mounted are served (no path from a request ever reaches
the file system), every page carries a Content-Security-Policy that allows scripts from this
origin only, and pages are never cached (a shared computer's back button shows no stale data).
"""

from __future__ import annotations

import importlib.resources
import re
from pathlib import Path

from fastapi import APIRouter, FastAPI, Request
from fastapi.responses import FileResponse, PlainTextResponse, Response

__all__ = ["CONTENT_SECURITY_POLICY", "mount_dashboard"]

_HERE = Path(__file__).resolve().parent
_PAGES = _HERE / "pages"
_STATIC = _HERE / "static"

CONTENT_SECURITY_POLICY = "; ".join(
    (
        "default-src 'none'",
        "script-src 'self'",
        # plotly.js sets element styles and inserts its own stylesheet rules at run time
        "style-src 'self' 'unsafe-inline'",
        "img-src 'self' data: blob:",
        "font-src 'self'",
        "connect-src 'self' ws: wss:",
        "base-uri 'none'",
        "form-action 'self'",
        "frame-ancestors 'none'",
    )
)
"""The policy every dashboard page is served with: no inline script, no third-party origin."""

_PAGE_HEADERS = {
    "Content-Security-Policy": CONTENT_SECURITY_POLICY,
    "Cache-Control": "no-store",
    "Referrer-Policy": "no-referrer",
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Cross-Origin-Opener-Policy": "same-origin",
}
_STATIC_HEADERS = {"Cache-Control": "no-cache", "X-Content-Type-Options": "nosniff"}
_MEDIA_TYPES = {
    ".js": "text/javascript; charset=utf-8",
    ".css": "text/css; charset=utf-8",
    ".svg": "image/svg+xml",
}
_READ = ["GET", "HEAD"]
_PATIENT_ID = re.compile(r"^[A-Za-z0-9\-\.]{1,64}$")


def _plotly_js() -> Path | None:
    """plotly.min.js as the installed plotly package ships it (None if the install lacks it)."""
    try:
        path = Path(str(importlib.resources.files("plotly") / "package_data" / "plotly.min.js"))
    except ModuleNotFoundError:
        return None
    return path if path.is_file() else None


def _file(request: Request, path: Path, headers: dict[str, str], media_type: str) -> Response:
    """``path`` as a response, or 304 when the browser's copy (``If-None-Match``) is current."""
    response = FileResponse(path, media_type=media_type, headers=headers, stat_result=path.stat())
    etag = response.headers.get("etag")
    sent = request.headers.get("if-none-match")
    if etag and sent and etag in (tag.strip() for tag in sent.split(",")):
        return Response(status_code=304, headers={"ETag": etag, **headers})
    return response


def _page(name: str) -> Path:
    return _PAGES / f"{name}.html"


def mount_dashboard(app: FastAPI) -> None:
    """Add the dashboard's pages and static files to ``app`` (hidden from the OpenAPI spec).

    >>> from fastapi.testclient import TestClient
    >>> app = FastAPI()
    >>> mount_dashboard(app)
    >>> page = TestClient(app).get("/ward")
    >>> page.status_code, page.headers["content-security-policy"] == CONTENT_SECURITY_POLICY
    (200, True)
    """
    router = APIRouter(include_in_schema=False)
    static = {
        p.name: p
        for p in sorted(_STATIC.iterdir())
        if p.is_file() and p.suffix in _MEDIA_TYPES and not p.name.startswith(".")
    }

    def page(request: Request, name: str) -> Response:
        return _file(request, _page(name), _PAGE_HEADERS, "text/html; charset=utf-8")

    @router.api_route("/", methods=_READ)
    def login_page(request: Request) -> Response:
        return page(request, "login")

    @router.api_route("/ward", methods=_READ)
    def ward_page(request: Request) -> Response:
        return page(request, "ward")

    @router.api_route("/patients/{patient_id}", methods=_READ)
    def patient_page(request: Request, patient_id: str) -> Response:
        if not _PATIENT_ID.match(patient_id):
            return PlainTextResponse("no such page", 404, headers=_PAGE_HEADERS)
        return page(request, "patient")

    @router.api_route("/patients/{patient_id}/dosing", methods=_READ)
    def dosing_page(request: Request, patient_id: str) -> Response:
        if not _PATIENT_ID.match(patient_id):
            return PlainTextResponse("no such page", 404, headers=_PAGE_HEADERS)
        return page(request, "dosing")

    @router.api_route("/hospital", methods=_READ)
    def hospital_page(request: Request) -> Response:
        return page(request, "hospital")

    @router.api_route("/audit", methods=_READ)
    def audit_page(request: Request) -> Response:
        return page(request, "audit")

    @router.api_route("/static/vendor/plotly.min.js", methods=_READ)
    def plotly_js(request: Request) -> Response:
        path = _plotly_js()
        if path is None:
            return PlainTextResponse(
                "plotly.min.js is missing from the installed plotly package: reinstall plotly "
                "(pip install --force-reinstall plotly)",
                404,
            )
        headers = {**_STATIC_HEADERS, "Cache-Control": "max-age=86400"}
        return _file(request, path, headers, _MEDIA_TYPES[".js"])

    @router.api_route("/static/{name}", methods=_READ)
    def static_file(request: Request, name: str) -> Response:
        path = static.get(name)
        if path is None:
            return PlainTextResponse(f"no static file {name!r}", 404)
        return _file(request, path, _STATIC_HEADERS, _MEDIA_TYPES[path.suffix])

    app.include_router(router)
