"""ADT event logs (CSV) in and out, and per-visit stays for calibration.

An event log is a CSV with one header line and one ADT event per row, in the columns of
:data:`COLUMNS` (the fields of :class:`~medtwin.hospital._records.ADTEvent`).  The first five are
required; the others may be absent (the column) or empty (the cell).  Times are ISO 8601 with a
UTC offset (``2026-01-05T08:00:00+01:00``, ``...Z``); a time without one is an error unless the
reader is given the zone it is in.

:func:`stays_from_events` and :func:`visits_from_events` turn events from any source (an event
log, HL7 v2, FHIR Encounters) into the tables a calibration fits from: arrival times (arrival
rates by hour and weekday), stays per unit with their lengths (length-of-stay distributions) and
where each stay led (routing probabilities).  Both resolve the events through
:class:`~medtwin.hospital.census.Census` first, so duplicates, late events and cancels count as
the live census counts them.
"""

from __future__ import annotations

import csv
import io
import os
import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, tzinfo
from pathlib import Path
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import pandas as pd

from medtwin.errors import ConfigurationError, DataFormatError
from medtwin.hospital._records import ADT_EVENT_TYPES, ADTEvent, Occupant
from medtwin.hospital.census import Census

__all__ = [
    "COLUMNS",
    "REQUIRED_COLUMNS",
    "read_event_log",
    "stays_from_events",
    "visits_from_events",
    "write_event_log",
]

COLUMNS = (
    "message_id",
    "event_type",
    "occurred_at",
    "patient_id",
    "visit_id",
    "unit",
    "bed",
    "prior_unit",
    "prior_bed",
    "patient_class",
    "acuity",
    "admission_type",
    "recorded_at",
)
"""The columns of an event log, in the order :func:`write_event_log` writes them."""

REQUIRED_COLUMNS = COLUMNS[:5]
"""Columns an event log must have: message_id, event_type, occurred_at, patient_id, visit_id."""

_OPTIONAL_TEXT = ("unit", "bed", "prior_unit", "prior_bed", "acuity", "admission_type")
_CLASSES = ("E", "I", "O")
_NEEDS_UNIT = ("A01", "A02", "A04")
_DATE_ONLY = re.compile(r"\d{4}-?\d{2}-?\d{2}")


def read_event_log(
    path: str | os.PathLike[str], *, tz: str | None = None, delimiter: str = ","
) -> list[ADTEvent]:
    r"""Read an ADT event log (CSV) into events, in file order.

    Parameters
    ----------
    path
        The CSV file: one header line naming at least :data:`REQUIRED_COLUMNS`; columns it does
        not know are ignored.
    tz
        IANA zone of times written without a UTC offset; ``None`` (the default) makes such a
        time an error.
    delimiter
        The field separator.

    Raises
    ------
    DataFormatError
        A missing column, a row with too many or too few cells, an unknown event type or patient
        class, an unreadable time, an A01/A02/A04 without a unit, an A02 without a prior unit,
        or a message id repeated with other content; the message names the file, the line (and
        data row) and the column.

    Examples
    --------
    >>> import tempfile, pathlib
    >>> f = pathlib.Path(tempfile.mkdtemp()) / "adt.csv"
    >>> _ = f.write_text(
    ...     "message_id,event_type,occurred_at,patient_id,visit_id,unit,patient_class\n"
    ...     "m1,A04,2026-01-05T08:00:00+01:00,P1,V1,ED,E\n")
    >>> [(e.event_type, e.unit, e.occurred_at.isoformat()) for e in read_event_log(f)]
    [('A04', 'ED', '2026-01-05T07:00:00+00:00')]
    """
    source = str(Path(path))
    zone = _zone(tz)
    text = Path(path).read_text(encoding="utf-8-sig")
    reader = csv.reader(io.StringIO(text, newline=""), delimiter=delimiter)
    header = [h.strip() for h in next(reader, [])]
    if not any(header):
        raise DataFormatError(
            f"{source}, line 1: the file is empty; expected a header line naming the columns"
        )
    column = {name: k for k, name in enumerate(header)}
    missing = [c for c in REQUIRED_COLUMNS if c not in column]
    if missing:
        raise DataFormatError(
            f"{source}, line 1: missing column{'s' if len(missing) > 1 else ''} "
            f"{', '.join(repr(m) for m in missing)}; found {header}"
        )
    events: list[ADTEvent] = []
    first_seen: dict[str, tuple[int, ADTEvent]] = {}
    row = 0
    for cells in reader:
        line = reader.line_num
        if not any(c.strip() for c in cells):
            continue
        row += 1
        where = f"{source}, line {line} (row {row})"
        if len(cells) != len(header):
            raise DataFormatError(f"{where}: {len(cells)} cells where the header has {len(header)}")
        event = _row(cells, column, where, zone)
        seen = first_seen.get(event.message_id)
        if seen is not None and seen[1] != event:
            raise DataFormatError(
                f"{where}, column 'message_id': {event.message_id!r} is also on line {seen[0]} "
                "with other content"
            )
        first_seen.setdefault(event.message_id, (line, event))
        events.append(event)
    return events


def _zone(tz: str | None) -> tzinfo | None:
    if tz is None:
        return None
    try:
        return UTC if tz in ("UTC", "Z") else ZoneInfo(tz)
    except (ZoneInfoNotFoundError, ValueError):
        raise ConfigurationError(f"unknown time zone {tz!r}; expected an IANA name") from None


def _row(cells: list[str], column: dict[str, int], where: str, zone: tzinfo | None) -> ADTEvent:
    def cell(name: str) -> str | None:
        k = column.get(name)
        value = cells[k].strip() if k is not None else ""
        return value or None

    def fail(name: str, message: str) -> DataFormatError:
        return DataFormatError(f"{where}, column {name!r}: {message}")

    values: dict[str, str] = {}
    for name in ("message_id", "patient_id", "visit_id"):
        value = cell(name)
        if value is None:
            raise fail(name, "is empty")
        values[name] = value
    event_type = (cell("event_type") or "").upper()
    if event_type not in ADT_EVENT_TYPES:
        raise fail(
            "event_type",
            f"{cell('event_type')!r} is not an ADT event medtwin reads ({', '.join(ADT_EVENT_TYPES)})",
        )
    occurred_at = _time(cell("occurred_at"), zone, lambda m: fail("occurred_at", m))
    if occurred_at is None:
        raise fail("occurred_at", "is empty")
    recorded_at = _time(cell("recorded_at"), zone, lambda m: fail("recorded_at", m))
    patient_class = cell("patient_class")
    if patient_class is not None and patient_class.upper() not in _CLASSES:
        raise fail("patient_class", f"{patient_class!r} is not E, I or O (HL7 table 0004)")
    text = {name: cell(name) for name in _OPTIONAL_TEXT}
    if event_type in _NEEDS_UNIT and text["unit"] is None:
        raise fail("unit", f"is empty; an {event_type} needs the unit the patient is in")
    if event_type == "A02" and text["prior_unit"] is None:
        raise fail("prior_unit", "is empty; an A02 transfer needs where the patient came from")
    return ADTEvent(
        message_id=values["message_id"],
        event_type=event_type,
        occurred_at=occurred_at,
        patient_id=values["patient_id"],
        visit_id=values["visit_id"],
        patient_class=patient_class.upper() if patient_class else None,  # type: ignore[arg-type]
        recorded_at=recorded_at,
        **text,
    )


def _time(
    value: str | None, zone: tzinfo | None, error: Callable[[str], DataFormatError]
) -> datetime | None:
    if value is None:
        return None
    text = value.strip()
    if _DATE_ONLY.fullmatch(text):
        raise error(f"{text!r} has no time of day; expected e.g. 2026-01-05T08:00:00+01:00")
    try:
        parsed = datetime.fromisoformat(text)
    except ValueError:
        raise error(
            f"cannot read {text!r} as an ISO 8601 time; expected e.g. 2026-01-05T08:00:00+01:00"
        ) from None
    if parsed.tzinfo is None:
        if zone is None:
            raise error(
                f"{text!r} has no UTC offset; write one (+01:00, Z) or pass tz= to read it in a zone"
            )
        parsed = parsed.replace(tzinfo=zone)
    return parsed.astimezone(UTC)


def write_event_log(events: Iterable[ADTEvent], path: str | os.PathLike[str]) -> None:
    """Write events as an event-log CSV (:data:`COLUMNS`, times in UTC ISO 8601).

    Reading the file back with :func:`read_event_log` gives the same events.
    """
    with Path(path).open("w", encoding="utf-8", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(COLUMNS)
        for event in events:
            row = []
            for name in COLUMNS:
                value = getattr(event, name)
                if isinstance(value, datetime):
                    value = value.astimezone(UTC).isoformat()
                row.append("" if value is None else value)
            writer.writerow(row)


# -- stays and visits ----------------------------------------------------------------------------


@dataclass(slots=True)
class _Stay:
    unit: str
    bed: str | None
    start: datetime
    patient_class: str | None
    acuity: str | None
    end: datetime | None = None
    exit: str = "open"
    next_unit: str | None = None


def _unit_stays(timeline: list[tuple[datetime, Occupant | None]]) -> list[_Stay]:
    stays: list[_Stay] = []
    current: _Stay | None = None
    for when, occupant in timeline:
        if occupant is None:
            if current is not None:
                current.end, current.exit = when, "discharge"
                current = None
            continue
        if current is None or occupant.unit != current.unit:
            if current is not None:
                current.end, current.exit, current.next_unit = when, "transfer", occupant.unit
            current = _Stay(
                occupant.unit, occupant.bed, when, occupant.patient_class, occupant.acuity
            )
            stays.append(current)
    return stays


_STAY_COLUMNS = {
    "visit_id": "string",
    "patient_id": "string",
    "stay": "int64",
    "unit": "string",
    "bed": "string",
    "start": "datetime",
    "end": "datetime",
    "los_hours": "float64",
    "exit": "string",
    "next_unit": "string",
    "patient_class": "string",
    "acuity": "string",
}


def stays_from_events(events: Iterable[ADTEvent]) -> pd.DataFrame:
    """One row per unit stay: where each patient was, from when to when, and where next.

    Events from any source are resolved as the census resolves them (duplicates ignored, late
    events in their place, cancelled events removed).  A move between beds of one unit is one
    stay.

    Columns: ``visit_id``, ``patient_id``, ``stay`` (0, 1, ... within the visit), ``unit``,
    ``bed`` (at entry), ``start``, ``end`` (NaT while the patient is still there), ``los_hours``
    (NaN while open: these stays are right-censored at the last event, which a length-of-stay
    fit must treat as such), ``exit`` (``transfer``, ``discharge`` or ``open``), ``next_unit``
    (the unit of the next stay after a transfer), ``patient_class`` and ``acuity`` at entry.
    Routing probabilities are ``exit``/``next_unit`` counts per ``unit``.

    Raises
    ------
    ConflictError, DataFormatError
        As :meth:`Census.apply <medtwin.hospital.census.Census.apply>` does.

    Examples
    --------
    >>> from datetime import timedelta
    >>> t = datetime(2026, 1, 5, 8, tzinfo=UTC)
    >>> events = [ADTEvent("m1", "A04", t, "P1", "V1", unit="ED", patient_class="E"),
    ...           ADTEvent("m2", "A01", t + timedelta(hours=5), "P1", "V1", unit="MED",
    ...                    prior_unit="ED", patient_class="I"),
    ...           ADTEvent("m3", "A03", t + timedelta(days=3), "P1", "V1", unit="MED")]
    >>> stays_from_events(events)[["unit", "los_hours", "exit", "next_unit"]]
      unit  los_hours       exit next_unit
    0   ED        5.0   transfer       MED
    1  MED       67.0  discharge      <NA>
    """
    census = Census.from_events(events)
    rows = []
    for visit_id, timeline in census.timelines():
        patient = next((o.patient_id for _, o in timeline if o is not None), None)
        for k, stay in enumerate(_unit_stays(timeline)):
            rows.append(
                {
                    "visit_id": visit_id,
                    "patient_id": patient,
                    "stay": k,
                    "unit": stay.unit,
                    "bed": stay.bed,
                    "start": stay.start,
                    "end": stay.end,
                    "los_hours": _hours(stay.start, stay.end),
                    "exit": stay.exit,
                    "next_unit": stay.next_unit,
                    "patient_class": stay.patient_class,
                    "acuity": stay.acuity,
                }
            )
    return _frame(rows, _STAY_COLUMNS)


_VISIT_COLUMNS = {
    "visit_id": "string",
    "patient_id": "string",
    "arrived_at": "datetime",
    "first_unit": "string",
    "ed_departure": "datetime",
    "ed_los_hours": "float64",
    "admitted": "bool",
    "discharged_at": "datetime",
    "los_hours": "float64",
    "n_stays": "int64",
    "path": "string",
    "patient_class": "string",
    "final_class": "string",
    "acuity": "string",
    "final_acuity": "string",
}


def visits_from_events(
    events: Iterable[ADTEvent], *, ed_units: Iterable[str] = ("ED",)
) -> pd.DataFrame:
    """One row per visit: arrival, ED departure, discharge, path and class/acuity.

    Events are resolved as in :func:`stays_from_events`; visits that never were (every
    arrival cancelled) are left out.

    Columns: ``visit_id``, ``patient_id``, ``arrived_at``, ``first_unit``, ``ed_departure``
    (when the patient left the first run of ``ed_units``, to a ward or home; NaT if the visit
    did not start there or the patient is still there), ``ed_los_hours``, ``admitted`` (whether
    the patient was ever of class I), ``discharged_at`` (NaT while in hospital), ``los_hours``
    (NaN while in), ``n_stays``, ``path`` (units in order, ``"ED>MED>ICU>MED"``),
    ``patient_class`` and ``acuity`` at arrival (the triage level for ED visits), and
    ``final_class``, ``final_acuity``.

    Examples
    --------
    >>> from datetime import timedelta
    >>> t = datetime(2026, 1, 5, 8, tzinfo=UTC)
    >>> events = [ADTEvent("m1", "A04", t, "P1", "V1", unit="ED", patient_class="E", acuity="2"),
    ...           ADTEvent("m2", "A01", t + timedelta(hours=5), "P1", "V1", unit="MED",
    ...                    prior_unit="ED", patient_class="I")]
    >>> visits_from_events(events).loc[0, ["path", "ed_los_hours", "admitted", "final_class"]]
    path            ED>MED
    ed_los_hours       5.0
    admitted          True
    final_class          I
    Name: 0, dtype: object
    """
    ed = frozenset(ed_units)
    census = Census.from_events(events)
    rows = []
    for visit_id, timeline in census.timelines():
        present = [o for _, o in timeline if o is not None]
        if not present:
            continue
        stays = _unit_stays(timeline)
        first, last = present[0], present[-1]
        ed_departure = None
        if stays[0].unit in ed:
            for stay in stays:
                if stay.unit not in ed:
                    ed_departure = stay.start
                    break
                if stay.exit != "transfer":  # discharged from the ED (end), or still there (None)
                    ed_departure = stay.end
                    break
        discharged_at = timeline[-1][0] if timeline[-1][1] is None else None
        rows.append(
            {
                "visit_id": visit_id,
                "patient_id": first.patient_id,
                "arrived_at": first.arrived_at,
                "first_unit": stays[0].unit,
                "ed_departure": ed_departure,
                "ed_los_hours": _hours(first.arrived_at, ed_departure),
                "admitted": any(o.patient_class == "I" for o in present),
                "discharged_at": discharged_at,
                "los_hours": _hours(first.arrived_at, discharged_at),
                "n_stays": len(stays),
                "path": ">".join(s.unit for s in stays),
                "patient_class": first.patient_class,
                "final_class": last.patient_class,
                "acuity": first.acuity,
                "final_acuity": last.acuity,
            }
        )
    return _frame(rows, _VISIT_COLUMNS)


def _hours(start: datetime, end: datetime | None) -> float:
    return float("nan") if end is None else (end - start).total_seconds() / 3600.0


def _frame(rows: Sequence[Mapping[str, object]], columns: dict[str, str]) -> pd.DataFrame:
    frame = pd.DataFrame(rows, columns=list(columns))
    for name, dtype in columns.items():
        if dtype.startswith("datetime"):
            frame[name] = pd.to_datetime(frame[name], utc=True)
        else:
            frame[name] = frame[name].astype(dtype)  # type: ignore[call-overload]
    return frame
