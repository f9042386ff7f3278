"""Patient-twin benchmarks: latency of an update, a forecast and personalisation; bench accuracy.

Run with ``.venv/bin/python benchmarks/twin.py`` (``--quick`` for a smoke run).  Prints the
figures side by side with issue #3's targets and writes ``benchmarks/results/twin.json``.

Accuracy is measured on the virtual-patient bench (:mod:`medtwin.twin.bench`): each patient is
personalised on ``--fit-days`` days, then replayed reading by reading for the remaining days; after
every reading the twin forecasts 30 and 60 minutes ahead and is scored against the CGM readings that
then arrive, next to persistence and 15-minute linear extrapolation on the same readings.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results"


def update_latency(members: int, kind: str = "ParticleFilter", repeats: int = 100) -> float:
    """Median seconds of one filter update (5-minute propagation + analysis) after warm-up."""
    from medtwin import assimilate
    from medtwin.models import UvaPadova2008, load_patients
    from medtwin.simulate import Schedule

    vp = load_patients("adult#001")
    f = getattr(assimilate, kind)(UvaPadova2008, n_members=members, seed=0)
    params = {k: float(v[0]) for k, v in vp.params.items()}
    ens = f.init(params, x0={k: float(v[0]) for k, v in vp.x0.items()}, t0=0.0, param_sd=0.2)
    meal = Schedule().meal(0, 50).bolus(0, 5)
    for k in range(1, 6):
        ens = f.update(ens, 5.0 * k, 140.0, meal)
    times = []
    for k in range(6, 6 + repeats):
        t0 = time.perf_counter()
        ens = f.update(ens, 5.0 * k, 140.0 + 10 * np.sin(k / 5), meal)
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def forecast_latency(members: int = 500, horizon_min: float = 240.0) -> float:
    """Median seconds of a twin's forecast from its ensemble after warm-up."""
    from medtwin.models import UvaPadova2008, load_patients
    from medtwin.simulate import simulate

    vp = load_patients("adult#001")
    idx = np.zeros(members, dtype=int)
    params = {k: v[idx] * np.exp(0.1 * np.random.default_rng(0).standard_normal(members))
              if k in ("Vmx", "kp1") else v[idx] for k, v in vp.params.items()}  # fmt: skip
    x0 = {k: v[idx] for k, v in vp.x0.items()}
    t = np.arange(0.0, horizon_min + 1, 5.0)
    simulate(UvaPadova2008, None, t, params=params, x0=x0, record=["Gsub"])
    times = []
    for _ in range(30):
        t0 = time.perf_counter()
        simulate(UvaPadova2008, None, t, params=params, x0=x0, record=["Gsub"])
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def personalisation_time(days: int) -> float:
    """Seconds to personalise (MAP + Laplace) from ``days`` days of a bench patient's data."""
    from medtwin.calibrate import MAPEstimator
    from medtwin.models import UvaPadova2008
    from medtwin.twin import make_bench

    patient = make_bench(n_patients=1, days=days, seed=99)[0]
    t0 = time.perf_counter()
    MAPEstimator(UvaPadova2008).fit(patient.history)
    return time.perf_counter() - t0


def bench_accuracy(
    n_patients: int, days: int, fit_days: int, members: int, seed: int, sensor: str
) -> dict:
    """Replay the bench and pool the scores."""
    from tqdm.auto import tqdm

    from medtwin.assimilate import ParticleFilter
    from medtwin.models import UvaPadova2008
    from medtwin.twin import Twin, make_bench
    from medtwin.twin.evaluate import replay, summarise

    patients = make_bench(n_patients=n_patients, days=days, seed=seed, sensor=sensor)
    results = []
    for p in tqdm(patients, desc="replaying bench patients", unit="patient"):
        results.append(
            replay(
                p.history,
                lambda: Twin(
                    UvaPadova2008,
                    filter=ParticleFilter(UvaPadova2008, n_members=members, seed=seed),
                    seed=seed,
                ),
                fit_days=fit_days,
            )
        )
    score = summarise(patients, results, patient_days=n_patients * (days - fit_days))
    return {
        "table": score.table().to_dict(orient="records"),
        "per_patient": score.per_patient.to_dict(orient="records"),
        "hypo_events": score.hypo_events,
        "hypo_sensitivity": score.sensitivity,
        "false_alerts_per_day": score.false_alerts_per_day,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="2 patients x 3 days, 100 members")
    parser.add_argument("--patients", type=int, default=20)
    parser.add_argument("--days", type=int, default=10)
    parser.add_argument("--fit-days", type=int, default=3)
    parser.add_argument("--members", type=int, default=500)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--sensor", default="DexcomG6", help="bench CGM: DexcomG6 or GuardianRT")
    parser.add_argument("--json", type=Path, default=RESULTS / "twin.json")
    args = parser.parse_args()
    if args.quick:
        args.patients, args.days, args.fit_days, args.members = 2, 3, 1, 100

    import medtwin  # noqa: F401

    rows = []
    result: dict = {}
    for kind in ("ParticleFilter", "EnsembleKalmanFilter"):
        for m in (100, 500):
            lat = update_latency(m, kind)
            result[f"update_{kind}_{m}_s"] = lat
            target = "<= 10 ms" if m == 500 else ""
            rows.append((f"{kind} update, {m} members", f"{lat * 1e3:.1f} ms", target))
    fc = forecast_latency()
    result["forecast_500x4h_s"] = fc
    rows.append(("4-hour forecast, 500 members", f"{fc * 1e3:.1f} ms", "<= 15 ms"))
    pers_days = 3 if args.quick else 7
    pt = personalisation_time(pers_days)
    result[f"personalisation_{pers_days}d_s"] = pt
    rows.append((f"personalisation from {pers_days} days", f"{pt:.1f} s", "<= 60 s"))

    acc = bench_accuracy(
        args.patients, args.days, args.fit_days, args.members, args.seed, args.sensor
    )
    result["bench"] = acc | {"patients": args.patients, "days": args.days,
                             "fit_days": args.fit_days, "members": args.members,
                             "sensor": args.sensor}  # fmt: skip
    for r in acc["table"]:
        h = r["horizon_min"]
        target = "<= 12" if h == 30 else "<= 20"
        rows.append((f"{h}-min RMSE, twin (mg/dL)", f"{r['rmse_mg_dl']:.1f}", target))
        rows.append((f"{h}-min RMSE, persistence", f"{r['persistence_rmse_mg_dl']:.1f}", ""))
        rows.append((f"{h}-min RMSE, linear extrapolation", f"{r['linear_rmse_mg_dl']:.1f}", ""))
        rows.append(("  twin vs persistence", f"{100 * r['reduction_vs_persistence']:.0f}% lower",
                     ">= 40% lower"))  # fmt: skip
        rows.append((f"{h}-min 95% band coverage", f"{100 * r['coverage_95']:.0f}%", "90-98%"))
    rows.append(("hypoglycaemia events (CGM < 70)", str(acc["hypo_events"]), ""))
    rows.append(
        ("  predicted 30 min ahead (sensitivity)", f"{acc['hypo_sensitivity']:.2f}", ">= 0.85")
    )
    rows.append(("  false alerts per patient-day", f"{acc['false_alerts_per_day']:.2f}", "<= 1"))

    width = max(len(r[0]) for r in rows)
    print(f"\nmedtwin twin benchmark: bench {args.patients} patients x {args.days} days "
          f"({args.fit_days} to personalise), {args.members} members, {args.sensor} CGM\n")  # fmt: skip
    for name, value, target in rows:
        print(f"{name:<{width}}  {value:>14}  {target}")
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(result, indent=2, default=float))
    print(f"\nwrote {args.json}")
    pd.set_option("display.width", 160)
    print(pd.DataFrame(acc["per_patient"]).round(1).to_string(index=False))
    sys.stdout.flush()


if __name__ == "__main__":
    main()
