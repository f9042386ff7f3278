"""Non-compartmental analysis (NCA) and exposure summaries of concentration-time data.

Every function takes times in hours and concentrations with time along the last axis, ``(T,)`` for
one profile or ``(N, T)`` for N (times ``(T,)`` shared or ``(N, T)``), sorted by time, finite and
non-negative; results are per profile.  Concentration units pass through (AUC in conc x h).

- AUC by the linear-up/log-down trapezoidal rule: an interval where the concentration rises or
  stays level is a trapezoid, one where it falls between two positive values integrates the
  exponential through them, ``(C1 - C2) dt / ln(C1 / C2)`` (exact for first-order decline).
- Terminal rate constant ``lambda_z``: least-squares slope of ``ln C`` on time over the last
  ``n`` positive points after ``Cmax``; by default the ``n >= 3`` with the best adjusted R^2
  (ties within 1e-4 go to the larger ``n``), as WinNonlin and PKNCA choose it.
- ``AUCinf = AUClast + Clast / lambda_z``, ``t1/2 = ln 2 / lambda_z``; with a dose, ``CL/F = dose /
  AUCinf`` and ``Vz/F = dose / (lambda_z AUCinf)``.

(Gabrielsson & Weiner, Pharmacokinetic and Pharmacodynamic Data Analysis, 5th ed., 2016, ch. 2.9;
Rowland & Tozer, Clinical Pharmacokinetics and Pharmacodynamics, 4th ed., 2011, appendix A.)
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pandas as pd
from numpy.typing import NDArray

from medtwin.errors import ParameterError

__all__ = ["NCA_COLUMNS", "auc", "exposure", "lambda_z", "nca"]

FloatArray = NDArray[np.float64]

NCA_COLUMNS = (
    "cmax",
    "tmax_h",
    "clast",
    "tlast_h",
    "auc_last",
    "lambda_z_per_h",
    "half_life_h",
    "r2_adj",
    "n_lambda_z",
    "auc_inf",
    "auc_extrapolated_percent",
)

_R2_TOLERANCE = 1e-4


def _profiles(t_h: Any, conc: Any) -> tuple[FloatArray, FloatArray, bool]:
    c = np.asarray(conc, dtype=float)
    single = c.ndim == 1
    c = np.atleast_2d(c)
    if c.ndim != 2:
        raise ParameterError(f"concentrations must be (T,) or (N, T), got shape {np.shape(conc)}")
    t = np.asarray(t_h, dtype=float)
    if t.shape not in (c.shape[-1:], c.shape):
        raise ParameterError(f"times of shape {t.shape} do not match concentrations {c.shape}")
    t = np.broadcast_to(t, c.shape)
    if c.shape[-1] < 2:
        raise ParameterError("NCA needs at least two samples per profile")
    if not (np.isfinite(c).all() and np.isfinite(t).all()):
        raise ParameterError("times and concentrations must be finite; drop missing samples first")
    if (c < 0).any():
        raise ParameterError("concentrations must be >= 0 (set values below the LLOQ to 0)")
    if (np.diff(t, axis=-1) <= 0).any():
        raise ParameterError("sample times must be strictly increasing within each profile")
    return t, c, single


def _out(values: FloatArray, single: bool) -> Any:
    return values[0] if single else values


def auc(t_h: Any, conc: Any) -> Any:
    """Area under the curve over the samples by the linear-up/log-down trapezoidal rule.

    >>> import numpy as np
    >>> t = np.array([0.0, 1.0, 2.0]); c = 8.0 * np.exp(-np.log(2) * t)
    >>> bool(np.isclose(auc(t, c), 8 * 0.75 / np.log(2), rtol=1e-12))  # exact for exponential decline
    True
    """
    t, c, single = _profiles(t_h, conc)
    return _out(_auc(t, c), single)


def _auc(t: FloatArray, c: FloatArray, intervals: Any = None) -> FloatArray:
    """Sum of the interval areas (only where ``intervals``, a boolean (N, T-1) mask, is set)."""
    dt = np.diff(t, axis=-1)
    c1, c2 = c[..., :-1], c[..., 1:]
    falling = (c2 < c1) & (c2 > 0)
    ratio = np.where(falling, c1 / np.where(falling, c2, 1.0), 2.0)
    log_down = np.where(falling, (c1 - c2) * dt / np.log(ratio), 0.0)
    area = np.where(falling, log_down, 0.5 * (c1 + c2) * dt)
    if intervals is not None:
        area = np.where(intervals, area, 0.0)
    return np.asarray(area.sum(axis=-1))


def lambda_z(t_h: Any, conc: Any, *, n_points: int | None = None) -> dict[str, Any]:
    """Terminal rate constant by log-linear regression on the last points after Cmax.

    Returns ``lambda_z_per_h``, ``r2_adj``, ``n_lambda_z`` and ``intercept`` (of ``ln C``); NaN
    where fewer than 3 (or ``n_points``) positive points follow Cmax.

    >>> import numpy as np
    >>> t = np.arange(1.0, 9.0); c = 10 * np.exp(-0.3 * t)
    >>> round(float(lambda_z(t, c)["lambda_z_per_h"]), 12)
    0.3
    """
    t, c, single = _profiles(t_h, conc)
    out = _lambda_z(t, c, n_points)
    return {k: _out(v, single) for k, v in out.items()}


def _lambda_z(t: FloatArray, c: FloatArray, n_points: int | None) -> dict[str, FloatArray]:
    n, width = c.shape
    imax = np.argmax(c, axis=-1)
    after = np.arange(width)[None, :] > imax[:, None]
    usable = after & (c > 0)
    # rank of each usable point counted from the end: 1 = last usable point
    rank = np.cumsum(usable[:, ::-1], axis=-1)[:, ::-1] * usable
    available = usable.sum(axis=-1)
    candidates = [n_points] if n_points is not None else range(3, width + 1)
    if n_points is not None and (not isinstance(n_points, int) or n_points < 2):
        raise ParameterError(f"n_points must be an integer >= 2, got {n_points!r}")
    best = {
        "lambda_z_per_h": np.full(n, np.nan),
        "r2_adj": np.full(n, -np.inf),
        "n_lambda_z": np.zeros(n),
        "intercept": np.full(n, np.nan),
    }
    y_all = np.log(np.where(usable, c, 1.0))
    top = np.full(n, -np.inf)
    for k in candidates:
        w = (usable & (rank <= k)).astype(float)
        ok = available >= k
        if not ok.any():
            continue
        sw = w.sum(axis=-1)
        safe = np.where(ok, sw, 1.0)
        tm = (w * t).sum(axis=-1) / safe
        ym = (w * y_all).sum(axis=-1) / safe
        sxx = (w * (t - tm[:, None]) ** 2).sum(axis=-1)
        sxy = (w * (t - tm[:, None]) * (y_all - ym[:, None])).sum(axis=-1)
        syy = (w * (y_all - ym[:, None]) ** 2).sum(axis=-1)
        slope = sxy / np.where(sxx > 0, sxx, 1.0)
        ss_res = np.maximum(syy - slope * sxy, 0.0)
        r2 = np.where(syy > 0, 1.0 - ss_res / np.where(syy > 0, syy, 1.0), 1.0)
        r2_adj = 1.0 - (1.0 - r2) * (k - 1) / max(k - 2, 1)
        fits = ok & (slope < 0)
        top = np.where(fits, np.maximum(top, r2_adj), top)
        # the largest n whose adjusted R^2 is within the tolerance of the best one so far
        better = fits & (r2_adj >= top - _R2_TOLERANCE)
        best["lambda_z_per_h"] = np.where(better, -slope, best["lambda_z_per_h"])
        best["r2_adj"] = np.where(better, r2_adj, best["r2_adj"])
        best["n_lambda_z"] = np.where(better, k, best["n_lambda_z"])
        best["intercept"] = np.where(better, ym + slope * tm, best["intercept"])
    best["r2_adj"] = np.where(np.isfinite(best["r2_adj"]), best["r2_adj"], np.nan)
    return best


def nca(t_h: Any, conc: Any, *, dose_mg: Any = None, n_points: int | None = None) -> pd.DataFrame:
    """Non-compartmental summary of each profile (see the module docstring for the methods).

    Columns :data:`NCA_COLUMNS`, plus ``cl_f_l_per_h`` and ``vz_f_l`` when ``dose_mg`` is given
    (mg; concentrations then in mg/L).

    >>> import numpy as np
    >>> t = np.array([0.0, 0.5, 1, 2, 4, 6, 8, 12, 24])
    >>> c = 100 / 20 * 1.5 / (1.5 - 0.1) * (np.exp(-0.1 * t) - np.exp(-1.5 * t))
    >>> row = nca(t, c, dose_mg=100).iloc[0]
    >>> print(f"{row.lambda_z_per_h:.3f} {row.tmax_h:g} {row.cl_f_l_per_h:.1f}")  # CL/F = 20 x 0.1
    0.100 2 2.0
    """
    t, c, _ = _profiles(t_h, conc)
    rows = np.arange(c.shape[0])
    imax = np.argmax(c, axis=-1)
    positive = c > 0
    ilast = np.where(
        positive.any(axis=-1), c.shape[-1] - 1 - np.argmax(positive[:, ::-1], axis=-1), 0
    )
    # AUClast: the intervals up to the last positive concentration
    auc_last = _auc(t, c, np.arange(c.shape[-1] - 1)[None, :] < ilast[:, None])
    lz = _lambda_z(t, c, n_points)
    clast = c[rows, ilast]
    lam = lz["lambda_z_per_h"]
    auc_inf = auc_last + clast / lam
    frame = pd.DataFrame(
        {
            "cmax": c[rows, imax],
            "tmax_h": t[rows, imax],
            "clast": clast,
            "tlast_h": t[rows, ilast],
            "auc_last": auc_last,
            "lambda_z_per_h": lam,
            "half_life_h": math.log(2) / lam,
            "r2_adj": lz["r2_adj"],
            "n_lambda_z": lz["n_lambda_z"].astype(int),
            "auc_inf": auc_inf,
            "auc_extrapolated_percent": 100.0 * (auc_inf - auc_last) / auc_inf,
        }
    )
    if dose_mg is not None:
        dose = np.broadcast_to(np.asarray(dose_mg, dtype=float), (c.shape[0],))
        frame["cl_f_l_per_h"] = dose / auc_inf
        frame["vz_f_l"] = dose / (lam * auc_inf)
    return frame


def exposure(
    t_h: Any, conc: Any, *, start_h: float | None = None, end_h: float | None = None
) -> pd.DataFrame:
    """AUC (linear-up/log-down), Cmax, Tmax and Cmin of each profile over ``[start_h, end_h]``.

    The window defaults to all samples; only samples inside it count (sample its ends for an
    exact dosing-interval AUC).

    >>> import numpy as np
    >>> e = exposure(np.arange(0.0, 25.0), np.tile(np.r_[1.0, np.full(24, 2.0)], (2, 1)), start_h=1)
    >>> e.auc.tolist(), e.cmin.tolist()
    ([46.0, 46.0], [2.0, 2.0])
    """
    t, c, _ = _profiles(t_h, conc)
    lo = -np.inf if start_h is None else float(start_h)
    hi = np.inf if end_h is None else float(end_h)
    inside = (t >= lo) & (t <= hi)
    if (inside.sum(axis=-1) < 2).any():
        raise ParameterError(f"fewer than two samples lie in [{start_h}, {end_h}] h")
    first = np.argmax(inside, axis=-1)
    k = int(inside.sum(axis=-1).min())
    if not (inside.sum(axis=-1) == k).all():
        raise ParameterError("every profile needs the same number of samples inside the window")
    idx = first[:, None] + np.arange(k)[None, :]
    tw = np.take_along_axis(t, idx, axis=-1)
    cw = np.take_along_axis(c, idx, axis=-1)
    rows = np.arange(c.shape[0])
    imax = np.argmax(cw, axis=-1)
    return pd.DataFrame(
        {
            "auc": _auc(tw, cw),
            "cmax": cw[rows, imax],
            "tmax_h": tw[rows, imax],
            "cmin": cw.min(axis=-1),
        }
    )
