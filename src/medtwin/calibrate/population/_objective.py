"""The FOCE-I and Laplace objectives, the inner (per-subject) problem, and their JAX compilation.

Notation, for subject ``i`` with ``n_i`` observations, prediction ``f`` and variance ``R``::

    l_i(eta) = sum_j [ (y_ij - f_ij(eta))**2 / R_ij(eta) + ln R_ij(eta) ] + eta' Omega^-1 eta

``l_i`` is ``-2 ln[p(y_i | eta) p(eta)]`` without its constants.  The inner problem finds the
mode ``eta_i^ = argmin l_i`` (the empirical Bayes estimate) by damped Newton steps with an exact
Hessian (a positive definite substitute where it is not), all subjects at once, each from two
starts (the previous modes and zero) keeping the lower ``l_i``.  The
subject's contribution to the objective, in the NONMEM convention (``-2 ln L_i - n_i ln 2 pi``)::

    OFV_i = l_i(eta^) + ln|Omega| + ln|H_i|

    Laplace:  H_i = (1/2) d2 l_i / d eta2 at eta^ (the exact Hessian)
    FOCE-I:   H_i = Omega^-1 + sum_j [ g_j g_j' / R_j + (1/2) r_j r_j' / R_j**2 ]

with ``g_j = df_j/deta`` and ``r_j = dR_j/deta`` at ``eta^`` (Almquist et al. 2015, the expected
information of the conditional likelihood; with an additive error it is the Gauss-Newton
Hessian and FOCE-I is FOCE, which is also what nlme's Lindstrom-Bates approximation computes).
For an additive error the FOCE-I objective equals NONMEM's linearised form
``ln|C_i| + e_i' C_i^-1 e_i`` with ``C_i = G Omega G' + R`` and ``e_i = y - f(eta^) + G eta^``.

The outer gradient is exact: ``eta^`` depends on the population parameters, and its derivative
(implicit function theorem, ``deta^/dp = -H^-1 d2l/deta dp``) comes from one Newton step taken
from the stopped-gradient mode inside the differentiated function.

References
----------
Beal SL, Sheiner LB. NONMEM Users Guides, Part VII (FOCE, FOCE-I, Laplace).
Lindstrom MJ, Bates DM (1990). Nonlinear mixed effects models for repeated measures data.
Biometrics 46:673-687.
Almquist J, Leander J, Jirstrand M (2015). Using sensitivity equations for computing gradients
of the FOCE and FOCEI approximations to the population likelihood. J Pharmacokinet
Pharmacodyn 42:191-209.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import jax
import jax.numpy as jnp
import jax.scipy.linalg as jsl
import numpy as np

from medtwin.calibrate.population._model import PopulationModel, PredictFunction, ResidualError

__all__ = ["Layout", "compiled"]

METHODS = ("focei", "laplace")

_ALPHAS = (1.0, 0.5, 0.25, 0.1, 0.03, 0.01, 0.001)  # inner step lengths tried in parallel


def _hessian(f: Callable[..., Any]) -> Callable[..., Any]:
    # forward mode throughout: eta and p have a handful of elements each, and forward-mode
    # graphs of a general closed form (every dose type traced) compile several times faster
    return jax.jacfwd(jax.jacfwd(f))


def _grad(f: Callable[..., Any]) -> Callable[..., Any]:
    return jax.jacfwd(f)


def _value_and_grad_p(f: Callable[..., Any]) -> Callable[..., Any]:
    def both(*args: Any) -> Any:
        v = f(*args)
        return v, v

    def value_and_grad(*args: Any) -> Any:
        g, v = jax.jacfwd(both, has_aux=True)(*args)
        return v, g

    return value_and_grad


@dataclass(frozen=True)
class Layout:
    """Where each population parameter sits in the internal (unconstrained) vector ``p``.

    ``p = [theta, omega, log(sigma)]``; Omega = L L' with ``L`` lower triangular, stored as the
    log of its diagonal followed (full Omega) by its strictly lower elements, row by row.
    """

    theta_names: tuple[str, ...]
    eta_names: tuple[str, ...]
    sigma_names: tuple[str, ...]
    diagonal: bool

    @property
    def n_theta(self) -> int:
        """Number of fixed effects."""
        return len(self.theta_names)

    @property
    def q(self) -> int:
        """Number of random effects."""
        return len(self.eta_names)

    @property
    def n_omega(self) -> int:
        """Number of Omega parameters."""
        return self.q if self.diagonal else self.q * (self.q + 1) // 2

    @property
    def size(self) -> int:
        """Length of ``p``."""
        return self.n_theta + self.n_omega + len(self.sigma_names)

    def pack(self, model: PopulationModel) -> np.ndarray:
        """``p`` for the model's parameter values."""
        chol = np.linalg.cholesky(model.omega_matrix)
        omega = [np.log(np.diag(chol))]
        if not self.diagonal:
            omega.append(chol[np.tril_indices(self.q, -1)])
        return np.concatenate(
            [
                np.asarray([model.theta[n] for n in self.theta_names]),
                *omega,
                np.log(np.asarray(model.error.values)),
            ]
        )

    def chol(self, p: jax.Array) -> jax.Array:
        """Cholesky factor of Omega."""
        s = self.n_theta
        diag = jnp.exp(p[s : s + self.q])
        if self.diagonal:
            return jnp.diag(diag)
        low = (
            jnp.zeros((self.q, self.q))
            .at[jnp.tril_indices(self.q, -1)]
            .set(p[s + self.q : s + self.n_omega])
        )
        return low + jnp.diag(diag)

    def sigma(self, p: jax.Array) -> jax.Array:
        """The residual error parameters (natural scale)."""
        return jnp.exp(p[self.n_theta + self.n_omega :])

    def theta(self, p: jax.Array) -> dict[str, jax.Array]:
        """The fixed effects by name."""
        return {n: p[i] for i, n in enumerate(self.theta_names)}

    def report_names(self) -> list[str]:
        """Names of :meth:`report`'s entries."""
        names = list(self.theta_names)
        for i in range(self.q):
            for j in range(i + 1):
                if i == j:
                    names.append(f"omega2[{self.eta_names[i]}]")
                elif not self.diagonal:
                    names.append(f"omega[{self.eta_names[j]},{self.eta_names[i]}]")
        return names + list(self.sigma_names)

    def report(self, p: jax.Array) -> jax.Array:
        """The parameters as reported: theta, Omega's variances (and covariances), sigma."""
        chol = self.chol(p)
        omega = chol @ chol.T
        if self.diagonal:
            lower = jnp.diag(omega)
        else:
            rows, cols = np.tril_indices(self.q)  # row by row, as report_names
            lower = omega[rows, cols]
        return jnp.concatenate([p[: self.n_theta], lower, self.sigma(p)])


class Compiled:
    """The jitted functions of one model structure and method (shared by every fit of it)."""

    def __init__(
        self,
        predict: PredictFunction,
        error: ResidualError,
        layout: Layout,
        method: str,
        inner_tol: float,
        inner_max_iter: int,
    ) -> None:
        self.layout = layout
        self.method = method
        lay = layout

        def eta_dict(eta: jax.Array) -> dict[str, jax.Array]:
            return {n: eta[i] for i, n in enumerate(lay.eta_names)}

        def f_and_r(eta: jax.Array, p: jax.Array, subj: Any) -> tuple[jax.Array, jax.Array]:
            f = predict(lay.theta(p), eta_dict(eta), subj)
            f = jnp.broadcast_to(jnp.asarray(f, dtype=float), jnp.shape(subj["time"]))
            return f, error.variance(f, lay.sigma(p))

        def l_i(eta: jax.Array, p: jax.Array, subj: Any, y: jax.Array, m: jax.Array) -> jax.Array:
            f, r = f_and_r(eta, p, subj)
            r = jnp.where(m, r, 1.0)
            res = jnp.where(m, y - f, 0.0)
            data = jnp.sum(jnp.where(m, res**2 / r + jnp.log(r), 0.0))
            z = jsl.solve_triangular(lay.chol(p), eta, lower=True)
            return data + z @ z

        def omega_inv(p: jax.Array) -> jax.Array:
            return jsl.cho_solve((lay.chol(p), True), jnp.eye(lay.q))

        def h_focei(eta: jax.Array, p: jax.Array, subj: Any, m: jax.Array) -> jax.Array:
            g, dr = jax.jacfwd(lambda e: f_and_r(e, p, subj))(eta)
            _, r = f_and_r(eta, p, subj)
            w = jnp.where(m, 1.0 / jnp.where(m, r, 1.0), 0.0)
            return omega_inv(p) + (g.T * w) @ g + 0.5 * (dr.T * w**2) @ dr

        def h_laplace(eta: jax.Array, p: jax.Array, subj: Any, y: jax.Array, m: jax.Array) -> Any:
            return 0.5 * _hessian(l_i)(eta, p, subj, y, m)

        def logdet_pd(h: jax.Array) -> jax.Array:
            return 2.0 * jnp.sum(jnp.log(jnp.diag(jnp.linalg.cholesky(h))))

        def ofv_i(eta: jax.Array, p: jax.Array, subj: Any, y: jax.Array, m: jax.Array) -> Any:
            h = h_laplace(eta, p, subj, y, m) if method == "laplace" else h_focei(eta, p, subj, m)
            return (
                l_i(eta, p, subj, y, m)
                + 2.0 * jnp.sum(jnp.log(jnp.diag(lay.chol(p))))
                + (logdet_pd(h))
            )

        def newton_point(e: jax.Array, p: jax.Array, subj: Any, y: jax.Array, m: jax.Array) -> Any:
            # one Newton step from the stopped mode: the same value (the gradient is zero there)
            # and the exact first derivative in p, -H^-1 d2l/deta dp; H is held constant, as its
            # derivative multiplies the zero gradient (this keeps the derivatives of f needed by
            # the objective's gradient to second order for FOCE-I, third for Laplace)
            e = jax.lax.stop_gradient(e)
            g = _grad(l_i)(e, p, subj, y, m)
            h = jax.lax.stop_gradient(_hessian(l_i)(e, p, subj, y, m))
            return e - jnp.linalg.solve(h, g)

        def subject_ofv(p: jax.Array, e: jax.Array, subj: Any, y: jax.Array, m: jax.Array) -> Any:
            return ofv_i(newton_point(e, p, subj, y, m), p, subj, y, m)

        def per_subject(p: jax.Array, eta: jax.Array, subjects: Any, y: Any, m: Any) -> Any:
            # each subject's OFV_i and its gradient in p: their sums are the objective and its
            # gradient, their outer products the covariance step's S matrix (one compilation)
            vg = _value_and_grad_p(subject_ofv)
            return jax.vmap(vg, in_axes=(None, 0, 0, 0, 0))(p, eta, subjects, y, m)

        def newton_step(e: jax.Array, p: jax.Array, subj: Any, y: jax.Array, m: jax.Array) -> Any:
            l0 = l_i(e, p, subj, y, m)
            g = _grad(l_i)(e, p, subj, y, m)
            h = _hessian(l_i)(e, p, subj, y, m)
            ok = jnp.all(jnp.isfinite(jnp.linalg.cholesky(h)))
            # away from the mode the Hessian may be indefinite: fall back to a positive definite
            # matrix (prior precision plus the Hessian's diagonal); the line search does the rest
            fallback = 2.0 * omega_inv(p) + jnp.diag(jnp.abs(jnp.diag(h)))
            h = jnp.where(ok, h, fallback)
            d = -jnp.linalg.solve(h, g)
            alphas = jnp.asarray(_ALPHAS)
            vals = jax.vmap(lambda a: l_i(e + a * d, p, subj, y, m))(alphas)
            vals = jnp.where(jnp.isfinite(vals), vals, jnp.inf)
            k = jnp.argmin(vals)
            better = vals[k] < l0
            new = jnp.where(better, e + alphas[k] * d, e)
            done = (jnp.max(jnp.abs(g)) < inner_tol) | ~better
            return new, done

        def inner(p: jax.Array, eta0: jax.Array, subjects: Any, y: Any, m: Any) -> Any:
            # every subject is solved from two starts, ``eta0`` (the previous evaluation's modes)
            # and zero, and keeps the lower l_i: l_i can have several modes (the flip-flop of
            # absorption and elimination in an oral model), and the warm start alone would make
            # the objective depend on the path the optimiser took
            n = eta0.shape[0]
            both = jax.tree.map(lambda a: jnp.concatenate([a, a]), (subjects, y, m))
            start = jnp.concatenate([eta0, jnp.zeros_like(eta0)])
            step = jax.vmap(newton_step, in_axes=(0, None, 0, 0, 0))

            def body(carry: Any) -> Any:
                eta, done, it = carry
                new, now_done = step(eta, p, *both)
                return jnp.where(done[:, None], eta, new), done | now_done, it + 1

            def cond(carry: Any) -> Any:
                _, done, it = carry
                return (it < inner_max_iter) & ~jnp.all(done)

            init = (start, jnp.zeros(2 * n, dtype=bool), jnp.asarray(0))
            eta, done, it = jax.lax.while_loop(cond, body, init)
            value = jax.vmap(l_i, in_axes=(0, None, 0, 0, 0))(eta, p, *both)
            value = jnp.where(jnp.isfinite(value), value, jnp.inf)
            warm = value[:n] <= value[n:]
            pick = jnp.where(warm[:, None], eta[:n], eta[n:])
            return pick, jnp.where(warm, done[:n], done[n:]), it

        def conditional_cov(p: jax.Array, eta: jax.Array, subjects: Any, y: Any, m: Any) -> Any:
            # the Laplace covariance of each eta given the data: (1/2 d2 l/deta2)^-1
            h = jax.vmap(h_laplace, in_axes=(0, None, 0, 0, 0))(eta, p, subjects, y, m)
            return jnp.linalg.inv(h)

        def predictions(p: jax.Array, eta: jax.Array, subjects: Any) -> Any:
            return jax.vmap(lambda e, s: f_and_r(e, p, s))(eta, subjects)

        def linearised(p: jax.Array, eta: jax.Array, subjects: Any, y: Any, m: Any) -> Any:
            # weighted residuals of the model linearised at eta (CWRES at eta^, WRES at 0)
            def one(e: jax.Array, s: Any, yy: jax.Array, mm: jax.Array) -> jax.Array:
                f, r = f_and_r(e, p, s)
                g = jax.jacfwd(lambda v: f_and_r(v, p, s)[0])(e)
                g = jnp.where(mm[:, None], g, 0.0)
                omega = lay.chol(p) @ lay.chol(p).T
                c = g @ omega @ g.T + jnp.diag(jnp.where(mm, r, 1.0))
                resid = jnp.where(mm, yy - (f - g @ e), 0.0)
                w, v = jnp.linalg.eigh(c)
                return (v * (1.0 / jnp.sqrt(w))) @ v.T @ resid  # symmetric C^-1/2

            return jax.vmap(one)(eta, subjects, y, m)

        self.inner: Callable[..., Any] = jax.jit(inner)
        self.per_subject: Callable[..., Any] = jax.jit(per_subject)
        self.conditional_cov: Callable[..., Any] = jax.jit(conditional_cov)
        self.predictions: Callable[..., Any] = jax.jit(predictions)
        self.linearised: Callable[..., Any] = jax.jit(linearised)
        self.report: Callable[..., Any] = jax.jit(layout.report)
        self.report_jacobian: Callable[..., Any] = jax.jit(jax.jacfwd(layout.report))


def layout_of(model: PopulationModel) -> Layout:
    """The internal layout of a model's parameters."""
    return Layout(model.theta_names, model.eta_names, model.error.names, bool(model.diagonal))


def compiled(
    model: PopulationModel, method: str, inner_tol: float = 1e-8, inner_max_iter: int = 50
) -> Compiled:
    """The (cached) compiled functions for ``model``'s structure and ``method``."""
    return _compiled(
        model.predict,
        type(model.error),
        layout_of(model),
        method,
        float(inner_tol),
        int(inner_max_iter),
        model.error,
    )


_CACHE: dict[tuple[Any, ...], Compiled] = {}


def _compiled(
    predict: PredictFunction,
    error_type: type,
    layout: Layout,
    method: str,
    inner_tol: float,
    inner_max_iter: int,
    error: ResidualError,
) -> Compiled:
    # keyed on the structure only: the error model's values enter through p, never the trace
    key = (predict, error_type, layout, method, inner_tol, inner_max_iter)
    hit = _CACHE.get(key)
    if hit is None:
        if len(_CACHE) >= 64:
            _CACHE.pop(next(iter(_CACHE)))
        hit = _CACHE[key] = Compiled(predict, error, layout, method, inner_tol, inner_max_iter)
    return hit
