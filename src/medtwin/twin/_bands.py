"""Predictive bands that calibrate themselves on the readings that arrive (adaptive conformal).

An ensemble's spread says how uncertain the *model* is; it does not know how wrong the model is
for this patient (unlogged meals, insulin sensitivity that changes over the day, a sensor whose
error is correlated in time).  So a twin scores its own forecasts: every forecast it issues is
kept until its horizon has passed, and each new CGM reading ``y`` at horizon ``h`` of a kept
forecast gives a normalised residual

    z = (y - median(h)) / (upper95(h) - median(h))   if y >= median(h)
    z = (median(h) - y) / (median(h) - lower95(h))   otherwise,

stored per 5-minute horizon bin over a sliding window (the last ``window`` residuals).  A new
forecast's band at level ``L`` and horizon ``h`` is then ``median -/+ q_L(z_h)`` times the ensemble's
own 95% half-widths, with ``q_L`` the empirical ``L``-quantile of the bin's residuals: split conformal
prediction with a locally adaptive scale, kept on a sliding window so that it follows a patient
whose predictability changes (Vovk, Gammerman & Shafer, *Algorithmic Learning in a Random World*,
2005; Gibbs & Candès, "Adaptive conformal inference under distribution shift", NeurIPS 2021).
Until a bin holds ``min_residuals`` residuals the ensemble's own band is used.
"""

from __future__ import annotations

from collections import deque
from typing import Any

import numpy as np

__all__ = ["BandCalibration"]


class BandCalibration:
    """Residual store and band rescaling of one twin (see the module docstring)."""

    def __init__(self, *, bin_min: float = 5.0, window: int = 576, min_residuals: int = 36) -> None:
        self.bin_min = float(bin_min)
        self.window = int(window)
        self.min_residuals = int(min_residuals)
        self._open: deque[tuple[float, np.ndarray, np.ndarray, np.ndarray, np.ndarray]] = deque()
        self._residuals: dict[int, deque[float]] = {}

    def record(
        self, t: np.ndarray, median: np.ndarray, lower95: np.ndarray, upper95: np.ndarray
    ) -> None:
        """Keep a forecast issued at ``t[0]`` (times in minutes) until its horizon has passed."""
        if self._open and self._open[-1][0] == t[0]:
            self._open.pop()  # a newer forecast from the same state replaces the older one
        self._open.append((float(t[0]), t.copy(), median.copy(), lower95.copy(), upper95.copy()))

    def score(self, t: float, reading: float) -> None:
        """Score every kept forecast against a reading at time ``t``; drop the expired ones."""
        while self._open and self._open[0][1][-1] < t:
            self._open.popleft()
        for issued, times, median, lo, hi in self._open:
            h = t - issued
            if h <= 0:
                continue
            k = int(np.argmin(np.abs(times - t)))
            if abs(times[k] - t) > self.bin_min / 2:
                continue
            m = median[k]
            width = (hi[k] - m) if reading >= m else (m - lo[k])
            if width <= 0:
                continue
            z = abs(reading - m) / width
            key = round(h / self.bin_min)
            self._residuals.setdefault(key, deque(maxlen=self.window)).append(float(z))

    def scales(self, horizon_min: np.ndarray, level: float) -> np.ndarray:
        """Multiplier of the 95% half-width for a band at ``level``, per horizon (NaN: no data)."""
        out = np.full(horizon_min.shape, np.nan)
        for i, h in enumerate(horizon_min):
            res = self._residuals.get(round(float(h) / self.bin_min))
            if res is not None and len(res) >= self.min_residuals:
                out[i] = float(np.quantile(np.fromiter(res, float), level))
        return out

    def apply(
        self,
        horizon_min: np.ndarray,
        median: np.ndarray,
        lower95: np.ndarray,
        upper95: np.ndarray,
        bands: dict[float, tuple[np.ndarray, np.ndarray]],
    ) -> dict[float, tuple[np.ndarray, np.ndarray]]:
        """``bands`` recalibrated where the residuals allow (the ensemble's band elsewhere)."""
        out = {}
        for level, (lo, hi) in bands.items():
            s = self.scales(horizon_min, level)
            ok = np.isfinite(s)
            new_lo = np.where(ok, median - np.where(ok, s, 0.0) * (median - lower95), lo)
            new_hi = np.where(ok, median + np.where(ok, s, 0.0) * (upper95 - median), hi)
            out[level] = (new_lo, new_hi)
        return out

    def n_residuals(self) -> dict[int, int]:
        """Residuals held per horizon bin (bin k covers horizons near k * bin_min minutes)."""
        return {k * int(self.bin_min): len(v) for k, v in sorted(self._residuals.items())}

    def state(self) -> dict[str, Any]:
        """The residual store as arrays (what a saved twin keeps; open forecasts are not kept)."""
        return {f"resid__{k}": np.asarray(v, dtype=float) for k, v in self._residuals.items()}

    def restore(self, arrays: dict[str, np.ndarray]) -> None:
        """Load a residual store written by :meth:`state`."""
        for name, values in arrays.items():
            if name.startswith("resid__"):
                key = int(name[len("resid__") :])
                self._residuals[key] = deque(values.tolist(), maxlen=self.window)
