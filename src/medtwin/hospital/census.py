"""The live census: who is where in the hospital, kept from ADT events.

:class:`Census` applies :class:`~medtwin.hospital._records.ADTEvent` values (from HL7 v2 over
MLLP, an event-log CSV or FHIR Encounters) one at a time, in whatever order they arrive, and can
say at any moment who is in which unit and bed, since when, and how occupancy evolved.

What an event does
------------------
The census is event-sourced: it keeps every event of each visit ordered by when it happened
(``occurred_at``; at equal times A04, A01, A02, A08, A03, then cancels; then message id) and
derives the visit's state from that history, so the result does not depend on arrival order.

1. **Cancels** remove the event they cancel, as HL7 v2.5.1 chapter 3 defines them.  Each cancels
   the most recent earlier event of its kind that is still in effect:

   - A11 (cancel admit/visit): an A01 when its patient class (PV1-2) is I ("admitted"
     patients), an A04 when it is E or O ("non-admitted" patients), either when it has none;
   - A12 (cancel transfer): an A02 that moved the patient out of the A12's ``unit`` (PV1-3,
     "the location of the patient prior to the original transfer") into its ``prior_unit``;
     a location the A12 or the A02 leaves empty matches any;
   - A13 (cancel discharge): an A03 from the A13's ``unit`` (any, when either has none).

   A cancel that matches nothing yet changes nothing and is listed in :attr:`Census.issues`; it
   takes effect if the event it cancels arrives later (late delivery).
2. The events left are applied in order: A04, A01 and A02 put the patient in ``unit``/``bed``
   (an A02 of a visit never admitted starts it, with an issue); A03 ends the stay; A08 corrects
   the bed within the current unit (an A08 naming another unit moves no one: transfers are A02s).
   Patient class and acuity are those of the latest event that carries them.
3. ``arrived_at`` is the time of the visit's first location event; ``unit_since`` the first of
   the latest run of location events into the current unit with no discharge between (a bed
   move within a unit does not restart it).

Idempotence: a message id already applied with the same content (every field but
``recorded_at``) is a duplicate and changes nothing; the same message id with other content is
a :class:`~medtwin.errors.ConflictError`.  An event with a new message id but the same content as
one applied (a resend under a new MSH-10, a later version of a FHIR Encounter repeating its
history) is a duplicate too.

Nothing half-applies: an event is checked whole before anything changes, and a bad one raises
(:class:`~medtwin.errors.DataFormatError`, :class:`~medtwin.errors.ConflictError`) leaving the
census as it was.  Anomalies that are data rather than errors (two patients in one bed, a cancel
with nothing to cancel, a transfer from somewhere else than where the census has the patient)
are listed in :attr:`Census.issues`, recomputed as events arrive.

A census is not thread-safe: apply events from one thread (an asyncio MLLP server calls its
handler on the event loop, one message at a time).  Applying an event costs some ten
microseconds when it comes in order, and a replay of its visit (a handful of events) when it
comes late or is a cancel.
"""

from __future__ import annotations

import bisect
import dataclasses
from collections import Counter
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from types import MappingProxyType
from typing import Literal

import pandas as pd

from medtwin.errors import ConflictError, DataFormatError
from medtwin.hospital._records import ADT_EVENT_TYPES, ADTEvent, CensusSnapshot, Occupant

__all__ = ["Census", "CensusChange", "CensusIssue"]

_RANK = {"A04": 0, "A01": 1, "A02": 2, "A08": 3, "A03": 4, "A11": 5, "A12": 5, "A13": 5}
_MOVES = frozenset({"A01", "A02", "A04"})
_CANCELS = frozenset({"A11", "A12", "A13"})
_CLASSES = frozenset({"E", "I", "O"})
_A11_TARGETS: dict[str | None, tuple[str, ...]] = {
    "I": ("A01",),
    "E": ("A04",),
    "O": ("A04",),
    None: ("A01", "A04"),
}

Key = tuple[datetime, int, str]
Point = tuple[datetime, Occupant | None]


@dataclass(frozen=True, slots=True)
class CensusChange:
    """What applying one event did.

    ``status`` is ``"applied"`` or ``"duplicate"`` (nothing changed); ``before`` and ``after``
    are the visit's occupant (``None``: not in the hospital) before and after; ``late`` says the
    event occurred before an event of the visit already applied, so the visit's history was
    replayed; ``duplicate_of`` is the message id an event duplicates.
    """

    message_id: str
    visit_id: str
    status: Literal["applied", "duplicate"]
    before: Occupant | None = None
    after: Occupant | None = None
    late: bool = False
    duplicate_of: str | None = None

    @property
    def changed(self) -> bool:
        """Whether the visit's occupant changed (entered, left, moved, or an attribute)."""
        return self.before != self.after


@dataclass(frozen=True, slots=True)
class CensusIssue:
    """Something in the data to look at, not an error: the census carries on.

    ``kind`` is one of ``bed-conflict`` (two or more visits in one bed), ``unmatched-cancel``,
    ``no-arrival`` (a transfer of a visit with no A01/A04), ``location-mismatch`` (an A02 from
    another unit than the census has), ``update-elsewhere`` (an A08 naming another unit),
    ``not-present`` (a discharge of a visit not in the hospital).  An A08 of a visit not in the
    hospital (billing updates after discharge are common) updates its class and acuity quietly.
    """

    kind: str
    detail: str
    visit_ids: tuple[str, ...] = ()
    message_id: str | None = None


def _utc(when: datetime) -> datetime:
    return when if when.tzinfo is UTC else when.astimezone(UTC)


def _key(event: ADTEvent) -> Key:
    return (_utc(event.occurred_at), _RANK[event.event_type], event.message_id)


def _content(event: ADTEvent) -> tuple[object, ...]:
    return (
        event.visit_id,
        event.patient_id,
        event.event_type,
        _utc(event.occurred_at),
        event.unit,
        event.bed,
        event.prior_unit,
        event.prior_bed,
        event.patient_class,
        event.acuity,
        event.admission_type,
    )


class _Fold:
    """A visit's state, stepped through its events in effect (in time order)."""

    __slots__ = (
        "acuity",
        "arrived",
        "bed",
        "cls",
        "issues",
        "patient_id",
        "points",
        "present",
        "since",
        "unit",
        "visit_id",
    )

    def __init__(self, visit_id: str, patient_id: str) -> None:
        self.visit_id = visit_id
        self.patient_id = patient_id
        self.present = False
        self.unit: str | None = None
        self.bed: str | None = None
        self.since: datetime | None = None
        self.arrived: datetime | None = None
        self.cls: Literal["E", "I", "O"] | None = None
        self.acuity: str | None = None
        self.issues: list[CensusIssue] = []
        self.points: list[Point] = []

    def current(self) -> Occupant | None:
        return self.points[-1][1] if self.points else None

    def _issue(self, kind: str, detail: str, event: ADTEvent) -> None:
        self.issues.append(CensusIssue(kind, detail, (self.visit_id,), event.message_id))

    def step(self, event: ADTEvent) -> None:
        when = _utc(event.occurred_at)
        kind = event.event_type
        if event.patient_class is not None:
            self.cls = event.patient_class
        if event.acuity is not None:
            self.acuity = event.acuity
        if kind in _MOVES:
            if self.arrived is None:
                self.arrived = when
                if kind == "A02":
                    self._issue(
                        "no-arrival",
                        f"visit {self.visit_id} first seen on a transfer: arrival time unknown",
                        event,
                    )
            elif kind == "A02" and self.present and event.prior_unit not in (None, self.unit):
                self._issue(
                    "location-mismatch",
                    f"visit {self.visit_id}: transfer from {event.prior_unit} but the census has "
                    f"the patient in {self.unit}",
                    event,
                )
            if not self.present or event.unit != self.unit:
                self.since = when
            self.present = True
            self.unit, self.bed = event.unit, event.bed
        elif kind == "A03":
            if not self.present:
                self._issue(
                    "not-present", f"visit {self.visit_id}: discharge while not present", event
                )
            self.present = False
        elif kind == "A08" and event.unit is not None and self.present:
            if event.unit == self.unit:
                if event.bed is not None:
                    self.bed = event.bed
            else:
                self._issue(
                    "update-elsewhere",
                    f"visit {self.visit_id}: update names {event.unit} but the census has the "
                    f"patient in {self.unit} (a transfer needs an A02)",
                    event,
                )
        occupant = None
        if self.present:
            assert self.unit is not None and self.since is not None and self.arrived is not None
            occupant = Occupant(
                self.visit_id,
                self.patient_id,
                self.unit,
                self.bed,
                self.since,
                self.arrived,
                self.cls,
                self.acuity,
            )
        if self.points and self.points[-1][0] == when:
            self.points.pop()  # one state per time: the state after all its events
        if not self.points or self.points[-1][1] != occupant:
            self.points.append((when, occupant))


def _cancels(cancel: ADTEvent, target: ADTEvent) -> bool:
    kind = cancel.event_type
    if kind == "A11":
        return target.event_type in _A11_TARGETS[cancel.patient_class]
    if kind == "A12":
        return (
            target.event_type == "A02"
            and (
                cancel.unit is None or target.prior_unit is None or target.prior_unit == cancel.unit
            )
            and (cancel.prior_unit is None or target.unit == cancel.prior_unit)
        )
    return target.event_type == "A03" and (
        cancel.unit is None or target.unit is None or target.unit == cancel.unit
    )


class _Visit:
    """One visit's events (sorted) and the state they lead to."""

    __slots__ = ("events", "fold", "in_effect", "keys", "patient_id", "times", "visit_id")

    def __init__(self, visit_id: str, patient_id: str) -> None:
        self.visit_id = visit_id
        self.patient_id = patient_id
        self.events: list[ADTEvent] = []
        self.keys: list[Key] = []
        self.in_effect: list[ADTEvent] = []
        self.fold = _Fold(visit_id, patient_id)
        self.times: list[datetime] = []

    def add(self, event: ADTEvent) -> bool:
        """Insert ``event``; return whether it was late (the history was replayed)."""
        key = _key(event)
        at = bisect.bisect_right(self.keys, key)
        self.keys.insert(at, key)
        self.events.insert(at, event)
        if at == len(self.events) - 1 and event.event_type not in _CANCELS:
            # the common case, an event after all others: step on from the state reached
            self.in_effect.append(event)
            points = self.fold.points
            self.fold.step(event)
            if len(points) > len(self.times):
                self.times.append(points[-1][0])
            elif len(points) < len(self.times):
                self.times.pop()
            return False
        self.replay()
        return at != len(self.events) - 1

    def replay(self) -> None:
        kept: list[ADTEvent | None] = []
        unmatched: list[CensusIssue] = []
        for event in self.events:
            if event.event_type not in _CANCELS:
                kept.append(event)
                continue
            for j in range(len(kept) - 1, -1, -1):
                target = kept[j]
                if target is not None and _cancels(event, target):
                    kept[j] = None
                    break
            else:
                what = ADT_EVENT_TYPES[event.event_type]
                unmatched.append(
                    CensusIssue(
                        "unmatched-cancel",
                        f"visit {self.visit_id}: {event.event_type} ({what}) at "
                        f"{_utc(event.occurred_at).isoformat()} matches no earlier event in effect",
                        (self.visit_id,),
                        event.message_id,
                    )
                )
        self.in_effect = [e for e in kept if e is not None]
        self.fold = _Fold(self.visit_id, self.patient_id)
        for event in self.in_effect:
            self.fold.step(event)
        self.fold.issues[:0] = unmatched
        self.times = [t for t, _ in self.fold.points]

    def at(self, when: datetime) -> Occupant | None:
        i = bisect.bisect_right(self.times, when) - 1
        return self.fold.points[i][1] if i >= 0 else None


class Census:
    """The live census of one hospital, kept from ADT events (see the module docs).

    Examples
    --------
    >>> from datetime import UTC, datetime, timedelta
    >>> t = datetime(2026, 1, 5, 8, tzinfo=UTC)
    >>> census = Census()
    >>> _ = census.apply(ADTEvent("m1", "A04", t, "P1", "V1", unit="ED", bed="3",
    ...                           patient_class="E", acuity="2"))
    >>> late = ADTEvent("m3", "A02", t + timedelta(hours=6), "P1", "V1", unit="ICU", bed="1",
    ...                 prior_unit="MED", prior_bed="12")
    >>> census.apply(late).after.unit       # the admission to MED has not arrived yet
    'ICU'
    >>> change = census.apply(ADTEvent("m2", "A01", t + timedelta(hours=4), "P1", "V1",
    ...                                unit="MED", bed="12", prior_unit="ED", patient_class="I"))
    >>> change.late, change.after.unit, change.after.patient_class
    (True, 'ICU', 'I')
    >>> census.counts(), census.snapshot(at=t + timedelta(hours=5)).counts()
    ({'ICU': 1}, {'MED': 1})
    >>> census.apply(late).status            # the same message again
    'duplicate'
    """

    def __init__(self) -> None:
        self._by_id: dict[str, ADTEvent] = {}
        self._by_content: dict[tuple[object, ...], str] = {}
        self._visits: dict[str, _Visit] = {}
        self._current: dict[str, Occupant] = {}
        self._counts: Counter[str] = Counter()
        self._beds: dict[tuple[str, str], set[str]] = {}
        self._visit_issues: dict[str, tuple[CensusIssue, ...]] = {}
        self._now: datetime | None = None
        self.n_applied = 0
        self.n_duplicates = 0

    @classmethod
    def from_events(cls, events: Iterable[ADTEvent]) -> Census:
        """A census with ``events`` applied in the order given (the first bad one raises)."""
        census = cls()
        for event in events:
            census.apply(event)
        return census

    # -- applying events -----------------------------------------------------------------------

    def apply(self, event: ADTEvent) -> CensusChange:
        """Apply one event; return what changed, or that it was a duplicate.

        Raises
        ------
        DataFormatError
            The event is incomplete (an empty id, an A01/A02/A04 without a unit, a patient
            class other than E, I, O); nothing is applied.
        ConflictError
            The message id was applied with other content, or the visit belongs to another
            patient; nothing is applied.
        """
        self._check(event)
        seen = self._by_id.get(event.message_id)
        if seen is not None:
            if dataclasses.replace(seen, recorded_at=None) != dataclasses.replace(
                event, recorded_at=None
            ):
                raise ConflictError(
                    f"message {event.message_id} was applied with other content "
                    f"({_difference(seen, event)}); a correction needs a new message (an A08, "
                    "or a cancel and the corrected event)"
                )
            self.n_duplicates += 1
            return CensusChange(
                event.message_id, event.visit_id, "duplicate", duplicate_of=event.message_id
            )
        visit = self._visits.get(event.visit_id)
        if visit is not None and visit.patient_id != event.patient_id:
            raise ConflictError(
                f"message {event.message_id}: visit {event.visit_id} belongs to patient "
                f"{visit.patient_id}, not {event.patient_id}"
            )
        content = _content(event)
        same = self._by_content.get(content)
        self._by_id[event.message_id] = event
        if same is not None:
            self.n_duplicates += 1
            return CensusChange(event.message_id, event.visit_id, "duplicate", duplicate_of=same)
        self._by_content[content] = event.message_id
        if visit is None:
            visit = self._visits[event.visit_id] = _Visit(event.visit_id, event.patient_id)
        before = self._current.get(event.visit_id)
        late = visit.add(event)
        after = visit.fold.current()
        if after != before:
            self._move(event.visit_id, before, after)
        if visit.fold.issues:
            self._visit_issues[event.visit_id] = tuple(visit.fold.issues)
        else:
            self._visit_issues.pop(event.visit_id, None)
        when = _utc(event.occurred_at)
        if self._now is None or when > self._now:
            self._now = when
        self.n_applied += 1
        return CensusChange(event.message_id, event.visit_id, "applied", before, after, late)

    @staticmethod
    def _check(event: ADTEvent) -> None:
        if not isinstance(event, ADTEvent):
            raise DataFormatError(f"expected an ADTEvent, got {type(event).__name__}")
        who = f"message {event.message_id!r}"
        for name in ("message_id", "patient_id", "visit_id"):
            value = getattr(event, name)
            if not isinstance(value, str) or not value.strip():
                raise DataFormatError(f"{who}: {name} is empty")
        if event.event_type in _MOVES and not event.unit:
            raise DataFormatError(
                f"{who}: an {event.event_type} ({ADT_EVENT_TYPES[event.event_type]}) needs the "
                "unit the patient is in"
            )
        if event.patient_class is not None and event.patient_class not in _CLASSES:
            raise DataFormatError(
                f"{who}: patient_class must be 'E', 'I' or 'O', got {event.patient_class!r}"
            )

    def _move(self, visit_id: str, before: Occupant | None, after: Occupant | None) -> None:
        if before is not None:
            self._counts[before.unit] -= 1
            if not self._counts[before.unit]:
                del self._counts[before.unit]
            if before.bed is not None:
                holders = self._beds[(before.unit, before.bed)]
                holders.discard(visit_id)
                if not holders:
                    del self._beds[(before.unit, before.bed)]
            del self._current[visit_id]
        if after is not None:
            self._counts[after.unit] += 1
            if after.bed is not None:
                self._beds.setdefault((after.unit, after.bed), set()).add(visit_id)
            self._current[visit_id] = after

    # -- reading the census --------------------------------------------------------------------

    @property
    def now(self) -> datetime | None:
        """The latest ``occurred_at`` applied: the time the census is up to (``None`` if empty)."""
        return self._now

    @property
    def occupants(self) -> Mapping[str, Occupant]:
        """Who is in the hospital now, by visit id (a read-only live view)."""
        return MappingProxyType(self._current)

    def __len__(self) -> int:
        return len(self._current)

    def __contains__(self, visit_id: object) -> bool:
        return visit_id in self._current

    def snapshot(self, at: datetime | None = None) -> CensusSnapshot:
        """Who is where at ``at`` (timezone-aware), or now: the state a forecast starts from.

        A past time is answered from every event known now (event-sourced): an event cancelled
        since never happened, a late event counts from when it occurred.  ``None`` means the
        state after every event (labelled :attr:`now`, or the wall clock for an empty census).
        Occupants are ordered by unit, then visit id.
        """
        if at is None:
            found: Iterable[Occupant] = self._current.values()
            label = self._now or datetime.now(UTC)
        else:
            if at.tzinfo is None:
                raise ValueError(f"at={at!r} must be timezone-aware")
            label = _utc(at)
            found = (o for o in (v.at(label) for v in self._visits.values()) if o is not None)
        ordered = tuple(sorted(found, key=lambda o: (o.unit, o.visit_id)))
        return CensusSnapshot(label, ordered)

    def counts(self, at: datetime | None = None) -> dict[str, int]:
        """Patients per unit now (or at ``at``), units sorted by name."""
        if at is None:
            return dict(sorted(self._counts.items()))
        return self.snapshot(at).counts()

    def beds(self) -> dict[str, dict[str, tuple[str, ...]]]:
        """Occupied beds now: unit -> bed -> the visit ids in it (more than one is a conflict)."""
        out: dict[str, dict[str, tuple[str, ...]]] = {}
        for (unit, bed), holders in sorted(self._beds.items()):
            out.setdefault(unit, {})[bed] = tuple(sorted(holders))
        return out

    @property
    def issues(self) -> list[CensusIssue]:
        """What to look at now: bed conflicts, then each visit's anomalies (by visit id)."""
        out = [
            CensusIssue(
                "bed-conflict",
                f"bed {bed} of {unit} holds {len(holders)} visits: {', '.join(sorted(holders))}",
                tuple(sorted(holders)),
            )
            for (unit, bed), holders in sorted(self._beds.items())
            if len(holders) > 1
        ]
        for visit_id in sorted(self._visit_issues):
            out.extend(self._visit_issues[visit_id])
        return out

    def timeline(self, visit_id: str) -> list[tuple[datetime, Occupant | None]]:
        """A visit's state after each change, ``(time, occupant or None)``, oldest first.

        Raises
        ------
        KeyError
            No event of ``visit_id`` was applied.
        """
        return list(self._visits[visit_id].fold.points)

    def timelines(self) -> Iterator[tuple[str, list[tuple[datetime, Occupant | None]]]]:
        """``(visit_id, timeline)`` of every visit seen, in order of first appearance."""
        for visit_id, visit in self._visits.items():
            yield visit_id, list(visit.fold.points)

    def events(self, visit_id: str) -> list[ADTEvent]:
        """The events of a visit in effect (cancels and what they cancelled left out), in order."""
        return list(self._visits[visit_id].in_effect)

    def history(
        self,
        *,
        freq: str | None = None,
        start: datetime | None = None,
        end: datetime | None = None,
    ) -> pd.DataFrame:
        """Occupancy per unit over time, from every event known now.

        Without ``freq``: one row per time the occupancy changed (the counts from then on),
        indexed by UTC time, one column per unit.  With ``freq`` (a pandas frequency such as
        ``"1h"``): the occupancy at each time of a regular grid from ``start`` (default: the
        first event, floored to ``freq``) to ``end`` (default: :attr:`now`).  The value at a time
        counts the events that occurred at or before it, as :meth:`snapshot` does.
        """
        rows: list[tuple[datetime, str, int]] = []
        for visit in self._visits.values():
            previous: str | None = None
            for when, occupant in visit.fold.points:
                unit = occupant.unit if occupant is not None else None
                if unit != previous:
                    if previous is not None:
                        rows.append((when, previous, -1))
                    if unit is not None:
                        rows.append((when, unit, 1))
                    previous = unit
        if not rows:
            return pd.DataFrame(index=pd.DatetimeIndex([], tz=UTC, name="time"))
        frame = pd.DataFrame(rows, columns=["time", "unit", "change"])
        steps = frame.pivot_table(
            index="time", columns="unit", values="change", aggfunc="sum", fill_value=0
        )
        occupancy = steps.sort_index().cumsum()
        occupancy.index = pd.DatetimeIndex(occupancy.index, name="time").tz_convert(UTC)
        occupancy.columns.name = "unit"
        if freq is None:
            return occupancy.astype(int)
        first = pd.Timestamp(start) if start is not None else occupancy.index[0].floor(freq)
        last = pd.Timestamp(end if end is not None else self._now or datetime.now(UTC))
        grid = pd.date_range(first.tz_convert(UTC), last.tz_convert(UTC), freq=freq, name="time")
        sampled = occupancy.reindex(occupancy.index.union(grid)).ffill().fillna(0)
        return sampled.loc[grid].astype(int)


def _difference(old: ADTEvent, new: ADTEvent) -> str:
    fields = [
        f.name
        for f in dataclasses.fields(ADTEvent)
        if f.name != "recorded_at" and getattr(old, f.name) != getattr(new, f.name)
    ]
    return "differs in " + ", ".join(fields)
