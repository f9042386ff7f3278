"""Logging in: OAuth2 password flow giving a bearer JWT with the role's SMART scopes."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Request
from fastapi.security import OAuth2PasswordRequestForm

from medtwin.api._auth import CurrentAccess, service_of
from medtwin.api.schemas import TokenOut, UserOut
from medtwin.errors import AuthenticationError
from medtwin.security import format_scopes

router = APIRouter(tags=["auth"])


@router.post("/auth/token", response_model=TokenOut)
def login(request: Request, form: Annotated[OAuth2PasswordRequestForm, Depends()]) -> TokenOut:
    """Exchange a username and password for an access token (every attempt is audited)."""
    service = service_of(request)
    principal = service.store.authenticate(form.username, form.password)
    if principal is None:
        service.store.audit(
            form.username[:100], "none", "login", "auth/token", "denied", detail="bad credentials"
        )
        raise AuthenticationError("wrong username or password")
    service.store.audit(principal.username, str(principal.role), "login", "auth/token", "granted")
    token = service.tokens.issue(principal)
    return TokenOut(
        access_token=token,
        expires_in=int(service.tokens.ttl_s),
        scope=format_scopes(principal.scopes),
        role=str(principal.role),
    )


@router.get("/auth/me", response_model=UserOut)
def me(access: CurrentAccess) -> UserOut:
    """The caller's identity, role and scopes."""
    p = access.principal
    return UserOut(
        username=p.username,
        role=str(p.role),
        scope=format_scopes(p.scopes),
        patient_id=p.patient_id,
    )
