"""The Laplace approximation of a posterior: a multivariate normal over log-parameters."""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import pandas as pd
from scipy.stats import norm

from medtwin.errors import ParameterError

__all__ = ["LaplacePosterior"]


@dataclass(frozen=True, slots=True, eq=False)
class LaplacePosterior:
    """``log(theta) ~ Normal(mean_log, cov_log)`` over the parameters ``names``.

    The mean is the MAP estimate in log space; the covariance is the inverse of the Hessian of
    the negative log posterior there (Gauss-Newton), so the natural-scale marginals are
    log-normal and their intervals are asymmetric.

    >>> import numpy as np
    >>> post = LaplacePosterior(("Vmx",), np.log([0.05]), np.array([[0.1**2]]))
    >>> round(float(post.interval(0.95).loc["Vmx", "upper"]), 4)
    0.0608
    >>> post.sample(1000, seed=0)["Vmx"].shape
    (1000,)
    """

    names: tuple[str, ...]
    mean_log: np.ndarray
    cov_log: np.ndarray

    def __post_init__(self) -> None:
        k = len(self.names)
        if np.shape(self.mean_log) != (k,) or np.shape(self.cov_log) != (k, k):
            raise ParameterError(
                f"a posterior over {k} parameters needs mean_log of shape ({k},) and cov_log "
                f"of shape ({k}, {k}); got {np.shape(self.mean_log)} and {np.shape(self.cov_log)}"
            )

    @property
    def sd_log(self) -> np.ndarray:
        """Posterior standard deviation of each log-parameter."""
        return np.sqrt(np.diag(self.cov_log))

    @property
    def corr(self) -> pd.DataFrame:
        """Posterior correlation matrix of the log-parameters."""
        sd = self.sd_log
        return pd.DataFrame(
            self.cov_log / np.outer(sd, sd), index=list(self.names), columns=list(self.names)
        )

    @property
    def median(self) -> dict[str, float]:
        """Posterior median on the natural scale (the MAP estimate mapped back from log space)."""
        return {n: float(math.exp(m)) for n, m in zip(self.names, self.mean_log, strict=True)}

    def sample(self, n: int, seed: int = 0) -> dict[str, np.ndarray]:
        """Draw ``n`` parameter vectors (natural scale), one array of length ``n`` per name."""
        if not (isinstance(n, int) and n >= 1):
            raise ParameterError(f"n must be a positive integer, got {n!r}")
        rng = np.random.default_rng(seed)
        chol = np.linalg.cholesky(self.cov_log)
        z = rng.standard_normal((n, len(self.names)))
        draws = np.exp(self.mean_log + z @ chol.T)
        return {name: draws[:, i] for i, name in enumerate(self.names)}

    def interval(self, level: float = 0.95) -> pd.DataFrame:
        """Central credible intervals per parameter (natural scale).

        Columns: ``estimate`` (the MAP value), ``lower``, ``upper``, ``sd_log``.
        """
        if not 0 < level < 1:
            raise ParameterError(f"level must lie in (0, 1), got {level!r}")
        z = float(norm.ppf(0.5 + level / 2))
        sd = self.sd_log
        return pd.DataFrame(
            {
                "estimate": np.exp(self.mean_log),
                "lower": np.exp(self.mean_log - z * sd),
                "upper": np.exp(self.mean_log + z * sd),
                "sd_log": sd,
            },
            index=pd.Index(list(self.names), name="parameter"),
        )
