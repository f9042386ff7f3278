"""A day of the 10 adult virtual patients under basal-bolus therapy, and their glycaemic metrics.

Run:  python examples/t1d_closed_loop.py
"""

import time

import numpy as np

from medtwin.control import BasalBolus
from medtwin.devices import CGMSensor, InsulinPump
from medtwin.metrics import glycaemic_summary
from medtwin.models import UvaPadova2008, load_patients
from medtwin.simulate import Schedule, simulate

adults = load_patients("adults")

# Three meals, announced to the controller, which boluses CHO/CR plus a correction.
day = Schedule().meal(7 * 60, 45).meal(12 * 60, 70).meal(19 * 60, 80)
t = np.arange(0, 24 * 60 + 1, 5.0)  # minutes, a 5-minute output grid

start = time.perf_counter()
sol = simulate(
    UvaPadova2008,
    day,
    t,
    params=adults.params,
    x0=adults.x0,
    patient_ids=adults.names,
    controller=BasalBolus.for_patients(adults, target_mg_dl=140.0),
    sensor=CGMSensor.named("Dexcom"),
    pump=InsulinPump.named("Insulet"),
    seed=1,
)
print(f"simulated {sol.n_patients} adults for one day in {time.perf_counter() - start:.1f} s")

metrics = glycaemic_summary(sol["Gsub"], patient_names=sol.patient_ids)
columns = ["mean_mg_dl", "tir_70_180_percent", "tbr_70_percent", "tar_180_percent", "risk_index"]
print(metrics[columns].round(1).to_string())
print(f"\ncohort time in range: {metrics['tir_70_180_percent'].mean():.1f}%")

insulin_u = sol["insulin_delivered"].sum(axis=1)
print(f"insulin per patient: {insulin_u.min():.1f}-{insulin_u.max():.1f} U/day")
