"""Reference trajectories from simglucose 0.2.11 for the UVA/Padova fidelity test.

Run inside the simglucose venv (see ``tools/simglucose_venv.sh``)::

    .venv-simglucose/bin/python tools/simglucose_reference.py

Reads ``tests/models/data/uva_padova_scenarios.json`` and writes
``tests/models/data/uva_padova_simglucose_reference.csv.gz`` plus a provenance
sidecar ``uva_padova_simglucose_reference.json`` next to it.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import logging
import multiprocessing as mp
import platform
import sys
import time
from datetime import UTC, datetime, timedelta
from importlib.metadata import version
from pathlib import Path

import numpy as np
import pandas as pd
import pkg_resources
from simglucose.actuator.pump import InsulinPump
from simglucose.controller.basal_bolus_ctrller import BBController
from simglucose.patient.t1dpatient import Action, T1DPatient
from simglucose.sensor.cgm import SENSOR_PARA_FILE, CGMSensor
from simglucose.simulation.env import T1DSimEnv
from simglucose.simulation.scenario import CustomScenario

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT / "tests" / "models" / "data"
SCENARIOS = DATA / "uva_padova_scenarios.json"
OUT_CSV = DATA / "uva_padova_simglucose_reference.csv.gz"
OUT_JSON = DATA / "uva_padova_simglucose_reference.json"

# Any fixed date works; CustomScenario only compares start_time + offset.
START = datetime(2025, 1, 1, 0, 0)
COLUMNS = [
    "scenario",
    "patient",
    "t_min",
    "bg_mg_dl",
    "insulin_u_per_min",
    "cho_g",
    "insulin_u_5min",
]


def _param_file(name: str) -> Path:
    return Path(pkg_resources.resource_filename("simglucose", f"params/{name}"))


def patient_names() -> list[str]:
    """Return the 30 virtual patients in simglucose's own parameter-file order."""
    return pd.read_csv(_param_file("vpatient_params.csv"))["Name"].tolist()


def carb_ratios() -> dict[str, float]:
    """Return each patient's carbohydrate ratio (g/U) from simglucose's Quest.csv."""
    quest = pd.read_csv(_param_file("Quest.csv"))
    return dict(zip(quest["Name"], quest["CR"].astype(float), strict=True))


def basal_factor(segments: list[list[float]], t: int) -> float:
    """Return the basal factor of the last segment starting at or before ``t``."""
    factor = 1.0
    for start, f in sorted(segments):
        if start <= t:
            factor = float(f)
    return factor


def run_open_loop(name: str, sc: dict, duration: int, cr: float) -> tuple[np.ndarray, ...]:
    """Drive ``T1DPatient`` directly, one 1-min step per minute.

    Returns
    -------
    bg, insulin, cho
        ``bg`` has ``duration + 1`` samples (``t = 0`` is the initial state);
        ``insulin`` (U/min) and ``cho`` (g announced) have ``duration``.
    """
    p = T1DPatient.withName(name)
    basal = p._params.u2ss * p._params.BW / 6000  # U/min, as in simglucose's model
    meals: dict[int, float] = {}
    for t, g in sc["meals"]:
        meals[int(t)] = meals.get(int(t), 0.0) + float(g)
    boluses: dict[int, float] = {}
    for t, u in sc["boluses"]:
        boluses[int(t)] = boluses.get(int(t), 0.0) + float(u)
    if sc["meal_bolus"]:
        for t, g in meals.items():
            boluses[t] = boluses.get(t, 0.0) + g / cr

    bg = np.empty(duration + 1)
    insulin = np.empty(duration)
    cho = np.empty(duration)
    for t in range(duration):
        cho[t] = meals.get(t, 0.0)
        # A bolus of U units over the 1-min step is a rate of U/1 U/min on top of basal.
        insulin[t] = basal_factor(sc["basal_segments"], t) * basal + boluses.get(t, 0.0) / 1.0
        bg[t] = p.observation.Gsub
        p.step(Action(CHO=cho[t], insulin=insulin[t]))
    bg[duration] = p.observation.Gsub
    if p.t != duration:
        raise RuntimeError(f"{name}: patient clock at {p.t}, expected {duration}")
    return bg, insulin, cho


def noiseless_sensor() -> CGMSensor:
    """Return a Dexcom CGM sampling every minute with exactly zero noise.

    simglucose's noise is ``xi + lambda * sinh((e - gamma) / delta)`` (Johnson SU),
    so ``xi = lambda = 0`` makes every sample exactly 0 and CGM equals BG
    (still clipped to the sensor's [min, max]).
    """
    params = pd.read_csv(SENSOR_PARA_FILE)
    row = params.loc[params.Name == "Dexcom"].squeeze().copy()
    row["sample_time"] = 1.0
    row["lambda"] = 0.0
    row["xi"] = 0.0
    return CGMSensor(row, seed=1)


def run_closed_loop(name: str, sc: dict, duration: int) -> tuple[np.ndarray, ...]:
    """Run simglucose's own env loop with ``BBController``, as ``SimObj.simulate`` does."""
    ctrl_cfg = sc["controller"]
    if ctrl_cfg["name"] != "basal_bolus" or ctrl_cfg["sensor_noise"]:
        raise ValueError(f"unsupported controller config {ctrl_cfg}")
    if ctrl_cfg["sensor_sample_time_min"] != 1:
        raise ValueError("only a 1-min sensor is supported")
    # timedelta offsets: CustomScenario turns them into start + whole minutes and
    # matches env.time by exact datetime equality; patient.t is an exact float
    # sum of 1.0 steps, so every meal minute is hit exactly once.
    scenario = CustomScenario(
        start_time=START,
        scenario=[(timedelta(minutes=int(t)), float(g)) for t, g in sc["meals"]],
    )
    env = T1DSimEnv(
        T1DPatient.withName(name),
        noiseless_sensor(),
        InsulinPump.withName(ctrl_cfg["pump"]),
        scenario,
    )
    ctrl = BBController(target=ctrl_cfg["target_mg_dl"])
    ctrl.reset()
    obs, reward, done, info = env.reset()
    for _ in range(duration):
        action = ctrl.policy(obs, reward, done, **info)
        obs, reward, done, info = env.step(action)
    hist = env.show_history()
    if len(hist) != duration + 1:
        raise RuntimeError(f"{name}: {len(hist)} history rows, expected {duration + 1}")
    bg = hist["BG"].to_numpy(dtype=float)
    cgm = hist["CGM"].to_numpy(dtype=float)
    lo, hi = env.sensor._params["min"], env.sensor._params["max"]
    if not np.array_equal(cgm, np.clip(bg, lo, hi)):
        raise RuntimeError(f"{name}: CGM differs from BG; sensor noise is not zero")
    # The last history row has no action after it (NaN); drop it.
    insulin = hist["insulin"].to_numpy(dtype=float)[:duration]
    cho = hist["CHO"].to_numpy(dtype=float)[:duration]
    return bg, insulin, cho


def simulate(job: tuple[str, str, dict, int, int, float]) -> pd.DataFrame:
    """Simulate one (scenario, patient) pair and return its rows every ``every`` minutes."""
    scenario_name, name, sc, duration, every, cr = job
    if sc["controller"] is None:
        bg, insulin, cho = run_open_loop(name, sc, duration, cr)
    else:
        bg, insulin, cho = run_closed_loop(name, sc, duration)

    # Every meal must have been delivered at its minute: the closed loop relies
    # on CustomScenario's exact time matching, which fails silently.
    want_cho = np.zeros(duration)
    for t, g in sc["meals"]:
        want_cho[int(t)] += float(g)
    if not np.array_equal(cho, want_cho):
        raise RuntimeError(f"{scenario_name}/{name}: CHO delivered differs from scenario")

    t_out = np.arange(0, duration + 1, every)
    # Inputs are per minute [t, t+1); nothing is delivered after the end.
    ins_pad = np.append(insulin, np.nan)
    cho_pad = np.append(cho, np.nan)
    # Units over [t, t+every): keeps off-grid doses (the controller's bolus lands
    # one minute after the meal) visible in the 5-min sampled file.
    ins_window = np.array([insulin[t : t + every].sum() if t < duration else np.nan for t in t_out])
    return pd.DataFrame(
        {
            "scenario": scenario_name,
            "patient": name,
            "t_min": t_out,
            "bg_mg_dl": bg[t_out],
            "insulin_u_per_min": ins_pad[t_out],
            "cho_g": cho_pad[t_out],
            "insulin_u_5min": ins_window,
        },
        columns=COLUMNS,
    )


def sha256(path: Path) -> str:
    """Return the hex SHA-256 of a file."""
    return hashlib.sha256(path.read_bytes()).hexdigest()


def main() -> None:
    """Simulate every scenario for every patient and write the reference files."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--jobs", type=int, default=2, help="worker processes (default 2)")
    ap.add_argument("--patients", nargs="*", help="subset of patients (for quick checks)")
    ap.add_argument("--out", type=Path, default=OUT_CSV, help="output .csv.gz")
    args = ap.parse_args()
    logging.disable(logging.CRITICAL)  # simglucose logs per step at INFO/DEBUG

    spec = json.loads(SCENARIOS.read_text())
    duration = int(spec["duration_min"])
    names = args.patients or patient_names()
    crs = carb_ratios()
    jobs = [
        (sname, name, sc, duration, int(spec["output_every_min"]), crs[name])
        for sname, sc in spec["scenarios"].items()
        for name in names
    ]

    tic = time.perf_counter()
    if args.jobs > 1:
        with mp.get_context("fork").Pool(args.jobs) as pool:
            frames = pool.map(simulate, jobs, chunksize=1)
    else:
        frames = [simulate(j) for j in jobs]
    wall = time.perf_counter() - tic
    df = pd.concat(frames, ignore_index=True)

    bg = df["bg_mg_dl"]
    # The model legitimately leaves [39, 600] mg/dL for some children (untreated
    # meals reach ~1100, a 2 U correction ~17), so only a non-physical value fails.
    if bg.isna().any() or not bg.between(1, 1500).all():
        raise RuntimeError("BG outside (1, 1500) mg/dL or NaN")
    extreme = df.loc[~bg.between(39, 600)]
    for (sname, name), g in extreme.groupby(["scenario", "patient"], sort=False):
        b = g["bg_mg_dl"]
        span = f"{b.min():.1f}..{b.max():.1f}"
        print(f"note: {sname}/{name}: {len(g)} samples outside [39, 600], {span} mg/dL")
    last = df["t_min"] == duration
    if df.loc[~last].isna().any().any():
        raise RuntimeError("NaN in the inputs before the end of the simulation")

    args.out.parent.mkdir(parents=True, exist_ok=True)
    # mtime=0 keeps the gzip bytes reproducible across regenerations.
    df.to_csv(
        args.out,
        index=False,
        float_format="%.10g",
        compression={"method": "gzip", "mtime": 0},
    )

    summary = df.groupby("scenario", sort=False)["bg_mg_dl"].agg(["min", "mean", "max"]).round(1)
    provenance = {
        "description": (
            "simglucose 0.2.11 reference trajectories for the UVA/Padova fidelity test; "
            "see README.md in this directory"
        ),
        "generated_utc": datetime.now(UTC).isoformat(timespec="seconds"),
        "command": "make reference",
        "versions": {
            "python": platform.python_version(),
            "simglucose": version("simglucose"),
            "numpy": np.__version__,
            "scipy": version("scipy"),
            "pandas": pd.__version__,
        },
        "platform": platform.platform(),
        "integrator": "scipy.integrate.ode dopri5, default rtol=1e-6 atol=1e-12, 1-min steps",
        "scenarios_sha256": sha256(SCENARIOS),
        "simglucose_params_sha256": {
            f: sha256(_param_file(f))
            for f in ("vpatient_params.csv", "Quest.csv", "pump_params.csv", "sensor_params.csv")
        },
        "n_patients": len(names),
        "n_scenarios": len(spec["scenarios"]),
        "n_rows": len(df),
        "csv_sha256": sha256(args.out),
        "wall_s": round(wall, 1),
        "jobs": args.jobs,
        "bg_summary_mg_dl": summary.to_dict(orient="index"),
    }
    if args.out == OUT_CSV:
        OUT_JSON.write_text(json.dumps(provenance, indent=2) + "\n")

    print(f"wrote {args.out} ({len(df)} rows) in {wall:.1f} s with {args.jobs} jobs")
    print(summary.to_string())
    sys.stdout.flush()


if __name__ == "__main__":
    main()
