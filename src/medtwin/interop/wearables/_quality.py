"""Parsing helpers and data-quality checks that every wearable reader shares.

Readers turn their format into :class:`RawReading` and :class:`RawEvent` records (times in UTC,
glucose already converted to mg/dL) and hand them to :func:`assemble_history`, which applies the
same checks in the same order for every format:

1. out-of-order input is sorted by time (stable, so the file order decides among equal times),
   with one ``out_of_order`` issue;
2. exact duplicates (same time, same value) are removed (``duplicate``); readings at the same time
   with different values keep the first in file order (``conflict``);
3. readings outside 39-401 mg/dL are excluded (``implausible``, each with its value);
4. readings less than ``warm_up_min`` after a sensor start are excluded (``warm_up``);
5. gaps longer than ``max_gap_min`` between the readings kept are reported (``gap``), not filled.

Events (boluses, basal rates, carbohydrate) go through steps 1 and 2, keyed on time and kind.
Unit confusion is checked on the values as declared, before conversion (:func:`check_units`).
"""

from __future__ import annotations

import bisect
import itertools
import json
import math
import os
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import TypeVar
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import numpy as np
import pandas as pd

from medtwin.errors import ConfigurationError, DataFormatError, ParameterError, UnitError
from medtwin.history import DataIssue, PatientHistory

__all__ = [
    "HIGH_MG_DL",
    "LOW_MG_DL",
    "MAX_GAP_MIN",
    "PLAUSIBLE_MG_DL",
    "WARM_UP_MIN",
    "RawEvent",
    "RawReading",
    "Tally",
    "assemble_history",
    "check_units",
    "fail",
    "glucose_unit",
    "load_json",
    "parse_epoch_ms",
    "parse_number",
    "parse_time",
    "source_name",
    "time_zone",
]

PLAUSIBLE_MG_DL = (39.0, 401.0)
"""CGM readings outside this closed range (mg/dL) are excluded as implausible."""
LOW_MG_DL = 40.0
"""Value kept for a reading a sensor reports as "Low" (below its 40 mg/dL range)."""
HIGH_MG_DL = 400.0
"""Value kept for a reading a sensor reports as "High" (above its 400 mg/dL range)."""
MAX_GAP_MIN = 15.0
"""Longer intervals without a kept reading are reported as gaps."""
WARM_UP_MIN = 120.0
"""Readings this soon after a sensor start are excluded (Dexcom G6 warm-up is 2 h)."""

# Unit confusion: a reading below 25 "mg/dL" or above 40 "mmol/L" is the other unit in disguise.
_MG_DL_LOOKS_MMOL = 25.0
_MMOL_LOOKS_MG_DL = 40.0
_SUSPECT_SHARE = 0.1

_UNIT_ALIASES = {
    "mg/dl": "mg/dL",
    "mg/dL": "mg/dL",
    "mmol/l": "mmol/L",
    "mmol/L": "mmol/L",
    "mmol": "mmol/L",
}
_DATE_ONLY = re.compile(r"\d{4}-?\d{2}-?\d{2}")
_FALLBACK_TIME_FORMATS = ("%Y-%m-%d %H:%M:%S", "%Y-%m-%d %H:%M", "%Y-%m-%dT%H:%M")


@dataclass(frozen=True, slots=True)
class RawReading:
    """One CGM reading as read, in mg/dL, before the quality checks."""

    time: pd.Timestamp
    glucose_mg_dl: float
    where: str


@dataclass(frozen=True, slots=True)
class RawEvent:
    """One treatment event as read (``kind`` is bolus, basal or carbs), before the checks."""

    time: pd.Timestamp
    kind: str
    value: float
    where: str


@dataclass
class Tally:
    """Records set aside by type, reported as one ``skipped`` issue per type."""

    what: str
    counts: dict[str, int] = field(default_factory=dict)
    first: dict[str, str] = field(default_factory=dict)

    def add(self, kind: str, where: str) -> None:
        """Count one record of type ``kind`` found at ``where``."""
        self.counts[kind] = self.counts.get(kind, 0) + 1
        self.first.setdefault(kind, where)

    def issues(self) -> list[DataIssue]:
        """One issue per type, in the order first seen."""
        return [
            DataIssue(
                "skipped",
                f"{n} {self.what} of type {kind!r} carry no CGM, insulin or carbohydrate data "
                "the twin uses; not read",
                where=f"first at {self.first[kind]}",
            )
            for kind, n in self.counts.items()
        ]


def source_name(source: object, default: str) -> str:
    """The file name to quote in messages, or ``default`` for data passed in memory."""
    if isinstance(source, (str, os.PathLike)):
        return str(Path(source))
    return default


def fail(source: str, where: str, message: str) -> DataFormatError:
    """A :class:`DataFormatError` whose message starts with the file and the location."""
    # A JSON path follows the file name directly: entries.json[3].sgv
    joined = ", ".join(p for p in (source, where) if p)
    location = source + where if where.startswith("[") else joined
    return DataFormatError(f"{location}: {message}")


def load_json(path: str | os.PathLike[str]) -> object:
    """Parse a JSON file; a syntax error names the file, line and column."""
    source = str(Path(path))
    text = Path(path).read_text(encoding="utf-8-sig")
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise fail(
            source, f"line {exc.lineno}, column {exc.colno}", f"invalid JSON: {exc.msg}"
        ) from exc


def glucose_unit(units: str) -> str:
    """The UCUM code (``mg/dL`` or ``mmol/L``) for a glucose unit as readers accept it."""
    if isinstance(units, str) and units.strip() in _UNIT_ALIASES:
        return _UNIT_ALIASES[units.strip()]
    raise UnitError(f"glucose units must be 'mg/dL' or 'mmol/L', got {units!r}")


def time_zone(tz: str) -> ZoneInfo:
    """The IANA time zone ``tz`` (such as ``"Europe/Berlin"``), or a ConfigurationError."""
    try:
        return ZoneInfo(tz)
    except (ZoneInfoNotFoundError, ValueError, TypeError) as exc:
        raise ConfigurationError(
            f"unknown time zone {tz!r}; pass an IANA name such as 'UTC' or 'Europe/Berlin'"
        ) from exc


def parse_time(value: object, *, source: str, where: str, tz: ZoneInfo | None) -> pd.Timestamp:
    """An ISO 8601 date and time as a UTC timestamp.

    A time without a UTC offset is read in ``tz``; with ``tz=None`` it is an error.  In the hour a
    daylight-saving change repeats, local times are read as their first occurrence.
    """
    if not isinstance(value, str) or not value.strip():
        raise fail(source, where, f"expected a date and time, got {value!r}")
    text = value.strip()
    if _DATE_ONLY.fullmatch(text):
        raise fail(
            source, where, f"{text!r} has no time of day; expected e.g. 2026-01-01T08:00:00Z"
        )
    parsed: datetime | None = None
    try:
        parsed = datetime.fromisoformat(text)
    except ValueError:
        for fmt in _FALLBACK_TIME_FORMATS:
            try:
                parsed = datetime.strptime(text, fmt)
                break
            except ValueError:
                continue
    if parsed is None:
        raise fail(
            source, where, f"cannot read {text!r} as a time; expected ISO 8601 such as "
            "2026-01-01T08:00:00Z"
        )  # fmt: skip
    if parsed.tzinfo is None:
        if tz is None:
            raise fail(source, where, f"time {text!r} has no UTC offset; write e.g. ...T08:00:00Z")
        parsed = parsed.replace(tzinfo=tz)
    return pd.Timestamp(parsed).tz_convert("UTC")


def parse_epoch_ms(value: object, *, source: str, where: str) -> pd.Timestamp:
    """Milliseconds since 1970-01-01 UTC (Nightscout ``date``) as a UTC timestamp."""
    ms = parse_number(value, source=source, where=where)
    if ms < 1e11:  # before 1973: seconds (or nonsense) where milliseconds were expected
        raise fail(source, where, f"{value!r} is not a time in epoch milliseconds (too small)")
    return pd.Timestamp(round(ms), unit="ms", tz="UTC")


def parse_number(value: object, *, source: str, where: str) -> float:
    """A finite number from a JSON number or a numeric string."""
    if isinstance(value, bool) or value is None:
        raise fail(source, where, f"expected a number, got {value!r}")
    if isinstance(value, (int, float)):
        number = float(value)
    elif isinstance(value, str):
        try:
            number = float(value.strip())
        except ValueError:
            raise fail(source, where, f"cannot read {value!r} as a number") from None
    else:
        raise fail(source, where, f"expected a number, got {value!r}")
    if not math.isfinite(number):
        raise fail(source, where, f"{value!r} is not a finite number")
    return number


def check_units(values: Sequence[float], units: str, *, source: str) -> list[DataIssue]:
    """Detect glucose values declared in one unit that are plainly in the other.

    Declared mg/dL with a median below 25 and no value reaching 35, or declared mmol/L with a
    median above 40 and no value down to 25, raise :class:`~medtwin.errors.UnitError`.  When at
    least a tenth of the values look like the other unit, a ``unit_suspect`` issue is returned.
    """
    v = np.asarray(values, dtype=float)
    if v.size == 0:
        return []
    median = float(np.median(v))
    where = source
    if units == "mg/dL":
        if median < _MG_DL_LOOKS_MMOL and v.max() < 35.0:
            raise UnitError(
                f"{source}: glucose declared in mg/dL but all {v.size} values are below 35 "
                f"(median {median:g}): they look like mmol/L; read the data with units='mmol/L'"
            )
        odd = int((v < _MG_DL_LOOKS_MMOL).sum())
        other = "mmol/L"
    else:
        if median > _MMOL_LOOKS_MG_DL and v.min() > _MG_DL_LOOKS_MMOL:
            raise UnitError(
                f"{source}: glucose declared in mmol/L but all {v.size} values are above 25 "
                f"(median {median:g}): they look like mg/dL; read the data with units='mg/dL'"
            )
        odd = int((v > _MMOL_LOOKS_MG_DL).sum())
        other = "mg/dL"
    if odd and odd >= _SUSPECT_SHARE * v.size:
        return [
            DataIssue(
                "unit_suspect",
                f"{odd} of {v.size} values declared in {units} look like {other}; they are "
                "flagged implausible below, check the export's units",
                where=where,
            )
        ]
    return []


_Item = TypeVar("_Item", RawReading, RawEvent)


def _sorted(items: Sequence[_Item], what: str, issues: list[DataIssue]) -> list[_Item]:
    late = [b for a, b in itertools.pairwise(items) if b.time < a.time]
    if not late:
        return list(items)
    issues.append(
        DataIssue(
            "out_of_order",
            f"{len(late)} {what} earlier than the one before them; sorted by time",
            where=f"first at {late[0].where}",
            time=late[0].time,
        )
    )
    order = sorted(range(len(items)), key=lambda i: items[i].time)  # stable
    return [items[i] for i in order]


def _deduplicated(
    items: list[_Item], key: str, describe: str, issues: list[DataIssue]
) -> list[_Item]:
    kept: list[_Item] = []
    first: dict[tuple[pd.Timestamp, str], _Item] = {}
    for item in items:
        kind = item.kind if isinstance(item, RawEvent) else "cgm"
        value = getattr(item, key)
        seen = first.get((item.time, kind))
        if seen is None:
            first[(item.time, kind)] = item
            kept.append(item)
            continue
        what = describe if kind == "cgm" else kind
        if math.isclose(getattr(seen, key), value, rel_tol=1e-9, abs_tol=1e-9):
            issues.append(
                DataIssue(
                    "duplicate",
                    f"{what} {value:g} at {item.time} repeats {seen.where}; removed",
                    where=item.where,
                    time=item.time,
                )
            )
        else:
            issues.append(
                DataIssue(
                    "conflict",
                    f"{what} {value:g} at {item.time} differs from {getattr(seen, key):g} at "
                    f"{seen.where}; kept the first",
                    where=item.where,
                    time=item.time,
                )
            )
    return kept


def assemble_history(
    readings: Sequence[RawReading],
    events: Sequence[RawEvent] = (),
    *,
    issues: Iterable[DataIssue] = (),
    sensor_starts: Iterable[pd.Timestamp] = (),
    warm_up_min: float = WARM_UP_MIN,
    max_gap_min: float = MAX_GAP_MIN,
    source: str = "",
    patient_id: str = "",
) -> PatientHistory:
    """Apply the shared checks (see the module docstring) and build the :class:`PatientHistory`."""
    if not (warm_up_min >= 0 and math.isfinite(warm_up_min)):
        raise ConfigurationError(f"warm_up_min must be >= 0 minutes, got {warm_up_min}")
    if not (max_gap_min > 0 and math.isfinite(max_gap_min)):
        raise ConfigurationError(f"max_gap_min must be > 0 minutes, got {max_gap_min}")
    found = list(issues)

    kept = _sorted(readings, "CGM readings", found)
    kept = _deduplicated(kept, "glucose_mg_dl", "reading (mg/dL)", found)

    lo, hi = PLAUSIBLE_MG_DL
    plausible = []
    for r in kept:
        if lo <= r.glucose_mg_dl <= hi:
            plausible.append(r)
        else:
            found.append(
                DataIssue(
                    "implausible",
                    f"reading {r.glucose_mg_dl:g} mg/dL outside the plausible CGM range "
                    f"{lo:g}-{hi:g} mg/dL; excluded",
                    where=r.where,
                    time=r.time,
                )
            )

    starts = sorted(_utc(s) for s in sensor_starts)
    warm_up = pd.Timedelta(minutes=warm_up_min)
    settled = []
    for r in plausible:
        i = bisect.bisect_right(starts, r.time) - 1
        if i >= 0 and r.time - starts[i] < warm_up:
            found.append(
                DataIssue(
                    "warm_up",
                    f"reading {r.glucose_mg_dl:g} mg/dL {(r.time - starts[i]).total_seconds() / 60:g}"
                    f" min after the sensor start at {starts[i]} (warm-up {warm_up_min:g} min); "
                    "excluded",
                    where=r.where,
                    time=r.time,
                )
            )
        else:
            settled.append(r)

    for a, b in itertools.pairwise(settled):
        minutes = (b.time - a.time).total_seconds() / 60.0
        if minutes > max_gap_min:
            found.append(
                DataIssue(
                    "gap",
                    f"no reading for {minutes:g} min from {a.time} to {b.time}; not filled",
                    where=f"between {a.where} and {b.where}",
                    time=a.time,
                )
            )

    evs = _sorted(events, "treatment events", found)
    evs = _deduplicated(evs, "value", "", found)

    cgm = pd.DataFrame(
        {
            "time": _times([r.time for r in settled]),
            "glucose_mg_dl": np.array([r.glucose_mg_dl for r in settled], dtype=float),
        }
    )
    frame = pd.DataFrame(
        {
            "time": _times([e.time for e in evs]),
            "kind": pd.Series([e.kind for e in evs], dtype="str"),
            "value": np.array([e.value for e in evs], dtype=float),
        }
    )
    return PatientHistory.from_frames(
        cgm, frame, issues=tuple(found), patient_id=patient_id, source=source
    )


def _utc(time: object) -> pd.Timestamp:
    t = pd.Timestamp(time)  # type: ignore[arg-type]
    if t.tzinfo is None:
        raise ParameterError(f"sensor start {time!r} has no time zone; pass UTC timestamps")
    return t.tz_convert("UTC")


def _times(times: list[pd.Timestamp]) -> pd.DatetimeIndex:
    return pd.DatetimeIndex(times, dtype="datetime64[ns, UTC]")
