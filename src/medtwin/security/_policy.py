"""Authorization: the scopes must allow the access, then the role rules decide."""

from __future__ import annotations

from dataclasses import dataclass

from medtwin.errors import AuthorizationError, ParameterError
from medtwin.security._roles import Principal, Role
from medtwin.security._scopes import PERMISSIONS

__all__ = ["Decision", "authorize"]

_VERBS = {"c": "create", "r": "read", "u": "update", "d": "delete", "s": "search"}


@dataclass(frozen=True, slots=True)
class Decision:
    """Whether an access is allowed, and why (the API audits both).

    A ``Decision`` is truthy only when ``allowed``.
    """

    allowed: bool
    reason: str

    def __bool__(self) -> bool:
        return self.allowed

    def raise_if_denied(self) -> None:
        """Raise :class:`~medtwin.errors.AuthorizationError` with the reason unless allowed."""
        if not self.allowed:
            raise AuthorizationError(self.reason)


ADMIN_ONLY = frozenset({"AuditEvent", "User"})
"""Resource types only an admin may touch, whatever the scopes say."""

FEED_WRITTEN = frozenset({"Encounter"})
"""Resource types only a hospital system's feed (``interface``) and admins may write: where a
patient is comes from the ADT system, never from a user's hand."""


def authorize(
    principal: Principal,
    permission: str,
    resource_type: str,
    *,
    patient_id: str | None = None,
    on_care_team: bool = False,
    deidentified: bool = False,
) -> Decision:
    """Decide whether ``principal`` may ``permission`` (one of ``c r u d s``) a ``resource_type``.

    First a scope must allow it (a ``patient/`` scope only for ``principal.patient_id``); then:

    - admin: anything, and the only role that may touch :data:`ADMIN_ONLY` resources (the
      audit log, user accounts);
    - clinician: only patients on their care team (``on_care_team``); with no ``patient_id``
      (a collection, a non-patient resource) the caller must filter by care team itself;
    - researcher: read and search only, and only ``deidentified`` views;
    - device: create ``Observation`` for its own ``principal.patient_id`` only; never read;
    - interface (a hospital system's feed, e.g. the ADT interface engine): create
      :data:`FEED_WRITTEN` resources only (ADT events as Encounters); never read.  Nobody else
      but an admin may write those.

    Parameters
    ----------
    patient_id
        The patient whose data is accessed, if any.
    on_care_team
        Whether ``principal`` is on that patient's care team (the store knows).
    deidentified
        Whether the response is de-identified (pseudonyms, no PHI).

    >>> from medtwin.security import ROLE_SCOPES, Principal, Role
    >>> dr = Principal("u1", "dr.who", Role.clinician, ROLE_SCOPES[Role.clinician])
    >>> authorize(dr, "r", "Observation", patient_id="p1", on_care_team=True).allowed
    True
    >>> authorize(dr, "r", "Observation", patient_id="p2").reason
    "clinician dr.who is not on patient p2's care team"
    """
    if not isinstance(permission, str) or len(permission) != 1 or permission not in PERMISSIONS:
        raise ParameterError(f"a permission is one of c, r, u, d, s; got {permission!r}")
    verb = f"{_VERBS[permission]} {resource_type}"
    who = f"{principal.role} {principal.username or principal.subject}"

    granted = None
    for scope in principal.scopes:
        if not scope.allows(resource_type, permission):
            continue
        if scope.context == "patient" and (
            principal.patient_id is None or patient_id != principal.patient_id
        ):
            continue  # a patient/ scope covers only the patient in context
        granted = scope
        break
    if granted is None:
        return Decision(False, f"no scope of {who} allows {verb}" + _for(patient_id))

    if resource_type in ADMIN_ONLY and principal.role != Role.admin:
        return Decision(False, f"only admins may {verb}; {who} may not")
    if (
        resource_type in FEED_WRITTEN
        and permission in ("c", "u", "d")
        and principal.role not in (Role.admin, Role.interface)
    ):
        return Decision(False, f"only the hospital's feed (interface) and admins may {verb}")
    match principal.role:
        case Role.admin:
            return Decision(True, f"admin: {verb} allowed by scope {granted}")
        case Role.clinician:
            if patient_id is not None and not on_care_team:
                return Decision(False, f"{who} is not on patient {patient_id}'s care team")
            return Decision(True, f"{who} may {verb}" + _for(patient_id) + f" (scope {granted})")
        case Role.researcher:
            if permission not in ("r", "s"):
                return Decision(False, f"researchers may only read and search, not {verb}")
            if not deidentified:
                return Decision(False, f"{who} may only {verb} in de-identified form")
            return Decision(True, f"{who} may {verb} de-identified (scope {granted})")
        case Role.device:
            if permission != "c" or resource_type != "Observation":
                return Decision(False, f"devices may only create Observation, not {verb}")
            if principal.patient_id is None or patient_id != principal.patient_id:
                return Decision(False, f"{who} may only write for its own patient")
            return Decision(True, f"{who} may {verb} for patient {patient_id}")
        case Role.interface:
            if permission != "c" or resource_type not in FEED_WRITTEN:
                allowed = ", ".join(sorted(FEED_WRITTEN))
                return Decision(False, f"interfaces may only create {allowed}, not {verb}")
            return Decision(True, f"{who} may {verb} (scope {granted})")
    return Decision(False, f"unknown role {principal.role!r}")  # pragma: no cover


def _for(patient_id: str | None) -> str:
    return "" if patient_id is None else f" for patient {patient_id}"
