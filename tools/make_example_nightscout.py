"""Write examples/data/nightscout_{entries,treatments}.json: three days of a bench patient.

The files are a Nightscout export as its API returns them (newest first; sgv in mg/dL, date in
epoch ms; treatments with created_at, insulin, carbs, eventType) of a virtual patient from
medtwin's bench, so the README and examples run offline on realistic data.

    .venv/bin/python tools/make_example_nightscout.py
"""

from __future__ import annotations

import json
from pathlib import Path

import medtwin  # noqa: F401
from medtwin.twin import make_bench

OUT = Path(__file__).resolve().parents[1] / "examples" / "data"


def main() -> None:
    patient = make_bench(n_patients=1, days=3, seed=2029)[0]
    h = patient.history
    entries = [
        {
            "type": "sgv",
            "sgv": round(float(g)),
            "date": int(t.value // 1_000_000),
            "dateString": t.strftime("%Y-%m-%dT%H:%M:%S.000Z"),
            "device": "medtwin-bench",
        }
        for t, g in zip(h.cgm["time"], h.cgm["glucose_mg_dl"], strict=True)
    ]
    treatments: list[dict[str, object]] = []
    by_time: dict[str, dict[str, object]] = {}
    for t, kind, value in zip(h.events["time"], h.events["kind"], h.events["value"], strict=True):
        stamp = t.strftime("%Y-%m-%dT%H:%M:%S.000Z")
        if kind == "basal":
            treatments.append({"eventType": "Temp Basal", "created_at": stamp, "absolute": value,
                               "duration": 3 * 24 * 60})  # fmt: skip
            continue
        record = by_time.setdefault(stamp, {"eventType": "Meal Bolus", "created_at": stamp})
        record["carbs" if kind == "carbs" else "insulin"] = value
        if record not in treatments:
            treatments.append(record)
    OUT.mkdir(parents=True, exist_ok=True)
    (OUT / "nightscout_entries.json").write_text(json.dumps(entries[::-1]))
    (OUT / "nightscout_treatments.json").write_text(json.dumps(treatments[::-1], indent=0))
    print(f"wrote {len(entries)} entries and {len(treatments)} treatments to {OUT}")


if __name__ == "__main__":
    main()
