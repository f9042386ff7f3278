"""The batched simulation engine: schedules, solvers, closed-loop control, solutions."""

from __future__ import annotations

from medtwin.simulate._engine import default_chunk_size, simulate, trajectory_function
from medtwin.simulate._protocols import Controller, ControlObservation, Pump, Sensor
from medtwin.simulate.schedule import CompiledSchedule, Event, Schedule, compile_schedules
from medtwin.simulate.solution import Solution
from medtwin.simulate.solvers import RK4, Adaptive, Solver

__all__ = [
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
    "trajectory_function",
]
