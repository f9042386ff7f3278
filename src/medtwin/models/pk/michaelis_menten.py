r"""One-compartment pharmacokinetics with Michaelis-Menten (saturable) elimination.

Equations (amounts in mg, time in h; ``Cc = A_central / V`` in mg/L; doses into the depot enter
``ALAG`` h late and scaled by ``F``)::

    dA_depot/dt   = F oral - KA A_depot
    dA_central/dt = iv + KA A_depot - VMAX Cc / (KM + Cc)

Elimination is first order (``CL = VMAX/KM``) well below ``KM`` and zero order (``VMAX`` mg/h) far
above it, as for phenytoin, ethanol or high-dose salicylate.  There is no closed form for a
general regimen; the model runs on the engine (:func:`medtwin.simulate.simulate_doses`), and its
steady state is found by Newton's method on the one-interval map (Rowland & Tozer, Clinical
Pharmacokinetics and Pharmacodynamics, 4th ed., 2011, ch. 20; Gabrielsson & Weiner,
Pharmacokinetic and Pharmacodynamic Data Analysis, 5th ed., 2016, ch. 2.6).
"""

from __future__ import annotations

from collections.abc import Mapping

from medtwin.models._base import Array, LogNormal, Observation, Param, State
from medtwin.models.pk._base import (
    ABSORPTION_PARAMS,
    ORAL_DOSE_INPUTS,
    ORAL_INPUTS,
    ORAL_ROUTES,
    PKModel,
)

__all__ = ["MichaelisMenten"]


class MichaelisMenten(PKModel):
    """One-compartment model with saturable elimination and first-order absorption.

    >>> MichaelisMenten.param_names()
    ('VMAX', 'KM', 'V', 'KA', 'F', 'ALAG')
    """

    name = "michaelis_menten"
    reference = (
        "Rowland & Tozer, Clinical Pharmacokinetics and Pharmacodynamics, 4th ed. (2011), ch. 20"
    )
    n_compartments = 0
    linear = False
    volume = "V"
    depot = "depot"
    states = (
        State("depot", "mg", "amount in the absorption depot"),
        State("central", "mg", "amount in the central compartment"),
    )
    params = (
        Param("VMAX", "mg/h", 20.0, LogNormal(20.0, 0.3), "maximal elimination rate"),
        Param("KM", "mg/L", 5.0, LogNormal(5.0, 0.3), "concentration of half-maximal elimination"),
        Param("V", "L", 50.0, LogNormal(50.0, 0.3), "volume of distribution"),
        *ABSORPTION_PARAMS,
    )
    inputs = ORAL_INPUTS
    observations = (
        Observation(
            "Cc", "mg/L", lambda x, p: x["central"] / p["V"], None, "central concentration"
        ),
    )
    dose_routes = ORAL_ROUTES
    dose_inputs = ORAL_DOSE_INPUTS

    def rhs(
        self, t: Array, x: Mapping[str, Array], p: Mapping[str, Array], u: Mapping[str, Array]
    ) -> dict[str, Array]:
        """Amount derivatives (mg/h)."""
        absorbed = p["KA"] * x["depot"]
        c = x["central"] / p["V"]
        return {
            "depot": p["F"] * u["oral"] - absorbed,
            "central": u["iv"] + absorbed - p["VMAX"] * c / (p["KM"] + c),
        }
