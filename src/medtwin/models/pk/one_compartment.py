r"""One-compartment linear pharmacokinetics, intravenous and oral (NONMEM ADVAN1 / ADVAN2).

Equations (amounts in mg, time in h; ``iv`` and ``oral`` are zero-order inputs in mg/h, boluses
are jumps of the amount at the dose time, oral doses enter the depot ``ALAG`` h late and scaled by
``F``)::

    dA_depot/dt   = F oral - KA A_depot                       (oral model only)
    dA_central/dt = iv + KA A_depot - (CL/V) A_central
    Cc = A_central / V                                        (mg/L)

Closed form of a bolus ``D`` at ``t = 0``: ``Cc = D/V exp(-k t)`` with ``k = CL/V``; of an oral dose
``Cc = F D KA / (V (KA - k)) (exp(-k t') - exp(-KA t'))`` with ``t' = t - ALAG``; at steady state
with interval ``tau`` each exponential ``exp(-x t)`` becomes ``exp(-x t) / (1 - exp(-x tau))``
(Gibaldi & Perrier, Pharmacokinetics, 2nd ed., 1982, ch. 1 and 3; Rowland & Tozer, Clinical
Pharmacokinetics and Pharmacodynamics, 4th ed., 2011, ch. 3, 6 and 11).
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

__all__ = ["OneCompartment", "OneCompartmentOral"]

_REFERENCE = (
    "Gibaldi & Perrier, Pharmacokinetics, 2nd ed. (1982), ch. 1 and 3; Rowland & Tozer, "
    "Clinical Pharmacokinetics and Pharmacodynamics, 4th ed. (2011)"
)
_CC = Observation(
    "Cc", "mg/L", lambda x, p: x["central"] / p["V"], None, "central (plasma) concentration"
)


class OneCompartment(LinearPKModel):
    """One-compartment model, intravenous bolus and infusion (ADVAN1).

    >>> OneCompartment.param_names(), OneCompartment.dose_cmt("iv")
    (('CL', 'V'), 1)
    """

    name = "one_compartment"
    reference = _REFERENCE
    n_compartments = 1
    volume = "V"
    states = (State("central", "mg", "amount in the central compartment"),)
    params = disposition_params(1)
    inputs = (IV_INPUT,)
    observations = (_CC,)
    dose_routes = IV_ROUTES
    dose_inputs = IV_DOSE_INPUTS


class OneCompartmentOral(LinearPKModel):
    """One-compartment model with first-order absorption, lag time and bioavailability (ADVAN2).

    >>> OneCompartmentOral.state_names(), OneCompartmentOral.dose_cmt("oral")
    (('depot', 'central'), 1)
    """

    name = "one_compartment_oral"
    reference = _REFERENCE
    n_compartments = 1
    volume = "V"
    depot = "depot"
    states = (
        State("depot", "mg", "amount in the absorption depot"),
        State("central", "mg", "amount in the central compartment"),
    )
    params = (*disposition_params(1), *ABSORPTION_PARAMS)
    inputs = ORAL_INPUTS
    observations = (_CC,)
    dose_routes = ORAL_ROUTES
    dose_inputs = ORAL_DOSE_INPUTS
