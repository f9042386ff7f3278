"""Mechanistic physiology models and the declaration API they are written in.

Adding a model is one file here and one entry in :data:`ALL_MODELS`; the contract tests in
``tests/models/test_contract.py`` run over every entry.
"""

from __future__ import annotations

from medtwin.models._base import (
    AbstractModel,
    Additive,
    Combined,
    Fixed,
    Input,
    LogNormal,
    NoiseModel,
    Normal,
    Observation,
    Param,
    Prior,
    Proportional,
    State,
    Uniform,
)
from medtwin.models.pk import PK_MODELS
from medtwin.models.uva_padova import (
    EAT_RATE_G_PER_MIN,
    UvaPadova2008,
    UvaPadova2008Circadian,
    VirtualPatients,
    load_patients,
    patient_names,
)

ALL_MODELS: tuple[type[AbstractModel], ...] = (UvaPadova2008, UvaPadova2008Circadian, *PK_MODELS)
"""Every model medtwin ships; the contract tests run over each."""

__all__ = [
    "ALL_MODELS",
    "EAT_RATE_G_PER_MIN",
    "AbstractModel",
    "Additive",
    "Combined",
    "Fixed",
    "Input",
    "LogNormal",
    "NoiseModel",
    "Normal",
    "Observation",
    "Param",
    "Prior",
    "Proportional",
    "State",
    "Uniform",
    "UvaPadova2008",
    "UvaPadova2008Circadian",
    "VirtualPatients",
    "load_patients",
    "patient_names",
]
