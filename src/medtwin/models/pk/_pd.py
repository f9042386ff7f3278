"""Pharmacodynamics on top of a PK model: a PD part declares its states, parameters and effect.

:func:`pkpd` joins a :class:`~medtwin.models.pk.PKModel` class and a :class:`Pharmacodynamics`
into a new model class whose states, parameters and observations are the two concatenated and
whose right-hand side drives the PD part with the central concentration ``Cc``.  The PK part keeps
its closed form (:func:`~medtwin.models.pk.concentration` still gives ``Cc``).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, ClassVar

import jax.numpy as jnp

from medtwin.models._base import Array, Observation, Param, State
from medtwin.models.pk._base import PKModel

__all__ = ["Pharmacodynamics", "hill", "pkpd"]


def hill(c: Array, c50: Array, gamma: Array) -> Array:
    """``c^gamma / (c50^gamma + c^gamma)``, 0 at ``c <= 0`` with a finite gradient there.

    >>> float(hill(2.0, 2.0, 3.0))
    0.5
    """
    c = jnp.asarray(c, dtype=float)
    positive = c > 0
    safe = jnp.where(positive, c, 1.0)
    ratio = jnp.exp(gamma * (jnp.log(safe) - jnp.log(c50)))  # (c / c50)^gamma
    return jnp.where(positive, ratio / (1.0 + ratio), 0.0)


class Pharmacodynamics:
    """What a PD part declares (abstract): states, parameters, its effect and its equations."""

    suffix: ClassVar[str] = ""
    name: ClassVar[str] = ""
    reference: ClassVar[str] = ""
    states: ClassVar[tuple[State, ...]] = ()
    params: ClassVar[tuple[Param, ...]] = ()
    linear: ClassVar[bool] = True
    effect_name: ClassVar[str] = "E"
    effect_unit: ClassVar[str] = "1"
    effect_description: ClassVar[str] = "drug effect"

    def rhs(self, c: Array, x: Mapping[str, Array], p: Mapping[str, Array]) -> dict[str, Array]:
        """Derivatives of the PD states given the central concentration ``c`` (mg/L)."""
        return {}

    def initial_state(self, p: Mapping[str, Array], like: Array) -> dict[str, Array]:
        """Baseline of the PD states (no drug)."""
        return {}

    def effect(self, c: Array, x: Mapping[str, Array], p: Mapping[str, Array]) -> Array:
        """The observed effect."""
        raise NotImplementedError


class _WithPD(PKModel):
    """The right-hand side and baseline of a PK model joined with a PD part (see :func:`pkpd`)."""

    __abstract__ = True
    pharmacodynamics: ClassVar[Pharmacodynamics]

    def rhs(
        self, t: Array, x: Mapping[str, Array], p: Mapping[str, Array], u: Mapping[str, Array]
    ) -> dict[str, Array]:
        """PK derivatives, then the PD derivatives driven by the central concentration."""
        out = super().rhs(t, x, p, u)
        out.update(self.pharmacodynamics.rhs(self.central_concentration(x, p), x, p))
        return out

    def initial_state(self, p: Mapping[str, Array]) -> dict[str, Array]:
        """No drug, PD states at baseline."""
        x = super().initial_state(p)
        return x | self.pharmacodynamics.initial_state(p, x[self.central])


def pkpd(pk: type[PKModel], pd: Pharmacodynamics, *, name: str | None = None) -> type[PKModel]:
    """A new model class: ``pk``'s states and parameters followed by ``pd``'s.

    >>> from medtwin.models.pk import EffectCompartment, OneCompartment
    >>> model = pkpd(OneCompartment, EffectCompartment())
    >>> model.__name__, model.state_names()
    ('OneCompartmentEffectCompartment', ('central', 'Ce'))
    """
    cls_name = name or f"{pk.__name__}{pd.suffix}"

    def effect(x: Mapping[str, Array], p: Mapping[str, Array]) -> Array:
        return pd.effect(x[pk.central] / p[pk.volume], x, p)

    namespace: dict[str, Any] = {
        "__module__": type(pd).__module__,
        "__qualname__": cls_name,
        "__doc__": (
            f"{pk.__name__} (PK) driving {type(pd).__name__} (PD): "
            f"{(type(pd).__doc__ or '').splitlines()[0]}"
        ),
        "name": f"{pk.name}_{pd.name}",
        "reference": f"{pk.reference}; {pd.reference}",
        "states": (*pk.states, *pd.states),
        "params": (*pk.params, *pd.params),
        "observations": (
            *pk.observations,
            Observation(pd.effect_name, pd.effect_unit, effect, None, pd.effect_description),
        ),
        "linear": pk.linear and pd.linear,
        "pharmacodynamics": pd,
    }
    return type(cls_name, (_WithPD, pk), namespace)
