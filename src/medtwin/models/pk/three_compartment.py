r"""Three-compartment linear pharmacokinetics, intravenous and oral (NONMEM ADVAN11 / ADVAN12).

Equations (amounts in mg, time in h; ``k10 = CL/V1``, ``k1j = Qj/V1``, ``kj1 = Qj/Vj``)::

    dA_depot/dt       = F oral - KA A_depot                                   (oral model only)
    dA_central/dt     = iv + KA A_depot - (k10 + k12 + k13) A_central
                        + k21 A_peripheral2 + k31 A_peripheral3
    dA_peripheral2/dt = k12 A_central - k21 A_peripheral2
    dA_peripheral3/dt = k13 A_central - k31 A_peripheral3
    Cc = A_central / V1                                                       (mg/L)

Closed form of a bolus ``D``: ``Cc = D sum_i A_i exp(-lambda_i t)``; the ``lambda_i`` are the roots
of ``l^3 - a2 l^2 + a1 l - a0`` with ``a0 = k10 k21 k31``,
``a1 = k10 k31 + k21 k31 + k21 k13 + k10 k21 + k31 k12``, ``a2 = k10 + k12 + k13 + k21 + k31``,
solved in trigonometric form, and ``A_i = (k21 - l_i)(k31 - l_i) / (V1 prod_{m != i}(l_m - l_i))``
(Gibaldi & Perrier, Pharmacokinetics, 2nd ed., 1982, appendix B; Bertrand & Mentré, Mathematical
expressions of the pharmacokinetic and pharmacodynamic models implemented in the Monolix software,
2008, section 1.3).
"""

from __future__ import annotations

from medtwin.models._base import Observation, State
from medtwin.models.pk._base import (
    ABSORPTION_PARAMS,
    IV_DOSE_INPUTS,
    IV_INPUT,
    IV_ROUTES,
    ORAL_DOSE_INPUTS,
    ORAL_INPUTS,
    ORAL_ROUTES,
    LinearPKModel,
    disposition_params,
)

__all__ = ["ThreeCompartment", "ThreeCompartmentOral"]

_REFERENCE = (
    "Gibaldi & Perrier, Pharmacokinetics, 2nd ed. (1982), appendix B; Bertrand & Mentré, "
    "Monolix PK/PD model expressions (2008)"
)
_CC = Observation(
    "Cc", "mg/L", lambda x, p: x["central"] / p["V1"], None, "central (plasma) concentration"
)
_DISPOSITION_STATES = (
    State("central", "mg", "amount in the central compartment"),
    State("peripheral2", "mg", "amount in the shallow peripheral compartment"),
    State("peripheral3", "mg", "amount in the deep peripheral compartment"),
)


class ThreeCompartment(LinearPKModel):
    """Three-compartment model, intravenous bolus and infusion (ADVAN11).

    >>> ThreeCompartment.param_names()
    ('CL', 'V1', 'Q2', 'V2', 'Q3', 'V3')
    """

    name = "three_compartment"
    reference = _REFERENCE
    n_compartments = 3
    states = _DISPOSITION_STATES
    params = disposition_params(3)
    inputs = (IV_INPUT,)
    observations = (_CC,)
    dose_routes = IV_ROUTES
    dose_inputs = IV_DOSE_INPUTS


class ThreeCompartmentOral(LinearPKModel):
    """Three-compartment model with first-order absorption, lag and bioavailability (ADVAN12).

    >>> ThreeCompartmentOral.dose_cmt("iv")
    2
    """

    name = "three_compartment_oral"
    reference = _REFERENCE
    n_compartments = 3
    depot = "depot"
    states = (State("depot", "mg", "amount in the absorption depot"), *_DISPOSITION_STATES)
    params = (*disposition_params(3), *ABSORPTION_PARAMS)
    inputs = ORAL_INPUTS
    observations = (_CC,)
    dose_routes = ORAL_ROUTES
    dose_inputs = ORAL_DOSE_INPUTS
