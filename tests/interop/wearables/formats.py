"""A synthetic day of CGM readings and treatments, written in each format the readers take."""

from __future__ import annotations

import csv
import io
import json
import math
from pathlib import Path

import pandas as pd

START = pd.Timestamp("2026-01-01T00:00:00Z")
BERLIN = "Europe/Berlin"  # UTC+1 in January


def synthetic_day() -> tuple[list[pd.Timestamp], list[int], list[tuple[pd.Timestamp, str, float]]]:
    times = [START + pd.Timedelta(minutes=5 * k) for k in range(288)]
    glucose = [round(120 + 50 * math.sin(2 * math.pi * k / 288)) for k in range(288)]
    events = [
        (START + pd.Timedelta(hours=7), "bolus", 4.0),
        (START + pd.Timedelta(hours=7), "carbs", 45.0),
        (START + pd.Timedelta(hours=12, minutes=30), "bolus", 2.5),
        (START + pd.Timedelta(hours=12, minutes=30), "carbs", 60.0),
    ]
    return times, glucose, events


def ms(t: pd.Timestamp) -> int:
    return int(t.value // 1_000_000)


def iso(t: pd.Timestamp) -> str:
    return t.strftime("%Y-%m-%dT%H:%M:%S.000Z")


def write_nightscout(folder: Path) -> tuple[Path, Path]:
    times, glucose, events = synthetic_day()
    entries = [
        {
            "_id": f"e{k}",
            "type": "sgv",
            "sgv": g,
            "date": ms(t),
            "dateString": iso(t),
            "direction": "Flat",
            "device": "xDrip-DexcomG6",
        }
        for k, (t, g) in enumerate(zip(times, glucose, strict=True))
    ][::-1]  # the API answers newest first
    treatments = []
    for t, kind, value in events:
        if kind == "bolus":
            treatments.append({"eventType": "Meal Bolus", "created_at": iso(t), "insulin": value})
        else:
            treatments.append(
                {"eventType": "Carb Correction", "created_at": iso(t), "carbs": value}
            )
    e, tr = folder / "entries.json", folder / "treatments.json"
    e.write_text(json.dumps(entries))
    tr.write_text(json.dumps(treatments[::-1]))
    return e, tr


CLARITY_HEADER = [
    "Index",
    "Timestamp (YYYY-MM-DDThh:mm:ss)",
    "Event Type",
    "Event Subtype",
    "Patient Info",
    "Device Info",
    "Source Device ID",
    "Glucose Value (mg/dL)",
    "Insulin Value (u)",
    "Carb Value (grams)",
    "Duration (hh:mm:ss)",
    "Glucose Rate of Change (mg/dL/min)",
    "Transmitter Time (Long Integer)",
    "Transmitter ID",
]


def clarity_rows(header: list[str], rows: list[dict[str, str]]) -> str:
    """CSV text: the header, the patient/device rows Clarity puts first, then ``rows``."""
    lead = [
        {"Event Type": "FirstName", "Patient Info": "Test"},
        {"Event Type": "LastName", "Patient Info": "Patient"},
        {"Event Type": "Device", "Device Info": "Android G6", "Source Device ID": "Android G6"},
        {"Event Type": "Alert", "Event Subtype": "High", "Glucose Value (mg/dL)": "250"},
    ]
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(header)
    for k, row in enumerate(lead + rows, start=1):
        full = {"Index": str(k), **row}
        writer.writerow([full.get(h, "") for h in header])
    return buf.getvalue()


def write_clarity(folder: Path) -> Path:
    """The synthetic day as local Berlin wall-clock times, as Clarity exports it."""
    times, glucose, events = synthetic_day()
    rows: list[dict[str, str]] = []
    local = lambda t: t.tz_convert(BERLIN).strftime("%Y-%m-%dT%H:%M:%S")  # noqa: E731
    for t, g in zip(times, glucose, strict=True):
        rows.append(
            {
                "Timestamp (YYYY-MM-DDThh:mm:ss)": local(t),
                "Event Type": "EGV",
                "Source Device ID": "Android G6",
                "Glucose Value (mg/dL)": str(g),
                "Transmitter ID": "8AM1EY",
            }
        )
    for t, kind, value in events:
        if kind == "bolus":
            rows.append(
                {
                    "Timestamp (YYYY-MM-DDThh:mm:ss)": local(t),
                    "Event Type": "Insulin",
                    "Event Subtype": "Fast-Acting",
                    "Insulin Value (u)": f"{value:g}",
                }
            )
        else:
            rows.append(
                {
                    "Timestamp (YYYY-MM-DDThh:mm:ss)": local(t),
                    "Event Type": "Carbs",
                    "Carb Value (grams)": f"{value:g}",
                }
            )
    path = folder / "clarity.csv"
    path.write_text(clarity_rows(CLARITY_HEADER, rows))
    return path


def observation(
    oid: str, t: str, value: float, *, loinc: str = "99504-3", code: str = "mg/dL", **extra: object
) -> dict[str, object]:
    res: dict[str, object] = {
        "resourceType": "Observation",
        "id": oid,
        "status": "final",
        "code": {"coding": [{"system": "http://loinc.org", "code": loinc}]},
        "subject": {"reference": "Patient/p1"},
        "effectiveDateTime": t,
        "valueQuantity": {
            "value": value,
            "unit": code.lower(),
            "system": "http://unitsofmeasure.org",
            "code": code,
        },
    }
    res.update(extra)
    return res


def write_fhir(folder: Path) -> Path:
    times, glucose, _ = synthetic_day()
    bundle = {
        "resourceType": "Bundle",
        "type": "collection",
        "entry": [
            {"resource": observation(f"cgm{k}", iso(t), g)}
            for k, (t, g) in enumerate(zip(times, glucose, strict=True))
        ],
    }
    path = folder / "bundle.json"
    path.write_text(json.dumps(bundle))
    return path


def write_csv(folder: Path) -> Path:
    times, glucose, events = synthetic_day()
    by_time: dict[pd.Timestamp, dict[str, str]] = {}
    for t, g in zip(times, glucose, strict=True):
        by_time.setdefault(t, {})["glucose"] = str(g)
    for t, kind, value in events:
        by_time.setdefault(t, {})[kind] = f"{value:g}"
    lines = ["time,glucose,bolus,carbs"]
    for t, row in sorted(by_time.items()):
        lines.append(
            f"{t.isoformat()},{row.get('glucose', '')},{row.get('bolus', '')},"
            f"{row.get('carbs', '')}"
        )
    path = folder / "day.csv"
    path.write_text("\n".join(lines) + "\n")
    return path
