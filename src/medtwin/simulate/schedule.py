"""Schedules: timed meals, boluses, doses and rate changes, turned into piecewise-constant inputs.

A :class:`Schedule` is an immutable list of :class:`Event` objects addressed to a model input by
name or by role (``"meal"``, ``"insulin"``, ``"dose"``).  Three kinds of event exist:

- a *pulse* hands over an amount: for an ``amount`` input (UVA/Padova carbohydrate) the amount is
  added to the input period that contains the event's time; for a ``rate`` input (insulin) the
  amount is spread evenly over ``duration`` (default: one input period);
- a *rate* event sets the input's baseline rate from that time on (a basal rate change);
- a *factor* event sets the baseline to a multiple of the model's default rate (the patient's own
  steady-state basal for UVA/Padova) from that time on.

Units are explicit: :meth:`Schedule.basal` takes U/h and the engine converts to the model's input
unit (U/min) at compile time.  A batch may share one schedule or give one per patient.

>>> s = Schedule().meal(60, 45).bolus(60, 3.5).basal(1200, factor=0.7)
>>> len(s.events)
3
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np

from medtwin.errors import ScheduleError, UnitError
from medtwin.models._base import AbstractModel, Input
from medtwin.units import convert

__all__ = ["CompiledSchedule", "Event", "Schedule", "compile_schedules"]

EventKind = Literal["pulse", "rate", "factor"]


@dataclass(frozen=True, slots=True)
class Event:
    """One timed event of a schedule (see the module docstring for the three kinds)."""

    time: float
    input: str
    kind: EventKind
    value: float
    unit: str | None = None
    duration: float | None = None

    def __post_init__(self) -> None:
        if self.kind not in ("pulse", "rate", "factor"):
            raise ScheduleError(f"event kind must be pulse, rate or factor, got {self.kind!r}")
        for name in ("time", "value"):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, (int, float, np.floating, np.integer)):
                raise ScheduleError(f"{self.input} event {name} must be a number, got {v!r}")
            if not math.isfinite(v):
                raise ScheduleError(f"{self.input} event at t={self.time} has non-finite {name}")
        if self.value < 0:
            what = {"pulse": "amount", "rate": "rate", "factor": "factor"}[self.kind]
            raise ScheduleError(
                f"{self.input} event at t={self.time} has a negative {what} ({self.value}); "
                "amounts, rates and factors must be >= 0"
            )
        if self.time < 0:
            raise ScheduleError(f"{self.input} event time {self.time} is negative")
        if self.duration is not None and not (self.duration > 0 and math.isfinite(self.duration)):
            raise ScheduleError(
                f"{self.input} event at t={self.time}: duration must be > 0, got {self.duration}"
            )


@dataclass(frozen=True, slots=True)
class Schedule:
    """An immutable, chainable list of events.  Times are in the model's time unit."""

    events: tuple[Event, ...] = field(default_factory=tuple)

    def add(self, event: Event) -> Schedule:
        """A new schedule with ``event`` appended."""
        return Schedule((*self.events, event))

    def meal(self, time: float, carbs_g: float) -> Schedule:
        """A meal of ``carbs_g`` grams of carbohydrate announced at ``time``."""
        return self.add(Event(time, "meal", "pulse", carbs_g, "g"))

    def bolus(self, time: float, units: float, duration: float | None = None) -> Schedule:
        """An insulin bolus of ``units`` U, delivered over ``duration`` (default one period)."""
        return self.add(Event(time, "insulin", "pulse", units, "U", duration))

    def basal(
        self,
        time: float,
        rate_u_per_h: float | None = None,
        *,
        factor: float | None = None,
    ) -> Schedule:
        """Set the basal insulin rate from ``time`` on: U/h, or a factor of the patient's basal."""
        if (rate_u_per_h is None) == (factor is None):
            raise ScheduleError("basal() takes exactly one of rate_u_per_h or factor")
        if factor is not None:
            return self.add(Event(time, "insulin", "factor", factor))
        assert rate_u_per_h is not None
        return self.add(Event(time, "insulin", "rate", rate_u_per_h, "U/h"))

    def dose(
        self,
        time: float,
        amount: float,
        *,
        input: str = "dose",
        unit: str | None = None,
        duration: float | None = None,
    ) -> Schedule:
        """A dose of ``amount`` into ``input`` (by name or role), optionally infused over time."""
        return self.add(Event(time, input, "pulse", amount, unit, duration))

    def rate(self, time: float, input: str, rate: float, unit: str | None = None) -> Schedule:
        """Set the baseline rate of ``input`` from ``time`` on."""
        return self.add(Event(time, input, "rate", rate, unit))

    def __add__(self, other: Schedule) -> Schedule:
        return Schedule((*self.events, *other.events))

    def shifted(self, offset: float) -> Schedule:
        """The same events ``offset`` later (days of a repeated scenario)."""
        return Schedule(
            tuple(
                Event(e.time + offset, e.input, e.kind, e.value, e.unit, e.duration)
                for e in self.events
            )
        )

    def repeated(self, times: int, every: float) -> Schedule:
        """``times`` copies of this schedule, ``every`` apart (e.g. 7 days of the same meals)."""
        out = Schedule()
        for k in range(times):
            out = out + self.shifted(k * every)
        return out

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Schedule:
        """Build from ``{"meals": [[t, g], ...], "boluses": [[t, U], ...], "basal": [...]}``.

        ``basal`` entries are ``[t, rate_u_per_h]`` or ``{"time": t, "factor": f}``; ``events``
        takes raw event dicts (``time``, ``input``, ``kind``, ``value``, ``unit``, ``duration``).
        Unknown keys are rejected so a typo never silently drops a meal.
        """
        known = {"meals", "boluses", "basal", "events"}
        unknown = set(data) - known
        if unknown:
            raise ScheduleError(
                f"unknown schedule keys {sorted(unknown)}; expected some of {sorted(known)}"
            )
        s = cls()
        try:
            for item in data.get("meals", []) or []:
                t, g = _pair(item, "meals", ("time", "carbs_g"))
                s = s.meal(t, g)
            for item in data.get("boluses", []) or []:
                t, u = _pair(item, "boluses", ("time", "units"))
                s = s.bolus(t, u)
            for item in data.get("basal", []) or []:
                if isinstance(item, Mapping) and "factor" in item:
                    s = s.basal(float(item["time"]), factor=float(item["factor"]))
                else:
                    t, r = _pair(item, "basal", ("time", "rate_u_per_h"))
                    s = s.basal(t, r)
            for item in data.get("events", []) or []:
                s = s.add(Event(**item))
        except (TypeError, ValueError, KeyError) as exc:
            if isinstance(exc, ScheduleError):
                raise
            raise ScheduleError(f"malformed schedule entry: {exc}") from exc
        return s


def _pair(item: Any, where: str, names: tuple[str, str]) -> tuple[float, float]:
    if isinstance(item, Mapping):
        try:
            return float(item[names[0]]), float(item[names[1]])
        except KeyError as exc:
            raise ScheduleError(f"{where} entry {dict(item)} lacks {exc}") from None
    if isinstance(item, (list, tuple)) and len(item) == 2:
        return float(item[0]), float(item[1])
    raise ScheduleError(
        f"{where} entry {item!r} must be [{names[0]}, {names[1]}] or a mapping with those keys"
    )


@dataclass(frozen=True, slots=True)
class CompiledSchedule:
    """Dense per-step inputs: ``base_abs + base_factor * default + pulse`` for every input.

    Arrays are (n_steps, B) with B = 1 (shared schedule) or the batch size.
    """

    base_abs: dict[str, np.ndarray]
    base_factor: dict[str, np.ndarray]
    pulse: dict[str, np.ndarray]


def _event_value(model: type[AbstractModel], inp: Input, e: Event, dt: float) -> float:
    """The event's value in the model input's unit (rates) or integral unit (pulses)."""
    if e.kind == "factor":
        return float(e.value)
    try:
        if e.kind == "rate":
            return convert(e.value, e.unit, inp.unit) if e.unit else float(e.value)
        if inp.kind == "amount":
            return convert(e.value, e.unit, inp.unit) if e.unit else float(e.value)
        # a pulse into a rate input: amount in (input unit x time unit)
        integral = f"{inp.unit}.{model.time_unit}"
        return convert(e.value, e.unit, integral) if e.unit else float(e.value)
    except UnitError as exc:
        raise ScheduleError(f"{e.input} event at t={e.time}: {exc}") from exc


def compile_schedules(
    model: type[AbstractModel],
    schedules: Sequence[Schedule],
    *,
    t0: float,
    n_steps: int,
    dt: float,
) -> CompiledSchedule:
    """Turn one schedule (shared) or one per patient into dense per-step input arrays."""
    width = len(schedules)
    names = model.input_names()
    base_abs = {n: np.full((n_steps, width), np.nan) for n in names}
    base_factor = {n: np.full((n_steps, width), np.nan) for n in names}
    pulse = {n: np.zeros((n_steps, width)) for n in names}
    t_end = t0 + n_steps * dt
    for col, schedule in enumerate(schedules):
        if not isinstance(schedule, Schedule):
            raise ScheduleError(f"expected a Schedule, got {type(schedule).__name__}")
        for e in sorted(schedule.events, key=lambda ev: ev.time):
            try:
                inp = model.input_for(e.input)
            except ValueError as exc:
                raise ScheduleError(str(exc)) from None
            if not (t0 - 1e-9 <= e.time < t_end - 1e-9):
                raise ScheduleError(
                    f"{e.input} event at t={e.time:g} {model.time_unit} lies outside the "
                    f"simulated time [{t0:g}, {t_end:g}) {model.time_unit}; extend t or drop it"
                )
            step = math.floor((e.time - t0) / dt + 1e-9)
            value = _event_value(model, inp, e, dt)
            if e.kind == "pulse":
                if inp.kind == "amount":
                    pulse[inp.name][step, col] += value
                else:
                    k = max(1, round((e.duration or dt) / dt))
                    stop = min(step + k, n_steps)
                    pulse[inp.name][step:stop, col] += value / (k * dt)
            elif e.kind == "rate":
                if inp.kind == "amount":
                    raise ScheduleError(f"{inp.name} is an amount input; it takes no rate events")
                base_abs[inp.name][step, col] = value
                base_factor[inp.name][step, col] = 0.0
            else:
                base_abs[inp.name][step, col] = 0.0
                base_factor[inp.name][step, col] = value
    for n in names:
        _forward_fill(base_abs[n], 0.0)
        _forward_fill(base_factor[n], 1.0)
    return CompiledSchedule(base_abs, base_factor, pulse)


def _forward_fill(a: np.ndarray, initial: float) -> None:
    """In place: carry the last set value forward along axis 0; ``initial`` before the first."""
    if np.isnan(a[0]).any():
        a[0] = np.where(np.isnan(a[0]), initial, a[0])
    mask = ~np.isnan(a)
    idx = np.where(mask, np.arange(a.shape[0])[:, None], 0)
    np.maximum.accumulate(idx, axis=0, out=idx)
    a[:] = np.take_along_axis(a, idx, axis=0)


def as_schedules(schedule: Schedule | Iterable[Schedule] | None) -> list[Schedule]:
    """Normalise the ``schedule`` argument of :func:`~medtwin.simulate.simulate` to a list."""
    if schedule is None:
        return [Schedule()]
    if isinstance(schedule, Schedule):
        return [schedule]
    out = list(schedule)
    if not out:
        raise ScheduleError("an empty list of schedules was given; pass None for no events")
    return out
