from __future__ import annotations

import pandas as pd
import pytest

from medtwin.errors import DataFormatError
from medtwin.interop.wearables import read_csv


def _write(tmp_path, text):
    path = tmp_path / "cgm.csv"
    path.write_text(text)
    return path


def test_custom_columns_time_zone_and_treatments(tmp_path):
    path = _write(tmp_path, "ts;x\n".replace(";", ",") + (
        "2026-01-01 09:00:00,6.0\n"
        "2026-01-01 09:05:00,6.5\n"
    ))  # fmt: skip
    h = read_csv(path, time_column="ts", glucose_column="x", units="mmol/L", tz="Europe/Berlin")
    assert h.cgm["time"][0] == pd.Timestamp("2026-01-01T08:00Z")
    assert h.glucose().round(1).tolist() == [108.1, 117.1]


def test_optional_treatment_columns(tmp_path):
    path = _write(tmp_path, (
        "time,glucose,bolus,carbs,basal\n"
        "2026-01-01T08:00Z,120,,,0.9\n"
        "2026-01-01T08:02Z,,3,40,\n"
        "2026-01-01T08:05Z,125,0,,\n"
    ))  # fmt: skip
    h = read_csv(path)
    assert h.glucose().tolist() == [120.0, 125.0]
    assert list(zip(h.events["kind"], h.events["value"], strict=True)) == [
        ("basal", 0.9), ("bolus", 3.0), ("carbs", 40.0),
    ]  # fmt: skip
    renamed = _write(tmp_path, "time,glucose,insulin_u\n2026-01-01T08:00Z,120,2\n")
    assert read_csv(renamed, bolus_column="insulin_u").events["value"].tolist() == [2.0]


def test_blank_lines_ignored(tmp_path):
    h = read_csv(_write(tmp_path, "time,glucose\n\n2026-01-01T08:00Z,120\n\n"))
    assert h.glucose().tolist() == [120.0]


@pytest.mark.parametrize(
    ("text", "kwargs", "message"),
    [
        ("t,glucose\n", {}, r"cgm\.csv, line 1: missing column 'time'"),
        ("time,g\n", {}, r"line 1: missing column 'glucose'"),
        ("time,glucose\n", {"carbs_column": "cho"}, r"line 1: missing carbs column 'cho'"),
        ("time,glucose\n2026-01-01T08:00Z,120\n2026-01-01T08:05Z,abc\n", {},
         r"line 3, column 'glucose': cannot read 'abc' as a number"),
        ("time,glucose\n2026-01-01T08:00Z,nan\n", {}, r"line 2, column 'glucose': 'nan' is not"),
        ("time,glucose\nnoon,120\n", {}, r"line 2, column 'time': cannot read 'noon'"),
        ("time,glucose\n2026-01-01,120\n", {}, r"line 2, column 'time': .* no time of day"),
        ("time,glucose,bolus\n2026-01-01T08:00Z,120,-1\n", {}, r"line 2, column 'bolus': must be"),
        ("time,glucose\n2026-01-01T08:00Z,120,7\n", {}, r"line 2: 3 fields where the header has 2"),
        ("", {}, r"line 1: the file is empty"),
    ],
)  # fmt: skip
def test_malformed_files_name_line_and_column(tmp_path, text, kwargs, message):
    with pytest.raises(DataFormatError, match=message):
        read_csv(_write(tmp_path, text), **kwargs)


def test_line_numbers_count_quoted_newlines(tmp_path):
    text = 'time,glucose,note\n2026-01-01T08:00Z,120,"two\nlines"\n2026-01-01T08:05Z,x,\n'
    with pytest.raises(DataFormatError, match="line 4, column 'glucose'"):
        read_csv(_write(tmp_path, text))
