"""Outcome metrics of simulated and measured traces: glycaemic metrics, pharmacokinetic NCA."""

from __future__ import annotations

from medtwin.metrics.glucose import (
    coefficient_of_variation,
    glycaemic_summary,
    gmi,
    hbgi,
    lbgi,
    risk_index,
    time_above,
    time_below,
    time_in_range,
)
from medtwin.metrics.nca import auc, exposure, lambda_z, nca

__all__ = [
    "auc",
    "coefficient_of_variation",
    "exposure",
    "glycaemic_summary",
    "gmi",
    "hbgi",
    "lambda_z",
    "lbgi",
    "nca",
    "risk_index",
    "time_above",
    "time_below",
    "time_in_range",
]
