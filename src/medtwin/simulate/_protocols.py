"""What the engine asks of sensors, pumps and closed-loop controllers.

All three are pure functions over a batch (structure of arrays), so they run inside the engine's
compiled loop.  Per-patient settings (a carbohydrate ratio per patient, say) are handed out by
``arrays()`` as a dict of length-N arrays (or scalars); the engine slices them into chunks together
with the model parameters and passes the chunk back into ``init``/``step``.  That keeps the objects
themselves immutable and the compiled code independent of the batch size.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, NamedTuple, Protocol, runtime_checkable

from medtwin.models._base import Array

__all__ = ["ControlObservation", "Controller", "Pump", "Sensor"]


class ControlObservation(NamedTuple):
    """What a controller sees at the start of a control period (a JAX pytree).

    Attributes
    ----------
    t:
        Time at the start of the period, in the model's time unit (scalar).
    glucose:
        The sensor's reading for each patient (the sensor's unit, mg/dL for a CGM), shape (N,).
    announced:
        For every ``kind="amount"`` model input, the total handed over during the previous control
        period (for the UVA/Padova model: ``announced["cho"]``, grams of carbohydrate announced),
        shape (N,) each.  This is how a patient's meal announcement reaches a bolus calculator.
    period:
        Length of the control period in the model's time unit (Python float).
    """

    t: Array
    glucose: Array
    announced: Mapping[str, Array]
    period: float


@runtime_checkable
class Controller(Protocol):
    """A closed-loop controller: a pure function of what the sensor reported.

    ``controls`` names the model inputs it drives (``("insulin",)``).  For those inputs the
    schedule's baseline (basal) is replaced by the controller's output; scheduled pulses (a manual
    bolus) still add on top.  ``step`` returns rates in the input's unit (U/min) held over the next
    control period.
    """

    @property
    def controls(self) -> tuple[str, ...]:
        """Names of the model inputs this controller drives."""
        ...

    def arrays(self, n: int) -> dict[str, Array]:
        """Per-patient settings for a batch of ``n`` (length-n arrays or scalars)."""
        ...

    def init(self, arrays: Mapping[str, Array]) -> dict[str, Array]:
        """Initial controller state for a chunk (dict of (N,) arrays; may be empty)."""
        ...

    def step(
        self,
        obs: ControlObservation,
        state: Mapping[str, Array],
        arrays: Mapping[str, Array],
    ) -> tuple[dict[str, Array], dict[str, Array]]:
        """Rates for the next period for each controlled input, and the new controller state."""
        ...


@runtime_checkable
class Sensor(Protocol):
    """A sensor that samples one model observation every ``sample_time`` (model time units)."""

    @property
    def observation(self) -> str:
        """Name of the model observation the sensor samples."""
        ...

    @property
    def sample_time(self) -> float:
        """Time between readings, in the model's time unit."""
        ...

    def noise(self, key: Any, n_samples: int) -> Array:
        """Noise sequence of one patient, shape (n_samples,), from a JAX PRNG key."""
        ...

    def read(self, value: Array, noise: Array) -> Array:
        """The reading given the true value and the noise at that sample (clipping etc.)."""
        ...


@runtime_checkable
class Pump(Protocol):
    """An actuator that turns requested rates into what is actually delivered."""

    def deliver(self, rates: Mapping[str, Array]) -> dict[str, Array]:
        """Delivered rates (quantised, limited) for the requested ones."""
        ...
