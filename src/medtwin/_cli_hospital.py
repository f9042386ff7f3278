"""``medtwin hospital``: simulate a hospital, forecast its census, compare what-ifs, calibrate.

A hospital is a YAML/JSON spec (``medtwin.hospital.load_hospital``; ``example_hospital`` is
bundled).  A census comes from an HL7 v2 ADT file (``.hl7``, ``.txt``, MLLP-framed or not) or an
event-log CSV (``medtwin.hospital.eventlog``).  Every :class:`~medtwin.errors.MedtwinError`
ends as ``error: <message>`` with exit status 2 (:func:`medtwin.cli._errors_to_exit`).
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, cast

import numpy as np
import pandas as pd
import typer
import yaml

from medtwin.errors import ConfigurationError, DataFormatError

if TYPE_CHECKING:
    from medtwin.hospital import ADTEvent, CensusForecast, HospitalSpec
    from medtwin.hospital.census import Census

__all__ = ["hospital_app", "parse_scenario"]

hospital_app = typer.Typer(
    name="hospital",
    help="The hospital operations twin: simulate, forecast the census, compare what-ifs.",
    no_args_is_help=True,
)

CENSUS_FORMATS = ("auto", "hl7", "csv")

HospitalArg = Annotated[
    str,
    typer.Argument(help="Hospital spec: a YAML/JSON file or a bundled name (example_hospital)."),
]
HospitalOpt = Annotated[
    str, typer.Option("--hospital", help="Hospital spec: a YAML/JSON file or a bundled name.")
]
SeedOpt = Annotated[int, typer.Option(min=0, help="Seed of every random draw.")]
WorkersOpt = Annotated[
    int, typer.Option(min=-1, help="Worker processes for replications (-1: one per CPU).")
]
ReportOpt = Annotated[Path | None, typer.Option(help="Write a self-contained HTML report here.")]
JsonOpt = Annotated[bool, typer.Option("--json", help="Print the results as JSON.")]
ProgressOpt = Annotated[
    bool, typer.Option("--progress/--no-progress", help="Progress bar (on stderr).")
]


def _errors() -> Any:
    from medtwin.cli import _errors_to_exit

    return _errors_to_exit()


def _workers(n: int) -> int | None:
    if n == 0:
        raise ConfigurationError("--workers must be >= 1, or -1 for one per CPU")
    return n


def _num(v: Any, digits: int = 4) -> float | None:
    x = float(v)
    return round(x, digits) if math.isfinite(x) else None


def _fmt(v: Any) -> str:
    from medtwin.report import format_value

    return format_value(v)


def _echo_json(payload: Any) -> None:
    typer.echo(json.dumps(payload, indent=2, default=str, allow_nan=False))


def _write(path: Path, page: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(page, encoding="utf-8")
    typer.echo(f"wrote {path}", err=True)


# ---------------------------------------------------------------------------------------------
# simulate
# ---------------------------------------------------------------------------------------------


@hospital_app.command("simulate")
def simulate_command(
    hospital: HospitalArg,
    days: Annotated[
        float | None, typer.Option(help="Days to simulate (default: the spec's run.days).")
    ] = None,
    warmup_days: Annotated[
        float | None,
        typer.Option(help="Days deleted from the KPIs (default: the spec's run.warmup_days)."),
    ] = None,
    replications: Annotated[int, typer.Option(min=1, help="Independent replications.")] = 1,
    workers: WorkersOpt = 1,
    seed: SeedOpt = 0,
    scenario: Annotated[
        str | None,
        typer.Option(help="Simulate a what-if: NAME=KEY=VALUE[,KEY=VALUE...] (see compare)."),
    ] = None,
    report: ReportOpt = None,
    as_json: JsonOpt = False,
    progress: ProgressOpt = True,
) -> None:
    """Run the hospital's flow model; print its KPIs (with 95% CIs over replications)."""
    from medtwin.hospital import load_hospital, replicate, simulate
    from medtwin.hospital.report import HEADLINE_KPIS, simulation_report

    with _errors():
        spec = load_hospital(hospital)
        scn = None
        if scenario is not None:
            name, settings = parse_scenario(scenario)
            _check_scenarios(spec, {name: settings})
            scn = {"name": name, **settings}
        kw: dict[str, Any] = {"days": days, "warmup_days": warmup_days, "seed": seed,
                              "scenario": scn}  # fmt: skip
        reps = None
        run = None
        if replications > 1:
            reps = replicate(spec, replications=replications, workers=_workers(workers),
                             progress=progress, **kw)  # fmt: skip
            summary = reps.summary()
            d, w = reps.days, reps.warmup_days
        else:
            run = simulate(spec, **kw)
            summary = pd.DataFrame({"mean": pd.Series(run.kpis())})
            for c in ("ci_low", "ci_high", "sd"):
                summary[c] = np.nan
            summary["n"] = 1
            d, w = run.horizon_min / 1440, run.warmup_min / 1440
        if report is not None:
            if run is None:  # replication 0 again, for its time series (same seed: same run)
                run = simulate(spec, **kw)
            _write(report, simulation_report(run, reps))
        if as_json:
            _echo_json({
                "hospital": spec.name, "scenario": scn, "replications": replications,
                "days": d, "warmup_days": w, "seed": seed,
                "kpis": {str(k): {"mean": _num(r["mean"]), "ci_low": _num(r["ci_low"]),
                                  "ci_high": _num(r["ci_high"]), "sd": _num(r["sd"]),
                                  "n": int(r["n"])} for k, r in summary.iterrows()},
            })  # fmt: skip
            return
        typer.echo(f"{spec.name}: {replications} replication(s) of {d:g} days "
                   f"(warm-up {w:g} days deleted), seed {seed}")  # fmt: skip
        rows = []
        for k, label in HEADLINE_KPIS.items():
            if k not in summary.index:
                continue
            r = summary.loc[k]
            ci = (
                ""
                if not np.isfinite(r["ci_low"])
                else f"[{_fmt(r['ci_low'])}, {_fmt(r['ci_high'])}]"
            )
            rows.append((k, label, _fmt(r["mean"]), ci))
        for k in summary.index:
            if str(k).startswith("occupancy:"):
                r = summary.loc[k]
                ci = (
                    ""
                    if not np.isfinite(r["ci_low"])
                    else f"[{_fmt(r['ci_low'])}, {_fmt(r['ci_high'])}]"
                )
                rows.append((str(k), "", _fmt(r["mean"]), ci))
        _table(rows, ("KPI", "meaning", "mean", "95% CI"))


def _table(rows: Sequence[Sequence[str]], header: Sequence[str]) -> None:
    widths = [max(len(str(x)) for x in col) for col in zip(header, *rows, strict=False)]
    for row in (header, *rows):
        typer.echo("  ".join(str(x).ljust(w) for x, w in zip(row, widths, strict=True)).rstrip())


# ---------------------------------------------------------------------------------------------
# forecast
# ---------------------------------------------------------------------------------------------


def read_events(path: Path, fmt: str = "auto", tz: str | None = None) -> list[ADTEvent]:
    """ADT events of an HL7 v2 file or an event-log CSV (``fmt`` ``auto``: by content)."""
    from medtwin.hospital.eventlog import read_event_log
    from medtwin.interop.hl7v2 import read_adt_file

    if fmt not in CENSUS_FORMATS:
        raise ConfigurationError(
            f"--format must be one of {', '.join(CENSUS_FORMATS)}, got {fmt!r}"
        )
    if not path.is_file():
        raise ConfigurationError(f"no census file {str(path)!r}")
    if fmt == "auto":
        head = path.read_bytes()[:4096].lstrip(b"\xef\xbb\xbf\x0b \t\r\n")
        fmt = "hl7" if head.startswith((b"MSH", b"FHS", b"BHS")) else "csv"
    if fmt == "hl7":
        return read_adt_file(path, tz=tz or "UTC")
    return read_event_log(path, tz=tz)


def census_of(events: Sequence[ADTEvent]) -> Census:
    """The census of ``events`` (applied in file order; conflicting ones refused)."""
    from medtwin.hospital.census import Census

    return Census.from_events(events)


def _at(text: str | None) -> datetime | None:
    if text is None:
        return None
    try:
        when = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise ConfigurationError(
            f"--at {text!r} is not an ISO 8601 time; write e.g. 2026-01-08T06:00:00+00:00"
        ) from None
    if when.tzinfo is None:
        raise ConfigurationError(f"--at {text!r} needs a UTC offset (e.g. +00:00 or Z)")
    return when


@hospital_app.command("forecast")
def forecast_command(
    hospital: HospitalOpt,
    census: Annotated[
        Path, typer.Option(help="ADT events: an HL7 v2 file (.hl7) or an event-log CSV.")
    ],
    at: Annotated[
        str | None,
        typer.Option(help="Forecast from the census at this time (ISO 8601; default: its end)."),
    ] = None,
    horizon: Annotated[int, typer.Option(min=1, max=24 * 14, help="Hours ahead.")] = 72,
    replications: Annotated[int, typer.Option(min=2, help="Replications.")] = 100,
    fmt: Annotated[str, typer.Option("--format", help="auto | hl7 | csv")] = "auto",
    tz: Annotated[
        str | None,
        typer.Option(help="Zone of times without a UTC offset (default: the hospital's)."),
    ] = None,
    workers: WorkersOpt = 1,
    seed: SeedOpt = 0,
    report: ReportOpt = None,
    as_json: JsonOpt = False,
    progress: ProgressOpt = True,
) -> None:
    """Build the census from ADT events and forecast occupancy and the ED hour by hour."""
    from medtwin.hospital import forecast, load_hospital
    from medtwin.hospital.report import forecast_report

    with _errors():
        spec = load_hospital(hospital)
        events = read_events(census, fmt, tz or spec.timezone)
        if not events:
            raise DataFormatError(f"{census}: no ADT events")
        live = census_of(events)
        snapshot = live.snapshot(_at(at))
        names = spec.unit_names()
        now: dict[str, int] = {}
        for unit, n in snapshot.counts().items():
            key = names.get(unit, unit)
            now[key] = now.get(key, 0) + n
        fc = forecast(spec, snapshot, horizon, replications=replications, seed=seed,
                      workers=_workers(workers), progress=progress)  # fmt: skip
        if report is not None:
            _write(
                report, forecast_report(fc, census=now, source=f"{census} ({len(events)} events)")
            )
        if as_json:
            _echo_json(_forecast_json(fc, now, live))
            return
        typer.echo(f"{spec.name}: census of {len(snapshot.occupants)} patients at "
                   f"{snapshot.at.isoformat()} from {len(events)} events "
                   f"({len(live.issues)} data issues); {replications} replications")  # fmt: skip
        hours = [h for h in (24, 48, 72) if h <= horizon] or [horizon]
        full = fc.probability_full()
        rows = []
        for unit, beds in fc.beds.items():
            x = fc.samples[f"occupied:{unit}"]
            row = [unit, str(beds), str(now.get(unit, 0))]
            for h in hours:
                q05, q50, q95 = np.quantile(x[:, h], [0.05, 0.5, 0.95])
                row.append(f"{q50:.0f} [{q05:.0f}-{q95:.0f}] P(full) {full[unit].iloc[h]:.0%}")
            rows.append(row)
        _table(rows, ("unit", "beds", "now", *(f"{h} h: median [90%]" for h in hours)))


def _forecast_json(fc: CensusForecast, now: Mapping[str, int], census: Census) -> dict[str, Any]:
    def bands(x: np.ndarray) -> dict[str, list[float | None]]:
        qs = np.quantile(x, [0.05, 0.25, 0.5, 0.75, 0.95], axis=0)
        return {name: [_num(v, 3) for v in q]
                for name, q in zip(("q05", "q25", "median", "q75", "q95"), qs, strict=True)}  # fmt: skip

    full = fc.probability_full()
    return {
        "hospital": fc.spec_name,
        "census_at": pd.Timestamp(fc.start).isoformat(),
        "census": dict(now),
        "issues": [{"kind": i.kind, "detail": i.detail} for i in census.issues],
        "horizon_hours": fc.horizon_hours,
        "replications": fc.replications,
        "times": [t.isoformat() for t in fc.times],
        "units": {
            u: {
                "beds": b,
                **bands(fc.samples[f"occupied:{u}"]),
                "p_full": [round(float(p), 3) for p in full[u]],
            }
            for u, b in fc.beds.items()
        },
        "ed": {n: bands(fc.samples[n]) for n in ("ed", "waiting", "boarding") if n in fc.samples},
    }


# ---------------------------------------------------------------------------------------------
# compare
# ---------------------------------------------------------------------------------------------


def parse_scenario(text: str) -> tuple[str, dict[str, Any]]:
    """``NAME=KEY=VALUE[,KEY=VALUE...]`` as a name and a scenario dict; dots nest keys.

    Values are read as YAML scalars (``20``, ``1.2``, ``true``).

    >>> parse_scenario("more beds=extra_beds.medicine=20,surge.multiplier=1.2")
    ('more beds', {'extra_beds': {'medicine': 20}, 'surge': {'multiplier': 1.2}})
    >>> parse_scenario("shorter stays=los_multiplier=0.9")
    ('shorter stays', {'los_multiplier': 0.9})
    """
    name, sep, rest = text.partition("=")
    example = "--scenario 'more beds=extra_beds.medicine=20,surge.multiplier=1.2'"
    if not sep or not name.strip() or not rest.strip():
        raise ConfigurationError(
            f"--scenario {text!r}: expected NAME=KEY=VALUE[,KEY=VALUE...], e.g. {example}"
        )
    out: dict[str, Any] = {}
    for item in rest.split(","):
        key, sep, raw = item.partition("=")
        if not sep or not key.strip() or not raw.strip():
            raise ConfigurationError(
                f"--scenario {text!r}: {item.strip()!r} is not KEY=VALUE (e.g. {example})"
            )
        try:
            value = yaml.safe_load(raw.strip())
        except yaml.YAMLError:
            value = raw.strip()
        node = out
        parts = [p.strip() for p in key.split(".")]
        for part in parts[:-1]:
            child = node.setdefault(part, {})
            if not isinstance(child, dict):
                raise ConfigurationError(
                    f"--scenario {text!r}: {key.strip()!r} sets {part!r} twice"
                )
            node = child
        node[parts[-1]] = value
    return name.strip(), out


def read_scenarios(path: Path) -> dict[str, dict[str, Any]]:
    """Scenarios of a YAML/JSON file: a mapping name -> scenario, or a list with ``name`` s."""
    if not path.is_file():
        raise ConfigurationError(f"no scenarios file {str(path)!r}")
    try:
        data = yaml.safe_load(path.read_text())
    except yaml.YAMLError as exc:
        raise ConfigurationError(f"cannot read scenarios file {path}: {exc}") from None
    if isinstance(data, Mapping) and "scenarios" in data and len(data) == 1:
        data = data["scenarios"]
    if isinstance(data, list):
        out: dict[str, dict[str, Any]] = {}
        for i, item in enumerate(data):
            if not isinstance(item, Mapping) or not item.get("name"):
                raise ConfigurationError(f"{path}: scenarios[{i}] needs a name")
            out[str(item["name"])] = {k: v for k, v in item.items() if k != "name"}
        return out
    if isinstance(data, Mapping) and all(isinstance(v, Mapping) for v in data.values()):
        return {str(k): dict(v) for k, v in data.items()}
    raise ConfigurationError(
        f"{path}: expected a mapping of scenario name -> settings (or a list of scenarios "
        "with a name each)"
    )


def _check_scenarios(spec: HospitalSpec, named: Mapping[str, Mapping[str, Any]]) -> None:
    """Refuse a bad scenario before anything runs (the error names it and the field)."""
    from medtwin.hospital import Scenario
    from medtwin.hospital.scenario import as_scenario

    for name, settings in named.items():
        scn = as_scenario({"name": name, **settings})
        assert isinstance(scn, Scenario)
        scn.apply(spec)


@hospital_app.command("compare")
def compare_command(
    hospital: HospitalOpt,
    scenario: Annotated[
        list[str] | None,
        typer.Option(
            "--scenario",
            help="NAME=KEY=VALUE[,KEY=VALUE...], e.g. 'more beds=extra_beds.medicine=20'; "
            "repeatable.",
        ),
    ] = None,
    scenarios: Annotated[
        Path | None, typer.Option(help="YAML/JSON file of scenarios (name -> settings).")
    ] = None,
    days: Annotated[
        float | None, typer.Option(help="Days to simulate (default: the spec's run.days).")
    ] = None,
    warmup_days: Annotated[
        float | None, typer.Option(help="Warm-up days (default: the spec's; 0 from a census).")
    ] = None,
    replications: Annotated[int, typer.Option(min=2, help="Replications per scenario.")] = 10,
    census: Annotated[
        Path | None, typer.Option(help="Start from this census (ADT events) instead of empty.")
    ] = None,
    at: Annotated[str | None, typer.Option(help="Census time (ISO 8601; default its end).")] = None,
    workers: WorkersOpt = 1,
    seed: SeedOpt = 0,
    report: ReportOpt = None,
    as_json: JsonOpt = False,
    progress: ProgressOpt = True,
) -> None:
    """Compare what-if scenarios with the hospital as it is, on common random numbers."""
    from medtwin.hospital import compare, load_hospital
    from medtwin.hospital.report import comparison_report

    with _errors():
        spec = load_hospital(hospital)
        named: dict[str, dict[str, Any]] = {}
        if scenarios is not None:
            named.update(read_scenarios(scenarios))
        for text in scenario or []:
            name, settings = parse_scenario(text)
            if name in named:
                raise ConfigurationError(f"scenario {name!r} is given twice")
            named[name] = settings
        if not named:
            raise ConfigurationError(
                "no scenario: give --scenario NAME=KEY=VALUE[,...] or --scenarios FILE"
            )
        _check_scenarios(spec, named)
        snapshot = None
        if census is not None:
            snapshot = census_of(read_events(census, "auto", spec.timezone)).snapshot(_at(at))
        result = compare(spec, named, replications=replications, days=days,
                         warmup_days=warmup_days, seed=seed, snapshot=snapshot,
                         workers=_workers(workers), progress=progress)  # fmt: skip
        if report is not None:
            _write(report, comparison_report(result, scenarios=named))
        table = cast("dict[tuple[str, str], dict[str, Any]]", result.table().to_dict("index"))
        if as_json:
            rows = [{"kpi": k, "scenario": s, **{c: (_num(v) if c != "significant" else
                     (None if s == "baseline" else bool(v))) for c, v in r.items()}}
                    for (k, s), r in table.items()]  # fmt: skip
            _echo_json({"hospital": spec.name, "scenarios": named, "replications": replications,
                        "days": result.days, "warmup_days": result.warmup_days, "seed": seed,
                        "rows": rows})  # fmt: skip
            return
        typer.echo(f"{spec.name}: {replications} paired replications of {result.days:g} days "
                   f"(warm-up {result.warmup_days:g}), seed {seed}")  # fmt: skip
        from medtwin.hospital.report import HEADLINE_KPIS

        kpis = [k for k in HEADLINE_KPIS if k in result.kpis.columns]
        kpis += [k for k in result.kpis.columns if k.startswith("within_") and k not in kpis]
        kpis += [k for k in result.kpis.columns if k.startswith("occupancy:")]
        lines = []
        for k in kpis:
            row = [k, _fmt(table[(k, "baseline")]["mean"])]
            for name in result.scenarios:
                r = table[(k, name)]
                mark = "*" if r["significant"] else ""
                row.append(f"{_fmt(r['difference'])} [{_fmt(r['diff_low'])}, "
                           f"{_fmt(r['diff_high'])}]{mark}")  # fmt: skip
            lines.append(row)
        _table(lines, ("KPI", "baseline", *(f"{n}: difference [95% CI]" for n in result.scenarios)))
        typer.echo("* the interval excludes 0")


# ---------------------------------------------------------------------------------------------
# calibrate
# ---------------------------------------------------------------------------------------------


@hospital_app.command("calibrate")
def calibrate_command(
    hospital: HospitalOpt,
    events: Annotated[
        Path, typer.Option(help="ADT history: an HL7 v2 file (.hl7) or an event-log CSV.")
    ],
    out: Annotated[Path, typer.Option(help="Write the calibrated hospital (YAML) here.")] = Path(
        "calibrated_hospital.yaml"
    ),
    unit_map: Annotated[
        str | None,
        typer.Option(help="Data unit -> hospital unit: CARD=medicine,DAY=- ('-' skips a unit)."),
    ] = None,
    skip_unknown: Annotated[
        bool,
        typer.Option("--skip-unknown-units", help="Leave out stays in units the hospital lacks."),
    ] = False,
    los_by_class: Annotated[
        bool, typer.Option("--los-by-class", help="Fit lengths of stay per class too.")
    ] = False,
    transfer_wait: Annotated[
        str, typer.Option(help="simulate | ignore: the wait for a bed before a transfer.")
    ] = "simulate",
    fmt: Annotated[str, typer.Option("--format", help="auto | hl7 | csv")] = "auto",
    seed: SeedOpt = 0,
    report: ReportOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Fit arrivals, triage mix, routing and lengths of stay of a hospital to its ADT history."""
    from medtwin.hospital import load_hospital

    with _errors():
        try:
            from medtwin.hospital.calibrate import calibrate_hospital
        except ImportError:  # pragma: no cover - an install without the calibration module
            raise ConfigurationError(
                "hospital calibration is not available in this version of medtwin "
                "(medtwin.hospital.calibrate is missing); `medtwin hospital simulate`, `forecast` "
                "and `compare` work without it"
            ) from None
        from medtwin.hospital.report import calibration_report

        if transfer_wait not in ("simulate", "ignore"):
            raise ConfigurationError(
                f"--transfer-wait must be simulate or ignore, got {transfer_wait!r}"
            )
        base = load_hospital(hospital)
        history = read_events(events, fmt, base.timezone)
        mapping = _unit_map(unit_map) if unit_map else None
        result = calibrate_hospital(
            history, base, unit_map=mapping, unknown_units="skip" if skip_unknown else "error",
            los_by_class=los_by_class, transfer_wait=transfer_wait,  # type: ignore[arg-type]
            seed=seed,
        )  # fmt: skip
        out.parent.mkdir(parents=True, exist_ok=True)
        result.to_yaml(out)
        typer.echo(f"wrote {out}", err=True)
        if report is not None:
            _write(report, calibration_report(result, source=f"{events} ({len(history)} events)"))
        summary = result.summary()
        if as_json:
            _echo_json({
                "spec": str(out), "hospital": result.spec.name, "notes": list(result.notes),
                "start": result.start.isoformat(), "end": result.end.isoformat(),
                "los": json.loads(summary.to_json(orient="records")),
            })  # fmt: skip
            return
        typer.echo(f"{base.name} calibrated on {len(history)} events from "
                   f"{result.start.isoformat()} to {result.end.isoformat()}")  # fmt: skip
        typer.echo(summary.to_string(index=False))
        for note in result.notes:
            typer.echo(f"note: {note}")


def _unit_map(text: str) -> dict[str, str | None]:
    """``CARD=medicine,DAY=-`` as a unit map (``-`` leaves a unit out)."""
    out: dict[str, str | None] = {}
    for item in text.split(","):
        key, sep, value = item.partition("=")
        if not sep or not key.strip() or not value.strip():
            raise ConfigurationError(
                f"--unit-map {text!r}: {item.strip()!r} is not DATA_UNIT=HOSPITAL_UNIT "
                "(e.g. CARD=medicine, or DAY=- to leave DAY out)"
            )
        out[key.strip()] = None if value.strip() == "-" else value.strip()
    return out
