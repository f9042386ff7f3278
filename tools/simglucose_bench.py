"""Time simglucose 0.2.11 on the benchmark workload, for the engine's speed-up ratio.

Run inside the simglucose venv (see ``tools/simglucose_venv.sh``)::

    .venv-simglucose/bin/python tools/simglucose_bench.py

Workload: adult#001..adult#010, one day each, sequentially in one process,
basal-bolus controller (``BBController``, target 140), Dexcom CGM with its
normal noise (seed 1), Insulet pump, meals of 45/70/80/15 g at minutes
60/360/720/960. Prints one JSON line on stdout and nothing else.
"""

from __future__ import annotations

import json
import logging
import time
from datetime import datetime, timedelta
from importlib.metadata import version

from simglucose.actuator.pump import InsulinPump
from simglucose.controller.basal_bolus_ctrller import BBController
from simglucose.patient.t1dpatient import T1DPatient
from simglucose.sensor.cgm import CGMSensor
from simglucose.simulation.env import T1DSimEnv
from simglucose.simulation.scenario import CustomScenario

PATIENTS = [f"adult#{i:03d}" for i in range(1, 11)]
DAYS = 1
MEALS = [(60, 45.0), (360, 70.0), (720, 80.0), (960, 15.0)]
START = datetime(2025, 1, 1, 0, 0)


def run_one(name: str) -> None:
    """Simulate one patient for ``DAYS`` days with the env loop of ``SimObj.simulate``.

    ``SimObj`` itself is avoided because it renders and writes CSV files.
    """
    scenario = CustomScenario(
        start_time=START, scenario=[(timedelta(minutes=m), g) for m, g in MEALS]
    )
    env = T1DSimEnv(
        T1DPatient.withName(name),
        CGMSensor.withName("Dexcom", seed=1),
        InsulinPump.withName("Insulet"),
        scenario,
    )
    ctrl = BBController(target=140)
    ctrl.reset()
    obs, reward, done, info = env.reset()
    end = START + timedelta(days=DAYS)
    while env.time < end:
        action = ctrl.policy(obs, reward, done, **info)
        obs, reward, done, info = env.step(action)


def main() -> None:
    """Run the workload and print its timing as one JSON line."""
    # simglucose logs per step; the JSON line must be the only output.
    logging.disable(logging.CRITICAL)
    tic = time.perf_counter()
    for name in PATIENTS:
        run_one(name)
    wall = time.perf_counter() - tic
    print(
        json.dumps(
            {
                "simglucose_version": version("simglucose"),
                "n_patients": len(PATIENTS),
                "days": DAYS,
                "wall_s": round(wall, 3),
                "patient_days_per_s": round(len(PATIENTS) * DAYS / wall, 4),
            }
        )
    )


if __name__ == "__main__":
    main()
