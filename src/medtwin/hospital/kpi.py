"""Key performance indicators of a run, output analysis (warm-up, confidence intervals).

KPIs of one replication (:func:`kpis`), all over the window after the warm-up
``[warmup, horizon)``; patient measures count the ED attendances that *arrived* in the window
(NHS England's definitions where they exist):

- ``arrivals_per_day``, ``door_to_provider_min`` (arrival to the start of the ``provider``
  step; mean, and ``_median``), ``ed_los_h`` (arrival to departure: home, admitted or left;
  mean, ``_median``, ``_p95``; per class ``ed_los_h:<class>``), ``within_4h`` (share of
  attendances that left within the ED's ``target_h``; those still in the ED at the end past
  the target count as breaches, those still in within it are left out), ``lwbs_rate`` (left
  without being seen / arrivals), ``admission_rate``, ``boarding_h`` (decision to admit to
  departure, per admitted patient), ``boarding_patient_h_per_day``;
- time averages: ``ed_census``, ``waiting_to_be_seen``, ``boarding``, per resource
  ``utilisation:<r>`` (busy time / staffed time: the integral of busy servers over the integral
  of the rostered capacity) and ``queue:<r>``, per unit ``occupancy:<u>`` (patients in beds /
  beds; ``occupancy`` for all units), ``bed_queue:<u>``, ``blocked:<u>`` (waiting in a bed for a
  transfer);
- per step ``wait_min:<step>``, ``waited:<step>`` (share who waited at all: P(wait > 0)) and
  ``activity_min:<step>`` (pooled over pathways by step name);
- ``los_d:<u>`` (stays ending in the window), ``admissions_per_day``, ``discharges_per_day``,
  ``discharge_delay_h`` (medically ready to leaving the bed, patients going home: the wait for
  the discharge window), ``discharged_before_noon`` (share of beds freed before midday),
  ``elective_cancellation_rate``, ``lounge_per_day``.

Warm-up.  A run that starts empty is biased until beds fill; the spec's ``run.warmup_days`` is
deleted from every KPI.  It is chosen with MSER-5 (White 1997; White, Cobb & Spratt 2000;
Hoad, Robinson & Davies 2010 found it the most reliable of 42 methods): average the daily mean
bed occupancy over pilot replications (Welch's averaging), form batch means ``Z_j`` of 5 days,
and truncate ``d*`` batches, where ``d*`` minimises

    MSER(d) = 1/(m - d)^2 * sum_{j > d} (Z_j - mean(Z_{d+1..m}))^2,   d <= m/2

(:func:`mser5`, :func:`choose_warmup`).  A forecast from a census needs no warm-up: its
transient is the point.

Replications.  Each replication gives one value per KPI; the mean over ``n`` replications has
the 95% confidence interval ``mean +/- t_{0.975, n-1} s / sqrt(n)`` (:func:`confidence_interval`).
Scenario differences use the paired values of replications that share random numbers
(:func:`paired_difference`).  Law, *Simulation Modeling and Analysis*, 5th ed. (2015),
ch. 9-10.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

if TYPE_CHECKING:
    from medtwin.hospital.model import SimulationRun

__all__ = ["confidence_interval", "kpis", "mser5", "paired_difference", "summarise"]

IN_ED, HOME, ADMITTED, LWBS = range(4)


def _mean(x: np.ndarray) -> float:
    return float(x.mean()) if x.size else float("nan")


def _q(x: np.ndarray, q: float) -> float:
    return float(np.quantile(x, q)) if x.size else float("nan")


def kpis(run: SimulationRun) -> dict[str, float]:
    """KPIs of one run after its warm-up (see the module docstring for the definitions)."""
    w0, end = run.warmup_min, run.horizon_min
    days = (end - w0) / 1440.0
    k0 = round(w0 / 60)
    means = run.level_means[k0:]
    level = {n: float(means[:, j].mean()) for j, n in enumerate(run.level_names)}
    out: dict[str, float] = {}
    spec = run.spec
    if spec.ed is not None:
        a = run.attendances
        t = a["t_arrival"]
        inside = (t >= w0) & (t < end) & (a["cohort"] < 2)
        outcome = a["outcome"]
        n_arr = int(inside.sum())
        out["arrivals_per_day"] = n_arr / days
        seen = inside & np.isfinite(a["t_seen"])
        d2p = a["t_seen"][seen] - t[seen]
        out["door_to_provider_min"] = _mean(d2p)
        out["door_to_provider_median_min"] = _q(d2p, 0.5)
        left = inside & (outcome != IN_ED)
        los_h = (a["t_departure"][left] - t[left]) / 60.0
        out["ed_los_h"] = _mean(los_h)
        out["ed_los_median_h"] = _q(los_h, 0.5)
        out["ed_los_p95_h"] = _q(los_h, 0.95)
        target = spec.ed.target_h
        still_breach = inside & (outcome == IN_ED) & ((end - t) / 60.0 > target)
        denominator = left.sum() + still_breach.sum()
        out[f"within_{target:g}h"] = (
            float((los_h <= target).sum() / denominator) if denominator else float("nan")
        )
        out["lwbs_rate"] = float((inside & (outcome == LWBS)).sum() / n_arr) if n_arr else 0.0
        dta = inside & np.isfinite(a["t_dta"])
        out["admission_rate"] = float(dta.sum() / n_arr) if n_arr else 0.0
        boarded = dta & (outcome == ADMITTED)
        out["boarding_h"] = _mean((a["t_departure"][boarded] - a["t_dta"][boarded]) / 60.0)
        out["boarding_patient_h_per_day"] = level["boarding"] * 24.0
        out["ed_census"] = level["ed"]
        out["waiting_to_be_seen"] = level["waiting"]
        out["boarding"] = level["boarding"]
        for c, name in enumerate(run.class_names):
            m = left & (a["cls"] == c)
            out[f"ed_los_h:{name}"] = _mean((a["t_departure"][m] - t[m]) / 60.0)
        for j, step in enumerate(run.step_names):
            w = a["wait"][inside, j]
            d = a["duration"][inside, j]
            out[f"wait_min:{step}"] = _mean(w[np.isfinite(w)])
            out[f"waited:{step}"] = _mean((w[np.isfinite(w)] > 0).astype(float))
            out[f"activity_min:{step}"] = _mean(d[np.isfinite(d)])
        for r in run.resource_names:
            cap = level[f"capacity:{r}"]
            out[f"utilisation:{r}"] = level[f"busy:{r}"] / cap if cap > 0 else float("nan")
            out[f"queue:{r}"] = level[f"queue:{r}"]
    if spec.units:
        occupied = 0.0
        for u, unit in spec.units.items():
            out[f"occupancy:{u}"] = level[f"occupied:{u}"] / unit.beds
            out[f"bed_queue:{u}"] = level[f"bed_queue:{u}"]
            out[f"blocked:{u}"] = level[f"blocked:{u}"]
            occupied += level[f"occupied:{u}"]
        out["occupancy"] = occupied / sum(u.beds for u in spec.units.values())
        s = run.stays
        t_out = s["t_out"]
        ended = (t_out >= w0) & (t_out < end)
        for ui, u in enumerate(run.unit_names):
            m = ended & (s["unit"] == ui)
            out[f"los_d:{u}"] = _mean((t_out[m] - s["t_in"][m]) / 1440.0)
        begun = (s["t_in"] >= w0) & (s["t_in"] < end) & (s["source"] <= 2)
        out["admissions_per_day"] = float(begun.sum() / days)
        home = ended & (s["dest"] == -1)
        out["discharges_per_day"] = float(home.sum() / days)
        out["discharge_delay_h"] = _mean((t_out[home] - s["t_ready"][home]) / 60.0)
        clock = (run.offset_min + t_out[home]) % 1440.0
        out["discharged_before_noon"] = _mean((clock < 720.0).astype(float))
        if spec.admissions:
            elective_names = [n for n, a_ in spec.admissions.items() if a_.elective]
            keys = [run.key_names.index(n) for n in elective_names]
            admitted = (
                np.isin(s["key"], keys)
                & (s["t_request"] >= w0)
                & (s["t_request"] < end)
                & (s["source"] == 1)
            ).sum()
            cancel = run.cancelled
            n_cancelled = int(((cancel[:, 1] >= w0) & (cancel[:, 1] < end)).sum())
            total = int(admitted) + n_cancelled
            out["elective_cancellation_rate"] = n_cancelled / total if total else 0.0
        if spec.lounge is not None:
            out["lounge_per_day"] = float((ended & (s["lounge"] == 1)).sum() / days)
            out["lounge"] = level["lounge"]
    return out


def confidence_interval(values: Iterable[float], level: float = 0.95) -> tuple[float, float, float]:
    """``(mean, low, high)``: the t-interval ``mean +/- t_{(1+level)/2, n-1} s / sqrt(n)``.

    >>> [round(v, 3) for v in confidence_interval([1.0, 2.0, 3.0])]
    [2.0, -0.484, 4.484]
    """
    x = np.asarray(list(values), dtype=float)
    x = x[np.isfinite(x)]
    n = x.size
    if n == 0:
        return float("nan"), float("nan"), float("nan")
    m = float(x.mean())
    if n == 1:
        return m, float("nan"), float("nan")
    from scipy import stats  # imported when needed: it costs a second at start-up

    h = float(stats.t.ppf((1 + level) / 2, n - 1) * x.std(ddof=1) / np.sqrt(n))
    return m, m - h, m + h


def paired_difference(
    scenario: Sequence[float], baseline: Sequence[float], level: float = 0.95
) -> tuple[float, float, float]:
    """``(mean, low, high)`` of ``scenario - baseline`` over paired replications.

    Common random numbers make the pairs positively correlated, so this interval is much
    narrower than the difference of two independent ones.
    """
    a, b = np.asarray(scenario, dtype=float), np.asarray(baseline, dtype=float)
    if a.shape != b.shape:
        raise ValueError(f"paired samples differ in size: {a.shape} vs {b.shape}")
    return confidence_interval(a - b, level)


def summarise(table: pd.DataFrame, level: float = 0.95) -> pd.DataFrame:
    """Mean, sd, confidence interval and relative half-width of each KPI.

    ``table`` has one row per replication and one column per KPI.
    """
    rows = {}
    for col in table.columns:
        x = table[col].to_numpy(dtype=float)
        x = x[np.isfinite(x)]
        m, lo, hi = confidence_interval(x, level)
        half = (hi - lo) / 2
        rows[col] = {
            "n": x.size,
            "mean": m,
            "sd": float(x.std(ddof=1)) if x.size > 1 else float("nan"),
            "ci_low": lo,
            "ci_high": hi,
            "half_width": half,
            "relative_half_width": abs(half / m) if m else (0.0 if half == 0 else float("inf")),
        }
    return pd.DataFrame.from_dict(rows, orient="index")


def mser5(series: Sequence[float] | np.ndarray) -> tuple[int, np.ndarray]:
    """MSER-5 truncation point: ``(observations to delete, MSER statistic per batch count)``.

    Batch means of 5, then the ``d`` (at most half the batches) that minimises
    ``sum_{j>d} (Z_j - Zbar_d)^2 / (m-d)^2`` (White, Cobb & Spratt 2000).  An answer at the
    half-way limit means the run is too short to tell.

    >>> x = np.r_[np.linspace(0, 10, 20), 10 + np.sin(np.arange(200))]
    >>> mser5(x)[0]
    20
    """
    x = np.asarray(series, dtype=float)
    m = x.size // 5
    if m < 2:
        raise ValueError(f"MSER-5 needs at least 10 observations, got {x.size}")
    z = x[: m * 5].reshape(m, 5).mean(axis=1)
    # tail sums from the end: S1[d] = sum z[d:], S2[d] = sum z[d:]^2
    s1 = np.cumsum(z[::-1])[::-1]
    s2 = np.cumsum((z * z)[::-1])[::-1]
    k = np.arange(m, 0, -1, dtype=float)  # m - d
    sse = s2 - s1 * s1 / k
    stat = np.maximum(sse, 0.0) / k**2
    limit = m // 2
    d = int(np.argmin(stat[: limit + 1]))
    return 5 * d, stat[: limit + 1]
