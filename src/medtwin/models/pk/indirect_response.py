r"""Indirect-response models I-IV: the drug inhibits or stimulates production or loss of a response.

Equations (Dayneka, Garg & Jusko, J Pharmacokinet Biopharm 21:457, 1993; ``Cc`` the central
concentration in mg/L from the PK model, ``R`` the response in the units of its baseline ``R0``,
``KIN = R0 KOUT`` so that ``R = R0`` without drug)::

    I(Cc) = IMAX Cc^HILL / (IC50^HILL + Cc^HILL)        S(Cc) = SMAX Cc^HILL / (SC50^HILL + Cc^HILL)
    Model I   (inhibition of production):   dR/dt = KIN (1 - I(Cc)) - KOUT R
    Model II  (inhibition of loss):         dR/dt = KIN - KOUT (1 - I(Cc)) R
    Model III (stimulation of production):  dR/dt = KIN (1 + S(Cc)) - KOUT R
    Model IV  (stimulation of loss):        dR/dt = KIN - KOUT (1 + S(Cc)) R

(also Sharma & Jusko, J Pharmacokinet Biopharm 24:611, 1996; Gabrielsson & Weiner,
Pharmacokinetic and Pharmacodynamic Data Analysis, 5th ed., 2016, ch. 3.6).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import ClassVar

import jax.numpy as jnp

from medtwin.models._base import Array, LogNormal, Param, State, Uniform
from medtwin.models.pk._pd import Pharmacodynamics, hill, pkpd
from medtwin.models.pk.one_compartment import OneCompartmentOral

__all__ = [
    "IndirectResponse",
    "IndirectResponseI",
    "IndirectResponseII",
    "IndirectResponseIII",
    "IndirectResponseIV",
    "OneCompartmentOralIndirectResponseI",
    "OneCompartmentOralIndirectResponseII",
    "OneCompartmentOralIndirectResponseIII",
    "OneCompartmentOralIndirectResponseIV",
]

_BASE = (
    Param("R0", "1", 100.0, LogNormal(100.0, 0.2), "baseline response"),
    Param("KOUT", "1/h", 0.2, LogNormal(0.2, 0.3), "first-order loss rate of the response"),
)
_INHIBITION = (
    Param("IMAX", "1", 0.8, Uniform(0.0, 1.0), "maximal fractional inhibition"),
    Param("IC50", "mg/L", 5.0, LogNormal(5.0, 0.3), "concentration of half-maximal inhibition"),
    Param("HILL", "1", 1.0, LogNormal(1.0, 0.2), "Hill coefficient"),
)
_STIMULATION = (
    Param("SMAX", "1", 2.0, LogNormal(2.0, 0.3), "maximal fractional stimulation"),
    Param("SC50", "mg/L", 5.0, LogNormal(5.0, 0.3), "concentration of half-maximal stimulation"),
    Param("HILL", "1", 1.0, LogNormal(1.0, 0.2), "Hill coefficient"),
)


class IndirectResponse(Pharmacodynamics):
    """Indirect-response model (abstract): ``kind`` 1-4 of Dayneka, Garg & Jusko (1993)."""

    kind: ClassVar[int] = 0
    reference = "Dayneka, Garg & Jusko, J Pharmacokinet Biopharm 21:457 (1993)"
    states = (State("R", "1", "response"),)
    linear = False
    effect_description = "the response R"

    def rhs(self, c: Array, x: Mapping[str, Array], p: Mapping[str, Array]) -> dict[str, Array]:
        """The response's derivative for this kind."""
        r, kout = x["R"], p["KOUT"]
        kin = p["R0"] * kout
        if self.kind <= 2:
            drug = p["IMAX"] * hill(c, p["IC50"], p["HILL"])
            if self.kind == 1:
                return {"R": kin * (1.0 - drug) - kout * r}
            return {"R": kin - kout * (1.0 - drug) * r}
        drug = p["SMAX"] * hill(c, p["SC50"], p["HILL"])
        if self.kind == 3:
            return {"R": kin * (1.0 + drug) - kout * r}
        return {"R": kin - kout * (1.0 + drug) * r}

    def initial_state(self, p: Mapping[str, Array], like: Array) -> dict[str, Array]:
        """The baseline ``R0``."""
        return {"R": jnp.broadcast_to(jnp.asarray(p["R0"], dtype=float), jnp.shape(like))}

    def effect(self, c: Array, x: Mapping[str, Array], p: Mapping[str, Array]) -> Array:
        """The response ``R``."""
        return x["R"]


class IndirectResponseI(IndirectResponse):
    """Indirect response I: the drug inhibits the production of the response."""

    kind = 1
    suffix = "IndirectResponseI"
    name = "indirect_response_1"
    params = (*_BASE, *_INHIBITION)


class IndirectResponseII(IndirectResponse):
    """Indirect response II: the drug inhibits the loss of the response."""

    kind = 2
    suffix = "IndirectResponseII"
    name = "indirect_response_2"
    params = (*_BASE, *_INHIBITION)


class IndirectResponseIII(IndirectResponse):
    """Indirect response III: the drug stimulates the production of the response."""

    kind = 3
    suffix = "IndirectResponseIII"
    name = "indirect_response_3"
    params = (*_BASE, *_STIMULATION)


class IndirectResponseIV(IndirectResponse):
    """Indirect response IV: the drug stimulates the loss of the response."""

    kind = 4
    suffix = "IndirectResponseIV"
    name = "indirect_response_4"
    params = (*_BASE, *_STIMULATION)


OneCompartmentOralIndirectResponseI = pkpd(OneCompartmentOral, IndirectResponseI())
OneCompartmentOralIndirectResponseII = pkpd(OneCompartmentOral, IndirectResponseII())
OneCompartmentOralIndirectResponseIII = pkpd(OneCompartmentOral, IndirectResponseIII())
OneCompartmentOralIndirectResponseIV = pkpd(OneCompartmentOral, IndirectResponseIV())
