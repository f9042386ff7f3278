"""Write ``simglucose_devices.json``: simglucose 0.2.11's CGM noise and pump outputs.

Run with the simglucose venv (``tools/simglucose_venv.sh``) from the repository root::

    .venv-simglucose/bin/python tests/devices/data/make_simglucose_devices.py
"""

from __future__ import annotations

import json
from importlib.metadata import version
from pathlib import Path

OUT = Path(__file__).with_name("simglucose_devices.json")

# (sensor, sample time override or None, seed, readings): each crosses at least one 150-min window.
CGM_CASES = [
    ("Dexcom", None, 1, 120),
    ("GuardianRT", None, 2, 70),
    ("Navigator", None, 3, 320),
    ("Dexcom", 7.0, 4, 50),  # 150/7 is not whole: 21 readings per window, then a restart
]

# Requested rates in U/min: negative, zero, below one increment, near ties, typical basal and
# bolus rates, and beyond both pumps' limits.
RATES = [
    -0.5,
    0.0,
    1e-6,
    4.1e-6,
    4.2e-6,
    0.025 / 6000,
    0.075 / 6000,
    0.0123456,
    0.0133,
    0.02,
    0.1,
    1.0 / 3.0,
    2.7183,
    12.5,
    29.99999,
    30.0,
    30.00001,
    34.99,
    35.2,
    75.0,
    80.0,
]


def main() -> None:
    import logging

    import numpy as np
    import pandas as pd
    from simglucose.actuator.pump import INSULIN_PUMP_PARA_FILE, InsulinPump
    from simglucose.sensor.cgm import SENSOR_PARA_FILE
    from simglucose.sensor.noise_gen import CGMNoise

    logging.disable(logging.CRITICAL)
    sensors = pd.read_csv(SENSOR_PARA_FILE)
    cgm = []
    for name, sample_time, seed, n in CGM_CASES:
        params = sensors.loc[sensors.Name == name].squeeze().copy()
        if sample_time is not None:
            params["sample_time"] = sample_time
        gen = CGMNoise(params, seed=seed)
        cgm.append(
            {
                "sensor": name,
                "sample_time": float(params["sample_time"]),
                "seed": seed,
                "noise": [float(next(gen)) for _ in range(n)],
            }
        )
    pumps = {}
    for name in pd.read_csv(INSULIN_PUMP_PARA_FILE).Name:
        pump = InsulinPump.withName(name)
        pumps[name] = {
            "basal": [float(pump.basal(r)) for r in RATES],
            "bolus": [float(pump.bolus(r)) for r in RATES],
        }
    out = {
        "source": f"simglucose {version('simglucose')}, numpy {np.__version__}; "
        "tests/devices/data/make_simglucose_devices.py",
        "cgm": cgm,
        "pump_rates_u_per_min": RATES,
        "pump": pumps,
    }
    OUT.write_text(json.dumps(out, indent=1) + "\n", encoding="utf-8")


if __name__ == "__main__":
    main()
