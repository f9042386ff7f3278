"""The ``medtwin`` command: simulate virtual patients, list the models, run the demo.

Every :class:`~medtwin.errors.MedtwinError` is caught here, at the boundary, and printed as
``error: <message>`` with exit status 2; bad input never ends in a traceback.  Heavy modules
(devices, controllers, metrics, plotting) are imported inside the commands, so ``medtwin --version``
and ``medtwin --help`` stay quick.
"""

from __future__ import annotations

import math
import re
import time
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import numpy as np
import typer

import medtwin
from medtwin.errors import ConfigurationError, MedtwinError, ScheduleError

if TYPE_CHECKING:
    import pandas as pd

    from medtwin.models import VirtualPatients
    from medtwin.simulate import Schedule, Solution

__all__ = ["app"]

MIN_PER_DAY = 1440.0
GROUPS = ("adolescents", "adults", "children")
_GROUP_OF_PREFIX = {"adolescent": "adolescents", "adult": "adults", "child": "children"}
_GROUP_ALIASES = {"adolescent": "adolescents", "adult": "adults", "child": "children"}
_SENSORS = {
    "dexcom": "Dexcom",
    "dexcomg6": "DexcomG6",
    "guardianrt": "GuardianRT",
    "navigator": "Navigator",
}
_PUMPS = {"insulet": "Insulet", "cozmo": "Cozmo"}
_CONTROLLERS = ("none", "basal-bolus", "pid")
_TABLE_FORMATS = (".csv", ".parquet")
_KIND_NAMES = {float: "a number", int: "a whole number", str: "a name"}
MANY_PATIENTS = 30
"""Above this many patients ``--summary`` prints percentiles over the cohort, not every patient."""

DEMO_MEALS: tuple[tuple[float, float], ...] = ((420.0, 45.0), (720.0, 70.0), (1140.0, 80.0))
"""The demo's day: breakfast 07:00 45 g, lunch 12:00 70 g, dinner 19:00 80 g."""

app = typer.Typer(
    name="medtwin",
    help="Open-source digital twins for healthcare: batched physiological simulation.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)


# ---------------------------------------------------------------------------------------------
# Errors at the boundary
# ---------------------------------------------------------------------------------------------


@contextmanager
def _errors_to_exit() -> Iterator[None]:
    """Turn a MedtwinError (or an unwritable file) into ``error: ...`` on stderr and exit 2."""
    try:
        yield
    except MedtwinError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(2) from None
    except OSError as exc:
        where = f" {exc.filename}" if exc.filename else ""
        typer.echo(f"error: cannot access{where}: {exc.strerror or exc}", err=True)
        raise typer.Exit(2) from None


# ---------------------------------------------------------------------------------------------
# Parsing TIME:VALUE specifications
# ---------------------------------------------------------------------------------------------

_HHMM = re.compile(r"^\s*(\d{1,3}):(\d{2})\s*$")
_BARE_HHMM = re.compile(r"^\s*\d{1,2}:[0-5]\d\s*$")  # "07:00": a time and no amount


def parse_time(text: str | float, *, what: str = "time") -> float:
    """Minutes from the start for ``"HH:MM"`` (hours may exceed 23) or a number of minutes.

    >>> parse_time("07:30"), parse_time("450"), parse_time("25:00"), parse_time(90)
    (450.0, 450.0, 1500.0, 90.0)
    """
    if isinstance(text, (int, float)) and not isinstance(text, bool):
        minutes = float(text)
    else:
        s = str(text).strip()
        match = _HHMM.match(s)
        if match:
            hours, mins = int(match.group(1)), int(match.group(2))
            if mins >= 60:
                raise ScheduleError(f"{what} {s!r}: minutes must be 00-59")
            minutes = hours * 60.0 + mins
        else:
            try:
                minutes = float(s)
            except ValueError:
                raise ScheduleError(
                    f"{what} {s!r} is not a time; "
                    "write HH:MM from the start (07:30) or minutes (450)"
                ) from None
    if not math.isfinite(minutes) or minutes < 0:
        raise ScheduleError(f"{what} {text!r} must be a finite time >= 0")
    return minutes


def parse_spec(spec: str, option: str, value_name: str) -> tuple[float, float]:
    """Split ``TIME:VALUE`` (``07:30:60`` or ``450:60``) into minutes and a number.

    >>> parse_spec("07:30:60", "--meal", "GRAMS")
    (450.0, 60.0)
    """
    example = f"{option} 07:30:60 or {option} 450:60"
    if _BARE_HHMM.match(spec):
        raise ScheduleError(
            f"malformed {option} {spec!r}: it reads as a time with no {value_name}; write "
            f"TIME:{value_name}, e.g. {example}"
        )
    head, sep, tail = spec.rpartition(":")
    if not sep or not head.strip() or not tail.strip():
        raise ScheduleError(
            f"malformed {option} {spec!r}: expected TIME:{value_name} with TIME as HH:MM or "
            f"minutes, e.g. {example}"
        )
    minutes = parse_time(head, what=f"{option} {spec!r}: time")
    try:
        value = float(tail)
    except ValueError:
        raise ScheduleError(
            f"malformed {option} {spec!r}: {value_name} {tail.strip()!r} is not a number "
            f"(e.g. {example})"
        ) from None
    if not math.isfinite(value):
        raise ScheduleError(f"{option} {spec!r}: {value_name} must be finite")
    if value < 0:
        raise ScheduleError(f"{option} {spec!r}: {value_name} must be >= 0, got {value:g}")
    return minutes, value


def format_time(minutes: float) -> str:
    """``HH:MM`` from the start (hours past 24 for later days).

    >>> format_time(450.0), format_time(1500.0)
    ('07:30', '25:00')
    """
    total = round(minutes)
    return f"{total // 60:02d}:{total % 60:02d}"


# ---------------------------------------------------------------------------------------------
# The scenario: everything a simulate call needs, from flags and/or a YAML file
# ---------------------------------------------------------------------------------------------

_SCENARIO_KEYS = {
    "meals", "boluses", "basal", "events", "days", "controller", "sensor", "pump", "seed",
    "patients", "n", "population", "target", "pid", "output_every",
}  # fmt: skip


@dataclass(frozen=True, slots=True)
class Scenario:
    """One simulation run as the CLI understands it (flags and the YAML file merged)."""

    patients: tuple[str, ...] = ("adult#001",)
    n: int | None = None
    population: bool = False
    days: float = 1.0
    schedule_data: Mapping[str, Any] = field(default_factory=dict)
    controller: str = "none"
    target_mg_dl: float = 140.0
    pid_gains: tuple[float, float, float] = (1e-4, 1e-7, 1e-3)
    sensor: str = "none"
    pump: str = "none"
    seed: int = 0
    output_every: float = 5.0

    def describe(self) -> dict[str, str]:
        """Return the scenario as (label, text) pairs for a report."""
        meals = _events_text(self.schedule_data.get("meals"), "g")
        boluses = _events_text(self.schedule_data.get("boluses"), "U")
        out = {
            "model": "UvaPadova2008 (Dalla Man et al. 2007; simglucose 0.2.11 parameters)",
            "patients": (
                f"{self.n} drawn from the population priors (seed {self.seed})"
                if self.population
                else ", ".join(self.patients) + (f" (cohort of {self.n})" if self.n else "")
            ),
            "duration": f"{self.days:g} day{'s' if self.days != 1 else ''} from midnight",
            "meals": meals or "none",
        }
        if boluses:
            out["manual boluses"] = boluses
        ctrl = self.controller
        if ctrl == "basal-bolus":
            ctrl += f" (target {self.target_mg_dl:g} mg/dL, each patient's basal, CR and CF)"
        elif ctrl == "pid":
            kp, ki, kd = self.pid_gains
            ctrl += f" (kp {kp:g}, ki {ki:g}, kd {kd:g}, target {self.target_mg_dl:g} mg/dL)"
        out |= {
            "controller": ctrl,
            "sensor": self.sensor,
            "pump": self.pump,
            "solver": "RK4, 1 min step",
            "output": f"every {self.output_every:g} min",
            "seed": str(self.seed),
        }
        return out


def _events_text(items: Any, unit: str) -> str:
    if not items:
        return ""
    parts = []
    for item in items:
        t, v = (item["time"], list(item.values())[1]) if isinstance(item, Mapping) else item
        parts.append(f"{format_time(parse_time(t))} {float(v):g} {unit}")
    return ", ".join(parts)


def load_scenario_file(path: Path) -> dict[str, Any]:
    """Read a scenario YAML file into a dict, rejecting unknown keys."""
    import yaml

    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigurationError(f"cannot read scenario {str(path)!r}: {exc.strerror}") from None
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise ConfigurationError(f"scenario {str(path)!r} is not valid YAML: {exc}") from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ConfigurationError(f"scenario {str(path)!r} must be a mapping of keys, got a list")
    unknown = set(data) - _SCENARIO_KEYS
    if unknown:
        raise ConfigurationError(
            f"scenario {str(path)!r} has unknown keys {sorted(unknown)}; "
            f"known: {', '.join(sorted(_SCENARIO_KEYS))}"
        )
    return data


def _normalise_events(items: Any, key: str) -> list[Any]:
    """YAML entries with HH:MM strings as times -> minutes; the rest as Schedule.from_dict wants."""
    if items is None:
        return []
    if not isinstance(items, list):
        raise ScheduleError(f"scenario {key} must be a list of [time, value] pairs")
    out: list[Any] = []
    for item in items:
        if isinstance(item, Mapping) and "time" in item:
            out.append({**item, "time": parse_time(item["time"], what=f"{key} time")})
        elif isinstance(item, (list, tuple)) and len(item) == 2:
            out.append([parse_time(item[0], what=f"{key} time"), item[1]])
        elif isinstance(item, str) and ":" in item:
            out.append(list(parse_spec(item, key, "VALUE")))
        else:
            out.append(item)  # Schedule.from_dict names what is wrong with it
    return out


def daily_schedule(data: Mapping[str, Any], days: float) -> Schedule:
    """Build the schedule of ``data``, repeating first-day events every day of ``days``.

    Events before 24:00 form the daily pattern and repeat (the copies that would fall after the
    end are dropped); later events happen once.  Any event at or after the end is an error.
    """
    from medtwin.simulate import Event, Schedule

    clean = {k: _normalise_events(data.get(k), k) for k in ("meals", "boluses", "basal")}
    clean["events"] = list(data.get("events") or [])
    schedule = Schedule.from_dict({k: v for k, v in clean.items() if v})
    end = days * MIN_PER_DAY
    for e in schedule.events:
        if e.time >= end - 1e-9:
            what = {"meal": "meal", "insulin": "bolus" if e.kind == "pulse" else "basal change"}
            raise ScheduleError(
                f"{what.get(e.input, e.input)} at {format_time(e.time)} ({e.time:g} min) is "
                f"after the end of the simulation ({days:g} day{'s' if days != 1 else ''} = "
                f"{end:g} min); increase --days or move it"
            )
    daily = [e for e in schedule.events if e.time < MIN_PER_DAY]
    once = [e for e in schedule.events if e.time >= MIN_PER_DAY]
    repeats = math.ceil(days)
    events: list[Event] = list(daily)
    for k in range(1, repeats):
        events += [
            replace(e, time=e.time + k * MIN_PER_DAY)
            for e in daily
            if e.time + k * MIN_PER_DAY < end - 1e-9
        ]
    return Schedule(tuple(sorted([*events, *once], key=lambda e: e.time)))


# ---------------------------------------------------------------------------------------------
# Cohorts, strategies, running
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Cohort:
    """The simulated patients: unique ids, their catalogue names and their parameters."""

    ids: tuple[str, ...]
    names: tuple[str, ...]
    patients: VirtualPatients


def _select(patients: Sequence[str]) -> VirtualPatients:
    from medtwin.models import load_patients

    requested: list[str] = []
    for p in patients:
        for item in p.split(","):
            item = item.strip()
            if item:
                requested.append(_GROUP_ALIASES.get(item.lower(), item))
    if not requested:
        raise ConfigurationError("no patient given; use e.g. --patient adult#001 or --patient all")
    if any(r.lower() == "all" for r in requested):
        return load_patients(None)
    seen: dict[str, None] = {}
    for name in load_patients(requested).names:
        seen.setdefault(name, None)
    return load_patients(list(seen))


def _subset(vp: VirtualPatients, idx: np.ndarray, names: tuple[str, ...]) -> VirtualPatients:
    from medtwin.models import VirtualPatients

    return VirtualPatients(
        names=names,
        params={k: v[idx] for k, v in vp.params.items()},
        x0={k: v[idx] for k, v in vp.x0.items()},
        carb_ratio_g_per_u=vp.carb_ratio_g_per_u[idx],
        correction_factor_mg_dl_per_u=vp.correction_factor_mg_dl_per_u[idx],
        age_years=vp.age_years[idx],
        total_daily_insulin_u=vp.total_daily_insulin_u[idx],
    )


def build_cohort(scn: Scenario) -> Cohort:
    """Select a scenario's patients: catalogue patients (cycled to ``n``) or a population draw."""
    if scn.n is not None and scn.n < 1:
        raise ConfigurationError(f"--n must be >= 1, got {scn.n}")
    if scn.population:
        return _population(scn.n or 100, scn.seed)
    vp = _select(scn.patients)
    n = scn.n or len(vp)
    idx = np.arange(n) % len(vp)
    names = tuple(vp.names[i] for i in idx)
    # a patient repeated in the cohort is told apart by its round: adult#001/1, adult#001/2, ...
    rounds = np.arange(n) // len(vp) + 1
    ids = tuple(f"{nm}/{r}" for nm, r in zip(names, rounds, strict=True)) if n > len(vp) else names
    return Cohort(ids=ids, names=names, patients=_subset(vp, idx, ids))


FASTING_RANGE_MG_DL = (80.0, 180.0)
"""A population draw is kept only if its fasting steady state lies in this range."""


def _population(n: int, seed: int) -> Cohort:
    """Draw ``n`` patients from the priors, with therapy settings from the catalogue's rules.

    The priors are independent marginals, so many draws are not viable patients (a fasting
    glucose of 10 or 600 mg/dL); draws whose fasting steady state lies outside
    :data:`FASTING_RANGE_MG_DL` are redrawn.  The catalogue's 30 patients give, as geometric means,
    the basal share of the total daily insulin (TDI) and the constants of the "500" and "1800"
    rules (CR x TDI, CF x TDI); a drawn patient's TDI follows from its steady-state basal, its CR
    and CF from those constants.
    """
    from medtwin.models import UvaPadova2008, VirtualPatients, load_patients

    ref = load_patients(None)
    tdi_ref = ref.total_daily_insulin_u
    basal_share = float(np.exp(np.mean(np.log(ref.basal_u_per_min * MIN_PER_DAY / tdi_ref))))
    cr_rule = float(np.exp(np.mean(np.log(ref.carb_ratio_g_per_u * tdi_ref))))
    cf_rule = float(np.exp(np.mean(np.log(ref.correction_factor_mg_dl_per_u * tdi_ref))))

    model = UvaPadova2008()
    low, high = FASTING_RANGE_MG_DL
    kept_p: list[dict[str, np.ndarray]] = []
    kept_x: list[dict[str, np.ndarray]] = []
    have = 0
    batch = max(64, 3 * n)
    for attempt in range(100):
        draw_seed = int(np.random.SeedSequence([seed, attempt]).generate_state(1)[0])
        params = UvaPadova2008.sample_params(batch, draw_seed)
        x0 = {k: np.asarray(v, dtype=float) for k, v in model.initial_state(params).items()}
        fasting = x0["Gs"] / params["Vg"]
        ok = np.flatnonzero((fasting >= low) & (fasting <= high))[: n - have]
        kept_p.append({k: v[ok] for k, v in params.items()})
        kept_x.append({k: v[ok] for k, v in x0.items()})
        have += ok.size
        if have == n:
            break
    else:  # pragma: no cover - about a third of the draws are kept
        raise ConfigurationError(f"could not draw {n} viable patients from the priors")
    params = {k: np.concatenate([d[k] for d in kept_p]) for k in kept_p[0]}
    x0 = {k: np.concatenate([d[k] for d in kept_x]) for k in kept_x[0]}
    basal = params["u2ss"] * params["BW"] / 6000.0
    tdi = basal * MIN_PER_DAY / basal_share
    width = len(str(n))
    ids = tuple(f"pop#{i + 1:0{width}d}" for i in range(n))
    vp = VirtualPatients(
        names=ids,
        params=params,
        x0=x0,
        carb_ratio_g_per_u=cr_rule / tdi,
        correction_factor_mg_dl_per_u=cf_rule / tdi,
        age_years=np.full(n, np.nan),
        total_daily_insulin_u=tdi,
    )
    return Cohort(ids=ids, names=ids, patients=vp)


def canonical_controller(name: str) -> str:
    """Normalise a controller name to ``none``, ``basal-bolus`` or ``pid`` (or raise)."""
    key = name.strip().lower().replace("_", "-")
    key = {"": "none", "bb": "basal-bolus", "basalbolus": "basal-bolus"}.get(key, key)
    if key not in _CONTROLLERS:
        raise ConfigurationError(
            f"unknown controller {name!r}; choose one of {', '.join(_CONTROLLERS)}"
        )
    return key


def canonical_sensor(name: str) -> str:
    """Normalise a sensor name to ``none``, ``ideal`` or a CGM of the catalogue (or raise)."""
    key = name.strip().lower()
    if key in ("none", "", "ideal"):
        return key or "none"
    if key in _SENSORS:
        return _SENSORS[key]
    raise ConfigurationError(
        f"unknown sensor {name!r}; choose one of none, ideal, {', '.join(_SENSORS.values())}"
    )


def canonical_pump(name: str) -> str:
    """Normalise a pump name to ``none`` or a pump of the catalogue (or raise)."""
    key = name.strip().lower()
    if key in ("none", ""):
        return "none"
    if key in _PUMPS:
        return _PUMPS[key]
    raise ConfigurationError(
        f"unknown pump {name!r}; choose one of none, {', '.join(_PUMPS.values())}"
    )


def make_controller(scn: Scenario, vp: VirtualPatients) -> Any:
    """Build the controller a scenario names (None for open loop)."""
    name = canonical_controller(scn.controller)
    if name == "basal-bolus":
        from medtwin.control import BasalBolus

        return BasalBolus.for_patients(vp, target_mg_dl=scn.target_mg_dl)
    if name == "pid":
        from medtwin.control import PID

        kp, ki, kd = scn.pid_gains
        return PID(kp, ki, kd, target_mg_dl=scn.target_mg_dl, basal_u_per_min=vp.basal_u_per_min)
    return None


def make_sensor(name: str) -> Any:
    """Build a CGM by name (``DexcomG6``, ``Dexcom``, ``GuardianRT``, ``Navigator``, ``ideal``)."""
    key = canonical_sensor(name)
    if key == "none":
        return None
    from medtwin.devices import CGMSensor, sensor_named

    return CGMSensor.ideal(sample_time=5.0) if key == "ideal" else sensor_named(key)


def make_pump(name: str) -> Any:
    """Build an insulin pump by name (``Insulet``, ``Cozmo``), or None."""
    key = canonical_pump(name)
    if key == "none":
        return None
    from medtwin.devices import InsulinPump

    return InsulinPump.named(key)


def output_grid(days: float, every_min: float) -> np.ndarray:
    """Output times 0, every, ..., days x 1440 min."""
    if not (math.isfinite(days) and days > 0):
        raise ConfigurationError(f"--days must be > 0, got {days:g}")
    if not (math.isfinite(every_min) and every_min >= 1 and float(every_min).is_integer()):
        raise ConfigurationError(
            f"--output-every must be a whole number of minutes >= 1, got {every_min:g}"
        )
    end = days * MIN_PER_DAY
    steps = end / every_min
    if abs(steps - round(steps)) > 1e-9:
        raise ConfigurationError(
            f"{days:g} days ({end:g} min) is not a whole number of {every_min:g}-min outputs; "
            "change --days or --output-every"
        )
    return np.arange(round(steps) + 1) * every_min


def run_scenario(scn: Scenario, *, progress: bool = False) -> tuple[Solution, Schedule, Cohort]:
    """Validate a scenario, then simulate it; returns the solution, schedule and cohort."""
    from medtwin.models import UvaPadova2008
    from medtwin.simulate import simulate

    t = output_grid(scn.days, scn.output_every)
    schedule = daily_schedule(scn.schedule_data, scn.days)
    sensor = make_sensor(scn.sensor)
    pump = make_pump(scn.pump)
    cohort = build_cohort(scn)
    controller = make_controller(scn, cohort.patients)
    sol = simulate(
        UvaPadova2008, schedule, t,
        params=cohort.patients.params, x0=cohort.patients.x0, patient_ids=cohort.ids,
        controller=controller, sensor=sensor, pump=pump, seed=scn.seed, progress=progress,
    )  # fmt: skip
    return sol, schedule, cohort


def solution_frame(sol: Solution, cohort: Cohort) -> pd.DataFrame:
    """Long format (Solution.to_pandas) with the catalogue name of each row's patient."""
    df = sol.to_pandas()
    df.insert(1, "virtual_patient", np.repeat(np.asarray(cohort.names, dtype=object), sol.t.size))
    return df


def write_table(df: pd.DataFrame, path: Path) -> Path:
    """Write ``df`` as CSV or Parquet, by the suffix of ``path``."""
    _check_table_path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    if path.suffix.lower() == ".parquet":
        df.to_parquet(path, index=False)
    else:
        df.to_csv(path, index=False)
    return path


def _check_table_path(path: Path) -> None:
    if path.suffix.lower() not in _TABLE_FORMATS:
        raise ConfigurationError(
            f"--out {str(path)!r}: unknown format {path.suffix or '(no suffix)'!r}; "
            "use a .csv or .parquet file"
        )


def _check_plot_path(path: Path) -> None:
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    formats = FigureCanvasAgg.get_supported_filetypes()
    if path.suffix.lower().lstrip(".") not in formats:
        raise ConfigurationError(
            f"--plot {str(path)!r}: unknown image format {path.suffix or '(no suffix)'!r}; "
            "use .png, .pdf or .svg"
        )


def group_of(name: str) -> str:
    """Return the catalogue group of a virtual patient (``adult#003`` -> ``adults``)."""
    prefix = name.split("#", 1)[0]
    return _GROUP_OF_PREFIX.get(prefix, "population" if prefix == "pop" else prefix)


def metrics_table(sol: Solution, *, warn: bool = True) -> pd.DataFrame:
    """Compute glycaemic metrics of the true subcutaneous glucose, one row per patient.

    A patient whose glucose fell below 1 mg/dL (where the model, and the risk indices, stop
    making sense: a draw or a controller it cannot carry through a severe hypoglycaemia) gets
    empty metrics and, with ``warn``, a note on stderr.
    """
    from medtwin.metrics import glycaemic_summary

    glucose = np.asarray(sol["Gsub"], dtype=float)
    ids = list(sol.patient_ids)
    valid = (glucose >= 1.0).all(axis=1) & np.isfinite(glucose).all(axis=1)
    if valid.all():
        return glycaemic_summary(glucose, patient_names=ids)
    bad = [ids[i] for i in np.flatnonzero(~valid)]
    if warn:
        shown = ", ".join(bad[:5]) + (", ..." if len(bad) > 5 else "")
        typer.echo(
            f"note: glucose fell below 1 mg/dL for {len(bad)} patient{'s' if len(bad) > 1 else ''} "
            f"({shown}); their metrics are left empty",
            err=True,
        )
    if not valid.any():
        import pandas as pd

        from medtwin.metrics.glucose import SUMMARY_COLUMNS

        return pd.DataFrame(np.nan, index=pd.Index(ids, name="patient"), columns=SUMMARY_COLUMNS)
    table = glycaemic_summary(glucose[valid], patient_names=[ids[i] for i in np.flatnonzero(valid)])
    return table.reindex(ids).rename_axis("patient")


def cohort_summary(metrics: pd.DataFrame) -> pd.DataFrame:
    """Percentiles over patients of every metric (rows: metrics)."""
    numeric = metrics.select_dtypes("number")
    stats = numeric.quantile([0.05, 0.25, 0.5, 0.75, 0.95]).T
    stats.columns = ["p5", "p25", "median", "p75", "p95"]
    stats.insert(0, "mean", numeric.mean())
    stats.index.name = "metric"
    return stats


def group_summary(metrics: pd.DataFrame, names: Sequence[str]) -> pd.DataFrame:
    """Mean of every metric per patient group (adolescents, adults, children)."""
    numeric = metrics.select_dtypes("number").copy()
    numeric.insert(0, "group", [group_of(n) for n in names])
    out = numeric.groupby("group", sort=True).mean()
    out.insert(0, "patients", numeric.groupby("group", sort=True).size())
    return out


def _print_table(df: pd.DataFrame) -> None:
    import pandas as pd

    with pd.option_context("display.width", 200, "display.max_columns", 40):
        typer.echo(df.to_string(float_format=lambda v: f"{v:.2f}" if abs(v) < 10 else f"{v:.1f}"))


# ---------------------------------------------------------------------------------------------
# Commands
# ---------------------------------------------------------------------------------------------


def _version(value: bool) -> None:
    if value:
        typer.echo(f"medtwin {medtwin.__version__}")
        raise typer.Exit()


@app.callback()
def main(
    version: Annotated[
        bool,
        typer.Option("--version", callback=_version, is_eager=True, help="Print the version."),
    ] = False,
) -> None:
    """Open-source digital twins for healthcare: batched physiological simulation."""


@app.command()
def simulate(
    patient: Annotated[
        list[str] | None,
        typer.Option(
            "--patient",
            "-p",
            help="Virtual patient (adult#001), group (adults, adolescents, children) or 'all'; "
            "repeatable. Default adult#001.",
        ),
    ] = None,
    n: Annotated[
        int | None, typer.Option("--n", help="Cohort size: cycles the chosen patients.")
    ] = None,
    population: Annotated[
        bool,
        typer.Option(
            "--population", help="Draw --n patients (default 100) from the population priors."
        ),
    ] = False,
    days: Annotated[float | None, typer.Option(help="Simulated days (default 1).")] = None,
    meal: Annotated[
        list[str] | None,
        typer.Option(
            "--meal",
            "-m",
            metavar="TIME:GRAMS",
            help="Meal, TIME as HH:MM from the start or minutes (07:30:60, 450:60); repeatable. "
            "Meals of the first day repeat every day.",
        ),
    ] = None,
    bolus: Annotated[
        list[str] | None,
        typer.Option("--bolus", "-b", metavar="TIME:UNITS", help="Insulin bolus; repeatable."),
    ] = None,
    basal_factor: Annotated[
        list[str] | None,
        typer.Option(
            "--basal-factor",
            metavar="TIME:FACTOR",
            help="From TIME on, basal = FACTOR x the patient's basal; repeatable.",
        ),
    ] = None,
    scenario: Annotated[
        Path | None,
        typer.Option(
            metavar="FILE.yaml",
            help="Scenario file: meals, boluses, basal, days, controller, sensor, pump, seed, "
            "patients, n, target, pid; flags override it.",
        ),
    ] = None,
    controller: Annotated[
        str | None,
        typer.Option(help="none | basal-bolus | pid (default none: open loop)."),
    ] = None,
    target: Annotated[
        float | None, typer.Option(help="Controller target glucose, mg/dL (default 140).")
    ] = None,
    pid_kp: Annotated[
        float | None, typer.Option(help="PID gain, U/min per mg/dL (default 1e-4).")
    ] = None,
    pid_ki: Annotated[
        float | None, typer.Option(help="PID gain, U/min per mg/dL.min (default 1e-7).")
    ] = None,
    pid_kd: Annotated[
        float | None, typer.Option(help="PID gain, U/min per mg/dL/min (default 1e-3).")
    ] = None,
    sensor: Annotated[
        str | None,
        typer.Option(
            help="none | DexcomG6 | Dexcom | GuardianRT | Navigator | ideal (default none)."
        ),
    ] = None,
    pump: Annotated[str | None, typer.Option(help="none | Insulet | Cozmo (default none).")] = None,
    seed: Annotated[int | None, typer.Option(help="Seed of the sensor noise.")] = None,
    output_every: Annotated[
        float | None, typer.Option(help="Output period in minutes (default 5).")
    ] = None,
    out: Annotated[
        Path | None, typer.Option(help="Write trajectories (long format) to .csv or .parquet.")
    ] = None,
    plot: Annotated[
        Path | None, typer.Option(help="Draw glucose and insulin to an image (.png).")
    ] = None,
    summary: Annotated[
        bool, typer.Option("--summary/--no-summary", help="Print the glycaemic metrics.")
    ] = True,
    progress: Annotated[
        bool, typer.Option("--progress/--no-progress", help="Progress bar for large cohorts.")
    ] = True,
) -> None:
    """Simulate virtual patients of the UVA/Padova model under meals, boluses and control."""
    with _errors_to_exit():
        file = load_scenario_file(scenario) if scenario is not None else {}
        if out is not None:
            _check_table_path(out)
        if plot is not None:
            _check_plot_path(plot)
        scn = _merge(
            file,
            patient=patient, n=n, population=population, days=days, meal=meal, bolus=bolus,
            basal_factor=basal_factor, controller=controller, target=target,
            gains=(pid_kp, pid_ki, pid_kd), sensor=sensor, pump=pump, seed=seed,
            output_every=output_every,
        )  # fmt: skip
        if scn.pump != "none" and scn.controller == "none":
            typer.echo(
                "note: a pump only acts on a controller's output; --pump is ignored", err=True
            )
        if scn.controller != "none" and (scn.schedule_data.get("basal") or []):
            typer.echo(
                "note: the controller sets the basal rate; --basal-factor is ignored", err=True
            )

        start = time.perf_counter()
        sol, schedule, cohort = run_scenario(scn, progress=progress)
        elapsed = time.perf_counter() - start
        typer.echo(
            f"simulated {sol.n_patients} patient{'s' if sol.n_patients > 1 else ''} for "
            f"{scn.days:g} day{'s' if scn.days != 1 else ''} in {elapsed:.1f} s",
            err=True,
        )
        if out is not None:
            write_table(solution_frame(sol, cohort), out)
            typer.echo(f"wrote {out}")
        if plot is not None:
            from medtwin.plot import plot_glucose

            plot.parent.mkdir(parents=True, exist_ok=True)
            plot_glucose(sol, schedule, plot)
            typer.echo(f"wrote {plot}")
        if summary:
            metrics = metrics_table(sol)
            if sol.n_patients > MANY_PATIENTS:
                typer.echo(f"glycaemic metrics over {sol.n_patients} patients (Gsub):")
                _print_table(cohort_summary(metrics))
            else:
                _print_table(metrics)


def _merge(
    file: Mapping[str, Any],
    *,
    patient: list[str] | None,
    n: int | None,
    population: bool,
    days: float | None,
    meal: list[str] | None,
    bolus: list[str] | None,
    basal_factor: list[str] | None,
    controller: str | None,
    target: float | None,
    gains: tuple[float | None, float | None, float | None],
    sensor: str | None,
    pump: str | None,
    seed: int | None,
    output_every: float | None,
) -> Scenario:
    """Merge the flags over the scenario file over the defaults."""
    base = Scenario()

    def pick(
        flag: Any, key: str, default: Any, kind: type, source: Mapping[str, Any] = file
    ) -> Any:
        value = flag if flag is not None else source.get(key)
        if value is None:
            return default
        if kind is not str and isinstance(value, (bool, str)):
            value = "invalid" if isinstance(value, bool) else value
        try:
            return kind(value)
        except (TypeError, ValueError):
            raise ConfigurationError(
                f"scenario {key} must be {_KIND_NAMES.get(kind, kind.__name__)}, got {value!r}"
            ) from None

    if population and patient:
        raise ConfigurationError(
            "--population draws its patients; drop --patient (or --population)"
        )
    patients: Any = patient or file.get("patients") or base.patients
    if isinstance(patients, str):
        patients = [patients]
    sched = {k: file.get(k) for k in ("meals", "boluses", "basal", "events") if file.get(k)}
    if meal:
        sched["meals"] = [list(parse_spec(m, "--meal", "GRAMS")) for m in meal]
    if bolus:
        sched["boluses"] = [list(parse_spec(b, "--bolus", "UNITS")) for b in bolus]
    if basal_factor:
        sched["basal"] = [
            {"time": t, "factor": f}
            for t, f in (parse_spec(b, "--basal-factor", "FACTOR") for b in basal_factor)
        ]
    pid_file = file.get("pid") or {}
    if not isinstance(pid_file, Mapping):
        raise ConfigurationError("scenario pid must be a mapping with kp, ki, kd")
    kp, ki, kd = (
        pick(flag, name, default, float, source=pid_file)
        for flag, name, default in zip(gains, ("kp", "ki", "kd"), base.pid_gains, strict=True)
    )
    n_value = pick(n, "n", None, int)
    return Scenario(
        patients=tuple(str(p) for p in patients),
        n=n_value,
        population=population or bool(file.get("population", False)),
        days=pick(days, "days", base.days, float),
        schedule_data=sched,
        controller=canonical_controller(pick(controller, "controller", base.controller, str)),
        target_mg_dl=pick(target, "target", base.target_mg_dl, float),
        pid_gains=(kp, ki, kd),
        sensor=canonical_sensor(pick(sensor, "sensor", base.sensor, str)),
        pump=canonical_pump(pick(pump, "pump", base.pump, str)),
        seed=pick(seed, "seed", base.seed, int),
        output_every=pick(output_every, "output_every", base.output_every, float),
    )


@app.command()
def models(
    patients: Annotated[
        bool, typer.Option("--patients", help="List the 30 virtual patients instead.")
    ] = False,
) -> None:
    """List the model catalogue (states, parameters) or the virtual patients."""
    with _errors_to_exit():
        if patients:
            _print_table(patients_table())
            return
        from medtwin.models import ALL_MODELS

        for i, model in enumerate(ALL_MODELS):
            if i:
                typer.echo("")
            typer.echo(model.describe())


def patients_table() -> pd.DataFrame:
    """Tabulate the virtual patients: body weight, basal, CR, CF, age, total daily insulin."""
    import pandas as pd

    from medtwin.models import load_patients

    vp = load_patients(None)
    return pd.DataFrame(
        {
            "group": [group_of(n) for n in vp.names],
            "BW_kg": vp.params["BW"],
            "basal_U_per_h": vp.basal_u_per_min * 60.0,
            "CR_g_per_U": vp.carb_ratio_g_per_u,
            "CF_mg_dL_per_U": vp.correction_factor_mg_dl_per_u,
            "age_years": vp.age_years.astype(int),
            "TDI_U": vp.total_daily_insulin_u,
        },
        index=pd.Index(vp.names, name="patient"),
    )


def demo_scenario() -> Scenario:
    """Return the demo: all 30 patients, one day, three meals, basal-bolus, Dexcom, Insulet."""
    return Scenario(
        patients=("all",),
        days=1.0,
        schedule_data={"meals": [list(m) for m in DEMO_MEALS]},
        controller="basal-bolus",
        sensor="Dexcom",
        pump="Insulet",
        seed=0,
    )


@app.command()
def demo(
    out: Annotated[
        Path, typer.Option(help="Folder for demo.csv, demo.png, metrics.csv, report.html.")
    ] = Path("out/demo"),
) -> None:
    """Simulate the 30 virtual patients for a day and write data, figure, metrics and a report."""
    with _errors_to_exit():
        paths = run_demo(out)
        for p in paths.values():
            typer.echo(f"wrote {p}")


def run_demo(folder: Path, *, echo: bool = True) -> dict[str, Path]:
    """Run the demo into ``folder``; returns the paths written by name."""
    from medtwin.plot import glucose_figure, png_bytes
    from medtwin.report import write_report

    scn = demo_scenario()
    start = time.perf_counter()
    sol, schedule, cohort = run_scenario(scn)
    elapsed = time.perf_counter() - start
    folder.mkdir(parents=True, exist_ok=True)
    paths = {
        "data": folder / "demo.csv",
        "figure": folder / "demo.png",
        "metrics": folder / "metrics.csv",
        "report": folder / "report.html",
    }
    write_table(solution_frame(sol, cohort), paths["data"])
    fig = glucose_figure(sol, schedule, title="30 virtual patients, basal-bolus therapy, one day")
    png = png_bytes(fig)
    paths["figure"].write_bytes(png)

    metrics = metrics_table(sol)
    per_group = group_summary(metrics, cohort.names)
    with_group = metrics.copy()
    with_group.insert(0, "group", [group_of(nm) for nm in cohort.names])
    with_group.to_csv(paths["metrics"], index=True)

    info = scn.describe() | {"patients": "all 30 (10 adolescents, 10 adults, 10 children)"}
    info["simulation time"] = f"{elapsed:.1f} s (compilation included)"
    write_report(
        paths["report"],
        title="medtwin demo: a day of the 30 UVA/Padova virtual patients",
        scenario=info,
        figure_png=png,
        tables=[
            ("Metrics per group (mean over patients)", per_group),
            ("Metrics per patient", metrics),
        ],
        notes=(
            "Glycaemic metrics are computed on the true subcutaneous glucose (Gsub); the "
            "controller acts on the Dexcom readings. Target range 70-180 mg/dL."
        ),
    )
    if echo:
        typer.echo(f"simulated {sol.n_patients} patients for 1 day in {elapsed:.1f} s")
        short = per_group[
            ["patients", "mean_mg_dl", "tir_70_180_percent", "tbr_70_percent", "tar_180_percent",
             "risk_index"]
        ]  # fmt: skip
        _print_table(short)
    return paths


def _register_subcommands() -> None:
    from medtwin._cli_hospital import hospital_app
    from medtwin._cli_pk import pk_app
    from medtwin._cli_service import register
    from medtwin._cli_twin import twin_app

    app.add_typer(twin_app, name="twin")
    app.add_typer(pk_app, name="pk")
    app.add_typer(hospital_app, name="hospital")
    register(app)


_register_subcommands()

if __name__ == "__main__":  # pragma: no cover
    app()
