"""Integrators: fixed-step RK4 on the hot path, diffrax's adaptive solvers for validation.

Each solver advances the whole batch over one input period ``[t, t + dt]`` with the inputs held
constant, which is exactly how simglucose and most sampled-data simulators treat inputs.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import jax

from medtwin.errors import ConfigurationError
from medtwin.models._base import AbstractModel, Array

__all__ = ["RK4", "Adaptive", "Solver"]


def _axpy(a: float | Array, x: Mapping[str, Array], y: Mapping[str, Array]) -> dict[str, Array]:
    return {k: y[k] + a * x[k] for k in y}


@dataclass(frozen=True, slots=True)
class RK4:
    """Classical fourth-order Runge-Kutta with ``substeps`` equal steps per input period.

    ``dt`` is the input period in the model's time unit (1 minute for UVA/Padova).

    >>> RK4(dt=1.0, substeps=2).h
    0.5
    """

    dt: float = 1.0
    substeps: int = 1

    def __post_init__(self) -> None:
        if not (self.dt > 0 and math.isfinite(self.dt)):
            raise ConfigurationError(f"RK4 dt must be a positive number, got {self.dt!r}")
        if not (isinstance(self.substeps, int) and self.substeps >= 1):
            raise ConfigurationError(f"RK4 substeps must be an integer >= 1, got {self.substeps!r}")

    @property
    def h(self) -> float:
        """The integration step, dt / substeps."""
        return self.dt / self.substeps

    def advance(
        self,
        model: AbstractModel,
        t: Array,
        x: dict[str, Array],
        p: Mapping[str, Array],
        u: Mapping[str, Array],
    ) -> dict[str, Array]:
        """State at ``t + dt`` from the state at ``t``."""
        h = self.h
        # one traced rhs serves all four stages: tracing and lowering once keeps the first
        # call short; XLA inlines it again, so the compiled loop is the same
        rhs = jax.jit(model.rhs)
        for i in range(self.substeps):
            ti = t + i * h
            k1 = rhs(ti, x, p, u)
            k2 = rhs(ti + h / 2, _axpy(h / 2, k1, x), p, u)
            k3 = rhs(ti + h / 2, _axpy(h / 2, k2, x), p, u)
            k4 = rhs(ti + h, _axpy(h, k3, x), p, u)
            x = {k: x[k] + (h / 6) * (k1[k] + 2 * k2[k] + 2 * k3[k] + k4[k]) for k in x}
        return x


@dataclass(frozen=True, slots=True)
class Adaptive:
    """An adaptive diffrax solver (``"Dopri5"``, ``"Tsit5"``, ``"Kvaerno5"`` for stiff models).

    Opt-in, for models that need it and for validating RK4; the whole batch shares one step size
    per input period, and diffrax's compilation costs seconds.
    """

    dt: float = 1.0
    method: str = "Dopri5"
    rtol: float = 1e-8
    atol: float = 1e-8
    max_steps: int = 4096

    def __post_init__(self) -> None:
        import diffrax

        if not hasattr(diffrax, self.method):
            raise ConfigurationError(
                f"unknown diffrax solver {self.method!r}; try Dopri5, Tsit5 or Kvaerno5"
            )
        if not (self.dt > 0 and self.rtol > 0 and self.atol > 0):
            raise ConfigurationError(f"Adaptive needs dt, rtol, atol > 0, got {self}")

    def advance(
        self,
        model: AbstractModel,
        t: Array,
        x: dict[str, Array],
        p: Mapping[str, Array],
        u: Mapping[str, Array],
    ) -> dict[str, Array]:
        """State at ``t + dt`` from the state at ``t``."""
        import diffrax

        def f(s: Any, y: dict[str, Array], args: Any) -> dict[str, Array]:
            return model.rhs(s, y, p, u)

        sol = diffrax.diffeqsolve(
            diffrax.ODETerm(f),
            getattr(diffrax, self.method)(),
            t0=t,
            t1=t + self.dt,
            dt0=None,
            y0=x,
            stepsize_controller=diffrax.PIDController(rtol=self.rtol, atol=self.atol),
            max_steps=self.max_steps,
            saveat=diffrax.SaveAt(t1=True),
        )
        return jax.tree.map(lambda a: a[-1], sol.ys)


Solver = RK4 | Adaptive
