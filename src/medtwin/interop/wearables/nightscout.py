"""Nightscout ``entries`` and ``treatments`` (the JSON the Nightscout API returns) as a history.

Entries of type ``sgv`` carry ``sgv`` in mg/dL (the API's unit, whatever the site displays) and
``date`` in epoch milliseconds (``dateString`` as a fallback).  Meter (``mbg``) and calibration
(``cal``) entries are not CGM readings: they are counted in one ``skipped`` issue per type.  The
API lists entries newest first; a list in exactly descending order is read without an issue,
any other disorder is sorted and reported.

Treatments: any ``insulin`` (U) is a bolus and any ``carbs`` (g) a carbohydrate entry, whatever the
``eventType`` ("Meal Bolus", "Correction Bolus", "Snack Bolus", "Carb Correction", "Bolus Wizard"...);
the time is ``created_at`` (UTC; a time without offset is read as UTC), else ``timestamp``, else
``date``/``mills`` (epoch ms).  "Sensor Start" and "Sensor Change" start a sensor warm-up.
"Temp Basal" (``absolute`` or ``rate`` in U/h, or ``percent`` of the scheduled rate, for
``duration`` minutes; duration 0 cancels), "Temp Basal End", "Suspend Pump" and "Resume Pump"
become basal events.  Nightscout keeps the scheduled basal in the profile, which this reader does
not read: pass ``basal_u_per_h`` and each temp basal is followed by a return to that rate when it
ends (unless the next one starts first).  Without it only the start of each temp basal is
recorded, so its rate stays in force until the next basal event, and one ``skipped`` issue says
how many returns were not recorded; a history with no basal events at all leaves the twin on the
patient's own default basal.  Other known event types (notes, site changes, temporary targets...)
are counted as ``skipped``; unknown ones are reported one by one as ``unknown_event`` (their
insulin and carbohydrate are still read).
"""

from __future__ import annotations

import heapq
import itertools
import os
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any
from zoneinfo import ZoneInfo

import pandas as pd

from medtwin.errors import ParameterError
from medtwin.history import DataIssue, PatientHistory
from medtwin.interop.wearables._quality import (
    MAX_GAP_MIN,
    WARM_UP_MIN,
    RawEvent,
    RawReading,
    Tally,
    assemble_history,
    check_units,
    fail,
    glucose_unit,
    load_json,
    parse_epoch_ms,
    parse_number,
    parse_time,
    source_name,
)
from medtwin.units import glucose_to_mg_dl

__all__ = ["read_nightscout"]

_UTC = ZoneInfo("UTC")
JSONSource = str | os.PathLike[str] | Sequence[Mapping[str, Any]]

_SENSOR_START = {"Sensor Start", "Sensor Change"}
_TEMP_BASAL = {"Temp Basal", "Temp Basal Start"}
_DOSE_TYPES = {
    "Bolus",
    "Meal Bolus",
    "Correction Bolus",
    "Snack Bolus",
    "Combo Bolus",
    "Carb Correction",
    "Bolus Wizard",
    "Carbs",
    "SMB",
}
_IGNORED_TYPES = {
    "<none>",
    "",
    "Note",
    "Announcement",
    "Question",
    "BG Check",
    "Exercise",
    "Site Change",
    "Insulin Change",
    "Pump Battery Change",
    "Sensor Stop",
    "Profile Switch",
    "Temporary Target",
    "Temporary Override",
    "OpenAPS Offline",
    "D.A.D. Alert",
}


@dataclass(frozen=True, slots=True)
class _Basal:
    start: pd.Timestamp
    rate_u_per_h: float | None  # None: back to the scheduled rate
    duration_min: float | None  # None: until the next basal event
    where: str


def read_nightscout(
    entries: JSONSource,
    treatments: JSONSource | None = None,
    *,
    units: str | None = None,
    basal_u_per_h: float | None = None,
    sensor_starts: Iterable[pd.Timestamp] = (),
    warm_up_min: float = WARM_UP_MIN,
    max_gap_min: float = MAX_GAP_MIN,
) -> PatientHistory:
    """Read Nightscout entries (and optionally treatments) into a :class:`PatientHistory`.

    Parameters
    ----------
    entries, treatments
        Paths to JSON files as the API's ``/api/v1/entries.json`` and ``/api/v1/treatments.json``
        return them, or the already-loaded lists of objects.
    units
        Unit of ``sgv``.  ``None`` means mg/dL, as the Nightscout API defines it; pass
        ``"mmol/L"`` only for uploaders known to break that rule.  Values that plainly are the
        other unit raise :class:`~medtwin.errors.UnitError`.
    basal_u_per_h
        The scheduled basal rate that each temp basal returns to when it ends (see the module
        docstring for what happens without it).
    sensor_starts
        Further sensor start times (UTC) beside the "Sensor Start" treatments.
    warm_up_min, max_gap_min
        Readings this soon after a sensor start are excluded; longer gaps are reported.

    Raises
    ------
    DataFormatError
        Invalid JSON, or a record without a readable time or value; the message names the file
        and the record (``entries[3].sgv``).

    Examples
    --------
    >>> h = read_nightscout(
    ...     [{"type": "sgv", "sgv": 120, "date": 1767225600000},
    ...      {"type": "sgv", "sgv": 126, "date": 1767225900000}],
    ...     [{"eventType": "Meal Bolus", "created_at": "2026-01-01T00:02:00Z",
    ...       "insulin": 4.0, "carbs": 45}],
    ... )
    >>> h.glucose().tolist(), h.events["kind"].tolist()
    ([120.0, 126.0], ['bolus', 'carbs'])
    """
    unit = glucose_unit(units if units is not None else "mg/dL")
    if basal_u_per_h is not None and not (0 <= basal_u_per_h < float("inf")):
        raise ParameterError(f"basal_u_per_h must be a finite rate >= 0 U/h, got {basal_u_per_h}")
    entries_name = source_name(entries, "entries")
    issues: list[DataIssue] = []

    readings, raw_values = _entries(_records(entries, entries_name), entries_name, unit, issues)
    issues[:0] = check_units(raw_values, unit, source=entries_name)

    events: list[RawEvent] = []
    starts = [pd.Timestamp(s) for s in sensor_starts]
    sources = [entries_name]
    if treatments is not None:
        treatments_name = source_name(treatments, "treatments")
        sources.append(treatments_name)
        records = _records(treatments, treatments_name)
        events, sensor, basals = _treatments(records, treatments_name, basal_u_per_h, issues)
        starts += sensor
        # Basal events come from their own pass over the records: merge them in by time so that
        # only real disorder in the file is reported as out of order.
        basal_events = _basal_events(basals, basal_u_per_h, issues)
        events = list(heapq.merge(events, basal_events, key=lambda e: e.time))

    return assemble_history(
        readings,
        events,
        issues=issues,
        sensor_starts=starts,
        warm_up_min=warm_up_min,
        max_gap_min=max_gap_min,
        source="nightscout:" + ",".join(sources),
    )


def _records(source: JSONSource, name: str) -> list[Mapping[str, Any]]:
    data: object = load_json(source) if isinstance(source, (str, os.PathLike)) else source
    if not isinstance(data, Sequence) or isinstance(data, (str, bytes)):
        raise fail(name, "", f"expected a JSON array of objects, got {type(data).__name__}")
    for i, item in enumerate(data):
        if not isinstance(item, Mapping):
            raise fail(name, f"[{i}]", f"expected an object, got {item!r}")
    return list(data)


def _entries(
    records: list[Mapping[str, Any]], name: str, unit: str, issues: list[DataIssue]
) -> tuple[list[RawReading], list[float]]:
    readings: list[RawReading] = []
    values: list[float] = []
    other = Tally("entries")
    for i, e in enumerate(records):
        where = f"{name}[{i}]"
        kind = e.get("type", "sgv" if "sgv" in e else None)
        if kind != "sgv":
            other.add(str(kind), where)
            continue
        if "sgv" not in e:
            raise fail(name, f"[{i}].sgv", "an sgv entry has no 'sgv' value")
        value = parse_number(e["sgv"], source=name, where=f"[{i}].sgv")
        if e.get("date") is not None:
            time = parse_epoch_ms(e["date"], source=name, where=f"[{i}].date")
        elif e.get("dateString") is not None:
            time = parse_time(e["dateString"], source=name, where=f"[{i}].dateString", tz=None)
        else:
            raise fail(name, f"[{i}]", "entry has neither 'date' nor 'dateString'")
        values.append(value)
        mg_dl = value if unit == "mg/dL" else glucose_to_mg_dl(value, unit)
        readings.append(RawReading(time, mg_dl, where))
    # The API answers newest first: exactly descending order is the format, not a defect.
    if len(readings) > 1 and all(b.time <= a.time for a, b in itertools.pairwise(readings)):
        readings.reverse()
    issues.extend(other.issues())
    return readings, values


def _treatment_time(t: Mapping[str, Any], name: str, i: int) -> pd.Timestamp:
    for key in ("created_at", "timestamp"):
        value = t.get(key)
        if value is None:
            continue
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return parse_epoch_ms(value, source=name, where=f"[{i}].{key}")
        # Nightscout stores created_at in UTC; uploaders that drop the "Z" still mean UTC.
        return parse_time(value, source=name, where=f"[{i}].{key}", tz=_UTC)
    for key in ("date", "mills"):
        if t.get(key) is not None:
            return parse_epoch_ms(t[key], source=name, where=f"[{i}].{key}")
    raise fail(name, f"[{i}]", "treatment has no 'created_at' (nor 'timestamp', 'date', 'mills')")


def _amount(t: Mapping[str, Any], key: str, name: str, i: int) -> float | None:
    value = t.get(key)
    if value is None or value == "":
        return None
    amount = parse_number(value, source=name, where=f"[{i}].{key}")
    if amount < 0:
        raise fail(name, f"[{i}].{key}", f"{key} must be >= 0, got {value!r}")
    return amount


def _treatments(
    records: list[Mapping[str, Any]],
    name: str,
    basal_u_per_h: float | None,
    issues: list[DataIssue],
) -> tuple[list[RawEvent], list[pd.Timestamp], list[_Basal]]:
    events: list[RawEvent] = []
    sensor: list[pd.Timestamp] = []
    basals: list[_Basal] = []
    ignored = Tally("treatments")
    times = [_treatment_time(t, name, i) for i, t in enumerate(records)]
    order = list(range(len(records)))
    if len(order) > 1 and all(b <= a for a, b in itertools.pairwise(times)):
        order.reverse()  # newest first, as the API answers
    for i in order:
        t, time, where = records[i], times[i], f"{name}[{i}]"
        kind = t.get("eventType") or ""
        if not isinstance(kind, str):
            raise fail(name, f"[{i}].eventType", f"expected a string, got {kind!r}")
        insulin = _amount(t, "insulin", name, i)
        carbs = _amount(t, "carbs", name, i)
        if insulin:
            events.append(RawEvent(time, "bolus", insulin, where))
        if carbs:
            events.append(RawEvent(time, "carbs", carbs, where))

        if kind in _SENSOR_START:
            sensor.append(time)
        elif kind in _TEMP_BASAL:
            basal = _temp_basal(t, time, basal_u_per_h, name, i, issues)
            if basal is not None:
                basals.append(basal)
        elif kind == "Suspend Pump":
            duration = _amount(t, "duration", name, i)
            basals.append(_Basal(time, 0.0, duration or None, where))
        elif kind in ("Resume Pump", "Temp Basal End"):
            basals.append(_Basal(time, None, None, where))
        elif kind == "Combo Bolus":
            _combo_extension(t, insulin, name, i, issues)
        elif kind in _DOSE_TYPES:
            pass
        elif kind in _IGNORED_TYPES:
            if not (insulin or carbs):
                ignored.add(kind or "<none>", where)
        else:
            used = " (its insulin/carbohydrate was read)" if insulin or carbs else ""
            issues.append(
                DataIssue(
                    "unknown_event",
                    f"unknown treatment eventType {kind!r}{used}",
                    where=where,
                    time=time,
                )
            )
    issues.extend(ignored.issues())
    return events, sensor, basals


def _temp_basal(
    t: Mapping[str, Any],
    time: pd.Timestamp,
    basal_u_per_h: float | None,
    name: str,
    i: int,
    issues: list[DataIssue],
) -> _Basal | None:
    where = f"{name}[{i}]"
    duration = _amount(t, "duration", name, i)
    if duration == 0:  # a zero-length temp basal cancels the running one
        return _Basal(time, None, None, where)
    rate = _amount(t, "absolute", name, i)
    if rate is None:
        rate = _amount(t, "rate", name, i)
    if rate is None and t.get("percent") is not None:
        percent = parse_number(t["percent"], source=name, where=f"[{i}].percent")
        if basal_u_per_h is None:
            issues.append(
                DataIssue(
                    "skipped",
                    f"temp basal of {percent:+g} % not recorded: the scheduled basal rate is not "
                    "known (pass basal_u_per_h)",
                    where=where,
                    time=time,
                )
            )
            return None
        rate = max(0.0, basal_u_per_h * (100.0 + percent) / 100.0)
    if rate is None:
        raise fail(name, f"[{i}]", "Temp Basal has no 'absolute', 'rate' or 'percent'")
    return _Basal(time, rate, duration, where)


def _combo_extension(
    t: Mapping[str, Any], insulin: float | None, name: str, i: int, issues: list[DataIssue]
) -> None:
    entered = _amount(t, "enteredinsulin", name, i)
    if entered is not None and entered > (insulin or 0.0) + 1e-9:
        issues.append(
            DataIssue(
                "skipped",
                f"extended part of a combo bolus ({entered - (insulin or 0.0):g} U of "
                f"{entered:g} U) not recorded: a history holds boluses and basal rates only",
                where=f"{name}[{i}]",
            )
        )


def _basal_events(
    basals: list[_Basal], basal_u_per_h: float | None, issues: list[DataIssue]
) -> list[RawEvent]:
    basals = sorted(basals, key=lambda b: b.start)
    events: list[RawEvent] = []
    unknown_ends = 0
    first_unknown = ""
    for k, b in enumerate(basals):
        if b.rate_u_per_h is None:
            if basal_u_per_h is not None:
                events.append(RawEvent(b.start, "basal", basal_u_per_h, b.where))
            else:
                unknown_ends += 1
                first_unknown = first_unknown or b.where
            continue
        events.append(RawEvent(b.start, "basal", b.rate_u_per_h, b.where))
        if b.duration_min is None:
            continue
        end = b.start + pd.Timedelta(minutes=b.duration_min)
        if k + 1 < len(basals) and basals[k + 1].start <= end:
            continue  # the next basal event takes over before this one ends
        if basal_u_per_h is not None:
            events.append(RawEvent(end, "basal", basal_u_per_h, f"end of {b.where}"))
        else:
            unknown_ends += 1
            first_unknown = first_unknown or b.where
    if unknown_ends:
        issues.append(
            DataIssue(
                "skipped",
                f"{unknown_ends} returns to the scheduled basal (temp basal ends, cancels, pump "
                "resumes) not recorded: the scheduled rate is not known (pass basal_u_per_h); "
                "each temp rate stays in force until the next basal event",
                where=f"first at {first_unknown}",
            )
        )
    return events
