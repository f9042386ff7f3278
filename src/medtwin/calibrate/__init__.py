"""Personalisation and population estimation.

:class:`MAPEstimator` finds the MAP estimate of one patient's parameters and a Laplace posterior
(:class:`LaplacePosterior`); :class:`PriorCalibrator` starts a twin from the population prior (no
fit); :class:`NLMEEstimator` fits a nonlinear mixed-effects :class:`PopulationModel` to many
subjects by FOCE-I or Laplace (:mod:`medtwin.calibrate.population`).
"""

from __future__ import annotations

from medtwin.calibrate.map import DEFAULT_ESTIMATE, MAPEstimator
from medtwin.calibrate.population import (
    Additive,
    Combined,
    NLMEEstimator,
    PopulationData,
    PopulationModel,
    Proportional,
    empirical_bayes,
)
from medtwin.calibrate.posterior import LaplacePosterior
from medtwin.calibrate.prior import PriorCalibrator

__all__ = [
    "DEFAULT_ESTIMATE",
    "Additive",
    "Combined",
    "LaplacePosterior",
    "MAPEstimator",
    "NLMEEstimator",
    "PopulationData",
    "PopulationModel",
    "PriorCalibrator",
    "Proportional",
    "empirical_bayes",
]
