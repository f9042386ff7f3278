"""medtwin: open-source digital twins for healthcare.

The science core is importable without the service: models, the batched simulation engine, and
glycaemic metrics.
"""

from __future__ import annotations

import medtwin._config  # noqa: F401  (float64 and the compilation cache, before any JAX use)
from medtwin.errors import (
    ConfigurationError,
    DataFormatError,
    MedtwinError,
    ModelDefinitionError,
    NotCalibratedError,
    ParameterError,
    ScheduleError,
    SimulationError,
    UnitError,
    UnknownPatientError,
)
from medtwin.models import ALL_MODELS, AbstractModel, UvaPadova2008, load_patients

__version__ = "0.1.0"

__all__ = [
    "ALL_MODELS",
    "AbstractModel",
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
    "UvaPadova2008",
    "__version__",
    "load_patients",
]
