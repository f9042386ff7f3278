"""A patient's recorded history: CGM readings, insulin and carbohydrate, with a data-quality report.

:class:`PatientHistory` is what readers in :mod:`medtwin.interop` produce and what calibration,
filters and twins consume.  Times are timezone-aware UTC timestamps; glucose is in mg/dL (converted
at the boundary by the reader); insulin boluses in U, basal rates in U/h, carbohydrate in g.

Nothing is dropped silently: every reading a reader set aside (a duplicate, an implausible value,
a sensor warm-up) and every gap is listed in :attr:`PatientHistory.issues` with where it came from.

>>> import pandas as pd
>>> h = PatientHistory.from_frames(
...     cgm=pd.DataFrame({"time": pd.to_datetime(["2026-01-01T00:00Z", "2026-01-01T00:05Z"]),
...                       "glucose_mg_dl": [110.0, 114.0]}),
...     events=pd.DataFrame({"time": pd.to_datetime(["2026-01-01T00:02Z"]), "kind": ["carbs"],
...                          "value": [30.0]}),
... )
>>> h.minutes(h.start).tolist(), h.schedule(h.start).events[0].value
([0.0, 5.0], 30.0)
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

import numpy as np
import pandas as pd

from medtwin.errors import ParameterError
from medtwin.simulate import Schedule

__all__ = ["EVENT_KINDS", "DataIssue", "PatientHistory"]

EVENT_KINDS = ("bolus", "basal", "carbs")
"""Event kinds and their units: bolus (U), basal (U/h from that time on), carbs (g)."""

IssueKind = Literal[
    "duplicate",
    "out_of_order",
    "implausible",
    "warm_up",
    "gap",
    "unit_suspect",
    "unknown_event",
    "conflict",
    "censored",
    "skipped",
]


@dataclass(frozen=True, slots=True)
class DataIssue:
    """One thing a reader noticed in the data, and what it did about it."""

    kind: IssueKind
    message: str
    where: str = ""
    time: pd.Timestamp | None = None


@dataclass(frozen=True)
class PatientHistory:
    """CGM readings and treatment events of one patient, sorted by time, with the issues found.

    ``cgm`` has columns ``time`` (UTC) and ``glucose_mg_dl``; ``events`` has ``time``, ``kind``
    (one of :data:`EVENT_KINDS`) and ``value`` (U, U/h or g).
    """

    cgm: pd.DataFrame
    events: pd.DataFrame
    issues: tuple[DataIssue, ...] = field(default_factory=tuple)
    patient_id: str = ""
    source: str = ""

    @classmethod
    def from_frames(
        cls,
        cgm: pd.DataFrame,
        events: pd.DataFrame | None = None,
        issues: tuple[DataIssue, ...] = (),
        patient_id: str = "",
        source: str = "",
    ) -> PatientHistory:
        """Validate and sort the frames (times made UTC, columns checked, values finite)."""
        cgm = _frame(cgm, ("time", "glucose_mg_dl"), "cgm")
        events = _frame(
            events if events is not None else pd.DataFrame({"time": [], "kind": [], "value": []}),
            ("time", "kind", "value"),
            "events",
        )
        bad_kind = sorted(set(events["kind"]) - set(EVENT_KINDS))
        if bad_kind:
            raise ParameterError(f"unknown event kinds {bad_kind}; expected {EVENT_KINDS}")
        if (events["value"] < 0).any():
            raise ParameterError("event values must be >= 0 (U, U/h or g)")
        return cls(cgm, events, tuple(issues), patient_id, source)

    @property
    def start(self) -> pd.Timestamp:
        """Time of the first reading or event."""
        return self._times().min()

    @property
    def end(self) -> pd.Timestamp:
        """Time of the last reading or event."""
        return self._times().max()

    def _times(self) -> pd.Series:
        times = pd.concat([self.cgm["time"], self.events["time"]], ignore_index=True)
        if times.empty:
            raise ParameterError("the history is empty")
        return times

    def minutes(self, origin: pd.Timestamp) -> np.ndarray:
        """CGM reading times in minutes since ``origin``."""
        return ((self.cgm["time"] - origin).dt.total_seconds() / 60.0).to_numpy(float)

    def glucose(self) -> np.ndarray:
        """CGM readings in mg/dL."""
        return self.cgm["glucose_mg_dl"].to_numpy(float)

    def between(self, start: pd.Timestamp, end: pd.Timestamp) -> PatientHistory:
        """Readings and events with ``start <= time < end``."""
        c = self.cgm[(self.cgm["time"] >= start) & (self.cgm["time"] < end)]
        e = self.events[(self.events["time"] >= start) & (self.events["time"] < end)]
        return PatientHistory(
            c.reset_index(drop=True), e.reset_index(drop=True), self.issues, self.patient_id,
            self.source,
        )  # fmt: skip

    def schedule(self, origin: pd.Timestamp, *, round_to_min: float = 1.0) -> Schedule:
        """The logged events as a :class:`~medtwin.simulate.Schedule` in minutes since ``origin``.

        Event times are rounded to the engine's input period (``round_to_min``); events before
        ``origin`` are left out (the state at ``origin`` already carries them).
        """
        s = Schedule()
        offsets = (self.events["time"] - origin).dt.total_seconds().to_numpy(float) / 60.0
        for minutes, kind, value in zip(
            offsets, self.events["kind"], self.events["value"].to_numpy(float), strict=True
        ):
            if minutes < 0:
                continue
            at = round(minutes / round_to_min) * round_to_min
            if kind == "carbs":
                s = s.meal(at, float(value))
            elif kind == "bolus":
                s = s.bolus(at, float(value))
            else:
                s = s.basal(at, float(value))
        return s

    def summary(self) -> str:
        """One line per kind of issue, for reports and the CLI."""
        lines = [
            f"{len(self.cgm)} CGM readings from {self.start} to {self.end}; "
            f"{int((self.events['kind'] == 'bolus').sum())} boluses, "
            f"{int((self.events['kind'] == 'carbs').sum())} carbohydrate entries"
        ]
        counts: dict[str, int] = {}
        for issue in self.issues:
            counts[issue.kind] = counts.get(issue.kind, 0) + 1
        lines += [f"  {kind}: {n}" for kind, n in sorted(counts.items())]
        return "\n".join(lines)


def _frame(df: pd.DataFrame, columns: tuple[str, ...], name: str) -> pd.DataFrame:
    missing = [c for c in columns if c not in df.columns]
    if missing:
        raise ParameterError(f"{name} frame lacks columns {missing}")
    out = df.loc[:, list(columns)].copy()
    times = pd.to_datetime(out["time"], utc=True)
    if times.isna().any():
        raise ParameterError(f"{name} has {int(times.isna().sum())} missing times")
    out["time"] = times
    value_col = columns[1] if name == "cgm" else "value"
    values = pd.to_numeric(out[value_col], errors="coerce").astype(float)
    if not np.isfinite(values.to_numpy()).all():
        raise ParameterError(f"{name} has non-numeric or non-finite {value_col} values")
    out[value_col] = values
    return out.sort_values("time", kind="stable").reset_index(drop=True)
