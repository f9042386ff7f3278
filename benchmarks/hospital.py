"""Hospital twin benchmarks: a simulated year, scaling over workers, and treat-sim side by side.

Run with ``.venv/bin/python benchmarks/hospital.py`` (``--quick`` for a smoke run).  Prints the
figures beside issue #6's targets and writes ``benchmarks/results/hospital.json``.  Nothing here is
a pass/fail test.

- One simulated year (365 days, the first 28 a warm-up) of the example hospital (400 beds, ~150 ED
  arrivals a day) in this process, on one core.
- ``--reps`` replications (default 100) of ``--days`` days (default 14) from a warm census, on
  1 and 2 local worker processes (the pool is started before the clock runs; its start-up is
  reported apart), and whether the two give identical KPIs.
- treat-sim 3.0.0 (Monks et al., the STARS treatment centre model of Nelson 2013): a virtual
  environment in a temporary folder gets ``pip install treat-sim`` (or ``--treat-sim-python``
  names an interpreter that has it), runs its default scenario for ``--ts-reps`` replications in a
  subprocess, and medtwin runs the same scenario (``treat_sim_nelson2013.yaml``) for as many; both
  wall times and both models' KPIs are printed side by side, with the difference in standard
  errors.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import textwrap
import time
import venv
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results"

TREAT_SIM_SCRIPT = textwrap.dedent(
    """
    import json, sys, time
    from importlib.metadata import version
    from treat_sim.model import Scenario, multiple_replications
    n = int(sys.argv[1])
    multiple_replications(Scenario(), n_reps=2)  # imports and first-call costs off the clock
    t0 = time.perf_counter()
    df = multiple_replications(Scenario(), n_reps=n)
    wall = time.perf_counter() - t0
    print(json.dumps({"version": version("treat-sim"), "wall_s": wall, "n": n,
                      "mean": df.mean().to_dict(), "sd": df.std().to_dict()}))
    """
)

# treat-sim's result fields -> (medtwin KPI, factor to treat-sim's unit)
PAIRS = [
    ("00_arrivals", "arrivals_per_day", 19 / 24, "arrivals in the 19-hour run"),
    ("01a_triage_wait", "wait_min:triage", 1.0, "triage wait (min)"),
    ("01b_triage_util", "utilisation:triage", 1.0, "triage utilisation"),
    ("02a_registration_wait", "wait_min:registration", 1.0, "registration wait (min)"),
    ("02b_registration_util", "utilisation:registration", 1.0, "registration utilisation"),
    ("03a_examination_wait", "wait_min:examination", 1.0, "examination wait (min)"),
    ("03b_examination_util", "utilisation:exam", 1.0, "examination utilisation"),
    (
        "04a_treatment_wait(non_trauma)",
        "wait_min:treatment",
        1.0,
        "non-trauma treatment wait (min)",
    ),
    (
        "04b_treatment_util(non_trauma)",
        "utilisation:cubicle_non_trauma",
        1.0,
        "non-trauma cubicle utilisation",
    ),
    ("05_total_time(non-trauma)", "ed_los_h:non_trauma", 60.0, "time in centre, non-trauma (min)"),
    ("06a_trauma_wait", "wait_min:stabilisation", 1.0, "trauma stabilisation wait (min)"),
    ("06b_trauma_util", "utilisation:trauma_room", 1.0, "trauma room utilisation"),
    ("07a_treatment_wait(trauma)", "wait_min:trauma_treatment", 1.0, "trauma treatment wait (min)"),
    ("07b_treatment_util(trauma)", "utilisation:cubicle_trauma", 1.0, "trauma cubicle utilisation"),
    ("08_total_time(trauma)", "ed_los_h:trauma", 60.0, "time in centre, trauma (min)"),
]


def one_year(seeds: list[int]) -> dict:
    from medtwin.hospital import load_hospital, simulate

    spec = load_hospital("example_hospital")
    simulate(spec, days=2, warmup_days=0, seed=0)  # first-call costs (imports) off the clock
    times, kpis = [], {}
    for seed in seeds:
        t0 = time.perf_counter()
        run = simulate(spec, days=365, seed=seed)
        times.append(time.perf_counter() - t0)
        kpis = run.kpis()
        n_ed = len(run.attendances["t_arrival"])
        n_stays = len(run.stays["t_in"])
    return {
        "wall_s": times,
        "best_s": min(times),
        "ed_attendances": n_ed,
        "bed_stays": n_stays,
        "kpis": {
            k: kpis[k]
            for k in (
                "arrivals_per_day",
                "occupancy",
                "within_4h",
                "lwbs_rate",
                "boarding_h",
                "ed_los_h",
                "door_to_provider_min",
                "utilisation:doctor",
                "elective_cancellation_rate",
            )
        },
    }


def scaling(reps: int, days: float) -> dict:
    import pandas as pd

    from medtwin.hospital import load_hospital, replicate, simulate
    from medtwin.hospital.experiment import _pool

    spec = load_hospital("example_hospital")
    warm = simulate(spec, days=28, warmup_days=0, seed=99).snapshot()
    t0 = time.perf_counter()
    pool = _pool(2)
    list(pool.map(abs, [1, 2]))  # start both workers
    replicate(spec, replications=2, days=0.5, snapshot=warm, seed=0, workers=2)  # imports
    startup = time.perf_counter() - t0
    out: dict = {"reps": reps, "days": days, "pool_startup_s": startup}
    tables = {}
    for w in (1, 2):
        t0 = time.perf_counter()
        tables[w] = replicate(
            spec, replications=reps, days=days, snapshot=warm, seed=1, workers=w
        ).kpis
        out[f"wall_s_{w}"] = time.perf_counter() - t0
    out["speedup"] = out["wall_s_1"] / out["wall_s_2"]
    try:
        pd.testing.assert_frame_equal(tables[1], tables[2])
        out["identical"] = True
    except AssertionError:
        out["identical"] = False
    return out


def treat_sim(n: int, python: str | None) -> dict | None:
    """treat-sim's default scenario in its own environment; None if it cannot be installed."""
    with tempfile.TemporaryDirectory(prefix="treat-sim-") as tmp:
        if python is None:
            env_dir = Path(tmp) / "venv"
            venv.create(env_dir, with_pip=True)
            python = str(env_dir / "bin" / "python")
            t0 = time.perf_counter()
            pip = subprocess.run(
                [python, "-m", "pip", "install", "--quiet", "treat-sim==3.0.0"],
                capture_output=True,
                text=True,
            )
            if pip.returncode != 0:
                print(f"treat-sim unavailable: {pip.stderr.strip()[-500:]}", file=sys.stderr)
                return None
            print(f"  (installed treat-sim in {time.perf_counter() - t0:.0f} s)", file=sys.stderr)
        script = Path(tmp) / "run_treat_sim.py"
        script.write_text(TREAT_SIM_SCRIPT)
        proc = subprocess.run(
            [python, str(script), str(n)], capture_output=True, text=True, cwd=tmp
        )
        if proc.returncode != 0:
            print(f"treat-sim failed: {proc.stderr.strip()[-500:]}", file=sys.stderr)
            return None
        return json.loads(proc.stdout.strip().splitlines()[-1])


def ours_on_treat_sim(n: int) -> dict:
    from medtwin.hospital import replicate

    replicate("treat_sim_nelson2013", replications=2, seed=0)  # first-call costs off the clock
    t0 = time.perf_counter()
    k = replicate("treat_sim_nelson2013", replications=n, seed=2024).kpis
    wall = time.perf_counter() - t0
    return {"wall_s": wall, "n": n, "mean": k.mean().to_dict(), "sd": k.std().to_dict()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="small sizes, for a smoke run")
    parser.add_argument("--reps", type=int, default=100, help="replications for the scaling run")
    parser.add_argument("--days", type=float, default=14.0, help="days per scaling replication")
    parser.add_argument("--ts-reps", type=int, default=100, help="replications of treat-sim")
    parser.add_argument("--treat-sim-python", help="a Python that has treat-sim (skips the venv)")
    parser.add_argument("--no-treat-sim", action="store_true")
    parser.add_argument("--json", type=Path, default=RESULTS / "hospital.json")
    args = parser.parse_args()
    if args.quick:
        args.reps, args.days, args.ts_reps = 20, 7.0, 20

    rows: list[tuple[str, str, str]] = []
    result: dict = {"cpus": os.cpu_count(), "load_average": os.getloadavg()}

    year = one_year([1] if args.quick else [1, 2])
    result["one_year"] = year
    rows.append(
        (
            "one simulated year, example hospital (400 beds, 150 ED/day), 1 core",
            f"{year['best_s']:.1f} s",
            "<= 10 s",
        )
    )
    rows.append(
        (
            "  events simulated: ED attendances / bed stays",
            f"{year['ed_attendances']:,} / {year['bed_stays']:,}",
            "",
        )
    )
    k = year["kpis"]
    rows.append(
        (
            "  KPIs: occupancy / within 4 h / LWBS / boarding (h)",
            f"{k['occupancy']:.2f} / {k['within_4h']:.2f} / {k['lwbs_rate']:.3f} / "
            f"{k['boarding_h']:.1f}",
            "",
        )
    )

    sc = scaling(args.reps, args.days)
    result["scaling"] = sc
    label = f"{args.reps} replications x {args.days:g} days from a census"
    rows.append((f"{label}, 1 worker", f"{sc['wall_s_1']:.1f} s", ""))
    rows.append((f"{label}, 2 workers", f"{sc['wall_s_2']:.1f} s", ""))
    rows.append(("  speed-up 1 -> 2 workers", f"{sc['speedup']:.2f}x", ">= 1.8x"))
    rows.append(("  identical KPIs on 1 and 2 workers", "yes" if sc["identical"] else "NO", "yes"))
    rows.append(
        (
            "  worker pool start-up (once per session, not timed above)",
            f"{sc['pool_startup_s']:.1f} s",
            "",
        )
    )

    side_by_side: list[tuple[str, str, str, str]] = []
    if not args.no_treat_sim:
        ts = treat_sim(args.ts_reps, args.treat_sim_python)
        ours = ours_on_treat_sim(args.ts_reps)
        result["treat_sim"] = {"treat_sim": ts, "medtwin": ours}
        if ts is not None:
            rows.append(
                (
                    f"treat-sim {ts['version']}, default scenario, {ts['n']} replications",
                    f"{ts['wall_s']:.2f} s",
                    "",
                )
            )
            rows.append(
                ("medtwin, same scenario and replications, 1 core", f"{ours['wall_s']:.2f} s", "")
            )
            rows.append(
                ("  ratio treat-sim / medtwin", f"{ts['wall_s'] / ours['wall_s']:.1f}x", "")
            )
            for field, kpi, factor, label in PAIRS:
                a, sa = ts["mean"][field], ts["sd"][field]
                b, sb = ours["mean"][kpi] * factor, ours["sd"][kpi] * factor
                z = (b - a) / np.hypot(sa / np.sqrt(ts["n"]), sb / np.sqrt(ours["n"]))
                side_by_side.append((label, f"{a:.3f}", f"{b:.3f}", f"{z:+.1f}"))

    width = max(len(r[0]) for r in rows)
    print(
        f"\nmedtwin hospital benchmark ({result['cpus']} CPUs, load average "
        f"{result['load_average'][0]:.1f})\n"
    )
    print(f"{'measure':<{width}}  {'value':>16}  target")
    print("-" * (width + 34))
    for name, value, target in rows:
        print(f"{name:<{width}}  {value:>16}  {target}")
    if side_by_side:
        w2 = max(len(r[0]) for r in side_by_side)
        print(
            f"\n{'treat-sim default scenario':<{w2}}  {'treat-sim':>10}  {'medtwin':>10}  "
            "difference / s.e."
        )
        print("-" * (w2 + 44))
        for label, a, b, z in side_by_side:
            print(f"{label:<{w2}}  {a:>10}  {b:>10}  {z:>8}")
        print(
            "\n(utilisation: treat-sim counts each started activity's whole duration, medtwin "
            "the busy time within the run;\n arrivals: treat-sim thins with the rate at the "
            "start of each gap, medtwin samples each hour exactly)"
        )
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(result, indent=2, default=float))
    print(f"\nwrote {args.json}")


if __name__ == "__main__":
    main()
