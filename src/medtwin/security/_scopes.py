"""SMART on FHIR scopes (App Launch v2 ``.cruds``; v1 ``.read``/``.write``/``.*`` accepted)."""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Literal, cast

from medtwin.errors import AuthenticationError, ParameterError

__all__ = ["PERMISSIONS", "Context", "Permission", "Scope", "format_scopes", "parse_scopes"]

Context = Literal["patient", "user", "system"]
Permission = Literal["c", "r", "u", "d", "s"]

PERMISSIONS = "cruds"
"""SMART v2 permissions in their canonical order: create, read, update, delete, search."""

_V1 = {"read": "rs", "write": "cud", "*": "cruds"}
_RESOURCE = r"\*|[A-Z][A-Za-z]{0,63}"
_SCOPE = re.compile(rf"(patient|user|system)/({_RESOURCE})\.(\*|read|write|[cruds]{{1,5}})")
_MAX_SCOPE_CHARS = 4096


@dataclass(frozen=True, slots=True)
class Scope:
    """One SMART scope: what a ``context`` may do (``permissions``) to a resource type (or ``*``).

    >>> s = Scope.parse("patient/Observation.rs")
    >>> s.context, s.resource_type, sorted(s.permissions)
    ('patient', 'Observation', ['r', 's'])
    >>> s.allows("Observation", "r"), s.allows("Observation", "c"), s.allows("Patient", "r")
    (True, False, False)
    >>> str(Scope.parse("user/*.read"))
    'user/*.rs'
    """

    context: Context
    resource_type: str
    permissions: frozenset[str]

    def __post_init__(self) -> None:
        if self.context not in ("patient", "user", "system"):
            raise ParameterError(
                f"scope context must be patient, user or system; got {self.context!r}"
            )
        if not isinstance(self.resource_type, str) or not re.fullmatch(
            _RESOURCE, self.resource_type
        ):
            raise ParameterError(
                f"scope resource type must be '*' or a FHIR resource type; got {self.resource_type!r}"
            )
        if not self.permissions or not set(self.permissions) <= set(PERMISSIONS):
            raise ParameterError(
                f"scope permissions must be a non-empty subset of c, r, u, d, s; got {self.permissions!r}"
            )
        if not isinstance(self.permissions, frozenset):
            object.__setattr__(self, "permissions", frozenset(self.permissions))

    @classmethod
    def parse(cls, text: str) -> Scope:
        """Parse ``context/ResourceType.cruds`` (v2) or ``.read``/``.write``/``.*`` (v1).

        Raises :class:`~medtwin.errors.AuthenticationError` naming ``text`` when it is not a scope.
        """
        shown = text[:80] if isinstance(text, str) else repr(text)
        m = _SCOPE.fullmatch(text) if isinstance(text, str) else None
        if m is None:
            raise AuthenticationError(
                f"invalid scope {shown!r}: expected context/ResourceType.permissions with context "
                "patient, user or system, e.g. 'patient/Observation.rs' or 'user/*.read'"
            )
        context, resource_type, perms = m.groups()
        letters = _V1.get(perms, perms)
        # v2 requires the letters in c, r, u, d, s order, each at most once.
        if "".join(c for c in PERMISSIONS if c in letters) != letters:
            raise AuthenticationError(
                f"invalid scope {shown!r}: permissions must be a subset of 'cruds' in that order"
            )
        return cls(cast(Context, context), resource_type, frozenset(letters))

    def allows(self, resource_type: str, permission: str) -> bool:
        """Whether this scope grants ``permission`` (one of ``c r u d s``) on ``resource_type``."""
        if permission not in PERMISSIONS or len(permission) != 1:
            raise ParameterError(f"a permission is one of c, r, u, d, s; got {permission!r}")
        return permission in self.permissions and self.resource_type in ("*", resource_type)

    def __str__(self) -> str:
        letters = "".join(c for c in PERMISSIONS if c in self.permissions)
        return f"{self.context}/{self.resource_type}.{letters}"


def parse_scopes(text: str) -> tuple[Scope, ...]:
    """Parse a space-separated scope string (an OAuth ``scope`` claim); duplicates are dropped.

    >>> [str(s) for s in parse_scopes("user/*.rs  system/Patient.write user/*.rs")]
    ['user/*.rs', 'system/Patient.cud']
    """
    if not isinstance(text, str):
        raise AuthenticationError(f"a scope string must be a str; got {type(text).__name__}")
    if len(text) > _MAX_SCOPE_CHARS:
        raise AuthenticationError(f"scope string is too long ({len(text)} characters)")
    return tuple(dict.fromkeys(Scope.parse(part) for part in text.split()))


def format_scopes(scopes: Iterable[Scope]) -> str:
    """The canonical (v2) space-separated scope string.

    >>> format_scopes(parse_scopes("patient/Observation.write user/*.*"))
    'patient/Observation.cud user/*.cruds'
    """
    return " ".join(str(s) for s in scopes)
