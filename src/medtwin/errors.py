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
    └── ConfigurationError(ValueError)    an invalid setting (solver, sensor, controller, file)
"""

from __future__ import annotations

__all__ = [
    "ConfigurationError",
    "DataFormatError",
    "MedtwinError",
    "ModelDefinitionError",
    "NotCalibratedError",
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
