"""Roles, their default scopes, and the authenticated principal."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from enum import StrEnum
from types import MappingProxyType

from medtwin.errors import ParameterError
from medtwin.security._scopes import Scope, parse_scopes

__all__ = ["ROLE_SCOPES", "Principal", "Role"]


class Role(StrEnum):
    """What a user is: the role rules of :func:`authorize` apply on top of the scopes.

    >>> Role("clinician") is Role.clinician, str(Role.admin)
    (True, 'admin')
    """

    admin = "admin"
    clinician = "clinician"
    researcher = "researcher"
    device = "device"
    interface = "interface"


ROLE_SCOPES: Mapping[Role, tuple[Scope, ...]] = MappingProxyType(
    {
        Role.admin: parse_scopes("user/*.cruds system/*.cruds"),
        Role.clinician: parse_scopes("user/*.cruds"),
        Role.researcher: parse_scopes("user/*.rs"),
        Role.device: parse_scopes("patient/Observation.c"),
        # a hospital system's feed (the ADT interface engine): writes Encounters, reads nothing
        Role.interface: parse_scopes("system/Encounter.c"),
    }
)
"""The scopes a new user of each role gets unless others are given (read-only mapping)."""


@dataclass(frozen=True, slots=True)
class Principal:
    """Who is calling: a user or a device, with its role and granted scopes.

    ``patient_id`` is the one patient a ``patient/...`` scope refers to (a device's patient);
    ``device_id`` names the device a device token was issued for.

    >>> p = Principal("u1", "dr.who", Role.clinician, ROLE_SCOPES[Role.clinician])
    >>> p.role, p.patient_id
    (<Role.clinician: 'clinician'>, None)
    """

    subject: str
    username: str
    role: Role
    scopes: tuple[Scope, ...]
    patient_id: str | None = None
    device_id: str | None = None

    def __post_init__(self) -> None:
        if not isinstance(self.subject, str) or not self.subject:
            raise ParameterError("a Principal needs a non-empty subject (user id)")
        if not isinstance(self.role, Role):
            try:
                object.__setattr__(self, "role", Role(self.role))
            except ValueError:
                raise ParameterError(
                    f"unknown role {self.role!r}; expected one of {', '.join(Role)}"
                ) from None
        if not isinstance(self.scopes, tuple):
            object.__setattr__(self, "scopes", tuple(self.scopes))
        if not all(isinstance(s, Scope) for s in self.scopes):
            raise ParameterError("Principal.scopes must hold Scope values (see parse_scopes)")
