from __future__ import annotations

import re

import pytest

from medtwin.errors import AuthenticationError, ParameterError
from medtwin.security import Scope, format_scopes, parse_scopes


@pytest.mark.parametrize(
    ("text", "context", "resource", "perms"),
    [
        ("patient/Observation.rs", "patient", "Observation", "rs"),
        ("user/*.cruds", "user", "*", "cruds"),
        ("system/*.rs", "system", "*", "rs"),
        ("patient/Observation.c", "patient", "Observation", "c"),
        ("user/Patient.cud", "user", "Patient", "cud"),
        ("user/Patient.ds", "user", "Patient", "ds"),
        # SMART v1
        ("user/Observation.read", "user", "Observation", "rs"),
        ("patient/*.write", "patient", "*", "cud"),
        ("system/Patient.*", "system", "Patient", "cruds"),
    ],
)
def test_parse(text, context, resource, perms):
    s = Scope.parse(text)
    assert (s.context, s.resource_type, s.permissions) == (context, resource, frozenset(perms))


@pytest.mark.parametrize(
    "text",
    [
        "",
        "Observation.rs",
        "patient/Observation",
        "patient/Observation.",
        "admin/*.rs",
        "Patient/Observation.rs",
        "patient/observation.rs",
        "patient/Observation.sr",  # v2 letters must be in cruds order
        "patient/Observation.rr",
        "patient/Observation.x",
        "patient/Observation.rsx",
        "patient/Observation.READ",
        "patient/Observation.rs?category=vital-signs",
        "openid",
        "launch/patient",
        " patient/Observation.rs",
        "patient/Obs ervation.rs",
    ],
)
def test_malformed_scopes_raise_naming_the_scope(text):
    with pytest.raises(AuthenticationError, match="invalid scope") as info:
        Scope.parse(text)
    assert repr(text) in str(info.value)


def test_allows_matches_type_and_permission():
    s = Scope.parse("patient/Observation.rs")
    assert s.allows("Observation", "r") and s.allows("Observation", "s")
    assert not s.allows("Observation", "c")
    assert not s.allows("Patient", "r")
    wild = Scope.parse("user/*.c")
    assert wild.allows("Patient", "c") and wild.allows("Observation", "c")
    assert not wild.allows("Patient", "r")


@pytest.mark.parametrize("perm", ["x", "rs", "", "read"])
def test_allows_rejects_unknown_permissions(perm):
    with pytest.raises(ParameterError):
        Scope.parse("user/*.cruds").allows("Patient", perm)


def test_str_is_canonical_v2():
    assert str(Scope.parse("user/*.*")) == "user/*.cruds"
    assert str(Scope.parse("patient/Observation.write")) == "patient/Observation.cud"


def test_parse_and_format_scopes_round_trip():
    scopes = parse_scopes("  user/*.rs\tsystem/Patient.read  user/*.rs ")
    assert [str(s) for s in scopes] == ["user/*.rs", "system/Patient.rs"]
    assert parse_scopes(format_scopes(scopes)) == scopes
    assert parse_scopes("") == ()
    assert format_scopes(()) == ""


def test_parse_scopes_names_the_bad_one():
    with pytest.raises(AuthenticationError, match=re.escape("'user/*.rx'")):
        parse_scopes("user/*.rs user/*.rx")


def test_parse_scopes_rejects_non_str_and_huge_input():
    with pytest.raises(AuthenticationError):
        parse_scopes(["user/*.rs"])  # type: ignore[arg-type]
    with pytest.raises(AuthenticationError, match="too long"):
        parse_scopes("user/*.rs " * 1000)


def test_scope_constructor_validates():
    assert Scope("user", "Patient", frozenset("r")).allows("Patient", "r")
    with pytest.raises(ParameterError):
        Scope("admin", "Patient", frozenset("r"))  # type: ignore[arg-type]
    with pytest.raises(ParameterError):
        Scope("user", "Patient", frozenset())
    with pytest.raises(ParameterError):
        Scope("user", "Patient", frozenset("rx"))
    with pytest.raises(ParameterError):
        Scope("user", "patient/x", frozenset("r"))


def test_scope_is_hashable_and_immutable():
    s = Scope.parse("user/*.rs")
    assert {s, Scope.parse("user/*.read")} == {s}
    with pytest.raises(AttributeError):
        s.context = "system"  # type: ignore[misc]
