r"""Closed-form concentrations of the linear models by superposition over doses, in JAX.

Every dose acts on each exponential mode of the disposition, ``C(t) = sum_i A_i exp(-lambda_i t)``
per mg in the central compartment (:func:`~medtwin.models.pk._base.disposition`).  With ``M(mu)``
the response of a mode of rate ``mu`` to one unit of a dose type, per unit of amount:

- bolus at ``s = t - t_dose >= 0``: ``M = exp(-mu s)``;
- infusion over ``T``: ``M = exp(-mu (s - min(s, T))) (1 - exp(-mu min(s, T))) / (mu T)``;
- steady state (SS, interval ``tau``; the sum of infinitely many doses, in closed form):
  with ``u = s + k0 tau`` in ``[0, tau)`` the time since the last entry,
  bolus ``M = exp(-mu u) / (1 - exp(-mu tau))``; infusion
  ``M = (n + exp(-mu u) (exp(-mu (n tau - T)) - 1) / (1 - exp(-mu tau))) / (mu T)`` with
  ``n = max(0, ceil((T - u) / tau))`` infusions still running (Gibaldi & Perrier, 1982, ch. 3 and
  appendix C).

A dose into the central compartment contributes ``D sum_i A_i M(lambda_i)``.  A dose into the depot
enters ``ALAG`` later, scaled by ``F``, and reaches the central compartment through first-order
absorption; convolving the two exponentials gives the divided difference
``F D KA sum_i A_i (M(lambda_i) - M(KA)) / (KA - lambda_i)``, which is evaluated as a central
difference around the midpoint when ``KA`` and ``lambda_i`` (nearly) coincide, so the formula and
its gradient stay finite at ``KA = lambda_i`` (Bertrand & Mentré, Monolix PK model expressions,
2008).  The result is right-continuous: a bolus at ``t`` counts at ``t``.
"""

from __future__ import annotations

from collections.abc import Mapping
from functools import partial
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from medtwin.errors import ParameterError, ScheduleError
from medtwin.models._base import Array
from medtwin.models.pk._base import PKModel, disposition
from medtwin.models.pk.dosing import DoseTable, Regimen

__all__ = ["DOSE_KINDS", "concentration", "dose_kinds", "resolve_model"]

DOSE_KINDS = frozenset({"central", "depot", "infusion", "ss", "until"})
"""Code paths of the closed form: doses into the central compartment or the depot, infusions,
steady-state doses, doses cancelled by a later reset."""

_CLOSE = 1e-6  # relative distance of KA and lambda_i below which the midpoint difference is used


def resolve_model(model: str | PKModel | type[PKModel]) -> type[PKModel]:
    """The PK model class for a class, an instance or a name (``"two_compartment_oral"``)."""
    from medtwin.models.pk import PK_MODELS

    if isinstance(model, str):
        by_name = {m.name: m for m in PK_MODELS} | {m.__name__: m for m in PK_MODELS}
        if model not in by_name:
            raise ParameterError(
                f"unknown PK model {model!r}; choose one of {', '.join(m.name for m in PK_MODELS)}"
            )
        return by_name[model]
    cls = model if isinstance(model, type) else type(model)
    if not (isinstance(cls, type) and issubclass(cls, PKModel)):
        raise ParameterError(f"{getattr(cls, '__name__', cls)!r} is not a PK model")
    return cls


def concentration(
    model: str | PKModel | type[PKModel],
    params: Mapping[str, Any],
    doses: DoseTable | Regimen,
    t: Any,
    *,
    kinds: frozenset[str] | None = None,
) -> Array:
    """Central concentration (mg/L) of a linear PK model at times ``t`` (h), in closed form.

    Pure JAX: jit-, vmap- and grad-compatible in ``params``, ``t`` and ``doses``, float64.

    Parameters
    ----------
    model:
        A linear PK model (class, instance or name), e.g. ``TwoCompartmentOral``.
    params:
        Parameter values by name, each a scalar or an array of the batch shape ``(N,)``; missing
        parameters take the model's defaults.
    doses:
        A :class:`DoseTable` of shape ``(N, D)`` (one row per subject) or ``(D,)`` (shared), or a
        :class:`Regimen`.
    t:
        Times (h): ``(T,)`` shared or ``(N, T)`` per subject.
    kinds:
        The dose kinds present (:data:`DOSE_KINDS`).  Read from a concrete table; a table traced
        by ``jit``/``vmap`` enables every kind unless ``kinds=dose_kinds(model, table)`` is given
        (computed outside the transformation), which skips the unused code.

    Returns
    -------
    Array
        Concentrations of shape ``batch + (T,)`` where ``batch`` broadcasts the parameters', the
        dose table's and the times' leading shapes.

    Examples
    --------
    >>> import numpy as np
    >>> from medtwin.models.pk import OneCompartment, Regimen, concentration
    >>> c = concentration(OneCompartment, {"CL": 5.0, "V": 50.0}, Regimen.bolus(100), [0.0, 6.93])
    >>> np.round(np.asarray(c), 3).tolist()  # 100 mg / 50 L, halved after ln 2 / 0.1 h
    [2.0, 1.0]
    """
    cls = resolve_model(model)
    n = cls.n_compartments
    if n == 0:
        raise ParameterError(
            f"{cls.__name__} has no closed form (it is not linear); simulate it with "
            "medtwin.simulate.simulate(model, regimen, t)"
        )
    if isinstance(doses, Regimen):
        doses = doses.to_doses(cls)
    if not isinstance(doses, DoseTable):
        raise ScheduleError(f"doses must be a DoseTable or a Regimen, got {type(doses).__name__}")
    p = _params(cls, params)
    flags = _static_flags(cls, doses)
    if kinds is not None:
        unknown = set(kinds) - DOSE_KINDS
        if unknown:
            raise ParameterError(f"unknown dose kinds {sorted(unknown)}; use {sorted(DOSE_KINDS)}")
        flags = {k: flags[k] and k in kinds for k in flags}
    return _evaluate(cls, tuple(sorted(k for k, on in flags.items() if on)), p, doses, t)


@partial(jax.jit, static_argnums=(0, 1))
def _evaluate(
    cls: type[PKModel], kinds: tuple[str, ...], p: dict[str, Array], doses: DoseTable, t: Any
) -> Array:
    """The superposition, compiled once per model, dose kinds and shapes."""
    flags = {k: k in kinds for k in DOSE_KINDS}
    n = cls.n_compartments
    lam, coef = disposition(p, n)

    # layout (..., D, T): time is the minor axis, so XLA's loops vectorise over it; the modes
    # are unrolled (a trailing axis of length 2 or 3 would defeat the vectors)
    def dose_axis(a: Any) -> Array:
        return jnp.asarray(a)[..., :, None]  # (..., D, 1)

    def subject(a: Array) -> Array:
        return jnp.asarray(a)[..., None, None]  # (..., 1, 1)

    tt = jnp.asarray(t, dtype=float)[..., None, :]  # (..., 1, T)
    time, amount = dose_axis(doses.time_h), dose_axis(doses.amount_mg)
    duration, ii = dose_axis(doses.duration_h), dose_axis(doses.ii_h)
    is_ss = dose_axis(doses.ss) > 0
    cmt = dose_axis(doses.cmt)
    kind = _DoseKind(duration, ii, is_ss, flags)
    modes = [(subject(lam[..., i]), subject(coef[..., i])) for i in range(n)]

    total = jnp.zeros(())
    if flags["central"]:
        s = tt - time
        per_mg = sum(a * kind.response(mu, s) for mu, a in modes)
        total = total + jnp.where(cmt == cls.dose_cmt("iv"), amount * per_mg, 0.0)
    if flags["depot"]:
        ka = subject(p["KA"])
        s = tt - time - subject(p["ALAG"])
        per_mg = 0.0
        for mu, a in modes:
            mid = 0.5 * (mu + ka)
            close = jnp.abs(ka - mu) < 2 * _CLOSE * mid
            x1 = jnp.where(close, mid * (1 - _CLOSE), mu)
            x2 = jnp.where(close, mid * (1 + _CLOSE), ka)
            per_mg = per_mg + a * (kind.response(x1, s) - kind.response(x2, s)) / (x2 - x1)
        per_mg = subject(p["F"]) * ka * per_mg
        total = total + jnp.where(cmt == cls.dose_cmt("oral"), amount * per_mg, 0.0)
    active = tt >= time
    if flags["until"]:
        active = active & (tt < dose_axis(doses.until_h))
    return jnp.sum(jnp.where(active, total, 0.0), axis=-2)


class _DoseKind:
    """The per-unit-amount response ``M(mu, s)`` of bolus, infusion and steady-state doses."""

    def __init__(self, duration: Array, ii: Array, is_ss: Array, flags: Mapping[str, bool]):
        self.infusion = duration > 0
        self.duration = jnp.where(self.infusion, duration, 1.0)
        self.is_ss = is_ss
        self.tau = jnp.where(is_ss, ii, 1.0)
        self.flags = flags

    def response(self, mu: Array, s: Array) -> Array:
        flags = self.flags
        s_pos = jnp.maximum(s, 0.0)
        started = s >= 0
        out = jnp.where(started, jnp.exp(-mu * s_pos), 0.0)
        if flags["infusion"]:
            on = jnp.minimum(s_pos, self.duration)
            inf = jnp.exp(-mu * (s_pos - on)) * -jnp.expm1(-mu * on) / (mu * self.duration)
            out = jnp.where(self.infusion, jnp.where(started, inf, 0.0), out)
        if flags["ss"]:
            tau = self.tau
            u = jnp.maximum(s + jnp.maximum(0.0, jnp.ceil(-s / tau)) * tau, 0.0)
            decay = jnp.exp(-mu * u)
            geometric = -jnp.expm1(-mu * tau)  # 1 - exp(-mu tau)
            ss = decay / geometric
            if flags["infusion"]:
                dur = self.duration
                running = jnp.maximum(0.0, jnp.ceil((dur - u) / tau))
                ss_inf = (running + decay * jnp.expm1(-mu * (running * tau - dur)) / geometric) / (
                    mu * dur
                )
                ss = jnp.where(self.infusion, ss_inf, ss)
            out = jnp.where(self.is_ss, ss, out)
        return out


def _params(cls: type[PKModel], params: Mapping[str, Any]) -> dict[str, Array]:
    unknown = set(params) - set(cls.param_names())
    if unknown:
        raise ParameterError(
            f"{cls.__name__} has no parameter(s) {sorted(unknown)}; "
            f"known: {', '.join(cls.param_names())}"
        )
    return {
        name: jnp.asarray(params[name] if name in params else cls.param(name).default, dtype=float)
        for name in cls.param_names()
    }


def dose_kinds(model: str | PKModel | type[PKModel], doses: DoseTable | Regimen) -> frozenset[str]:
    """The :data:`DOSE_KINDS` that occur in a concrete dose table (checked against the model).

    >>> from medtwin.models.pk import OneCompartmentOral, Regimen
    >>> sorted(dose_kinds(OneCompartmentOral, Regimen.oral(100, every_h=24, doses=2)))
    ['depot']
    """
    cls = resolve_model(model)
    table = doses.to_doses(cls) if isinstance(doses, Regimen) else doses
    return frozenset(k for k, on in _static_flags(cls, table).items() if on)


def _static_flags(cls: type[PKModel], doses: DoseTable) -> dict[str, bool]:
    """Which dose types occur (all assumed when the table is traced), after checking targets."""
    pk = cls
    try:
        amount = np.asarray(doses.amount_mg)
        cmt = np.asarray(doses.cmt)
        duration = np.asarray(doses.duration_h)
        ss = np.asarray(doses.ss)
        until = np.asarray(doses.until_h)
    except Exception:  # a traced table (jit/vmap over doses): keep every code path it may use
        flags = dict.fromkeys(("central", "depot", "infusion", "ss", "until"), True)
        flags["depot"] = cls.depot is not None  # an IV-only model has no depot to dose
        return flags
    given = amount > 0
    central = pk.dose_cmt("iv")
    depot = pk.dose_cmt("oral") if pk.depot is not None else None
    targets = {central} | ({depot} if depot is not None else set())
    stray = given & ~np.isin(cmt, list(targets))
    if stray.any():
        where = tuple(int(i) for i in np.argwhere(stray)[0])
        names = pk.state_names()
        c = int(cmt[where])
        raise ScheduleError(
            f"dose {where} goes to compartment {c} "
            f"({names[c - 1] if c <= len(names) else 'none'}); the closed form of {pk.__name__} "
            f"takes doses into {' or '.join(f'{k} ({names[k - 1]})' for k in sorted(targets))}"
        )
    return {
        "central": bool((given & (cmt == central)).any()),
        "depot": bool(depot is not None and (given & (cmt == depot)).any()),
        "infusion": bool((given & (duration > 0)).any()),
        "ss": bool((given & (ss > 0)).any()),
        "until": bool(np.isfinite(until).any()),
    }
