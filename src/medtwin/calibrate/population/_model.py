"""A nonlinear mixed-effects model: a prediction function, fixed and random effects, residual error.

The statistical model for observation ``j`` of subject ``i``::

    y_ij = f(theta, eta_i, subject_i)(t_ij) + sqrt(R_ij) * eps_ij,   eps_ij ~ Normal(0, 1)
    eta_i ~ Normal(0, Omega)                  (inter-individual variability)
    R_ij = g(f_ij; sigma)                     (additive, proportional or combined error)

``f`` is any JAX-traceable function of the fixed effects ``theta``, the subject's random
effects ``eta`` (both mappings from name to scalar) and the subject's data (its observation
times ``subject["time"]``, its covariates and, where the data hold them, its doses): typically
:func:`medtwin.models.pk.concentration` of a PK model at individual parameters.  Which
parameters carry random effects, and how (``CL = exp(tcl + eta_cl)``, ``CL = tcl * exp(eta)``),
is written in ``f``: the estimator only sees names.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Protocol

import jax
import jax.numpy as jnp
import numpy as np
import pandas as pd

from medtwin.errors import ModelDefinitionError, ParameterError

__all__ = [
    "Additive",
    "Combined",
    "PopulationModel",
    "PredictFunction",
    "Proportional",
    "ResidualError",
]

PredictFunction = Callable[
    [Mapping[str, jax.Array], Mapping[str, jax.Array], Mapping[str, jax.Array]], jax.Array
]
"""``predict(theta, eta, subject) -> predictions at subject["time"]`` (a JAX function)."""


class ResidualError(Protocol):
    """A residual error model: named positive parameters and the variance they give."""

    @property
    def names(self) -> tuple[str, ...]:
        """Names of the parameters, in the order of ``values``."""
        ...

    @property
    def values(self) -> tuple[float, ...]:
        """Their values (initial estimates, or the published ones)."""
        ...

    def variance(self, f: jax.Array, sigma: jax.Array) -> jax.Array:
        """Variance ``R`` of observations whose prediction is ``f``, for parameters ``sigma``."""
        ...

    def replace(self, values: tuple[float, ...]) -> ResidualError:
        """The same error model with other parameter values."""
        ...


def _check_positive(owner: str, **values: float) -> None:
    for name, v in values.items():
        if not (isinstance(v, (int, float)) and math.isfinite(v) and v > 0):
            raise ParameterError(f"{owner}: {name} must be a finite number > 0, got {v!r}")


@dataclass(frozen=True, slots=True)
class Additive:
    """Additive error, ``R = sd**2`` (``sd`` in the unit of the observations)."""

    sd: float

    def __post_init__(self) -> None:
        _check_positive("Additive", sd=self.sd)

    @property
    def names(self) -> tuple[str, ...]:
        """``("add_sd",)``."""
        return ("add_sd",)

    @property
    def values(self) -> tuple[float, ...]:
        """``(sd,)``."""
        return (float(self.sd),)

    def variance(self, f: jax.Array, sigma: jax.Array) -> jax.Array:
        """``sd**2`` for every observation."""
        return jnp.broadcast_to(sigma[0] ** 2, jnp.shape(f))

    def replace(self, values: tuple[float, ...]) -> Additive:
        """``Additive(values[0])``."""
        return Additive(float(values[0]))


@dataclass(frozen=True, slots=True)
class Proportional:
    """Proportional error, ``R = (cv * f)**2`` (``cv`` a fraction: 0.1 is 10 %).

    A prediction of exactly zero (a pre-dose sample) has zero variance and an infinite
    objective; use :class:`Combined` for such data.
    """

    cv: float

    def __post_init__(self) -> None:
        _check_positive("Proportional", cv=self.cv)

    @property
    def names(self) -> tuple[str, ...]:
        """``("prop_cv",)``."""
        return ("prop_cv",)

    @property
    def values(self) -> tuple[float, ...]:
        """``(cv,)``."""
        return (float(self.cv),)

    def variance(self, f: jax.Array, sigma: jax.Array) -> jax.Array:
        """``(cv * f)**2``."""
        return (sigma[0] * f) ** 2

    def replace(self, values: tuple[float, ...]) -> Proportional:
        """``Proportional(values[0])``."""
        return Proportional(float(values[0]))


@dataclass(frozen=True, slots=True)
class Combined:
    """Combined error, ``R = sd**2 + (cv * f)**2``.

    This is NONMEM's ``Y = F + F*EPS(1) + EPS(2)`` with independent epsilons and nlmixr2's
    ``add(sd) + prop(cv)`` (its default ``combined2``).
    """

    sd: float
    cv: float

    def __post_init__(self) -> None:
        _check_positive("Combined", sd=self.sd, cv=self.cv)

    @property
    def names(self) -> tuple[str, ...]:
        """``("add_sd", "prop_cv")``."""
        return ("add_sd", "prop_cv")

    @property
    def values(self) -> tuple[float, ...]:
        """``(sd, cv)``."""
        return (float(self.sd), float(self.cv))

    def variance(self, f: jax.Array, sigma: jax.Array) -> jax.Array:
        """``sd**2 + (cv * f)**2``."""
        return sigma[0] ** 2 + (sigma[1] * f) ** 2

    def replace(self, values: tuple[float, ...]) -> Combined:
        """``Combined(values[0], values[1])``."""
        return Combined(float(values[0]), float(values[1]))


@dataclass(frozen=True, eq=False)
class PopulationModel:
    """A nonlinear mixed-effects model (see the module docstring).

    Parameters
    ----------
    predict:
        ``predict(theta, eta, subject) -> jax.Array`` of predictions at ``subject["time"]``;
        ``theta`` and ``eta`` map names to scalars; ``subject`` holds ``time`` (the subject's
        observation times), one scalar per covariate and, where the data hold doses,
        ``doses`` (the subject's :class:`~medtwin.models.pk.DoseTable` row, ready for
        :func:`medtwin.models.pk.concentration`).
    theta:
        Fixed effects: name -> value (initial estimates for a fit, or the final ones).
    omega:
        Random effects: name -> variance (a diagonal Omega), or a square DataFrame indexed
        and labelled by the names (a full Omega).
    error:
        The residual error model: :class:`Additive`, :class:`Proportional` or
        :class:`Combined`.
    diagonal:
        Whether Omega is diagonal (its off-diagonal elements fixed at zero in a fit); default
        ``True`` for a mapping, ``False`` for a DataFrame.

    Examples
    --------
    >>> import jax.numpy as jnp
    >>> def predict(theta, eta, subject):
    ...     return jnp.exp(theta["log_c0"] + eta["eta_c0"]) * jnp.exp(-theta["k"] * subject["time"])
    >>> m = PopulationModel(predict, {"log_c0": 2.0, "k": 0.1}, {"eta_c0": 0.09}, Additive(0.5))
    >>> m.eta_names, m.omega_matrix.tolist()
    (('eta_c0',), [[0.09]])
    """

    predict: PredictFunction
    theta: Mapping[str, float]
    omega: Mapping[str, float] | pd.DataFrame
    error: Additive | Proportional | Combined | ResidualError
    diagonal: bool | None = None

    def __post_init__(self) -> None:
        if not callable(self.predict):
            raise ModelDefinitionError(
                f"predict must be a function (theta, eta, subject) -> predictions, got "
                f"{type(self.predict).__name__}"
            )
        theta = {str(k): float(v) for k, v in dict(self.theta).items()}
        if not theta:
            raise ModelDefinitionError("a population model needs at least one fixed effect")
        bad = {k: v for k, v in theta.items() if not math.isfinite(v)}
        if bad:
            raise ParameterError(f"fixed effects must be finite numbers, got {bad}")
        if isinstance(self.omega, pd.DataFrame):
            names = [str(c) for c in self.omega.columns]
            if [str(i) for i in self.omega.index] != names:
                raise ModelDefinitionError(
                    f"omega DataFrame must have the same labels on rows and columns, got rows "
                    f"{list(self.omega.index)} and columns {names}"
                )
            matrix = self.omega.to_numpy(dtype=float)
            diagonal = (
                bool(np.all(matrix[~np.eye(len(names), dtype=bool)] == 0))
                if self.diagonal is None
                else bool(self.diagonal)
            )
        else:
            names = [str(k) for k in dict(self.omega)]
            matrix = np.diag([float(v) for v in dict(self.omega).values()])
            diagonal = True if self.diagonal is None else bool(self.diagonal)
        if not names:
            raise ModelDefinitionError(
                "a population model needs at least one random effect; for a model without "
                "inter-individual variability fit the pooled data by nonlinear least squares"
            )
        if not np.all(np.isfinite(matrix)) or not np.allclose(matrix, matrix.T):
            raise ParameterError(f"omega must be a finite symmetric matrix, got {matrix.tolist()}")
        if diagonal and np.any(matrix[~np.eye(len(names), dtype=bool)] != 0):
            raise ParameterError(
                "omega has non-zero covariances but diagonal=True; pass diagonal=False to "
                "estimate a full Omega"
            )
        try:
            np.linalg.cholesky(matrix)
        except np.linalg.LinAlgError:
            raise ParameterError(
                f"omega must be positive definite (every variance > 0), got {matrix.tolist()}"
            ) from None
        everything = [*theta, *names, *self.error.names]
        dup = sorted({n for n in everything if everything.count(n) > 1})
        if dup:
            raise ModelDefinitionError(
                f"parameter names must be unique across theta, omega and the error model; "
                f"{dup} appear more than once"
            )
        object.__setattr__(self, "theta", theta)
        object.__setattr__(self, "omega", pd.DataFrame(matrix, index=names, columns=names))
        object.__setattr__(self, "diagonal", diagonal)

    @property
    def theta_names(self) -> tuple[str, ...]:
        """Names of the fixed effects."""
        return tuple(self.theta)

    @property
    def eta_names(self) -> tuple[str, ...]:
        """Names of the random effects, in the order of Omega's rows."""
        assert isinstance(self.omega, pd.DataFrame)
        return tuple(str(c) for c in self.omega.columns)

    @property
    def omega_matrix(self) -> np.ndarray:
        """Omega as a (q, q) array."""
        assert isinstance(self.omega, pd.DataFrame)
        return self.omega.to_numpy(dtype=float)

    @property
    def sigma(self) -> dict[str, float]:
        """The residual error parameters by name."""
        return dict(zip(self.error.names, self.error.values, strict=True))

    def replace(
        self,
        *,
        theta: Mapping[str, float] | None = None,
        omega: np.ndarray | pd.DataFrame | None = None,
        sigma: Mapping[str, float] | None = None,
    ) -> PopulationModel:
        """The same model with other parameter values (fitted ones, say); ``None`` keeps them."""
        new_theta = dict(self.theta) | dict(theta or {})
        if omega is None:
            new_omega: Any = self.omega
        else:
            names = list(self.eta_names)
            new_omega = pd.DataFrame(np.asarray(omega, dtype=float), index=names, columns=names)
        error = self.error
        if sigma is not None:
            error = error.replace(tuple(float(sigma[n]) for n in error.names))
        return dataclasses.replace(
            self, theta=new_theta, omega=new_omega, error=error, diagonal=self.diagonal
        )
