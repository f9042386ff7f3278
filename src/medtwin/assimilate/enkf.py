"""The stochastic ensemble Kalman filter (Evensen 1994; Burgers, van Leeuwen & Evensen 1998).

Each reading updates the augmented vector of every member (transformed states and log-parameters,
see :mod:`medtwin.assimilate._ensemble`) with the ensemble's own cross-covariance and a perturbed
observation::

    K   = cov(a, y) / (var(y) + R)
    a_i = a_i + K (reading + e_i - y_i),   e_i ~ N(0, R)

Joint state-parameter estimation follows the state-augmentation approach (Anderson 2001): the
estimated parameters take a small random walk between readings, so they can follow slow drift.
"""

from __future__ import annotations

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
)
from medtwin.models._base import AbstractModel
from medtwin.models.uva_padova import UvaPadova2008
from medtwin.simulate import RK4, Adaptive, Schedule

__all__ = ["EnsembleKalmanFilter"]


def _enkf_analysis(
    core: _Core, key: Any, z: Any, theta: Any, y: Any, weights: Any, reading: Any
) -> tuple[Any, Any, Any, Any, Any, Any]:
    n = z.shape[0]
    a = jnp.concatenate([z, theta], axis=1)
    obs_sd = core.obs_sd
    da = a - a.mean(axis=0)
    dy = y - y.mean()
    var_y = dy @ dy / (n - 1)
    gain = (da.T @ dy / (n - 1)) / (var_y + obs_sd**2)
    eps = obs_sd * jax.random.normal(key, (n,))
    eps = eps - eps.mean()  # centred perturbations: the analysis mean is the Kalman mean
    a = a + jnp.outer(reading + eps - y, gain)
    k = z.shape[1]
    uniform = jnp.full(n, 1.0 / n)
    return a[:, :k], a[:, k:], uniform, jnp.arange(n), jnp.asarray(float(n)), jnp.asarray(False)


@final
class EnsembleKalmanFilter(FilterSettings):
    """Stochastic ensemble Kalman filter over the batched engine, states and parameters jointly.

    Parameters
    ----------
    model:
        The model class (or instance) whose members the ensemble holds.
    estimate:
        Parameters estimated jointly with the state, in log space with a random walk.
    obs_sd_mg_dl:
        Sensor noise SD of the observation, in its unit (mg/dL for ``Gsub``).
    n_members:
        Ensemble size N.
    seed:
        Seed of every random draw; the same seed and readings give the same ensembles.
    observation:
        The model observation the readings are of.
    param_drift:
        SD of the log-parameter random walk per square-root hour.
    process_noise:
        State noise, SD per square-root hour in the transformed space (log for masses): a number
        for every updated state or a mapping by state.  ``None``: the model's default.
    inflation:
        Multiplicative spread inflation (>= 1) of states and parameters before each analysis.
    innovation_threshold, max_inflation:
        Adaptive inflation: a reading more than ``innovation_threshold`` predicted SDs away widens
        the state spread (by at most ``max_inflation``) so the filter believes it.
    meal_fraction, meal_g, meal_states:
        Unannounced meals: on a reading that far *above* the forecast, this fraction of members
        gets a meal drawn uniformly from ``meal_g`` grams in ``meal_states`` (default for
        UVA/Padova: half in ``Qsto2``, half in ``Qgut``).  ``meal_fraction=0`` turns it off.
    update_states:
        States the analysis updates (default: every continuous state).
    transforms:
        Per-state analysis space: ``"linear"``, ``"log"`` or ``("log1p", scale)``.
    solver:
        The engine's solver (default ``RK4(dt=1)``); reading times are rounded to its grid.

    Examples
    --------
    >>> from medtwin.assimilate import EnsembleKalmanFilter
    >>> from medtwin.models import load_patients
    >>> f = EnsembleKalmanFilter(n_members=50, estimate=("Vmx",))
    >>> ens = f.init(load_patients("adult#001").params, param_sd=0.2)
    >>> ens = f.update(ens, 5.0, 140.0)
    >>> ens.t, ens.n, round(float(ens.weights.sum()), 6)
    (5.0, 50, 1.0)
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
    ) -> None:
        self._settings = {k: v for k, v in locals().items() if k not in ("self", "model")}
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

    def init(
        self,
        params: Any = None,
        x0: Mapping[str, Any] | None = None,
        t0: float = 0.0,
        *,
        param_sd: float | Mapping[str, float] | None = None,
    ) -> Ensemble:
        """The initial ensemble.

        Parameters
        ----------
        params:
            ``None`` (draw from the model's population priors), an object with
            ``.sample(n, seed)`` returning parameter arrays (a calibrated posterior), or a mapping
            of parameters (scalars, length-1 or length-N arrays; missing ones take defaults).
        x0:
            Initial states (and optionally discrete states); ``None``: each member's steady state.
        t0:
            Time of the ensemble, in the model's time unit.
        param_sd:
            Log-normal jitter added to the parameters: a number (for every estimated parameter)
            or a mapping by name, e.g. to spread a single patient's values.
        """
        return self._core.init(params, x0, t0, param_sd)

    def propagate(self, ensemble: Ensemble, t: float, schedule: Schedule | None = None) -> Ensemble:
        """Advance every member to ``t`` without a reading (a gap), with model noise.

        ``schedule`` holds events in absolute model time; only those acting on
        ``[ensemble.t, t)`` are applied, so the whole schedule may be passed every time.
        """
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
        """Propagate to ``t`` and assimilate one reading; diagnostics in the result's ``info``.

        ``t`` is rounded to the solver grid (1 min for UVA/Padova); ``schedule`` as in
        :meth:`propagate`.
        """
        value = check_reading(reading_mg_dl)
        core = self._core
        step = cached_step(("enkf", core), lambda: build_step(core, _enkf_analysis))
        return run_step(core, step, ensemble, t, value, schedule)

    def __repr__(self) -> str:
        c = self._core
        return (
            f"EnsembleKalmanFilter({c.model.__name__}, estimate={c.estimate}, "
            f"n_members={c.n_members}, seed={c.seed})"
        )
