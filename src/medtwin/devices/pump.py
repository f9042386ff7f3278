"""Insulin pumps: quantisation and limits of the delivered rate, as simglucose 0.2.11 applies them.

simglucose's ``InsulinPump`` converts a requested rate in U/min to pmol/min (x 6000), rounds it to
the pump's increment (half to even, ``numpy.round``), converts back and clips it to the pump's
``[min, max]`` U/min.  It does so separately for the basal and the bolus part of an action.  A
medtwin controller hands over one total rate per input, so :meth:`InsulinPump.deliver` applies the
*basal* rounding and limits to that total; compared with rounding the two parts separately the
delivered rate differs by at most one increment, ``inc_basal_pmol_per_min / 6000`` U/min
(8.3e-6 U/min for the shipped pumps), as long as neither limit is reached.

A request that lies on half an increment up to floating-point error may round either way: XLA can
divide by a constant through its reciprocal, so there the delivered rate may differ from
simglucose's by one increment.
"""

from __future__ import annotations

import csv
import functools
import math
from collections.abc import Mapping
from dataclasses import dataclass
from importlib import resources

import jax.numpy as jnp

from medtwin.errors import ConfigurationError
from medtwin.models._base import Array

__all__ = ["InsulinPump"]

U_TO_PMOL = 6000.0
"""Insulin: pmol per unit (simglucose's ``InsulinPump.U2PMOL``)."""


@functools.cache
def _pump_table() -> dict[str, dict[str, float]]:
    path = resources.files("medtwin.devices") / "data" / "pump_params.csv"
    rows = list(csv.DictReader(path.read_text(encoding="utf-8").splitlines()))
    return {r["Name"]: {k: float(v) for k, v in r.items() if k != "Name"} for r in rows}


def _quantise(rate: Array, inc_pmol_per_min: float, low: float, high: float) -> Array:
    if inc_pmol_per_min > 0:
        pmol = rate * U_TO_PMOL
        rate = jnp.round(pmol / inc_pmol_per_min) * inc_pmol_per_min / U_TO_PMOL
    return jnp.clip(rate, low, high)


@dataclass(frozen=True, slots=True)
class InsulinPump:
    """An insulin pump that rounds the requested rate to its increment and clips it to its limits.

    Limits are in U/min; increments are in pmol/min, the unit simglucose rounds in.  An increment
    of 0 means no rounding.  ``input_name`` is the model input the pump drives; other inputs of a
    controller pass through unchanged.

    >>> from medtwin.devices import InsulinPump
    >>> pump = InsulinPump.named("Insulet")
    >>> rate = pump.deliver({"insulin": 0.0123456})["insulin"]  # 74.07 pmol/min
    >>> round(float(rate) * 6000, 9)  # rounded to the 0.05 pmol/min increment
    74.05
    >>> float(pump.deliver({"insulin": 45.0})["insulin"])  # at most 30 U/min
    30.0
    """

    name: str
    min_bolus_u_per_min: float
    max_bolus_u_per_min: float
    inc_bolus_pmol_per_min: float
    min_basal_u_per_min: float
    max_basal_u_per_min: float
    inc_basal_pmol_per_min: float
    input_name: str = "insulin"

    def __post_init__(self) -> None:
        for kind in ("bolus", "basal"):
            low = getattr(self, f"min_{kind}_u_per_min")
            high = getattr(self, f"max_{kind}_u_per_min")
            inc = getattr(self, f"inc_{kind}_pmol_per_min")
            if math.isnan(low) or math.isnan(high) or not 0 <= low <= high:
                raise ConfigurationError(
                    f"InsulinPump {self.name!r} needs 0 <= min_{kind}_u_per_min <= "
                    f"max_{kind}_u_per_min, got {low!r} and {high!r}"
                )
            if not (math.isfinite(inc) and inc >= 0):
                raise ConfigurationError(
                    f"InsulinPump {self.name!r} inc_{kind}_pmol_per_min must be finite and >= 0 "
                    f"(0: no rounding), got {inc!r}"
                )

    @classmethod
    def named(cls, name: str) -> InsulinPump:
        """Load a simglucose pump: ``"Insulet"`` or ``"Cozmo"``.

        >>> InsulinPump.named("Cozmo").max_basal_u_per_min
        35.0
        """
        table = _pump_table()
        if name not in table:
            raise ConfigurationError(
                f"unknown insulin pump {name!r}; choose one of {', '.join(sorted(table))}"
            )
        row = table[name]
        return cls(
            name=name,
            min_bolus_u_per_min=row["min_bolus"],
            max_bolus_u_per_min=row["max_bolus"],
            inc_bolus_pmol_per_min=row["inc_bolus"],
            min_basal_u_per_min=row["min_basal"],
            max_basal_u_per_min=row["max_basal"],
            inc_basal_pmol_per_min=row["inc_basal"],
        )

    @classmethod
    def ideal(cls) -> InsulinPump:
        """Make a pump that delivers any non-negative rate exactly (negative requests give 0).

        >>> float(InsulinPump.ideal().deliver({"insulin": 0.0123456})["insulin"])
        0.0123456
        """
        return cls(
            name="ideal",
            min_bolus_u_per_min=0.0,
            max_bolus_u_per_min=math.inf,
            inc_bolus_pmol_per_min=0.0,
            min_basal_u_per_min=0.0,
            max_basal_u_per_min=math.inf,
            inc_basal_pmol_per_min=0.0,
        )

    def basal(self, rate_u_per_min: Array) -> Array:
        """Delivered basal rate (U/min): simglucose's ``InsulinPump.basal``."""
        return _quantise(
            rate_u_per_min,
            self.inc_basal_pmol_per_min,
            self.min_basal_u_per_min,
            self.max_basal_u_per_min,
        )

    def bolus(self, rate_u_per_min: Array) -> Array:
        """Delivered bolus rate (U/min): simglucose's ``InsulinPump.bolus``."""
        return _quantise(
            rate_u_per_min,
            self.inc_bolus_pmol_per_min,
            self.min_bolus_u_per_min,
            self.max_bolus_u_per_min,
        )

    def deliver(self, rates: Mapping[str, Array]) -> dict[str, Array]:
        """Delivered rates: the basal rounding and limits applied to the total insulin rate."""
        out = dict(rates)
        if self.input_name in out:
            out[self.input_name] = self.basal(out[self.input_name])
        return out
