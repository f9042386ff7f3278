"""Personalisation: a model's parameters estimated from one patient's data.

:class:`MAPEstimator` finds the MAP estimate and a Laplace posterior (:class:`LaplacePosterior`).
"""

from __future__ import annotations

from medtwin.calibrate.map import DEFAULT_ESTIMATE, MAPEstimator
from medtwin.calibrate.posterior import LaplacePosterior

__all__ = ["DEFAULT_ESTIMATE", "LaplacePosterior", "MAPEstimator"]
