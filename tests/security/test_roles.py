from __future__ import annotations

import pytest

from medtwin.errors import ParameterError
from medtwin.security import ROLE_SCOPES, Principal, Role, format_scopes


def test_roles():
    assert [str(r) for r in Role] == ["admin", "clinician", "researcher", "device", "interface"]


@pytest.mark.parametrize(
    ("role", "scopes"),
    [
        (Role.admin, "user/*.cruds system/*.cruds"),
        (Role.clinician, "user/*.cruds"),
        (Role.researcher, "user/*.rs"),
        (Role.device, "patient/Observation.c"),
        (Role.interface, "system/Encounter.c"),
    ],
)
def test_role_scopes(role, scopes):
    assert format_scopes(ROLE_SCOPES[role]) == scopes


def test_role_scopes_are_read_only():
    with pytest.raises(TypeError):
        ROLE_SCOPES[Role.device] = ROLE_SCOPES[Role.admin]  # type: ignore[index]


def test_principal_coerces_role_and_scopes():
    p = Principal("u1", "ann", "researcher", list(ROLE_SCOPES[Role.researcher]))  # type: ignore[arg-type]
    assert p.role is Role.researcher
    assert p.scopes == ROLE_SCOPES[Role.researcher]
    assert hash(p) == hash(Principal("u1", "ann", Role.researcher, ROLE_SCOPES[Role.researcher]))


def test_principal_validates():
    with pytest.raises(ParameterError, match="unknown role"):
        Principal("u1", "ann", "superuser", ())  # type: ignore[arg-type]
    with pytest.raises(ParameterError, match="subject"):
        Principal("", "ann", Role.admin, ())
    with pytest.raises(ParameterError, match="Scope"):
        Principal("u1", "ann", Role.admin, ("user/*.rs",))  # type: ignore[arg-type]
