"""Outcome metrics of simulated and measured traces: glycaemic metrics of glucose in mg/dL."""

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

__all__ = [
    "coefficient_of_variation",
    "glycaemic_summary",
    "gmi",
    "hbgi",
    "lbgi",
    "risk_index",
    "time_above",
    "time_below",
    "time_in_range",
]
