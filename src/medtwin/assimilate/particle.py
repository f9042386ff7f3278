"""The bootstrap particle filter with systematic resampling and roughening (Gordon et al. 1993).

Members are propagated by the model (with process noise and a log-parameter random walk), then
reweighted by the Gaussian likelihood of the reading.  When the effective sample size falls below
``resample_threshold * N`` the ensemble is resampled systematically (Kitagawa 1996) and its
estimated (log) parameters roughened: each gets independent noise of SD ``K E_j N^(-1/d)``, with
``E_j`` its range among the resampled members and ``d`` the number of estimated parameters, which
keeps them from collapsing onto a few values.
"""

from __future__ import annotations

import dataclasses
import functools
from collections import defaultdict
from collections.abc import Mapping, Sequence
from typing import Any, final

import jax
import jax.numpy as jnp

from medtwin.assimilate._ensemble import (
    Ensemble,
    FilterSettings,
    _Core,
    build_step,
    cached_step,
    check_reading,
    run_step,
    run_steps,
)
from medtwin.errors import ConfigurationError, ParameterError, SimulationError
from medtwin.models._base import AbstractModel
from medtwin.models.uva_padova import UvaPadova2008
from medtwin.simulate import RK4, Adaptive, Schedule

__all__ = ["ParticleFilter", "systematic_resample", "update_many"]


def systematic_resample(key: Any, weights: Any) -> Any:
    """Indices of a systematic resample of normalised ``weights`` (one uniform draw).

    >>> import jax, jax.numpy as jnp
    >>> systematic_resample(jax.random.PRNGKey(0), jnp.array([0.0, 1.0, 0.0])).tolist()
    [1, 1, 1]
    """
    n = weights.shape[0]
    u = (jax.random.uniform(key) + jnp.arange(n)) / n
    cdf = jnp.cumsum(weights)
    cdf = cdf / cdf[-1]
    return jnp.clip(jnp.searchsorted(cdf, u, side="right"), 0, n - 1)


def _pf_analysis(threshold: float, roughening: float) -> Any:
    def analysis(
        core: _Core, key: Any, z: Any, theta: Any, y: Any, weights: Any, reading: Any
    ) -> tuple[Any, Any, Any, Any, Any, Any]:
        n = z.shape[0]
        k_res, k_rough = jax.random.split(key)
        logw = jnp.log(jnp.maximum(weights, 1e-300)) - 0.5 * ((reading - y) / core.obs_sd) ** 2
        w = jnp.exp(logw - logw.max())
        w = w / w.sum()
        ess = 1.0 / jnp.sum(w**2)
        resample = ess < threshold * n
        idx = jnp.where(resample, systematic_resample(k_res, w), jnp.arange(n))
        z, theta = z[idx], theta[idx]
        # Roughen the static parameters only: the states already get process noise when they are
        # propagated, and roughening weakly observed states (the gut) by their own range lets
        # that range grow every resampling, without bound.
        spread = theta.max(axis=0) - theta.min(axis=0)
        sd = roughening * spread * n ** (-1.0 / max(theta.shape[1], 1))
        theta = theta + jnp.where(resample, 1.0, 0.0) * sd * jax.random.normal(k_rough, theta.shape)
        new_w = jnp.where(resample, 1.0 / n, w)
        return z, theta, new_w, idx, ess, resample

    return analysis


@final
class ParticleFilter(FilterSettings):
    """Bootstrap particle filter over the batched engine, states and parameters jointly.

    Takes the same settings as :class:`~medtwin.assimilate.EnsembleKalmanFilter`, plus

    Parameters
    ----------
    resample_threshold:
        Resample when the effective sample size falls below this fraction of N.
    roughening:
        Gordon's roughening constant K (0 turns roughening off).

    Attributes
    ----------
    ess_:
        Effective sample size at the last update (before resampling), or None before any.

    Examples
    --------
    >>> from medtwin.assimilate import ParticleFilter
    >>> from medtwin.models import load_patients
    >>> f = ParticleFilter(n_members=50, estimate=("Vmx",))
    >>> ens = f.init(load_patients("adult#001").params, param_sd=0.2)
    >>> ens = f.update(ens, 5.0, 140.0)
    >>> round(float(ens.weights.sum()), 6), f.ess_ <= 50
    (1.0, True)
    """

    def __init__(
        self,
        model: AbstractModel | type[AbstractModel] = UvaPadova2008,
        estimate: Sequence[str] = ("Vmx", "kp1", "kabs"),
        obs_sd_mg_dl: float = 8.0,
        *,
        n_members: int = 500,
        seed: int = 0,
        observation: str | None = None,
        param_drift: float = 0.02,
        process_noise: float | Mapping[str, float] | None = None,
        inflation: float = 1.0,
        innovation_threshold: float = 2.5,
        max_inflation: float = 3.0,
        meal_fraction: float = 0.25,
        meal_g: tuple[float, float] = (10.0, 60.0),
        meal_states: Sequence[str] | None = None,
        update_states: Sequence[str] | None = None,
        transforms: Mapping[str, str | tuple[str, float]] | None = None,
        solver: RK4 | Adaptive | None = None,
        resample_threshold: float = 0.5,
        roughening: float = 0.05,
    ) -> None:
        self._settings = {k: v for k, v in locals().items() if k not in ("self", "model")}
        if not (0.0 <= resample_threshold <= 1.0):
            raise ConfigurationError(
                f"resample_threshold must lie in [0, 1], got {resample_threshold!r}"
            )
        if not roughening >= 0:
            raise ConfigurationError(f"roughening must be >= 0, got {roughening!r}")
        self._core = _Core.build(
            model,
            estimate=estimate,
            observation=observation,
            obs_sd=obs_sd_mg_dl,
            n_members=n_members,
            seed=seed,
            param_drift=param_drift,
            process_noise=process_noise,
            inflation=inflation,
            innovation_threshold=innovation_threshold,
            max_inflation=max_inflation,
            meal_fraction=meal_fraction,
            meal_g=meal_g,
            meal_states=meal_states,
            update_states=update_states,
            transforms=transforms,
            solver=solver,
        )
        self._resample_threshold = float(resample_threshold)
        self._roughening = float(roughening)
        self.ess_: float | None = None

    def init(
        self,
        params: Any = None,
        x0: Mapping[str, Any] | None = None,
        t0: float = 0.0,
        *,
        param_sd: float | Mapping[str, float] | None = None,
    ) -> Ensemble:
        """The initial ensemble, uniformly weighted (see ``EnsembleKalmanFilter.init``)."""
        return self._core.init(params, x0, t0, param_sd)

    def propagate(self, ensemble: Ensemble, t: float, schedule: Schedule | None = None) -> Ensemble:
        """Advance every particle to ``t`` without a reading; weights are kept."""
        core = self._core
        step = cached_step(("propagate", core), lambda: build_step(core, None))
        return run_step(core, step, ensemble, t, float("nan"), schedule)

    def update(
        self,
        ensemble: Ensemble,
        t: float,
        reading_mg_dl: float,
        schedule: Schedule | None = None,
    ) -> Ensemble:
        """Propagate to ``t``, reweight by the reading, resample and roughen when ESS is low."""
        value = check_reading(reading_mg_dl)
        core = self._core
        key = ("pf", core, self._resample_threshold, self._roughening)
        analysis = _pf_analysis(self._resample_threshold, self._roughening)
        step = cached_step(key, lambda: build_step(core, analysis))
        out = run_step(core, step, ensemble, t, value, schedule)
        self.ess_ = out.info.ess if out.info is not None else None
        return out

    def __repr__(self) -> str:
        c = self._core
        return (
            f"ParticleFilter({c.model.__name__}, estimate={c.estimate}, "
            f"n_members={c.n_members}, seed={c.seed})"
        )


def _vmapped_step(core: _Core, analysis: Any) -> Any:
    return jax.vmap(build_step(core, analysis))


def update_many(
    filters: Sequence[Any],
    ensembles: Sequence[Ensemble],
    times: Sequence[float],
    readings_mg_dl: Sequence[float],
    schedules: Sequence[Schedule | None],
) -> list[Ensemble]:
    """``filters[i].update(ensembles[i], times[i], readings_mg_dl[i], schedules[i])`` for every i.

    Particle filters of one configuration (seeds aside) whose ensembles advance by the same time
    are updated together: one engine run over all their members, each patient on its own clock
    and schedule, and one vectorised filter step.  The results equal the one-by-one updates
    (same seeds, to floating-point rounding).  Any other filter, or a group of one, is updated
    on its own.
    """
    n = len(filters)
    if not (len(ensembles) == len(times) == len(readings_mg_dl) == len(schedules) == n):
        raise ConfigurationError(
            "update_many takes one ensemble, time, reading, schedule per filter"
        )
    out: list[Ensemble | None] = [None] * n
    groups: defaultdict[Any, list[int]] = defaultdict(list)
    for i, f in enumerate(filters):
        ens = ensembles[i]
        if not isinstance(f, ParticleFilter) or not isinstance(ens, Ensemble):
            groups[("alone", i)].append(i)
            continue
        core = f._core
        n_steps = round((float(times[i]) - ens.t) / float(core.solver.dt))
        if ens.model is not core.model or ens.n != core.n_members or n_steps < 1:
            groups[("alone", i)].append(i)
            continue
        key = ("pf-many", dataclasses.replace(core, seed=0), f._resample_threshold, f._roughening)
        groups[(key, n_steps)].append(i)
    for (key, _), members in groups.items():
        if len(members) == 1 or key == "alone":
            for i in members:
                out[i] = filters[i].update(ensembles[i], times[i], readings_mg_dl[i], schedules[i])
            continue
        f0 = filters[members[0]]
        analysis = _pf_analysis(f0._resample_threshold, f0._roughening)
        core0 = f0._core
        step = cached_step(key, functools.partial(_vmapped_step, core0, analysis))
        values = [check_reading(readings_mg_dl[i]) for i in members]
        try:
            done = run_steps(
                [filters[i]._core for i in members],
                step,
                [ensembles[i] for i in members],
                [float(times[i]) for i in members],
                values,
                [schedules[i] for i in members],
            )
        except (SimulationError, ParameterError):
            # one patient's members went wrong: update one by one, so the error names it
            done = [
                filters[i].update(ensembles[i], times[i], readings_mg_dl[i], schedules[i])
                for i in members
            ]
        for i, ens in zip(members, done, strict=True):
            out[i] = ens
            filters[i].ess_ = ens.info.ess if ens.info is not None else None
    return [e for e in out if e is not None]
