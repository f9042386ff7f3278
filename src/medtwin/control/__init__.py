"""Closed-loop insulin controllers: basal-bolus therapy and PID, as in simglucose 0.2.11.

Each implements the engine's :class:`~medtwin.simulate.Controller` protocol: pure JAX
functions over a batch of patients, with per-patient settings handed out by ``arrays(n)``.
"""

from __future__ import annotations

from medtwin.control.basal_bolus import BasalBolus
from medtwin.control.pid import PID

__all__ = ["PID", "BasalBolus"]
