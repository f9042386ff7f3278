"""Replications, precision-driven replication counts, scenario comparison, in parallel.

Replication ``r`` of seed ``s`` draws from ``SeedSequence(s, spawn_key=(r, ...))`` alone, so
results are identical whether the replications run in this process, in local worker processes
(``workers=n``) or on a Dask cluster (``client=`` or the ``MEDTWIN_DASK_SCHEDULER`` environment
variable: the address of a running scheduler, e.g. ``tcp://10.0.0.5:8786``).  A scenario and
its baseline share seeds and replication numbers: common random numbers, compared on paired
differences.

>>> reps = replicate("treat_sim_nelson2013", replications=5, seed=1)
>>> reps.kpis.shape[0]
5
"""

from __future__ import annotations

import atexit
import math
import multiprocessing
import os
from collections.abc import Mapping, Sequence
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, cast

import numpy as np
import pandas as pd

from medtwin.errors import ConfigurationError
from medtwin.hospital._records import CensusSnapshot
from medtwin.hospital.kpi import mser5, paired_difference, summarise
from medtwin.hospital.model import simulate
from medtwin.hospital.scenario import Scenario, as_scenario
from medtwin.hospital.spec import HospitalSpec, load_hospital

__all__ = [
    "Comparison",
    "Replications",
    "WarmupChoice",
    "choose_warmup",
    "compare",
    "replicate",
    "replicate_until",
]

DASK_ENV = "MEDTWIN_DASK_SCHEDULER"


# -- one task = one replication ------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _Task:
    spec: HospitalSpec
    scenario: Scenario | None
    snapshot: CensusSnapshot | None
    seed: int
    replication: int
    days: float | None
    warmup_days: float | None
    start: datetime | None
    keep: str = "kpis"  # "kpis", "census" (forecast) or "daily" (warm-up pilot)
    series: tuple[str, ...] = ()


def _run_task(task: _Task) -> dict[str, Any]:
    run = simulate(
        task.spec,
        days=task.days,
        seed=task.seed,
        replication=task.replication,
        warmup_days=task.warmup_days,
        start=task.start,
        snapshot=task.snapshot,
        scenario=task.scenario,
    )
    if task.keep == "kpis":
        return {"kpis": run.kpis()}
    if task.keep == "daily":
        occupied = [j for j, n in enumerate(run.level_names) if n.startswith("occupied:")]
        hourly = run.level_means[:, occupied].sum(axis=1)
        n_days = hourly.size // 24
        ed = run.level_names.index("ed") if "ed" in run.level_names else None
        out = {"occupied": hourly[: n_days * 24].reshape(n_days, 24).mean(axis=1)}
        if ed is not None:
            out["ed"] = run.level_means[: n_days * 24, ed].reshape(n_days, 24).mean(axis=1)
        return out
    # census: the levels on the hour, and the ED arrivals of each hour
    values = {
        n: run.level_values[:, j]
        for j, n in enumerate(run.level_names)
        if not task.series or n in task.series
    }
    if run.class_names:
        hourly = run.hourly()
        values["arrivals"] = np.r_[hourly["arrivals"].to_numpy(dtype=float), np.nan]
    return {"census": values}


def _run_chunk(tasks: list[_Task]) -> list[dict[str, Any]]:
    return [_run_task(t) for t in tasks]


def _chunks(tasks: list[_Task], n_workers: int) -> list[list[_Task]]:
    # several chunks per worker: balance when replications (or machines) differ in speed
    size = max(1, math.ceil(len(tasks) / (8 * n_workers)))
    return [tasks[i : i + size] for i in range(0, len(tasks), size)]


def _progress_bar(total: int, desc: str, enabled: bool) -> Any:
    if not enabled:
        return None
    from tqdm.auto import tqdm

    return tqdm(total=total, unit="replication", desc=desc)


def execute(
    tasks: list[_Task],
    *,
    workers: int | None = None,
    client: Any = None,
    progress: bool = False,
    desc: str = "replications",
) -> list[dict[str, Any]]:
    """Run tasks; results in task order.

    Where: a Dask ``client`` (or ``$MEDTWIN_DASK_SCHEDULER``), local worker processes
    (``workers > 1``; -1: one per CPU) or this process.
    """
    bar = _progress_bar(len(tasks), desc, progress)
    try:
        address = os.environ.get(DASK_ENV)
        if client is None and address:
            import distributed

            with distributed.Client(address) as c:
                return _execute_dask(c, tasks, bar)
        if client is not None:
            return _execute_dask(client, tasks, bar)
        n = (os.cpu_count() or 1) if workers == -1 else (workers or 1)
        if n < 1:
            raise ConfigurationError(f"workers must be >= 1 (or -1 for one per CPU), got {workers}")
        if n == 1 or len(tasks) <= 1:
            out = []
            for t in tasks:
                out.append(_run_task(t))
                if bar is not None:
                    bar.update(1)
            return out
        return _execute_processes(tasks, n, bar)
    finally:
        if bar is not None:
            bar.close()


_POOLS: dict[int, ProcessPoolExecutor] = {}


def _pool(n: int) -> ProcessPoolExecutor:
    """A pool of ``n`` worker processes, kept for later calls and shut down at exit.

    Starting one costs seconds (each worker imports medtwin); a later call reuses it.
    """
    pool = _POOLS.get(n)
    if pool is None or getattr(pool, "_broken", False):
        # spawn, not fork: the parent may hold JAX's threads, which fork would copy half-alive
        pool = ProcessPoolExecutor(max_workers=n, mp_context=multiprocessing.get_context("spawn"))
        _POOLS[n] = pool
    return pool


@atexit.register
def _shutdown_pools() -> None:
    for pool in _POOLS.values():
        pool.shutdown(wait=True, cancel_futures=True)
    _POOLS.clear()


def _execute_processes(tasks: list[_Task], n: int, bar: Any) -> list[dict[str, Any]]:
    chunks = _chunks(tasks, n)
    results: list[list[dict[str, Any]] | None] = [None] * len(chunks)
    pool = _pool(n)
    futures = {pool.submit(_run_chunk, c): i for i, c in enumerate(chunks)}
    for fut in as_completed(futures):
        i = futures[fut]
        results[i] = fut.result()
        if bar is not None:
            bar.update(len(chunks[i]))
    return [r for chunk in results for r in chunk or []]


def _execute_dask(client: Any, tasks: list[_Task], bar: Any) -> list[dict[str, Any]]:
    import distributed

    n = max(1, len(client.scheduler_info().get("workers", {})))
    chunks = _chunks(tasks, n)
    futures = client.map(_run_chunk, chunks, pure=False)
    index = {f.key: i for i, f in enumerate(futures)}
    results: list[list[dict[str, Any]] | None] = [None] * len(chunks)
    for fut in distributed.as_completed(futures):
        i = index[fut.key]
        results[i] = fut.result()
        if bar is not None:
            bar.update(len(chunks[i]))
    return [r for chunk in results for r in chunk or []]


def _tasks(
    spec: HospitalSpec, scenario: Scenario | None, replications: Sequence[int], **kw: Any
) -> list[_Task]:
    return [_Task(spec, scenario, replication=r, **kw) for r in replications]


# -- replications ---------------------------------------------------------------------------


@dataclass(frozen=True)
class Replications:
    """KPIs of independent replications (one row each) and their summary.

    ``precision`` is set by :func:`replicate_until`: the relative half-width reached per KPI,
    the target, and whether it was met within ``max_replications``.
    """

    spec_name: str
    scenario: str | None
    seed: int
    days: float
    warmup_days: float
    kpis: pd.DataFrame
    precision: dict[str, Any] = field(default_factory=dict)

    @property
    def n(self) -> int:
        """Number of replications."""
        return int(self.kpis.shape[0])

    def summary(self, level: float = 0.95) -> pd.DataFrame:
        """Mean, sd and ``level`` t-confidence interval of every KPI."""
        return summarise(self.kpis, level)


def _settings(
    spec: HospitalSpec,
    days: float | None,
    warmup_days: float | None,
    snapshot: CensusSnapshot | None,
) -> tuple[float, float]:
    d = spec.run.days if days is None else float(days)
    if warmup_days is None:
        warmup_days = 0.0 if snapshot is not None else spec.run.warmup_days
    return d, float(warmup_days)


def replicate(
    spec: HospitalSpec | Mapping[str, Any] | str,
    *,
    replications: int = 10,
    days: float | None = None,
    seed: int = 0,
    warmup_days: float | None = None,
    scenario: Scenario | Mapping[str, Any] | None = None,
    snapshot: CensusSnapshot | None = None,
    start: datetime | None = None,
    workers: int | None = None,
    client: Any = None,
    progress: bool = False,
) -> Replications:
    """Run ``replications`` independent replications and collect their KPIs.

    Replication ``r`` is :func:`~medtwin.hospital.simulate` with ``(seed, replication=r)``;
    ``workers`` local processes or a Dask ``client`` run them (same numbers either way).
    """
    spec = load_hospital(spec)
    scn = as_scenario(scenario)
    if replications < 1:
        raise ConfigurationError(f"replications must be >= 1, got {replications}")
    d, w = _settings(spec, days, warmup_days, snapshot)
    tasks = _tasks(
        spec,
        scn,
        range(replications),
        snapshot=snapshot,
        seed=seed,
        days=d,
        warmup_days=w,
        start=start,
    )
    out = execute(tasks, workers=workers, client=client, progress=progress)
    table = pd.DataFrame([o["kpis"] for o in out])
    table.index.name = "replication"
    return Replications(spec.name, scn.name if scn else None, seed, d, w, table)


def _relative_half_widths(
    table: pd.DataFrame, kpis: Sequence[str], level: float
) -> dict[str, float]:
    s = summarise(table[list(kpis)], level)
    return {k: float(cast(float, s.loc[k, "relative_half_width"])) for k in kpis}


def replicate_until(
    spec: HospitalSpec | Mapping[str, Any] | str,
    *,
    kpis: Sequence[str] = ("ed_los_h", "occupancy"),
    target: float = 0.05,
    level: float = 0.95,
    min_replications: int = 5,
    max_replications: int = 200,
    batch: int | None = None,
    days: float | None = None,
    seed: int = 0,
    warmup_days: float | None = None,
    scenario: Scenario | Mapping[str, Any] | None = None,
    snapshot: CensusSnapshot | None = None,
    start: datetime | None = None,
    workers: int | None = None,
    client: Any = None,
    progress: bool = False,
) -> Replications:
    """Add replications until every KPI's confidence interval is within ``target`` of its mean.

    The sequential procedure of Law (2015, §9.4.1): with ``n`` replications the ``level``
    t-interval has half-width ``delta(n)``; stop at the first ``n >= min_replications`` with
    ``delta(n) / |mean(n)| <= target`` for every KPI in ``kpis`` (a KPI whose replications are
    all equal counts as met).  Law's ``gamma' = gamma / (1 + gamma)`` makes the *actual*
    relative error at most ``gamma`` with about ``level`` probability: pass that as ``target``
    for that guarantee.  Replications run in batches (default: a few per worker) but the
    stopping rule is checked for every ``n`` in order, so the answer does not depend on the
    batch size or the number of workers.  ``precision`` on the result records the reached
    relative half-widths, the target and whether it was met.
    """
    spec = load_hospital(spec)
    scn = as_scenario(scenario)
    if not 0 < target < 1:
        raise ConfigurationError(f"target (relative half-width) must be in (0, 1), got {target}")
    if not 2 <= min_replications <= max_replications:
        raise ConfigurationError(
            "need 2 <= min_replications <= max_replications, got "
            f"{min_replications}, {max_replications}"
        )
    d, w = _settings(spec, days, warmup_days, snapshot)
    n_workers = (os.cpu_count() or 1) if workers == -1 else (workers or 1)
    step = batch or max(4, 2 * n_workers)
    rows: list[dict[str, float]] = []
    n_done = 0
    reached: dict[str, float] = {}
    stop: int | None = None
    while stop is None and n_done < max_replications:
        size = min_replications if n_done == 0 else step
        size = min(size, max_replications - n_done)
        tasks = _tasks(
            spec,
            scn,
            range(n_done, n_done + size),
            snapshot=snapshot,
            seed=seed,
            days=d,
            warmup_days=w,
            start=start,
        )
        rows += [
            o["kpis"]
            for o in execute(
                tasks, workers=workers, client=client, progress=progress, desc="replications"
            )
        ]
        n_done += size
        table = pd.DataFrame(rows)
        missing = [k for k in kpis if k not in table.columns]
        if missing:
            raise ConfigurationError(f"unknown KPIs {missing}; known: {', '.join(table.columns)}")
        for n in range(max(min_replications, n_done - size + 1), n_done + 1):
            reached = _relative_half_widths(table.iloc[:n], kpis, level)
            if all(v <= target for v in reached.values()):
                stop = n
                break
    n_final = stop if stop is not None else n_done
    table = pd.DataFrame(rows[:n_final])
    table.index.name = "replication"
    precision = {
        "target": target,
        "level": level,
        "met": stop is not None,
        "relative_half_width": _relative_half_widths(table, kpis, level),
    }
    return Replications(spec.name, scn.name if scn else None, seed, d, w, table, precision)


# -- scenarios ------------------------------------------------------------------------------


@dataclass(frozen=True)
class Comparison:
    """KPIs of a baseline and scenarios on common random numbers (same seeds, same patients).

    ``kpis`` has one row per (scenario, replication); the baseline is scenario ``"baseline"``.
    """

    spec_name: str
    seed: int
    days: float
    warmup_days: float
    kpis: pd.DataFrame
    scenarios: tuple[str, ...]

    def difference(
        self, kpi: str, scenario: str, level: float = 0.95
    ) -> tuple[float, float, float]:
        """``(mean, low, high)`` of ``scenario - baseline`` for ``kpi`` (paired t-interval)."""
        table = cast(Any, self.kpis)
        base = np.asarray(table.loc["baseline", kpi], dtype=float)
        other = np.asarray(table.loc[scenario, kpi], dtype=float)
        return paired_difference(list(other), list(base), level)

    def table(self, kpis: Sequence[str] | None = None, level: float = 0.95) -> pd.DataFrame:
        """Side by side: KPI means per scenario and paired differences from the baseline.

        Each with its confidence interval; ``significant``: the difference's CI excludes 0.
        """
        names = list(kpis) if kpis is not None else list(self.kpis.columns)
        rows = []
        for k in names:
            for s in ("baseline", *self.scenarios):
                m = summarise(cast(pd.DataFrame, self.kpis.loc[s, [k]]), level).loc[k]
                row = {
                    "kpi": k,
                    "scenario": s,
                    "mean": m["mean"],
                    "ci_low": m["ci_low"],
                    "ci_high": m["ci_high"],
                }
                if s != "baseline":
                    d, lo, hi = self.difference(k, s, level)
                    row |= {
                        "difference": d,
                        "diff_low": lo,
                        "diff_high": hi,
                        "significant": bool(lo > 0 or hi < 0),
                    }
                rows.append(row)
        return pd.DataFrame(rows).set_index(["kpi", "scenario"])


def compare(
    spec: HospitalSpec | Mapping[str, Any] | str,
    scenarios: Mapping[str, Scenario | Mapping[str, Any]] | Sequence[Scenario],
    *,
    replications: int = 10,
    days: float | None = None,
    seed: int = 0,
    warmup_days: float | None = None,
    snapshot: CensusSnapshot | None = None,
    start: datetime | None = None,
    workers: int | None = None,
    client: Any = None,
    progress: bool = False,
) -> Comparison:
    """Run the baseline and every scenario with the same seeds and compare them.

    Replication ``r`` of every scenario sees the same patients as replication ``r`` of the
    baseline (common random numbers), so differences are estimated from paired replications.

    >>> c = compare("treat_sim_nelson2013", {"exam+1": {"roster": {"exam": {"capacity": 4}}}},
    ...             replications=5, seed=1)
    >>> d, lo, hi = c.difference("wait_min:examination", "exam+1")
    >>> hi < 0
    True
    """
    spec = load_hospital(spec)
    if isinstance(scenarios, Mapping):
        named = {}
        for name, s in scenarios.items():
            scn = as_scenario(s)
            assert scn is not None
            named[name] = scn if scn.name == name else scn.model_copy(update={"name": name})
    else:
        named = {s.name: s for s in scenarios}
        if len(named) != len(scenarios):
            raise ConfigurationError("scenario names must be unique")
    if "baseline" in named:
        raise ConfigurationError(
            "'baseline' is the name of the unchanged hospital; rename the scenario"
        )
    d, w = _settings(spec, days, warmup_days, snapshot)
    kw: dict[str, Any] = {
        "snapshot": snapshot,
        "seed": seed,
        "days": d,
        "warmup_days": w,
        "start": start,
    }
    tasks = _tasks(spec, None, range(replications), **kw)
    for scn in named.values():
        tasks += _tasks(spec, scn, range(replications), **kw)
    out = execute(tasks, workers=workers, client=client, progress=progress, desc="scenarios")
    labels = [n for n in ("baseline", *named) for _ in range(replications)]
    index = pd.MultiIndex.from_arrays(
        [labels, [r for _ in range(len(named) + 1) for r in range(replications)]],
        names=["scenario", "replication"],
    )
    table = pd.DataFrame([o["kpis"] for o in out], index=index)
    return Comparison(spec.name, seed, d, w, table, tuple(named))


# -- warm-up --------------------------------------------------------------------------------


@dataclass(frozen=True)
class WarmupChoice:
    """The warm-up MSER-5 chose: ``days`` to delete, from the averaged daily ``series``."""

    days: int
    series: np.ndarray
    mser: np.ndarray
    at_limit: bool


def choose_warmup(
    spec: HospitalSpec | Mapping[str, Any] | str,
    *,
    days: float = 120,
    replications: int = 5,
    seed: int = 0,
    series: str = "occupied",
    workers: int | None = None,
    client: Any = None,
    progress: bool = False,
) -> WarmupChoice:
    """Choose a warm-up with MSER-5 on pilot runs (Welch's averaging across replications).

    Runs ``replications`` pilots of ``days`` from empty, averages the daily mean of ``series``
    (``"occupied"``: patients in beds, all units; ``"ed"``: patients in the ED) over them, and
    applies :func:`~medtwin.hospital.kpi.mser5`.  ``at_limit`` warns that the truncation point
    reached half the run: run longer pilots.
    """
    spec = load_hospital(spec)
    tasks = _tasks(
        spec,
        None,
        range(replications),
        snapshot=None,
        seed=seed,
        days=days,
        warmup_days=0.0,
        start=None,
        keep="daily",
    )
    out = execute(tasks, workers=workers, client=client, progress=progress, desc="warm-up pilot")
    if series not in out[0]:
        raise ConfigurationError(f"series must be one of {sorted(out[0])}, got {series!r}")
    avg = np.mean([o[series] for o in out], axis=0)
    cut, stat = mser5(avg)
    return WarmupChoice(cut, avg, stat, cut >= 5 * (avg.size // 5 // 2))
