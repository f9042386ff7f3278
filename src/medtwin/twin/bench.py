"""A virtual-patient test bench that no twin can cheat on.

Each bench patient is a "real" patient simulated with :class:`~medtwin.models.UvaPadova2008Circadian`:
parameters drawn around one of the UVA/Padova virtual adults or adolescents (log-normal spread on
insulin sensitivity, endogenous production and absorption), insulin sensitivity that varies over
the day, a dawn phenomenon, meals at irregular times and sizes, some of them never logged and the
logged ones mis-estimated, boluses computed from the logged carbohydrate, and a CGM (the
factory-calibrated Dexcom G6 error model by default) with dropouts.  What a twin gets is only what a
deployment would see: the CGM readings and the logged insulin and carbohydrate, as a
:class:`~medtwin.history.PatientHistory`.  The truth (parameters, noise-free glucose, every
meal) stays on the :class:`BenchPatient` for scoring.

>>> bench = make_bench(n_patients=2, days=1, seed=3)
>>> [len(p.history.cgm) > 200 for p in bench]
[True, True]
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from medtwin.devices import sensor_named
from medtwin.history import PatientHistory
from medtwin.models import UvaPadova2008Circadian, load_patients
from medtwin.simulate import Schedule, simulate

__all__ = ["BenchPatient", "make_bench"]

MIN_PER_DAY = 1440
# (name, mean time in minutes, sd of the time, carbs range g, probability it happens,
#  probability it is NOT logged)
_MEALS = (
    ("breakfast", 7 * 60, 40, (30, 60), 1.0, 0.05),
    ("lunch", 12 * 60 + 30, 40, (50, 90), 1.0, 0.05),
    ("snack", 16 * 60, 45, (10, 30), 0.5, 0.5),
    ("dinner", 19 * 60, 50, (50, 100), 1.0, 0.05),
)
# Parameters a real patient differs in (log-normal SD around the catalogue patient).
_SPREAD = {"Vmx": 0.25, "kp3": 0.25, "kp1": 0.08, "kabs": 0.3, "kmax": 0.2}


@dataclass(frozen=True)
class BenchPatient:
    """One bench patient: what the twin may see (``history``) and the truth it is scored on."""

    name: str
    based_on: str
    true_params: dict[str, float]
    history: PatientHistory
    truth: pd.DataFrame
    meals: pd.DataFrame


def make_bench(
    n_patients: int = 20,
    days: int = 10,
    seed: int = 0,
    *,
    start: str = "2026-01-05T00:00:00Z",
    carb_error_sd: float = 0.2,
    dropouts_per_day: float = 1.0,
    sensor: str = "DexcomG6",
) -> list[BenchPatient]:
    """Simulate ``n_patients`` bench patients for ``days`` days (seeded, reproducible).

    ``carb_error_sd`` is the log-SD of the patient's carbohydrate estimate; ``sensor`` a CGM of
    :func:`~medtwin.devices.sensor_named` sampling every 5 minutes (the factory-calibrated
    ``DexcomG6`` of Vettoretti et al. 2019, or simglucose's ``GuardianRT``).
    """
    rng = np.random.default_rng(seed)
    catalogue = load_patients(["adults", "adolescents"])
    origin = pd.Timestamp(start)
    t = np.arange(0, days * MIN_PER_DAY + 1, 5.0)
    names, params, x0s, schedules, logs, meal_tables, bases = [], [], [], [], [], [], []
    model = UvaPadova2008Circadian()
    for i in range(n_patients):
        k = i % len(catalogue)
        base = {name: float(v[k]) for name, v in catalogue.params.items()}
        truth = dict(base)
        for name, sd in _SPREAD.items():
            truth[name] = base[name] * float(np.exp(sd * rng.standard_normal()))
        x0 = {
            name: float(v[0])
            for name, v in model.initial_state({n: np.array([v]) for n, v in truth.items()}).items()
        }
        cr = float(catalogue.carb_ratio_g_per_u[k])
        basal_u_per_h = float(catalogue.basal_u_per_min[k] * 60.0)  # the therapy, not the truth
        schedule, logged, meals = _days(rng, days, cr, basal_u_per_h, carb_error_sd)
        names.append(f"bench-{i + 1:02d}")
        bases.append(catalogue.names[k])
        params.append(truth)
        x0s.append(x0)
        schedules.append(schedule)
        logs.append(logged)
        meal_tables.append(meals)
    sol = simulate(
        model,
        schedules,
        t,
        params={n: np.array([p[n] for p in params]) for n in params[0]},
        x0={n: np.array([x[n] for x in x0s]) for n in x0s[0]},
        sensor=sensor_named(sensor),
        patient_ids=names,
        seed=seed,
    )
    out = []
    times = origin + pd.to_timedelta(t, unit="min")
    for i, name in enumerate(names):
        cgm = np.clip(sol["sensor"][i], 40.0, 400.0)  # what a CGM reports
        keep = _dropouts(rng, t, dropouts_per_day)
        history = PatientHistory.from_frames(
            cgm=pd.DataFrame({"time": times[keep], "glucose_mg_dl": cgm[keep]}),
            events=_events_frame(logs[i], origin),
            patient_id=name,
            source=f"medtwin bench (seed {seed})",
        )
        glucose = pd.DataFrame({"time": times, "glucose_mg_dl": sol["Gsub"][i]})
        meals = meal_tables[i].assign(time=origin + pd.to_timedelta(meal_tables[i]["t_min"], "min"))
        out.append(BenchPatient(name, bases[i], params[i], history, glucose, meals))
    return out


def _days(
    rng: np.random.Generator, days: int, cr: float, basal_u_per_h: float, carb_error_sd: float
) -> tuple[Schedule, list[tuple[float, str, float]], pd.DataFrame]:
    """The true schedule (meals, boluses, basal, circadian factors) and what the patient logs."""
    s = Schedule().basal(0.0, basal_u_per_h)
    logged: list[tuple[float, str, float]] = [(0.0, "basal", basal_u_per_h)]
    amplitude = rng.uniform(0.1, 0.25)  # insulin resistance in the morning, sensitivity at night
    phase_h = 7.0 + rng.normal(0.0, 1.5)
    dawn = rng.uniform(0.1, 0.3)
    for q in range(0, days * MIN_PER_DAY, 15):
        hour = (q % MIN_PER_DAY) / 60.0 + 7.5 / 60.0
        si = 1.0 - amplitude * np.cos(2 * np.pi * (hour - phase_h) / 24.0)
        egp = 1.0 + dawn * np.exp(-0.5 * ((hour - 6.0) / 1.5) ** 2)
        s = s.rate(q, "si_factor", float(si)).rate(q, "egp_factor", float(egp))
    rows = []
    for day in range(days):
        for name, mean_t, sd_t, (lo, hi), p_happens, p_unlogged in _MEALS:
            if rng.random() > p_happens:
                continue
            at = float(np.clip(round(mean_t + sd_t * rng.standard_normal()), 0, MIN_PER_DAY - 30))
            at += day * MIN_PER_DAY
            carbs = float(round(rng.uniform(lo, hi)))
            is_logged = rng.random() > p_unlogged
            logged_g = float(5 * round(carbs * np.exp(carb_error_sd * rng.standard_normal()) / 5))
            s = s.meal(at, carbs)
            if is_logged and logged_g > 0:
                bolus = round(logged_g / cr, 1)
                s = s.bolus(at, bolus)
                logged += [(at, "carbs", logged_g), (at, "bolus", bolus)]
            rows.append((at, name, carbs, is_logged, logged_g if is_logged else 0.0))
    meals = pd.DataFrame(rows, columns=["t_min", "meal", "carbs_g", "logged", "logged_carbs_g"])
    return s, logged, meals


def _events_frame(logged: list[tuple[float, str, float]], origin: pd.Timestamp) -> pd.DataFrame:
    t, kind, value = zip(*logged, strict=True)
    return pd.DataFrame(
        {"time": origin + pd.to_timedelta(np.asarray(t), unit="min"), "kind": kind, "value": value}
    )


def _dropouts(rng: np.random.Generator, t: np.ndarray, per_day: float) -> np.ndarray:
    """Readings kept after random sensor dropouts of 15-90 minutes."""
    keep = np.ones(t.size, dtype=bool)
    days = t[-1] / MIN_PER_DAY
    for _ in range(rng.poisson(per_day * days)):
        start = rng.uniform(0, t[-1])
        length = rng.uniform(15, 90)
        keep &= ~((t >= start) & (t < start + length))
    return keep
