"""PK population benchmark: closed form and ODE engine side by side with a per-subject scipy loop.

Run with ``.venv/bin/python benchmarks/pk.py`` (``--quick`` for a smoke run).  Prints a table and
writes ``benchmarks/results/pk.json``.  Nothing here is a pass/fail test; the targets column quotes
issue #5.

Workload: 100,000 subjects of the two-compartment oral model (``TwoCompartmentOral``) with
correlated log-normal inter-individual variability on CL, V1, Q2, V2 and KA (correlation 0.5
between CL and V1, 0.3 between Q2 and V2), F = 0.8, ALAG = 0.25 h, 500 mg every 12 h for 14
doses, 50 samples per subject spread over the 7 days.

- closed form: :func:`medtwin.simulate_population` (superposition in JAX, compiled chunks of
  10,000 subjects on the CPU cores); target <= 2 s;
- ODE engine: the same population on :func:`medtwin.simulate.simulate_doses` (exact dose events,
  RK4 steps <= 0.05 h); target >= 20,000 subjects/s;
- scipy: ``scipy.integrate.solve_ivp`` (LSODA, rtol 1e-8, atol 1e-10) subject by subject, dose by
  dose, on a subsample, extrapolated per subject.

Times are best of ``--repeats`` warm runs (compilation excluded and reported separately);
accuracy is the largest relative deviation from the closed form over every sample of the
subjects compared.
"""

from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results"

N_DOSES, EVERY_H, DOSE_MG, N_SAMPLES = 14, 12.0, 500.0, 50
ETA = ("CL", "V1", "Q2", "V2", "KA")
SD = np.array([0.3, 0.25, 0.3, 0.25, 0.4])
CORR = np.array(
    [
        [1.0, 0.5, 0.0, 0.0, 0.0],
        [0.5, 1.0, 0.0, 0.0, 0.0],
        [0.0, 0.0, 1.0, 0.3, 0.0],
        [0.0, 0.0, 0.3, 1.0, 0.0],
        [0.0, 0.0, 0.0, 0.0, 1.0],
    ]
)


def _setup(n: int, seed: int = 1):
    from medtwin.models.pk import Regimen, TwoCompartmentOral
    from medtwin.trials import PopulationModel

    omega = np.outer(SD, SD) * CORR
    model = PopulationModel(
        TwoCompartmentOral, theta={"F": 0.8, "ALAG": 0.25}, omega=omega, eta_names=ETA
    )
    population = model.sample(n, seed=seed)
    regimen = Regimen.oral(DOSE_MG, every_h=EVERY_H, doses=N_DOSES)
    t = np.linspace(0.5, N_DOSES * EVERY_H, N_SAMPLES)
    return population, regimen, t


def _best(fn, repeats: int) -> tuple[float, float, object]:
    """(first call s, best later call s, last result)."""
    t0 = time.perf_counter()
    out = fn()
    first = time.perf_counter() - t0
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        out = fn()
        times.append(time.perf_counter() - t0)
    return first, min(times), out


def _scipy_subject(p: dict[str, float], t: np.ndarray) -> np.ndarray:
    """One subject by solve_ivp, integrating dose to dose (the bolus enters the depot at +ALAG)."""
    from scipy.integrate import solve_ivp

    k10, k12, k21 = p["CL"] / p["V1"], p["Q2"] / p["V1"], p["Q2"] / p["V2"]
    ka = p["KA"]

    def rhs(_t: float, x: np.ndarray) -> list[float]:
        depot, central, periph = x
        return [
            -ka * depot,
            ka * depot - (k10 + k12) * central + k21 * periph,
            k12 * central - k21 * periph,
        ]

    entries = np.arange(N_DOSES) * EVERY_H + p["ALAG"]
    bounds = [*entries, max(t[-1], entries[-1]) + 1.0]
    x = np.zeros(3)
    out = np.zeros(t.size)  # zero before the first dose enters
    for k in range(N_DOSES):
        x = x + np.array([p["F"] * DOSE_MG, 0.0, 0.0])
        lo, hi = bounds[k], bounds[k + 1]
        inside = (t >= lo) & (t < hi)
        # one call per dose interval: the samples inside it, then its end (the next dose)
        sol = solve_ivp(
            rhs, (lo, hi), x, method="LSODA", rtol=1e-8, atol=1e-10,
            t_eval=np.append(t[inside], hi),
        )  # fmt: skip
        out[inside] = sol.y[1, :-1] / p["V1"]
        x = sol.y[:, -1]
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="10,000 subjects, for a smoke run")
    parser.add_argument("--n", type=int, default=100_000)
    parser.add_argument("--scipy-n", type=int, default=200, help="subjects in the scipy loop")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--json", type=Path, default=RESULTS / "pk.json")
    args = parser.parse_args()
    n = 10_000 if args.quick else args.n

    import jax

    import medtwin  # noqa: F401
    from medtwin.simulate import simulate_doses
    from medtwin.trials import simulate_population

    population, regimen, t = _setup(n)
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()

    cf_first, cf_best, closed = _best(
        lambda: simulate_population(population, regimen, t), args.repeats
    )
    closed = np.asarray(closed)

    def ode() -> np.ndarray:
        sol = simulate_doses(population.model, regimen, t, params=population.params)
        return sol["Cc"]

    ode_first, ode_best, ode_c = _best(ode, max(1, args.repeats - 1))
    ode_rel = float(np.max(np.abs(np.asarray(ode_c) - closed) / np.abs(closed)))

    m = min(args.scipy_n, n)
    t0 = time.perf_counter()
    ref = np.stack(
        [
            _scipy_subject({k: float(v[i]) for k, v in population.params.items()}, t)
            for i in range(m)
        ]
    )
    sp_s = time.perf_counter() - t0
    sp_rel = float(np.max(np.abs(ref - closed[:m]) / np.abs(closed[:m])))

    rows = [
        ("closed form (JAX)", cf_best, n / cf_best, cf_first, 0.0, "<= 2 s"),
        ("ODE engine (RK4 <= 0.05 h)", ode_best, n / ode_best, ode_first, ode_rel, ">= 20,000 /s"),
        (f"scipy solve_ivp loop ({m} subj)", sp_s * n / m, m / sp_s, sp_s, sp_rel, "reference"),
    ]
    print(
        f"\nPK benchmark: {n:,} subjects, 2-compartment oral, correlated IIV, {N_DOSES} doses "
        f"every {EVERY_H:g} h, {N_SAMPLES} samples; {cores} CPU cores, JAX {jax.__version__} "
        f"({jax.default_backend()})\n"
    )
    head = f"{'path':<34}{'time for N (s)':>16}{'subjects/s':>14}{'first call (s)':>16}"
    print(head + f"{'max rel. error':>16}  target")
    for name, secs, rate, first, err, target in rows:
        extrap = " *" if name.startswith("scipy") else "  "
        print(f"{name:<34}{secs:>14.2f}{extrap}{rate:>14,.0f}{first:>16.2f}{err:>16.1e}  {target}")
    print(
        f"\n* extrapolated from {m} subjects ({sp_s:.2f} s).  Closed form vs scipy: "
        f"{cf_best / (sp_s * n / m):.2e} of the time; ODE vs scipy: "
        f"{ode_best / (sp_s * n / m):.2e}.  Errors are relative to the closed form."
    )
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(
        json.dumps(
            {
                "n": n,
                "cores": cores,
                "closed_form": {"best_s": cf_best, "first_s": cf_first},
                "ode": {
                    "best_s": ode_best,
                    "first_s": ode_first,
                    "max_rel_error": ode_rel,
                    "subjects_per_s": n / ode_best,
                },
                "scipy": {
                    "subjects": m,
                    "seconds": sp_s,
                    "subjects_per_s": m / sp_s,
                    "max_rel_error": sp_rel,
                },
            },
            indent=2,
        )
    )


if __name__ == "__main__":
    main()
