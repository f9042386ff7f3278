"""Problems as OperationOutcome issues, and the error that carries them."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any, Literal

from medtwin.errors import FHIRValidationError

__all__ = ["Issue", "operation_outcome", "rebase", "rejection"]

Severity = Literal["fatal", "error", "warning", "information"]


@dataclass(frozen=True, slots=True)
class Issue:
    """One problem: an OperationOutcome issue naming the element in ``expression``.

    ``expression`` is a FHIRPath-style element path rooted at the resource type
    (``Observation.valueQuantity.code``) or at the Bundle (``Bundle.entry[3].resource.status``).
    ``code`` is a FHIR IssueType (``invalid``, ``structure``, ``required``, ``value``,
    ``code-invalid``, ``not-supported``, ``not-found``, ...).
    """

    code: str
    expression: str
    diagnostics: str
    severity: Severity = "error"

    def to_fhir(self) -> dict[str, Any]:
        """The issue as an ``OperationOutcome.issue`` element."""
        issue: dict[str, Any] = {
            "severity": self.severity,
            "code": self.code,
            "diagnostics": self.diagnostics,
        }
        if self.expression:
            issue["expression"] = [self.expression]
        return issue


def operation_outcome(issues: Iterable[Issue | Mapping[str, Any]]) -> dict[str, Any]:
    """An OperationOutcome with one issue per problem (an ``informational`` one when there are none).

    Parameters
    ----------
    issues
        :class:`Issue` values, or ``OperationOutcome.issue`` dicts passed through as they are.

    Examples
    --------
    >>> oo = operation_outcome([Issue("code-invalid", "Observation.status", "unknown status")])
    >>> oo["issue"][0]["expression"], oo["issue"][0]["severity"]
    (['Observation.status'], 'error')
    >>> operation_outcome([])["issue"][0]["code"]
    'informational'
    """
    out = [i.to_fhir() if isinstance(i, Issue) else dict(i) for i in issues]
    if not out:
        out = [{"severity": "information", "code": "informational", "diagnostics": "All OK"}]
    return {"resourceType": "OperationOutcome", "issue": out}


def rebase(issue: Issue, root: str) -> Issue:
    """``issue`` with its resource-type root replaced by ``root`` (``Bundle.entry[3].resource``)."""
    head, dot, rest = issue.expression.partition(".")
    if not head or head[0].islower():  # no resource-type root ("resourceType", "")
        expression = f"{root}.{issue.expression}" if issue.expression else root
    else:
        expression = root + dot + rest
    return Issue(issue.code, expression, issue.diagnostics, issue.severity)


def rejection(what: str, issues: list[Issue]) -> FHIRValidationError:
    """The :class:`~medtwin.errors.FHIRValidationError` for ``issues`` (errors first in the message)."""
    errors = [i for i in issues if i.severity in ("error", "fatal")] or issues
    n = len(errors)
    first = errors[0]
    where = f"{first.expression}: " if first.expression else ""
    more = f" (and {n - 1} more problem{'s' if n > 2 else ''}; see .outcome)" if n > 1 else ""
    return FHIRValidationError(
        f"{what} rejected: {where}{first.diagnostics}{more}", operation_outcome(issues)
    )
