"""Virtual cohorts: populations with correlated covariates and inter-individual variability.

:class:`PopulationModel` samples a :class:`VirtualPopulation` reproducibly in chunks (the same
seed gives the same subjects on one worker or many); :func:`simulate_population` and
:func:`exposures` run it under a regimen.
"""

from __future__ import annotations

from medtwin.trials.population import (
    CovariateDistribution,
    PopulationModel,
    VirtualPopulation,
    exposures,
    simulate_population,
)

__all__ = [
    "CovariateDistribution",
    "PopulationModel",
    "VirtualPopulation",
    "exposures",
    "simulate_population",
]
