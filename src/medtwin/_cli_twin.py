"""``medtwin twin``: fit a patient twin from data, forecast from it, replay a history through it."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any

import numpy as np
import pandas as pd
import typer

from medtwin.errors import ConfigurationError, DataFormatError

__all__ = ["read_history", "twin_app"]

twin_app = typer.Typer(
    name="twin",
    help="Patient twins: personalise from data, forecast with uncertainty, replay a history.",
    no_args_is_help=True,
)

FORMATS = ("auto", "nightscout", "clarity", "fhir", "csv")


def read_history(
    path: Path, *, treatments: Path | None = None, fmt: str = "auto", tz: str = "UTC"
) -> Any:
    """Read a patient history in any supported format (detected from the content for ``auto``)."""
    from medtwin.interop import read_clarity, read_csv, read_fhir_observations, read_nightscout

    if fmt not in FORMATS:
        raise ConfigurationError(f"unknown format {fmt!r}; choose one of {', '.join(FORMATS)}")
    if fmt == "auto":
        fmt = _detect(path)
    if fmt == "nightscout":
        return read_nightscout(path, treatments)
    if treatments is not None:
        raise ConfigurationError("--treatments is for Nightscout exports only")
    if fmt == "clarity":
        return read_clarity(path, tz=tz)
    if fmt == "fhir":
        return read_fhir_observations(path)
    return read_csv(path, tz=tz)


def _detect(path: Path) -> str:
    head = path.read_text(encoding="utf-8", errors="replace")[:4096]
    stripped = head.lstrip()
    if stripped.startswith(("[", "{")):
        if '"resourceType"' in head:
            return "fhir"
        if '"sgv"' in head or '"dateString"' in head:
            return "nightscout"
        raise DataFormatError(f"{path}: JSON that is neither a Nightscout export nor FHIR")
    if "Glucose Value (mg/dL)" in head or "Glucose Value (mmol/L)" in head:
        return "clarity"
    return "csv"


def _make_twin(members: int, seed: int) -> Any:
    from medtwin.assimilate import ParticleFilter
    from medtwin.models import UvaPadova2008
    from medtwin.twin import Twin

    return Twin(
        UvaPadova2008, filter=ParticleFilter(UvaPadova2008, n_members=members, seed=seed), seed=seed
    )


@twin_app.command("fit")
def fit_command(
    data: Annotated[
        Path,
        typer.Argument(help="CGM history: Nightscout entries JSON, Clarity CSV, FHIR JSON or CSV."),
    ],
    out: Annotated[Path, typer.Option(help="Where to save the fitted twin (.npz).")] = Path(
        "twin.npz"
    ),
    treatments: Annotated[Path | None, typer.Option(help="Nightscout treatments JSON.")] = None,
    fmt: Annotated[
        str, typer.Option("--format", help="auto | nightscout | clarity | fhir | csv")
    ] = "auto",
    tz: Annotated[str, typer.Option(help="Time zone of Clarity/CSV timestamps.")] = "UTC",
    members: Annotated[int, typer.Option(help="Ensemble size of the filter.")] = 500,
    seed: Annotated[int, typer.Option(help="Seed of every random draw.")] = 0,
) -> None:
    """Personalise a twin on a patient's history, sync it to the end, and save it."""
    from medtwin.cli import _errors_to_exit

    with _errors_to_exit():
        history = read_history(data, treatments=treatments, fmt=fmt, tz=tz)
        typer.echo(history.summary())
        twin = _make_twin(members, seed).fit(history)
        ident = getattr(twin.calibrator_, "identifiability_", None)
        if ident is not None:
            typer.echo("\npersonalisation (posterior vs population prior):")
            typer.echo(ident.to_string())
        twin.save(out)
        typer.echo(f"\ntwin synced to {twin.now}; saved to {out}")


@twin_app.command("forecast")
def forecast_command(
    twin_path: Annotated[Path, typer.Argument(help="A twin saved by `medtwin twin fit`.")],
    data: Annotated[Path | None, typer.Option(help="New readings to assimilate first.")] = None,
    treatments: Annotated[Path | None, typer.Option(help="Nightscout treatments JSON.")] = None,
    fmt: Annotated[
        str, typer.Option("--format", help="auto | nightscout | clarity | fhir | csv")
    ] = "auto",
    horizon: Annotated[float, typer.Option(help="Forecast horizon in minutes.")] = 240.0,
    bolus: Annotated[
        float | None, typer.Option(help="What if: a bolus of this many U now.")
    ] = None,
    carbs: Annotated[float | None, typer.Option(help="What if: a meal of this many g now.")] = None,
    plot: Annotated[Path | None, typer.Option(help="Draw the forecast (.png).")] = None,
    csv: Annotated[Path | None, typer.Option(help="Write the forecast table (.csv).")] = None,
    save: Annotated[
        bool, typer.Option(help="Save the twin back after assimilating --data.")
    ] = False,
) -> None:
    """Forecast glucose with 50/80/95% bands and the risk of hypo- and hyperglycaemia."""
    from medtwin.cli import _errors_to_exit
    from medtwin.simulate import Schedule
    from medtwin.twin import Twin

    with _errors_to_exit():
        twin = Twin.load(twin_path)
        if data is not None:
            twin.observe(read_history(data, treatments=treatments, fmt=fmt))
            if save:
                twin.save(twin_path)
        scenario = Schedule()
        if bolus:
            scenario = scenario.bolus(0.0, bolus)
        if carbs:
            scenario = scenario.meal(0.0, carbs)
        fc = twin.forecast(horizon, scenario if scenario.events else None)
        table = fc.to_pandas()
        shown = table[np.isin(fc.t_min, [0, 30, 60, 120, 180, 240])]
        typer.echo(f"forecast from {twin.now} (mg/dL):")
        typer.echo(shown.set_index("time").round(1).to_string())
        for name in ("hypoglycaemia", "hyperglycaemia"):
            p30 = twin.risk(name, within_min=30.0, scenario=scenario if scenario.events else None)
            p120 = twin.risk(name, within_min=120.0, scenario=scenario if scenario.events else None)
            typer.echo(f"P({name}) within 30 min: {p30:.2f}; within 2 h: {p120:.2f}")
        if csv is not None:
            table.to_csv(csv, index=False)
            typer.echo(f"wrote {csv}")
        if plot is not None:
            from medtwin.plot import forecast_figure

            recent = twin.history_.cgm.tail(48)
            fig = forecast_figure(recent["time"], recent["glucose_mg_dl"].to_numpy(), fc,
                                  title="twin forecast")  # fmt: skip
            fig.savefig(plot, dpi=120)
            typer.echo(f"wrote {plot}")


@twin_app.command("replay")
def replay_command(
    data: Annotated[Path, typer.Argument(help="CGM history to replay.")],
    report: Annotated[Path, typer.Option(help="HTML report to write.")] = Path("replay.html"),
    treatments: Annotated[Path | None, typer.Option(help="Nightscout treatments JSON.")] = None,
    fmt: Annotated[
        str, typer.Option("--format", help="auto | nightscout | clarity | fhir | csv")
    ] = "auto",
    fit_days: Annotated[
        float, typer.Option(help="Days used to personalise before replaying.")
    ] = 3.0,
    members: Annotated[int, typer.Option(help="Ensemble size of the filter.")] = 200,
    seed: Annotated[int, typer.Option(help="Seed of every random draw.")] = 0,
) -> None:
    """Fit on the first days, replay the rest reading by reading; report errors and alerts."""
    from medtwin.cli import _errors_to_exit
    from medtwin.report import write_report
    from medtwin.twin.evaluate import replay

    with _errors_to_exit():
        history = read_history(data, treatments=treatments, fmt=fmt)
        result = replay(history, lambda: _make_twin(members, seed), fit_days=fit_days)
        rows = []
        for h, sc in sorted(result.scores.items()):

            def rmse(x: np.ndarray) -> float:
                return float(np.sqrt(np.mean(x**2))) if x.size else float("nan")

            rows.append({
                "horizon_min": h, "n": int(sc["err"].size), "twin_rmse_mg_dl": rmse(sc["err"]),
                "persistence_rmse_mg_dl": rmse(sc["persist"]),
                "linear_rmse_mg_dl": rmse(sc["linear"]),
                "coverage_95": float(sc["covered"].mean()) if sc["covered"].size else float("nan"),
            })  # fmt: skip
        errors = pd.DataFrame(rows)
        alerts = pd.DataFrame(
            {"alert_time": result.origin + pd.to_timedelta(result.alerts_min, unit="min")}
        )
        typer.echo(errors.round(2).to_string(index=False))
        typer.echo(
            f"hypoglycaemia events {result.events}, predicted {result.predicted}, "
            f"false alerts {result.false_alerts}"
        )
        png = _replay_png(result)
        write_report(
            report,
            title="Twin replay",
            scenario=[
                ("data", str(data)), ("personalised on", f"{fit_days:g} days"),
                ("ensemble", f"{members} members"), ("readings replayed", str(len(result.issued_min))),
            ],
            figure_png=png,
            tables=[("Forecast errors against the readings that followed", errors),
                    ("Hypoglycaemia alerts", alerts)],
            notes=json.dumps({"events": result.events, "predicted": result.predicted,
                              "false_alerts": result.false_alerts}),
        )  # fmt: skip
        typer.echo(f"wrote {report}")


def _replay_png(result: Any) -> bytes:
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    from medtwin.plot import TARGET_BAND_MG_DL, png_bytes

    fig = Figure(figsize=(11, 4.5), layout="constrained")
    FigureCanvasAgg(fig)
    ax = fig.add_subplot()
    hours = result.readings_min / 60.0
    ax.axhspan(*TARGET_BAND_MG_DL, color="tab:green", alpha=0.1, label="target 70-180")
    h = 30 if 30 in result.forecasts else min(result.forecasts)
    at = (result.issued_min + h) / 60.0
    ax.fill_between(at, result.lower95[h], result.upper95[h], color="tab:blue", alpha=0.2, lw=0,
                    label=f"{h}-min forecast, 95% band")  # fmt: skip
    ax.plot(at, result.forecasts[h], color="tab:blue", lw=1, label=f"{h}-min forecast")
    ax.plot(hours, result.readings_mg_dl, ".", ms=2, color="black", label="CGM")
    for a in result.alerts_min:
        ax.axvline(a / 60.0, color="tab:red", alpha=0.3, lw=0.8)
    ax.set_xlabel("hours since the start of the data")
    ax.set_ylabel("glucose [mg/dL]")
    ax.legend(loc="upper right", fontsize=8)
    ax.grid(alpha=0.3)
    return png_bytes(fig)
