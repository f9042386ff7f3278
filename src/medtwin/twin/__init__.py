"""The patient twin: model + patient + posterior + state; forecast, risk, what-if; the test bench."""

from __future__ import annotations

from medtwin.twin.bench import BenchPatient, make_bench

__all__ = ["BenchPatient", "make_bench"]
