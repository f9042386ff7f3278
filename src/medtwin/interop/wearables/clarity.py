"""Dexcom Clarity CSV exports as a history.

A Clarity export has one header line (``Index``, ``Timestamp (YYYY-MM-DDThh:mm:ss)``, ``Event
Type``, ``Event Subtype``, ..., ``Glucose Value (mg/dL)`` or ``Glucose Value (mmol/L)``, ``Insulin
Value (u)``, ``Carb Value (grams)``, ...), then rows about the patient and the device
(``FirstName``, ``LastName``, ``Device``, ``Alert`` settings; they carry no time and are not
data), then one row per event.  Read here:

- ``EGV`` rows are CGM readings; the text ``Low`` / ``High`` (below 40 / above 400 mg/dL, the
  sensor's range) is kept as a censored value of 40 / 400 mg/dL with a ``censored`` issue;
- ``Insulin`` rows of subtype ``Fast-Acting`` are boluses; ``Long-Acting`` injections cannot be
  written as a basal rate in U/h and are reported ``skipped`` one by one;
- ``Carbs`` rows are carbohydrate in g;
- ``Calibration``, ``Exercise``, ``Health`` and ``Notes`` rows are counted in ``skipped`` issues;
  any other event type is an ``unknown_event``.

Clarity exports carry no sensor-session rows, and Dexcom shows no EGV during warm-up, so warm-up
exclusion applies only to the ``sensor_starts`` a caller passes.  Timestamps are local wall-clock
times without an offset: pass the patient's time zone as ``tz`` (default UTC).  In the hour a
daylight-saving change repeats, times are read as the first occurrence, so readings of the second
pass show up as duplicates or conflicts rather than being lost.
"""

from __future__ import annotations

import csv
import io
import os
from collections.abc import Callable, Iterable
from pathlib import Path

import pandas as pd

from medtwin.history import DataIssue, PatientHistory
from medtwin.interop.wearables._quality import (
    HIGH_MG_DL,
    LOW_MG_DL,
    MAX_GAP_MIN,
    WARM_UP_MIN,
    RawEvent,
    RawReading,
    Tally,
    assemble_history,
    check_units,
    fail,
    parse_number,
    parse_time,
    time_zone,
)
from medtwin.units import glucose_to_mg_dl

__all__ = ["read_clarity"]

_TIME = "Timestamp (YYYY-MM-DDThh:mm:ss)"
_EVENT = "Event Type"
_SUBTYPE = "Event Subtype"
_GLUCOSE = {"Glucose Value (mg/dL)": "mg/dL", "Glucose Value (mmol/L)": "mmol/L"}
_INSULIN = "Insulin Value (u)"
_CARBS = "Carb Value (grams)"
_HEADER_ROWS = {"FirstName", "LastName", "DateOfBirth", "Device", "Alert"}
_SKIPPED = {"Calibration", "Exercise", "Health", "Notes", "Note"}


def read_clarity(
    path: str | os.PathLike[str],
    *,
    tz: str = "UTC",
    sensor_starts: Iterable[pd.Timestamp] = (),
    warm_up_min: float = WARM_UP_MIN,
    max_gap_min: float = MAX_GAP_MIN,
) -> PatientHistory:
    r"""Read a Dexcom Clarity CSV export into a :class:`PatientHistory`.

    Parameters
    ----------
    path
        The exported ``.csv`` file.
    tz
        IANA time zone of the export's local timestamps (``"Europe/Berlin"``); default UTC.
    sensor_starts, warm_up_min, max_gap_min
        Sensor start times known from elsewhere (UTC), the warm-up after each that is excluded,
        and the longest interval between readings not reported as a gap.

    Raises
    ------
    DataFormatError
        A missing column, or a row whose time or value cannot be read; the message names the
        file, the line and the column.
    UnitError
        The glucose values plainly are in the other unit than the column header says.

    Examples
    --------
    >>> import tempfile, pathlib
    >>> f = pathlib.Path(tempfile.mkdtemp()) / "clarity.csv"
    >>> _ = f.write_text(
    ...     "Index,Timestamp (YYYY-MM-DDThh:mm:ss),Event Type,Event Subtype,Glucose Value (mg/dL)\n"
    ...     "1,,FirstName,,\n"
    ...     "2,2026-01-01T09:00:00,EGV,,Low\n"
    ...     "3,2026-01-01T09:05:00,EGV,,45\n"
    ... )
    >>> h = read_clarity(f, tz="Europe/Berlin")
    >>> h.glucose().tolist(), str(h.cgm["time"][0]), h.issues[0].kind
    ([40.0, 45.0], '2026-01-01 08:00:00+00:00', 'censored')
    """
    zone = time_zone(tz)
    source = str(Path(path))
    text = Path(path).read_text(encoding="utf-8-sig")
    reader = csv.reader(io.StringIO(text, newline=""))
    try:
        header = [h.strip() for h in next(reader)]
    except StopIteration:
        raise fail(source, "line 1", "the file is empty; expected a Clarity header line") from None
    column = {name: k for k, name in enumerate(header)}
    for required in (_TIME, _EVENT):
        if required not in column:
            raise fail(source, "line 1", f"missing column {required!r}; found {header}")
    glucose_columns = [c for c in _GLUCOSE if c in column]
    if len(glucose_columns) != 1:
        raise fail(
            source, "line 1",
            f"expected one of the columns {sorted(_GLUCOSE)}, found {glucose_columns or header}",
        )  # fmt: skip
    glucose_col = glucose_columns[0]
    unit = _GLUCOSE[glucose_col]

    readings: list[RawReading] = []
    raw_values: list[float] = []
    events: list[RawEvent] = []
    issues: list[DataIssue] = []
    skipped = Tally("rows")
    for row in reader:
        line = reader.line_num
        if not any(cell.strip() for cell in row):
            continue
        if len(row) != len(header):
            raise fail(
                source, f"line {line}", f"{len(row)} fields where the header has {len(header)}"
            )

        def cell(name: str, row: list[str] = row) -> str:
            return row[column[name]].strip() if name in column else ""

        kind = cell(_EVENT)
        where = f"line {line}"
        if kind in _HEADER_ROWS:
            continue
        time = parse_time(cell(_TIME), source=source, where=f"{where}, column {_TIME!r}", tz=zone)
        if kind == "EGV":
            text_value = cell(glucose_col)
            censored = {"low": LOW_MG_DL, "high": HIGH_MG_DL}.get(text_value.lower())
            if censored is not None:
                readings.append(RawReading(time, censored, where))
                issues.append(
                    DataIssue(
                        "censored",
                        f"sensor reported {text_value!r}: kept as {censored:g} mg/dL, the edge of "
                        "its range (the true value is beyond it)",
                        where=where,
                        time=time,
                    )
                )
                continue
            value = parse_number(
                text_value, source=source, where=f"{where}, column {glucose_col!r}"
            )
            raw_values.append(value)
            mg_dl = value if unit == "mg/dL" else glucose_to_mg_dl(value, unit)
            readings.append(RawReading(time, mg_dl, where))
        elif kind == "Insulin":
            amount = _amount(cell, _INSULIN, source, where)
            subtype = cell(_SUBTYPE)
            if subtype == "Long-Acting":
                issues.append(
                    DataIssue(
                        "skipped",
                        f"long-acting insulin injection of {amount:g} U not recorded: a history "
                        "holds basal insulin as a pump rate in U/h",
                        where=where,
                        time=time,
                    )
                )
            elif subtype in ("Fast-Acting", ""):
                events.append(RawEvent(time, "bolus", amount, where))
            else:
                issues.append(
                    DataIssue(
                        "unknown_event",
                        f"insulin of unknown subtype {subtype!r} ({amount:g} U) not recorded",
                        where=where,
                        time=time,
                    )
                )
        elif kind == "Carbs":
            events.append(RawEvent(time, "carbs", _amount(cell, _CARBS, source, where), where))
        elif kind in _SKIPPED:
            skipped.add(kind, where)
        else:
            issues.append(
                DataIssue("unknown_event", f"unknown event type {kind!r}", where=where, time=time)
            )
    issues.extend(skipped.issues())
    issues[:0] = check_units(raw_values, unit, source=source)
    return assemble_history(
        readings,
        events,
        issues=issues,
        sensor_starts=sensor_starts,
        warm_up_min=warm_up_min,
        max_gap_min=max_gap_min,
        source=f"clarity:{source}",
    )


def _amount(cell: Callable[[str], str], name: str, source: str, where: str) -> float:
    text = cell(name)
    if text == "":
        raise fail(source, f"{where}, column {name!r}", "the value is missing")
    value = parse_number(text, source=source, where=f"{where}, column {name!r}")
    if value < 0:
        raise fail(source, f"{where}, column {name!r}", f"must be >= 0, got {text!r}")
    return value
