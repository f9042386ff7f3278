"""The patient twin: model + patient + posterior + state; forecast, risk, what-if; the test bench.

:class:`DosingTwin` (:mod:`medtwin.twin.dosing`) is the pharmacokinetic twin of model-informed
precision dosing.
"""

from __future__ import annotations

from medtwin.twin._twin import Forecast, Twin, forecast_many, observe_many
from medtwin.twin.bench import BenchPatient, make_bench
from medtwin.twin.dosing import DosingTwin, PopulationPK, TDMHistory, vancomycin_goti2018

__all__ = [
    "BenchPatient",
    "DosingTwin",
    "Forecast",
    "PopulationPK",
    "TDMHistory",
    "Twin",
    "forecast_many",
    "make_bench",
    "observe_many",
    "vancomycin_goti2018",
]
