"""Backtesting census forecasts against synthetic ground truth.

:func:`backtest` answers "how good is the 24/48/72-hour occupancy forecast from the census?" on
a hospital whose truth is known: it simulates a long *truth* run, writes it as the ADT feed a
hospital would send (:meth:`SimulationRun.adt_events <medtwin.hospital.model.SimulationRun.
adt_events>`), keeps the live :class:`~medtwin.hospital.census.Census` from those events, and at
each forecast origin takes the census snapshot (who is where, since when: nothing a census
would not know, in particular no patient's remaining length of stay) and forecasts from it with
:func:`~medtwin.hospital.forecast.forecast`'s replications, on random numbers of their own (the
truth's seed is never a forecast's).  The forecasts are then scored against the truth's census
``h`` hours later.

Scores (Hyndman & Athanasopoulos, *Forecasting: Principles and Practice*, 3rd ed., 2021, §5.2
benchmark methods, §5.8 point-forecast accuracy, §5.9 interval accuracy):

- the point forecast is the median of the replications (the forecast that minimises expected
  absolute error); its **mean absolute error** ``MAE = mean |y - yhat|`` is compared with that of
  the **seasonal naive** forecast ``yhat_{T+h} = y_{T+h-m}`` with a weekly season ``m = 168 h``
  (the occupancy at the same hour of the week one week earlier, known at the origin for
  ``h <= 168``), as the ratio ``MAE_forecast / MAE_naive`` (a relative MAE; below 1 beats the
  benchmark);
- **coverage**: the share of outcomes inside the central 90% prediction interval, from the 5% and
  95% quantiles of the replications (ends included, as occupancy is a count).  With ``R``
  replications the empirical interval covers a new draw from the same distribution with
  probability about ``(0.9 (R - 1) + 1) / (R + 1)`` (0.88 for ``R = 100``).

Series scored: the total inpatient occupancy (every unit, ED excluded) and the occupancy of each
unit; :meth:`Backtest.summary` reports per horizon the total's scores and the per-unit scores
pooled over units and origins (the MAE of units in beds, their coverage over all unit-origin
pairs).  Origins are spaced ``every_h`` hours apart from one week after the warm-up (a spacing
that is not a divisor of 24 visits every hour of the day).  One truth is one path of the
hospital: consecutive origins share most of their patients, and how much the occupancy drifts
from week to week (the seasonal naive error) differs a lot from one path to the next, so
``n_truths`` independent truths with a few origins each estimate the scores far better than one
long truth with many.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import numpy as np
import pandas as pd

from medtwin.errors import ConfigurationError
from medtwin.hospital.census import Census
from medtwin.hospital.experiment import _Task, execute
from medtwin.hospital.model import SimulationRun, simulate
from medtwin.hospital.spec import HospitalSpec, load_hospital

__all__ = ["SEASON_H", "Backtest", "backtest"]

SEASON_H = 168
"""The seasonal naive forecast's season: one week, in hours."""


@dataclass(frozen=True)
class Backtest:
    """Forecasts from many census origins scored against the truth.

    ``scores`` has one row per origin, horizon and series (``total`` or a unit name): the
    truth run (``truth_seed``), the truth ``y``, the forecast median ``forecast``, the 90%
    interval ``lower``-``upper``, the seasonal naive forecast ``naive`` and whether the
    interval ``covered`` the truth.
    """

    spec_name: str
    forecast_spec_name: str
    horizons: tuple[int, ...]
    replications: int
    truth_seeds: tuple[int, ...]
    forecast_seeds: tuple[int, ...]
    origins: tuple[datetime, ...]
    scores: pd.DataFrame

    def summary(self) -> pd.DataFrame:
        """Per horizon: MAE of the forecast and of the seasonal naive, their ratio, coverage.

        Rows ``("total", h)`` score the total inpatient occupancy over origins; ``("units", h)``
        the units' occupancies pooled over units and origins; ``(<unit>, h)`` each unit.
        """
        s = self.scores.assign(
            err=lambda d: (d["y"] - d["forecast"]).abs(),
            naive_err=lambda d: (d["y"] - d["naive"]).abs(),
        )
        units = s[s["series"] != "total"].assign(series="units")
        rows = []
        for (series, h), g in pd.concat([s, units]).groupby(["series", "horizon_h"], sort=False):
            rows.append(
                {
                    "series": series,
                    "horizon_h": int(str(h)),
                    "n": len(g),
                    "mae": g["err"].mean(),
                    "naive_mae": g["naive_err"].mean(),
                    "ratio": g["err"].mean() / g["naive_err"].mean(),
                    "coverage": g["covered"].mean(),
                    "mean_width": (g["upper"] - g["lower"]).mean(),
                    "bias": (g["forecast"] - g["y"]).mean(),
                }
            )
        out = pd.DataFrame(rows)
        order = {"total": 0, "units": 1}
        out["_o"] = out["series"].map(lambda x: order.get(x, 2))
        out = out.sort_values(["_o", "horizon_h"], kind="stable").drop(columns="_o")
        return out.set_index(["series", "horizon_h"])


def _forecast_seeds(seed: int, n: int, avoid: int) -> tuple[int, ...]:
    """Independent 63-bit seeds for the origins' forecasts, none equal to the truth's."""
    state = np.random.SeedSequence([int(seed), 0x6261636B]).generate_state(2 * n + 2, np.uint64)
    seeds = [int(x >> np.uint64(1)) for x in state if int(x >> np.uint64(1)) != avoid]
    return tuple(dict.fromkeys(seeds))[:n]


def backtest(
    spec: HospitalSpec | Mapping[str, Any] | str,
    *,
    n_truths: int = 1,
    n_origins: int = 24,
    every_h: int = 29,
    horizons: Sequence[int] = (24, 48, 72),
    replications: int = 100,
    seed: int = 0,
    truth_seed: int = 20_240_101,
    warmup_days: float | None = None,
    forecast_spec: HospitalSpec | Mapping[str, Any] | str | None = None,
    truth: SimulationRun | None = None,
    workers: int | None = None,
    client: Any = None,
    progress: bool = False,
) -> Backtest:
    """Score census forecasts of ``spec`` at ``horizons`` against simulated truths.

    Parameters
    ----------
    spec
        The hospital that generates the truth.
    n_truths
        Independent truth runs (seeds ``truth_seed``, ``truth_seed + 1``, ...).  One truth is a
        single path of the hospital: its week-to-week drift, hence the seasonal naive error,
        varies a lot from one path to another, so several short truths pin the scores down
        better than one long one.
    n_origins, every_h
        Forecast origins per truth: ``n_origins`` census times ``every_h`` hours apart, the
        first one week (the naive forecast's season) after the warm-up.
    horizons
        Forecast horizons in hours (at most 168, so the seasonal naive forecast uses only what
        is known at the origin).
    replications
        Replications per forecast.
    seed
        Seeds the forecasts (each origin its own, derived from ``seed``).
    truth_seed
        Seed of the first truth run (never one of the forecasts' seeds).
    warmup_days
        The truth runs' warm-up (default the spec's ``run.warmup_days``).
    forecast_spec
        The hospital the forecasts use (default ``spec``: the known-model setting); e.g. one
        calibrated from a truth's events (:func:`~medtwin.hospital.calibrate.
        calibrate_hospital`).
    truth
        A truth run to reuse (from empty, long enough for the origins and horizons; with
        ``n_truths=1``); else they are simulated.
    workers, client, progress
        As for :func:`~medtwin.hospital.forecast.forecast`: every forecast's replications run as
        one batch.

    >>> bt = backtest("example_hospital", n_origins=2, horizons=(24,), replications=5,
    ...               warmup_days=14)
    >>> list(bt.summary().loc["total"].index)
    [24]
    """
    spec = load_hospital(spec)
    fspec = spec if forecast_spec is None else load_hospital(forecast_spec)
    hs = tuple(int(h) for h in horizons)
    if not hs or any(h < 1 or h > SEASON_H for h in hs):
        raise ConfigurationError(f"horizons must be whole hours in 1..{SEASON_H}, got {horizons}")
    if n_truths < 1 or n_origins < 1 or every_h < 1:
        raise ConfigurationError("n_truths, n_origins and every_h must be positive")
    if replications < 2:
        raise ConfigurationError(f"a forecast needs at least 2 replications, got {replications}")
    if truth is not None and n_truths != 1:
        raise ConfigurationError("a truth run given is the only truth: n_truths must be 1")
    if set(fspec.units) != set(spec.units):
        raise ConfigurationError(
            f"the forecast hospital's units {sorted(fspec.units)} are not the truth's "
            f"{sorted(spec.units)}"
        )
    warm_h = round((spec.run.warmup_days if warmup_days is None else warmup_days) * 24)
    first_h = warm_h + SEASON_H
    last_h = first_h + (n_origins - 1) * every_h + max(hs)
    units = list(spec.units)
    series = tuple(f"occupied:{u}" for u in units)
    seeds = _forecast_seeds(seed, n_truths * n_origins, truth_seed + n_truths)
    origin_h = [first_h + k * every_h for k in range(n_origins)]
    truths: list[tuple[int, datetime, np.ndarray]] = []
    tasks: list[_Task] = []
    origins: list[datetime] = []
    for i in range(n_truths):
        run = truth
        if run is None:
            run = simulate(spec, days=last_h / 24, warmup_days=0, seed=truth_seed + i)
        elif run.horizon_min < last_h * 60:
            raise ConfigurationError(
                f"the truth run is {run.horizon_min / 60:g} h long; {last_h} h are needed"
            )
        if run.seed in seeds:  # pragma: no cover - 63-bit seeds: never in practice
            raise ConfigurationError("a forecast seed equals a truth seed; choose another seed")
        census = Census.from_events(run.adt_events(prefix=f"truth{i}"))
        t0 = run.start.astimezone(UTC)
        history = census.history(freq="1h", start=t0, end=t0 + timedelta(hours=last_h))
        occupied = history.reindex(columns=units, fill_value=0).to_numpy(dtype=float)
        truths.append((run.seed, t0, occupied))
        for h0 in origin_h:
            at = t0 + timedelta(hours=h0)
            origins.append(at)
            snapshot = census.snapshot(at=at)
            tasks += [
                _Task(
                    fspec,
                    None,
                    snapshot,
                    seeds[len(origins) - 1],
                    r,
                    max(hs) / 24,
                    0.0,
                    None,
                    keep="census",
                    series=series,
                )
                for r in range(replications)
            ]
    out = execute(tasks, workers=workers, client=client, progress=progress, desc="backtest")
    rows = []
    for k, at in enumerate(origins):
        truth_seed_k, _, occupied = truths[k // n_origins]
        h0 = origin_h[k % n_origins]
        batch = out[k * replications : (k + 1) * replications]
        paths = np.stack([[o["census"][s] for s in series] for o in batch])  # (R, units, hours)
        for h in hs:
            sims = paths[:, :, h]
            values = {"total": sims.sum(axis=1), **{u: sims[:, j] for j, u in enumerate(units)}}
            observed = {"total": occupied[h0 + h].sum()}
            naive = {"total": occupied[h0 + h - SEASON_H].sum()}
            for j, u in enumerate(units):
                observed[u] = occupied[h0 + h, j]
                naive[u] = occupied[h0 + h - SEASON_H, j]
            for name, x in values.items():
                lo, med, hi = np.quantile(x, (0.05, 0.5, 0.95))
                y = observed[name]
                rows.append(
                    {
                        "truth_seed": truth_seed_k,
                        "origin": at,
                        "horizon_h": h,
                        "series": name,
                        "y": y,
                        "forecast": med,
                        "lower": lo,
                        "upper": hi,
                        "naive": naive[name],
                        "covered": bool(lo <= y <= hi),
                    }
                )
    return Backtest(
        spec.name,
        fspec.name,
        hs,
        replications,
        tuple(t[0] for t in truths),
        seeds,
        tuple(origins),
        pd.DataFrame(rows),
    )
