"""Keeping a twin in sync: ensemble Kalman filter and particle filter over the batched engine.

Both filters share one API: ``init`` makes an :class:`Ensemble` (from a prior, a posterior or a
patient's parameters), ``update(ensemble, t, reading, schedule)`` propagates it to the reading's
time and assimilates the reading, ``propagate`` advances it over a gap.  Ensembles are immutable
values; each carries the :class:`UpdateInfo` of the update that made it.
"""

from __future__ import annotations

from medtwin.assimilate._ensemble import Ensemble, UpdateInfo, simulate_members
from medtwin.assimilate.enkf import EnsembleKalmanFilter
from medtwin.assimilate.particle import ParticleFilter, systematic_resample, update_many

__all__ = [
    "Ensemble",
    "EnsembleKalmanFilter",
    "ParticleFilter",
    "UpdateInfo",
    "simulate_members",
    "systematic_resample",
    "update_many",
]
