"""Pharmacokinetic and pharmacodynamic models, dosing records and closed-form concentrations.

Linear 1-, 2- and 3-compartment models (intravenous and oral with lag time and bioavailability)
run on the batched engine like every model and also have closed forms (:func:`concentration`,
superposition over doses in JAX, differentiable); Michaelis-Menten elimination, Emax and
effect-compartment pharmacodynamics and indirect-response models run on the engine.  Doses are
written as a :class:`Regimen` or as NONMEM-style :class:`Dose` records gathered in a
:class:`DoseTable`; covariates act on parameters through a :class:`CovariateModel`.
"""

from __future__ import annotations

from medtwin.models.pk._base import PKModel, disposition
from medtwin.models.pk._pd import Pharmacodynamics, hill, pkpd
from medtwin.models.pk.closed_form import DOSE_KINDS, concentration, dose_kinds, resolve_model
from medtwin.models.pk.covariates import CovariateModel, Linear, Power, cockcroft_gault
from medtwin.models.pk.dosing import Administration, Dose, DoseTable, Regimen
from medtwin.models.pk.emax import (
    DirectEmax,
    EffectCompartment,
    OneCompartmentOralDirectEmax,
    OneCompartmentOralEffectCompartment,
    sigmoid_emax,
)
from medtwin.models.pk.indirect_response import (
    IndirectResponse,
    IndirectResponseI,
    IndirectResponseII,
    IndirectResponseIII,
    IndirectResponseIV,
    OneCompartmentOralIndirectResponseI,
    OneCompartmentOralIndirectResponseII,
    OneCompartmentOralIndirectResponseIII,
    OneCompartmentOralIndirectResponseIV,
)
from medtwin.models.pk.michaelis_menten import MichaelisMenten
from medtwin.models.pk.one_compartment import OneCompartment, OneCompartmentOral
from medtwin.models.pk.three_compartment import ThreeCompartment, ThreeCompartmentOral
from medtwin.models.pk.two_compartment import TwoCompartment, TwoCompartmentOral

LINEAR_MODELS: tuple[type[PKModel], ...] = (
    OneCompartment,
    OneCompartmentOral,
    TwoCompartment,
    TwoCompartmentOral,
    ThreeCompartment,
    ThreeCompartmentOral,
)
"""The models with a closed form."""

PK_MODELS: tuple[type[PKModel], ...] = (
    *LINEAR_MODELS,
    MichaelisMenten,
    OneCompartmentOralDirectEmax,
    OneCompartmentOralEffectCompartment,
    OneCompartmentOralIndirectResponseI,
    OneCompartmentOralIndirectResponseII,
    OneCompartmentOralIndirectResponseIII,
    OneCompartmentOralIndirectResponseIV,
)
"""Every PK and PK/PD model shipped (all in :data:`medtwin.models.ALL_MODELS`)."""

__all__ = [
    "DOSE_KINDS",
    "LINEAR_MODELS",
    "PK_MODELS",
    "Administration",
    "CovariateModel",
    "DirectEmax",
    "Dose",
    "DoseTable",
    "EffectCompartment",
    "IndirectResponse",
    "IndirectResponseI",
    "IndirectResponseII",
    "IndirectResponseIII",
    "IndirectResponseIV",
    "Linear",
    "MichaelisMenten",
    "OneCompartment",
    "OneCompartmentOral",
    "OneCompartmentOralDirectEmax",
    "OneCompartmentOralEffectCompartment",
    "OneCompartmentOralIndirectResponseI",
    "OneCompartmentOralIndirectResponseII",
    "OneCompartmentOralIndirectResponseIII",
    "OneCompartmentOralIndirectResponseIV",
    "PKModel",
    "Pharmacodynamics",
    "Power",
    "Regimen",
    "ThreeCompartment",
    "ThreeCompartmentOral",
    "TwoCompartment",
    "TwoCompartmentOral",
    "cockcroft_gault",
    "concentration",
    "disposition",
    "dose_kinds",
    "hill",
    "pkpd",
    "resolve_model",
    "sigmoid_emax",
]
