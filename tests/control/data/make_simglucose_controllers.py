"""Write ``simglucose_controllers.json``: outputs of simglucose 0.2.11's BB and PID controllers.

Run with the simglucose venv (``tools/simglucose_venv.sh``) from the repository root::

    .venv-simglucose/bin/python tests/control/data/make_simglucose_controllers.py
"""

from __future__ import annotations

import json
from importlib.metadata import version
from pathlib import Path

OUT = Path(__file__).with_name("simglucose_controllers.json")

BB_PATIENTS = ["adolescent#001", "adult#005", "child#010"]
BB_GLUCOSE = [60.0, 100.0, 150.0, 150.5, 200.0, 320.0]
BB_MEAL_G_PER_MIN = [0.0, 0.2, 5.0, 9.0]
BB_SAMPLE_TIME = [1.0, 3.0, 5.0]

PID_GLUCOSE = [140.0, 180.0, 250.0, 230.0, 150.0, 90.0, 60.0, 110.0, 200.0, 400.0]
PID_CASES = [
    # (P, I, D, target, sample_time)
    (1e-4, 0.0, 0.0, 140.0, 1.0),
    (1e-4, 1e-6, 0.0, 140.0, 5.0),
    (1e-4, 1e-7, 1e-3, 120.0, 3.0),
    (2e-3, -1e-6, 5e-4, 110.0, 1.0),
]


def main() -> None:
    import logging
    from collections import namedtuple

    from simglucose.controller.basal_bolus_ctrller import BBController
    from simglucose.controller.pid_ctrller import PIDController

    logging.disable(logging.CRITICAL)
    Observation = namedtuple("Observation", ["CGM"])

    bb = []
    ctrl = BBController(target=140)
    for name in BB_PATIENTS:
        for glucose in BB_GLUCOSE:
            for meal in BB_MEAL_G_PER_MIN:
                for sample_time in BB_SAMPLE_TIME:
                    action = ctrl.policy(
                        Observation(glucose),
                        0.0,
                        False,
                        sample_time=sample_time,
                        patient_name=name,
                        meal=meal,
                    )
                    bb.append(
                        {
                            "patient": name,
                            "glucose_mg_dl": glucose,
                            "meal_g_per_min": meal,
                            "sample_time_min": sample_time,
                            "basal_u_per_min": float(action.basal),
                            "bolus_u_per_min": float(action.bolus),
                        }
                    )

    pid = []
    for p, i, d, target, sample_time in PID_CASES:
        ctrl = PIDController(P=p, I=i, D=d, target=target)
        out = []
        for glucose in PID_GLUCOSE:
            action = ctrl.policy(Observation(glucose), 0.0, False, sample_time=sample_time)
            out.append(float(action.basal))
        pid.append(
            {
                "P": p,
                "I": i,
                "D": d,
                "target_mg_dl": target,
                "sample_time_min": sample_time,
                "glucose_mg_dl": PID_GLUCOSE,
                "control_u_per_min": out,
            }
        )

    out_json = {
        "source": f"simglucose {version('simglucose')}; "
        "tests/control/data/make_simglucose_controllers.py",
        "basal_bolus": bb,
        "pid": pid,
    }
    OUT.write_text(json.dumps(out_json, indent=1) + "\n", encoding="utf-8")


if __name__ == "__main__":
    main()
