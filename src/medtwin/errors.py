"""The medtwin exception tree.

Every error medtwin raises on purpose is a :class:`MedtwinError`, and each class also subclasses
the nearest builtin so that ``except ValueError`` keeps working for callers who do not know medtwin::

    MedtwinError
    ├── ModelDefinitionError(TypeError)   a model class declares something inconsistent
    ├── UnitError(ValueError)             an unknown unit string, or incompatible units
    ├── ParameterError(ValueError)        a parameter value that is missing, unknown, NaN or out of range
    ├── ScheduleError(ValueError)         a dosing/meal schedule that is malformed or outside the time span
    ├── DataFormatError(ValueError)       a malformed input file or record (names the line or field)
    ├── UnknownPatientError(KeyError)     a virtual patient name or index that does not exist
    ├── SimulationError(RuntimeError)     the integration produced non-finite values
    ├── NotCalibratedError(RuntimeError)  a fitted result was asked for before fit()
    ├── ConfigurationError(ValueError)    an invalid setting (solver, sensor, controller, file)
    ├── FHIRValidationError(DataFormatError)  a FHIR resource or Bundle that fails validation
    ├── ConflictError(ValueError)         a write that contradicts what is stored (same id, other data)
    ├── NotFoundError(LookupError)        a stored patient, twin, alert or user that does not exist
    ├── AuthenticationError(PermissionError)  no, expired or wrongly signed credentials
    ├── AuthorizationError(PermissionError)   valid credentials without the right to this access
    └── AuditChainError(RuntimeError)     the audit log's hash chain does not verify
"""

from __future__ import annotations

__all__ = [
    "AuditChainError",
    "AuthenticationError",
    "AuthorizationError",
    "ConfigurationError",
    "ConflictError",
    "DataFormatError",
    "FHIRValidationError",
    "MedtwinError",
    "ModelDefinitionError",
    "NotCalibratedError",
    "NotFoundError",
    "ParameterError",
    "ScheduleError",
    "SimulationError",
    "UnitError",
    "UnknownPatientError",
]


class MedtwinError(Exception):
    """Base class of every error medtwin raises on purpose."""


class ModelDefinitionError(MedtwinError, TypeError):
    """A model class declares duplicate names, unknown units or a default outside its prior."""


class UnitError(MedtwinError, ValueError):
    """A unit string is unknown, or two units cannot be converted into each other."""


class ParameterError(MedtwinError, ValueError):
    """A parameter value is unknown to the model, missing, not finite or outside its support."""


class ScheduleError(MedtwinError, ValueError):
    """A schedule event is malformed (negative amount, unknown input) or outside the simulated time."""


class DataFormatError(MedtwinError, ValueError):
    """An input file or record is malformed: bad JSON, a missing column, an unreadable time or number.

    The message names the file, the line (1-based, as an editor counts) or JSON path, and the field.
    """


class UnknownPatientError(MedtwinError, KeyError):
    """A virtual patient that is not in the catalogue was asked for."""

    def __str__(self) -> str:
        # KeyError quotes its message; show it as written.
        return str(self.args[0]) if self.args else ""


class SimulationError(MedtwinError, RuntimeError):
    """The integration produced NaN or infinite values."""


class NotCalibratedError(MedtwinError, RuntimeError):
    """A fitted result (``params_``, ``posterior_``, a forecast) was asked for before ``fit``."""


class ConfigurationError(MedtwinError, ValueError):
    """An invalid setting: solver step, sensor, controller, output period or input file."""


class FHIRValidationError(DataFormatError):
    """A FHIR resource or Bundle failed validation; ``outcome`` is the OperationOutcome (a dict).

    Each OperationOutcome issue names the element in ``expression`` (``Observation.status``).
    """

    def __init__(self, message: str, outcome: dict[str, object] | None = None) -> None:
        super().__init__(message)
        self.outcome = outcome


class ConflictError(MedtwinError, ValueError):
    """A write contradicts what is stored: the same id or message id with different content."""


class NotFoundError(MedtwinError, LookupError):
    """A stored patient, device, twin, alert or user does not exist."""


class AuthenticationError(MedtwinError, PermissionError):
    """Credentials are missing, wrong, expired or wrongly signed."""


class AuthorizationError(MedtwinError, PermissionError):
    """Valid credentials that do not grant this access (scope, role or care team)."""


class AuditChainError(MedtwinError, RuntimeError):
    """The audit log's hash chain does not verify: a record was edited, removed or reordered."""
