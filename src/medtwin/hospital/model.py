"""The hospital flow model: SimPy processes for ED attendances, bed stays and admissions.

Patients are generator functions, not objects with behaviour:

- :func:`_ed_visit`: arrival -> the steps of its class's pathway (each acquires resources in a
  priority queue, lower priority number first, FIFO within a priority) -> home, or decision to
  admit -> *boarding* (the patient keeps its ED cubicle until a bed is free) -> :func:`_stay`.
  A patient whose patience runs out while waiting for a ``renege`` step leaves without being
  seen (LWBS) and gives back what it held.
- :func:`_stay`: a bed stay of sampled length; then a transfer (the patient keeps its bed until
  a bed in the next unit is free: ICU step-down delays), or home at the next discharge window
  drawn from the hour-of-day profile (or, if a discharge lounge has a chair, to the lounge as
  soon as ready); the bed is then cleaned (turnaround) before the next patient gets it.
- :func:`_admission`: elective and direct admissions; electives are cancelled when no bed is
  free ``cancel_after_h`` after arrival.
- :func:`_roster`: capacity of a resource follows its shifts.  Capacity rises by granting queued
  requests; when it falls, staff finish the patient they are with (nobody in service is
  interrupted) and nobody new starts until the number busy is below the new capacity.

ED arrivals are a non-homogeneous Poisson process with rates piecewise constant by hour of the
week, generated exactly: in hour bin ``j`` the count is ``Poisson(lambda_j)`` and, given the
count, the times are independent uniforms in the bin (Lewis & Shedler 1979; Law, *Simulation
Modeling and Analysis*, 5th ed., §8.6).  A surge multiplies the rate by ``m`` over a window:
for ``m > 1`` the extra patients are an independent Poisson process of rate ``(m-1) lambda(t)``
(superposition), for ``m < 1`` each baseline arrival is kept with probability ``m`` (thinning),
so the baseline patients are the same patients in both runs.

Every random quantity of a patient (class, patience, activity times, admission and unit, length
of stay, discharge clock time, lounge eligibility) is drawn when it arrives, in arrival order,
from a stream of its own purpose (:mod:`medtwin.hospital._random`): common random numbers across
scenarios.  The clock is in minutes; event-driven throughout (no polling): time-weighted
levels are integrated at each change and read once an hour.
"""

from __future__ import annotations

import heapq
import math
from collections.abc import Generator, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from functools import partial
from typing import Any, cast

import numpy as np
import pandas as pd
import simpy

from medtwin.errors import ConfigurationError
from medtwin.hospital._random import Buffer, Streams
from medtwin.hospital._records import ADTEvent, CensusSnapshot, Occupant
from medtwin.hospital.spec import (
    WEEK_MIN,
    AcuityClass,
    Fixed,
    HospitalSpec,
    Step,
    clock_minutes,
    load_hospital,
    residual,
)

__all__ = ["OUTCOMES", "SOURCES", "SimulationRun", "simulate"]

Proc = Generator[Any, Any, None]

OUTCOMES = ("in_ed", "home", "admitted", "lwbs")
"""ED attendance outcomes, by code: still in the ED, discharged home, admitted, left unseen."""
IN_ED, HOME, ADMITTED, LWBS = range(4)

SOURCES = ("ed", "elective", "direct", "transfer", "census")
"""Where a bed stay came from, by code."""
SRC_ED, SRC_ELECTIVE, SRC_DIRECT, SRC_TRANSFER, SRC_CENSUS = range(5)

REFERENCE_MONDAY = datetime(2024, 1, 1)  # a Monday: the default calendar of a run
EMERGENCY_PRIORITY, ELECTIVE_PRIORITY, CENSUS_PRIORITY = 0, 1, -1


# -- time-weighted levels and resources -------------------------------------------------------


class _Level:
    """A time-weighted count (patients in the ED, busy doctors...): integrated at each change."""

    __slots__ = ("area", "env", "last", "name", "value")

    def __init__(self, env: simpy.Environment, name: str, value: float = 0.0) -> None:
        self.env = env
        self.name = name
        self.value = value
        self.area = 0.0
        self.last = 0.0

    def add(self, delta: float) -> None:
        now = self.env.now
        self.area += self.value * (now - self.last)
        self.last = now
        self.value += delta

    def area_to(self, now: float) -> float:
        return self.area + self.value * (now - self.last)


class _Grant:
    """A slot granted on the spot (see :meth:`ShiftResource.acquire`)."""

    __slots__ = ()
    triggered = True


class ShiftResource(simpy.PriorityResource):
    """A priority resource whose capacity can change during the run (shifts, bed changes).

    Raising the capacity grants queued requests at once; lowering it never interrupts a
    patient in service: requests are simply not granted until fewer than ``capacity`` are in
    use.  Capacity 0 is allowed (nobody on duty).
    """

    def __init__(self, env: simpy.Environment, name: str, capacity: int) -> None:
        super().__init__(env, capacity=max(int(capacity), 1))
        self._capacity = int(capacity)
        self.name = name
        self.busy = _Level(env, f"busy:{name}")
        self.queued = _Level(env, f"queue:{name}")
        self.cap = _Level(env, f"capacity:{name}", float(capacity))

    def acquire(self, priority: int = 0) -> Any:
        """A slot: granted on the spot if one is free and nobody is waiting, else queued.

        A slot granted on the spot is a plain token, not a SimPy ``Request`` event: most
        requests in a hospital run find a free slot, and skipping the event for them saves
        about a tenth of the run time.  A queued one is a ``PriorityRequest`` (yield it).
        """
        if len(self.users) < self._capacity and not self.put_queue:
            grant = _Grant()
            cast(Any, self.users).append(grant)
            return grant
        return self.request(priority=priority)

    def free(self, request: Any) -> None:
        """Give back a granted request and grant the next one in the queue, now.

        What :meth:`release` does, without scheduling a ``Release`` event (a patient never
        waits for its own release): about a fifth fewer events in a hospital run.
        """
        self.users.remove(request)
        self.busy.add(-1)
        self._trigger_put(None)

    def set_capacity(self, capacity: int) -> None:
        """Change the number of servers now (see the class docstring)."""
        grow = int(capacity) - int(self._capacity)
        self.cap.add(grow)
        self._capacity = int(capacity)
        for _ in range(grow):
            self._trigger_put(None)


# -- the compiled model ---------------------------------------------------------------------


@dataclass(slots=True)
class _StepC:
    name: str
    index: int  # column of the step in the wait/duration records (steps pooled by name)
    acquire: tuple[ShiftResource, ...]  # resources to get, in order (not already held)
    keep: frozenset[str]  # of those, the ones kept until the patient leaves the ED
    probability: float
    provider: bool
    renege: bool


@dataclass(slots=True)
class _ClassC:
    name: str
    index: int
    priority: int
    steps: tuple[_StepC, ...]
    step_specs: tuple[Step, ...]
    pathway: str
    spec: AcuityClass
    has_provider: bool
    resume_at: int  # where a patient already in the ED at a census resumes its pathway
    seize_all: tuple[ShiftResource, ...]


@dataclass(slots=True)
class _UnitC:
    name: str
    index: int
    n_beds: int
    beds: ShiftResource
    occ: _Level
    blocked: _Level
    cleaning: _Level
    waiting: _Level
    window: bool
    next_cum: np.ndarray
    next_index: tuple[int, ...]
    next_u: Buffer
    turnaround: Buffer | None
    los_mult: float
    los_dyn: dict[str, Buffer] = field(default_factory=dict)


class _Sim:
    """Everything one replication needs; the processes below read and write it."""

    def __init__(
        self,
        spec: HospitalSpec,
        *,
        horizon_min: float,
        seed: int,
        replication: int,
        offset_min: float,
        surge: tuple[float, float, float] | None,
        los_multiplier: Mapping[str, float],
        discharge_shift_min: float,
    ) -> None:
        self.spec = spec
        self.env = env = simpy.Environment()
        self.horizon = horizon_min
        self.offset = offset_min
        self.streams = Streams(seed, replication, 0)
        self.seed, self.replication = seed, replication
        self.surge = surge
        self.discharge_shift = discharge_shift_min
        profile = np.asarray(spec.discharge.hour_profile, dtype=float)
        self.discharge_cum = np.cumsum(profile / profile.sum())
        self.discharge_cum[-1] = 1.0
        self.in_ed = _Level(env, "ed")
        self.waiting = _Level(env, "waiting")
        self.boarding = _Level(env, "boarding")
        self.lounge = _Level(env, "lounge")
        lounge = spec.lounge
        self.lounge_cap = lounge.capacity if lounge else 0
        self.lounge_eligible = lounge.eligible if lounge else 0.0
        self.lounge_open = clock_minutes(lounge.opens) if lounge else 0
        self.lounge_close = clock_minutes(lounge.closes) if lounge else 0
        self.lounge_gain = lounge.min_gain_h * 60 if lounge else 0.0
        self._compile_ed()
        self._compile_units(los_multiplier)
        # records of bed stays (appended) and cancelled admissions
        self.stay_cols: dict[str, list[float]] = {
            k: []
            for k in (
                "unit",
                "source",
                "key",
                "t_request",
                "t_in",
                "t_ready",
                "t_out",
                "dest",
                "lounge",
            )
        }
        self.cancelled: list[tuple[int, float]] = []
        self.key_names: list[str] = [*self.class_names, *spec.admissions, ""]
        self.census_ed: list[Occupant] = []

    # -- compilation -------------------------------------------------------------------

    def _compile_ed(self) -> None:
        ed = self.spec.ed
        self.resources: dict[str, ShiftResource] = {}
        self.schedules: dict[str, tuple[np.ndarray, np.ndarray]] = {}
        self.classes: list[_ClassC] = []
        self.class_names: list[str] = []
        self.step_names: list[str] = []
        if ed is None:
            return
        env = self.env
        for rname, r in ed.resources.items():
            times, levels = r.schedule()
            at = _week_level(times, levels, self.offset)
            self.resources[rname] = ShiftResource(env, rname, at)
            self.schedules[rname] = (times, levels)
        for steps in ed.pathways.values():
            for st in steps:
                if st.name not in self.step_names:
                    self.step_names.append(st.name)
        for ci, (cname, k) in enumerate(ed.classes.items()):
            held: set[str] = set()
            compiled = []
            for st in ed.pathways[k.pathway]:
                acquire = [r for r in (*st.seize, *st.use) if r not in held]
                acquire = list(dict.fromkeys(acquire))
                keep = frozenset(r for r in st.seize if r not in held)
                compiled.append(
                    _StepC(
                        st.name,
                        self.step_names.index(st.name),
                        tuple(self.resources[r] for r in acquire),
                        keep,
                        st.probability_by_class.get(cname, st.probability),
                        st.provider,
                        st.renege,
                    )
                )
                held |= set(st.seize)
            steps_ = ed.pathways[k.pathway]
            resume = next(
                (i for i, s in enumerate(steps_) if s.provider),
                next((i for i, s in enumerate(steps_) if s.seize), 0),
            )
            seize_all = tuple(dict.fromkeys(r for s in steps_ for r in s.seize))
            self.classes.append(
                _ClassC(
                    cname,
                    ci,
                    k.priority,
                    tuple(compiled),
                    tuple(steps_),
                    k.pathway,
                    k,
                    any(s.provider for s in steps_),
                    resume,
                    tuple(self.resources[r] for r in seize_all),
                )
            )
            self.class_names.append(cname)

    def _compile_units(self, los_multiplier: Mapping[str, float]) -> None:
        env = self.env
        spec = self.spec
        self.units: list[_UnitC] = []
        self.unit_index = {u: i for i, u in enumerate(spec.units)}
        for i, (uname, u) in enumerate(spec.units.items()):
            rng_next = self.streams(f"next/{uname}")
            turnaround = u.turnaround or spec.turnaround
            turn = None
            if turnaround is not None:
                rng_t = self.streams(f"turnaround/{uname}")
                turn = Buffer(partial(turnaround.sample, rng_t))
            probs = np.array(list(u.next.values()), dtype=float)
            self.units.append(
                _UnitC(
                    uname,
                    i,
                    u.beds,
                    ShiftResource(env, uname, u.beds),
                    _Level(env, f"occupied:{uname}"),
                    _Level(env, f"blocked:{uname}"),
                    _Level(env, f"cleaning:{uname}"),
                    _Level(env, f"bed_queue:{uname}"),
                    u.discharge_window,
                    np.cumsum(probs),
                    tuple(self.unit_index[v] for v in u.next),
                    Buffer(rng_next.random),
                    turn,
                    float(los_multiplier.get(uname, 1.0)),
                )
            )

    def levels(self) -> list[_Level]:
        out = [self.in_ed, self.waiting, self.boarding]
        for r in self.resources.values():
            out += [r.busy, r.queued, r.cap]
        for u in self.units:
            out += [u.occ, u.blocked, u.cleaning, u.waiting]
        if self.spec.lounge is not None:
            out.append(self.lounge)
        return out

    # -- helpers used by the processes -------------------------------------------------

    def los_for(self, unit: _UnitC, key: str) -> Any:
        spec_u = self.spec.units[unit.name]
        return spec_u.los_by_class.get(key, spec_u.los)

    def dynamic_los(self, unit: _UnitC, key: str) -> float:
        """Length of stay after a transfer (drawn as transfers happen, from its own stream)."""
        buf = unit.los_dyn.get(key)
        if buf is None:
            rng = self.streams(f"los-transfer/{unit.name}/{key}")
            buf = unit.los_dyn[key] = Buffer(partial(self.los_for(unit, key).sample, rng))
        return buf() * unit.los_mult

    def discharge_clock(self, u_hour: float, u_minute: float) -> float:
        """Clock time (minutes after midnight) of a discharge window, by inversion."""
        return float(self.discharge_clocks(np.array([u_hour]), np.array([u_minute]))[0])

    def discharge_clocks(self, u_hour: np.ndarray, u_minute: np.ndarray) -> np.ndarray:
        """Vectorised :meth:`discharge_clock`: the hour from the profile, the minute uniform."""
        h = np.minimum(np.searchsorted(self.discharge_cum, u_hour, side="right"), 23)
        return (h + u_minute) * 60.0

    def discharge_at(self, ready: float, clock: float) -> float:
        """When a patient medically ready at ``ready`` goes home.

        At the first time at or after ``ready`` whose local clock time is ``clock``, moved by
        the scenario's ``discharge_shift_h`` (earlier, but never before ``ready``).
        """
        tod = (self.offset + ready) % 1440.0
        out = ready + (clock - tod) % 1440.0
        return max(ready, out + self.discharge_shift) if self.discharge_shift else out

    def lounge_move(self, ready: float, out: float) -> float | None:
        """When a patient discharged at ``out`` may move to the lounge (None: it may not)."""
        day = out - (self.offset + out) % 1440.0
        opens, closes = day + self.lounge_open, day + self.lounge_close
        if not opens < out <= closes:
            return None
        move = max(ready, opens, self.env.now)
        return move if out - move >= self.lounge_gain else None

    def free_bed(self, unit: _UnitC, req: simpy.Resource) -> None:
        """The patient has left: clean the bed, then hand it to the next patient."""
        unit.occ.add(-1)
        d = unit.turnaround() if unit.turnaround is not None else 0.0
        if d <= 0:
            unit.beds.free(req)
            return
        unit.cleaning.add(1)
        ev = self.env.timeout(d)
        ev.callbacks.append(partial(_cleaned, unit, req))

    def new_stay(self, unit: int, source: int, key: int, t_request: float, t_in: float) -> int:
        c = self.stay_cols
        c["unit"].append(unit)
        c["source"].append(source)
        c["key"].append(key)
        c["t_request"].append(t_request)
        c["t_in"].append(t_in)
        c["t_ready"].append(math.nan)
        c["t_out"].append(math.nan)
        c["dest"].append(-2)
        c["lounge"].append(0)
        return len(c["unit"]) - 1

    def end_stay(
        self, i: int, ready: float, out: float, dest: int = -1, lounge: bool = False
    ) -> None:
        """Close stay ``i``: medically ready at ``ready``, left at ``out`` for unit ``dest``.

        ``dest`` -1 is home; -2 (in the records) means still there at the end.
        """
        c = self.stay_cols
        c["t_ready"][i] = ready
        c["t_out"][i] = out
        c["dest"][i] = dest
        c["lounge"][i] = int(lounge)


def _categorical(codes: np.ndarray, names: list[str]) -> Any:
    return cast(Any, pd.Categorical).from_codes(np.asarray(codes, dtype=np.int64), names)


def _cleaned(unit: _UnitC, req: Any, _event: simpy.Event) -> None:
    unit.cleaning.add(-1)
    unit.beds.free(req)


def _week_level(times: np.ndarray, levels: np.ndarray, week_minute: float) -> int:
    i = int(np.searchsorted(times, week_minute % WEEK_MIN, side="right")) - 1
    return int(levels[i])


# -- patients: cards drawn at arrival -------------------------------------------------------


@dataclass(slots=True)
class _Cards:
    """Everything random about the ED patients, drawn when they arrive (index = attendance)."""

    t: np.ndarray
    cls: np.ndarray
    cohort: np.ndarray
    t_list: list[float]
    cls_list: list[int]
    patience: list[float]
    durations: list[list[float]]
    step_u: list[list[float]]
    unit: np.ndarray  # -1: goes home
    los: list[float]
    clock: list[float]
    lounge_u: list[float]


def _nspp(
    rates: np.ndarray, offset: float, t0: float, t1: float, rng: np.random.Generator
) -> np.ndarray:
    """Arrival times in ``[t0, t1)`` of a Poisson process with hourly rates over the week.

    Exact for piecewise-constant rates: counts per (partial) hour bin are Poisson, times within a
    bin uniform given the count.
    """
    if t1 <= t0:
        return np.empty(0)
    w0, w1 = offset + t0, offset + t1
    bins = np.arange(math.floor(w0 / 60), math.ceil(w1 / 60))
    lo = np.maximum(bins * 60.0, w0)
    hi = np.minimum((bins + 1) * 60.0, w1)
    lam = rates[bins % 168] * (hi - lo) / 60.0
    counts = rng.poisson(lam)
    total = int(counts.sum())
    times = np.repeat(lo, counts) + rng.random(total) * np.repeat(hi - lo, counts)
    return np.sort(times) - offset


def _draw_ed(
    sim: _Sim,
    streams: Streams,
    t: np.ndarray,
    cls: np.ndarray | None = None,
    admit_forced: np.ndarray | None = None,
) -> dict[str, Any]:
    """Class, patience, activity times, admission, LOS and discharge draws of ED patients."""
    ed = sim.spec.ed
    assert ed is not None
    n = len(t)
    shares = np.array([k.share for k in ed.classes.values()], dtype=float)
    if cls is None:
        cum = np.cumsum(shares / shares.sum())
        u = streams("class").random(n)
        cls = np.minimum(np.searchsorted(cum, u, side="right"), len(shares) - 1)
    patience = np.full(n, math.inf)
    unit = np.full(n, -1)
    los = np.zeros(n)
    durations: list[list[float]] = [[] for _ in range(n)]
    step_u: list[list[float]] = [[] for _ in range(n)]
    for c in sim.classes:
        idx = np.flatnonzero(cls == c.index)
        m = len(idx)
        if m == 0:
            continue
        k = c.spec
        if k.patience is not None:
            patience[idx] = k.patience.sample(streams(f"patience/{c.name}"), m)
        cols_d, cols_u = [], []
        for st, sc in zip(c.step_specs, c.steps, strict=True):
            dist = st.duration_by_class.get(c.name, st.duration)
            cols_d.append(dist.sample(streams(f"service/{c.pathway}/{st.name}/{c.name}"), m))
            if sc.probability < 1:
                cols_u.append(streams(f"step/{c.pathway}/{st.name}/{c.name}").random(m))
            else:
                cols_u.append(np.zeros(m))
        rows_d = np.column_stack(cols_d).tolist() if cols_d else [[] for _ in range(m)]
        rows_u = np.column_stack(cols_u).tolist() if cols_u else [[] for _ in range(m)]
        for j, i in enumerate(idx.tolist()):
            durations[i] = rows_d[j]
            step_u[i] = rows_u[j]
        if k.admission is not None and sim.units:
            u2 = streams(f"admit/{c.name}").random((m, 2))
            admitted = u2[:, 0] < k.admission.probability
            if admit_forced is not None:
                admitted = admitted | admit_forced[idx]
            names = list(k.admission.units)
            cum = np.cumsum(list(k.admission.units.values()))
            pick = np.minimum(
                np.searchsorted(cum / cum[-1], u2[:, 1], side="right"), len(names) - 1
            )
            chosen = np.array([sim.unit_index[v] for v in names])[pick]
            unit[idx] = np.where(admitted, chosen, -1)
            # a LOS for every candidate unit keeps the draws aligned across scenarios
            for ui, name in enumerate(names):
                uc = sim.units[sim.unit_index[name]]
                draw = sim.los_for(uc, c.name).sample(streams(f"los/{name}/{c.name}"), m)
                sel = pick == ui
                los[idx[sel]] = draw[sel] * uc.los_mult
    d = streams("discharge").random((n, 3))
    clock = sim.discharge_clocks(d[:, 0], d[:, 1]).tolist()
    return {
        "cls": cls,
        "patience": patience.tolist(),
        "durations": durations,
        "step_u": step_u,
        "unit": unit,
        "los": los.tolist(),
        "clock": clock,
        "lounge_u": d[:, 2].tolist(),
    }


def _ed_cards(sim: _Sim) -> _Cards:
    """All ED arrivals of the run (baseline plus surge) with their draws, in arrival order."""
    ed = sim.spec.ed
    assert ed is not None
    rates = ed.arrivals.week_rates()
    t0 = _nspp(rates, sim.offset, 0.0, sim.horizon, sim.streams("arrivals"))
    drawn = [(t0, 0, _draw_ed(sim, sim.streams, t0))]
    if sim.surge is not None:
        m, a, b = sim.surge
        b = min(b, sim.horizon)
        if m < 1:  # thinning: every baseline patient is drawn, then some stay away
            keep = sim.streams("thinning").random(len(t0))
            mask = ~((t0 >= a) & (t0 < b)) | (keep < m)
            drawn = [(t0[mask], 0, _subset(drawn[0][2], mask))]
        elif m > 1:  # superposition: extra patients from streams of their own
            extra = Streams(sim.seed, sim.replication, 1)
            t1 = _nspp(rates * (m - 1), sim.offset, a, b, extra("arrivals"))
            drawn.append((t1, 1, _draw_ed(sim, extra, t1)))
    if len(drawn) == 1:
        t, _, d = drawn[0]
        return _make_cards(t, np.zeros(len(t), dtype=int), d)
    t_all = np.concatenate([p[0] for p in drawn])
    order = np.argsort(t_all, kind="stable")

    def cat(key: str) -> Any:
        if isinstance(drawn[0][2][key], np.ndarray):
            return np.concatenate([p[2][key] for p in drawn])[order]
        joined = [x for p in drawn for x in p[2][key]]
        return [joined[i] for i in order.tolist()]

    cohorts = np.concatenate([np.full(len(p[0]), p[1]) for p in drawn])[order]
    keys = ("cls", "patience", "durations", "step_u", "unit", "los", "clock", "lounge_u")
    return _make_cards(t_all[order], cohorts, {k: cat(k) for k in keys})


def _subset(d: dict[str, Any], mask: np.ndarray) -> dict[str, Any]:
    keep = np.flatnonzero(mask).tolist()
    return {k: v[mask] if isinstance(v, np.ndarray) else [v[i] for i in keep] for k, v in d.items()}


def _make_cards(t: np.ndarray, cohort: np.ndarray, d: dict[str, Any]) -> _Cards:
    cls = np.asarray(d["cls"], dtype=int)
    return _Cards(
        t,
        cls,
        cohort,
        t.tolist(),
        cls.tolist(),
        d["patience"],
        d["durations"],
        d["step_u"],
        np.asarray(d["unit"], dtype=int),
        d["los"],
        d["clock"],
        d["lounge_u"],
    )


# -- the processes -----------------------------------------------------------------------


class _Records:
    """Per-attendance records (index = attendance), preallocated."""

    def __init__(self, n: int, n_steps: int) -> None:
        self.t_seen = np.full(n, np.nan)
        self.t_dta = np.full(n, np.nan)
        self.t_dep = np.full(n, np.nan)
        self.outcome = np.zeros(n, dtype=np.int8)
        self.wait = np.full((n, n_steps), np.nan)
        self.duration = np.full((n, n_steps), np.nan)


def _ed_arrivals(sim: _Sim, cards: _Cards, rec: _Records, first: int) -> Proc:
    env = sim.env
    for i, t in enumerate(cards.t_list[first:], start=first):
        if t > env.now:
            yield env.timeout(t - env.now)
        env.process(_ed_visit(sim, cards, rec, i))


def _ed_visit(
    sim: _Sim, cards: _Cards, rec: _Records, i: int, first_step: int = 0, boarder: bool = False
) -> Proc:
    """One ED attendance: pathway steps, then home or boarding until a bed is free."""
    env = sim.env
    c = sim.classes[cards.cls_list[i]]
    census = bool(cards.cohort[i] == 2)  # counted in the levels already (see _load_census)
    waiting = c.has_provider and not boarder
    if not census:
        sim.in_ed.add(1)
        if waiting:
            sim.waiting.add(1)
    # patience counts from arrival; patients already in the ED at a census have stayed
    deadline = math.inf if census else cards.t_list[i] + cards.patience[i]
    durations, step_u = cards.durations[i], cards.step_u[i]
    prio = c.priority
    held: list[tuple[ShiftResource, Any]] = []
    if boarder:  # in the ED with a decision to admit: keeps a cubicle if one is free
        for res in c.seize_all:
            if len(res.users) < res.capacity:
                held.append((res, res.acquire(priority=CENSUS_PRIORITY)))
                res.busy.add(1)
    steps = () if boarder else c.steps[first_step:]
    for j, st in enumerate(steps, start=first_step):
        if st.probability < 1.0 and step_u[j] >= st.probability:
            continue
        t_wait = env.now
        got: list[tuple[ShiftResource, Any]] = []
        for res in st.acquire:
            req = res.acquire(priority=prio)
            if not req.triggered:
                res.queued.add(1)
                if st.renege and deadline < math.inf:
                    left = deadline - env.now
                    if left > 0:
                        yield req | env.timeout(left)
                    if not req.triggered:  # patience ran out: leaves without being seen
                        req.cancel()
                        res.queued.add(-1)
                        for r, q in got + held:
                            r.free(q)
                        if waiting:
                            sim.waiting.add(-1)
                        sim.in_ed.add(-1)
                        rec.t_dep[i] = env.now
                        rec.outcome[i] = LWBS
                        return
                else:
                    yield req
                res.queued.add(-1)
            res.busy.add(1)
            got.append((res, req))
        rec.wait[i, st.index] = env.now - t_wait
        if st.provider and waiting:
            rec.t_seen[i] = env.now
            sim.waiting.add(-1)
            waiting = False
        d = durations[j]
        rec.duration[i, st.index] = d
        if d > 0:
            yield env.timeout(d)
        for res, req in got:
            if res.name in st.keep:
                held.append((res, req))
            else:
                res.free(req)
    if waiting:
        sim.waiting.add(-1)
    u = int(cards.unit[i])
    if u < 0:
        for r, q in held:
            r.free(q)
        sim.in_ed.add(-1)
        rec.t_dep[i] = env.now
        rec.outcome[i] = HOME
        return
    unit = sim.units[u]
    t_dta = env.now
    rec.t_dta[i] = t_dta
    if not boarder:
        sim.boarding.add(1)
    bed = unit.beds.acquire(priority=EMERGENCY_PRIORITY)
    if not bed.triggered:
        unit.waiting.add(1)
        yield bed
        unit.waiting.add(-1)
    sim.boarding.add(-1)
    for r, q in held:
        r.free(q)
    sim.in_ed.add(-1)
    rec.t_dep[i] = env.now
    rec.outcome[i] = ADMITTED
    yield from _stay(
        sim, unit, bed, cards.los[i], c.index, cards.clock[i], cards.lounge_u[i], SRC_ED, t_dta
    )


def _stay(
    sim: _Sim,
    unit: _UnitC,
    bed: Any,
    los: float,
    key: int,
    clock: float,
    lounge_u: float,
    source: int,
    t_request: float,
    t_in: float | None = None,
    counted: bool = False,
    home: bool = False,
) -> Proc:
    """A bed stay: LOS, then a transfer (keeping the bed until the next is free) or home.

    ``home`` sends the patient home whatever the unit's transfer draw (a census patient already
    medically ready and waiting for its discharge window).
    """
    env = sim.env
    now = env.now
    t_in = now if t_in is None else t_in
    if not counted:
        unit.occ.add(1)
    stay = sim.new_stay(unit.index, source, key, t_request, t_in)
    ready = now + los
    nxt = -1
    if unit.next_index:
        u = unit.next_u()
        j = int(np.searchsorted(unit.next_cum, u, side="right"))
        nxt = unit.next_index[j] if j < len(unit.next_index) and not home else -1
    if nxt >= 0:
        if los > 0:
            yield env.timeout(los)
        dest = sim.units[nxt]
        bed2 = dest.beds.acquire(priority=EMERGENCY_PRIORITY)
        if not bed2.triggered:
            unit.blocked.add(1)
            dest.waiting.add(1)
            yield bed2
            dest.waiting.add(-1)
            unit.blocked.add(-1)
        sim.end_stay(stay, ready, env.now, dest=nxt)
        sim.free_bed(unit, bed)
        key_name = sim.key_names[key]
        los2 = sim.dynamic_los(dest, key_name)
        clock2 = sim.discharge_clock(dest.next_u(), dest.next_u())
        yield from _stay(sim, dest, bed2, los2, key, clock2, dest.next_u(), SRC_TRANSFER, ready)
        return
    out = sim.discharge_at(ready, clock) if unit.window else ready
    if sim.lounge_cap and lounge_u < sim.lounge_eligible:
        move = sim.lounge_move(ready, out)
        if move is not None:
            if move > env.now:
                yield env.timeout(move - env.now)
            if sim.lounge.value < sim.lounge_cap:
                sim.end_stay(stay, ready, env.now, lounge=True)
                sim.free_bed(unit, bed)
                sim.lounge.add(1)
                yield env.timeout(out - env.now)
                sim.lounge.add(-1)
                return
    if out > env.now:
        yield env.timeout(out - env.now)
    sim.end_stay(stay, ready, env.now)
    sim.free_bed(unit, bed)


def _admission(
    sim: _Sim,
    unit: _UnitC,
    key: int,
    elective: bool,
    cancel_min: float | None,
    los: float,
    clock: float,
    lounge_u: float,
    stream: int,
) -> Proc:
    """An elective or direct admission: wait for a bed (electives may be cancelled), then stay."""
    env = sim.env
    t0 = env.now
    bed = unit.beds.acquire(priority=ELECTIVE_PRIORITY if elective else EMERGENCY_PRIORITY)
    if not bed.triggered:
        unit.waiting.add(1)
        if cancel_min is not None:
            yield bed | env.timeout(cancel_min)
            if not bed.triggered:
                bed.cancel()
                unit.waiting.add(-1)
                sim.cancelled.append((stream, t0))
                return
        else:
            yield bed
        unit.waiting.add(-1)
    source = SRC_ELECTIVE if elective else SRC_DIRECT
    yield from _stay(sim, unit, bed, los, key, clock, lounge_u, source, t0)


def _admission_stream(sim: _Sim, s: int, name: str) -> Proc:
    """Scheduled admissions of one stream over the run (times drawn up front)."""
    env = sim.env
    spec = sim.spec.admissions[name]
    rng = sim.streams(f"admissions/{name}")
    a, b = (clock_minutes(x) for x in spec.between)
    first_day = math.floor(sim.offset / 1440)
    last_day = math.ceil((sim.offset + sim.horizon) / 1440)
    times: list[float] = []
    for day in range(first_day, last_day):
        mean = spec.per_weekday[day % 7]
        n = int(rng.poisson(mean)) if spec.poisson else int(mean)
        times.extend((day * 1440 + a + (b - a) * rng.random(n) - sim.offset).tolist())
    t = np.sort(np.asarray(times))
    t = t[(t >= 0) & (t < sim.horizon)]
    unit = sim.units[sim.unit_index[spec.unit]]
    los = sim.los_for(unit, name).sample(sim.streams(f"los/{spec.unit}/{name}"), len(t))
    d = sim.streams(f"discharge/{name}").random((len(t), 3))
    key = sim.key_names.index(name)
    cancel = spec.cancel_after_h * 60 if spec.cancel_after_h is not None else None
    for j, tj in enumerate(t.tolist()):
        if tj > env.now:
            yield env.timeout(tj - env.now)
        env.process(
            _admission(
                sim,
                unit,
                key,
                spec.elective,
                cancel,
                float(los[j]) * unit.los_mult,
                sim.discharge_clock(d[j, 0], d[j, 1]),
                float(d[j, 2]),
                s,
            )
        )


def _roster(sim: _Sim, res: ShiftResource, times: np.ndarray, levels: np.ndarray) -> Proc:
    """Follow the weekly capacity schedule of ``res`` (one event per change)."""
    env = sim.env
    n = len(times)
    w = sim.offset % WEEK_MIN
    i = int(np.searchsorted(times, w, side="right")) - 1
    while True:
        j = (i + 1) % n
        gap = (times[j] - w) % WEEK_MIN
        yield env.timeout(gap if gap > 0 else WEEK_MIN)
        w = times[j]
        res.set_capacity(int(levels[j]))
        i = j


def _monitor(sim: _Sim, levels: list[_Level], values: np.ndarray, areas: np.ndarray) -> Proc:
    """Read every level on the hour (its value, and its integral so far)."""
    env = sim.env
    for k in range(values.shape[0] - 1):
        now = env.now
        for j, lv in enumerate(levels):
            values[k, j] = lv.value
            areas[k, j] = lv.area_to(now)
        yield env.timeout(60.0)


# -- loading a census ----------------------------------------------------------------------


def _minutes(delta: timedelta) -> float:
    return delta.total_seconds() / 60.0


def _class_of(sim: _Sim, occ: Occupant) -> int | None:
    if occ.acuity is None or sim.spec.ed is None:
        return None
    for c in sim.classes:
        if occ.acuity == c.name or occ.acuity in c.spec.codes:
            return c.index
    return None


def _load_census(
    sim: _Sim, snapshot: CensusSnapshot, cards: _Cards, rec: _Records, n_census_ed: int
) -> None:
    """Put the patients of a census in their beds and cubicles at time 0."""
    names = sim.spec.unit_names()
    ed_name = sim.spec.ed.name if sim.spec.ed else None
    init = Streams(sim.seed, sim.replication, 2)
    # ED patients: attendances 0..n_census_ed-1 (cards drawn by the caller)
    # levels count the census now, before anything at time 0 moves, so that the hour-0 census
    # of a run is the snapshot itself
    for i in range(n_census_ed):
        occ = sim.census_ed[i]
        boarder = occ.patient_class == "I"
        c = sim.classes[cards.cls[i]]
        sim.in_ed.add(1)
        if boarder:
            sim.boarding.add(1)
        elif c.has_provider:
            sim.waiting.add(1)
        sim.env.process(_ed_visit(sim, cards, rec, i, first_step=c.resume_at, boarder=boarder))
    # inpatients, grouped by (unit, class) so that residual stays are drawn in one go
    groups: dict[tuple[int, int], list[Occupant]] = {}
    for occ in snapshot.occupants:
        unit_name = names[occ.unit]
        if unit_name == ed_name:
            continue
        u = sim.unit_index[unit_name]
        key = _class_of(sim, occ)
        if key is None and occ.acuity in sim.spec.admissions:
            key = sim.key_names.index(occ.acuity)
        groups.setdefault((u, len(sim.key_names) - 1 if key is None else key), []).append(occ)
    counts = np.bincount([u for (u, _), v in groups.items() for _ in v], minlength=len(sim.units))
    for uc, n in zip(sim.units, counts.tolist(), strict=True):
        if n > uc.n_beds:  # over capacity (escalation beds): allowed, no new admissions
            uc.beds._capacity = n
    for (u, key), occs in sorted(groups.items()):
        unit = sim.units[u]
        key_name = sim.key_names[key]
        dist = sim.los_for(unit, key_name)
        occs = sorted(occs, key=lambda o: o.unit_since)
        elapsed = np.array([max(_minutes(snapshot.at - o.unit_since), 0.0) for o in occs])
        rng = init(f"census/{unit.name}/{key_name}")
        rest = residual(dist, elapsed, rng.random(len(occs))) * unit.los_mult
        d = rng.random((len(occs), 3))
        clock = sim.discharge_clocks(d[:, 0], d[:, 1])
        waiting = np.zeros(len(occs), dtype=bool)
        if unit.window:
            rest, clock, waiting = _waiting_for_window(
                sim, unit, dist, elapsed, rest, clock, init(f"census-ready/{unit.name}/{key_name}")
            )
        for j in range(len(occs)):
            bed = unit.beds.acquire(priority=CENSUS_PRIORITY)
            unit.occ.add(1)
            sim.env.process(
                _stay(
                    sim,
                    unit,
                    bed,
                    float(rest[j]),
                    key,
                    float(clock[j]),
                    float(d[j, 2]),
                    SRC_CENSUS,
                    -float(elapsed[j]),
                    -float(elapsed[j]),
                    counted=True,
                    home=bool(waiting[j]),
                )
            )
    for uc in sim.units:
        uc.beds._capacity = uc.n_beds


def _window_cdf(sim: _Sim, minute: np.ndarray) -> np.ndarray:
    """P(a discharge window's clock time <= ``minute``), minute in [0, 1440]."""
    cum = np.concatenate([[0.0], sim.discharge_cum])
    return np.interp(minute / 60.0, np.arange(25.0), cum)


def _waiting_for_window(
    sim: _Sim,
    unit: _UnitC,
    dist: Any,
    elapsed: np.ndarray,
    rest: np.ndarray,
    clock: np.ndarray,
    rng: np.random.Generator,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Census patients of a unit with discharge windows who are already medically ready.

    A patient in its bed ``e`` after arriving is either not yet ready (``X > e``: the residual
    ``X - e | X > e`` already drawn) or was ready at ``e - w`` (``w`` < 24 h) and going home, with
    no window clock time since then.  With ``G(w)`` the chance of no window in ``(T - w, T]``
    (``T`` the census time) and ``p_home`` the unit's share going home, ready-and-waiting has
    weight ``p_home int f(e - w) G(w) dw`` against ``S(e)`` for not ready (15-minute quadrature).
    Those drawn as waiting get ``w`` from that weight, a window clock time outside the clock
    interval ``(T - w, T]``, and go home at that window (the model's discharge rule).

    Returns the stays' remaining times (negative: ready ``w`` ago), window clock times, and
    which are waiting.
    """
    n = len(elapsed)
    p_home = 1.0 - (float(unit.next_cum[-1]) if len(unit.next_cum) else 0.0)
    waiting = np.zeros(n, dtype=bool)
    if n == 0 or p_home <= 0:
        return rest, clock, waiting
    step = 15.0
    edges = np.arange(0.0, 1440.0 + step / 2, step)
    mid = (edges[:-1] + edges[1:]) / 2
    tau = sim.offset % 1440.0
    lo = tau - mid
    inside = np.where(
        lo >= 0,
        _window_cdf(sim, np.full_like(lo, tau)) - _window_cdf(sim, np.maximum(lo, 0.0)),
        _window_cdf(sim, np.full_like(lo, tau)) + 1 - _window_cdf(sim, lo + 1440.0),
    )
    no_window = np.clip(1.0 - inside, 0.0, 1.0)
    scale = unit.los_mult
    x = np.maximum(elapsed[:, None] - edges[None, :], 0.0) / scale
    if isinstance(dist, Fixed):
        cdf = (x >= dist.value * dist.scale_min).astype(float)
        surv = (elapsed / scale < dist.value * dist.scale_min).astype(float)
    else:
        family, args = dist.scipy()
        cdf = family.cdf(x, *args)
        surv = family.sf(elapsed / scale, *args)
    mass = np.clip(cdf[:, :-1] - cdf[:, 1:], 0.0, None) * no_window[None, :]
    ready = p_home * mass.sum(axis=1)
    with np.errstate(divide="ignore", invalid="ignore"):
        p_ready = np.where(ready + surv > 0, ready / (ready + surv), 0.0)
    u = rng.random((n, 2))
    waiting = u[:, 0] < p_ready
    rest, clock = rest.copy(), clock.copy()
    for j in np.flatnonzero(waiting).tolist():
        cum = np.cumsum(mass[j])
        k = min(int(np.searchsorted(cum, u[j, 1] * cum[-1], side="right")), len(mid) - 1)
        w = edges[k] + step * rng.random()
        a = (tau - w) % 1440.0
        # a window clock time not in (T - w, T] (circular), by rejection from the profile
        c = sim.discharge_clocks(rng.random(64), rng.random(64))
        ok = ~(((c - a) % 1440.0 > 0) & ((c - a) % 1440.0 <= w))
        clock[j] = c[np.argmax(ok)] if ok.any() else (tau + 1.0) % 1440.0
        rest[j] = -w
    return rest, clock, waiting


def _check_census(spec: HospitalSpec, snapshot: CensusSnapshot) -> None:
    """Reject a census the model cannot place: naive times, unknown units."""
    naive = [
        o.visit_id
        for o in snapshot.occupants
        if o.unit_since.tzinfo is None or o.arrived_at.tzinfo is None
    ]
    if snapshot.at.tzinfo is None or naive:
        where = f" (visits {naive[:5]})" if naive else ""
        raise ConfigurationError(f"census times must be timezone-aware{where}")
    names = spec.unit_names()
    unknown = sorted({o.unit for o in snapshot.occupants if o.unit not in names})
    if unknown:
        known = ", ".join(sorted(names))
        raise ConfigurationError(
            f"census units {unknown} are not units of hospital {spec.name!r} (known: {known}); "
            "add them to the spec, or as aliases of a unit (units.<name>.aliases)"
        )
    if spec.ed is None and any(names[o.unit] == "ED" for o in snapshot.occupants):
        raise ConfigurationError("the census has ED patients but the hospital has no ed section")


# -- results -------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class SimulationRun:
    """One replication: attendances, bed stays, hourly levels.  Times in minutes from ``start``.

    ``attendances`` columns: ``t_arrival``, ``cls``, ``cohort`` (0 baseline, 1 surge, 2 in the
    ED at the census), ``t_seen`` (start of the provider step), ``t_dta`` (decision to admit),
    ``t_departure``, ``outcome`` (:data:`OUTCOMES`), ``unit``, and per step ``wait`` and
    ``duration`` matrices.  ``stays``: ``unit``, ``source`` (:data:`SOURCES`), ``key`` (class or
    admission stream), ``t_request``, ``t_in``, ``t_ready`` (medically ready), ``t_out``,
    ``dest`` (next unit; -1 home, -2 still there), ``lounge``.  ``level_values``: each level
    on the hour (``n_hours + 1`` rows), ``level_means``: hourly means (``n_hours`` rows).
    """

    spec: HospitalSpec
    scenario: str | None
    start: datetime
    horizon_min: float
    warmup_min: float
    seed: int
    replication: int
    class_names: tuple[str, ...]
    step_names: tuple[str, ...]
    unit_names: tuple[str, ...]
    key_names: tuple[str, ...]
    resource_names: tuple[str, ...]
    attendances: dict[str, np.ndarray]
    stays: dict[str, np.ndarray]
    cancelled: np.ndarray
    level_names: tuple[str, ...]
    level_values: np.ndarray
    level_means: np.ndarray
    offset_min: float = field(default=0.0)

    @property
    def hours(self) -> pd.DatetimeIndex:
        """Start of each simulated hour (local time of the hospital)."""
        n = self.level_means.shape[0]
        return pd.date_range(self.start, periods=n, freq="h")

    def hourly(self) -> pd.DataFrame:
        """Hourly means of every level, and the ED arrivals of each hour.

        Levels: patients in the ED, waiting, boarding, busy staff, queues, occupied beds.
        """
        df = pd.DataFrame(self.level_means, index=self.hours, columns=list(self.level_names))
        if self.class_names:
            t = self.attendances["t_arrival"]
            t = t[(t >= 0) & (self.attendances["cohort"] < 2)]
            edges = np.arange(len(df) + 1) * 60.0
            df.insert(0, "arrivals", np.histogram(t, bins=edges)[0])
        return df

    def census(self) -> pd.DataFrame:
        """The levels on the hour, ``start`` to the end inclusive (a census every hour)."""
        idx = pd.date_range(self.start, periods=self.level_values.shape[0], freq="h")
        return pd.DataFrame(self.level_values, index=idx, columns=list(self.level_names))

    def attendance_frame(self) -> pd.DataFrame:
        """One row per ED attendance (steps' waits and durations as ``wait_min:<step>``...)."""
        a = self.attendances
        df = pd.DataFrame({k: v for k, v in a.items() if v.ndim == 1})
        df["cls"] = _categorical(a["cls"], list(self.class_names))
        df["outcome"] = _categorical(a["outcome"], list(OUTCOMES))
        for j, s in enumerate(self.step_names):
            df[f"wait_min:{s}"] = a["wait"][:, j]
            df[f"duration_min:{s}"] = a["duration"][:, j]
        return df

    def stay_frame(self) -> pd.DataFrame:
        """One row per bed stay."""
        s = self.stays
        df = pd.DataFrame(s)
        df["unit"] = _categorical(s["unit"], list(self.unit_names))
        df["source"] = _categorical(s["source"], list(SOURCES))
        df["key"] = _categorical(s["key"], list(self.key_names))
        return df

    def kpis(self) -> dict[str, float]:
        """Key performance indicators after the warm-up (see :func:`medtwin.hospital.kpis`)."""
        from medtwin.hospital.kpi import kpis

        return kpis(self)

    def snapshot(self) -> CensusSnapshot:
        """Who is in the hospital at the end of the run, as a census (for a warm start)."""
        end = self.start + timedelta(minutes=self.horizon_min)
        occ: list[Occupant] = []
        a = self.attendances
        ed_name = self.spec.ed.name if self.spec.ed else "ED"
        for i in np.flatnonzero(a["outcome"] == IN_ED).tolist():
            t = self.start + timedelta(minutes=float(a["t_arrival"][i]))
            occ.append(
                Occupant(
                    f"sim-ed-{i}",
                    f"sim-ed-{i}",
                    ed_name,
                    None,
                    t,
                    t,
                    "I" if np.isfinite(a["t_dta"][i]) else "E",
                    self.class_names[a["cls"][i]],
                )
            )
        s = self.stays
        for j in np.flatnonzero(np.isnan(s["t_out"])).tolist():
            t = self.start + timedelta(minutes=float(s["t_in"][j]))
            occ.append(
                Occupant(
                    f"sim-stay-{j}",
                    f"sim-stay-{j}",
                    self.unit_names[s["unit"][j]],
                    None,
                    t,
                    t,
                    "I",
                    self.key_names[s["key"][j]] or None,
                )
            )
        return CensusSnapshot(end, tuple(occ))

    def adt_events(self, *, prefix: str = "sim", beds: bool = True) -> list[ADTEvent]:
        """The run as the ADT feed of a hospital's patient administration system.

        One event per movement, in time order (HL7 v2 trigger events): ``A04`` when a patient
        arrives in the ED (class E, ``acuity`` the triage class name, admission type E); ``A08``
        at the decision to admit (class I: the patient is boarding); ``A01`` into a bed (from
        the ED, or an elective/direct admission: class I, ``acuity`` the admission stream's
        name, admission type C for electives, E otherwise); ``A02`` for each transfer; ``A03``
        when the patient leaves (home, left without being seen, or to the discharge lounge,
        which frees the bed).  A :class:`~medtwin.hospital.census.Census` fed these events
        holds at the end of the run exactly the patients of :meth:`snapshot`, in the same units,
        since the same times.

        Visits are named after the model's records: ``<prefix>-ed-<i>`` for ED attendance ``i``
        (row ``i`` of :meth:`attendance_frame`) and ``<prefix>-adm-<j>`` for a visit that begins
        with bed stay ``j`` (row ``j`` of :meth:`stay_frame`), each of its own patient
        ``<visit id>-P``.  Message ids are ``<prefix>-<n>``, numbered in time order.  Times are
        UTC, ``start`` plus the model's minutes (a run's clock keeps the UTC offset it starts
        with).  With ``beds`` each inpatient takes the lowest free bed
        number of its unit when it arrives (none when the unit is over its beds); ED cubicles
        are not numbered.  A run started from a census also lists its census patients, from
        the times the census gave.

        >>> run = simulate("example_hospital", days=2, warmup_days=0, seed=1)
        >>> events = run.adt_events()
        >>> {"A01", "A02", "A03", "A04"} <= {e.event_type for e in events}
        True
        >>> from medtwin.hospital.census import Census
        >>> Census.from_events(events).counts() == run.snapshot().counts()
        True
        """
        a, s = self.attendances, self.stays
        ed = self.spec.ed.name if self.spec.ed is not None else "ED"
        units = self.unit_names
        rank = {"A04": 0, "A01": 1, "A02": 2, "A08": 3, "A03": 4}
        # (minute, rank, visit, kind, unit, prior unit, class, acuity, admission type)
        drafts: list[tuple[float, int, str, str, str, str | None, str | None, str | None, str]] = []
        entry: dict[tuple[int, float], list[int]] = {}
        for j in range(len(s["unit"])):
            if s["source"][j] in (SRC_ED, SRC_TRANSFER):
                entry.setdefault((int(s["unit"][j]), float(s["t_in"][j])), []).append(j)
        for stays in entry.values():
            stays.reverse()  # popped in the order the stays were recorded

        def follow(j: int, visit: str, kind: str) -> None:
            """Stay ``j`` of ``visit`` (entered with ``kind``) and the stays after it."""
            while True:
                unit = units[s["unit"][j]]
                dest, out = int(s["dest"][j]), float(s["t_out"][j])
                if dest == -1:
                    drafts.append((out, rank["A03"], visit, "A03", unit, None, None, None, kind))
                    return
                if dest < 0 or not math.isfinite(out):
                    return  # still in its bed when the run ends
                nxt = entry.get((dest, out))
                if not nxt:  # pragma: no cover - every transfer starts a stay of its unit
                    raise RuntimeError(f"stay {j}: no stay of {units[dest]} begins at {out}")
                drafts.append((out, rank["A02"], visit, "A02", units[dest], unit, "I", None, kind))
                j = nxt.pop()

        for i in range(len(a["t_arrival"])):
            visit = f"{prefix}-ed-{i}"
            t, dta, gone = (float(a[k][i]) for k in ("t_arrival", "t_dta", "t_departure"))
            acuity = self.class_names[int(a["cls"][i])]
            drafts.append((t, rank["A04"], visit, "A04", ed, None, "E", acuity, "E"))
            outcome = int(a["outcome"][i])
            # the decision to admit, unless the bed came within a second (an A08 at the A01's
            # time, in a feed of whole seconds, would name the ED while the patient is in a ward)
            if math.isfinite(dta) and (outcome == IN_ED or gone - dta >= 1 / 60):
                drafts.append((dta, rank["A08"], visit, "A08", ed, None, "I", None, "E"))
            if outcome in (HOME, LWBS):
                drafts.append((gone, rank["A03"], visit, "A03", ed, None, None, None, "E"))
            elif outcome == ADMITTED:
                u = int(a["unit"][i])
                nxt = entry.get((u, gone))
                if not nxt:  # pragma: no cover - every admission starts a stay
                    raise RuntimeError(f"attendance {i}: no stay of {units[u]} begins at {gone}")
                drafts.append((gone, rank["A01"], visit, "A01", units[u], ed, "I", None, "E"))
                follow(nxt.pop(), visit, "E")
        for j in np.flatnonzero(~np.isin(s["source"], (SRC_ED, SRC_TRANSFER))).tolist():
            visit = f"{prefix}-adm-{j}"
            key = self.key_names[int(s["key"][j])] or None
            stream = self.spec.admissions.get(key or "")
            kind = "C" if stream is not None and stream.elective else "E"
            unit = units[s["unit"][j]]
            t_in = float(s["t_in"][j])
            drafts.append((t_in, rank["A01"], visit, "A01", unit, None, "I", key, kind))
            follow(j, visit, kind)
        drafts.sort(key=lambda d: (d[0], d[1], d[2]))
        t0 = self.start.astimezone(UTC)
        free = {u: list(range(1, self.spec.units[u].beds + 1)) for u in units}  # heaps
        bed_of: dict[str, str | None] = {}
        events = []
        for n, (minute, _, visit, kind, place, prior, cls, triage, adm) in enumerate(drafts):
            held = bed_of.get(visit)
            if kind in ("A02", "A03") and held is not None:
                heapq.heappush(free[prior if kind == "A02" and prior else place], int(held))
            bed = held if kind in ("A03", "A08") else None
            if kind in ("A01", "A02"):
                bed = f"{heapq.heappop(free[place]):03d}" if beds and free[place] else None
                bed_of[visit] = bed
            when = t0 + timedelta(minutes=minute)
            events.append(
                ADTEvent(
                    message_id=f"{prefix}-{n:08d}",
                    event_type=kind,
                    occurred_at=when,
                    patient_id=f"{visit}-P",
                    visit_id=visit,
                    unit=place,
                    bed=bed,
                    prior_unit=prior,
                    prior_bed=held if kind in ("A01", "A02") else None,
                    patient_class=cast(Any, cls),
                    acuity=triage,
                    admission_type=adm,
                    recorded_at=when,
                )
            )
        return events


# -- the entry point -----------------------------------------------------------------------


def _start_of(spec: HospitalSpec, start: datetime | None) -> tuple[datetime, float]:
    """The run's local start time and its minute of the week."""
    tz = spec.tz
    if start is None:
        local = (REFERENCE_MONDAY + timedelta(minutes=spec.start.week_minute)).replace(tzinfo=tz)
    elif start.tzinfo is None:
        local = start.replace(tzinfo=tz)
    else:
        local = start.astimezone(tz)
    minute = local.weekday() * 1440 + local.hour * 60 + local.minute + local.second / 60
    return local, float(minute)


def simulate(
    spec: HospitalSpec | Mapping[str, Any] | str,
    *,
    days: float | None = None,
    seed: int = 0,
    replication: int = 0,
    warmup_days: float | None = None,
    start: datetime | None = None,
    snapshot: CensusSnapshot | None = None,
    scenario: Any = None,
) -> SimulationRun:
    """Run one replication of the hospital for ``days`` (default: the spec's ``run.days``).

    Without a census the hospital starts empty at ``start`` (default: the spec's start weekday
    and time), and KPIs skip the first ``warmup_days`` (default: the spec's
    ``run.warmup_days``, chosen with MSER-5).  With a ``snapshot`` (a census) the run starts at
    the census time from the patients in it: ED patients resume their pathway at the provider
    step with their arrival time kept (those with ``patient_class == "I"`` are boarding), and
    inpatients stay for a residual time drawn from their unit's LOS conditional on the time
    already spent (``X - e | X > e``); no warm-up by default.  ``scenario`` is a
    :class:`~medtwin.hospital.Scenario` (or its dict).  The same ``(seed, replication)`` gives
    the same run on any machine.

    >>> run = simulate("treat_sim_nelson2013", seed=1)
    >>> run.horizon_min, len(run.attendance_frame())
    (1140.0, 204)
    """
    from medtwin.hospital.scenario import Scenario, as_scenario

    spec = load_hospital(spec)
    scn: Scenario | None = as_scenario(scenario)
    if scn is not None:
        spec = scn.apply(spec)
    if snapshot is not None:
        _check_census(spec, snapshot)
        start = snapshot.at
    days = spec.run.days if days is None else days
    if not days > 0:
        raise ConfigurationError(f"days must be positive, got {days}")
    horizon = math.ceil(days * 24 - 1e-9) * 60.0
    if warmup_days is None:
        warmup_days = 0.0 if snapshot is not None else spec.run.warmup_days
    warmup = round(warmup_days * 24) * 60.0
    if not 0 <= warmup < horizon:
        raise ConfigurationError(
            f"warmup_days={warmup_days} must be >= 0 and shorter than the run ({days} days)"
        )
    local_start, offset = _start_of(spec, start)
    surge = None
    los_mult: dict[str, float] = {}
    shift = 0.0
    if scn is not None:
        surge = scn.surge_window(horizon)
        los_mult = scn.los_multipliers(spec)
        shift = scn.discharge_shift_h * 60.0
    sim = _Sim(
        spec,
        horizon_min=horizon,
        seed=seed,
        replication=replication,
        offset_min=offset,
        surge=surge,
        los_multiplier=los_mult,
        discharge_shift_min=shift,
    )
    env = sim.env
    # ED patients: those in the census first (negative arrival times), then arrivals
    census_ed: list[Occupant] = []
    if snapshot is not None and spec.ed is not None:
        names = spec.unit_names()
        census_ed = sorted(
            (o for o in snapshot.occupants if names[o.unit] == spec.ed.name),
            key=lambda o: o.arrived_at,
        )
    sim.census_ed = census_ed
    if spec.ed is not None:
        cards = _ed_cards(sim)
        if census_ed:
            cards = _with_census_ed(sim, cards, census_ed, snapshot)  # type: ignore[arg-type]
        rec = _Records(len(cards.t), len(sim.step_names))
    else:
        cards = _make_cards(
            np.empty(0),
            np.empty(0, dtype=int),
            {
                "cls": np.empty(0, dtype=int),
                "patience": [],
                "durations": [],
                "step_u": [],
                "unit": np.empty(0, dtype=int),
                "los": [],
                "clock": [],
                "lounge_u": [],
            },
        )
        rec = _Records(0, 0)
    # the monitor first: its reading at time 0 comes before anything else moves
    levels = sim.levels()
    n_hours = int(horizon // 60)
    values = np.zeros((n_hours + 1, len(levels)))
    areas = np.zeros((n_hours + 1, len(levels)))
    env.process(_monitor(sim, levels, values, areas))
    for name, res in sim.resources.items():
        times, week_levels = sim.schedules[name]
        if len(times) > 1:
            env.process(_roster(sim, res, times, week_levels))
    if snapshot is not None:
        _load_census(sim, snapshot, cards, rec, len(census_ed))
    if spec.ed is not None:
        env.process(_ed_arrivals(sim, cards, rec, len(census_ed)))
    for s, name in enumerate(spec.admissions):
        env.process(_admission_stream(sim, s, name))
    env.run(until=horizon)
    for j, lv in enumerate(levels):
        values[n_hours, j] = lv.value
        areas[n_hours, j] = lv.area_to(horizon)
    means = np.diff(areas, axis=0) / 60.0
    attendances = {
        "t_arrival": cards.t,
        "cls": np.asarray(cards.cls, dtype=int),
        "cohort": np.asarray(cards.cohort, dtype=int),
        "t_seen": rec.t_seen,
        "t_dta": rec.t_dta,
        "t_departure": rec.t_dep,
        "outcome": rec.outcome,
        "unit": np.asarray(cards.unit, dtype=int),
        "wait": rec.wait,
        "duration": rec.duration,
    }
    stays = {
        k: np.asarray(v, dtype=float if k.startswith("t_") else int)
        for k, v in sim.stay_cols.items()
    }
    return SimulationRun(
        spec=spec,
        scenario=scn.name if scn is not None else None,
        start=local_start,
        horizon_min=horizon,
        warmup_min=warmup,
        seed=seed,
        replication=replication,
        class_names=tuple(sim.class_names),
        step_names=tuple(sim.step_names),
        unit_names=tuple(spec.units),
        key_names=tuple(sim.key_names),
        resource_names=tuple(sim.resources),
        attendances=attendances,
        stays=stays,
        cancelled=np.asarray(sim.cancelled, dtype=float).reshape(-1, 2),
        level_names=tuple(lv.name for lv in levels),
        level_values=values,
        level_means=means,
        offset_min=offset,
    )


def _boarder_units(
    sim: _Sim,
    snapshot: CensusSnapshot,
    cls: np.ndarray,
    boarders: np.ndarray,
    unit: np.ndarray,
    los: list[float],
    init: Streams,
) -> tuple[np.ndarray, list[float]]:
    """Where the census's boarders wait to go: units with no bed to give, most likely.

    A census does not say which unit a boarder waits for, and the class's routing alone sends
    too many to units with free beds: a patient boards only while its unit has no bed available
    (every bed occupied or being cleaned).  So the unit is drawn with probability proportional
    to ``p_class(u) P(beds being cleaned in u >= free beds in u)``, the number being cleaned
    taken as Poisson with mean (occupied / mean stay) x mean turnaround (an M/G/infinity
    approximation); a class whose units all have beds free keeps its routing.
    """
    counts = snapshot.counts()
    names = sim.spec.unit_names()
    occupied = np.zeros(len(sim.units))
    for name, n in counts.items():
        if names.get(name) in sim.unit_index:
            occupied[sim.unit_index[names[name]]] += n
    unavailable = np.ones(len(sim.units))
    for uc in sim.units:
        spec_u = sim.spec.units[uc.name]
        free = uc.n_beds - occupied[uc.index]
        if free <= 0:
            continue
        turnaround = spec_u.turnaround or sim.spec.turnaround
        stay = spec_u.los.mean_min + (720.0 if uc.window else 0.0)  # about half a day's wait
        lam = occupied[uc.index] / stay * turnaround.mean_min if turnaround is not None else 0.0
        unavailable[uc.index] = float(_poisson_sf(free - 1, lam))
    rng = init("census-boarder")
    unit, los = unit.copy(), list(los)
    for i in np.flatnonzero(boarders).tolist():
        c = sim.classes[int(cls[i])]
        routing = c.spec.admission.units if c.spec.admission is not None else {}
        idx = np.array([sim.unit_index[u] for u in routing], dtype=int)
        if len(idx) == 0:
            continue
        w = np.array(list(routing.values()), dtype=float) * unavailable[idx]
        if w.sum() <= 0:
            continue
        j = int(idx[min(int(np.searchsorted(np.cumsum(w / w.sum()), rng.random())), len(w) - 1)])
        uc = sim.units[j]
        unit[i] = j
        los[i] = float(sim.los_for(uc, c.name).sample(rng, 1)[0]) * uc.los_mult
    return unit, los


def _poisson_sf(k: float, lam: float) -> float:
    """P(N > k) for N ~ Poisson(lam)."""
    if lam <= 0:
        return 0.0 if k >= 0 else 1.0
    term = total = math.exp(-lam)
    for i in range(1, int(k) + 1):
        term *= lam / i
        total += term
    return max(0.0, 1.0 - total)


def _with_census_ed(
    sim: _Sim, cards: _Cards, census_ed: list[Occupant], snapshot: CensusSnapshot
) -> _Cards:
    """Prepend the ED patients of a census (arrived before time 0) to the arrivals."""
    init = Streams(sim.seed, sim.replication, 2)
    n = len(census_ed)
    t = np.array([-max(_minutes(snapshot.at - o.arrived_at), 0.0) for o in census_ed])
    known = [_class_of(sim, o) for o in census_ed]
    shares = np.array([c.spec.share for c in sim.classes], dtype=float)
    drawn = np.minimum(
        np.searchsorted(np.cumsum(shares / shares.sum()), init("class").random(n), side="right"),
        len(shares) - 1,
    )
    cls = np.array([k if k is not None else d for k, d in zip(known, drawn.tolist(), strict=True)])
    boarders = np.array([o.patient_class == "I" for o in census_ed])
    d = _draw_ed(sim, init, t, cls=cls, admit_forced=boarders)
    # a boarder of a class without admission routing goes to the first unit
    unit = d["unit"]
    if len(sim.units):
        unit = np.where(boarders & (unit < 0), 0, unit)
        if boarders.any():
            unit, d["los"] = _boarder_units(sim, snapshot, d["cls"], boarders, unit, d["los"], init)
    return _make_cards(
        np.concatenate([t, cards.t]),
        np.concatenate([np.full(n, 2), cards.cohort]),
        {
            "cls": np.concatenate([d["cls"], cards.cls]),
            "patience": d["patience"] + cards.patience,
            "durations": d["durations"] + cards.durations,
            "step_u": d["step_u"] + cards.step_u,
            "unit": np.concatenate([unit, cards.unit]),
            "los": d["los"] + cards.los,
            "clock": d["clock"] + cards.clock,
            "lounge_u": d["lounge_u"] + cards.lounge_u,
        },
    )
