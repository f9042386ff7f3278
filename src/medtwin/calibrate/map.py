"""MAP personalisation of a model's parameters from a patient's history, with a Laplace posterior.

:class:`MAPEstimator` estimates a chosen subset of a model's parameters from CGM readings and the
logged insulin and carbohydrate of one patient; every other parameter stays at ``base_params``.

The statistical model, in log space (``theta = log(params)``)::

    prior:        theta_j ~ Normal(log(median_j), prior_scale * sigma_j)   (the model's LogNormal)
    prediction:   f_i(theta) = observation at reading time t_i, simulated from the steady state
    error:        e_i = y_i - f_i(theta),  a Gaussian AR(p) process over consecutive readings:
                  e_i = a_1 e_{i-1} + ... + a_p e_{i-p} + sd * Normal(0, 1)

CGM error is strongly autocorrelated and smooth (the simglucose sensors' error is an AR(1)
process on a 15-min grid, spline-interpolated: consecutive 5-min errors correlate at about 0.97),
so treating readings as independent would claim far more information than the data hold and give
intervals that are much too narrow.  The AR coefficients and ``sd`` are estimated with the
parameters (least squares on the residuals, alternating with the parameter steps); the default
order 6 (half an hour of 5-min readings) represents a smooth error that decorrelates within
about an hour, which a first-order process cannot (fitted to the short lags it claims hours of
memory).  ``error_order=0`` gives
independent errors.  The AR likelihood is conditional: the first ``p`` readings of every run of
regularly spaced readings (a gap or an irregular spacing starts a new run) are conditioned on.

The MAP estimate is found by Levenberg-Marquardt on the whitened residuals, alternating with
the least-squares update of the error parameters; the Jacobian of the
predictions comes from forward-mode differentiation through the engine
(:func:`~medtwin.simulate.trajectory_function`).  The Laplace covariance is the inverse of the
Gauss-Newton Hessian ``J^T J + prior precision`` at the optimum (positive definite by
construction).

The simulation starts at the first reading from the model's initial state for the current
parameters (for UVA/Padova the fasting steady state under its basal rate ``u2ss``), which moves
with the estimated parameters.  The initial state's derivative is taken by the implicit function
theorem when that state is a steady state, since the UVA/Padova one is found by bisection.  Events
before the first reading are dropped, except the last basal rate, which still applies; readings
in the first ``warmup_min`` minutes are simulated but left out of the likelihood, for data that
start mid-meal.  The model is simulated on a ``grid_min`` grid and interpolated linearly to the
reading times, which need not lie on the grid.
"""

from __future__ import annotations

import functools
import math
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import pandas as pd

from medtwin.calibrate.posterior import LaplacePosterior
from medtwin.errors import (
    ConfigurationError,
    NotCalibratedError,
    ParameterError,
    SimulationError,
)
from medtwin.history import PatientHistory
from medtwin.models import AbstractModel, LogNormal, UvaPadova2008
from medtwin.simulate import RK4, Adaptive, Schedule, trajectory_function

__all__ = ["DEFAULT_ESTIMATE", "MAPEstimator"]

DEFAULT_ESTIMATE: dict[type[AbstractModel], tuple[str, ...]] = {
    UvaPadova2008: ("Vmx", "kp3", "kp1", "kabs"),
}
"""Parameters estimated when ``estimate`` is not given, per model class (subclasses inherit).

For UVA/Padova: insulin sensitivity of utilisation (``Vmx``) and of the liver (``kp3``),
endogenous glucose production (``kp1``) and intestinal absorption (``kabs``), the set that CGM
with logged insulin and carbohydrate identifies (see ``docs/calibrate.md``).
"""

_RESULTS = frozenset(
    {
        "params_",
        "posterior_",
        "identifiability_",
        "obs_sd_mg_dl_",
        "error_ar_",
        "n_readings_",
        "n_iter_",
        "converged_",
        "x0_",
        "residuals_",
        "fit_time_s_",
    }
)


class MAPEstimator:
    """Maximum a posteriori personalisation with a Laplace posterior, scikit-learn style.

    Parameters
    ----------
    model:
        The model (class or instance); its LogNormal population priors are the priors.
    estimate:
        Names of the parameters to estimate (default: :data:`DEFAULT_ESTIMATE` for the model).
        Each needs a LogNormal prior.
    base_params:
        Values of the other parameters (scalars or length-1 arrays), e.g.
        ``load_patients("adult#003").params``; missing ones take the model's defaults.  The
        optimisation starts from the base values of the estimated parameters.
    observation:
        The model observation the CGM readings measure (default: the model's first, ``Gsub``).
    obs_sd_mg_dl:
        Standard deviation of the reading error's innovations (with ``error_order=0``, of the
        independent errors); ``None`` estimates it.
    error_order:
        Order of the autoregressive model of the reading error (``0``: independent errors).
    prior_scale:
        Multiplies every prior SD (``> 1`` weakens the priors).
    grid_min:
        Spacing of the simulated grid that is interpolated to the reading times (min).
    warmup_min:
        Readings in the first ``warmup_min`` minutes are simulated but not fitted.
    solver:
        The engine's solver (default ``RK4()``, 1-min steps).
    n_starts:
        Optimisations run, keeping the best: from the base values, from the prior medians,
        then from prior draws (``seed``).  The glucose fit has local optima (a slow absorption
        traded against low insulin sensitivity), so one start is not always enough.
    max_iter, tol:
        Levenberg-Marquardt iterations per start, and the relative change of the objective
        (with a step below ``1e-3`` in log space) that counts as converged.
    seed:
        Seed of the prior draws used as starting points.

    Attributes
    ----------
    params_ : dict[str, float]
        Every model parameter at the MAP estimate (natural scale).
    posterior_ : LaplacePosterior
        Normal approximation of the posterior of the log of the estimated parameters.
    identifiability_ : pandas.DataFrame
        Per estimated parameter: prior and posterior SD of its log, their ratio, and
        ``identified`` (ratio below 0.5: the data, not the prior, determine it).
    obs_sd_mg_dl_ : float
        Innovation SD of the reading error at the optimum.
    error_ar_ : tuple[float, ...]
        Its autoregressive coefficients (empty for independent errors).
    n_readings_, n_iter_, converged_, fit_time_s_ :
        Readings fitted, iterations, whether the tolerance was met, wall time of ``fit``.
    x0_ : dict[str, float]
        The initial state at the MAP estimate.
    residuals_ : pandas.DataFrame
        ``time``, ``observed``, ``predicted`` (mg/dL) and ``fitted`` (False in the warm-up).

    Examples
    --------
    >>> import numpy as np, pandas as pd
    >>> from medtwin.history import PatientHistory
    >>> t = pd.date_range("2026-01-01", periods=5, freq="5min", tz="UTC")
    >>> h = PatientHistory.from_frames(pd.DataFrame({"time": t, "glucose_mg_dl": 120.0}))
    >>> MAPEstimator(estimate=("Vmx", "f")).fit(h)  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    medtwin.errors.ParameterError: cannot estimate 'f': its prior is Fixed(value=0.9), ...
    """

    params_: dict[str, float]
    posterior_: LaplacePosterior
    identifiability_: pd.DataFrame
    obs_sd_mg_dl_: float
    error_ar_: tuple[float, ...]
    n_readings_: int
    n_iter_: int
    converged_: bool
    x0_: dict[str, float]
    residuals_: pd.DataFrame
    fit_time_s_: float

    def __init__(
        self,
        model: AbstractModel | type[AbstractModel] = UvaPadova2008,
        estimate: Sequence[str] | None = None,
        *,
        base_params: Mapping[str, Any] | None = None,
        observation: str | None = None,
        obs_sd_mg_dl: float | None = None,
        error_order: int = 6,
        prior_scale: float = 1.0,
        grid_min: float = 1.0,
        warmup_min: float = 0.0,
        solver: RK4 | Adaptive | None = None,
        n_starts: int = 2,
        max_iter: int = 100,
        tol: float = 1e-7,
        seed: int = 0,
    ) -> None:
        self.model = model
        self.estimate = estimate
        self.base_params = base_params
        self.observation = observation
        self.obs_sd_mg_dl = obs_sd_mg_dl
        self.error_order = error_order
        self.prior_scale = prior_scale
        self.grid_min = grid_min
        self.warmup_min = warmup_min
        self.solver = solver
        self.n_starts = n_starts
        self.max_iter = max_iter
        self.tol = tol
        self.seed = seed

    def __getattr__(self, name: str) -> Any:
        if name in _RESULTS:
            raise NotCalibratedError(
                f"{type(self).__name__}.{name} is not available before fit(); call fit(history)"
            )
        raise AttributeError(f"{type(self).__name__!r} object has no attribute {name!r}")

    def __repr__(self) -> str:
        model = self.model if isinstance(self.model, type) else type(self.model)
        return f"{type(self).__name__}(model={model.__name__}, estimate={self.estimate!r})"

    # -- fitting -------------------------------------------------------------------------------

    def fit(self, history: PatientHistory, x0: Mapping[str, Any] | None = None) -> MAPEstimator:
        """Estimate the parameters from ``history``; returns ``self``.

        ``x0`` fixes the initial state at the first reading (every state of the model);
        by default it is the model's initial state for the parameters being tried.
        """
        started = time.perf_counter()
        mdl = self.model() if isinstance(self.model, type) else self.model
        if not isinstance(mdl, AbstractModel):
            raise ConfigurationError(
                f"model must be an AbstractModel, got {type(self.model).__name__}"
            )
        cls = type(mdl)
        self._check_settings()
        names = _estimated_names(cls, self.estimate)
        priors = [_log_prior(cls, n) for n in names]
        mu = np.array([m for m, _ in priors])
        prior_sd = np.array([s for _, s in priors]) * float(self.prior_scale)
        base = _base_params(cls, self.base_params)
        obs = cls.observation(self.observation)
        if obs.unit != "mg/dL":
            raise ConfigurationError(
                f"observation {obs.name!r} is in {obs.unit}; CGM readings are mg/dL, choose a "
                "glucose observation"
            )
        solver = RK4() if self.solver is None else self.solver
        data = _Data.from_history(history, float(self.grid_min), float(self.warmup_min), solver)
        traj = trajectory_function(mdl, data.schedule, data.grid, solver=solver, record=obs.name)
        base_j = {k: jnp.asarray([v]) for k, v in base.items()}
        init = _initial_state_function(mdl, tuple(names), x0, base)

        def predict(theta: jax.Array) -> jax.Array:
            p, x_init = init(theta, base_j)
            return data.interpolate(traj(p, x_init)[obs.name][0], used_only=True)

        def value_and_jacobian(theta: jax.Array) -> tuple[jax.Array, jax.Array]:
            def push(v: jax.Array) -> tuple[jax.Array, jax.Array]:
                return jax.jvp(predict, (theta,), (v,))

            y, jac = jax.vmap(push, out_axes=(None, 1))(jnp.eye(theta.size))
            return y, jac

        problem = _Problem.build(
            data.y[data.used],
            data.t_min[data.used],
            self.error_order,
            mu,
            prior_sd,
            self.obs_sd_mg_dl,
        )
        if problem.rows.size < len(names) + 2:
            raise ParameterError(
                f"the history has {problem.rows.size} readings to fit (after the warm-up and "
                f"conditioning on the first {self.error_order} of every run); estimating "
                f"{len(names)} parameters needs at least {len(names) + 2}"
            )
        rng = np.random.default_rng(self.seed)
        starts = [np.log([base[n] for n in names]), mu]
        while len(starts) < self.n_starts:
            starts.append(mu + prior_sd * rng.standard_normal(mu.size))
        results = [
            _levenberg_marquardt(
                problem,
                theta0,
                predict,
                value_and_jacobian,
                int(self.max_iter),
                float(self.tol),
            )
            for theta0 in starts[: self.n_starts]
        ]
        result = min(results, key=lambda r: r.value)

        theta = result.theta
        p_hat, x_hat = init(jnp.asarray(theta), base_j)
        self.params_ = {k: float(np.asarray(v).reshape(-1)[0]) for k, v in p_hat.items()}
        self.x0_ = {k: float(np.asarray(v).reshape(-1)[0]) for k, v in x_hat.items()}
        self.posterior_ = LaplacePosterior(tuple(names), theta, result.cov)
        post_sd = self.posterior_.sd_log
        self.identifiability_ = pd.DataFrame(
            {
                "estimate": np.exp(theta),
                "prior_median": np.exp(mu),
                "prior_sd_log": prior_sd,
                "posterior_sd_log": post_sd,
                "sd_ratio": post_sd / prior_sd,
                "identified": post_sd / prior_sd < 0.5,
            },
            index=pd.Index(names, name="parameter"),
        )
        self.obs_sd_mg_dl_ = result.noise.sd
        self.error_ar_ = tuple(float(a) for a in result.noise.ar)
        self.n_readings_ = data.n_used
        self.n_iter_ = result.n_iter
        self.converged_ = result.converged
        self.residuals_ = pd.DataFrame(
            {
                "time": data.times,
                "observed": data.y,
                "predicted": np.asarray(
                    data.interpolate(traj(p_hat, x_hat)[obs.name][0], used_only=False)
                ),
                "fitted": data.used,
            }
        )
        self.fit_time_s_ = time.perf_counter() - started
        return self

    def _check_settings(self) -> None:
        for name in ("prior_scale", "grid_min"):
            v = getattr(self, name)
            if not (isinstance(v, (int, float)) and math.isfinite(v) and v > 0):
                raise ConfigurationError(f"{name} must be a positive number, got {v!r}")
        if not (isinstance(self.warmup_min, (int, float)) and self.warmup_min >= 0):
            raise ConfigurationError(f"warmup_min must be >= 0, got {self.warmup_min!r}")
        if self.obs_sd_mg_dl is not None and not (
            math.isfinite(self.obs_sd_mg_dl) and self.obs_sd_mg_dl > 0
        ):
            raise ConfigurationError(
                f"obs_sd_mg_dl must be > 0 (or None to estimate it), got {self.obs_sd_mg_dl!r}"
            )
        if not (isinstance(self.error_order, int) and 0 <= self.error_order <= 30):
            raise ConfigurationError(
                f"error_order must be an integer in [0, 30] (0: independent errors), "
                f"got {self.error_order!r}"
            )
        if not (isinstance(self.n_starts, int) and self.n_starts >= 1):
            raise ConfigurationError(f"n_starts must be a positive integer, got {self.n_starts!r}")
        if not (isinstance(self.max_iter, int) and self.max_iter >= 1):
            raise ConfigurationError(f"max_iter must be a positive integer, got {self.max_iter!r}")
        if not (isinstance(self.tol, (int, float)) and self.tol > 0):
            raise ConfigurationError(f"tol must be > 0, got {self.tol!r}")


# ---------------------------------------------------------------------------------------------
# Parameters and priors
# ---------------------------------------------------------------------------------------------


def _estimated_names(cls: type[AbstractModel], estimate: Sequence[str] | None) -> list[str]:
    if estimate is None:
        for klass in cls.__mro__:
            if klass in DEFAULT_ESTIMATE:
                return list(DEFAULT_ESTIMATE[klass])
        raise ConfigurationError(
            f"no default set of parameters to estimate for {cls.__name__}; pass estimate=[...]"
        )
    names = [estimate] if isinstance(estimate, str) else list(estimate)
    if not names:
        raise ConfigurationError("estimate is empty; name at least one parameter")
    dup = sorted({n for n in names if names.count(n) > 1})
    if dup:
        raise ConfigurationError(f"estimate names {dup} more than once")
    for n in names:
        cls.param(n)  # unknown names raise ParameterError listing the known ones
    return names


def _log_prior(cls: type[AbstractModel], name: str) -> tuple[float, float]:
    prior = cls.param(name).prior
    if prior is None:
        raise ParameterError(
            f"cannot estimate {name!r}: {cls.__name__} declares no prior for it; MAP estimation "
            "needs a population prior"
        )
    if not isinstance(prior, LogNormal):
        what = (
            f"its prior is {prior}, a constant of {cls.__name__}"
            if type(prior).__name__ == "Fixed"
            else f"its prior is {prior}; MAP estimation works in log space and needs a LogNormal"
        )
        raise ParameterError(f"cannot estimate {name!r}: {what}")
    return math.log(prior.median), prior.sigma


def _base_params(cls: type[AbstractModel], given: Mapping[str, Any] | None) -> dict[str, float]:
    out = {p.name: float(p.default) for p in cls.params}
    for k, v in (given or {}).items():
        cls.param(k)
        arr = np.asarray(v, dtype=float).reshape(-1)
        if arr.size != 1 or not np.isfinite(arr[0]):
            raise ParameterError(
                f"base_params[{k!r}] must be one finite number (one patient), got {v!r}"
            )
        out[k] = float(arr[0])
    for p in cls.params:
        if isinstance(p.prior, LogNormal) and out[p.name] <= 0:
            raise ParameterError(f"base_params[{p.name!r}] = {out[p.name]} must be > 0")
    return out


# ---------------------------------------------------------------------------------------------
# Initial state
# ---------------------------------------------------------------------------------------------


def _initial_state_function(
    mdl: AbstractModel,
    names: tuple[str, ...],
    x0: Mapping[str, Any] | None,
    base: Mapping[str, float],
) -> Callable[[jax.Array, dict[str, jax.Array]], tuple[dict[str, jax.Array], dict[str, jax.Array]]]:
    """``(theta, base) -> (params, x0)``, jitted and shared by every fit of the same kind."""
    if x0 is not None:
        states = mdl.state_names()
        missing = [s for s in states if s not in x0]
        if missing:
            raise ParameterError(
                f"x0 must give every state of {type(mdl).__name__}: missing {missing}"
            )
        fixed = {s: np.asarray([float(np.asarray(x0[s]).reshape(-1)[0])]) for s in states}
        fn = _params_function(names)

        def with_fixed(theta: jax.Array, b: dict[str, jax.Array]) -> tuple[Any, Any]:
            return fn(theta, b), {k: jnp.asarray(v) for k, v in fixed.items()}

        return with_fixed
    implicit = _is_steady_state(mdl, base)
    key: Any = type(mdl)  # classes hash by identity
    return _state_function(key, names, implicit)


@functools.cache
def _params_function(
    names: tuple[str, ...],
) -> Callable[[jax.Array, dict[str, jax.Array]], dict[str, jax.Array]]:
    @jax.jit
    def params(theta: jax.Array, base: dict[str, jax.Array]) -> dict[str, jax.Array]:
        return base | {n: jnp.exp(theta[i])[None] for i, n in enumerate(names)}

    return params


@functools.cache
def _state_function(
    cls: Any, names: tuple[str, ...], implicit: bool
) -> Callable[[jax.Array, dict[str, jax.Array]], tuple[dict[str, jax.Array], dict[str, jax.Array]]]:
    mdl = cls()
    order = cls.state_names()

    @jax.jit
    def state(
        theta: jax.Array, base: dict[str, jax.Array]
    ) -> tuple[dict[str, jax.Array], dict[str, jax.Array]]:
        p = base | {n: jnp.exp(theta[i])[None] for i, n in enumerate(names)}
        x = mdl.initial_state(p)
        if not implicit:
            return p, x
        # The model's steady state may be found by a method without a useful derivative
        # (bisection); the implicit function theorem gives it: dx/dp = -(dF/dx)^-1 dF/dp.
        xv = jax.lax.stop_gradient(jnp.stack([jnp.reshape(x[s], ()) for s in order]))
        jac = jax.lax.stop_gradient(jax.jacfwd(lambda v: _rhs_vector(mdl, v, p))(xv))
        delta = -jnp.linalg.solve(jac, _rhs_vector(mdl, xv, p))
        xv = xv + delta - jax.lax.stop_gradient(delta)
        return p, {s: xv[i][None] for i, s in enumerate(order)}

    return state


def _rhs_vector(mdl: AbstractModel, xv: jax.Array, p: Mapping[str, jax.Array]) -> jax.Array:
    """The model's time derivative at state ``xv`` (one patient) under its default inputs."""
    order = mdl.state_names()
    x = {s: xv[i][None] for i, s in enumerate(order)}
    pd_ = mdl.with_derived(p)
    z = mdl.initial_discrete_state(x, pd_)
    u, _ = mdl.discrete_update(jnp.zeros(()), x, z, pd_, mdl.default_inputs(pd_))
    dx = mdl.rhs(jnp.zeros(()), x, pd_, u)
    return jnp.stack([jnp.reshape(dx[s], ()) for s in order])


def _is_steady_state(mdl: AbstractModel, base: Mapping[str, float]) -> bool:
    p = {k: jnp.asarray([v]) for k, v in base.items()}
    x = mdl.initial_state(p)
    xv = jnp.stack([jnp.reshape(x[s], ()) for s in mdl.state_names()])
    f = np.asarray(_rhs_vector(mdl, xv, p))
    if not np.isfinite(f).all():
        raise SimulationError("the model's initial state has a non-finite time derivative")
    return bool(np.all(np.abs(f) <= 1e-8 * (1.0 + np.abs(np.asarray(xv)))))


# ---------------------------------------------------------------------------------------------
# Data
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Data:
    """Readings on the simulation grid: the schedule, the grid and interpolation weights."""

    times: pd.Series
    t_min: np.ndarray
    y: np.ndarray
    used: np.ndarray
    grid: np.ndarray
    index: np.ndarray
    weight: np.ndarray
    schedule: Schedule

    @property
    def n_used(self) -> int:
        return int(self.used.sum())

    def interpolate(self, f: jax.Array, used_only: bool) -> jax.Array:
        """The grid trajectory ``f`` at the reading times (linear interpolation)."""
        index, weight = self.index, self.weight
        if used_only:
            index, weight = index[self.used], weight[self.used]
        w = jnp.asarray(weight)
        return (1.0 - w) * f[index] + w * f[index + 1]

    @classmethod
    def from_history(
        cls, history: PatientHistory, grid_min: float, warmup_min: float, solver: RK4 | Adaptive
    ) -> _Data:
        if not isinstance(history, PatientHistory):
            raise ParameterError(
                f"fit() takes a PatientHistory, got {type(history).__name__}; build one with "
                "PatientHistory.from_frames(cgm, events)"
            )
        if history.cgm.empty:
            raise ParameterError("the history has no CGM readings; nothing to calibrate against")
        dt = float(solver.dt)
        if abs(grid_min / dt - round(grid_min / dt)) > 1e-9 or grid_min < dt:
            raise ConfigurationError(
                f"grid_min={grid_min:g} must be a multiple of the solver step {dt:g} min"
            )
        # Readings at the same instant (after rounding to a millisecond) are averaged.
        rounded = history.cgm.assign(time=history.cgm["time"].dt.round("ms"))
        cgm = rounded.groupby("time", as_index=False)["glucose_mg_dl"].mean()
        origin = cgm["time"].iloc[0]
        t = ((cgm["time"] - origin).dt.total_seconds() / 60.0).to_numpy(float)
        y = cgm["glucose_mg_dl"].to_numpy(float)
        n_grid = max(2, math.ceil(t[-1] / grid_min - 1e-9) + 1)
        grid = np.arange(n_grid) * grid_min
        index = np.minimum(np.floor(t / grid_min + 1e-9).astype(int), n_grid - 2)
        weight = np.clip(t / grid_min - index, 0.0, 1.0)
        t_end = grid[-1]
        # events the simulated span covers; the basal rate in force at the origin carries over
        end = origin + pd.Timedelta(minutes=t_end - dt / 2)
        schedule = history.between(origin, end).schedule(origin, round_to_min=dt)
        ev = history.events
        before = ev[(ev["kind"] == "basal") & (ev["time"] < origin)]
        if len(before):
            schedule = Schedule().basal(0.0, float(before["value"].iloc[-1])) + schedule
        return cls(
            times=cgm["time"],
            t_min=t,
            y=y,
            used=t >= warmup_min,
            grid=grid,
            index=index,
            weight=weight,
            schedule=schedule,
        )


# ---------------------------------------------------------------------------------------------
# The objective and its optimisation
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _Noise:
    """An AR(p) error: ``e_i = sum_k ar[k] e_{i-1-k} + sd * innovation``."""

    ar: np.ndarray
    sd: float


@dataclass(frozen=True)
class _Problem:
    y: np.ndarray
    rows: np.ndarray  # readings whose p predecessors lie in the same run of regular readings
    lags: np.ndarray  # (len(rows), p): the index of each predecessor
    mu: np.ndarray
    prior_sd: np.ndarray
    obs_sd: float | None

    @classmethod
    def build(
        cls,
        y: np.ndarray,
        t_min: np.ndarray,
        order: int,
        mu: np.ndarray,
        prior_sd: np.ndarray,
        obs_sd: float | None,
    ) -> _Problem:
        # A run is a stretch of readings at the usual spacing; a gap or a jitter of half the
        # spacing starts a new run, and the first ``order`` readings of a run are conditioned on.
        dt = np.diff(t_min)
        usual = float(np.median(dt)) if dt.size else 1.0
        regular = np.abs(dt - usual) <= 0.5 * usual
        run_start = np.concatenate([[0], np.flatnonzero(~regular) + 1])
        position = (
            np.arange(y.size)
            - run_start[np.searchsorted(run_start, np.arange(y.size), "right") - 1]
        )
        rows = np.flatnonzero(position >= order)
        lags = rows[:, None] - np.arange(1, order + 1)[None, :]
        return cls(y, rows, lags, mu, prior_sd, obs_sd)

    def innovations(self, e: np.ndarray, ar: np.ndarray) -> np.ndarray:
        """``e_i - sum_k ar[k] e_{i-1-k}`` for the conditioned rows (e: readings first)."""
        out = e[self.rows]
        for k in range(ar.size):
            out = out - ar[k] * e[self.lags[:, k]]
        return out

    def noise_for(self, e: np.ndarray) -> _Noise:
        """The error model maximising the (conditional) likelihood of the errors ``e``."""
        order = self.lags.shape[1]
        if order:
            design = e[self.lags]
            ar = np.linalg.lstsq(design, e[self.rows], rcond=None)[0]
        else:
            ar = np.zeros(0)
        if self.obs_sd is not None:
            return _Noise(ar, float(self.obs_sd))
        eta = self.innovations(e, ar)
        return _Noise(ar, max(math.sqrt(float(np.mean(eta**2))), 1e-9))

    def objective(self, theta: np.ndarray, pred: np.ndarray, noise: _Noise) -> float:
        """Negative log posterior up to a constant."""
        eta = self.innovations(self.y - pred, noise.ar) / noise.sd
        z = (theta - self.mu) / self.prior_sd
        return float(0.5 * np.sum(eta**2) + eta.size * math.log(noise.sd) + 0.5 * np.sum(z**2))

    def normal_equations(
        self, theta: np.ndarray, pred: np.ndarray, jac: np.ndarray, noise: _Noise
    ) -> tuple[np.ndarray, np.ndarray]:
        """Gradient and Gauss-Newton Hessian of :meth:`objective` with respect to ``theta``."""
        eta = self.innovations(self.y - pred, noise.ar) / noise.sd
        jeta = -self.innovations(jac, noise.ar) / noise.sd
        precision = 1.0 / self.prior_sd**2
        grad = jeta.T @ eta + precision * (theta - self.mu)
        hess = jeta.T @ jeta + np.diag(precision)
        return grad, hess


@dataclass(frozen=True)
class _Result:
    theta: np.ndarray
    cov: np.ndarray
    noise: _Noise
    value: float
    n_iter: int
    converged: bool


def _levenberg_marquardt(
    problem: _Problem,
    theta0: np.ndarray,
    predict: Callable[[jax.Array], jax.Array],
    value_and_jacobian: Callable[[jax.Array], tuple[jax.Array, jax.Array]],
    max_iter: int,
    tol: float,
) -> _Result:
    theta = np.asarray(theta0, dtype=float)
    pred, jac = (np.asarray(a) for a in value_and_jacobian(jnp.asarray(theta)))
    if not (np.isfinite(pred).all() and np.isfinite(jac).all()):
        raise SimulationError(
            "the simulation at the starting parameters is not finite; check base_params and "
            "the history's events"
        )
    noise = problem.noise_for(problem.y - pred)
    value = problem.objective(theta, pred, noise)
    lam = 1e-3
    converged = False
    n_iter = 0
    for n_iter in range(1, max_iter + 1):  # noqa: B007  (n_iter is reported)
        grad, hess = problem.normal_equations(theta, pred, jac, noise)
        accepted = False
        while lam < 1e10:
            step = np.linalg.solve(hess + lam * np.diag(np.diag(hess)), -grad)
            biggest = float(np.max(np.abs(step)))
            if biggest > 1.0:  # at most a factor e per iteration keeps the simulation sane
                step = step / biggest
            trial = theta + step
            trial_pred = np.asarray(predict(jnp.asarray(trial)))
            if np.isfinite(trial_pred).all():
                trial_value = problem.objective(trial, trial_pred, noise)
                if trial_value < value:
                    accepted = True
                    break
            lam *= 4.0
        if not accepted:
            converged = True  # no descent direction left at machine precision
            break
        lam = max(lam / 4.0, 1e-9)
        theta = trial
        pred, jac = (np.asarray(a) for a in value_and_jacobian(jnp.asarray(theta)))
        noise = problem.noise_for(problem.y - pred)
        new_value = problem.objective(theta, pred, noise)
        small = float(np.max(np.abs(step))) < 1e-3
        if (value - new_value) <= tol * (1.0 + abs(new_value)) and small:
            value = new_value
            converged = True
            break
        value = new_value
    _, hess = problem.normal_equations(theta, pred, jac, noise)
    cov = np.linalg.inv(hess)
    cov = 0.5 * (cov + cov.T)
    return _Result(theta, cov, noise, value, n_iter, converged)
