r"""What every pharmacokinetic model shares: dosable compartments, bioavailability, lag time.

A :class:`PKModel` is an ordinary :class:`~medtwin.models.AbstractModel` (states, parameters with
units and priors, ``rhs``) that also says where doses go: ``dose_routes`` maps a route (``"oral"``,
``"iv"``) to the state that receives it, ``dose_inputs`` maps a state to the zero-order (rate)
input that feeds it.  Bioavailability ``F`` and lag time ``ALAG`` act on doses into the absorption
depot, as NONMEM's ``F1``/``ALAG1`` do.  Doses are numbered as NONMEM's ``CMT``: compartment ``k``
is the model's ``k``-th state (1-based), so for the oral models the depot is 1 and the central
compartment 2, and for the intravenous models the central compartment is 1.

Linear mammillary disposition (the 1-, 2- and 3-compartment models) is written once here, in
micro-constants ``k10 = CL/V1``, ``k1j = Qj/V1``, ``kj1 = Qj/Vj`` (equations in
:mod:`medtwin.models.pk.one_compartment` and its siblings), together with its spectral form: the
concentration after a unit bolus into the central compartment is ``sum_i A_i exp(-lambda_i t)``
with the ``lambda_i`` the roots of the characteristic polynomial and
``A_i = prod_j (kj1 - lambda_i) / (V1 prod_{m != i} (lambda_m - lambda_i))``
(Gibaldi & Perrier, Pharmacokinetics, 2nd ed., 1982, ch. 2-3 and appendix B; Bertrand & Mentré,
Mathematical expressions of the pharmacokinetic and pharmacodynamic models implemented in the
Monolix software, 2008).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from types import MappingProxyType
from typing import ClassVar

import jax.numpy as jnp

from medtwin.errors import ParameterError
from medtwin.models._base import AbstractModel, Array, Input, LogNormal, Param

__all__ = ["PKModel", "disposition"]


class PKModel(AbstractModel):
    """A model that takes doses: routes, rate inputs, bioavailability and lag (abstract).

    >>> from medtwin.models.pk import TwoCompartmentOral
    >>> TwoCompartmentOral.dose_cmt("oral"), TwoCompartmentOral.dose_cmt("iv")
    (1, 2)
    """

    __abstract__ = True

    time_unit = "h"
    n_compartments: ClassVar[int] = 0
    """Linear mammillary compartments (1-3); 0 for a model without a closed form."""
    linear: ClassVar[bool] = True
    """Whether the states respond linearly to doses (steady state then needs one Newton step)."""
    central: ClassVar[str] = "central"
    depot: ClassVar[str | None] = None
    volume: ClassVar[str] = "V1"
    """The parameter holding the central volume (L)."""
    dose_routes: ClassVar[Mapping[str, str]] = {}
    """Route (``"oral"``, ``"iv"``) -> the state that receives it."""
    dose_inputs: ClassVar[Mapping[str, str]] = {}
    """State -> the zero-order input (mg/h) that feeds it."""

    @classmethod
    def dose_cmt(cls, route: str) -> int:
        """The 1-based compartment number (NONMEM ``CMT``) of a route."""
        if route not in cls.dose_routes:
            routes = ", ".join(cls.dose_routes)
            raise ParameterError(
                f"{cls.__name__} takes no {route!r} doses; its routes are {routes}"
                + ("; use an ...Oral model for oral doses" if route == "oral" else "")
            )
        return cls.state_names().index(cls.dose_routes[route]) + 1

    def central_concentration(self, x: Mapping[str, Array], p: Mapping[str, Array]) -> Array:
        """Concentration in the central compartment (mg/L)."""
        return x[self.central] / p[self.volume]

    def bioavailability(self, p: Mapping[str, Array]) -> dict[str, Array]:
        """Fraction of a dose that reaches each dosable state (``F`` on the depot, else 1)."""
        return {s: p["F"] if s == self.depot else 1.0 for s in self.dose_inputs}

    def lag_time(self, p: Mapping[str, Array]) -> dict[str, Array]:
        """Delay (h) between a dose record and its entry, per dosable state (``ALAG``: depot)."""
        return {s: p["ALAG"] if s == self.depot else 0.0 for s in self.dose_inputs}

    def initial_state(self, p: Mapping[str, Array]) -> dict[str, Array]:
        """No drug in the body."""
        zero = jnp.zeros_like(jnp.asarray(p[self.volume], dtype=float))
        return {s.name: zero for s in self.states}


class LinearPKModel(PKModel):
    """A linear mammillary model: its rhs and micro-constants follow from ``n_compartments``.

    The equations (amounts ``A_i``, mg; micro-constants ``k10 = CL/V1``, ``k1j = Qj/V1``,
    ``kj1 = Qj/Vj``; an oral model's depot ``dA_d/dt = -KA A_d + F r_oral``)::

        dA_1/dt = KA A_d + r_iv - (k10 + sum_j k1j) A_1 + sum_j kj1 A_j
        dA_j/dt = k1j A_1 - kj1 A_j                                     (j = 2, 3)
    """

    __abstract__ = True

    def derived(self, p: Mapping[str, Array]) -> dict[str, Array]:
        """Micro-constants ``k10``, ``k1j``, ``kj1`` from CL, volumes and clearances."""
        return micro_constants(p, self.n_compartments)

    def rhs(
        self, t: Array, x: Mapping[str, Array], p: Mapping[str, Array], u: Mapping[str, Array]
    ) -> dict[str, Array]:
        """Amount derivatives (mg/h)."""
        return linear_rhs(x, p, u, self.n_compartments, oral=self.depot is not None)


# ---------------------------------------------------------------------------------------------
# Declarations shared by the linear models
# ---------------------------------------------------------------------------------------------

IV_ROUTES: Mapping[str, str] = MappingProxyType({"iv": "central"})
ORAL_ROUTES: Mapping[str, str] = MappingProxyType({"oral": "depot", "iv": "central"})
IV_DOSE_INPUTS: Mapping[str, str] = MappingProxyType({"central": "iv"})
ORAL_DOSE_INPUTS: Mapping[str, str] = MappingProxyType({"depot": "oral", "central": "iv"})
IV_INPUT = Input(
    "iv", "mg/h", role="dose", description="zero-order input into the central compartment"
)
ORAL_INPUTS = (
    Input("oral", "mg/h", role="dose", description="zero-order input into the depot (times F)"),
    Input("iv", "mg/h", role="iv", description="zero-order input into the central compartment"),
)
ABSORPTION_PARAMS = (
    Param("KA", "1/h", 1.0, LogNormal(1.0, 0.4), "first-order absorption rate constant"),
    # no population prior: F and ALAG are fixed unless a population model gives them variability
    Param("F", "1", 1.0, None, "bioavailability of doses into the depot"),
    Param("ALAG", "h", 0.0, None, "absorption lag time of doses into the depot"),
)


def disposition_params(n: int) -> tuple[Param, ...]:
    """CL and volumes (and inter-compartmental clearances) of an ``n``-compartment model."""
    if n == 1:
        return (
            Param("CL", "L/h", 5.0, LogNormal(5.0, 0.3), "clearance"),
            Param("V", "L", 50.0, LogNormal(50.0, 0.3), "volume of distribution"),
        )
    out = [
        Param("CL", "L/h", 5.0, LogNormal(5.0, 0.3), "clearance from the central compartment"),
        Param("V1", "L", 30.0 if n == 2 else 20.0, LogNormal(30.0 if n == 2 else 20.0, 0.3),
              "central volume"),
        Param("Q2", "L/h", 10.0, LogNormal(10.0, 0.3), "inter-compartmental clearance, 1 <-> 2"),
        Param("V2", "L", 60.0 if n == 2 else 40.0, LogNormal(60.0 if n == 2 else 40.0, 0.3),
              "volume of peripheral compartment 2"),
    ]  # fmt: skip
    if n == 3:
        out += [
            Param("Q3", "L/h", 2.0, LogNormal(2.0, 0.3), "inter-compartmental clearance, 1 <-> 3"),
            Param("V3", "L", 100.0, LogNormal(100.0, 0.3), "volume of peripheral compartment 3"),
        ]
    return tuple(out)


def micro_constants(p: Mapping[str, Array], n: int) -> dict[str, Array]:
    """``k10`` and the pairs ``k1j``, ``kj1`` of an ``n``-compartment mammillary model."""
    v1 = p["V"] if n == 1 else p["V1"]
    out = {"k10": p["CL"] / v1}
    for j in range(2, n + 1):
        out[f"k1{j}"] = p[f"Q{j}"] / v1
        out[f"k{j}1"] = p[f"Q{j}"] / p[f"V{j}"]
    return out


def linear_rhs(
    x: Mapping[str, Array], p: Mapping[str, Array], u: Mapping[str, Array], n: int, oral: bool
) -> dict[str, Array]:
    """Derivatives of a linear mammillary model (amounts, mg/h); ``p`` holds micro-constants."""
    central = x["central"]
    into_central = u["iv"] - p["k10"] * central
    out: dict[str, Array] = {}
    if oral:
        absorbed = p["KA"] * x["depot"]
        out["depot"] = p["F"] * u["oral"] - absorbed
        into_central = into_central + absorbed
    for j in range(2, n + 1):
        periph = x[f"peripheral{j}"]
        flow = p[f"k1{j}"] * central - p[f"k{j}1"] * periph
        out[f"peripheral{j}"] = flow
        into_central = into_central - flow
    out["central"] = into_central
    return out


# ---------------------------------------------------------------------------------------------
# Spectral form of the disposition (closed form)
# ---------------------------------------------------------------------------------------------


def disposition(p: Mapping[str, Array], n: int) -> tuple[Array, Array]:
    """Exponents ``lambda_i`` (1/h) and coefficients ``A_i`` (1/L) of the unit-bolus response.

    ``C(t) = sum_i A_i exp(-lambda_i t)`` after 1 mg into the central compartment; both arrays
    have the parameters' batch shape plus a trailing axis of length ``n``.

    >>> import numpy as np
    >>> lam, a = disposition({"CL": 5.0, "V": 50.0}, 1)
    >>> float(lam[0]), float(a[0])
    (0.1, 0.02)
    """
    k = micro_constants({key: jnp.asarray(v, dtype=float) for key, v in p.items()}, n)
    v1 = jnp.asarray(p["V"] if n == 1 else p["V1"], dtype=float)
    if n == 1:
        lam = k["k10"][..., None]
    elif n == 2:
        k10, k12, k21 = k["k10"], k["k12"], k["k21"]
        a = k10 + k12 + k21
        root = jnp.sqrt(
            (k10 + k12 - k21) ** 2 + 4.0 * k12 * k21
        )  # a^2 - 4 k10 k21, no cancellation
        alpha = 0.5 * (a + root)
        beta = k10 * k21 / alpha  # the small root without cancellation
        lam = jnp.stack([alpha, beta], axis=-1)
    elif n == 3:
        lam = _cubic_roots(k)
    else:
        raise ParameterError(f"linear disposition has 1, 2 or 3 compartments, not {n}")
    # A_i = prod_j (kj1 - lam_i) / (V1 prod_{m != i} (lam_m - lam_i))
    num = jnp.ones_like(lam)
    for j in range(2, n + 1):
        num = num * (k[f"k{j}1"][..., None] - lam)
    den = jnp.ones_like(lam)
    for i in range(n):
        for m in range(n):
            if m != i:
                den = den.at[..., i].multiply(lam[..., m] - lam[..., i])
    return lam, num / (v1[..., None] * den)


def _cubic_roots(k: Mapping[str, Array]) -> Array:
    """Roots of ``l^3 - a2 l^2 + a1 l - a0`` (3-compartment), trigonometric form + Newton polish."""
    k10, k12, k21, k13, k31 = k["k10"], k["k12"], k["k21"], k["k13"], k["k31"]
    a0 = k10 * k21 * k31
    a1 = k10 * k31 + k21 * k31 + k21 * k13 + k10 * k21 + k31 * k12
    a2 = k10 + k12 + k13 + k21 + k31
    pp = a1 - a2**2 / 3.0
    qq = 2.0 * a2**3 / 27.0 - a1 * a2 / 3.0 + a0
    r1 = jnp.sqrt(jnp.maximum(-(pp**3) / 27.0, 1e-300))
    phi = jnp.arccos(jnp.clip(-qq / (2.0 * r1), -1.0, 1.0)) / 3.0
    r2 = 2.0 * jnp.cbrt(r1)
    roots = [
        a2 / 3.0 - r2 * jnp.cos(phi + shift) for shift in (0.0, 2 * math.pi / 3, 4 * math.pi / 3)
    ]
    lam = jnp.stack(roots, axis=-1)
    # one Newton step on the cubic restores full relative precision of the smallest root
    c0, c1, c2 = a0[..., None], a1[..., None], a2[..., None]
    poly = ((lam - c2) * lam + c1) * lam - c0
    slope = (3.0 * lam - 2.0 * c2) * lam + c1
    safe = jnp.where(jnp.abs(slope) > 0, slope, 1.0)
    lam = jnp.where(jnp.abs(slope) > 0, lam - poly / safe, lam)
    return jnp.sort(lam, axis=-1)[..., ::-1]
