"""Figures of simulated glucose: traces (or a population band), meals, and insulin delivered.

Figures are built on :class:`matplotlib.figure.Figure` with the Agg canvas, never through
``pyplot``: nothing global is touched, no window opens, and a long-running service can draw as many
figures as it likes without matplotlib's open-figure warning.
"""

from __future__ import annotations

import io
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Literal

import numpy as np
import pandas as pd
from matplotlib.axes import Axes
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.ticker import MultipleLocator

from medtwin.errors import ConfigurationError
from medtwin.simulate import Schedule, Solution

if TYPE_CHECKING:
    from medtwin.twin import Forecast

__all__ = ["glucose_figure", "plot_glucose", "png_bytes"]

TARGET_BAND_MG_DL = (70.0, 180.0)
"""The consensus target range (Battelino et al., Diabetes Care 42:1593, 2019)."""

MAX_TRACES = 10
"""Up to this many patients every trace is drawn; beyond it the median and 5-95% band."""


def plot_glucose(
    solution: Solution,
    schedule: Schedule | Sequence[Schedule] | None,
    path: str | Path,
    *,
    observation: str = "Gsub",
    title: str | None = None,
    max_traces: int = MAX_TRACES,
    dpi: int = 120,
) -> Path:
    r"""Draw glucose with the 70-180 mg/dL band, meals and insulin delivered; save to ``path``.

    The format follows the suffix of ``path`` (``.png``, ``.pdf``, ``.svg``).

    Parameters
    ----------
    solution:
        A simulation of the UVA/Padova model (or any model with a glucose observation in mg/dL).
    schedule:
        The schedule that was simulated, for the meal markers; ``None`` takes the meals from the
        solution's ``cho_announced`` record instead.
    path:
        Where to write the figure; the format follows the suffix.
    observation:
        The glucose quantity to draw (``"Gsub"``, ``"Gplasma"`` or ``"sensor"``).
    max_traces:
        Up to this many patients each trace is drawn; beyond it the median and 5-95% band.
    title:
        The figure's title (default: the model and the number of patients).
    dpi:
        Resolution of a raster image.

    Returns
    -------
    Path
        The path written.

    Examples
    --------
    >>> import numpy as np, tempfile, pathlib
    >>> from medtwin.models import UvaPadova2008, load_patients
    >>> from medtwin.simulate import Schedule, simulate
    >>> vp = load_patients("adult#001")
    >>> s = Schedule().meal(60, 50)
    >>> sol = simulate(UvaPadova2008, s, np.arange(0, 241, 5.0), params=vp.params, x0=vp.x0)
    >>> out = plot_glucose(sol, s, pathlib.Path(tempfile.mkdtemp()) / "g.png")
    >>> out.read_bytes()[:4] == b"\x89PNG"
    True

    """
    path = Path(path)
    if not path.suffix:
        raise ConfigurationError(
            f"plot path {str(path)!r} needs a suffix such as .png, .pdf or .svg"
        )
    fig = glucose_figure(
        solution, schedule, observation=observation, title=title, max_traces=max_traces
    )
    try:
        fig.savefig(path, dpi=dpi)
    except ValueError as exc:  # matplotlib's "Format 'xyz' is not supported"
        raise ConfigurationError(f"cannot write plot {str(path)!r}: {exc}") from None
    return path


def png_bytes(fig: Figure, *, dpi: int = 120) -> bytes:
    """Render the figure as PNG bytes (for embedding in an HTML report)."""
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=dpi)
    return buf.getvalue()


def glucose_figure(
    solution: Solution,
    schedule: Schedule | Sequence[Schedule] | None = None,
    *,
    observation: str = "Gsub",
    title: str | None = None,
    max_traces: int = MAX_TRACES,
) -> Figure:
    """Build the glucose figure of :func:`plot_glucose` without saving it."""
    if observation not in solution:
        raise ConfigurationError(
            f"cannot plot {observation!r}: it was not recorded (recorded: "
            f"{', '.join(solution.values)})"
        )
    glucose = np.asarray(solution[observation], dtype=float)
    hours = np.asarray(solution.t, dtype=float) / _minutes_per(solution.time_unit) / 60.0
    has_insulin = "insulin_delivered" in solution
    fig = Figure(figsize=(10, 6.5 if has_insulin else 4.5), layout="constrained")
    FigureCanvasAgg(fig)
    if has_insulin:
        ax_g, ax_i = fig.subplots(
            2, 1, sharex=True, gridspec_kw={"height_ratios": [3, 1]}, squeeze=True
        )
    else:
        ax_g, ax_i = fig.subplots(1, 1), None

    low, high = TARGET_BAND_MG_DL
    ax_g.axhspan(low, high, color="tab:green", alpha=0.12, lw=0, label="target 70-180 mg/dL")
    n = glucose.shape[0]
    many = n > max_traces
    _draw_series(ax_g, hours, glucose, solution.patient_ids, many, color="tab:blue")
    unit = solution.units.get(observation, "mg/dL")
    ax_g.set_ylabel(f"{observation} [{unit}]")
    shown = np.percentile(glucose, 95.0, axis=0) if many else glucose
    ax_g.set_ylim(bottom=0.0, top=max(300.0, float(np.nanmax(shown)) * 1.05))
    if not many and n <= 3 and observation != "sensor" and "sensor" in solution:
        # the CGM readings beside the truth, while they can still be told apart
        for row in np.asarray(solution["sensor"], dtype=float):
            ax_g.plot(hours, row, ls="none", marker=".", ms=2.5, alpha=0.5, color="0.35")
        ax_g.plot([], [], ls="none", marker=".", color="0.35", label="CGM reading")
    _draw_meals(ax_g, hours, solution, schedule)
    what = f"{n} patients: median and 5-95%" if many else f"{n} patient{'s' if n > 1 else ''}"
    ax_g.set_title(title or f"{solution.model_name or 'simulation'}: {what}")
    ax_g.legend(loc="upper right", fontsize="small", ncols=2 if not many and n > 4 else 1)
    ax_g.grid(alpha=0.3)

    if ax_i is not None:
        # U per output interval -> U/h, so the panel does not depend on --output-every
        step_h = float(hours[1] - hours[0])
        rate = np.asarray(solution["insulin_delivered"], dtype=float) / step_h
        _draw_series(ax_i, hours, rate, solution.patient_ids, many, color="tab:purple", step=True)
        ax_i.set_ylabel("insulin [U/h]")
        ax_i.set_ylim(bottom=0.0)
        ax_i.grid(alpha=0.3)
        ax_i.set_xlabel("time [h]")
    else:
        ax_g.set_xlabel("time [h]")
    ax_g.xaxis.set_major_locator(MultipleLocator(_tick_hours(float(hours[-1] - hours[0]))))
    return fig


def _tick_hours(span_h: float) -> float:
    if span_h <= 30:
        return 3.0
    if span_h <= 80:
        return 6.0
    return 24.0 * max(1, int(np.ceil(span_h / 24.0 / 12.0)))


def _minutes_per(time_unit: str) -> float:
    return {"min": 1.0, "h": 60.0, "s": 1.0 / 60.0, "d": 1440.0}.get(time_unit, 1.0)


def _draw_series(
    ax: Axes,
    hours: np.ndarray,
    values: np.ndarray,
    ids: Sequence[str],
    many: bool,
    *,
    color: str,
    step: bool = False,
) -> None:
    where: Literal["post"] | None = "post" if step else None
    if many:
        lo, med, hi = np.percentile(values, [5.0, 50.0, 95.0], axis=0)
        ax.fill_between(hours, lo, hi, color=color, alpha=0.25, lw=0, step=where, label="5-95%")
        if step:
            ax.step(hours, med, where="post", color=color, lw=1.5, label="median")
        else:
            ax.plot(hours, med, color=color, lw=1.8, label="median")
        return
    for row, name in zip(values, ids, strict=True):
        if step:
            ax.step(hours, row, where="post", lw=1.0, label=name if len(ids) > 1 else None)
        else:
            ax.plot(hours, row, lw=1.3, label=name)


def _meal_times(
    hours: np.ndarray, solution: Solution, schedule: Schedule | Sequence[Schedule] | None
) -> list[tuple[float, float]]:
    """(time in hours, grams) of every meal, from the schedule or from what was announced."""
    scale = _minutes_per(solution.time_unit) * 60.0
    if schedule is not None:
        schedules = [schedule] if isinstance(schedule, Schedule) else list(schedule)
        meals: dict[float, float] = {}
        for s in schedules:
            for e in s.events:
                if e.input in ("meal", "cho") and e.kind == "pulse":
                    meals.setdefault(e.time / scale, e.value)
        return sorted(meals.items())
    if "cho_announced" not in solution:
        return []
    cho = np.asarray(solution["cho_announced"], dtype=float)
    total = np.median(cho, axis=0) if cho.shape[0] > 1 else cho[0]
    return [(float(hours[i]), float(total[i])) for i in np.flatnonzero(total > 0)]


def _draw_meals(
    ax: Axes, hours: np.ndarray, solution: Solution, schedule: Schedule | Sequence[Schedule] | None
) -> None:
    meals = _meal_times(hours, solution, schedule)
    if not meals:
        return
    times = [t for t, _ in meals]
    y = np.full(len(times), 15.0)
    ax.scatter(times, y, marker="^", s=60, color="tab:orange", zorder=5, label="meal")
    for t, grams in meals:
        ax.annotate(
            f"{grams:g} g", (t, 15.0), xytext=(0, 8), textcoords="offset points",
            ha="center", fontsize="x-small", color="tab:orange",
        )  # fmt: skip


def forecast_figure(
    readings_time: pd.DatetimeIndex | pd.Series,
    readings_mg_dl: np.ndarray,
    forecast: Forecast,
    *,
    title: str | None = None,
) -> Figure:
    """CGM readings so far, then a twin's forecast: median and 50/80/95% bands, target band.

    ``forecast`` is a :class:`medtwin.twin.Forecast` (``time``, ``median``, ``bands``).
    """
    import matplotlib.dates as mdates

    fig = Figure(figsize=(10, 4.8), layout="constrained")
    FigureCanvasAgg(fig)
    ax = fig.add_subplot()
    ax.axhspan(*TARGET_BAND_MG_DL, color="tab:green", alpha=0.10, label="target 70-180 mg/dL")
    times = forecast.time
    bands = forecast.bands
    for level, alpha in ((0.95, 0.15), (0.8, 0.25), (0.5, 0.35)):
        if level in bands:
            lo, hi = bands[level]
            ax.fill_between(times, lo, hi, color="tab:blue", alpha=alpha, lw=0,
                            label=f"{round(level * 100)}% band")  # fmt: skip
    ax.plot(times, forecast.median, color="tab:blue", lw=2, label="forecast median")
    ax.plot(readings_time, readings_mg_dl, ".", color="black", ms=3, label="CGM")
    ax.set_ylabel("glucose [mg/dL]")
    ax.xaxis.set_major_formatter(mdates.DateFormatter("%d %b %H:%M"))
    ax.grid(alpha=0.3)
    ax.legend(loc="upper left", fontsize=8)
    if title:
        ax.set_title(title)
    return fig
