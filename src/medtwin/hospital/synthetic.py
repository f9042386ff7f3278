"""A synthetic ADT stream with its ground truth, to test a live census end to end.

:func:`synthetic_adt_stream` simulates a month of a mid-sized acute hospital (an emergency
department, medical, surgical and cardiology wards, an ICU and a day-surgery unit) from its own
patient timeline, not from the SimPy flow model, and writes what happened as HL7 v2.5.1 ADT
messages the way a real feed delivers them: with clerical errors that are cancelled and
corrected, and with messages resent or delivered late.

The hospital
------------
- ED arrivals follow a non-homogeneous Poisson process with the hour-of-day profile
  :data:`ED_ARRIVALS_BY_HOUR` (a night trough and a late-morning-to-evening plateau, as in
  published ED arrival curves); each gets an ESI triage level 1-5 (acuity).  The disposition
  depends on it: home after a few hours, admission to a ward, or to the ICU.
- Elective surgical and cardiology admissions arrive on weekdays 07:00-10:00; day cases
  (outpatients, class O) on weekdays 07:00-09:30 and leave the same day.
- Ward stays are log-normal; some patients deteriorate to the ICU and step down again, some move
  bed within their ward, some have their acuity updated.  Inpatients leave at hours drawn from
  :data:`DISCHARGES_BY_HOUR` (late morning to afternoon).
- Beds are assigned from each unit's free beds (:data:`UNITS` gives the counts); when a unit is
  full the patient waits without a bed (``bed`` is ``None``, a corridor or chair).

Errors, cancels and delivery
----------------------------
At rate ``cancel_rate`` (per opportunity) a clerk admits a patient to the wrong ward (an A01,
cancelled by an A11 before the correct A01), transfers a patient by mistake (an A02 to a unit
the patient never really goes to, cancelled by an A12; the correct transfer follows when one was
due), discharges too early (an A03 cancelled by an A13 before the real A03), or registers an
arrival that never was (an A04 cancelled by an A11).  Each message is delivered shortly after it
is recorded; a share ``disorder / 2`` of messages is delivered late (10 minutes to 8 hours, so
after messages that occurred after it) and another ``disorder / 2`` is resent (the same message,
same MSH-10, again later).

Ground truth
------------
The truth is defined from the generator's own records, never from :class:`~medtwin.hospital.
census.Census`: each message stands for a *step* of a visit's timeline, real (it happened) or
mistaken (it did not, and a cancel step names it).  After the first ``n`` deliveries the truth
is the state *implied by the set of distinct messages delivered so far*, for each visit:

1. the steps in effect are the delivered real and mistaken steps, minus the mistaken steps whose
   cancel has been delivered (a cancel delivered before its mistake cancels nothing yet);
2. the patient is present if the last of the location steps (arrival, admission, transfer) and
   discharge steps in effect is a location step; the unit and bed are that step's (an update
   step after it naming the same unit corrects the bed);
3. ``arrived_at`` is the time of the first location step in effect, ``unit_since`` the first of
   the last run of location steps into the current unit with no discharge between;
4. patient class and acuity are those of the latest step in effect that carries them.

This is what a reader of exactly those messages should believe, whatever order they came in.
Once every message is delivered, every mistake is cancelled (a mistake is only made if its cancel
falls inside the stream), so the truth at any time ``t`` is the real occupancy
(:meth:`SyntheticStream.occupancy_at`).

>>> stream = synthetic_adt_stream(days=1, seed=1)
>>> len(stream.deliveries) > 500, stream.n_late > 0, stream.n_resent > 0
(True, True, True)
>>> truth = list(stream.truth())
>>> truth[-1] == stream.truth_after(len(stream.deliveries))
True
"""

from __future__ import annotations

import heapq
import math
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta, tzinfo
from types import MappingProxyType
from typing import Literal
from zoneinfo import ZoneInfo

import numpy as np

from medtwin.hospital._records import ADTEvent, Occupant, PatientClass

__all__ = [
    "DISCHARGES_BY_HOUR",
    "ED_ARRIVALS_BY_HOUR",
    "UNITS",
    "Delivery",
    "Placement",
    "SyntheticStream",
    "SyntheticVisit",
    "synthetic_adt_stream",
]

UNITS: dict[str, int] = {"ED": 60, "MED": 300, "SURG": 160, "CARD": 100, "ICU": 40, "DAY": 30}
"""Beds per unit of the synthetic hospital."""
_WARDS = ("MED", "SURG", "CARD")
_INPATIENT_UNITS = ("MED", "SURG", "CARD", "ICU")

ED_ARRIVALS_BY_HOUR: tuple[float, ...] = (
    0.55, 0.45, 0.38, 0.33, 0.31, 0.34, 0.45, 0.68, 0.98, 1.25, 1.42, 1.48,
    1.45, 1.40, 1.38, 1.35, 1.32, 1.30, 1.28, 1.22, 1.10, 0.95, 0.80, 0.66,
)  # fmt: skip
"""Relative ED arrival rate by hour of day (00-23), scaled to mean 1 by the generator."""

DISCHARGES_BY_HOUR: tuple[float, ...] = (
    0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.02, 0.04, 0.09, 0.13,
    0.15, 0.15, 0.13, 0.10, 0.08, 0.05, 0.03, 0.02, 0.01, 0.0, 0.0, 0.0,
)  # fmt: skip
"""Share of inpatient discharges by hour of day (00-23)."""

_ESI = (("1", 0.01), ("2", 0.12), ("3", 0.45), ("4", 0.32), ("5", 0.10))
# disposition by triage level: P(ICU), P(ward); the rest go home
_DISPOSITION = {
    "1": (0.50, 0.45),
    "2": (0.10, 0.50),
    "3": (0.02, 0.33),
    "4": (0.0, 0.08),
    "5": (0.0, 0.02),
}
_WARD_SHARE = (0.55, 0.20, 0.25)  # MED, SURG, CARD from the ED
_WARD_LOS_H = {"MED": 84.0, "SURG": 72.0, "CARD": 60.0}  # medians
_MIN = 60
_HOUR = 3600
_DAY = 86400

StepKind = Literal["arrive", "move", "leave", "update", "cancel"]


@dataclass(frozen=True, slots=True)
class Placement:
    """Where a patient really was: ``unit`` (and ``bed``) from ``start`` to ``end``.

    ``end`` is ``None`` when the patient was still there when the stream ends.
    """

    unit: str
    bed: str | None
    start: datetime
    end: datetime | None


@dataclass(frozen=True, slots=True)
class SyntheticVisit:
    """One visit as it really happened (the generator's own record).

    ``placements`` are the bed-level stays (a move within a unit starts a new one); ``stays``
    the unit-level ones.  ``ghost`` visits never happened: an arrival registered in error and
    cancelled.  ``discharged_at`` is ``None`` when the visit continues past the stream's end.
    """

    visit_id: str
    patient_id: str
    route: Literal["ed", "elective", "day", "ghost"]
    arrived_at: datetime
    discharged_at: datetime | None
    placements: tuple[Placement, ...]
    ghost: bool = False

    @property
    def stays(self) -> tuple[Placement, ...]:
        """Unit-level stays: consecutive placements in one unit merged (bed: the first)."""
        out: list[Placement] = []
        for p in self.placements:
            if out and out[-1].unit == p.unit and out[-1].end == p.start:
                out[-1] = Placement(p.unit, out[-1].bed, out[-1].start, p.end)
            else:
                out.append(p)
        return tuple(out)


@dataclass(frozen=True, slots=True)
class Delivery:
    """One message as delivered, in delivery order.

    ``role`` says what the message stands for: a ``real`` event, a ``mistake`` (cancelled later
    in the stream) or the ``cancel`` of one.  ``resent`` marks a repeat of a message delivered
    before; ``late`` a message delivered after one that occurred after it.
    """

    index: int
    event: ADTEvent
    message: str
    role: Literal["real", "mistake", "cancel"]
    resent: bool
    late: bool
    delivered_at: datetime


@dataclass(slots=True)
class _Step:
    visit: int
    time: int  # seconds from the stream's start
    kind: StepKind
    event_type: str
    unit: str | None = None
    bed: str | None = None
    prior_unit: str | None = None
    prior_bed: str | None = None
    cls: PatientClass | None = None
    acuity: str | None = None
    admission_type: str | None = None
    mistaken: bool = False
    cancels: _Step | None = None
    number: int = -1  # message number, set when messages are written


@dataclass(slots=True)
class _Piece:
    unit: str
    start: int
    end: int | None
    kind: str  # how the patient got here: arrive, admit, transfer, bedmove
    bed: str | None = None
    void: bool = False  # a bed move that found no free bed: it did not happen


@dataclass(slots=True)
class _Plan:
    visit_id: str
    patient_id: str
    route: Literal["ed", "elective", "day", "ghost"]
    acuity: str | None
    admission_type: str
    pieces: list[_Piece] = field(default_factory=list)
    updates: list[tuple[int, str]] = field(default_factory=list)  # (time, new acuity)
    discharge: int | None = None
    admitted_at: int | None = None  # when the class became I (ED visits)
    steps: list[_Step] = field(default_factory=list)


@dataclass(frozen=True, slots=True)
class _Timeline:
    """The generator's records the truth is computed from."""

    steps: dict[str, list[_Step]]  # visit id -> its steps in time order
    step_of: list[_Step]  # delivery index -> the step its message stands for
    visit_ids: list[str]  # visit index -> id
    patient_ids: list[str]  # visit index -> patient


class SyntheticStream:
    """A delivered ADT stream and its ground truth (see :mod:`medtwin.hospital.synthetic`).

    ``start`` and ``end`` bound the stream; ``visits`` are what really happened; ``deliveries``
    the messages as delivered.
    """

    def __init__(
        self,
        start: datetime,
        end: datetime,
        visits: tuple[SyntheticVisit, ...],
        deliveries: tuple[Delivery, ...],
        timeline: _Timeline,
    ) -> None:
        self.start = start
        self.end = end
        self.visits = visits
        self.deliveries = deliveries
        self._timeline = timeline

    @property
    def messages(self) -> list[str]:
        """The HL7 v2 messages in delivery order."""
        return [d.message for d in self.deliveries]

    @property
    def events(self) -> list[ADTEvent]:
        """The events in delivery order (what parsing :attr:`messages` gives)."""
        return [d.event for d in self.deliveries]

    @property
    def n_resent(self) -> int:
        """Deliveries that repeat a message delivered before."""
        return sum(d.resent for d in self.deliveries)

    @property
    def n_late(self) -> int:
        """Deliveries that came after a message that occurred after them."""
        return sum(d.late for d in self.deliveries)

    @property
    def n_cancels(self) -> int:
        """Cancel messages (A11, A12, A13) in the stream, each counted once."""
        return sum(d.role == "cancel" and not d.resent for d in self.deliveries)

    def _time(self, seconds: int) -> datetime:
        return self.start + timedelta(seconds=seconds)

    def _implied(self, visit_id: str, delivered: set[int]) -> Occupant | None:
        """The visit's state implied by the delivered message numbers (rules 1-4)."""
        steps = self._timeline.steps[visit_id]
        cancelled = {
            id(s.cancels) for s in steps if s.cancels is not None and s.number in delivered
        }
        live = [
            s
            for s in steps
            if s.number in delivered and s.kind != "cancel" and id(s) not in cancelled
        ]
        places = [s for s in live if s.kind in ("arrive", "move", "leave")]
        if not places or places[-1].kind == "leave":
            return None
        here = places[-1]
        assert here.unit is not None
        since = here.time
        for s in reversed(places):
            if s.kind == "leave" or s.unit != here.unit:
                break
            since = s.time
        bed = here.bed
        for s in live:
            if s.time > here.time and s.kind == "update" and s.unit == here.unit and s.bed:
                bed = s.bed
        cls = next((s.cls for s in reversed(live) if s.cls is not None), None)
        acuity = next((s.acuity for s in reversed(live) if s.acuity is not None), None)
        first = next(s for s in live if s.kind in ("arrive", "move"))
        return Occupant(
            visit_id,
            self._timeline.patient_ids[steps[0].visit],
            here.unit,
            bed,
            self._time(since),
            self._time(first.time),
            cls,
            acuity,
        )

    def truth(self) -> Iterator[Mapping[str, Occupant]]:
        """The ground-truth census after each delivery, as ``visit id -> Occupant``.

        Yields one read-only view per delivery, of a mapping updated in place: read (or copy)
        each before asking for the next.
        """
        delivered: dict[str, set[int]] = {}
        state: dict[str, Occupant] = {}
        view = MappingProxyType(state)
        for step in self._timeline.step_of:
            visit_id = self._timeline.visit_ids[step.visit]
            numbers = delivered.setdefault(visit_id, set())
            if step.number not in numbers:
                numbers.add(step.number)
                occupant = self._implied(visit_id, numbers)
                if occupant is None:
                    state.pop(visit_id, None)
                else:
                    state[visit_id] = occupant
            yield view

    def truth_after(self, n: int) -> dict[str, Occupant]:
        """The ground-truth census after the first ``n`` deliveries, computed afresh."""
        delivered: dict[str, set[int]] = {}
        for step in self._timeline.step_of[:n]:
            delivered.setdefault(self._timeline.visit_ids[step.visit], set()).add(step.number)
        out = {}
        for visit_id, numbers in delivered.items():
            occupant = self._implied(visit_id, numbers)
            if occupant is not None:
                out[visit_id] = occupant
        return out

    def occupancy_at(self, at: datetime) -> dict[str, tuple[str, str | None]]:
        """Where each patient really was at ``at``: ``visit id -> (unit, bed)``."""
        out = {}
        for visit in self.visits:
            for p in visit.placements:
                if p.start <= at and (p.end is None or at < p.end):
                    out[visit.visit_id] = (p.unit, p.bed)
                    break
        return out


def synthetic_adt_stream(
    days: float = 30,
    *,
    seed: int = 0,
    start: datetime = datetime(2026, 1, 5, tzinfo=UTC),
    ed_arrivals_per_day: float = 285.0,
    electives_per_weekday: float = 55.0,
    day_cases_per_weekday: float = 20.0,
    cancel_rate: float = 0.03,
    disorder: float = 0.05,
    tz: str = "UTC",
) -> SyntheticStream:
    """Simulate ``days`` of a hospital's ADT feed (about 10,000 visits in 30 days by default).

    Parameters
    ----------
    days
        Length of the stream; visits arrive in ``[start, start + days)`` and only events before
        its end are sent (patients still in at the end stay in the census).
    seed
        The random seed: the same seed gives the same stream.
    start
        When the stream starts (timezone-aware); the hospital is empty then.
    ed_arrivals_per_day, electives_per_weekday, day_cases_per_weekday
        Mean arrivals: ED (every day, by :data:`ED_ARRIVALS_BY_HOUR`), elective inpatients and
        day cases (weekdays).
    cancel_rate
        Probability of a clerical error at each opportunity (an admission, an inpatient stay, a
        discharge; a quarter of it for ghost registrations per ED arrival).
    disorder
        Share of messages delivered out of order or resent (half each).
    tz
        Zone the HL7 messages write their times in (with the offset).

    Returns
    -------
    SyntheticStream
        ``deliveries`` (HL7 message and parsed-equivalent event, in delivery order), ``visits``
        (what really happened) and the ground truth after each delivery (:meth:`~SyntheticStream.
        truth`).
    """
    if start.tzinfo is None:
        raise ValueError("start must be timezone-aware")
    if not 0 <= cancel_rate <= 0.5 or not 0 <= disorder <= 0.5:
        raise ValueError("cancel_rate and disorder must be between 0 and 0.5")
    zone: tzinfo = UTC if tz == "UTC" else ZoneInfo(tz)
    rng = np.random.default_rng(seed)
    horizon = round(days * _DAY)
    gen = _Generator(rng, start.astimezone(UTC), horizon, cancel_rate)
    gen.arrivals(ed_arrivals_per_day, electives_per_weekday, day_cases_per_weekday)
    gen.assign_beds()
    gen.write_steps()
    gen.make_mistakes()
    return gen.deliver(disorder, zone)


def _lognormal_s(rng: np.random.Generator, median_h: float, sigma: float) -> int:
    return round(median_h * _HOUR * math.exp(sigma * rng.standard_normal()))


class _Generator:
    def __init__(
        self, rng: np.random.Generator, start: datetime, horizon: int, cancel_rate: float
    ) -> None:
        self.rng = rng
        self.start = start
        self.horizon = horizon
        self.cancel_rate = cancel_rate
        self.plans: list[_Plan] = []
        self._finished: list[tuple[int, str]] = []  # (discharge time, patient) for re-attenders
        self._n_patients = 0

    # -- real timelines ------------------------------------------------------------------------

    def _patient(self, when: int) -> str:
        if self._finished and self.rng.random() < 0.08:
            end, patient = self._finished[int(self.rng.integers(len(self._finished)))]
            if end < when:
                return patient
        self._n_patients += 1
        return f"P{self._n_patients:07d}"

    def _new(
        self,
        route: Literal["ed", "elective", "day", "ghost"],
        when: int,
        acuity: str | None,
        admission_type: str,
    ) -> _Plan:
        plan = _Plan(
            f"V{len(self.plans) + 1:08d}", self._patient(when), route, acuity, admission_type
        )
        self.plans.append(plan)
        return plan

    def _weekday(self, day: int) -> int:
        # weekday of the stream's day (0 = Monday)
        return (self.start + timedelta(days=day)).weekday()

    def arrivals(self, ed_per_day: float, electives: float, day_cases: float) -> None:
        rng = self.rng
        profile = np.asarray(ED_ARRIVALS_BY_HOUR)
        profile = profile / profile.mean()
        times: list[tuple[int, str]] = []
        n_days = math.ceil(self.horizon / _DAY)
        for day in range(n_days):
            base = day * _DAY
            for hour in range(24):
                for _ in range(rng.poisson(ed_per_day / 24 * profile[hour])):
                    times.append((base + hour * _HOUR + int(rng.integers(_HOUR)), "ed"))
            if self._weekday(day) < 5:
                for _ in range(rng.poisson(electives)):
                    times.append((base + 7 * _HOUR + int(rng.integers(3 * _HOUR)), "elective"))
                for _ in range(rng.poisson(day_cases)):
                    times.append((base + 7 * _HOUR + int(rng.integers(150 * _MIN)), "day"))
        times = sorted(t for t in times if t[0] < self.horizon)
        for when, route in times:
            if route == "ed":
                self._ed_visit(when)
            elif route == "elective":
                self._elective_visit(when)
            else:
                plan = self._new("day", when, None, "C")
                plan.pieces.append(_Piece("DAY", when, None, "arrive"))
                plan.discharge = when + int(rng.integers(3 * _HOUR, 8 * _HOUR))
            plan = self.plans[-1]
            if plan.discharge is not None:
                self._finished.append((plan.discharge, plan.patient_id))
        # ghost registrations: arrivals entered in error
        # (an hour before the end at the latest, so that the cancel is in the stream)
        n_ghosts = rng.binomial(len(times), self.cancel_rate / 4) if self.horizon > _HOUR else 0
        for when in sorted(int(t) for t in rng.integers(0, self.horizon - _HOUR, n_ghosts)):
            ghost = self._new("ghost", when, str(rng.choice(["2", "3", "4"])), "E")
            ghost.pieces.append(_Piece("ED", when, None, "arrive"))

    def _ed_visit(self, when: int) -> None:
        rng = self.rng
        acuity = str(rng.choice([a for a, _ in _ESI], p=[p for _, p in _ESI]))
        plan = self._new("ed", when, acuity, "E")
        plan.pieces.append(_Piece("ED", when, None, "arrive"))
        p_icu, p_ward = _DISPOSITION[acuity]
        u = rng.random()
        if u >= p_icu + p_ward:  # home
            ed_los = min(max(_lognormal_s(rng, 3.0, 0.6), 20 * _MIN), 16 * _HOUR)
            if rng.random() < 0.05 and ed_los > 40 * _MIN:  # re-triaged
                plan.updates.append(
                    (
                        when + int(rng.integers(10 * _MIN, 30 * _MIN)),
                        _shift(acuity, int(rng.choice([-1, 1]))),
                    )
                )
            plan.discharge = when + ed_los
            return
        ed_los = min(max(_lognormal_s(rng, 5.0, 0.5), _HOUR), 24 * _HOUR)
        admit = when + ed_los
        plan.admitted_at = admit
        if u < p_icu:
            self._icu_course(plan, admit, "admit", step_down=rng.random() < 0.85)
        else:
            ward = str(rng.choice(_WARDS, p=_WARD_SHARE))
            self._ward_course(plan, ward, admit, "admit")

    def _elective_visit(self, when: int) -> None:
        rng = self.rng
        plan = self._new("elective", when, None, "C")
        ward = "SURG" if rng.random() < 0.7 else "CARD"
        if rng.random() < 0.06:  # post-operative ICU
            plan.pieces.append(_Piece(ward, when, None, "arrive"))
            icu_at = when + int(rng.integers(2 * _HOUR, 8 * _HOUR))
            self._icu_course(plan, icu_at, "transfer", step_down=True, ward=ward, median_h=20)
        else:
            self._ward_course(plan, ward, when, "arrive", median_h=48.0)

    def _ward_course(
        self, plan: _Plan, ward: str, when: int, how: str, median_h: float | None = None
    ) -> None:
        rng = self.rng
        los = min(max(_lognormal_s(rng, median_h or _WARD_LOS_H[ward], 0.7), 6 * _HOUR), 30 * _DAY)
        plan.pieces.append(_Piece(ward, when, None, how))
        if rng.random() < 0.08:  # acuity revised during the stay
            revised = _shift(plan.acuity or "3", int(rng.choice([-1, 1])))
            plan.updates.append((when + int(rng.uniform(0.1, 0.9) * los), revised))
        if rng.random() < 0.06:  # moved to another bed of the ward
            plan.pieces.append(
                _Piece(ward, when + int(rng.uniform(0.2, 0.7) * los), None, "bedmove")
            )
        if rng.random() < 0.05:  # deteriorates: to the ICU and back
            icu_at = when + int(rng.uniform(0.75, 0.95) * los)
            self._icu_course(plan, icu_at, "transfer", step_down=rng.random() < 0.9, ward=ward)
            return
        plan.discharge = self._discharge_time(when + los, plan.pieces[-1].start)

    def _icu_course(
        self,
        plan: _Plan,
        when: int,
        how: str,
        *,
        step_down: bool,
        ward: str | None = None,
        median_h: float = 48.0,
    ) -> None:
        rng = self.rng
        plan.pieces.append(_Piece("ICU", when, None, how))
        los = min(max(_lognormal_s(rng, median_h, 0.6), 4 * _HOUR), 20 * _DAY)
        if not step_down:
            plan.discharge = when + los
            return
        back = ward if ward is not None and rng.random() < 0.8 else str(rng.choice(_WARDS))
        plan.pieces.append(_Piece(back, when + los, None, "transfer"))
        rest = min(max(_lognormal_s(rng, 40.0, 0.6), 6 * _HOUR), 20 * _DAY)
        plan.discharge = self._discharge_time(when + los + rest, when + los)

    def _discharge_time(self, nominal: int, after: int) -> int:
        rng = self.rng
        weights = np.asarray(DISCHARGES_BY_HOUR)
        hour = int(rng.choice(24, p=weights / weights.sum()))
        moment = (nominal // _DAY) * _DAY + hour * _HOUR + int(rng.integers(_HOUR))
        while moment <= after + 2 * _HOUR:
            moment += _DAY
        return moment

    # -- beds ----------------------------------------------------------------------------------

    def assign_beds(self) -> None:
        """Give each placement a free bed of its unit, in time order (none when the unit is full)."""
        for plan in self.plans:
            for a, b in zip(plan.pieces, plan.pieces[1:], strict=False):
                a.end = b.start
            plan.pieces[-1].end = plan.discharge
        free = {unit: list(range(1, n + 1)) for unit, n in UNITS.items()}
        agenda: list[tuple[int, int, int, int]] = []  # (time, order, plan, piece)
        for p, plan in enumerate(self.plans):
            if plan.route == "ghost":
                continue
            for k, piece in enumerate(plan.pieces):
                agenda.append((piece.start, 1, p, k))
                if piece.end is not None:
                    moving = k + 1 < len(plan.pieces) and plan.pieces[k + 1].kind == "bedmove"
                    agenda.append((piece.end, 2 if moving else 0, p, k))
        agenda.sort()
        for _, order, p, k in agenda:
            pieces = self.plans[p].pieces
            piece = pieces[k]
            beds = free[piece.unit]
            if order == 1:  # arrive
                if beds:
                    piece.bed = _bed(piece.unit, heapq.heappop(beds))
                elif piece.kind == "bedmove":
                    piece.bed, piece.void = pieces[k - 1].bed, True
            else:  # leave
                if order == 2 and pieces[k + 1].void:
                    continue  # the bed move found no bed: the patient stays in this one
                if piece.bed is not None:
                    heapq.heappush(beds, int(piece.bed.rsplit("-", 1)[1]))
        for plan in self.plans:
            merged: list[_Piece] = []
            for piece in plan.pieces:
                if piece.void:
                    merged[-1].end = piece.end
                else:
                    merged.append(piece)
            plan.pieces = merged

    # -- steps (messages to be) ----------------------------------------------------------------

    def write_steps(self) -> None:
        horizon = self.horizon
        for v, plan in enumerate(self.plans):
            steps = plan.steps
            acuity_changes = sorted(plan.updates)

            def acuity_at(
                t: int, plan: _Plan = plan, changes: list[tuple[int, str]] = acuity_changes
            ) -> str | None:
                value = plan.acuity
                for when, new in changes:
                    if when <= t:
                        value = new
                return value

            def cls_at(t: int, plan: _Plan = plan) -> PatientClass:
                if plan.route == "day":
                    return "O"
                if plan.route == "elective":
                    return "I"
                return "I" if plan.admitted_at is not None and t >= plan.admitted_at else "E"

            previous: _Piece | None = None
            for piece in plan.pieces:
                if piece.start >= horizon:
                    break
                first = previous is None
                kind: StepKind = "arrive" if first else "move"
                if first:
                    event_type = "A01" if plan.route == "elective" else "A04"
                else:
                    event_type = "A01" if piece.kind == "admit" else "A02"
                steps.append(
                    _Step(
                        v,
                        piece.start,
                        kind,
                        event_type,
                        piece.unit,
                        piece.bed,
                        None if previous is None else previous.unit,
                        None if previous is None else previous.bed,
                        cls_at(piece.start),
                        acuity_at(piece.start),
                        plan.admission_type,
                    )
                )
                previous = piece
            for when, new in plan.updates:
                if when >= horizon or (plan.discharge is not None and when >= plan.discharge):
                    continue
                here = [p for p in plan.pieces if p.start <= when][-1]
                steps.append(
                    _Step(
                        v,
                        when,
                        "update",
                        "A08",
                        here.unit,
                        here.bed,
                        None,
                        None,
                        cls_at(when),
                        new,
                        plan.admission_type,
                    )
                )
            if plan.discharge is not None and plan.discharge < horizon and plan.route != "ghost":
                last = plan.pieces[-1]
                steps.append(
                    _Step(
                        v,
                        plan.discharge,
                        "leave",
                        "A03",
                        last.unit,
                        last.bed,
                        None,
                        None,
                        cls_at(plan.discharge),
                        acuity_at(plan.discharge),
                        plan.admission_type,
                    )
                )
            steps.sort(key=lambda s: s.time)
            times = [s.time for s in steps]
            if len(set(times)) != len(times):  # one event per second at most per visit
                for i in range(1, len(steps)):
                    if steps[i].time <= steps[i - 1].time:
                        steps[i].time = steps[i - 1].time + 1

    def make_mistakes(self) -> None:
        rng = self.rng
        rate = self.cancel_rate
        for plan in self.plans:
            steps = plan.steps
            if not steps:
                continue
            if plan.route == "ghost":
                arrive = steps[0]
                arrive.mistaken = True
                self._cancel(plan, arrive, arrive.time + int(rng.integers(5 * _MIN, _HOUR)))
                continue
            real = sorted(steps, key=lambda s: s.time)
            path = {s.unit for s in real if s.kind in ("arrive", "move")}
            wrong = [u for u in _INPATIENT_UNITS if u not in path]
            # a wrong admission, cancelled before the right one
            admit = next((s for s in real if s.event_type == "A01"), None)
            if admit is not None and wrong and rng.random() < rate:
                self._mistake_before(plan, admit, str(rng.choice(wrong)))
            # a transfer by mistake, in an inpatient stay
            # (an inpatient stay: from a location step to the next step, or to the stream's end)
            gaps = [
                (real[i], real[i + 1].time if i + 1 < len(real) else self.horizon)
                for i in range(len(real))
                if real[i].kind in ("arrive", "move") and real[i].unit in _INPATIENT_UNITS
            ]
            used_last = False
            if gaps and wrong and rng.random() < rate:
                here, until = gaps[int(rng.integers(len(gaps)))]
                used_last = until == real[-1].time
                self._mistaken_transfer(plan, here, until, str(rng.choice(wrong)))
            # an early discharge, cancelled before the real one
            leave = real[-1] if real[-1].kind == "leave" else None
            if leave is not None and len(real) > 1 and not used_last and rng.random() < rate:
                self._early_discharge(plan, leave)
            steps.sort(key=lambda s: s.time)

    def _gap(self, before: int, after: int) -> tuple[int, int] | None:
        """Times for a mistake and its cancel strictly between two events (None if too close)."""
        if after - before < 10 * _MIN:
            return None
        rng = self.rng
        wrong_at = before + int((after - before) * rng.uniform(0.3, 0.7))
        cancel_at = wrong_at + int((after - wrong_at) * rng.uniform(0.2, 0.8))
        if not before < wrong_at < cancel_at < after or cancel_at >= self.horizon:
            return None
        return wrong_at, cancel_at

    def _cancel(self, plan: _Plan, target: _Step, when: int) -> None:
        if when >= self.horizon:
            return
        kind = {"A01": "A11", "A04": "A11", "A02": "A12", "A03": "A13"}[target.event_type]
        cancel = _Step(
            target.visit,
            when,
            "cancel",
            kind,
            target.unit,
            target.bed,
            target.prior_unit,
            target.prior_bed,
            target.cls,
            target.acuity,
            target.admission_type,
            cancels=target,
        )
        if kind == "A12":  # PV1-3: where the patient returns to; PV1-6: the cancelled destination
            cancel.unit, cancel.bed = target.prior_unit, target.prior_bed
            cancel.prior_unit, cancel.prior_bed = target.unit, target.bed
        elif kind == "A13":
            cancel.prior_unit = cancel.prior_bed = None
        plan.steps.append(cancel)

    def _random_bed(self, unit: str) -> str:
        return _bed(unit, int(self.rng.integers(1, UNITS[unit] + 1)))

    def _mistake_before(self, plan: _Plan, admit: _Step, unit: str) -> None:
        before = [s.time for s in plan.steps if s.time < admit.time]
        earliest = max(before) if before else admit.time - int(self.rng.integers(30, 90)) * _MIN
        times = self._gap(earliest, admit.time)
        if times is None:
            return
        wrong = _Step(
            admit.visit,
            times[0],
            admit.kind,
            "A01",
            unit,
            self._random_bed(unit),
            admit.prior_unit,
            admit.prior_bed,
            "I",
            admit.acuity,
            admit.admission_type,
            mistaken=True,
        )
        plan.steps.append(wrong)
        self._cancel(plan, wrong, times[1])

    def _mistaken_transfer(self, plan: _Plan, here: _Step, until: int, unit: str) -> None:
        times = self._gap(here.time, until)
        if times is None:
            return
        # where the patient is during the gap: the last location step (updates may follow it)
        wrong = _Step(
            here.visit,
            times[0],
            "move",
            "A02",
            unit,
            self._random_bed(unit),
            here.unit,
            here.bed,
            here.cls,
            here.acuity,
            here.admission_type,
            mistaken=True,
        )
        plan.steps.append(wrong)
        self._cancel(plan, wrong, times[1])

    def _early_discharge(self, plan: _Plan, leave: _Step) -> None:
        before = max(s.time for s in plan.steps if s.time < leave.time and s.kind != "cancel")
        times = self._gap(before, leave.time)
        if times is None:
            return
        wrong = _Step(
            leave.visit,
            times[0],
            "leave",
            "A03",
            leave.unit,
            leave.bed,
            None,
            None,
            leave.cls,
            leave.acuity,
            leave.admission_type,
            mistaken=True,
        )
        plan.steps.append(wrong)
        self._cancel(plan, wrong, times[1])

    # -- messages and delivery -----------------------------------------------------------------

    def deliver(self, disorder: float, zone: tzinfo) -> SyntheticStream:
        # imported here: medtwin.interop imports medtwin.hospital (its ADTEvent), which may
        # re-export this module
        from medtwin.interop.hl7v2 import build_adt_message

        rng = self.rng
        start = self.start
        everything = sorted(
            (s for plan in self.plans for s in plan.steps), key=lambda s: (s.time, s.visit)
        )
        queue: list[tuple[int, int, _Step, bool]] = []  # (delivered at, order, step, resent)
        events: dict[int, ADTEvent] = {}
        texts: dict[int, str] = {}
        for number, step in enumerate(everything, 1):
            step.number = number
            plan = self.plans[step.visit]
            recorded = step.time + int(rng.integers(0, 30))
            event = ADTEvent(
                message_id=f"MSG{number:08d}",
                event_type=step.event_type,
                occurred_at=start + timedelta(seconds=step.time),
                patient_id=plan.patient_id,
                visit_id=plan.visit_id,
                unit=step.unit,
                bed=step.bed,
                prior_unit=step.prior_unit,
                prior_bed=step.prior_bed,
                patient_class=step.cls,
                acuity=step.acuity,
                admission_type=step.admission_type,
                recorded_at=start + timedelta(seconds=recorded),
            )
            events[number] = event
            texts[number] = build_adt_message(
                event, sending_application="SYNTHADT", sending_facility="HOSP", tz=zone
            )
            u = rng.random()
            delay = int(rng.integers(10 * _MIN, 8 * _HOUR)) if u < disorder / 2 else 0
            queue.append((recorded + delay, number, step, False))
            if disorder / 2 <= u < disorder:
                queue.append((recorded + int(rng.integers(_MIN, 4 * _HOUR)), number, step, True))
        queue.sort(key=lambda q: (q[0], q[1], q[3]))
        deliveries = []
        step_of = []
        latest: datetime | None = None
        for index, (at, number, step, resent) in enumerate(queue):
            event = events[number]
            late = latest is not None and event.occurred_at < latest
            latest = event.occurred_at if latest is None else max(latest, event.occurred_at)
            role: Literal["real", "mistake", "cancel"] = (
                "cancel" if step.kind == "cancel" else "mistake" if step.mistaken else "real"
            )
            deliveries.append(
                Delivery(
                    index, event, texts[number], role, resent, late, start + timedelta(seconds=at)
                )
            )
            step_of.append(step)
        timeline = _Timeline(
            {plan.visit_id: sorted(plan.steps, key=lambda s: s.time) for plan in self.plans},
            step_of,
            [plan.visit_id for plan in self.plans],
            [plan.patient_id for plan in self.plans],
        )
        visits = tuple(self._visit(plan) for plan in self.plans)
        return SyntheticStream(
            start, start + timedelta(seconds=self.horizon), visits, tuple(deliveries), timeline
        )

    def _visit(self, plan: _Plan) -> SyntheticVisit:
        start, horizon = self.start, self.horizon

        def at(t: int | None) -> datetime | None:
            return None if t is None or t >= horizon else start + timedelta(seconds=t)

        placements = tuple(
            Placement(p.unit, p.bed, start + timedelta(seconds=p.start), at(p.end))
            for p in plan.pieces
            if p.start < horizon and plan.route != "ghost"
        )
        return SyntheticVisit(
            plan.visit_id,
            plan.patient_id,
            plan.route,
            start + timedelta(seconds=plan.pieces[0].start),
            at(plan.discharge) if plan.route != "ghost" else None,
            placements,
            ghost=plan.route == "ghost",
        )


def _bed(unit: str, number: int) -> str:
    return f"{unit}-{number:03d}"


def _shift(acuity: str, by: int) -> str:
    return str(min(5, max(1, int(acuity) + by)))
