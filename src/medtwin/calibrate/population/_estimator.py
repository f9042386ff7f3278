"""Population estimation of a nonlinear mixed-effects model by FOCE-I or Laplace.

:class:`NLMEEstimator` maximises the approximate marginal likelihood of a
:class:`~medtwin.calibrate.population.PopulationModel` (the objectives are written out in
``_objective.py``).  The outer problem is BFGS (SciPy) on the unconstrained vector
``[theta, log-Cholesky(Omega), log(sigma)]`` with exact JAX gradients, restarted from where it
stops while it still improves; each evaluation first solves the inner problem (every subject's
eta mode, damped Newton, vectorised over subjects, from the previous evaluation's modes and from
zero, keeping the better).

Standard errors come from the covariance step at the optimum, in the parameterisation reported
(theta, Omega's variances and covariances, sigma) by the delta method:

- ``R``: half the Hessian of the objective (the observed information), by central differences of
  the exact gradient (each difference re-solves the inner problem);
- ``S``: the sum over subjects of the outer products of their score vectors;
- ``covariance="sandwich"`` (default, NONMEM's default): ``R^-1 S R^-1``; ``"r"``: ``R^-1``;
  ``"s"``: ``S^-1``; ``None`` skips the step.

The objective is reported in NONMEM's convention, ``OFV = -2 ln L - n ln(2 pi)``
(``n`` observations), beside the log-likelihood itself.
"""

from __future__ import annotations

import math
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import pandas as pd
import scipy.optimize
from scipy.stats import norm

from medtwin.calibrate.population._data import PopulationData
from medtwin.calibrate.population._model import PopulationModel
from medtwin.calibrate.population._objective import METHODS, Compiled, compiled
from medtwin.errors import ConfigurationError, NotCalibratedError, ParameterError

__all__ = ["EmpiricalBayes", "NLMEEstimator", "empirical_bayes"]

COVARIANCE_METHODS = ("sandwich", "r", "s")

_RESULTS = frozenset(
    {
        "model_",
        "theta_",
        "omega_",
        "sigma_",
        "iiv_sd_",
        "eta_",
        "eta_cov_",
        "ofv_",
        "loglik_",
        "aic_",
        "bic_",
        "n_parameters_",
        "parameters_",
        "covariance_",
        "covariance_ok_",
        "diagnostics_",
        "shrinkage_",
        "n_subjects_",
        "n_observations_",
        "n_iter_",
        "converged_",
        "gradient_",
        "fit_time_s_",
        "data_",
    }
)

LOG_2PI = math.log(2.0 * math.pi)
_RESTARTS = 5


@dataclass(frozen=True, eq=False)
class EmpiricalBayes:
    """Each subject's random effects given the data and fixed population parameters.

    ``mean`` (N, q) are the modes (the empirical Bayes estimates, NONMEM's POSTHOC etas);
    ``cov`` (N, q, q) the Laplace covariance (inverse of half the Hessian of ``l_i``) about them.
    """

    ids: np.ndarray
    names: tuple[str, ...]
    mean: np.ndarray
    cov: np.ndarray
    converged: np.ndarray

    def to_frame(self) -> pd.DataFrame:
        """The modes, one row per subject."""
        return pd.DataFrame(self.mean, index=pd.Index(self.ids, name="ID"), columns=self.names)


def empirical_bayes(model: PopulationModel, data: PopulationData) -> EmpiricalBayes:
    """Random effects of every subject in ``data`` by MAP, the population parameters held fixed.

    This is MAP-Bayesian individualisation (therapeutic drug monitoring): the prior is
    ``eta ~ Normal(0, Omega)``, the likelihood the model's residual error.

    >>> import jax.numpy as jnp, pandas as pd
    >>> from medtwin.calibrate.population import Additive, PopulationData, PopulationModel
    >>> def decay(theta, eta, s):
    ...     return 10.0 * jnp.exp(-jnp.exp(theta["lk"] + eta["eta_k"]) * s["time"])
    >>> m = PopulationModel(decay, {"lk": -1.0}, {"eta_k": 0.1}, Additive(0.1))
    >>> d = PopulationData.from_frame(pd.DataFrame({"ID": 1, "TIME": [1.0, 2.0],
    ...                                             "DV": [5.0, 2.5]}))
    >>> eb = empirical_bayes(m, d)  # k = ln 2 halves 10 each hour: eta = 1 + ln(ln 2) = 0.63
    >>> round(float(eb.mean[0, 0]), 2), eb.cov.shape
    (0.63, (1, 1, 1))
    """
    data = _as_data(data)
    fns = compiled(model, "laplace")
    p = jnp.asarray(fns.layout.pack(model))
    subjects, y, mask = data.subjects(), jnp.asarray(data.dv), jnp.asarray(data.mask)
    eta0 = jnp.zeros((data.n_subjects, fns.layout.q))
    eta, done, _ = fns.inner(p, eta0, subjects, y, mask)
    cov = fns.conditional_cov(p, eta, subjects, y, mask)
    return EmpiricalBayes(
        ids=data.ids,
        names=model.eta_names,
        mean=np.asarray(eta),
        cov=np.asarray(cov),
        converged=np.asarray(done),
    )


class NLMEEstimator:
    """Population (nonlinear mixed-effects) estimation by FOCE-I or Laplace, scikit-learn style.

    Parameters
    ----------
    model:
        The :class:`~medtwin.calibrate.population.PopulationModel`; its parameter values are
        the initial estimates.
    method:
        ``"focei"`` (first-order conditional estimation with interaction) or ``"laplace"``.
    covariance:
        The covariance step: ``"sandwich"`` (``R^-1 S R^-1``, default), ``"r"``
        (inverse Hessian), ``"s"``, or ``None`` to skip it.
    fix:
        Names of fixed effects or residual error parameters held at their initial values.
    max_iter, tol:
        Outer BFGS iterations and the gradient tolerance (objective units per unit of each
        internal parameter).
    inner_tol, inner_max_iter:
        Convergence of each subject's eta mode (gradient of ``l_i``) and its Newton iterations.

    Attributes
    ----------
    model_ : PopulationModel
        The model with the final estimates (for simulation, VPCs, dosing).
    theta_, sigma_ : dict[str, float]
        Fixed effects and residual error parameters.
    omega_ : pandas.DataFrame
        Omega (variances and covariances of the random effects); ``iiv_sd_`` its SDs.
    eta_ : pandas.DataFrame
        Empirical Bayes estimates, one row per subject; ``eta_cov_`` (N, q, q) their
        conditional (Laplace) covariances.
    ofv_, loglik_, aic_, bic_ : float
        Objective in the NONMEM convention (``-2 ln L - n ln 2 pi``), log-likelihood,
        ``AIC = -2 ln L + 2 k``, ``BIC = -2 ln L + k ln n`` (``k = n_parameters_``).
    parameters_ : pandas.DataFrame
        Per parameter: ``estimate``, ``se``, ``rse_pct``, ``lower_95``, ``upper_95``, ``fixed``.
    covariance_ : pandas.DataFrame
        Covariance matrix of the estimated parameters (reported parameterisation);
        ``covariance_ok_`` is False when ``R`` was not positive definite (SEs are NaN).
    diagnostics_ : pandas.DataFrame
        One row per observation: ``ID``, ``TIME``, ``DV``, ``PRED``, ``IPRED``, ``RES``,
        ``IRES``, ``WRES``, ``IWRES``, ``CWRES``.
    shrinkage_ : pandas.Series
        eta-shrinkage per random effect (``1 - SD(eta^)/omega``) and ``epsilon``
        (``1 - SD(IWRES)``).
    n_iter_, converged_, gradient_, fit_time_s_ :
        Outer iterations, convergence (BFGS success, or a final gradient below 1e-3), the
        final gradient, wall time.

    Examples
    --------
    >>> NLMEEstimator(None, method="fo")
    Traceback (most recent call last):
    ...
    medtwin.errors.ConfigurationError: method must be one of ('focei', 'laplace'), got 'fo'
    """

    def __init__(
        self,
        model: PopulationModel | None,
        *,
        method: str = "focei",
        covariance: str | None = "sandwich",
        fix: Sequence[str] = (),
        max_iter: int = 500,
        tol: float = 1e-5,
        inner_tol: float = 1e-8,
        inner_max_iter: int = 50,
    ) -> None:
        if method not in METHODS:
            raise ConfigurationError(f"method must be one of {METHODS}, got {method!r}")
        self.model = model
        self.method = method
        self.covariance = covariance
        self.fix = fix
        self.max_iter = max_iter
        self.tol = tol
        self.inner_tol = inner_tol
        self.inner_max_iter = inner_max_iter

    def __getattr__(self, name: str) -> Any:
        if name in _RESULTS:
            raise NotCalibratedError(
                f"{type(self).__name__}.{name} is not available before fit(); call fit(data)"
            )
        raise AttributeError(f"{type(self).__name__!r} object has no attribute {name!r}")

    def __repr__(self) -> str:
        return f"{type(self).__name__}(method={self.method!r}, covariance={self.covariance!r})"

    # -- fitting -------------------------------------------------------------------------------

    def fit(self, data: PopulationData | pd.DataFrame) -> NLMEEstimator:
        """Estimate the population parameters from ``data``; returns ``self``.

        ``data`` is a :class:`PopulationData`, or a DataFrame with NONMEM's ``ID``, ``TIME`` and
        ``DV`` columns (every other numeric column a covariate).
        """
        started = time.perf_counter()
        model = self._check()
        data = _as_data(data)
        fns = compiled(model, self.method, self.inner_tol, self.inner_max_iter)
        lay = fns.layout
        p_init = lay.pack(model)
        free = self._free_mask(model, lay.size)
        problem = _Outer(fns, data, p_init, free)

        _check_initial_predictions(fns, p_init, data)
        value0, _ = problem.value_and_grad(p_init[free])
        if not math.isfinite(value0):
            raise ParameterError(
                "the objective is not finite at the initial estimates "
                f"{dict(model.theta) | model.sigma}; check the prediction function and the initial "
                "values (a proportional error cannot fit observations predicted as exactly zero)"
            )
        p_free, n_iter, success = p_init[free], 0, False
        best = value0
        for _ in range(_RESTARTS):
            # BFGS restarted from where it stopped (a fresh Hessian approximation) while it
            # stops short of the tolerance and still improves the objective
            res = scipy.optimize.minimize(
                problem.value_and_grad,
                p_free,
                jac=True,
                method="BFGS",
                options={"gtol": float(self.tol), "maxiter": int(self.max_iter) - n_iter},
            )
            n_iter += int(res.nit)
            improved = float(res.fun) < best - 1e-6
            if float(res.fun) <= best:
                p_free, best = np.asarray(res.x, dtype=float), float(res.fun)
            success = bool(res.success)
            if success or not improved or n_iter >= int(self.max_iter):
                break
        ofv, grad = problem.value_and_grad(p_free)
        p_hat = problem.full(p_free)
        eta = problem.eta

        names = lay.report_names()
        report = np.asarray(fns.report(jnp.asarray(p_hat)))
        theta = dict(zip(lay.theta_names, p_hat[: lay.n_theta].tolist(), strict=True))
        chol = np.asarray(lay.chol(jnp.asarray(p_hat)))
        omega = chol @ chol.T
        sigma = dict(
            zip(lay.sigma_names, np.asarray(lay.sigma(jnp.asarray(p_hat))).tolist(), strict=True)
        )
        self.model_ = model.replace(theta=theta, omega=omega, sigma=sigma)
        self.theta_ = theta
        self.sigma_ = sigma
        self.omega_ = pd.DataFrame(omega, index=list(lay.eta_names), columns=list(lay.eta_names))
        self.iiv_sd_ = dict(zip(lay.eta_names, np.sqrt(np.diag(omega)).tolist(), strict=True))
        self.eta_ = pd.DataFrame(
            np.asarray(eta), index=pd.Index(data.ids, name="ID"), columns=list(lay.eta_names)
        )
        args = (data.subjects(), jnp.asarray(data.dv), jnp.asarray(data.mask))
        self.eta_cov_ = np.asarray(fns.conditional_cov(jnp.asarray(p_hat), eta, *args))
        n_obs = data.n_observations
        k = int(free.sum())
        self.ofv_ = float(ofv)
        self.loglik_ = -0.5 * (float(ofv) + n_obs * LOG_2PI)
        self.n_parameters_ = k
        self.aic_ = -2.0 * self.loglik_ + 2.0 * k
        self.bic_ = -2.0 * self.loglik_ + k * math.log(n_obs)
        self.n_subjects_ = data.n_subjects
        self.n_observations_ = n_obs
        self.n_iter_ = n_iter
        self.gradient_ = np.asarray(grad)
        self.converged_ = success or float(np.max(np.abs(grad), initial=0.0)) < 1e-3
        self.data_ = data

        cov_free, ok = self._covariance_step(problem, p_free)
        jac = np.asarray(fns.report_jacobian(jnp.asarray(p_hat)))[:, free]
        cov = jac @ cov_free @ jac.T
        fixed_rows = np.all(jac == 0, axis=1)
        se = np.sqrt(np.clip(np.diag(cov), 0.0, None))
        se[fixed_rows] = np.nan
        z = float(norm.ppf(0.975))
        self.covariance_ok_ = ok
        self.parameters_ = pd.DataFrame(
            {
                "estimate": report,
                "se": se,
                "rse_pct": 100.0 * se / np.abs(report),
                "lower_95": report - z * se,
                "upper_95": report + z * se,
                "fixed": fixed_rows,
            },
            index=pd.Index(names, name="parameter"),
        )
        keep = [n for n, f in zip(names, fixed_rows, strict=True) if not f]
        idx = [names.index(n) for n in keep]
        self.covariance_ = pd.DataFrame(cov[np.ix_(idx, idx)], index=keep, columns=keep)
        self.diagnostics_, self.shrinkage_ = _diagnostics(fns, p_hat, eta, data, omega)
        self.fit_time_s_ = time.perf_counter() - started
        return self

    # -- helpers -------------------------------------------------------------------------------

    def _check(self) -> PopulationModel:
        if not isinstance(self.model, PopulationModel):
            raise ConfigurationError(
                f"model must be a PopulationModel, got {type(self.model).__name__}"
            )
        if self.method not in METHODS:
            raise ConfigurationError(f"method must be one of {METHODS}, got {self.method!r}")
        if self.covariance is not None and self.covariance not in COVARIANCE_METHODS:
            raise ConfigurationError(
                f"covariance must be one of {COVARIANCE_METHODS} or None, got {self.covariance!r}"
            )
        for name in ("max_iter", "inner_max_iter"):
            v = getattr(self, name)
            if not (isinstance(v, int) and v >= 1):
                raise ConfigurationError(f"{name} must be a positive integer, got {v!r}")
        for name in ("tol", "inner_tol"):
            v = getattr(self, name)
            if not (isinstance(v, (int, float)) and math.isfinite(v) and v > 0):
                raise ConfigurationError(f"{name} must be a number > 0, got {v!r}")
        return self.model

    def _free_mask(self, model: PopulationModel, size: int) -> np.ndarray:
        fix = [self.fix] if isinstance(self.fix, str) else list(self.fix)
        allowed = [*model.theta_names, *model.error.names]
        unknown = [f for f in fix if f not in allowed]
        if unknown:
            raise ConfigurationError(
                f"cannot fix {unknown}: fix names fixed effects or residual error parameters "
                f"({allowed})"
            )
        free = np.ones(size, dtype=bool)
        n_theta = len(model.theta_names)
        n_omega = size - n_theta - len(model.error.names)
        for f in fix:
            if f in model.theta_names:
                free[model.theta_names.index(f)] = False
            else:
                free[n_theta + n_omega + model.error.names.index(f)] = False
        return free

    def _covariance_step(self, problem: _Outer, p_free: np.ndarray) -> tuple[np.ndarray, bool]:
        k = p_free.size
        if self.covariance is None:
            return np.full((k, k), np.nan), False
        # R: half the Hessian of the OFV (= of -ln L), central differences of the exact gradient
        hess = np.zeros((k, k))
        for j in range(k):
            h = 1e-4 * max(1.0, abs(p_free[j]))
            e = np.zeros(k)
            e[j] = h
            hess[:, j] = (
                problem.value_and_grad(p_free + e)[1] - problem.value_and_grad(p_free - e)[1]
            ) / (2 * h)
        r_mat = 0.25 * (hess + hess.T)
        scores = 0.5 * problem.subject_gradients(p_free)  # also back to the optimum's etas
        s_mat = scores.T @ scores
        try:
            np.linalg.cholesky(r_mat)
            r_inv = np.linalg.inv(r_mat)
            if self.covariance == "r":
                return r_inv, True
            if self.covariance == "s":
                return np.linalg.inv(s_mat), True
            return r_inv @ s_mat @ r_inv, True
        except np.linalg.LinAlgError:
            return np.full((k, k), np.nan), False


class _Outer:
    """The outer objective as SciPy sees it: free parameters in, (OFV, gradient) out."""

    def __init__(
        self, fns: Compiled, data: PopulationData, p_init: np.ndarray, free: np.ndarray
    ) -> None:
        self.fns = fns
        self.p_init = p_init
        self.free = free
        self.args = (data.subjects(), jnp.asarray(data.dv), jnp.asarray(data.mask))
        self.eta = jnp.zeros((data.n_subjects, fns.layout.q))
        self.subject_grads = np.zeros((data.n_subjects, int(free.sum())))

    def full(self, p_free: np.ndarray) -> np.ndarray:
        p = self.p_init.copy()
        p[self.free] = p_free
        return p

    def value_and_grad(self, p_free: np.ndarray) -> tuple[float, np.ndarray]:
        p = jnp.asarray(self.full(np.asarray(p_free, dtype=float)))
        eta, _, _ = self.fns.inner(p, self.eta, *self.args)
        if not bool(jnp.all(jnp.isfinite(eta))):
            return math.inf, np.zeros(int(self.free.sum()))
        values, grads = self.fns.per_subject(p, eta, *self.args)
        value = float(jnp.sum(values))
        grad = np.asarray(jnp.sum(grads, axis=0))[self.free]
        if not (math.isfinite(value) and np.all(np.isfinite(grad))):
            return math.inf, np.zeros(int(self.free.sum()))
        self.eta = eta  # warm start the next evaluation
        self.subject_grads = np.asarray(grads)[:, self.free]
        return value, grad

    def subject_gradients(self, p_free: np.ndarray) -> np.ndarray:
        """Gradient of each subject's OFV_i (rows) at ``p_free``."""
        self.value_and_grad(p_free)
        return self.subject_grads


def _check_initial_predictions(fns: Compiled, p: np.ndarray, data: PopulationData) -> None:
    """Name the first observation whose typical prediction or variance is unusable."""
    zeros = jnp.zeros((data.n_subjects, fns.layout.q))
    f, r = (np.asarray(a) for a in fns.predictions(jnp.asarray(p), zeros, data.subjects()))
    bad = data.mask & ~(np.isfinite(f) & np.isfinite(r) & (r > 0))
    if bad.any():
        i, j = (int(v[0]) for v in np.nonzero(bad))
        raise ParameterError(
            f"at the initial estimates the prediction for subject {data.ids[i]!r} at time "
            f"{data.time[i, j]:g} is {f[i, j]:g} with residual variance {r[i, j]:g}; the "
            "objective is not finite (a proportional error cannot fit observations predicted "
            "as exactly zero, such as pre-dose samples: use Combined)"
        )


def _as_data(data: PopulationData | pd.DataFrame) -> PopulationData:
    if isinstance(data, PopulationData):
        return data
    if isinstance(data, pd.DataFrame):
        return PopulationData.from_frame(data)
    raise ConfigurationError(
        f"data must be a PopulationData or a pandas DataFrame, got {type(data).__name__}"
    )


def _diagnostics(
    fns: Compiled, p_hat: np.ndarray, eta: jax.Array, data: PopulationData, omega: np.ndarray
) -> tuple[pd.DataFrame, pd.Series]:
    p = jnp.asarray(p_hat)
    subjects, y, mask = data.subjects(), jnp.asarray(data.dv), jnp.asarray(data.mask)
    zeros = jnp.zeros_like(eta)
    pred = np.asarray(fns.predictions(p, zeros, subjects)[0])
    ipred, r_ipred = (np.asarray(a) for a in fns.predictions(p, eta, subjects))
    cwres = np.asarray(fns.linearised(p, eta, subjects, y, mask))
    wres = np.asarray(fns.linearised(p, zeros, subjects, y, mask))
    dv = data.dv
    table = data.to_frame(
        PRED=pred,
        IPRED=ipred,
        RES=dv - pred,
        IRES=dv - ipred,
        WRES=wres,
        IWRES=(dv - ipred) / np.sqrt(r_ipred),
        CWRES=cwres,
    )
    eta_np = np.asarray(eta)
    sd_eta = eta_np.std(axis=0, ddof=1) if eta_np.shape[0] > 1 else np.full(eta_np.shape[1], np.nan)
    shrink = 1.0 - sd_eta / np.sqrt(np.diag(omega))
    iwres = table["IWRES"].to_numpy()
    names = list(fns.layout.eta_names)
    values = [*shrink.tolist(), 1.0 - float(np.std(iwres, ddof=1))]
    return table, pd.Series(values, index=[*names, "epsilon"], name="shrinkage")
