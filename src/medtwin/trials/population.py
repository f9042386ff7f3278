"""Virtual populations for PK/PD: correlated covariates, inter-individual variability, exposures.

A :class:`PopulationModel` describes a population the way a population-PK analysis reports it:

- typical values ``theta`` of the model's parameters (defaults: the model's),
- covariates drawn from a :class:`CovariateDistribution` (marginals joined by a Gaussian copula
  with a given correlation of the underlying normal scores; for log-normal marginals this is the
  correlation of the log values),
- a :class:`~medtwin.models.pk.CovariateModel` that moves the typical values with the covariates,
- exponential inter-individual variability on the named parameters,
  ``P_i = theta_i(covariates) * exp(eta_i)`` with ``eta_i ~ MVN(0, Omega)``.

:meth:`PopulationModel.sample` draws in chunks of ``chunk_size`` subjects; chunk ``k`` draws from
its own stream ``SeedSequence(seed, spawn_key=(k,))``, so the same seed and chunk size give the
identical population whether one worker or several draw the chunks.  :func:`simulate_population`
runs a population under a regimen (closed form or the ODE engine) and :func:`exposures` summarises
AUC, Cmax and Cmin per subject over a dosing interval.

>>> import numpy as np
>>> from medtwin.models.pk import OneCompartmentOral, Regimen
>>> pop = PopulationModel(OneCompartmentOral, omega={"CL": 0.09, "V": 0.04}).sample(1000, seed=1)
>>> c = simulate_population(pop, Regimen.oral(500, every_h=12, doses=3), np.arange(0.0, 37.0))
>>> c.shape
(1000, 37)
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any, Literal

import jax
import numpy as np
import pandas as pd
from scipy import stats

from medtwin.errors import ConfigurationError, ParameterError
from medtwin.metrics.nca import exposure
from medtwin.models._base import Fixed, LogNormal, Normal, Prior, Uniform
from medtwin.models.pk import (
    CovariateModel,
    DoseTable,
    PKModel,
    Regimen,
    concentration,
    dose_kinds,
)
from medtwin.models.pk.closed_form import resolve_model

__all__ = [
    "CovariateDistribution",
    "PopulationModel",
    "VirtualPopulation",
    "exposures",
    "simulate_population",
]

DEFAULT_CHUNK_SIZE = 10_000


def _matrix(value: Any, k: int, what: str) -> np.ndarray:
    m = np.asarray(value, dtype=float)
    if m.shape != (k, k) or not np.isfinite(m).all():
        raise ParameterError(f"{what} must be a finite {k}x{k} matrix, got shape {m.shape}")
    if not np.allclose(m, m.T, rtol=0, atol=1e-12):
        raise ParameterError(f"{what} must be symmetric")
    try:
        np.linalg.cholesky(m)
    except np.linalg.LinAlgError:
        raise ParameterError(f"{what} must be positive definite") from None
    return m


@dataclass(frozen=True)
class CovariateDistribution:
    """Correlated covariates: marginals joined by a Gaussian copula.

    Marginals are ``LogNormal``, ``Normal`` (optionally truncated), ``Uniform`` or ``Fixed``;
    ``correlation`` is that of the normal scores (identity when None).

    >>> from medtwin.models import LogNormal, Normal
    >>> d = CovariateDistribution({"WT": LogNormal(70, 0.2), "AGE": Normal(50, 15, 18, 90)},
    ...                           correlation=[[1, 0.3], [0.3, 1]])
    >>> sorted(d.sample(np.random.default_rng(0), 5))
    ['AGE', 'WT']
    """

    marginals: Mapping[str, Prior]
    correlation: Any = None
    _chol: np.ndarray = field(init=False, repr=False)

    def __post_init__(self) -> None:
        k = len(self.marginals)
        if k == 0:
            raise ParameterError("a covariate distribution needs at least one covariate")
        for name, prior in self.marginals.items():
            if not isinstance(prior, (LogNormal, Normal, Uniform, Fixed)):
                raise ParameterError(f"covariate {name!r}: unsupported marginal {prior!r}")
        corr = (
            np.eye(k) if self.correlation is None else _matrix(self.correlation, k, "correlation")
        )
        if not np.allclose(np.diag(corr), 1.0):
            raise ParameterError("a correlation matrix has ones on its diagonal")
        object.__setattr__(self, "_chol", np.linalg.cholesky(corr))

    def sample(self, rng: np.random.Generator, n: int) -> dict[str, np.ndarray]:
        """Draw ``n`` covariate vectors."""
        z = rng.standard_normal((n, len(self.marginals))) @ self._chol.T
        return {name: _quantile(prior, z[:, j]) for j, (name, prior) in
                enumerate(self.marginals.items())}  # fmt: skip


def _quantile(prior: Prior, z: np.ndarray) -> np.ndarray:
    """The marginal's value at standard-normal score ``z``."""
    if isinstance(prior, LogNormal):
        return np.asarray(prior.median * np.exp(prior.sigma * z))
    if isinstance(prior, Normal):
        if math.isinf(prior.low) and math.isinf(prior.high):
            return np.asarray(prior.mean + prior.sd * z)
        a, b = (prior.low - prior.mean) / prior.sd, (prior.high - prior.mean) / prior.sd
        return np.asarray(stats.truncnorm.ppf(stats.norm.cdf(z), a, b, prior.mean, prior.sd))
    if isinstance(prior, Uniform):
        return np.asarray(prior.low + (prior.high - prior.low) * stats.norm.cdf(z))
    return np.full(z.shape, float(prior.value))


@dataclass(frozen=True)
class VirtualPopulation:
    """Sampled subjects: individual parameters, their ``eta`` and covariates (one row each)."""

    model: type[PKModel]
    params: dict[str, np.ndarray]
    eta: np.ndarray
    eta_names: tuple[str, ...]
    covariates: dict[str, np.ndarray]
    seed: int

    def __len__(self) -> int:
        return int(self.eta.shape[0])

    def to_pandas(self) -> pd.DataFrame:
        """One row per subject: covariates, then parameters."""
        return pd.DataFrame({**self.covariates, **self.params})


@dataclass(frozen=True)
class PopulationModel:
    """Typical values, covariates and inter-individual variability of a PK/PD model.

    ``omega`` is the covariance of ``eta``: a mapping of variances (a diagonal Omega, in the order
    given) or a matrix with ``eta_names`` naming its rows.
    """

    model: type[PKModel] | PKModel | str
    theta: Mapping[str, float] = field(default_factory=dict)
    omega: Any = None
    eta_names: Sequence[str] = ()
    covariates: CovariateDistribution | None = None
    covariate_model: CovariateModel | None = None

    def __post_init__(self) -> None:
        cls = resolve_model(self.model)
        object.__setattr__(self, "model", cls)
        unknown = set(self.theta) - set(cls.param_names())
        if unknown:
            raise ParameterError(f"{cls.__name__} has no parameter(s) {sorted(unknown)}")
        if isinstance(self.omega, Mapping):
            names = tuple(self.omega)
            matrix = np.diag([float(v) for v in self.omega.values()])
        elif self.omega is None:
            names, matrix = (), np.zeros((0, 0))
        else:
            names = tuple(self.eta_names)
            matrix = np.asarray(self.omega, dtype=float)
        for name in names:
            cls.param(name)  # raises for an unknown parameter
        if names:
            matrix = _matrix(matrix, len(names), "omega")
        object.__setattr__(self, "eta_names", names)
        object.__setattr__(self, "omega", matrix)
        if self.covariate_model is not None:
            available = set(self.covariates.marginals) if self.covariates is not None else set()
            missing = set(self.covariate_model.covariates) - available
            if missing:
                raise ParameterError(
                    f"the covariate model reads {sorted(missing)}, which the covariate "
                    "distribution does not draw"
                )

    def sample(
        self, n: int, *, seed: int, chunk_size: int = DEFAULT_CHUNK_SIZE, workers: int = 1
    ) -> VirtualPopulation:
        """Draw ``n`` subjects; identical for the same ``seed`` and ``chunk_size`` on any workers."""
        if not (isinstance(n, int) and n >= 1):
            raise ConfigurationError(f"n must be a positive integer, got {n!r}")
        if not (isinstance(chunk_size, int) and chunk_size >= 1):
            raise ConfigurationError(f"chunk_size must be a positive integer, got {chunk_size!r}")
        if not (isinstance(workers, int) and workers >= 1):
            raise ConfigurationError(f"workers must be a positive integer, got {workers!r}")
        starts = list(range(0, n, chunk_size))
        with ThreadPoolExecutor(max_workers=workers) as pool:
            parts = list(pool.map(lambda k: self._chunk(seed, k, min(chunk_size, n - starts[k])),
                                  range(len(starts))))  # fmt: skip
        cat = {key: np.concatenate([part[key] for part in parts]) for key in parts[0]}
        cls = self.model
        assert isinstance(cls, type)
        names = self.eta_names
        return VirtualPopulation(
            model=cls,
            params={p: cat[f"param:{p}"] for p in cls.param_names()},
            eta=np.stack([cat[f"eta:{e}"] for e in names], axis=1) if names else np.zeros((n, 0)),
            eta_names=tuple(names),
            covariates={c: cat[f"cov:{c}"] for c in
                        (self.covariates.marginals if self.covariates else ())},
            seed=seed,
        )  # fmt: skip

    def _chunk(self, seed: int, index: int, size: int) -> dict[str, np.ndarray]:
        rng = np.random.default_rng(np.random.SeedSequence(seed, spawn_key=(index,)))
        cls = self.model
        assert isinstance(cls, type)
        out: dict[str, np.ndarray] = {}
        covs = self.covariates.sample(rng, size) if self.covariates is not None else {}
        typical = {p: np.full(size, float(self.theta.get(p, cls.param(p).default)))
                   for p in cls.param_names()}  # fmt: skip
        if self.covariate_model is not None:
            typical = {k: np.asarray(v) for k, v in
                       self.covariate_model.apply(typical, covs).items()}  # fmt: skip
        names = self.eta_names
        if names:
            chol = np.linalg.cholesky(self.omega)
            eta = rng.standard_normal((size, len(names))) @ chol.T
            for j, name in enumerate(names):
                typical[name] = typical[name] * np.exp(eta[:, j])
                out[f"eta:{name}"] = eta[:, j]
        out |= {f"param:{k}": np.asarray(v, dtype=float) for k, v in typical.items()}
        out |= {f"cov:{k}": v for k, v in covs.items()}
        return out


def simulate_population(
    population: VirtualPopulation,
    regimen: Regimen | DoseTable,
    t_h: Any,
    *,
    method: Literal["closed_form", "ode"] = "closed_form",
    chunk_size: int | None = None,
    workers: int | None = None,
    **ode_options: Any,
) -> np.ndarray:
    """Central concentrations (mg/L), ``(N, T)``, of every subject under ``regimen``.

    ``method="closed_form"`` (linear models) evaluates :func:`~medtwin.models.pk.concentration` in
    compiled chunks on ``workers`` threads (default: the CPU cores); ``"ode"`` runs
    :func:`~medtwin.simulate.simulate_doses` (any PK/PD model; ``ode_options`` such as
    ``solver=`` pass through).  Either way the result does not depend on ``chunk_size`` or
    ``workers``.
    """
    cls = population.model
    n = len(population)
    t = np.asarray(t_h, dtype=float)
    if method == "ode":
        from medtwin.simulate import simulate_doses

        sol = simulate_doses(
            cls, regimen, t, params=population.params, chunk_size=chunk_size, **ode_options
        )
        return np.asarray(sol["Cc"])
    if method != "closed_form":
        raise ConfigurationError(f"method must be 'closed_form' or 'ode', got {method!r}")
    if ode_options:
        raise ConfigurationError(f"{sorted(ode_options)} apply to method='ode' only")
    doses = regimen.to_doses(cls) if isinstance(regimen, Regimen) else regimen
    size = min(chunk_size or DEFAULT_CHUNK_SIZE, n)
    kinds = dose_kinds(cls, doses)  # from the concrete table: the compiled code skips the rest
    run = jax.jit(lambda p, d, tt: concentration(cls, p, d, tt, kinds=kinds))
    out = np.empty((n, t.shape[-1]))

    def one(start: int) -> None:
        stop = min(start + size, n)
        idx = np.arange(start, start + size).clip(max=n - 1)  # pad: one compiled shape
        p = {k: v[idx] for k, v in population.params.items()}
        d = doses.subjects(idx) if doses.batch_shape else doses
        tt = t[idx] if t.ndim == 2 else t
        out[start:stop] = np.asarray(run(p, d, tt))[: stop - start]

    from medtwin.simulate._engine import _workers

    with ThreadPoolExecutor(max_workers=workers or _workers()) as pool:
        list(pool.map(one, range(0, n, size)))
    return out


def exposures(
    population: VirtualPopulation,
    regimen: Regimen,
    *,
    start_h: float | None = None,
    end_h: float | None = None,
    n_points: int = 97,
    method: Literal["closed_form", "ode"] = "closed_form",
) -> pd.DataFrame:
    """AUC (mg.h/L), Cmax, Tmax and Cmin (mg/L) of each subject over a dosing interval.

    The default interval is the last one: from the last dose to one dosing interval later.
    Concentrations come from ``n_points`` equally spaced times across it.
    """
    times = regimen.dose_times_h()
    if start_h is None:
        start_h = float(times[-1])
    if end_h is None:
        gaps = np.diff(times)
        every = [a.every_h for a in regimen.administrations if a.every_h > 0]
        end_h = start_h + (float(gaps[-1]) if gaps.size else (every[0] if every else 24.0))
    if not end_h > start_h:
        raise ParameterError(f"the exposure interval [{start_h}, {end_h}] h is empty")
    t = np.linspace(start_h, end_h, n_points)
    c = simulate_population(population, regimen, t, method=method)
    frame = exposure(t, c)
    frame.columns = ["auc_mg_h_l", "cmax_mg_l", "tmax_h", "cmin_mg_l"]
    return frame
