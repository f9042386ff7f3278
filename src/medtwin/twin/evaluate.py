"""Scoring a twin on the virtual-patient bench: forecast accuracy, calibration of the bands, alerts.

For every bench patient the twin is personalised on the first ``fit_days`` days, then replayed
reading by reading through the rest: after each CGM reading it forecasts ``horizons`` ahead and
raises a hypoglycaemia alert when its probability of glucose below 70 mg/dL within 30 minutes
exceeds ``alert_threshold``.  Forecasts are scored against the CGM readings that then arrive
(what a deployed twin would be judged on), next to two baselines computed on the same readings:
persistence (the last reading) and linear extrapolation of the last 15 minutes.

Hypoglycaemia events are episodes of CGM < 70 mg/dL (a new episode needs 30 minutes above 70
first).  An event counts as predicted when an alert was raised in the 30 minutes before its first
low reading; an alert is false when no low reading follows within 45 minutes.  Alerts raised
within 30 minutes of an earlier one are the same alert.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from medtwin.history import PatientHistory
from medtwin.twin.bench import BenchPatient

__all__ = [
    "BenchScore",
    "ReplayResult",
    "baseline_forecasts",
    "replay",
    "score_alerts",
    "score_forecasts",
    "summarise",
]

HYPO_MG_DL = 70.0


@dataclass(frozen=True)
class ReplayResult:
    """One replay: errors per horizon (see :func:`score_forecasts`), alerts, and the forecasts.

    ``issued_min`` are the times (minutes since ``origin``) forecasts were made; ``forecasts``,
    ``lower95`` and ``upper95`` hold, per horizon, the median and band issued at each of them.
    """

    scores: dict[int, dict[str, np.ndarray]]
    events: int
    predicted: int
    false_alerts: int
    origin: pd.Timestamp
    issued_min: np.ndarray
    forecasts: dict[int, np.ndarray]
    lower95: dict[int, np.ndarray]
    upper95: dict[int, np.ndarray]
    alerts_min: np.ndarray
    readings_min: np.ndarray
    readings_mg_dl: np.ndarray


@dataclass
class BenchScore:
    """Per-horizon accuracy, band coverage and alert performance over the bench."""

    rmse: dict[int, float]
    rmse_persistence: dict[int, float]
    rmse_linear: dict[int, float]
    coverage_95: dict[int, float]
    n_forecasts: dict[int, int]
    hypo_events: int
    hypo_predicted: int
    false_alerts: int
    patient_days: float
    per_patient: pd.DataFrame = field(default_factory=pd.DataFrame)

    @property
    def sensitivity(self) -> float:
        """Share of hypoglycaemia events preceded by an alert."""
        return self.hypo_predicted / self.hypo_events if self.hypo_events else float("nan")

    @property
    def false_alerts_per_day(self) -> float:
        """False alerts per patient-day."""
        return self.false_alerts / self.patient_days if self.patient_days else float("nan")

    def table(self) -> pd.DataFrame:
        """The headline numbers, one row per horizon."""
        rows = []
        for h in sorted(self.rmse):
            rows.append(
                {
                    "horizon_min": h,
                    "rmse_mg_dl": self.rmse[h],
                    "persistence_rmse_mg_dl": self.rmse_persistence[h],
                    "linear_rmse_mg_dl": self.rmse_linear[h],
                    "reduction_vs_persistence": 1.0 - self.rmse[h] / self.rmse_persistence[h],
                    "coverage_95": self.coverage_95[h],
                    "n": self.n_forecasts[h],
                }
            )
        return pd.DataFrame(rows)


def baseline_forecasts(
    times_min: np.ndarray, cgm: np.ndarray, horizon_min: float
) -> tuple[np.ndarray, np.ndarray]:
    """Persistence and 15-minute linear extrapolation from each reading, ``horizon_min`` ahead.

    >>> p, lin = baseline_forecasts(np.array([0.0, 5, 10, 15]), np.array([100.0, 105, 110, 115]), 30)
    >>> float(p[-1]), float(lin[-1])
    (115.0, 145.0)
    """
    persistence = cgm.copy()
    linear = cgm.copy()
    for i in range(cgm.size):
        j = np.searchsorted(times_min, times_min[i] - 15.0 - 1e-9)
        if j < i and times_min[i] - times_min[j] >= 10.0:
            slope = (cgm[i] - cgm[j]) / (times_min[i] - times_min[j])
            linear[i] = cgm[i] + slope * horizon_min
    return persistence, linear


def score_forecasts(
    times_min: np.ndarray,
    cgm: np.ndarray,
    issued_min: np.ndarray,
    forecasts: dict[int, np.ndarray],
    lower95: dict[int, np.ndarray],
    upper95: dict[int, np.ndarray],
) -> dict[int, dict[str, np.ndarray]]:
    """Pair each forecast issued at ``issued_min`` with the reading that arrives ``h`` later."""
    index = {round(t): i for i, t in enumerate(times_min)}
    out: dict[int, dict[str, np.ndarray]] = {}
    for h, pred in forecasts.items():
        rows = []
        for k, t_issue in enumerate(issued_min):
            j = index.get(round(t_issue + h))
            i = index.get(round(t_issue))
            if j is None or i is None:
                continue
            rows.append((k, i, j))
        if not rows:
            out[h] = {"err": np.array([]), "persist": np.array([]), "linear": np.array([]),
                      "covered": np.array([], dtype=bool)}  # fmt: skip
            continue
        k_idx, i_idx, j_idx = (np.array(c) for c in zip(*rows, strict=True))
        persistence, linear = baseline_forecasts(times_min, cgm, float(h))
        actual = cgm[j_idx]
        out[h] = {
            "err": pred[k_idx] - actual,
            "persist": persistence[i_idx] - actual,
            "linear": linear[i_idx] - actual,
            "covered": (lower95[h][k_idx] <= actual) & (actual <= upper95[h][k_idx]),
        }
    return out


def score_alerts(
    times_min: np.ndarray, cgm: np.ndarray, alert_times_min: Sequence[float]
) -> tuple[int, int, int]:
    """(hypoglycaemia events, events predicted, false alerts) for one patient."""
    events = []
    last_low = -np.inf
    for t, g in zip(times_min, cgm, strict=True):
        if g < HYPO_MG_DL:
            if t - last_low > 30.0:
                events.append(t)
            last_low = t
    alerts: list[float] = []
    for a in sorted(alert_times_min):
        if not alerts or a - alerts[-1] > 30.0:
            alerts.append(a)
    predicted = sum(any(e - 30.0 <= a <= e for a in alerts) for e in events)
    low_times = times_min[cgm < HYPO_MG_DL]
    false = sum(not np.any((low_times >= a) & (low_times <= a + 45.0)) for a in alerts)
    return len(events), predicted, false


def summarise(
    patients: Sequence[BenchPatient],
    results: Sequence[ReplayResult],
    patient_days: float,
) -> BenchScore:
    """Pool per-patient replay results into one score."""
    horizons = sorted({h for r in results for h in r.scores})
    pooled: dict[int, dict[str, list[np.ndarray]]] = {
        h: {"err": [], "persist": [], "linear": [], "covered": []} for h in horizons
    }
    events = predicted = false = 0
    rows = []
    for p, r in zip(patients, results, strict=True):
        scores = r.scores
        for h in horizons:
            for key in pooled[h]:
                pooled[h][key].append(scores[h][key])
        events += r.events
        predicted += r.predicted
        false += r.false_alerts
        row: dict[str, object] = {"patient": p.name, "based_on": p.based_on}
        for h in horizons:
            err = scores[h]["err"]
            row[f"rmse_{h}"] = float(np.sqrt(np.mean(err**2))) if err.size else np.nan
        rows.append(row)

    def rmse(key: str, h: int) -> float:
        x = np.concatenate(pooled[h][key])
        return float(np.sqrt(np.mean(x**2))) if x.size else float("nan")

    return BenchScore(
        rmse={h: rmse("err", h) for h in horizons},
        rmse_persistence={h: rmse("persist", h) for h in horizons},
        rmse_linear={h: rmse("linear", h) for h in horizons},
        coverage_95={h: float(np.concatenate(pooled[h]["covered"]).mean()) for h in horizons},
        n_forecasts={h: int(np.concatenate(pooled[h]["err"]).size) for h in horizons},
        hypo_events=events,
        hypo_predicted=predicted,
        false_alerts=false,
        patient_days=patient_days,
        per_patient=pd.DataFrame(rows),
    )


def replay(
    history: PatientHistory,
    make_twin: Callable[[], Any],
    *,
    fit_days: float = 3.0,
    horizons: Sequence[int] = (30, 60),
    alert_threshold: float = 0.3,
    alert_within_min: float = 30.0,
) -> ReplayResult:
    """Fit a twin on the first ``fit_days`` of ``history``, then replay the rest reading by reading.

    After each reading the twin forecasts ``max(horizons)`` ahead; an alert is raised when its
    probability of glucose below 70 mg/dL within ``alert_within_min`` exceeds ``alert_threshold``.
    """
    start = history.start
    split = start + pd.Timedelta(days=fit_days)
    twin = make_twin().fit(history.between(start, split))
    later = history.between(split, history.end + pd.Timedelta(minutes=1))
    cgm = later.cgm
    origin = twin.origin_
    issued, alerts = [], []
    preds: dict[int, list[float]] = {h: [] for h in horizons}
    lo: dict[int, list[float]] = {h: [] for h in horizons}
    hi: dict[int, list[float]] = {h: [] for h in horizons}
    horizon = float(max(max(horizons), alert_within_min))
    events = later.events
    for i in range(len(cgm)):
        t_i = cgm["time"].iloc[i]
        prev = cgm["time"].iloc[i - 1] if i else split
        chunk = PatientHistory(
            cgm.iloc[i : i + 1],
            events[(events["time"] >= prev) & (events["time"] < t_i)],
        )
        twin.observe(chunk)
        fc = twin.forecast(horizon)
        t_now = (t_i - origin).total_seconds() / 60.0
        issued.append(t_now)
        for h in horizons:
            k = int(np.argmin(np.abs(fc.t_min - h)))
            preds[h].append(float(fc.median[k]))
            lo[h].append(float(fc.bands[0.95][0][k]))
            hi[h].append(float(fc.bands[0.95][1][k]))
        within = fc.t_min <= alert_within_min
        below = (fc.members[:, within][:, 1:] < HYPO_MG_DL).any(axis=1)
        if float(np.sum(fc.weights * below) / np.sum(fc.weights)) > alert_threshold:
            alerts.append(t_now)
    times = ((cgm["time"] - origin).dt.total_seconds() / 60.0).to_numpy(float)
    glucose = cgm["glucose_mg_dl"].to_numpy(float)
    scores = score_forecasts(
        times,
        glucose,
        np.asarray(issued),
        {h: np.asarray(v) for h, v in preds.items()},
        {h: np.asarray(v) for h, v in lo.items()},
        {h: np.asarray(v) for h, v in hi.items()},
    )
    events_n, predicted, false = score_alerts(times, glucose, alerts)
    return ReplayResult(
        scores,
        events_n,
        predicted,
        false,
        origin,
        np.asarray(issued),
        {h: np.asarray(v) for h, v in preds.items()},
        {h: np.asarray(v) for h, v in lo.items()},
        {h: np.asarray(v) for h, v in hi.items()},
        np.asarray(alerts),
        times,
        glucose,
    )
