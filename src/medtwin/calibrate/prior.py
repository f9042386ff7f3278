"""The population prior as a twin's starting posterior: no fitting, instant start.

A service that starts monitoring a patient with an hour of data cannot wait for a MAP fit
(seconds per patient, tens of seconds to compile in a fresh process).  :class:`PriorCalibrator`
gives the twin the model's population prior over the same parameters :class:`MAPEstimator`
estimates, so the twin starts at once and the filter personalises the parameters as readings
arrive (its joint state-parameter update); a MAP fit can replace it later.

>>> from medtwin.models import UvaPadova2008
>>> cal = PriorCalibrator(UvaPadova2008).fit(None)
>>> cal.posterior_.names
('Vmx', 'kp3', 'kp1', 'kabs')
>>> round(cal.posterior_.median["Vmx"], 4) == round(UvaPadova2008.param("Vmx").prior.median, 4)
True
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from medtwin.calibrate.map import _base_params, _estimated_names, _log_prior
from medtwin.calibrate.posterior import LaplacePosterior
from medtwin.errors import NotCalibratedError
from medtwin.history import PatientHistory
from medtwin.models import AbstractModel, UvaPadova2008

__all__ = ["PriorCalibrator"]


class PriorCalibrator:
    """Posterior = the model's LogNormal population prior over ``estimate``; ignores the data.

    Parameters
    ----------
    model:
        The model (class or instance).
    estimate:
        Parameters the twin's filter will personalise (default: the model's MAP default set).
    base_params:
        Known values of other parameters (a body weight, say); the rest take their defaults.
    prior_scale:
        Multiplies every prior SD.
    """

    def __init__(
        self,
        model: AbstractModel | type[AbstractModel] = UvaPadova2008,
        estimate: Sequence[str] | None = None,
        *,
        base_params: Mapping[str, Any] | None = None,
        prior_scale: float = 1.0,
    ) -> None:
        self.model = model
        self.estimate = estimate
        self.base_params = base_params
        self.prior_scale = prior_scale

    def fit(self, history: PatientHistory | None) -> PriorCalibrator:
        """Set ``params_`` and ``posterior_`` from the prior (``history`` is not used)."""
        cls = self.model if isinstance(self.model, type) else type(self.model)
        names = _estimated_names(cls, self.estimate)
        priors = [_log_prior(cls, n) for n in names]
        mean = np.array([m for m, _ in priors])
        sd = np.array([s for _, s in priors]) * float(self.prior_scale)
        self.params_ = _base_params(cls, self.base_params) | {
            n: float(np.exp(m)) for n, m in zip(names, mean, strict=True)
        }
        self.posterior_ = LaplacePosterior(tuple(names), mean, np.diag(sd**2))
        return self

    def __getattr__(self, name: str) -> Any:
        if name in ("params_", "posterior_"):
            raise NotCalibratedError(f"PriorCalibrator.{name} is not available before fit()")
        raise AttributeError(f"{type(self).__name__!r} object has no attribute {name!r}")
