"""The patient twin: model + patient + posterior + state; forecast, risk, what-if; the test bench."""

from __future__ import annotations

from medtwin.twin._twin import Forecast, Twin
from medtwin.twin.bench import BenchPatient, make_bench

__all__ = ["BenchPatient", "Forecast", "Twin", "make_bench"]
