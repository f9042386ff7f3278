r"""Emax pharmacodynamics, direct and through an effect compartment (link model).

Equations (``Cc`` the central concentration in mg/L from the PK model; effect in the units of
``E0`` and ``EMAX``; ``HILL = 1`` gives the hyperbolic Emax model)::

    Direct (sigmoid) Emax:   E = E0 + EMAX Cc^HILL / (EC50^HILL + Cc^HILL)
    Effect compartment:      dCe/dt = KE0 (Cc - Ce),   E = E0 + EMAX Ce^HILL / (EC50^HILL + Ce^HILL)

The effect compartment takes a negligible amount of drug and delays the effect behind the plasma
concentration (hysteresis); at steady state ``Ce = Cc`` (Sheiner, Stanski, Vozeh, Miller & Ham,
Clin Pharmacol Ther 25:358, 1979; Holford & Sheiner, Clin Pharmacokinet 6:429, 1981;
Gabrielsson & Weiner, Pharmacokinetic and Pharmacodynamic Data Analysis, 5th ed., 2016, ch. 3).
"""

from __future__ import annotations

from collections.abc import Mapping

import jax.numpy as jnp

from medtwin.models._base import Array, LogNormal, Normal, Param, State
from medtwin.models.pk._pd import Pharmacodynamics, hill, pkpd
from medtwin.models.pk.one_compartment import OneCompartmentOral

__all__ = [
    "DirectEmax",
    "EffectCompartment",
    "OneCompartmentOralDirectEmax",
    "OneCompartmentOralEffectCompartment",
    "sigmoid_emax",
]

_EMAX_PARAMS = (
    Param("E0", "1", 0.0, None, "baseline effect"),
    Param("EMAX", "1", 1.0, Normal(1.0, 0.3), "maximal drug effect (negative for a decrease)"),
    Param("EC50", "mg/L", 5.0, LogNormal(5.0, 0.3), "concentration of half-maximal effect"),
    Param("HILL", "1", 1.0, LogNormal(1.0, 0.2), "Hill (sigmoidicity) coefficient"),
)


def sigmoid_emax(c: Array, e0: Array, emax: Array, ec50: Array, gamma: Array = 1.0) -> Array:
    """``E0 + EMAX c^gamma / (EC50^gamma + c^gamma)`` (JAX; for closed-form concentrations).

    >>> float(sigmoid_emax(5.0, 10.0, 100.0, 5.0))
    60.0
    """
    return e0 + emax * hill(c, ec50, gamma)


class DirectEmax(Pharmacodynamics):
    """Direct sigmoid Emax model: the effect follows the plasma concentration instantly."""

    suffix = "DirectEmax"
    name = "direct_emax"
    reference = "Holford & Sheiner, Clin Pharmacokinet 6:429 (1981)"
    params = _EMAX_PARAMS

    def effect(self, c: Array, x: Mapping[str, Array], p: Mapping[str, Array]) -> Array:
        """``E0 + EMAX Cc^HILL / (EC50^HILL + Cc^HILL)``."""
        return sigmoid_emax(c, p["E0"], p["EMAX"], p["EC50"], p["HILL"])


class EffectCompartment(Pharmacodynamics):
    """Effect-compartment (link) model with a sigmoid Emax effect of ``Ce``."""

    suffix = "EffectCompartment"
    name = "effect_compartment"
    reference = "Sheiner et al., Clin Pharmacol Ther 25:358 (1979)"
    states = (State("Ce", "mg/L", "effect-site concentration"),)
    params = (
        Param("KE0", "1/h", 0.5, LogNormal(0.5, 0.3), "equilibration rate of the effect site"),
        *_EMAX_PARAMS,
    )

    def rhs(self, c: Array, x: Mapping[str, Array], p: Mapping[str, Array]) -> dict[str, Array]:
        """``dCe/dt = KE0 (Cc - Ce)``."""
        return {"Ce": p["KE0"] * (c - x["Ce"])}

    def initial_state(self, p: Mapping[str, Array], like: Array) -> dict[str, Array]:
        """No drug at the effect site."""
        return {"Ce": jnp.zeros_like(like)}

    def effect(self, c: Array, x: Mapping[str, Array], p: Mapping[str, Array]) -> Array:
        """``E0 + EMAX Ce^HILL / (EC50^HILL + Ce^HILL)``."""
        return sigmoid_emax(x["Ce"], p["E0"], p["EMAX"], p["EC50"], p["HILL"])


OneCompartmentOralDirectEmax = pkpd(OneCompartmentOral, DirectEmax())
OneCompartmentOralEffectCompartment = pkpd(OneCompartmentOral, EffectCompartment())
