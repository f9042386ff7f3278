"""A PID controller on the glucose reading, as simglucose's ``PIDController``.

At the start of every control period of length ``T`` (min), with ``G`` the sensor reading (mg/dL)::

    u        = kp (G - target) + ki I + kd (G - G_prev) / T
    I       <- I + (G - target) T                  (after computing u: simglucose's order)
    G_prev  <- G
    rate     = min(max(basal + u, 0), max_rate)    (U/min)

``I`` and ``G_prev`` start at 0, as in simglucose 0.2.11, so the first period gets a derivative kick
of ``kd G / T``; ``derivative_on_first_sample=False`` drops it (the derivative starts at the second
reading).  simglucose does not clip the controller output itself: its pump's ``min_basal = 0`` does,
which the clip at 0 here reproduces for an ideal pump.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, ClassVar

import jax.numpy as jnp

from medtwin.control._settings import Setting, broadcast, normalise, value_key
from medtwin.errors import ParameterError
from medtwin.models._base import Array

if TYPE_CHECKING:
    from medtwin.simulate import ControlObservation

__all__ = ["PID"]

_SETTINGS = ("kp", "ki", "kd", "target_mg_dl", "basal_u_per_min")


@dataclass(frozen=True, slots=True, eq=False)
class PID:
    """Proportional-integral-derivative insulin dosing on the glucose reading.

    Gains are in U/min per mg/dL (``kp``), per mg/dL min (``ki``) and per mg/dL/min (``kd``); every
    setting is a scalar or one value per patient.

    >>> import jax.numpy as jnp
    >>> from medtwin.control import PID
    >>> from medtwin.simulate import ControlObservation
    >>> ctrl = PID(kp=1e-4, ki=0.0, kd=0.0, basal_u_per_min=0.01)
    >>> arrays = ctrl.arrays(3)
    >>> obs = ControlObservation(
    ...     t=jnp.asarray(0.0),
    ...     glucose=jnp.array([40.0, 140.0, 240.0]),
    ...     announced={},
    ...     period=5.0,
    ... )
    >>> rates, state = ctrl.step(obs, ctrl.init(arrays), arrays)
    >>> rates["insulin"].round(6).tolist()  # insulin cannot be negative
    [0.0, 0.01, 0.02]
    >>> state["integral"].tolist()  # (G - 140) * 5 min
    [-500.0, 0.0, 500.0]
    """

    kp: Setting
    ki: Setting
    kd: Setting
    target_mg_dl: Setting = 140.0
    basal_u_per_min: Setting = 0.0
    max_rate_u_per_min: float | None = None
    derivative_on_first_sample: bool = True

    controls: ClassVar[tuple[str, ...]] = ("insulin",)

    def __post_init__(self) -> None:
        for name in _SETTINGS:
            low = 0.0 if name == "basal_u_per_min" else None
            object.__setattr__(self, name, normalise("PID", name, getattr(self, name), minimum=low))
        high = self.max_rate_u_per_min
        if high is not None:
            try:
                high = float(high)
            except (TypeError, ValueError):
                high = math.nan
            if not (high > 0 and not math.isnan(high)):
                raise ParameterError(
                    "PID max_rate_u_per_min must be one number > 0 (None: no limit), "
                    f"got {self.max_rate_u_per_min!r}"
                )
            object.__setattr__(self, "max_rate_u_per_min", high)

    def __eq__(self, other: object) -> bool:
        if type(other) is not type(self):
            return NotImplemented
        return value_key(self) == value_key(other)

    def __hash__(self) -> int:
        return hash(value_key(self))

    def arrays(self, n: int) -> dict[str, Array]:
        """Return the settings as length-``n`` arrays."""
        return {name: broadcast("PID", name, getattr(self, name), n) for name in _SETTINGS}

    def init(self, arrays: Mapping[str, Array]) -> dict[str, Array]:
        """Integral of the error and previous reading, both 0 (simglucose's start)."""
        zero = jnp.zeros_like(jnp.asarray(arrays["kp"], dtype=jnp.float64))
        return {"integral": zero, "prev": zero}

    def step(
        self,
        obs: ControlObservation,
        state: Mapping[str, Array],
        arrays: Mapping[str, Array],
    ) -> tuple[dict[str, Array], dict[str, Array]]:
        """Return the rate for the next period and the updated integral and previous reading."""
        glucose = obs.glucose
        error = glucose - arrays["target_mg_dl"]
        prev = state["prev"]
        if not self.derivative_on_first_sample:
            # prev == 0 marks "no reading yet": a sensor never reports 0 mg/dL.
            prev = jnp.where(prev > 0, prev, glucose)
        control = (
            arrays["kp"] * error
            + arrays["ki"] * state["integral"]
            + arrays["kd"] * (glucose - prev) / obs.period
        )
        rate = jnp.maximum(arrays["basal_u_per_min"] + control, 0.0)
        if self.max_rate_u_per_min is not None:
            rate = jnp.minimum(rate, self.max_rate_u_per_min)
        new_state = {
            "integral": state["integral"] + error * obs.period,
            "prev": jnp.asarray(glucose, dtype=jnp.float64),
        }
        return {"insulin": rate}, new_state
