"""HTML reports of the hospital twin: a run (or replications), a scenario comparison, a forecast.

Each report is one self-contained page made by :func:`medtwin.report.render_report`: tables as
HTML, figures as PNG inlined, no scripts and nothing loaded from elsewhere, so a report opens
offline and can be archived or mailed as it is.  Figures are drawn with matplotlib's Agg canvas
(no ``pyplot`` state).

- :func:`simulation_report`: KPIs with their 95% confidence intervals over replications, bed
  occupancy per unit over time and the ED (in the department, waiting to be seen, boarding)
  over time, of one replication;
- :func:`comparison_report`: KPIs of the baseline and each scenario side by side, with the
  paired difference from the baseline and its 95% interval, and a forest plot of the
  differences;
- :func:`forecast_report`: a fan chart per unit (median, 50% and 90% bands, the beds) and the
  ED, and a table at 24, 48 and 72 hours with the probability that the unit is full;
- :func:`calibration_report`: a calibration's estimates with their intervals and its
  goodness-of-fit tables, and what it could not fit.
"""

from __future__ import annotations

import io
import math
from collections.abc import Iterable, Mapping, Sequence
from typing import TYPE_CHECKING, Any, cast

import numpy as np
import pandas as pd

from medtwin.report import render_report

if TYPE_CHECKING:
    from matplotlib.figure import Figure

    from medtwin.hospital.calibrate import CalibrationResult
    from medtwin.hospital.experiment import Comparison, Replications
    from medtwin.hospital.forecast import CensusForecast
    from medtwin.hospital.model import SimulationRun

__all__ = [
    "HEADLINE_KPIS",
    "calibration_report",
    "comparison_report",
    "forecast_report",
    "simulation_report",
]

HEADLINE_KPIS: dict[str, str] = {
    "arrivals_per_day": "ED attendances per day",
    "ed_los_h": "time in the ED, mean (h)",
    "ed_los_p95_h": "time in the ED, 95th percentile (h)",
    "within_4h": "left the ED within 4 h (share)",
    "door_to_provider_min": "arrival to first clinician, mean (min)",
    "lwbs_rate": "left without being seen (share)",
    "admission_rate": "admitted from the ED (share)",
    "boarding_h": "decision to admit to a bed, mean (h)",
    "boarding": "patients boarding in the ED, mean",
    "occupancy": "bed occupancy, all units (share)",
    "admissions_per_day": "admissions per day",
    "discharge_delay_h": "medically ready to leaving, mean (h)",
    "elective_cancellation_rate": "electives cancelled for want of a bed (share)",
}
"""The KPIs a report shows first, with what each means (all are listed after them)."""

_BLUE = "#0b5cad"


def _png(fig: Figure) -> bytes:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=110)
    return buf.getvalue()


def _figure(n_panels: int, *, cols: int = 2, height: float = 2.6) -> tuple[Figure, list[Any]]:
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    cols = max(1, min(cols, n_panels))
    rows = math.ceil(n_panels / cols)
    fig = Figure(figsize=(5.5 * cols, height * rows + 0.4), layout="constrained")
    FigureCanvasAgg(fig)
    axes = fig.subplots(rows, cols, squeeze=False).ravel().tolist()
    for ax in axes[n_panels:]:
        ax.set_visible(False)
    return fig, axes[:n_panels]


def _ordered(kpis: Iterable[str]) -> list[str]:
    names = list(kpis)
    head = [k for k in HEADLINE_KPIS if k in names]
    within = [k for k in names if k.startswith("within_") and k not in head]
    return head[:3] + within + head[3:] + [k for k in names if k not in head and k not in within]


def _label(kpi: str) -> str:
    if kpi.startswith("within_") and kpi.endswith("h"):
        return f"left the ED within {kpi[7:-1]} h (share)"
    return HEADLINE_KPIS.get(kpi, "")


# -- a run, or replications ------------------------------------------------------------------


def simulation_report(
    run: SimulationRun,
    replications: Replications | None = None,
    *,
    title: str | None = None,
    level: float = 0.95,
) -> str:
    """A page for one simulated run (its time series) and, if given, replications' KPIs.

    ``run`` gives the figures (hourly means after its warm-up, one replication);
    ``replications`` (of the same hospital and settings) the KPI table with ``level``
    confidence intervals.  Without replications the table has the run's own KPIs.

    >>> from medtwin.hospital import simulate
    >>> page = simulation_report(simulate("example_hospital", days=2, warmup_days=0, seed=1))
    >>> page.startswith("<!DOCTYPE html>") and "Bed occupancy" in page and "<script" not in page
    True
    """
    spec = run.spec
    if replications is not None:
        summary = replications.summary(level)
        pct = f"{level:.0%}"
        table = pd.DataFrame(
            {
                "mean": summary["mean"],
                f"{pct} CI low": summary["ci_low"],
                f"{pct} CI high": summary["ci_high"],
                "sd": summary["sd"],
                "replications": summary["n"].astype(int),
            }
        )
        n, days, warm = replications.n, replications.days, replications.warmup_days
    else:
        table = pd.DataFrame({"value": pd.Series(run.kpis())})
        n, days, warm = 1, run.horizon_min / 1440, run.warmup_min / 1440
    table = table.loc[_ordered(table.index)]
    table.insert(0, "meaning", [_label(str(k)) for k in table.index])
    table.index.name = "KPI"
    head = table.loc[[k for k in table.index if _label(str(k))]]
    setting = {
        "hospital": spec.name,
        "scenario": run.scenario or "as specified",
        "replications": str(n),
        "simulated": f"{days:g} days from {run.start:%a %Y-%m-%d %H:%M} ({spec.timezone})",
        "warm-up deleted": f"{warm:g} days",
        "seed": str(run.seed),
        "beds": ", ".join(f"{u} {unit.beds}" for u, unit in spec.units.items()) or "none",
    }
    figures = []
    hourly = run.hourly()
    k0 = round(run.warmup_min / 60)
    hourly = hourly.iloc[k0:]
    if spec.units:
        figures.append(("Bed occupancy per unit (replication 0)", _occupancy_png(run, hourly)))
    if spec.ed is not None:
        figures.append(("The ED over time (replication 0)", _ed_png(hourly)))
    return render_report(
        title=title or f"Hospital simulation: {spec.name}",
        scenario=setting,
        notes=(
            "KPIs are over the time after the warm-up; attendance measures count the patients "
            "who arrived in it. Confidence intervals are t-intervals over independent "
            "replications. The figures show hourly means of the first replication."
        ),
        tables=[("Headline KPIs", head), ("All KPIs", table)],
        figures=figures,
    )


def _occupancy_png(run: SimulationRun, hourly: pd.DataFrame) -> bytes:
    units = list(run.spec.units.items())
    fig, axes = _figure(len(units))
    for ax, (name, unit) in zip(axes, units, strict=True):
        occupied = hourly[f"occupied:{name}"]
        ax.plot(occupied.index, occupied.to_numpy(), color=_BLUE, lw=0.8, label="in beds")
        queue = f"bed_queue:{name}"
        if queue in hourly and hourly[queue].to_numpy().max() > 0:
            ax.plot(hourly.index, hourly[queue].to_numpy(), color="#d55e00", lw=0.8,
                    label="waiting for a bed")  # fmt: skip
        ax.axhline(unit.beds, color="black", ls="--", lw=0.8, label=f"{unit.beds} beds")
        ax.set_title(name, fontsize=10)
        ax.set_ylabel("patients")
        ax.set_ylim(bottom=0)
        ax.grid(alpha=0.3)
        ax.tick_params(axis="x", labelsize=7, rotation=30)
        ax.legend(fontsize=7, loc="lower right")
    return _png(fig)


def _ed_png(hourly: pd.DataFrame) -> bytes:
    fig, [ax] = _figure(1, cols=1, height=3.2)
    for name, label, colour in (
        ("ed", "in the ED", _BLUE),
        ("waiting", "waiting to be seen", "#009e73"),
        ("boarding", "boarding (admitted, no bed yet)", "#d55e00"),
    ):
        if name in hourly:
            ax.plot(hourly.index, hourly[name].to_numpy(), lw=0.8, color=colour, label=label)
    ax.set_ylabel("patients (hourly mean)")
    ax.set_ylim(bottom=0)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8, loc="upper left")
    return _png(fig)


# -- a scenario comparison -------------------------------------------------------------------


def comparison_report(
    comparison: Comparison,
    *,
    scenarios: Mapping[str, Any] | None = None,
    kpis: Sequence[str] | None = None,
    title: str | None = None,
    level: float = 0.95,
) -> str:
    """A page comparing scenarios with the baseline on common random numbers.

    ``scenarios`` (name -> the scenario's settings) is shown as given; ``kpis`` limits the
    table and the plot (default: the headline KPIs and occupancy per unit that the run has).

    >>> from medtwin.hospital import compare
    >>> c = compare("example_hospital", {"+10 AMU": {"extra_beds": {"AMU": 10}}},
    ...             replications=2, days=2, warmup_days=0, seed=1)
    >>> "paired difference" in comparison_report(c)
    True
    """
    known = list(comparison.kpis.columns)
    if kpis is None:
        chosen = [k for k in _ordered(known) if _label(k) or k.startswith("occupancy:")]
    else:
        chosen = list(kpis)
    table = comparison.table(chosen, level)
    cells = _cells(table)
    pct = f"{level:.0%}"
    wide = []
    for kpi in chosen:
        row: dict[str, Any] = {"KPI": kpi, "meaning": _label(kpi)}
        row["baseline"] = cells[(kpi, "baseline")]["mean"]
        for name in comparison.scenarios:
            r = cells[(kpi, name)]
            row[name] = r["mean"]
            row[f"{name}: difference"] = r["difference"]
            row[f"{name}: {pct} CI"] = _interval(r["diff_low"], r["diff_high"])
        wide.append(row)
    side = pd.DataFrame(wide).set_index("KPI")
    long = table.reset_index()
    long = long.rename(columns={"ci_low": f"{pct} CI low", "ci_high": f"{pct} CI high"})
    long = long.set_index(["kpi", "scenario"])
    setting: dict[str, str] = {
        "hospital": comparison.spec_name,
        "replications": str(int(comparison.kpis.loc["baseline"].shape[0])),
        "simulated": f"{comparison.days:g} days each (warm-up {comparison.warmup_days:g} days)",
        "seed": str(comparison.seed),
    }
    for name in comparison.scenarios:
        setting[f"scenario {name}"] = (
            _describe(scenarios[name]) if scenarios and name in scenarios else name
        )
    return render_report(
        title=title or f"Scenario comparison: {comparison.spec_name}",
        scenario=setting,
        notes=(
            "Each scenario runs on the same random numbers as the baseline (the same patients "
            "arrive, with the same needs), so each difference is estimated from paired "
            f"replications: the paired difference and its {pct} t-interval. A difference whose "
            "interval excludes 0 is marked significant in the full table."
        ),
        tables=[
            ("Side by side, with the paired difference from the baseline", side),
            ("Every KPI with its confidence interval", long),
        ],
        figures=[
            (
                f"Paired differences from the baseline ({pct} CI)",
                _forest_png(table, comparison.scenarios, chosen),
            )
        ],
    )


def _cells(table: pd.DataFrame) -> dict[tuple[str, str], dict[str, Any]]:
    """A comparison table's rows by (kpi, scenario)."""
    return cast("dict[tuple[str, str], dict[str, Any]]", table.to_dict("index"))


def _interval(low: float, high: float) -> str:
    if not (np.isfinite(low) and np.isfinite(high)):
        return "–"

    def f(v: float) -> str:
        return f"{v:.1f}" if abs(v) >= 10 else f"{v:.3g}"

    return f"[{f(low)}, {f(high)}]"


def _describe(settings: Any) -> str:
    if hasattr(settings, "model_dump"):
        settings = settings.model_dump(mode="json", exclude_defaults=True)
    if isinstance(settings, Mapping):
        return "; ".join(f"{k}: {v}" for k, v in settings.items() if k != "name") or "no change"
    return str(settings)


def _forest_png(table: pd.DataFrame, scenarios: Sequence[str], kpis: Sequence[str]) -> bytes:
    fig, axes = _figure(len(kpis), cols=3, height=1.0 + 0.35 * len(scenarios))
    cells = _cells(table)
    for ax, kpi in zip(axes, kpis, strict=True):
        ys = np.arange(len(scenarios))[::-1]
        for y, name in zip(ys, scenarios, strict=True):
            r = cells[(kpi, name)]
            d, lo, hi = float(r["difference"]), float(r["diff_low"]), float(r["diff_high"])
            if not np.isfinite(d):
                continue
            colour = _BLUE if (lo > 0 or hi < 0) else "#6b7280"
            if np.isfinite(lo) and np.isfinite(hi):
                ax.plot([lo, hi], [y, y], color=colour, lw=2)
            ax.plot([d], [y], "o", color=colour, ms=4)
        ax.axvline(0, color="black", lw=0.8)
        ax.set_yticks(ys, list(scenarios), fontsize=8)
        ax.set_ylim(-0.7, len(scenarios) - 0.3)
        ax.set_title(kpi, fontsize=9)
        ax.tick_params(axis="x", labelsize=7)
        ax.grid(alpha=0.3, axis="x")
    return _png(fig)


# -- a forecast ------------------------------------------------------------------------------


def forecast_report(
    fc: CensusForecast,
    *,
    census: Mapping[str, int] | None = None,
    source: str | None = None,
    title: str | None = None,
    at_hours: Sequence[int] = (24, 48, 72),
) -> str:
    """A page of a census forecast: a fan chart per unit and the ED, and a table by horizon.

    ``census`` (unit -> patients now) and ``source`` (where the census came from) are shown as
    given.

    >>> from datetime import datetime, UTC
    >>> from medtwin.hospital import CensusSnapshot, forecast
    >>> fc = forecast("example_hospital", CensusSnapshot(datetime(2026, 1, 5, tzinfo=UTC), ()),
    ...               horizon_hours=6, replications=3, seed=1)
    >>> "probability full" in forecast_report(fc, at_hours=(6,))
    True
    """
    hours = [h for h in at_hours if 0 < h <= fc.horizon_hours] or [fc.horizon_hours]
    full = fc.probability_full()
    rows = []
    for unit, beds in fc.beds.items():
        x = fc.samples[f"occupied:{unit}"]
        row: dict[str, Any] = {"unit": unit, "beds": beds, "now": round(float(x[0, 0]))}
        for h in hours:
            q05, q50, q95 = np.quantile(x[:, h], [0.05, 0.5, 0.95])
            row[f"{h} h median"] = float(q50)
            row[f"{h} h 90% interval"] = _interval(float(q05), float(q95))
            row[f"{h} h probability full"] = float(full[unit].iloc[h])
        rows.append(row)
    table = pd.DataFrame(rows).set_index("unit")
    ed_rows = []
    for name, label in (("ed", "in the ED"), ("waiting", "waiting to be seen"),
                        ("boarding", "boarding")):  # fmt: skip
        if name not in fc.samples:
            continue
        x = fc.samples[name]
        row = {"measure": label, "now": float(x[0, 0])}
        for h in hours:
            q05, q50, q95 = np.quantile(x[:, h], [0.05, 0.5, 0.95])
            row[f"{h} h median"] = float(q50)
            row[f"{h} h 90% interval"] = _interval(float(q05), float(q95))
        ed_rows.append(row)
    tables = [("Beds: patients in beds by horizon, and the probability every bed is taken", table)]
    if ed_rows:
        tables.append(("The ED by horizon", pd.DataFrame(ed_rows).set_index("measure")))
    setting = {
        "hospital": fc.spec_name,
        "census at": f"{pd.Timestamp(fc.start).tz_convert('UTC'):%Y-%m-%d %H:%M} UTC",
        "horizon": f"{fc.horizon_hours} h",
        "replications": str(fc.replications),
        "scenario": fc.scenario or "as specified",
    }
    if source:
        setting["census from"] = source
    if census:
        setting["patients now"] = ", ".join(f"{u} {n}" for u, n in census.items())
    figures = [("Patients in beds: median, 50% and 90% bands, beds", _fan_png(fc))]
    if "ed" in fc.samples:
        figures.append(("The ED: median and 90% band", _ed_fan_png(fc)))
    return render_report(
        title=title or f"Census forecast: {fc.spec_name}",
        scenario=setting,
        notes=(
            "Every replication starts from the census: patients in beds stay for the rest of "
            "a length of stay drawn given the time already spent, ED patients resume their "
            "pathway, new patients arrive as the hospital's arrival profile says. Bands are "
            "quantiles across replications; 'probability full' is the share of replications "
            "with every bed taken at that hour."
        ),
        tables=tables,
        figures=figures,
    )


def _fan(ax: Any, times: pd.DatetimeIndex, x: np.ndarray, colour: str) -> None:
    q = np.quantile(x, [0.05, 0.25, 0.5, 0.75, 0.95], axis=0)
    t = times.to_pydatetime()
    ax.fill_between(t, q[0], q[4], color=colour, alpha=0.15, lw=0, label="90% band")
    ax.fill_between(t, q[1], q[3], color=colour, alpha=0.3, lw=0, label="50% band")
    ax.plot(t, q[2], color=colour, lw=1.2, label="median")


def _fan_png(fc: CensusForecast) -> bytes:
    units = list(fc.beds.items())
    fig, axes = _figure(len(units))
    for ax, (unit, beds) in zip(axes, units, strict=True):
        _fan(ax, fc.times, fc.samples[f"occupied:{unit}"], _BLUE)
        ax.axhline(beds, color="black", ls="--", lw=0.8, label=f"{beds} beds")
        ax.set_title(unit, fontsize=10)
        ax.set_ylabel("patients in beds")
        ax.grid(alpha=0.3)
        ax.tick_params(axis="x", labelsize=7, rotation=30)
        ax.legend(fontsize=7, loc="best")
    return _png(fig)


def _ed_fan_png(fc: CensusForecast) -> bytes:
    names = [n for n in ("ed", "boarding") if n in fc.samples]
    fig, axes = _figure(len(names))
    for ax, name in zip(axes, names, strict=True):
        _fan(ax, fc.times, fc.samples[name], "#d55e00" if name == "boarding" else _BLUE)
        ax.set_title({"ed": "patients in the ED", "boarding": "boarding"}[name], fontsize=10)
        ax.set_ylim(bottom=0)
        ax.grid(alpha=0.3)
        ax.tick_params(axis="x", labelsize=7, rotation=30)
        ax.legend(fontsize=7, loc="upper left")
    return _png(fig)


# -- a calibration ---------------------------------------------------------------------------

_CALIBRATION_TABLES = {
    "substituted": "What was replaced in the base hospital",
    "arrivals": "ED arrivals",
    "arrival_tests": "ED arrivals: tests of the model",
    "arrivals_by_weekday": "ED arrivals by weekday",
    "arrivals_by_hour": "ED arrivals by hour of day",
    "classes": "Triage classes",
    "admission": "Admission from the ED",
    "routing": "Where stays go next",
    "los": "Lengths of stay: fits and goodness of fit",
    "discharge": "Discharges home by hour of day",
    "admissions": "Elective and direct admissions",
    "lwbs": "Left without being seen",
    "patience": "Patience",
}


def calibration_report(
    result: CalibrationResult, *, source: str | None = None, title: str | None = None
) -> str:
    """A page of a calibration: the chosen fits, every estimate with its interval, the notes."""
    setting = {
        "hospital": result.spec.name,
        "base hospital": result.base.name,
        "window": f"{result.start.isoformat()} to {result.end.isoformat()}",
    }
    if source:
        setting["events"] = source
    tables = [("Lengths of stay chosen (hours)", result.summary())]
    for key, heading in _CALIBRATION_TABLES.items():
        frame = result.report.get(key)
        if frame is not None and len(frame):
            tables.append((heading, frame))
    for key, frame in result.report.items():
        if key not in _CALIBRATION_TABLES and len(frame):
            tables.append((key, frame))
    notes = " ".join(result.notes) if result.notes else None
    return render_report(
        title=title or f"Calibration: {result.spec.name}",
        scenario=setting,
        notes=notes,
        tables=tables,
    )
