"""Population estimation: nonlinear mixed-effects models fitted by FOCE-I or Laplace.

A :class:`PopulationModel` is a JAX prediction function ``predict(theta, eta, subject)`` with
fixed effects, random effects (diagonal or full Omega) and a residual error model
(:class:`Additive`, :class:`Proportional`, :class:`Combined`); :class:`PopulationData` holds the
subjects' observations padded to a rectangle; :class:`NLMEEstimator` fits the model (EBEs,
standard errors, PRED/IPRED/CWRES, shrinkage); :func:`empirical_bayes` gives MAP random effects
for fixed population parameters; :func:`simulate_observations`, :func:`vpc`, :func:`plot_gof`,
:func:`plot_individual_fits` and :func:`plot_vpc` are the simulation and diagnostics.
"""

from __future__ import annotations

from medtwin.calibrate.population._data import PopulationData
from medtwin.calibrate.population._estimator import EmpiricalBayes, NLMEEstimator, empirical_bayes
from medtwin.calibrate.population._model import (
    Additive,
    Combined,
    PopulationModel,
    PredictFunction,
    Proportional,
    ResidualError,
)
from medtwin.calibrate.population._plot import plot_gof, plot_individual_fits, plot_vpc
from medtwin.calibrate.population._vpc import simulate_observations, vpc

__all__ = [
    "Additive",
    "Combined",
    "EmpiricalBayes",
    "NLMEEstimator",
    "PopulationData",
    "PopulationModel",
    "PredictFunction",
    "Proportional",
    "ResidualError",
    "empirical_bayes",
    "plot_gof",
    "plot_individual_fits",
    "plot_vpc",
    "simulate_observations",
    "vpc",
]
