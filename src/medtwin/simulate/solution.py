"""The result of a simulation: trajectories of a batch on a time grid."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from medtwin.errors import ParameterError

__all__ = ["Solution"]


@dataclass(frozen=True)
class Solution:
    """Trajectories of N patients on T output times.

    ``t`` is ``(T,)``, shared by the batch, or ``(N, T)`` when every patient has their own
    observation times (:func:`~medtwin.simulate.simulate_doses`).

    ``values[name]`` is an (N, T) array for each recorded quantity (states, observations, sensor
    readings, ``<input>_delivered`` for rate inputs and ``<input>_announced`` for amount inputs:
    the amount given in the interval that starts at that time).  ``final_state`` holds every
    state (and discrete state) at the last time, so passing it as ``x0`` continues the simulation
    exactly.
    """

    t: np.ndarray
    values: dict[str, np.ndarray]
    units: dict[str, str]
    patient_ids: tuple[str, ...]
    final_state: dict[str, np.ndarray]
    time_unit: str = "min"
    model_name: str = ""

    @property
    def n_patients(self) -> int:
        """Batch size N."""
        return len(self.patient_ids)

    def __getitem__(self, name: str) -> np.ndarray:
        try:
            return self.values[name]
        except KeyError:
            raise ParameterError(
                f"{name!r} was not recorded; recorded: {', '.join(self.values)}"
            ) from None

    def __contains__(self, name: object) -> bool:
        return name in self.values

    def to_pandas(self) -> pd.DataFrame:
        """Long format: one row per (patient, time), one column per recorded quantity."""
        n, t = self.n_patients, self.t.shape[-1]
        frame: dict[str, Any] = {
            "patient": np.repeat(np.asarray(self.patient_ids, dtype=object), t),
            f"t_{self.time_unit}": self.t.reshape(-1) if self.t.ndim == 2 else np.tile(self.t, n),
        }
        for name, arr in self.values.items():
            frame[name] = arr.reshape(-1)
        return pd.DataFrame(frame)

    def to_xarray(self) -> Any:
        """An ``xarray.Dataset`` with dimensions (patient, time) and units as attributes."""
        import xarray as xr

        data = {
            name: (("patient", "time"), arr, {"units": self.units.get(name, "")})
            for name, arr in self.values.items()
        }
        per_patient = self.t.ndim == 2
        time = (("patient", "time") if per_patient else "time", self.t, {"units": self.time_unit})
        return xr.Dataset(
            data,
            coords={"patient": list(self.patient_ids), "t" if per_patient else "time": time},
            attrs={"model": self.model_name},
        )
