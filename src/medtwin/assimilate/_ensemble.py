"""The ensemble both filters carry, and what they share: initialisation, propagation, noise.

A filter's ensemble is N members, each a full model state (continuous and discrete states, as
:attr:`~medtwin.simulate.Solution.final_state` holds them) and a full parameter vector, pushed
through the batched engine between readings.  The analysis works on an *augmented vector* per
member: the updated states in a transformed space (log for positive masses, ``log1p(x/scale)`` for
gut contents that are often zero, linear for signed states) and the estimated parameters in log
space, so that an analysis can never make a mass negative or a parameter non-positive.

Readings that disagree with the forecast far more than its spread allows (an unlogged meal or
bolus, a sensor fault) are handled in two ways shared by both filters:

- *adaptive inflation*: when ``|innovation| > innovation_threshold * sqrt(var_pred + R)`` the
  spread of the updated states is widened about the mean by ``lambda`` such that
  ``lambda^2 var_pred + R = innovation^2`` (at most ``max_inflation``), so the reading is
  believed instead of ignored;
- *unannounced-meal injection*: when the reading is that far *above* the forecast, a random
  fraction ``meal_fraction`` of the members receives an unlogged meal of ``meal_g`` grams in the
  gut (``meal_states``); later readings then weight or pull the ensemble toward the members whose
  glucose keeps rising, so the filter learns the meal instead of only chasing the reading.
"""

from __future__ import annotations

import dataclasses
import itertools
import math
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from medtwin.errors import ConfigurationError, ParameterError, ScheduleError
from medtwin.models._base import AbstractModel, Fixed, LogNormal
from medtwin.simulate import RK4, Adaptive, Event, Schedule, simulate

__all__ = ["Ensemble", "UpdateInfo", "run_steps", "simulate_members"]

# Transform codes of the augmented vector.
_LINEAR, _LOG, _LOG1P = 0, 1, 2
_TINY = 1e-12

# Per-model defaults: transforms (name -> (kind, scale)), process noise (sd per sqrt(hour) in the
# transformed space) and where an unannounced meal lands.  A model without an entry gets linear
# transforms, no process noise and no meal injection; every setting can be given explicitly.
_MAX_GUT_MG = 200_000.0
"""Cap on each gut compartment of a UVA/Padova member (mg of glucose)."""

_MODEL_DEFAULTS: dict[str, dict[str, Any]] = {
    "UvaPadova2008": {
        "transforms": {
            "Qsto1": ("log1p", 1000.0),
            "Qsto2": ("log1p", 1000.0),
            "Qgut": ("log1p", 1000.0),
            "X": ("linear", 1.0),
        },
        "default_transform": ("log", 1.0),
        "process_noise": {"Gp": 0.04, "Gt": 0.04, "Gs": 0.02, "X": 2.0},
        "meal_states": ("Qsto2", "Qgut"),
        "meal_mg_per_g": 1000.0,
        # insulin action X = I - Ib cannot fall below -Ib (no negative plasma insulin); a linear
        # analysis could push it there and make glucose uptake negative
        # X below -Ib means negative insulin; below -Vm0/Vmx it makes glucose uptake negative,
        # and such members run away to thousands of mg/dL within half an hour of a forecast.
        # The gut is barely observed, so process noise lets it random-walk in log space; no one
        # carries more than a few hundred grams of carbohydrate (cap: 200 g per compartment).
        "valid": lambda x, p: {
            "X": jnp.maximum(x["X"], jnp.maximum(-p["Ib"], -p["Vm0"] / p["Vmx"])),
            "Qsto1": jnp.minimum(x["Qsto1"], _MAX_GUT_MG),
            "Qsto2": jnp.minimum(x["Qsto2"], _MAX_GUT_MG),
            "Qgut": jnp.minimum(x["Qgut"], _MAX_GUT_MG),
        },
    },
}


@dataclasses.dataclass(frozen=True, slots=True)
class UpdateInfo:
    """Diagnostics of one filter update (or of a propagation without a reading).

    Attributes
    ----------
    t:
        Time of the update, in the model's time unit.
    reading:
        The observed value (NaN after a propagation without a reading).
    predicted_mean, predicted_sd:
        Mean and spread of the ensemble's predicted observation before the analysis (the spread
        excludes the sensor noise).
    innovation:
        ``reading - predicted_mean``.
    normalized_innovation:
        The innovation over ``sqrt(predicted_sd^2 + obs_sd^2)``; beyond ~3 the forecast missed.
    inflation:
        The spread factor applied to the states before the analysis (fixed times adaptive).
    ess:
        Effective sample size after weighting (before any resampling); N for the EnKF.
    resampled:
        Whether the particle filter resampled (always False for the EnKF).
    n_meal_members:
        How many members received an unannounced meal in this update.
    """

    t: float
    reading: float
    predicted_mean: float
    predicted_sd: float
    innovation: float
    normalized_innovation: float
    inflation: float
    ess: float
    resampled: bool
    n_meal_members: int


@dataclasses.dataclass(frozen=True, slots=True, eq=False)
class Ensemble:
    """N weighted members of a model: states and parameters at time ``t``.

    Attributes
    ----------
    model:
        The model class the members belong to.
    t:
        Current time in the model's time unit.
    states:
        Name -> (N,) array for every state and discrete state (as ``Solution.final_state``), so
        ``simulate(model, schedule, t, x0=ens.states, params=ens.params)`` forecasts from here.
    params:
        Name -> (N,) array for every model parameter.
    weights:
        (N,) normalised weights (uniform for the ensemble Kalman filter).
    step:
        How many propagations/updates produced this ensemble (seeds the next one's randomness).
    info:
        Diagnostics of the update that produced this ensemble (None after ``init``).
    """

    model: type[AbstractModel]
    t: float
    states: dict[str, np.ndarray]
    params: dict[str, np.ndarray]
    weights: np.ndarray
    step: int = 0
    info: UpdateInfo | None = None

    @property
    def n(self) -> int:
        """The number of members."""
        return int(self.weights.shape[0])

    def observation(self, name: str | None = None) -> np.ndarray:
        """Each member's noise-free observation ``name`` (default: the model's first), shape (N,)."""
        obs = self.model.observation(name)
        return np.asarray(obs.evaluate(self.states, self.params), dtype=float)

    def _values(self, name: str) -> np.ndarray:
        if name in self.states:
            return self.states[name]
        if name in self.params:
            return self.params[name]
        return self.observation(name)

    def mean(self, names: Sequence[str] | None = None) -> dict[str, float]:
        """Weighted means of states, parameters and observations (default: states and params)."""
        names = list(self.states) + list(self.params) if names is None else list(names)
        return {k: float(np.dot(self.weights, self._values(k))) for k in names}

    def quantiles(
        self,
        q: Sequence[float] = (0.05, 0.5, 0.95),
        names: Sequence[str] | None = None,
    ) -> dict[str, np.ndarray]:
        """Weighted quantiles ``q`` of each name (default: the model's first observation).

        Returns
        -------
        dict
            Name -> array of ``len(q)`` values, by inverting the weighted empirical CDF with
            linear interpolation between the members' mid-points.
        """
        qs = np.asarray(q, dtype=float)
        if np.any((qs < 0) | (qs > 1)):
            raise ConfigurationError(f"quantile levels must lie in [0, 1], got {list(qs)}")
        names = [self.model.observation().name] if names is None else list(names)
        out = {}
        for k in names:
            v = self._values(k)
            order = np.argsort(v)
            w = self.weights[order]
            cdf = np.cumsum(w) - 0.5 * w
            out[k] = np.interp(qs, cdf, v[order])
        return out


# ---------------------------------------------------------------------------------------------
# Settings and the shared machinery of both filters
# ---------------------------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class _Core:
    """Validated, hashable settings shared by both filters, and their common steps."""

    model: type[AbstractModel]
    estimate: tuple[str, ...]
    observation: str
    obs_sd: float
    n_members: int
    seed: int
    param_drift: float
    inflation: float
    innovation_threshold: float
    max_inflation: float
    meal_fraction: float
    meal_g: tuple[float, float]
    meal_states: tuple[str, ...]
    meal_scale: float
    valid: Callable[[Mapping[str, Any], Mapping[str, Any]], dict[str, Any]] | None
    updated: tuple[str, ...]
    transforms: tuple[tuple[int, float], ...]
    state_noise: tuple[float, ...]
    param_bounds: tuple[tuple[float, float], ...]
    solver: RK4 | Adaptive

    @classmethod
    def build(
        cls,
        model: AbstractModel | type[AbstractModel],
        *,
        estimate: Sequence[str],
        observation: str | None,
        obs_sd: float,
        n_members: int,
        seed: int,
        param_drift: float,
        process_noise: float | Mapping[str, float] | None,
        inflation: float,
        innovation_threshold: float,
        max_inflation: float,
        meal_fraction: float,
        meal_g: tuple[float, float],
        meal_states: Sequence[str] | None,
        update_states: Sequence[str] | None,
        transforms: Mapping[str, str | tuple[str, float]] | None,
        solver: RK4 | Adaptive | None,
    ) -> _Core:
        mcls = model if isinstance(model, type) else type(model)
        if not (isinstance(mcls, type) and issubclass(mcls, AbstractModel)):
            raise ConfigurationError(f"model must be an AbstractModel, got {model!r}")
        defaults = _MODEL_DEFAULTS.get(mcls.__name__, {})
        obs = mcls.observation(observation)
        state_names = mcls.state_names()
        _positive("obs_sd", obs_sd)
        if not (isinstance(n_members, int) and n_members >= 2):
            raise ConfigurationError(f"n_members must be an integer >= 2, got {n_members!r}")
        for name, v in (("param_drift", param_drift), ("meal_fraction", meal_fraction)):
            if not (math.isfinite(v) and v >= 0):
                raise ConfigurationError(f"{name} must be >= 0, got {v!r}")
        if meal_fraction > 1:
            raise ConfigurationError(f"meal_fraction must be <= 1, got {meal_fraction!r}")
        for name, v in (("inflation", inflation), ("max_inflation", max_inflation)):
            if not (math.isfinite(v) and v >= 1):
                raise ConfigurationError(f"{name} must be >= 1, got {v!r}")
        _positive("innovation_threshold", innovation_threshold)
        lo, hi = (float(meal_g[0]), float(meal_g[1]))
        if not (0 <= lo <= hi and math.isfinite(hi)):
            raise ConfigurationError(
                f"meal_g must be (low, high) grams, 0 <= low <= high: {meal_g}"
            )

        bounds = []
        for name in estimate:
            decl = mcls.param(name)  # raises for an unknown name
            if isinstance(decl.prior, Fixed):
                raise ConfigurationError(
                    f"{mcls.__name__}.{name} is fixed (equal in every patient); estimate a "
                    "parameter that varies"
                )
            if isinstance(decl.prior, LogNormal):
                # a random walk may wander, but not beyond 2.5 population SDs of the prior: further
                # out lie no patients, and rates fast enough to leave the 1-minute RK4 stable
                bounds.append(
                    (
                        math.log(decl.prior.median) - 2.5 * decl.prior.sigma,
                        math.log(decl.prior.median) + 2.5 * decl.prior.sigma,
                    )
                )
            else:
                bounds.append((-math.inf, math.inf))
        if len(set(estimate)) != len(estimate):
            raise ConfigurationError(f"estimate names a parameter twice: {list(estimate)}")

        updated = tuple(state_names if update_states is None else update_states)
        for s in updated:
            if s not in state_names:
                raise ConfigurationError(
                    f"{mcls.__name__} has no state {s!r} to update; states: {', '.join(state_names)}"
                )
        given = dict(defaults.get("transforms", {}))
        given.update(dict(transforms or {}))
        default_tf = defaults.get("default_transform", ("linear", 1.0))
        codes = {"linear": _LINEAR, "log": _LOG, "log1p": _LOG1P}
        tfs = []
        for s in updated:
            spec = given.get(s, default_tf)
            kind, scale = (spec, 1.0) if isinstance(spec, str) else (spec[0], float(spec[1]))
            if kind not in codes or not (scale > 0 and math.isfinite(scale)):
                raise ConfigurationError(
                    f"transform of {s!r} must be 'linear', 'log' or ('log1p', scale > 0), got {spec!r}"
                )
            tfs.append((codes[kind], scale))

        if process_noise is None:
            noise_map: Mapping[str, float] = defaults.get("process_noise", {})
        elif isinstance(process_noise, Mapping):
            noise_map = process_noise
        else:
            noise_map = dict.fromkeys(updated, float(process_noise))
        unknown = set(noise_map) - set(updated)
        if process_noise is not None and unknown:
            raise ConfigurationError(
                f"process_noise names states that are not updated: {sorted(unknown)}"
            )
        noise = tuple(float(noise_map.get(s, 0.0)) for s in updated)
        if any(not (math.isfinite(v) and v >= 0) for v in noise):
            raise ConfigurationError(f"process_noise must be >= 0, got {dict(noise_map)}")

        meal = tuple(defaults.get("meal_states", ()) if meal_states is None else meal_states)
        for s in meal:
            if s not in state_names:
                raise ConfigurationError(f"meal state {s!r} is not a state of {mcls.__name__}")
        solver = RK4() if solver is None else solver
        if not isinstance(solver, (RK4, Adaptive)):
            raise ConfigurationError(f"solver must be RK4 or Adaptive, got {solver!r}")
        return cls(
            model=mcls,
            estimate=tuple(estimate),
            observation=obs.name,
            obs_sd=float(obs_sd),
            n_members=n_members,
            seed=int(seed),
            param_drift=float(param_drift),
            inflation=float(inflation),
            innovation_threshold=float(innovation_threshold),
            max_inflation=float(max_inflation),
            meal_fraction=float(meal_fraction) if meal else 0.0,
            meal_g=(lo, hi),
            meal_states=meal,
            meal_scale=float(defaults.get("meal_mg_per_g", 1.0)),
            valid=defaults.get("valid"),
            updated=updated,
            transforms=tuple(tfs),
            state_noise=noise,
            param_bounds=tuple(bounds),
            solver=solver,
        )

    # -- initialisation -------------------------------------------------------------------------

    def init(
        self,
        source: Any,
        x0: Mapping[str, Any] | None,
        t0: float,
        param_sd: float | Mapping[str, float] | None,
    ) -> Ensemble:
        n = self.n_members
        mcls = self.model
        if source is None:
            raw: Mapping[str, Any] = mcls.sample_params(n, seed=self.seed)
        elif hasattr(source, "sample") and not isinstance(source, Mapping):
            raw = source.sample(n, seed=self.seed)
        elif isinstance(source, Mapping):
            raw = source
        else:
            raise ConfigurationError(
                "init takes None (the population prior), an object with .sample(n, seed) or a "
                f"mapping of parameter arrays; got {type(source).__name__}"
            )
        unknown = set(raw) - set(mcls.param_names())
        if unknown:
            raise ParameterError(f"{mcls.__name__} has no parameter(s) {sorted(unknown)}")
        params = {
            p.name: _broadcast(raw.get(p.name, p.default), n, f"params[{p.name!r}]")
            for p in mcls.params
        }
        if param_sd:
            rng = np.random.default_rng([self.seed, 1])
            sd_map = (
                dict(param_sd)
                if isinstance(param_sd, Mapping)
                else dict.fromkeys(self.estimate, float(param_sd))
            )
            for k, sd in sd_map.items():
                mcls.param(k)
                params[k] = params[k] * np.exp(sd * rng.standard_normal(n))
        for k, v in params.items():
            decl = mcls.param(k)
            if decl.prior is not None and not np.all(decl.prior.contains(v)):
                raise ParameterError(f"parameter {k!r} has values outside its prior's support")
        for k, (lo, hi) in zip(self.estimate, self.param_bounds, strict=True):
            params[k] = np.exp(np.clip(np.log(params[k]), lo, hi))
        mdl = mcls()
        if x0 is None:
            computed = mdl.initial_state({k: jnp.asarray(v) for k, v in params.items()})
            states = {k: np.asarray(v, dtype=float) for k, v in computed.items()}
        else:
            states = {s: _broadcast(x0[s], n, f"x0[{s!r}]") for s in x0}
        missing = set(mcls.state_names()) - set(states)
        if missing:
            raise ParameterError(f"x0 lacks state(s) {sorted(missing)} of {mcls.__name__}")
        discrete = mdl.initial_discrete_state(
            {k: jnp.asarray(v) for k, v in states.items()},
            {k: jnp.asarray(v) for k, v in params.items()},
        )
        for k, v in discrete.items():
            states.setdefault(k, np.asarray(v, dtype=float))
        return Ensemble(mcls, float(t0), states, params, np.full(n, 1.0 / n))

    # -- propagation ----------------------------------------------------------------------------

    def advance(self, ens: Ensemble, t: float, schedule: Schedule | None) -> tuple[float, dict]:
        """Run every member from ``ens.t`` to ``t`` (rounded to the solver grid) with no noise."""
        if not math.isfinite(t):
            raise ConfigurationError(f"time must be finite, got {t!r}")
        step = float(self.solver.dt)
        n_steps = round((t - ens.t) / step)
        if n_steps < 0:
            raise ConfigurationError(
                f"time {t:g} is before the ensemble's time {ens.t:g}; feed readings in time order"
            )
        if n_steps == 0:
            return ens.t, ens.states
        t_new = ens.t + n_steps * step
        window = _window(self.model, schedule, ens.t, t_new, step)
        sol = simulate(
            self.model,
            window,
            np.array([ens.t, t_new]),
            params=ens.params,
            x0=ens.states,
            solver=self.solver,
            record=(),
        )
        return t_new, sol.final_state

    # -- the jitted pieces ----------------------------------------------------------------------

    @property
    def inflatable(self) -> Any:
        """Per updated state: whether adaptive inflation stretches it (not the log1p gut)."""
        return jnp.asarray([kind != _LOG1P for kind, _ in self.transforms])

    def to_z(self, states: Mapping[str, Any]) -> Any:
        cols = []
        for s, (kind, scale) in zip(self.updated, self.transforms, strict=True):
            x = states[s]
            if kind == _LOG:
                cols.append(jnp.log(jnp.maximum(x, _TINY)))
            elif kind == _LOG1P:
                cols.append(jnp.log1p(jnp.maximum(x, 0.0) / scale))
            else:
                cols.append(x)
        return jnp.stack(cols, axis=1)

    def from_z(self, z: Any) -> dict[str, Any]:
        out = {}
        for j, (s, (kind, scale)) in enumerate(zip(self.updated, self.transforms, strict=True)):
            if kind == _LOG:
                out[s] = jnp.exp(jnp.clip(z[:, j], -30.0, 30.0))
            elif kind == _LOG1P:
                out[s] = scale * jnp.expm1(jnp.clip(z[:, j], 0.0, 30.0))
            else:
                out[s] = z[:, j]
        return out

    def to_theta(self, params: Mapping[str, Any]) -> Any:
        if not self.estimate:
            return jnp.zeros((params[self.model.params[0].name].shape[0], 0))
        return jnp.stack([jnp.log(params[k]) for k in self.estimate], axis=1)

    def from_theta(self, theta: Any) -> dict[str, Any]:
        return {
            k: jnp.exp(jnp.clip(theta[:, j], lo, hi))
            for j, (k, (lo, hi)) in enumerate(zip(self.estimate, self.param_bounds, strict=True))
        }

    def observe(
        self, z: Any, theta: Any, states: Mapping[str, Any], params: Mapping[str, Any]
    ) -> Any:
        x = dict(states) | self.from_z(z)
        p = dict(params) | self.from_theta(theta)
        return self.model.observation(self.observation).evaluate(x, p)

    def add_noise(self, key: Any, z: Any, theta: Any, dt: Any) -> tuple[Any, Any]:
        """Model error over ``dt``: process noise on states, a random walk on log-parameters."""
        k1, k2 = jax.random.split(key)
        hours = jnp.maximum(dt, 0.0) / 60.0 if self.model.time_unit == "min" else dt
        sd = jnp.asarray(self.state_noise) * jnp.sqrt(hours)
        z = z + sd * jax.random.normal(k1, z.shape)
        theta = theta + self.param_drift * jnp.sqrt(hours) * jax.random.normal(k2, theta.shape)
        return z, theta

    def inject_meals(self, key: Any, states: dict[str, Any], trigger: Any) -> tuple[dict, Any]:
        """Give a random ``meal_fraction`` of members an unlogged meal when ``trigger`` is set.

        Only members whose gut holds less than the largest injected meal are eligible: during a
        long rise every reading is a surprise, and without that cap the same members would
        collect meal after meal until they explode.
        """
        if not self.meal_states or self.meal_fraction <= 0:
            return states, jnp.asarray(0)
        k1, k2 = jax.random.split(key)
        n = states[self.meal_states[0]].shape[0]
        gut = sum(states[s] for s in self.meal_states)
        room = gut < self.meal_g[1] * self.meal_scale
        chosen = (jax.random.uniform(k1, (n,)) < self.meal_fraction) & trigger & room
        grams = jax.random.uniform(k2, (n,), minval=self.meal_g[0], maxval=self.meal_g[1])
        amount = jnp.where(chosen, grams * self.meal_scale / len(self.meal_states), 0.0)
        out = dict(states)
        for s in self.meal_states:
            out[s] = out[s] + amount
        return out, chosen.sum()


def _broadcast(v: Any, n: int, where: str) -> np.ndarray:
    a = np.asarray(v, dtype=float)
    if a.ndim == 1 and a.size == 1:
        a = a[0]
    if a.ndim > 1 or (a.ndim == 1 and a.size != n):
        raise ParameterError(
            f"{where} has shape {a.shape}; give a scalar, a length-1 array or n_members={n} values"
        )
    out = np.broadcast_to(a, (n,)).copy()
    if not np.isfinite(out).all():
        raise ParameterError(f"{where} is not finite")
    return out


def _positive(name: str, v: float) -> None:
    if not (isinstance(v, (int, float)) and math.isfinite(v) and v > 0):
        raise ConfigurationError(f"{name} must be a positive number, got {v!r}")


def _window(
    model: type[AbstractModel], schedule: Schedule | None, t0: float, t1: float, step: float
) -> Schedule | None:
    """The part of ``schedule`` (absolute times) that acts on ``[t0, t1)``.

    Events inside the window pass unchanged; the latest basal rate/factor set before ``t0`` is
    re-issued at ``t0``; an infusion that began before ``t0`` and runs into the window contributes
    its remaining amount.  Earlier pulses are done and dropped, later events wait for their window.
    """
    if schedule is None or not schedule.events:
        return None
    eps = 1e-9
    carried: dict[str, Event] = {}
    inside: list[Event] = []
    for e in sorted(schedule.events, key=lambda ev: ev.time):
        try:
            inp = model.input_for(e.input)
        except ValueError as exc:
            raise ScheduleError(str(exc)) from None
        if e.time >= t1 - eps:
            continue
        if e.time >= t0 - eps:
            inside.append(e)
        elif e.kind in ("rate", "factor"):
            carried[inp.name] = dataclasses.replace(e, time=t0)
        elif inp.kind == "rate":
            duration = e.duration if e.duration is not None else step
            end = e.time + duration
            if end > t0 + eps:
                left = end - t0
                carried[f"pulse:{id(e)}"] = dataclasses.replace(
                    e, time=t0, value=e.value * left / duration, duration=left
                )
    events = (*carried.values(), *inside)
    return Schedule(events) if events else None


_STEPS: dict[Any, Callable[..., Any]] = {}


def cached_step(key: Any, build: Callable[[], Callable[..., Any]]) -> Callable[..., Any]:
    """One compiled step per filter configuration, shared by every filter with those settings.

    The seed is not part of the configuration: it only makes the PRNG key each call is given, so
    a service's twins (one filter, one seed per patient) share one compiled step instead of
    compiling one each.
    """
    key = tuple(dataclasses.replace(k, seed=0) if isinstance(k, _Core) else k for k in key)
    if key not in _STEPS:
        _STEPS[key] = jax.jit(build())
    return _STEPS[key]


def to_numpy(d: Mapping[str, Any]) -> dict[str, np.ndarray]:
    """Device arrays back to NumPy."""
    return {k: np.asarray(v) for k, v in d.items()}


# The analysis a filter plugs into the shared step: (core, key, z, theta, y, weights, reading)
# -> (z, theta, weights, index of the member each output member copies, ess, resampled).
Analysis = Callable[..., tuple[Any, Any, Any, Any, Any, Any]]


def build_step(core: _Core, analysis: Analysis | None) -> Callable[..., Any]:
    """The compiled part of one update: noise, inflation, analysis, meal injection.

    ``analysis=None`` gives the propagation-only step (noise, no reading).
    """
    r = core.obs_sd**2

    def step(
        states: dict[str, Any],
        params: dict[str, Any],
        weights: Any,
        reading: Any,
        dt: Any,
        key: Any,
    ) -> tuple[dict[str, Any], dict[str, Any], Any, Any]:
        k_noise, k_an, k_meal = jax.random.split(key, 3)
        z, theta = core.add_noise(k_noise, core.to_z(states), core.to_theta(params), dt)
        n = z.shape[0]
        y = core.observe(z, theta, states, params)
        y_mean = jnp.dot(weights, y)
        var_y = jnp.maximum(jnp.dot(weights, (y - y_mean) ** 2), 1e-12)
        innov = reading - y_mean
        total_sd = jnp.sqrt(var_y + r)
        surprise = jnp.abs(innov) > core.innovation_threshold * total_sd
        # lambda^2 var_y + R = innovation^2: the widened forecast explains the reading
        adaptive = jnp.sqrt(jnp.maximum(innov**2 - r, 0.0) / var_y)
        lam = jnp.where(surprise, jnp.clip(adaptive, 1.0, core.max_inflation), 1.0)
        lam = lam * core.inflation
        if analysis is None:
            idx = jnp.arange(n)
            ess = 1.0 / jnp.sum(weights**2)
            resampled = jnp.asarray(False)
            new_w = weights
            meal_trigger = jnp.asarray(False)
        else:
            z_mean = weights @ z
            # Inflate every state but the gut (log1p-transformed): stretching its log-spread by up
            # to 3x on each surprising reading compounds into kilograms of carbohydrate; the
            # unannounced-meal injection below is how the gut answers a surprise.
            stretch = jnp.where(core.inflatable, lam, 1.0)
            z = z_mean + stretch * (z - z_mean)
            t_mean = weights @ theta
            theta = t_mean + core.inflation * (theta - t_mean)
            y = core.observe(z, theta, states, params)
            z, theta, new_w, idx, ess, resampled = analysis(
                core, k_an, z, theta, y, weights, reading
            )
            meal_trigger = surprise & (innov > 0)
        out_states = {k: v[idx] for k, v in states.items()} | core.from_z(z)
        out_params = {k: v[idx] for k, v in params.items()} | core.from_theta(theta)
        if core.valid is not None:
            out_states = out_states | core.valid(out_states, out_params)
        out_states, n_meal = core.inject_meals(k_meal, out_states, meal_trigger)
        info = jnp.stack(
            [
                y_mean,
                jnp.sqrt(var_y),
                innov,
                innov / total_sd,
                lam if analysis is not None else jnp.asarray(1.0),
                ess,
                resampled.astype(y.dtype),
                n_meal.astype(y.dtype),
            ]
        )
        return out_states, out_params, new_w, info

    return step


def run_step(
    core: _Core,
    step: Callable[..., Any],
    ens: Ensemble,
    t: float,
    reading: float,
    schedule: Schedule | None,
) -> Ensemble:
    """Propagate ``ens`` to ``t`` with the engine, then apply the compiled ``step``."""
    if not isinstance(ens, Ensemble):
        raise ConfigurationError(f"expected an Ensemble (from init), got {type(ens).__name__}")
    if ens.model is not core.model or ens.n != core.n_members:
        raise ConfigurationError(
            f"this ensemble ({ens.model.__name__}, {ens.n} members) was not made by this filter "
            f"({core.model.__name__}, {core.n_members} members)"
        )
    t_new, states = core.advance(ens, float(t), schedule)
    key = jax.random.fold_in(jax.random.PRNGKey(core.seed), ens.step)
    out_s, out_p, w, info = step(
        states, ens.params, ens.weights, np.float64(reading), np.float64(t_new - ens.t), key
    )
    v = np.asarray(info)
    new_states = to_numpy(out_s)
    new_params = to_numpy(out_p)
    upd = UpdateInfo(
        t=t_new,
        reading=float(reading),
        predicted_mean=float(v[0]),
        predicted_sd=float(v[1]),
        innovation=float(v[2]),
        normalized_innovation=float(v[3]),
        inflation=float(v[4]),
        ess=float(v[5]),
        resampled=bool(v[6]),
        n_meal_members=int(v[7]),
    )
    return Ensemble(core.model, t_new, new_states, new_params, np.asarray(w), ens.step + 1, upd)


def check_reading(reading: float) -> float:
    """A reading must be a finite number."""
    try:
        value = float(reading)
    except (TypeError, ValueError):
        raise ConfigurationError(f"a reading must be a number, got {reading!r}") from None
    if not math.isfinite(value):
        raise ConfigurationError(
            f"a reading must be finite, got {value}; skip it and call propagate() instead"
        )
    return value


def _jsonable(settings: Mapping[str, Any]) -> dict[str, Any]:
    """Settings as JSON-compatible values (tuples as lists); a solver object is not saved."""
    out: dict[str, Any] = {}
    for k, v in settings.items():
        if k == "solver":
            if v is not None:
                raise ConfigurationError("a filter with a custom solver cannot be saved yet")
            continue
        if isinstance(v, tuple):
            v = list(v)
        elif isinstance(v, Mapping):
            v = {str(a): (list(b) if isinstance(b, tuple) else b) for a, b in v.items()}
        out[k] = v
    return out


class FilterSettings:
    """What every ensemble filter reports about itself (a mixin over its ``_core``)."""

    _core: _Core
    _settings: dict[str, Any]

    @property
    def model(self) -> type[AbstractModel]:
        """The model class."""
        return self._core.model

    @property
    def n_members(self) -> int:
        """The ensemble size N."""
        return self._core.n_members

    @property
    def estimate(self) -> tuple[str, ...]:
        """The parameters the filter estimates jointly with the state."""
        return tuple(self._core.estimate)

    def settings(self) -> dict[str, Any]:
        """The constructor's settings (without the model), for saving a twin; JSON-compatible."""
        return _jsonable(self._settings)

    @property
    def obs_sd_mg_dl(self) -> float:
        """Standard deviation of the sensor's error assumed by the analysis."""
        return self._core.obs_sd


# ---------------------------------------------------------------------------------------------
# Several patients at once: what a service does when many twins advance together
# ---------------------------------------------------------------------------------------------


PATIENTS_PER_STEP = 32
"""Patients per call of a vectorised filter step (a batch is cut into groups of this many)."""


# each patient's key as run_step makes it: fold_in(PRNGKey(seed), step)
_member_keys = jax.jit(
    jax.vmap(lambda seed, step: jax.random.fold_in(jax.random.PRNGKey(seed), step))
)


def simulate_members(
    model: type[AbstractModel],
    schedules: Sequence[Schedule | None],
    grids: Sequence[np.ndarray],
    params: Sequence[Mapping[str, Any]],
    states: Sequence[Mapping[str, Any]],
    *,
    solver: RK4 | Adaptive | None = None,
    record: Sequence[str] = (),
) -> list[tuple[dict[str, np.ndarray], dict[str, np.ndarray]]]:
    """Several patients' ensembles through one compiled loop, each with its own schedule and clock.

    Patient ``i`` gives the same values and final state as ``simulate(model, schedules[i],
    grids[i], params=params[i], x0=states[i], solver=solver, record=record)``, without a
    ``Schedule`` per member: each patient's schedule is compiled once and its columns shared by
    its members, and each member runs on its patient's clock.  Every grid must have the same
    length and spacing (``ConfigurationError`` otherwise); a non-finite value raises
    ``SimulationError`` for the whole batch, so that a caller can fall back to one patient at a
    time and have the error name the patient.
    """
    from medtwin.simulate._engine import (
        _check_finite,
        _full_params,
        _initial_state,
        _plan,
        _workers,
        default_chunk_size,
    )
    from medtwin.simulate.schedule import compile_schedules

    n_patients = len(grids)
    if not (len(schedules) == len(params) == len(states) == n_patients >= 1):
        raise ConfigurationError("give one schedule, grid, params and states per patient")
    mdl = model()
    plan = _plan(mdl, [Schedule()], grids[0], solver, None, None, None, tuple(record))
    offsets = plan.t - plan.t[0]
    t0 = np.empty(n_patients)
    for i, grid in enumerate(grids):
        g = np.asarray(grid, dtype=float)
        if g.shape != offsets.shape or not np.allclose(g - g[0], offsets, rtol=0, atol=1e-9):
            raise ConfigurationError(
                "every patient's output grid must have the same length and spacing"
            )
        t0[i] = g[0]
    dt = float(plan.loop.dt)
    n_steps = plan.loop.n_ticks * plan.loop.tick_steps
    columns = [
        compile_schedules(
            model, [s if s is not None else Schedule()], t0=t0[i], n_steps=n_steps, dt=dt
        )
        for i, s in enumerate(schedules)
    ]
    sizes = np.array([len(next(iter(p.values()))) for p in params])
    patient = np.repeat(np.arange(n_patients), sizes)
    total = int(sizes.sum())
    names = model.param_names()
    p_full = _full_params(
        model,
        {
            k: np.concatenate([np.asarray(p[k], dtype=float) for p in params])
            for k in names
            if k in params[0]
        },
        total,
    )
    x0 = {k: np.concatenate([np.asarray(s[k], dtype=float) for s in states]) for k in states[0]}
    x0_full = _initial_state(mdl, p_full, x0, total)
    base_abs = {
        k: np.concatenate([c.base_abs[k] for c in columns], axis=1) for k in columns[0].base_abs
    }
    base_fac = {
        k: np.concatenate([c.base_factor[k] for c in columns], axis=1)
        for k in columns[0].base_factor
    }
    pulse = {k: np.concatenate([c.pulse[k] for c in columns], axis=1) for k in columns[0].pulse}
    t0_member = t0[patient]
    # chunks of one fixed size, so that the loop compiles once, not once per batch size
    size = default_chunk_size()
    values: dict[str, np.ndarray] = {}
    final: dict[str, np.ndarray] = {}
    ids = tuple(str(i) for i in patient)

    def run_chunk(start: int) -> None:
        idx = np.arange(start, start + size).clip(max=total - 1)
        cols = patient[idx]
        ys, final_x = plan.runner(
            {k: v[idx] for k, v in x0_full.items()},
            {k: v[idx] for k, v in p_full.items()},
            {k: v[:, cols] for k, v in base_abs.items()},
            {k: v[:, cols] for k, v in base_fac.items()},
            {k: v[:, cols] for k, v in pulse.items()},
            np.int64(0),
            idx,
            {},
            t0_member[idx],
        )
        m = min(size, total - start)
        for target, got in ((values, ys), (final, final_x)):
            for name, arr in got.items():
                arr = np.asarray(arr)[:m]
                _check_finite(name, arr, ids[start : start + m], plan.t)
                if name not in target:
                    target[name] = np.empty((total, *arr.shape[1:]))
                target[name][start : start + m] = arr

    starts = list(range(0, total, size))
    # the first chunk allocates the outputs; the others may then run on the other cores
    run_chunk(starts[0])
    workers = min(len(starts) - 1, _workers())
    if workers > 1:
        with ThreadPoolExecutor(max_workers=workers) as pool:
            list(pool.map(run_chunk, starts[1:]))
    else:
        for start in starts[1:]:
            run_chunk(start)
    bounds = np.concatenate([[0], np.cumsum(sizes)])
    return [
        (
            {k: v[a:b] for k, v in values.items()},
            {k: v[a:b] for k, v in final.items()},
        )
        for a, b in itertools.pairwise(bounds)
    ]


def run_steps(
    cores: Sequence[_Core],
    step: Callable[..., Any],
    ensembles: Sequence[Ensemble],
    times: Sequence[float],
    readings: Sequence[float],
    schedules: Sequence[Schedule | None],
) -> list[Ensemble]:
    """:func:`run_step` for several patients at once; ``step`` is ``jax.vmap`` of a built step.

    The cores must be one configuration (seeds aside) and every ensemble must advance by the
    same number of solver steps (more than none); ``ConfigurationError`` otherwise.
    """
    core = cores[0]
    n_patients = len(ensembles)
    for c, ens in zip(cores, ensembles, strict=True):
        if dataclasses.replace(c, seed=0) != dataclasses.replace(core, seed=0):
            raise ConfigurationError("run_steps needs filters of one configuration")
        if not isinstance(ens, Ensemble) or ens.model is not core.model or ens.n != core.n_members:
            raise ConfigurationError("an ensemble was not made by a filter of this configuration")
    dt = float(core.solver.dt)
    n_steps = {round((float(t) - e.t) / dt) for t, e in zip(times, ensembles, strict=True)}
    if len(n_steps) != 1 or (k := n_steps.pop()) < 1:
        raise ConfigurationError("run_steps needs ensembles that advance by the same time")
    t_new = [e.t + k * dt for e in ensembles]
    windows = [
        _window(core.model, s, e.t, t1, dt)
        for s, e, t1 in zip(schedules, ensembles, t_new, strict=True)
    ]
    sims = simulate_members(
        core.model,
        windows,
        [np.array([e.t, t1]) for e, t1 in zip(ensembles, t_new, strict=True)],
        [e.params for e in ensembles],
        [e.states for e in ensembles],
        solver=core.solver,
    )
    # groups of a fixed number of patients (the last one padded): the step compiles once
    states_all, params_all, weights_all, info_all = [], [], [], []
    for first in range(0, n_patients, PATIENTS_PER_STEP):
        pad = np.minimum(np.arange(first, first + PATIENTS_PER_STEP), n_patients - 1)
        keys = _member_keys(
            np.asarray([cores[i].seed for i in pad], dtype=np.int64),
            np.asarray([ensembles[i].step for i in pad], dtype=np.int64),
        )
        out_s, out_p, w, info = step(
            {k: np.stack([sims[i][1][k] for i in pad]) for k in sims[0][1]},
            {k: np.stack([ensembles[i].params[k] for i in pad]) for k in ensembles[0].params},
            np.stack([ensembles[i].weights for i in pad]),
            np.asarray([float(readings[i]) for i in pad]),
            np.asarray([t_new[i] - ensembles[i].t for i in pad]),
            keys,
        )
        states_all.append(to_numpy(out_s))
        params_all.append(to_numpy(out_p))
        weights_all.append(np.asarray(w))
        info_all.append(np.asarray(info))
    m = n_patients
    new_states = {k: np.concatenate([b[k] for b in states_all])[:m] for k in states_all[0]}
    new_params = {k: np.concatenate([b[k] for b in params_all])[:m] for k in params_all[0]}
    w = np.concatenate(weights_all)[:m]
    v = np.concatenate(info_all)[:m]
    out = []
    for i, ens in enumerate(ensembles):
        upd = UpdateInfo(
            t=t_new[i],
            reading=float(readings[i]),
            predicted_mean=float(v[i, 0]),
            predicted_sd=float(v[i, 1]),
            innovation=float(v[i, 2]),
            normalized_innovation=float(v[i, 3]),
            inflation=float(v[i, 4]),
            ess=float(v[i, 5]),
            resampled=bool(v[i, 6]),
            n_meal_members=int(v[i, 7]),
        )
        out.append(
            Ensemble(
                core.model,
                t_new[i],
                {k: a[i] for k, a in new_states.items()},
                {k: a[i] for k, a in new_params.items()},
                w[i],
                ens.step + 1,
                upd,
            )
        )
    return out
