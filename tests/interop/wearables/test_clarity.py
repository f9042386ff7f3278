from __future__ import annotations

import re

import pandas as pd
import pytest

from medtwin.errors import DataFormatError, UnitError
from medtwin.interop.wearables import read_clarity
from tests.interop.wearables.formats import CLARITY_HEADER, clarity_rows

TS = "Timestamp (YYYY-MM-DDThh:mm:ss)"
MG = "Glucose Value (mg/dL)"
MMOL = "Glucose Value (mmol/L)"


def _egv(time, value, column=MG):
    return {TS: time, "Event Type": "EGV", column: value}


def _write(tmp_path, rows, header=CLARITY_HEADER):
    path = tmp_path / "clarity.csv"
    path.write_text(clarity_rows(header, rows))
    return path


def _kinds(h):
    return [i.kind for i in h.issues]


def test_header_rows_skipped_and_egv_read(tmp_path):
    h = read_clarity(_write(tmp_path, [_egv("2026-01-01T08:00:00", "120"),
                                       _egv("2026-01-01T08:05:00", "125")]))  # fmt: skip
    assert h.glucose().tolist() == [120.0, 125.0]
    assert h.cgm["time"][0] == pd.Timestamp("2026-01-01T08:00Z")  # default tz is UTC
    assert h.issues == ()


def test_local_times_read_in_the_given_zone(tmp_path):
    path = _write(tmp_path, [_egv("2026-07-01T08:00:00", "120")])
    h = read_clarity(path, tz="Europe/Berlin")
    assert h.cgm["time"][0] == pd.Timestamp("2026-07-01T06:00Z")  # CEST, UTC+2


def test_low_and_high_kept_as_censored(tmp_path):
    rows = [_egv("2026-01-01T08:00:00", "Low"), _egv("2026-01-01T08:05:00", "45"),
            _egv("2026-01-01T08:10:00", "High")]  # fmt: skip
    h = read_clarity(_write(tmp_path, rows))
    assert h.glucose().tolist() == [40.0, 45.0, 400.0]
    censored = [i for i in h.issues if i.kind == "censored"]
    assert [i.where for i in censored] == ["line 6", "line 8"]
    assert "'Low'" in censored[0].message and "40 mg/dL" in censored[0].message


def test_mmol_export_converted(tmp_path):
    header = [MMOL if h == MG else h for h in CLARITY_HEADER]
    rows = [_egv("2026-01-01T08:00:00", "5.5", MMOL), _egv("2026-01-01T08:05:00", "Low", MMOL)]
    h = read_clarity(_write(tmp_path, rows, header))
    assert h.glucose().round(2).tolist() == [99.09, 40.0]


def test_unit_confusion_detected(tmp_path):
    rows = [_egv(f"2026-01-01T08:{m:02d}:00", v) for m, v in [(0, "5.5"), (5, "6.1"), (10, "7")]]
    with pytest.raises(UnitError, match=r"clarity\.csv: glucose declared in mg/dL"):
        read_clarity(_write(tmp_path, rows))


def test_insulin_carbs_and_other_events(tmp_path):
    rows = [
        _egv("2026-01-01T08:00:00", "120"),
        {TS: "2026-01-01T08:01:00", "Event Type": "Insulin", "Event Subtype": "Fast-Acting",
         "Insulin Value (u)": "4.5"},
        {TS: "2026-01-01T08:01:00", "Event Type": "Carbs", "Carb Value (grams)": "50"},
        {TS: "2026-01-01T08:02:00", "Event Type": "Insulin", "Event Subtype": "Long-Acting",
         "Insulin Value (u)": "20"},
        {TS: "2026-01-01T08:03:00", "Event Type": "Calibration", MG: "118"},
        {TS: "2026-01-01T08:04:00", "Event Type": "Exercise", "Event Subtype": "Light"},
        {TS: "2026-01-01T08:04:30", "Event Type": "Teleport"},
    ]  # fmt: skip
    h = read_clarity(_write(tmp_path, rows))
    assert h.events["kind"].tolist() == ["bolus", "carbs"]
    assert h.events["value"].tolist() == [4.5, 50.0]
    by_kind = {}
    for issue in h.issues:
        by_kind.setdefault(issue.kind, []).append(issue)
    assert "long-acting insulin injection of 20 U" in by_kind["skipped"][0].message
    assert {i.message.split("'")[1] for i in by_kind["skipped"][1:]} == {"Calibration", "Exercise"}
    assert by_kind["unknown_event"][0].where == "line 12"


def test_duplicates_and_gaps_reported(tmp_path):
    rows = [_egv("2026-01-01T08:00:00", "120"), _egv("2026-01-01T08:00:00", "120"),
            _egv("2026-01-01T09:00:00", "130")]  # fmt: skip
    assert _kinds(read_clarity(_write(tmp_path, rows))) == ["duplicate", "gap"]


def test_missing_column_named(tmp_path):
    header = [h for h in CLARITY_HEADER if h != "Event Type"]
    with pytest.raises(DataFormatError, match=r"clarity\.csv, line 1: missing column 'Event Type'"):
        read_clarity(_write(tmp_path, [], header))
    header = [h for h in CLARITY_HEADER if h != MG]
    with pytest.raises(DataFormatError, match=r"line 1: expected one of the columns"):
        read_clarity(_write(tmp_path, [], header))


@pytest.mark.parametrize(
    ("row", "message"),
    [
        (
            _egv("01/02/2026 8am", "120"),
            rf"line 6, column '{re.escape(TS)}': cannot read '01/02/2026 8am'",
        ),
        (_egv("", "120"), r"line 6, column 'Timestamp.*expected a date and time"),
        (_egv("2026-01-01T08:00:00", "12O"), r"line 6, column 'Glucose Value \(mg/dL\)'"),
        ({TS: "2026-01-01T08:00:00", "Event Type": "Carbs"}, r"line 6, column 'Carb Value"),
    ],
)
def test_malformed_rows_name_line_and_column(tmp_path, row, message):
    with pytest.raises(DataFormatError, match=message):
        read_clarity(_write(tmp_path, [row]))


def test_wrong_field_count_and_empty_file(tmp_path):
    path = _write(tmp_path, [_egv("2026-01-01T08:00:00", "120")])
    path.write_text(path.read_text() + "6,2026-01-01T08:05:00,EGV\n")
    with pytest.raises(DataFormatError, match="line 7: 3 fields where the header has 14"):
        read_clarity(path)
    path.write_text("")
    with pytest.raises(DataFormatError, match="line 1: the file is empty"):
        read_clarity(path)
