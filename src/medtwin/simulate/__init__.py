"""The batched simulation engine: schedules, solvers, closed-loop control, solutions."""

from __future__ import annotations

from medtwin.simulate._dosing import DEFAULT_DOSE_SOLVER, simulate_doses
from medtwin.simulate._engine import default_chunk_size, simulate, trajectory_function
from medtwin.simulate._protocols import Controller, ControlObservation, Pump, Sensor
from medtwin.simulate.schedule import CompiledSchedule, Event, Schedule, compile_schedules
from medtwin.simulate.solution import Solution
from medtwin.simulate.solvers import RK4, Adaptive, Solver

__all__ = [
    "DEFAULT_DOSE_SOLVER",
    "RK4",
    "Adaptive",
    "CompiledSchedule",
    "ControlObservation",
    "Controller",
    "Event",
    "Pump",
    "Schedule",
    "Sensor",
    "Solution",
    "Solver",
    "compile_schedules",
    "default_chunk_size",
    "simulate",
    "simulate_doses",
    "trajectory_function",
]
