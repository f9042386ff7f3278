"""Sensors and actuators between a patient model and a controller: CGMs and insulin pumps.

Both implement the engine's protocols (:class:`~medtwin.simulate.Sensor`,
:class:`~medtwin.simulate.Pump`) and follow simglucose 0.2.11, whose parameter tables
ship in ``devices/data/``; the factory-calibrated Dexcom G6 follows Vettoretti et al. (2019).
"""

from __future__ import annotations

from medtwin.devices.cgm import CGMSensor, FactoryCalibratedCGM, sensor_named
from medtwin.devices.pump import InsulinPump

__all__ = ["CGMSensor", "FactoryCalibratedCGM", "InsulinPump", "sensor_named"]
