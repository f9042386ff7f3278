"""Diagnostic figures of a population fit: goodness of fit, individual fits, VPC.

Figures are built on :class:`matplotlib.figure.Figure` with the Agg canvas (never ``pyplot``),
as in :mod:`medtwin.plot`.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import jax.numpy as jnp
import numpy as np
from matplotlib.axes import Axes
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from medtwin.calibrate.population._objective import compiled
from medtwin.calibrate.population._vpc import vpc
from medtwin.errors import ConfigurationError

__all__ = ["plot_gof", "plot_individual_fits", "plot_vpc"]


def plot_gof(fit: Any, path: str | Path, *, dpi: int = 120) -> Path:
    """Four goodness-of-fit panels: DV vs PRED, DV vs IPRED, CWRES vs TIME, CWRES vs PRED.

    ``fit`` is a fitted :class:`NLMEEstimator`; the format follows the suffix of ``path``.
    """
    d = fit.diagnostics_
    fig = Figure(figsize=(9, 8), layout="constrained")
    FigureCanvasAgg(fig)
    axes = fig.subplots(2, 2)
    _identity(axes[0, 0], d["PRED"], d["DV"], "PRED", "DV")
    _identity(axes[0, 1], d["IPRED"], d["DV"], "IPRED", "DV")
    _residual(axes[1, 0], d["TIME"], d["CWRES"], "TIME", "CWRES")
    _residual(axes[1, 1], d["PRED"], d["CWRES"], "PRED", "CWRES")
    fig.suptitle(f"Goodness of fit ({fit.method.upper()}, OFV {fit.ofv_:.2f})")
    return _save(fig, path, dpi)


def plot_individual_fits(
    fit: Any,
    path: str | Path,
    *,
    max_subjects: int = 12,
    n_points: int = 200,
    dpi: int = 120,
) -> Path:
    """Observations with the individual (IPRED) and population (PRED) curves, one panel each."""
    data = fit.data_
    n = min(int(max_subjects), data.n_subjects)
    sub = data.select(np.arange(n))
    t_max = np.nanmax(np.where(sub.mask, sub.time, np.nan), axis=1)
    t_min = np.minimum(0.0, np.nanmin(np.where(sub.mask, sub.time, np.nan), axis=1))
    grid = t_min[:, None] + (t_max - t_min)[:, None] * np.linspace(0.0, 1.0, n_points)[None, :]
    fine = sub.with_time(grid)
    fns = compiled(fit.model_, fit.method)
    p = jnp.asarray(fns.layout.pack(fit.model_))
    eta = jnp.asarray(fit.eta_.to_numpy()[:n])
    ipred = np.asarray(fns.predictions(p, eta, fine.subjects())[0])
    pred = np.asarray(fns.predictions(p, jnp.zeros_like(eta), fine.subjects())[0])
    cols = min(4, n)
    rows = math.ceil(n / cols)
    fig = Figure(figsize=(3.2 * cols, 2.6 * rows), layout="constrained")
    FigureCanvasAgg(fig)
    axes = np.atleast_1d(fig.subplots(rows, cols, squeeze=False)).ravel()
    for i in range(n):
        ax = axes[i]
        ax.plot(sub.time[i, sub.mask[i]], sub.dv[i, sub.mask[i]], "o", ms=3.5, color="0.2")
        ax.plot(grid[i], ipred[i], color="tab:blue", lw=1.5, label="IPRED")
        ax.plot(grid[i], pred[i], color="tab:orange", lw=1.2, ls="--", label="PRED")
        ax.set_title(f"ID {sub.ids[i]}", fontsize="small")
        ax.grid(alpha=0.3)
    for ax in axes[n:]:
        ax.set_visible(False)
    axes[0].legend(fontsize="x-small")
    fig.supxlabel("TIME")
    fig.supylabel("DV")
    return _save(fig, path, dpi)


def plot_vpc(
    fit: Any,
    path: str | Path,
    *,
    n_sim: int = 500,
    bins: int | Sequence[float] = 10,
    prediction_corrected: bool = False,
    seed: int = 0,
    log_y: bool = False,
    dpi: int = 120,
) -> Path:
    r"""Visual predictive check: observed 5th/50th/95th percentiles over the simulated 95% bands.

    See :func:`vpc` for the numbers and the settings.

    >>> import pathlib, tempfile, jax.numpy as jnp, numpy as np, pandas as pd
    >>> from medtwin.calibrate.population import (Additive, NLMEEstimator, PopulationData,
    ...                                            PopulationModel)
    >>> rng = np.random.default_rng(0)
    >>> t = np.tile([1.0, 2.0, 4.0, 8.0], 10)
    >>> ids = np.repeat(np.arange(10), 4)
    >>> k = 0.3 * np.exp(0.2 * rng.standard_normal(10))[ids]
    >>> df = pd.DataFrame({"ID": ids, "TIME": t, "DV": 10 * np.exp(-k * t) + rng.normal(0, .2, 40)})
    >>> def f(th, e, s):
    ...     return 10 * jnp.exp(-jnp.exp(th["lk"] + e["ek"]) * s["time"])
    >>> m = PopulationModel(f, {"lk": -1.0}, {"ek": 0.1}, Additive(0.3))
    >>> fit = NLMEEstimator(m, covariance=None).fit(df)
    >>> out = plot_vpc(fit, pathlib.Path(tempfile.mkdtemp()) / "vpc.png", n_sim=50, bins=4)
    >>> out.read_bytes()[:4] == b"\x89PNG"
    True
    """
    table = vpc(fit, n_sim=n_sim, bins=bins, prediction_corrected=prediction_corrected, seed=seed)
    data = fit.data_
    fig = Figure(figsize=(8, 5.5), layout="constrained")
    FigureCanvasAgg(fig)
    ax = fig.subplots(1, 1)
    t = table["time"].to_numpy()
    colours = {"p5": "tab:blue", "p50": "tab:red", "p95": "tab:blue"}
    for name, colour in colours.items():
        if f"obs_{name}" not in table:
            continue
        ax.fill_between(
            t,
            table[f"sim_{name}_lower"],
            table[f"sim_{name}_upper"],
            color=colour,
            alpha=0.2,
            lw=0,
        )
        ax.plot(t, table[f"sim_{name}_median"], color=colour, lw=1, ls="--")
        label = {"p5": "observed 5th, 95th percentiles", "p50": "observed median"}.get(name)
        ax.plot(t, table[f"obs_{name}"], color=colour, lw=2, label=label)
    if not prediction_corrected:
        ax.plot(data.time[data.mask], data.dv[data.mask], ".", color="0.4", ms=3, alpha=0.6)
    if log_y:
        ax.set_yscale("log")
    ax.set_xlabel("TIME")
    ax.set_ylabel("prediction-corrected DV" if prediction_corrected else "DV")
    ax.set_title(
        f"{'pc' if prediction_corrected else ''}VPC: observed percentiles (lines) and the 95% "
        f"intervals of the simulated ones ({n_sim} replicates)",
        fontsize="medium",
    )
    ax.legend(fontsize="small")
    ax.grid(alpha=0.3)
    return _save(fig, path, dpi)


def _identity(ax: Axes, x: Any, y: Any, xlabel: str, ylabel: str) -> None:
    ax.plot(x, y, "o", ms=3, alpha=0.6, color="tab:blue")
    hi = float(max(np.nanmax(x), np.nanmax(y)))
    lo = float(min(np.nanmin(x), np.nanmin(y), 0.0))
    ax.plot([lo, hi], [lo, hi], color="0.3", lw=1)
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.grid(alpha=0.3)


def _residual(ax: Axes, x: Any, r: Any, xlabel: str, ylabel: str) -> None:
    ax.plot(x, r, "o", ms=3, alpha=0.6, color="tab:blue")
    ax.axhline(0.0, color="0.3", lw=1)
    for s in (-2.0, 2.0):
        ax.axhline(s, color="0.5", lw=0.8, ls="--")
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.grid(alpha=0.3)


def _save(fig: Figure, path: str | Path, dpi: int) -> Path:
    path = Path(path)
    if not path.suffix:
        raise ConfigurationError(
            f"plot path {str(path)!r} needs a suffix such as .png, .pdf or .svg"
        )
    try:
        fig.savefig(path, dpi=dpi)
    except ValueError as exc:
        raise ConfigurationError(f"cannot write plot {str(path)!r}: {exc}") from None
    return path
