"""Engine benchmarks: throughput, latency, compile time, memory, and the ratio to simglucose.

Run with ``make bench`` (or ``.venv/bin/python benchmarks/engine.py``).  Prints a table and writes
``benchmarks/results/engine.json``.  Nothing here is a pass/fail test; the targets column quotes
issue #2 so a reader can compare.

Workloads (UVA/Padova 2008, the 30 virtual patients cycled to N; one day; RK4 with a 1-minute
input period; output every 5 minutes; meals of 45/70/80/15 g at 01:00/06:00/12:00/16:00):

- open loop: the patients' steady-state basal, meals without bolus;
- closed loop: the basal-bolus controller (target 140 mg/dL) on a Dexcom CGM (3-minute samples,
  Johnson-distributed noise) through an Insulet pump;
- simglucose 0.2.11 runs the closed-loop workload for adult#001..010 in its own virtual
  environment (``tools/simglucose_venv.sh``), in the same benchmark run.

Fresh-process figures (compile latency with a cold and with a warm compilation cache, peak
memory) run in child processes of this script.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results"
MEALS = [(60, 45.0), (360, 70.0), (720, 80.0), (960, 15.0)]


def _setup(n: int, closed: bool, group: str | None = None, days: float = 1.0):
    import numpy as np

    from medtwin.control import BasalBolus
    from medtwin.devices import CGMSensor, InsulinPump
    from medtwin.models import UvaPadova2008, load_patients
    from medtwin.simulate import Schedule

    vp = load_patients(group)
    idx = np.arange(n) % len(vp)
    params = {k: v[idx] for k, v in vp.params.items()}
    x0 = {k: v[idx] for k, v in vp.x0.items()}
    schedule = Schedule()
    for t, g in MEALS:
        schedule = schedule.meal(t, g)
    kw: dict = {"params": params, "x0": x0}
    if closed:
        kw["controller"] = BasalBolus(
            vp.basal_u_per_min[idx],
            vp.carb_ratio_g_per_u[idx],
            vp.correction_factor_mg_dl_per_u[idx],
            target_mg_dl=140.0,
        )
        kw["sensor"] = CGMSensor.named("Dexcom")
        kw["pump"] = InsulinPump.named("Insulet")
        kw["seed"] = 1
    t = np.arange(0, 1440 * days + 1, 5.0)
    return UvaPadova2008, schedule, t, kw


def _time(fn, repeats: int) -> tuple[float, float]:
    """(first call seconds, best of ``repeats`` later calls)."""
    t0 = time.perf_counter()
    fn()
    first = time.perf_counter() - t0
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return first, min(times)


def throughput(n: int, closed: bool, repeats: int) -> dict:
    from medtwin.simulate import simulate

    model, schedule, t, kw = _setup(n, closed)
    first, best = _time(lambda: simulate(model, schedule, t, **kw), repeats)
    return {
        "n": n,
        "closed_loop": closed,
        "first_s": first,
        "best_s": best,
        "patient_days_per_s": n / best,
    }


def latency(n: int, horizon_min: int, closed: bool, repeats: int) -> dict:
    import numpy as np

    from medtwin.simulate import simulate

    model, schedule, _, kw = _setup(n, closed)
    t = np.arange(0, horizon_min + 1, 5.0)
    from medtwin.simulate import Schedule

    schedule = Schedule().meal(30, 40) if horizon_min < 1440 else schedule
    simulate(model, schedule, t, **kw)
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        simulate(model, schedule, t, **kw)
        times.append(time.perf_counter() - t0)
    return {
        "n": n,
        "horizon_min": horizon_min,
        "closed_loop": closed,
        "median_s": statistics.median(times),
        "best_s": min(times),
    }


def child(task: str) -> None:
    """Work done in a fresh process; prints one JSON line."""
    t_start = time.perf_counter()
    import medtwin  # noqa: F401
    from medtwin.simulate import simulate

    t_import = time.perf_counter() - t_start
    if task in ("compile-open", "compile-closed"):
        model, schedule, t, kw = _setup(1, task == "compile-closed")
        t0 = time.perf_counter()
        simulate(model, schedule, t, **kw)
        first = time.perf_counter() - t0
        print(json.dumps({"import_s": t_import, "first_call_s": first}))
    elif task == "adults-cold":
        model, schedule, t, kw = _setup(10, True, group="adults")
        t0 = time.perf_counter()
        simulate(model, schedule, t, **kw)
        print(json.dumps({"import_s": t_import, "first_call_s": time.perf_counter() - t0}))
    elif task.startswith("memory-"):
        n = int(task.split("-")[1])
        model, schedule, t, kw = _setup(n, False)
        sol = simulate(model, schedule, t, **kw)
        peak_kb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        print(
            json.dumps(
                {
                    "n": n,
                    "peak_rss_gb": peak_kb / 1024**2,
                    "output_gb": sum(v.nbytes for v in sol.values.values()) / 1e9,
                }
            )
        )
    else:
        raise SystemExit(f"unknown child task {task}")


def _run_child(task: str, env: dict | None = None) -> dict:
    out = subprocess.run(
        [sys.executable, __file__, "--child", task],
        check=True,
        capture_output=True,
        text=True,
        env={**os.environ, **(env or {})},
    )
    return json.loads(out.stdout.strip().splitlines()[-1])


def simglucose_time() -> dict | None:
    venv = ROOT / ".venv-simglucose" / "bin" / "python"
    try:
        subprocess.run(
            ["bash", str(ROOT / "tools" / "simglucose_venv.sh")],
            check=True,
            capture_output=True,
            text=True,
        )
        out = subprocess.run(
            [str(venv), str(ROOT / "tools" / "simglucose_bench.py")],
            check=True,
            capture_output=True,
            text=True,
        )
    except (subprocess.CalledProcessError, FileNotFoundError) as exc:
        print(f"simglucose unavailable: {exc}", file=sys.stderr)
        return None
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--child", help=argparse.SUPPRESS)
    parser.add_argument("--quick", action="store_true", help="small sizes, for a smoke run")
    parser.add_argument("--no-simglucose", action="store_true", help="skip the simglucose ratio")
    parser.add_argument("--json", type=Path, default=RESULTS / "engine.json")
    args = parser.parse_args()
    if args.child:
        child(args.child)
        return

    import jax

    sizes = [1, 100, 1_000] if args.quick else [1, 100, 10_000, 100_000]
    rows: list[tuple[str, str, str]] = []
    result: dict = {
        "backend": jax.default_backend(),
        "cpus": os.cpu_count(),
        "jax": jax.__version__,
        "throughput": [],
    }

    for closed in (False, True):
        for n in sizes:
            r = throughput(n, closed, repeats=2 if n >= 100_000 else 5)
            result["throughput"].append(r)
            label = f"{'closed' if closed else 'open'} loop, N={n:,}"
            target = ""
            if not closed and n == 10_000:
                target = ">= 20,000"
            elif not closed and n == 100_000:
                target = ">= 10,000"
            elif closed and n >= 10_000:
                target = ">= 5,000"
            rows.append((f"patient-days/s, {label}", f"{r['patient_days_per_s']:,.0f}", target))

    fc = latency(500, 240, False, repeats=20)
    result["forecast_500x4h"] = fc
    rows.append(("500-member 4-hour forecast", f"{fc['median_s'] * 1e3:.1f} ms", "<= 15 ms"))
    day = latency(1, 1440, True, repeats=10)
    result["closed_loop_patient_day"] = day
    rows.append(("one closed-loop patient-day", f"{day['median_s'] * 1e3:.1f} ms", "<= 50 ms"))

    with tempfile.TemporaryDirectory() as cache:
        env = {"MEDTWIN_CACHE_DIR": cache}
        cold = {k: _run_child(f"compile-{k}", env) for k in ("open", "closed")}
        warm = {k: _run_child(f"compile-{k}", env) for k in ("open", "closed")}
        adults_cold = _run_child("adults-cold", {"MEDTWIN_CACHE_DIR": cache + "/adults"})
    result["compile"] = {"cold": cold, "warm": warm}
    for k in ("open", "closed"):
        rows.append(
            (f"first call, {k} loop, cold cache", f"{cold[k]['first_call_s']:.2f} s", "<= 3 s")
        )
        rows.append(
            (
                f"first call, {k} loop, warm cache (fresh process)",
                f"{warm[k]['first_call_s']:.2f} s",
                "<= 0.3 s",
            )
        )

    mem_n = 10_000 if args.quick else 100_000
    mem = _run_child(f"memory-{mem_n}")
    result["memory"] = mem
    rows.append(
        (
            f"peak memory, N={mem_n:,} x 1 day, 5-min output",
            f"{mem['peak_rss_gb']:.2f} GB",
            "<= 4 GB",
        )
    )

    if not args.no_simglucose:
        sg = simglucose_time()
        if sg is not None:
            adults = latency(10, 1440, True, repeats=5)
            model_warm = adults["best_s"]
            model_cold = adults_cold["first_call_s"]
            result["simglucose"] = sg
            result["adults_medtwin"] = {"warm_s": model_warm, "cold_first_call_s": model_cold}
            rows.append(
                ("simglucose 0.2.11, 10 adults x 1 day, closed loop", f"{sg['wall_s']:.1f} s", "")
            )
            rows.append(("medtwin, same, after warm-up", f"{model_warm * 1e3:.1f} ms", ""))
            rows.append(
                (
                    "  ratio simglucose / medtwin (warm)",
                    f"{sg['wall_s'] / model_warm:,.0f}x",
                    ">= 1,000x",
                )
            )
            rows.append(
                (
                    "medtwin, same, first call with compilation (cold cache)",
                    f"{model_cold:.2f} s",
                    "",
                )
            )
            rows.append(
                (
                    "  ratio simglucose / medtwin (incl. compile)",
                    f"{sg['wall_s'] / model_cold:,.0f}x",
                    ">= 10x",
                )
            )

    width = max(len(r[0]) for r in rows)
    print(
        f"\nmedtwin engine benchmark ({result['backend']}, {result['cpus']} CPUs, "
        f"jax {result['jax']})\n"
    )
    print(f"{'measure':<{width}}  {'value':>12}  target")
    print("-" * (width + 30))
    for name, value, target in rows:
        print(f"{name:<{width}}  {value:>12}  {target}")
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(result, indent=2))
    print(f"\nwrote {args.json}")


if __name__ == "__main__":
    main()
