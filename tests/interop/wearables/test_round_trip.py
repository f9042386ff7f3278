"""The same synthetic day in the four formats reads into the same history."""

from __future__ import annotations

import pandas as pd

from medtwin.interop import read_clarity, read_csv, read_fhir_observations, read_nightscout
from tests.interop.wearables.formats import (
    BERLIN,
    synthetic_day,
    write_clarity,
    write_csv,
    write_fhir,
    write_nightscout,
)


def test_four_formats_give_the_same_readings(tmp_path):
    times, glucose, events = synthetic_day()
    entries, treatments = write_nightscout(tmp_path)
    histories = {
        "nightscout": read_nightscout(entries, treatments),
        "clarity": read_clarity(write_clarity(tmp_path), tz=BERLIN),
        "fhir": read_fhir_observations(write_fhir(tmp_path)),
        "csv": read_csv(write_csv(tmp_path)),
    }
    expected = pd.DataFrame(
        {
            "time": pd.DatetimeIndex(times).as_unit("ns"),
            "glucose_mg_dl": [float(g) for g in glucose],
        }
    )
    for name, h in histories.items():
        assert h.issues == (), (name, h.issues)
        pd.testing.assert_frame_equal(h.cgm, expected, obj=name)
        assert h.source.startswith(name)

    expected_events = pd.DataFrame(
        {
            "time": pd.DatetimeIndex([t for t, _, _ in events]).as_unit("ns"),
            "kind": [k for _, k, _ in events],
            "value": [v for _, _, v in events],
        }
    )
    for name in ("nightscout", "clarity", "csv"):
        pd.testing.assert_frame_equal(histories[name].events, expected_events, obj=name)
    assert histories["fhir"].events.empty
    assert histories["fhir"].patient_id == "Patient/p1"


def test_history_feeds_a_schedule(tmp_path):
    h = read_csv(write_csv(tmp_path))
    schedule = h.schedule(h.start)
    assert [(e.time, e.input, e.value) for e in schedule.events] == [
        (420.0, "insulin", 4.0), (420.0, "meal", 45.0), (750.0, "insulin", 2.5),
        (750.0, "meal", 60.0),
    ]  # fmt: skip
