"""Personalisation: a model's parameters estimated from one patient's data.

:class:`MAPEstimator` finds the MAP estimate and a Laplace posterior (:class:`LaplacePosterior`);
:class:`PriorCalibrator` starts a twin from the population prior (no fit).
"""

from __future__ import annotations

from medtwin.calibrate.map import DEFAULT_ESTIMATE, MAPEstimator
from medtwin.calibrate.posterior import LaplacePosterior
from medtwin.calibrate.prior import PriorCalibrator

__all__ = ["DEFAULT_ESTIMATE", "LaplacePosterior", "MAPEstimator", "PriorCalibrator"]
