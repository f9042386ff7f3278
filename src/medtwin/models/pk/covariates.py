"""Covariate models: how body weight, renal function and age move an individual's parameters.

A :class:`CovariateModel` is a tuple of effects, each multiplying one parameter by a factor of one
covariate (by NONMEM convention ``WT`` in kg, ``CRCL`` in mL/min, ``AGE`` in years):

- :class:`Power`: ``(cov / reference) ** exponent``, e.g. allometric scaling of clearances with
  exponent 0.75 and of volumes with exponent 1 to a 70 kg adult (Holford, Clin Pharmacokinet
  30:329, 1996; Anderson & Holford, Annu Rev Pharmacol Toxicol 48:303, 2008), or renal function on
  clearance;
- :class:`Linear`: ``1 + slope (cov - reference)``, e.g. a fractional change of clearance per year
  of age.

Effects compose multiplicatively, are plain JAX (vectorised over subjects, differentiable in the
parameters) and leave unnamed parameters alone.  :func:`cockcroft_gault` estimates creatinine
clearance (Cockcroft & Gault, Nephron 16:31, 1976).

>>> import numpy as np
>>> from medtwin.models.pk import TwoCompartmentOral
>>> cov = CovariateModel.allometric(TwoCompartmentOral)
>>> p = cov.apply(TwoCompartmentOral.defaults(), {"WT": np.array([35.0, 70.0])})
>>> np.round(p["CL"], 3).tolist(), p["V1"].tolist(), float(p["KA"])
([2.973, 5.0], [15.0, 30.0], 1.0)
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import jax.numpy as jnp

from medtwin.errors import ParameterError
from medtwin.models._base import AbstractModel, Array

__all__ = ["CovariateModel", "Linear", "Power", "cockcroft_gault"]

ALLOMETRIC_CLEARANCE = 0.75
ALLOMETRIC_VOLUME = 1.0


def _finite(value: float, what: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise ParameterError(f"{what} must be a finite number, got {value!r}")
    return float(value)


@dataclass(frozen=True, slots=True)
class Power:
    """``param *= (covariate / reference) ** exponent``."""

    param: str
    covariate: str
    reference: float
    exponent: float

    def __post_init__(self) -> None:
        if _finite(self.reference, f"reference of {self.covariate} on {self.param}") <= 0:
            raise ParameterError(
                f"a power effect of {self.covariate} needs a reference > 0, got {self.reference}"
            )
        _finite(self.exponent, f"exponent of {self.covariate} on {self.param}")

    def factor(self, value: Array) -> Array:
        """The multiplier for covariate ``value``."""
        return (jnp.asarray(value, dtype=float) / self.reference) ** self.exponent


@dataclass(frozen=True, slots=True)
class Linear:
    """``param *= 1 + slope * (covariate - reference)``."""

    param: str
    covariate: str
    reference: float
    slope: float

    def __post_init__(self) -> None:
        _finite(self.reference, f"reference of {self.covariate} on {self.param}")
        _finite(self.slope, f"slope of {self.covariate} on {self.param}")

    def factor(self, value: Array) -> Array:
        """The multiplier for covariate ``value``."""
        return 1.0 + self.slope * (jnp.asarray(value, dtype=float) - self.reference)


Effect = Power | Linear


@dataclass(frozen=True, slots=True)
class CovariateModel:
    """Multiplicative covariate effects on parameters; models add up with ``+``."""

    effects: tuple[Effect, ...] = ()

    @classmethod
    def allometric(
        cls,
        model: type[AbstractModel] | AbstractModel,
        *,
        covariate: str = "WT",
        reference_kg: float = 70.0,
        clearance_exponent: float = ALLOMETRIC_CLEARANCE,
        volume_exponent: float = ALLOMETRIC_VOLUME,
    ) -> CovariateModel:
        """Allometric weight scaling of every clearance (``CL``, ``Q*``, ``VMAX``) and volume."""
        names = (model if isinstance(model, type) else type(model)).param_names()
        effects: list[Effect] = []
        for name in names:
            if name in ("CL", "VMAX") or (name.startswith("Q") and name[1:].isdigit()):
                effects.append(Power(name, covariate, reference_kg, clearance_exponent))
            elif name == "V" or (name.startswith("V") and name[1:].isdigit()):
                effects.append(Power(name, covariate, reference_kg, volume_exponent))
        if not effects:
            raise ParameterError(f"{names} has no clearance or volume to scale with weight")
        return cls(tuple(effects))

    def __add__(self, other: CovariateModel) -> CovariateModel:
        if not isinstance(other, CovariateModel):
            return NotImplemented
        return CovariateModel((*self.effects, *other.effects))

    @property
    def covariates(self) -> tuple[str, ...]:
        """The covariates the effects read, in first-use order."""
        return tuple(dict.fromkeys(e.covariate for e in self.effects))

    def apply(self, params: Mapping[str, Any], covariates: Mapping[str, Any]) -> dict[str, Array]:
        """Individual parameters: ``params`` (typical values) times every effect's factor."""
        missing = [c for c in self.covariates if c not in covariates]
        if missing:
            raise ParameterError(f"the covariate model needs {missing}; given {sorted(covariates)}")
        out: dict[str, Array] = {k: jnp.asarray(v, dtype=float) for k, v in params.items()}
        for e in self.effects:
            if e.param not in out:
                raise ParameterError(
                    f"a covariate effect acts on {e.param!r}, which is not among {sorted(out)}"
                )
            out[e.param] = out[e.param] * e.factor(covariates[e.covariate])
        return out


def cockcroft_gault(
    age_years: Array, weight_kg: Array, serum_creatinine_mg_dl: Array, female: Array
) -> Array:
    """Creatinine clearance (mL/min): ``(140 - age) weight / (72 Scr)``, times 0.85 for women.

    >>> round(float(cockcroft_gault(40, 72, 1.0, False)), 1)
    100.0
    """
    crcl = (
        (140.0 - jnp.asarray(age_years, dtype=float))
        * jnp.asarray(weight_kg, dtype=float)
        / (72.0 * jnp.asarray(serum_creatinine_mg_dl, dtype=float))
    )
    return jnp.where(jnp.asarray(female, dtype=bool), 0.85 * crcl, crcl)
