"""A plain CSV of CGM readings (and optionally boluses, carbohydrate and basal rates) as a history.

One header line, then one row per time.  The time column holds ISO 8601 times; a time without
an offset is read in ``tz``.  A row may leave the glucose cell empty when it only logs a
treatment; the optional ``bolus`` (U), ``carbs`` (g) and ``basal`` (U/h from that time on) columns
are read when present (or under the names passed), and empty or zero cells there mean nothing
happened.
"""

from __future__ import annotations

import csv
import io
import os
from collections.abc import Iterable
from pathlib import Path

import pandas as pd

from medtwin.history import PatientHistory
from medtwin.interop.wearables._quality import (
    MAX_GAP_MIN,
    WARM_UP_MIN,
    RawEvent,
    RawReading,
    assemble_history,
    check_units,
    fail,
    glucose_unit,
    parse_number,
    parse_time,
    time_zone,
)
from medtwin.units import glucose_to_mg_dl

__all__ = ["read_csv"]


def read_csv(
    path: str | os.PathLike[str],
    *,
    time_column: str = "time",
    glucose_column: str = "glucose",
    units: str = "mg/dL",
    tz: str = "UTC",
    bolus_column: str | None = None,
    carbs_column: str | None = None,
    basal_column: str | None = None,
    sensor_starts: Iterable[pd.Timestamp] = (),
    warm_up_min: float = WARM_UP_MIN,
    max_gap_min: float = MAX_GAP_MIN,
) -> PatientHistory:
    r"""Read a plain CSV of CGM readings into a :class:`PatientHistory`.

    Parameters
    ----------
    path
        The CSV file (comma-separated, one header line).
    time_column, glucose_column
        Names of the time and glucose columns; both must exist.
    units
        Unit of the glucose column, ``"mg/dL"`` or ``"mmol/L"``; converted to mg/dL here.
    tz
        IANA time zone of times written without a UTC offset.
    bolus_column, carbs_column, basal_column
        Names of the optional treatment columns (U, g, U/h).  ``None`` reads ``bolus``,
        ``carbs`` and ``basal`` if the file has them; a name passed explicitly must exist.
    sensor_starts, warm_up_min, max_gap_min
        Sensor start times (UTC), the warm-up after each that is excluded, and the longest
        interval between readings not reported as a gap.

    Raises
    ------
    DataFormatError
        A missing column, or a cell that cannot be read; the message names the file, the line
        and the column.
    UnitError
        The glucose values plainly are in the other unit than ``units``.

    Examples
    --------
    >>> import tempfile, pathlib
    >>> f = pathlib.Path(tempfile.mkdtemp()) / "cgm.csv"
    >>> _ = f.write_text("time,glucose\n2026-01-01T08:00Z,5.5\n2026-01-01T08:05Z,5.6\n")
    >>> read_csv(f, units="mmol/L").glucose().round(2).tolist()
    [99.09, 100.89]
    """
    unit = glucose_unit(units)
    zone = time_zone(tz)
    source = str(Path(path))
    reader = csv.reader(io.StringIO(Path(path).read_text(encoding="utf-8-sig"), newline=""))
    try:
        header = [h.strip() for h in next(reader)]
    except StopIteration:
        raise fail(source, "line 1", "the file is empty; expected a header line") from None
    column = {name: k for k, name in enumerate(header)}
    for required in (time_column, glucose_column):
        if required not in column:
            raise fail(source, "line 1", f"missing column {required!r}; found {header}")
    treatments: dict[str, str] = {}
    for kind, given in (("bolus", bolus_column), ("carbs", carbs_column), ("basal", basal_column)):
        if given is not None and given not in column:
            raise fail(source, "line 1", f"missing {kind} column {given!r}; found {header}")
        name = given if given is not None else kind
        if name in column:
            treatments[kind] = name

    readings: list[RawReading] = []
    raw_values: list[float] = []
    events: list[RawEvent] = []
    for row in reader:
        line = reader.line_num
        if not any(cell.strip() for cell in row):
            continue
        if len(row) != len(header):
            raise fail(
                source, f"line {line}", f"{len(row)} fields where the header has {len(header)}"
            )
        where = f"line {line}"
        time = parse_time(
            row[column[time_column]], source=source, where=f"{where}, column {time_column!r}",
            tz=zone,
        )  # fmt: skip
        text = row[column[glucose_column]].strip()
        if text:
            value = parse_number(text, source=source, where=f"{where}, column {glucose_column!r}")
            raw_values.append(value)
            mg_dl = value if unit == "mg/dL" else glucose_to_mg_dl(value, unit)
            readings.append(RawReading(time, mg_dl, where))
        for kind, name in treatments.items():
            cell = row[column[name]].strip()
            if not cell:
                continue
            amount = parse_number(cell, source=source, where=f"{where}, column {name!r}")
            if amount < 0:
                raise fail(source, f"{where}, column {name!r}", f"must be >= 0, got {cell!r}")
            if amount > 0 or kind == "basal":
                events.append(RawEvent(time, kind, amount, where))
    return assemble_history(
        readings,
        events,
        issues=check_units(raw_values, unit, source=source),
        sensor_starts=sensor_starts,
        warm_up_min=warm_up_min,
        max_gap_min=max_gap_min,
        source=f"csv:{source}",
    )
