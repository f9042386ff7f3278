"""Glycaemic metrics of glucose traces: time in ranges, variability, risk indices and GMI.

Every function takes glucose in mg/dL with time along the last axis (uniformly sampled, so each
reading weighs the same) and returns one value per trace: a float64 array of shape
``glucose.shape[:-1]`` (0-d for a single trace).  NaN, infinite or non-positive readings are
rejected, not skipped: drop or fill gaps before computing metrics.

- Time in ranges (Battelino et al., Diabetes Care 42:1593, 2019, the International Consensus on
  Time in Range): TIR counts ``70 <= G <= 180`` (bounds inclusive), time below counts ``G < 70``
  (``< 54`` for level 2), time above counts ``G > 180`` (``> 250`` for level 2).
- Risk indices (Kovatchev et al., Diabetes Care 20:1655, 1997; Kovatchev et al., Diabetes Technol
  Ther 8:644, 2006): ``f(G) = 1.509 ((ln G)^1.084 - 5.381)`` symmetrises the glucose scale
  (``f(112.5) = 0``, ``r(20) = r(600) = 100``), ``r(G) = 10 f(G)^2``; LBGI is the mean over all
  readings of ``r`` where ``f < 0`` (0 elsewhere), HBGI likewise for ``f > 0``, and the risk index
  BGRI = LBGI + HBGI.  simglucose 0.2.11's ``analysis.risk.risk_index`` instead averages ``r``
  over only the low (or high) readings, which overstates both indices for traces that are mostly
  on the other side; its ``report.risk_index_trace`` uses the published mean over all readings.
- Coefficient of variation: 100 SD / mean, with the sample SD (``ddof=1``).
- GMI (Bergenstal et al., Diabetes Care 41:2275, 2018): ``GMI (%) = 3.31 + 0.02392 mean(G)``.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd
from numpy.typing import NDArray

from medtwin.errors import ParameterError

__all__ = [
    "coefficient_of_variation",
    "glycaemic_summary",
    "gmi",
    "hbgi",
    "lbgi",
    "risk_index",
    "time_above",
    "time_below",
    "time_in_range",
]

FloatArray = NDArray[np.float64]

SUMMARY_COLUMNS = (
    "mean_mg_dl",
    "sd_mg_dl",
    "cv_percent",
    "tir_70_180_percent",
    "tbr_70_percent",
    "tbr_54_percent",
    "tar_180_percent",
    "tar_250_percent",
    "lbgi",
    "hbgi",
    "risk_index",
    "gmi_percent",
)


def _glucose(glucose: Any, *, min_readings: int = 1) -> FloatArray:
    """Validate glucose (mg/dL, time last) and return it as float64."""
    try:
        g = np.asarray(glucose, dtype=np.float64)
    except (TypeError, ValueError):
        raise ParameterError(
            f"glucose must be numbers in mg/dL, got {type(glucose).__name__}"
        ) from None
    if g.ndim == 0 or g.shape[-1] < min_readings:
        raise ParameterError(
            f"glucose needs at least {min_readings} reading(s) along its last axis (time), "
            f"got shape {g.shape}"
        )
    bad = ~(np.isfinite(g) & (g > 0))
    if bad.any():
        n_nan = int(np.isnan(g).sum())
        raise ParameterError(
            f"glucose has {int(bad.sum())} of {g.size} readings that are NaN ({n_nan}), infinite "
            "or <= 0 mg/dL; drop or fill missing readings before computing metrics"
        )
    return g


def _percent(mask: NDArray[np.bool_]) -> FloatArray:
    return np.asarray(100.0 * mask.mean(axis=-1), dtype=np.float64)


def time_in_range(glucose: Any, low_mg_dl: float = 70.0, high_mg_dl: float = 180.0) -> FloatArray:
    """Percent of readings with ``low_mg_dl <= G <= high_mg_dl`` (inclusive, as the consensus).

    >>> float(time_in_range([60.0, 70.0, 120.0, 180.0, 181.0]))
    60.0
    """
    if not low_mg_dl <= high_mg_dl:
        raise ParameterError(
            f"time_in_range needs low_mg_dl <= high_mg_dl, got {low_mg_dl!r} and {high_mg_dl!r}"
        )
    g = _glucose(glucose)
    return _percent((g >= low_mg_dl) & (g <= high_mg_dl))


def time_below(glucose: Any, threshold_mg_dl: float = 70.0) -> FloatArray:
    """Percent of readings strictly below ``threshold_mg_dl`` (70: level 1, 54: level 2).

    >>> float(time_below([50.0, 60.0, 70.0, 100.0], 54.0))
    25.0
    """
    g = _glucose(glucose)
    return _percent(g < threshold_mg_dl)


def time_above(glucose: Any, threshold_mg_dl: float = 180.0) -> FloatArray:
    """Percent of readings strictly above ``threshold_mg_dl`` (180: level 1, 250: level 2).

    >>> float(time_above([100.0, 180.0, 200.0, 260.0], 250.0))
    25.0
    """
    g = _glucose(glucose)
    return _percent(g > threshold_mg_dl)


def _risk_f(glucose: Any) -> FloatArray:
    g = _glucose(glucose)
    if (g < 1.0).any():
        raise ParameterError(
            f"the risk indices need glucose >= 1 mg/dL ((ln G)^1.084 is undefined below), "
            f"got {int((g < 1.0).sum())} readings below 1"
        )
    return 1.509 * (np.log(g) ** 1.084 - 5.381)


def lbgi(glucose: Any) -> FloatArray:
    """Low blood glucose index: mean over all readings of ``10 f(G)^2`` where ``f(G) < 0``.

    >>> round(float(lbgi([20.0])), 1)  # r(20 mg/dL) = 100, the top of the risk scale
    100.0
    >>> round(float(lbgi([20.0, 112.5, 200.0, 300.0])), 1)  # averaged over all four
    25.0
    """
    f = _risk_f(glucose)
    return np.asarray((10.0 * np.where(f < 0, f, 0.0) ** 2).mean(axis=-1), dtype=np.float64)


def hbgi(glucose: Any) -> FloatArray:
    """High blood glucose index: mean over all readings of ``10 f(G)^2`` where ``f(G) > 0``.

    >>> round(float(hbgi([600.0])), 1)  # r(600 mg/dL) = 100, the top of the risk scale
    99.9
    """
    f = _risk_f(glucose)
    return np.asarray((10.0 * np.where(f > 0, f, 0.0) ** 2).mean(axis=-1), dtype=np.float64)


def risk_index(glucose: Any) -> FloatArray:
    """Blood glucose risk index BGRI = LBGI + HBGI, the mean of ``10 f(G)^2`` over all readings.

    >>> round(float(risk_index([20.0, 600.0])), 1)
    100.0
    """
    f = _risk_f(glucose)
    return np.asarray((10.0 * f**2).mean(axis=-1), dtype=np.float64)


def coefficient_of_variation(glucose: Any) -> FloatArray:
    """Coefficient of variation in percent: 100 x sample SD / mean (needs 2 readings or more).

    >>> round(float(coefficient_of_variation([100.0, 200.0])), 2)
    47.14
    """
    g = _glucose(glucose, min_readings=2)
    return np.asarray(100.0 * g.std(axis=-1, ddof=1) / g.mean(axis=-1), dtype=np.float64)


def gmi(glucose: Any) -> FloatArray:
    """Glucose management indicator in percent: ``3.31 + 0.02392 x mean glucose (mg/dL)``.

    >>> round(float(gmi([154.0, 154.0])), 1)  # Bergenstal et al. 2018, Table 1
    7.0
    """
    g = _glucose(glucose)
    return np.asarray(3.31 + 0.02392 * g.mean(axis=-1), dtype=np.float64)


def glycaemic_summary(glucose: Any, patient_names: Sequence[str] | None = None) -> pd.DataFrame:
    """Every metric of the module for each trace: one row per patient, one column per metric.

    ``glucose`` is one trace (1-d) or one per patient (2-d, time last); the index holds
    ``patient_names`` (default 0, 1, ...).

    >>> summary = glycaemic_summary([[100.0, 150.0, 200.0], [60.0, 90.0, 120.0]], ["a", "b"])
    >>> summary.loc["a", ["mean_mg_dl", "tir_70_180_percent", "tar_180_percent"]].round(1).tolist()
    [150.0, 66.7, 33.3]
    >>> list(summary.columns) == list(SUMMARY_COLUMNS)
    True
    """
    g = _glucose(glucose, min_readings=2)
    if g.ndim > 2:
        raise ParameterError(
            f"glycaemic_summary takes one trace or a (patients, time) array, got shape {g.shape}"
        )
    g = np.atleast_2d(g)
    index: pd.Index
    if patient_names is None:
        index = pd.RangeIndex(len(g), name="patient")
    else:
        names = list(patient_names)
        if len(names) != len(g):
            raise ParameterError(
                f"glycaemic_summary got {len(names)} patient names for {len(g)} glucose traces"
            )
        index = pd.Index(names, name="patient")
    columns = {
        "mean_mg_dl": g.mean(axis=-1),
        "sd_mg_dl": g.std(axis=-1, ddof=1),
        "cv_percent": coefficient_of_variation(g),
        "tir_70_180_percent": time_in_range(g, 70.0, 180.0),
        "tbr_70_percent": time_below(g, 70.0),
        "tbr_54_percent": time_below(g, 54.0),
        "tar_180_percent": time_above(g, 180.0),
        "tar_250_percent": time_above(g, 250.0),
        "lbgi": lbgi(g),
        "hbgi": hbgi(g),
        "risk_index": risk_index(g),
        "gmi_percent": gmi(g),
    }
    return pd.DataFrame(columns, index=index)
