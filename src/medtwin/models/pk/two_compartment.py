r"""Two-compartment linear pharmacokinetics, intravenous and oral (NONMEM ADVAN3 / ADVAN4).

Equations (amounts in mg, time in h; ``k10 = CL/V1``, ``k12 = Q2/V1``, ``k21 = Q2/V2``)::

    dA_depot/dt       = F oral - KA A_depot                                  (oral model only)
    dA_central/dt     = iv + KA A_depot - (k10 + k12) A_central + k21 A_peripheral2
    dA_peripheral2/dt = k12 A_central - k21 A_peripheral2
    Cc = A_central / V1                                                      (mg/L)

Closed form of a bolus ``D``: ``Cc = D (A1 exp(-alpha t) + A2 exp(-beta t))`` with
``alpha, beta = (a +- sqrt(a^2 - 4 k10 k21)) / 2``, ``a = k10 + k12 + k21``,
``A1 = (k21 - alpha) / (V1 (beta - alpha))``, ``A2 = (k21 - beta) / (V1 (alpha - beta))``
(Gibaldi & Perrier, Pharmacokinetics, 2nd ed., 1982, ch. 2; Gabrielsson & Weiner,
Pharmacokinetic and Pharmacodynamic Data Analysis, 5th ed., 2016, ch. 2).
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

__all__ = ["TwoCompartment", "TwoCompartmentOral"]

_REFERENCE = (
    "Gibaldi & Perrier, Pharmacokinetics, 2nd ed. (1982), ch. 2; Gabrielsson & Weiner, "
    "Pharmacokinetic and Pharmacodynamic Data Analysis, 5th ed. (2016)"
)
_CC = Observation(
    "Cc", "mg/L", lambda x, p: x["central"] / p["V1"], None, "central (plasma) concentration"
)
_CENTRAL = State("central", "mg", "amount in the central compartment")
_PERIPHERAL = State("peripheral2", "mg", "amount in the peripheral compartment")


class TwoCompartment(LinearPKModel):
    """Two-compartment model, intravenous bolus and infusion (ADVAN3).

    >>> TwoCompartment.param_names()
    ('CL', 'V1', 'Q2', 'V2')
    """

    name = "two_compartment"
    reference = _REFERENCE
    n_compartments = 2
    states = (_CENTRAL, _PERIPHERAL)
    params = disposition_params(2)
    inputs = (IV_INPUT,)
    observations = (_CC,)
    dose_routes = IV_ROUTES
    dose_inputs = IV_DOSE_INPUTS


class TwoCompartmentOral(LinearPKModel):
    """Two-compartment model with first-order absorption, lag time and bioavailability (ADVAN4).

    >>> TwoCompartmentOral.state_names()
    ('depot', 'central', 'peripheral2')
    """

    name = "two_compartment_oral"
    reference = _REFERENCE
    n_compartments = 2
    depot = "depot"
    states = (State("depot", "mg", "amount in the absorption depot"), _CENTRAL, _PERIPHERAL)
    params = (*disposition_params(2), *ABSORPTION_PARAMS)
    inputs = ORAL_INPUTS
    observations = (_CC,)
    dose_routes = ORAL_ROUTES
    dose_inputs = ORAL_DOSE_INPUTS
