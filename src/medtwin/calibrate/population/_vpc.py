"""Simulation from a population model and the visual predictive check (VPC).

A VPC simulates the study design (the same subjects, covariates, doses and sampling times)
``n_sim`` times from the fitted model, with new random effects and residual errors, and compares
percentiles of the observations with the distribution of the same percentiles across the
simulated replicates, bin by bin in time (Holford 2005, "The visual predictive check: superiority
to standard diagnostic (Rorschach) plots", PAGE 14, abstract 738; Bergstrand et al. 2011,
AAPS J 13:143 for the prediction-corrected variant).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import jax.numpy as jnp
import numpy as np
import pandas as pd

from medtwin.calibrate.population._data import PopulationData
from medtwin.calibrate.population._model import PopulationModel
from medtwin.calibrate.population._objective import compiled
from medtwin.errors import ConfigurationError, NotCalibratedError

__all__ = ["simulate_observations", "vpc"]


def simulate_observations(
    model: PopulationModel,
    data: PopulationData,
    n_rep: int,
    *,
    seed: int = 0,
    residual: bool = True,
) -> np.ndarray:
    """``n_rep`` replicates of the study: (n_rep, N, M) observations, NaN on the padding.

    Each replicate draws every subject's ``eta ~ Normal(0, Omega)`` and, with ``residual``,
    each observation's residual error.

    >>> import jax.numpy as jnp, pandas as pd
    >>> from medtwin.calibrate.population import Additive, PopulationData, PopulationModel
    >>> m = PopulationModel(lambda th, e, s: th["a"] + e["e"] + 0 * s["time"], {"a": 5.0},
    ...                     {"e": 1.0}, Additive(0.1))
    >>> d = PopulationData.from_frame(pd.DataFrame({"ID": [1, 2], "TIME": 0.0, "DV": 0.0}))
    >>> simulate_observations(m, d, 3, seed=1).shape
    (3, 2, 1)
    """
    if not (isinstance(n_rep, int) and n_rep >= 1):
        raise ConfigurationError(f"n_rep must be a positive integer, got {n_rep!r}")
    fns = compiled(model, "focei")
    p = jnp.asarray(fns.layout.pack(model))
    chol = np.linalg.cholesky(model.omega_matrix)
    rng = np.random.default_rng(seed)
    subjects = data.subjects()
    n, m = data.time.shape
    out = np.empty((n_rep, n, m))
    for r in range(n_rep):
        eta = rng.standard_normal((n, chol.shape[0])) @ chol.T
        f, var = (np.asarray(a) for a in fns.predictions(p, jnp.asarray(eta), subjects))
        out[r] = f + np.sqrt(var) * rng.standard_normal((n, m)) if residual else f
    out[:, ~data.mask] = np.nan
    return out


def vpc(
    fit: Any,
    data: PopulationData | None = None,
    *,
    n_sim: int = 500,
    bins: int | Sequence[float] = 10,
    percentiles: Sequence[float] = (5.0, 50.0, 95.0),
    level: float = 0.95,
    prediction_corrected: bool = False,
    seed: int = 0,
) -> pd.DataFrame:
    """The numbers of a VPC, one row per time bin.

    Parameters
    ----------
    fit:
        A fitted :class:`NLMEEstimator` (its final model and data), or a
        :class:`PopulationModel` together with ``data``.
    n_sim:
        Simulated replicates of the study.
    bins:
        Number of time bins (edges at quantiles of the observation times, so each holds about
        as many observations), or the bin edges.
    percentiles:
        Percentiles of the observations compared (default 5th, 50th and 95th).
    level:
        Coverage of the simulated interval of each percentile.
    prediction_corrected:
        Scale each observation and simulation by ``PRED_bin / PRED`` (the median of the
        bin's population predictions over the observation's own; a zero prediction is left
        unscaled): a pcVPC, for designs where doses or covariates differ within a bin.

    Returns
    -------
    pandas.DataFrame
        ``bin``, ``time`` (median observation time), ``n_obs``, and for each percentile ``p``:
        ``obs_p``, ``sim_p_lower``, ``sim_p_median``, ``sim_p_upper``.
    """
    model, data = _model_and_data(fit, data)
    if not 0 < level < 1:
        raise ConfigurationError(f"level must lie in (0, 1), got {level!r}")
    sims = simulate_observations(model, data, n_sim, seed=seed)
    t = data.time[data.mask]
    obs = data.dv[data.mask]
    sim = sims[:, data.mask]
    edges = _edges(t, bins)
    which = np.clip(np.searchsorted(edges, t, side="right") - 1, 0, len(edges) - 2)
    if prediction_corrected:
        fns = compiled(model, "focei")
        p = jnp.asarray(fns.layout.pack(model))
        zeros = jnp.zeros((data.n_subjects, len(model.eta_names)))
        pred = np.asarray(fns.predictions(p, zeros, data.subjects())[0])[data.mask]
        ratio = np.ones_like(pred)
        for b in np.unique(which):
            sel = which == b
            # a zero prediction (a pre-dose sample) is left uncorrected
            ratio[sel] = np.divide(
                np.median(pred[sel]), pred[sel], out=np.ones(int(sel.sum())), where=pred[sel] != 0
            )
        obs = obs * ratio
        sim = sim * ratio
    lo_q, hi_q = 100 * (1 - level) / 2, 100 * (1 + level) / 2
    rows = []
    for b in np.unique(which):
        sel = which == b
        row: dict[str, float] = {"bin": int(b), "time": float(np.median(t[sel]))}
        row["n_obs"] = int(sel.sum())
        sim_pct = np.percentile(sim[:, sel], percentiles, axis=1)  # (n_pct, n_sim)
        for k, pct in enumerate(percentiles):
            name = f"p{pct:g}"
            row[f"obs_{name}"] = float(np.percentile(obs[sel], pct))
            lo, med, hi = np.percentile(sim_pct[k], [lo_q, 50.0, hi_q])
            row[f"sim_{name}_lower"] = float(lo)
            row[f"sim_{name}_median"] = float(med)
            row[f"sim_{name}_upper"] = float(hi)
        rows.append(row)
    return pd.DataFrame(rows)


def _model_and_data(
    fit: Any, data: PopulationData | None
) -> tuple[PopulationModel, PopulationData]:
    if isinstance(fit, PopulationModel):
        if data is None:
            raise ConfigurationError("a PopulationModel needs data= to simulate its design")
        return fit, data
    try:
        model, fitted_data = fit.model_, fit.data_
    except NotCalibratedError:
        raise
    except AttributeError:
        raise ConfigurationError(
            f"expected a fitted NLMEEstimator or a PopulationModel, got {type(fit).__name__}"
        ) from None
    return model, fitted_data if data is None else data


def _edges(t: np.ndarray, bins: int | Sequence[float]) -> np.ndarray:
    if isinstance(bins, int):
        if bins < 1:
            raise ConfigurationError(f"bins must be >= 1, got {bins}")
        edges = np.unique(np.quantile(t, np.linspace(0.0, 1.0, bins + 1)))
        if edges.size < 2:
            edges = np.array([t.min(), t.max() + 1.0])
        return edges
    edges = np.asarray(bins, dtype=float)
    if edges.ndim != 1 or edges.size < 2 or np.any(np.diff(edges) <= 0):
        raise ConfigurationError(f"bin edges must be increasing, got {list(edges)}")
    return edges
