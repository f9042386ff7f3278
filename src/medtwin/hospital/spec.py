"""A hospital described in one file: units, beds, ED resources and rosters, pathways, distributions.

A :class:`HospitalSpec` is validated with pydantic and read with :func:`load_hospital` from a YAML
or JSON file, a dict, or the name of a bundled example (``"example_hospital"``, the ~400-bed
district general hospital; ``"treat_sim_nelson2013"``, the STARS treatment centre of Nelson
2013).  Any invalid field raises :class:`~medtwin.errors.ConfigurationError` naming its path,
e.g. ``units.ICU.beds: Input should be greater than or equal to 1``.

Times in a file carry their unit: a distribution has ``unit: min`` (default), ``h`` or ``d``;
clock times are ``"HH:MM"`` local to ``timezone``; weekdays are ``Mon`` .. ``Sun``.  Inside the
model every time is in minutes.

The parts (see ``docs/hospital.md`` for a worked file):

- ``ed``: arrivals (a non-homogeneous Poisson process with hourly rates over the week), acuity
  ``classes`` (share, priority, pathway, patience, admission routing), ``pathways`` (a list of
  steps, each seizing or using ED ``resources`` for a sampled duration), ``resources`` (cubicles
  and staff with a constant capacity, an hourly profile or shifts);
- ``units``: wards and ICU with beds, length of stay by class, bed turnaround, onward transfers;
- ``admissions``: scheduled elective lists and direct (non-ED) emergency admissions by weekday;
- ``discharge``: the hour-of-day profile of discharges home; an optional discharge ``lounge``.

>>> spec = load_hospital("example_hospital")
>>> sum(u.beds for u in spec.units.values())
400
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Mapping
from importlib import resources
from pathlib import Path
from typing import Annotated, Any, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import numpy as np
import yaml
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    field_validator,
    model_validator,
)

from medtwin.errors import ConfigurationError

__all__ = [
    "WEEKDAYS",
    "AcuityClass",
    "Admission",
    "AdmissionStream",
    "Arrivals",
    "Discharge",
    "Distribution",
    "EmergencyDepartment",
    "Exponential",
    "Fixed",
    "Gamma",
    "HospitalSpec",
    "LogNormal",
    "Lounge",
    "Normal",
    "Resource",
    "RunSettings",
    "Shift",
    "StartTime",
    "Step",
    "Triangular",
    "Uniform",
    "Unit",
    "load_hospital",
]

WEEKDAYS: tuple[str, ...] = ("Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun")
"""Weekday names as a hospital file writes them, Monday first."""

MINUTES_PER = {"min": 1.0, "h": 60.0, "d": 1440.0}
WEEK_MIN = 7 * 1440
Weekday = Literal["Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun"]
TimeUnit = Literal["min", "h", "d"]
_CLOCK = re.compile(r"^([01]\d|2[0-4]):([0-5]\d)$")
Positive = Annotated[float, Field(gt=0, allow_inf_nan=False)]
NonNegative = Annotated[float, Field(ge=0, allow_inf_nan=False)]
Probability = Annotated[float, Field(ge=0, le=1, allow_inf_nan=False)]


def clock_minutes(text: str) -> int:
    """Minutes after midnight of an ``"HH:MM"`` clock time (``"24:00"`` is 1440)."""
    m = _CLOCK.match(text)
    if m is None or (m.group(1) == "24" and m.group(2) != "00"):
        raise ValueError(f"{text!r} is not a clock time HH:MM (00:00 to 24:00)")
    return int(m.group(1)) * 60 + int(m.group(2))


def _stats() -> Any:
    from scipy import stats  # imported when first needed: it costs a second at start-up

    return stats


class _Spec(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


# -- distributions ---------------------------------------------------------------------------


class _Dist(_Spec):
    unit: TimeUnit = "min"

    @property
    def scale_min(self) -> float:
        return MINUTES_PER[self.unit]

    def sample(self, rng: np.random.Generator, n: int) -> np.ndarray:
        """``n`` draws in minutes (never negative)."""
        raise NotImplementedError

    def scipy(self) -> tuple[Any, tuple[float, ...]]:
        """The scipy distribution family and its arguments (shapes, loc, scale) in minutes.

        Unfrozen, because freezing a scipy distribution costs about a millisecond.
        """
        raise NotImplementedError

    def frozen(self) -> Any:
        """The scipy distribution, frozen, in minutes."""
        family, args = self.scipy()
        return family(*args)

    @property
    def mean_min(self) -> float:
        """The mean in minutes."""
        return float(self.frozen().mean())


class Exponential(_Dist):
    """Exponential with mean ``mean``: ``f(x) = exp(-x/mean)/mean``."""

    dist: Literal["exponential"]
    mean: Positive

    def sample(self, rng: np.random.Generator, n: int) -> np.ndarray:  # noqa: D102
        return rng.exponential(self.mean * self.scale_min, n)

    def scipy(self) -> tuple[Any, tuple[float, ...]]:  # noqa: D102
        return _stats().expon, (0.0, self.mean * self.scale_min)


class LogNormal(_Dist):
    """Log-normal given by its own mean and standard deviation (not those of its log).

    ``sigma^2 = ln(1 + sd^2/mean^2)``, ``mu = ln(mean) - sigma^2/2``.
    """

    dist: Literal["lognormal"]
    mean: Positive
    sd: Positive

    @property
    def mu_sigma(self) -> tuple[float, float]:
        """``(mu, sigma)`` of the underlying normal, in minutes."""
        s2 = math.log1p((self.sd / self.mean) ** 2)
        return math.log(self.mean * self.scale_min) - s2 / 2, math.sqrt(s2)

    def sample(self, rng: np.random.Generator, n: int) -> np.ndarray:  # noqa: D102
        mu, sigma = self.mu_sigma
        return rng.lognormal(mu, sigma, n)

    def scipy(self) -> tuple[Any, tuple[float, ...]]:  # noqa: D102
        mu, sigma = self.mu_sigma
        return _stats().lognorm, (sigma, 0.0, math.exp(mu))


class Gamma(_Dist):
    """Gamma given by mean and standard deviation: shape ``(mean/sd)^2``, scale ``sd^2/mean``."""

    dist: Literal["gamma"]
    mean: Positive
    sd: Positive

    def sample(self, rng: np.random.Generator, n: int) -> np.ndarray:  # noqa: D102
        k = (self.mean / self.sd) ** 2
        return rng.gamma(k, self.sd**2 / self.mean * self.scale_min, n)

    def scipy(self) -> tuple[Any, tuple[float, ...]]:  # noqa: D102
        k = (self.mean / self.sd) ** 2
        return _stats().gamma, (k, 0.0, self.sd**2 / self.mean * self.scale_min)


class Normal(_Dist):
    """Normal; draws below ``min`` (default 0) are set to ``min``, as treat-sim does."""

    dist: Literal["normal"]
    mean: float = Field(allow_inf_nan=False)
    sd: Positive
    min: NonNegative = 0.0

    def sample(self, rng: np.random.Generator, n: int) -> np.ndarray:  # noqa: D102
        x = rng.normal(self.mean, self.sd, n)
        return np.maximum(x, self.min) * self.scale_min

    def scipy(self) -> tuple[Any, tuple[float, ...]]:
        """Truncated at ``min`` for residual times (the clamped draws' point mass is ignored)."""
        a = (self.min - self.mean) / self.sd
        return _stats().truncnorm, (a, np.inf, self.mean * self.scale_min, self.sd * self.scale_min)


class Triangular(_Dist):
    """Triangular on ``[min, max]`` with mode ``mode``."""

    dist: Literal["triangular"]
    min: NonNegative
    mode: NonNegative
    max: Positive

    @model_validator(mode="after")
    def _ordered(self) -> Triangular:
        if not self.min <= self.mode <= self.max or self.min == self.max:
            raise ValueError(
                f"need min <= mode <= max and min < max, got {self.min}, {self.mode}, {self.max}"
            )
        return self

    def sample(self, rng: np.random.Generator, n: int) -> np.ndarray:  # noqa: D102
        s = self.scale_min
        return rng.triangular(self.min * s, self.mode * s, self.max * s, n)

    def scipy(self) -> tuple[Any, tuple[float, ...]]:  # noqa: D102
        s = self.scale_min
        c = (self.mode - self.min) / (self.max - self.min)
        return _stats().triang, (c, self.min * s, (self.max - self.min) * s)


class Uniform(_Dist):
    """Uniform on ``[min, max]``."""

    dist: Literal["uniform"]
    min: NonNegative
    max: Positive

    @model_validator(mode="after")
    def _ordered(self) -> Uniform:
        if not self.min < self.max:
            raise ValueError(f"need min < max, got {self.min}, {self.max}")
        return self

    def sample(self, rng: np.random.Generator, n: int) -> np.ndarray:  # noqa: D102
        return rng.uniform(self.min * self.scale_min, self.max * self.scale_min, n)

    def scipy(self) -> tuple[Any, tuple[float, ...]]:  # noqa: D102
        s = self.scale_min
        return _stats().uniform, (self.min * s, (self.max - self.min) * s)


class Fixed(_Dist):
    """A constant ``value``."""

    dist: Literal["fixed"]
    value: NonNegative

    def sample(self, rng: np.random.Generator, n: int) -> np.ndarray:  # noqa: D102
        return np.full(n, self.value * self.scale_min)

    def scipy(self) -> tuple[Any, tuple[float, ...]]:
        """A constant has no scipy family: its residual time is computed directly."""
        raise NotImplementedError("a fixed duration has no scipy distribution")

    @property
    def mean_min(self) -> float:  # noqa: D102
        return self.value * self.scale_min


Distribution = Annotated[
    Exponential | LogNormal | Gamma | Normal | Triangular | Uniform | Fixed,
    Field(discriminator="dist"),
]
"""A duration distribution: ``{dist: lognormal, mean: 30, sd: 20, unit: min}`` and the like."""


def residual(dist: _Dist, elapsed_min: np.ndarray, u: np.ndarray) -> np.ndarray:
    """Remaining time of stays already ``elapsed_min`` long, from the conditional distribution.

    Draws ``X | X > e`` by inversion, ``X = S^{-1}(u S(e))`` with ``S`` the survival function
    (accurate far in the tail), and returns ``X - e``.  A stay beyond the distribution's
    support (``S(e) = 0``) has no time left.
    """
    e = np.asarray(elapsed_min, dtype=float)
    if isinstance(dist, Fixed):
        return np.maximum(dist.value * dist.scale_min - e, 0.0)
    family, args = dist.scipy()
    surv = family.sf(e, *args)
    with np.errstate(divide="ignore", invalid="ignore"):
        x = family.isf(u * surv, *args)
    rest = np.where((surv > 0) & np.isfinite(x), x - e, 0.0)
    return np.maximum(rest, 0.0)


# -- the emergency department ----------------------------------------------------------------


class Arrivals(_Spec):
    """ED arrivals: a non-homogeneous Poisson process, piecewise constant by hour of the week.

    Either ``per_day`` (mean arrivals per day) shaped by relative ``hour_of_day`` (24) and
    ``day_of_week`` (7, Monday first) weights, or ``rate_per_hour``: one rate, 24 hourly rates
    (every day alike) or 7 x 24 (Monday first).
    """

    per_day: Positive | None = None
    hour_of_day: list[NonNegative] | None = Field(None, min_length=24, max_length=24)
    day_of_week: list[NonNegative] | None = Field(None, min_length=7, max_length=7)
    rate_per_hour: NonNegative | list[NonNegative] | list[list[NonNegative]] | None = None

    @model_validator(mode="after")
    def _one_form(self) -> Arrivals:
        if (self.per_day is None) == (self.rate_per_hour is None):
            raise ValueError(
                "give either per_day (with optional hour_of_day/day_of_week "
                "weights) or rate_per_hour"
            )
        if self.rate_per_hour is not None and (self.hour_of_day or self.day_of_week):
            raise ValueError("hour_of_day/day_of_week weights go with per_day, not rate_per_hour")
        r = self.rate_per_hour
        if isinstance(r, list) and r and isinstance(r[0], list):
            if len(r) != 7 or any(len(day) != 24 for day in r):
                raise ValueError("rate_per_hour by weekday must be 7 lists of 24 rates")
        elif isinstance(r, list) and len(r) != 24:
            raise ValueError(f"rate_per_hour must have 24 hourly rates, got {len(r)}")
        for name, w in (("hour_of_day", self.hour_of_day), ("day_of_week", self.day_of_week)):
            if w is not None and sum(w) <= 0:
                raise ValueError(f"{name} weights must not all be 0")
        return self

    def week_rates(self) -> np.ndarray:
        """Arrivals per hour for each of the 168 hours of the week, Monday 00:00 first."""
        if self.rate_per_hour is not None:
            r = np.asarray(self.rate_per_hour, dtype=float)
            return (
                np.broadcast_to(
                    r if r.ndim == 2 else r.reshape(-1, 24) if r.ndim else np.full((1, 24), r),
                    (7, 24),
                )
                .ravel()
                .copy()
            )
        assert self.per_day is not None
        hod = np.asarray(self.hour_of_day or [1.0] * 24, dtype=float)
        dow = np.asarray(self.day_of_week or [1.0] * 7, dtype=float)
        return (self.per_day * np.outer(dow / dow.mean(), hod / hod.sum())).ravel()


def _every_day() -> list[Weekday]:
    return ["Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun"]


class Shift(_Spec):
    """``staff`` on duty from ``start`` to ``end`` (an ``end`` before ``start`` is next day)."""

    start: str
    end: str
    staff: int = Field(ge=0)
    days: list[Weekday] = Field(default_factory=lambda: _every_day())

    @field_validator("start", "end")
    @classmethod
    def _clock(cls, v: str) -> str:
        clock_minutes(v)
        return v


class Resource(_Spec):
    """An ED resource (cubicles, triage nurses, doctors) and its capacity over the week.

    A constant ``capacity``, 24 hourly capacities ``by_hour`` (every day alike), or
    overlapping ``shifts``.

    When capacity falls (a shift ends), staff finish the patient they are with: nobody in
    service is interrupted, and no new patient starts until the number busy is below the new
    capacity.  ``adjust`` is added at every hour (floored at 0): what-if scenarios use it.
    """

    capacity: int | None = Field(None, ge=0)
    by_hour: list[Annotated[int, Field(ge=0)]] | None = Field(None, min_length=24, max_length=24)
    shifts: list[Shift] | None = None
    adjust: int = 0
    description: str = ""

    @model_validator(mode="after")
    def _one_form(self) -> Resource:
        given = [k for k in ("capacity", "by_hour", "shifts") if getattr(self, k) is not None]
        if len(given) != 1:
            raise ValueError(
                f"give exactly one of capacity, by_hour, shifts (got {given or 'none'})"
            )
        return self

    def schedule(self) -> tuple[np.ndarray, np.ndarray]:
        """Capacity over the week: change times (minutes after Monday 00:00) and levels.

        ``levels[i]`` holds from ``times[i]`` to ``times[i+1]`` (cyclically).
        """
        if self.capacity is not None:
            times, levels = np.array([0.0]), np.array([self.capacity])
        elif self.by_hour is not None:
            times = np.arange(0, WEEK_MIN, 60.0)
            levels = np.tile(np.asarray(self.by_hour), 7)
        else:
            assert self.shifts is not None
            delta: dict[float, int] = {0.0: 0}
            on_at_start = 0  # staff of Sunday shifts still on duty at Monday 00:00
            for sh in self.shifts:
                a, length = _shift_window(sh)
                for day in sh.days:
                    t0 = WEEKDAYS.index(day) * 1440 + a
                    t1 = t0 + length
                    delta[float(t0 % WEEK_MIN)] = delta.get(float(t0 % WEEK_MIN), 0) + sh.staff
                    delta[float(t1 % WEEK_MIN)] = delta.get(float(t1 % WEEK_MIN), 0) - sh.staff
                    on_at_start += sh.staff if t1 >= WEEK_MIN else 0
            times = np.array(sorted(delta))
            levels = np.cumsum([delta[t] for t in times]) + on_at_start
        levels = np.maximum(np.asarray(levels, dtype=int) + self.adjust, 0)
        keep = np.r_[True, levels[1:] != levels[:-1]]
        return times[keep].astype(float), levels[keep]


def _shift_window(shift: Shift) -> tuple[int, int]:
    """Start (minutes after midnight) and length of a shift.

    An end at or before the start is the next day.
    """
    a, b = clock_minutes(shift.start), clock_minutes(shift.end)
    return a, (b - a if b > a else b - a + 1440)


class Step(_Spec):
    """One activity of an ED pathway.

    The patient acquires the ``seize`` resources (kept until it leaves the ED: a cubicle) and the
    ``use`` resources (released at the end of the step: a doctor), in that order, then spends a
    ``duration`` (``duration_by_class`` overrides it per acuity class).  The step happens with
    ``probability`` (per class: ``probability_by_class``).  ``provider`` marks the first
    contact with a clinician (door-to-provider ends when it starts); ``renege`` lets a patient
    leave without being seen when its patience runs out while waiting for this step.
    """

    name: str
    seize: list[str] = Field(default_factory=list)
    use: list[str] = Field(default_factory=list)
    duration: Distribution
    duration_by_class: dict[str, Distribution] = Field(default_factory=dict)
    probability: Probability = 1.0
    probability_by_class: dict[str, Probability] = Field(default_factory=dict)
    provider: bool = False
    renege: bool = False


class Admission(_Spec):
    """Admission after the ED pathway: with ``probability``, to a unit drawn from ``units``."""

    probability: Probability
    units: dict[str, Probability]

    @field_validator("units")
    @classmethod
    def _sums_to_one(cls, v: dict[str, float]) -> dict[str, float]:
        if not v or not math.isclose(sum(v.values()), 1.0, abs_tol=1e-6):
            raise ValueError(f"routing probabilities must sum to 1, got {sum(v.values()):g}")
        return v


class AcuityClass(_Spec):
    """A triage category.

    Its ``share`` of arrivals, queue ``priority`` (lower is seen first), ``pathway``,
    ``patience`` (time from arrival after which a patient not yet seen leaves; none: never)
    and ``admission`` routing.  ``codes`` are the acuity values a census uses for this class
    (Manchester Triage System or ESI levels, colours).
    """

    share: Positive
    priority: int = 0
    pathway: str
    patience: Distribution | None = None
    admission: Admission | None = None
    codes: list[str] = Field(default_factory=list)


class EmergencyDepartment(_Spec):
    """Arrivals, triage classes, pathways and resources of the emergency department."""

    name: str = "ED"
    aliases: list[str] = Field(default_factory=list)
    arrivals: Arrivals
    classes: dict[str, AcuityClass] = Field(min_length=1)
    pathways: dict[str, list[Step]] = Field(min_length=1)
    resources: dict[str, Resource] = Field(default_factory=dict)
    target_h: Positive = 4.0


# -- inpatient units, admissions, discharge -------------------------------------------------


class Unit(_Spec):
    """A ward or ICU.

    ``beds``, length of stay (``los``, per class ``los_by_class``), bed ``turnaround``
    (cleaning; default the hospital's), onward transfers ``next`` (unit -> probability; the
    rest go home) and whether home discharges wait for the hour-of-day ``discharge`` profile
    (``discharge_window``).  ``aliases`` are other names (ADT location codes) a census uses
    for this unit.
    """

    beds: int = Field(ge=1)
    los: Distribution
    los_by_class: dict[str, Distribution] = Field(default_factory=dict)
    turnaround: Distribution | None = None
    next: dict[str, Probability] = Field(default_factory=dict)
    discharge_window: bool = True
    aliases: list[str] = Field(default_factory=list)
    description: str = ""

    @field_validator("next")
    @classmethod
    def _at_most_one(cls, v: dict[str, float]) -> dict[str, float]:
        if sum(v.values()) > 1 + 1e-9:
            raise ValueError(f"transfer probabilities sum to {sum(v.values()):g} > 1")
        return v


class AdmissionStream(_Spec):
    """Admissions that bypass the ED: elective lists or direct (GP) emergency admissions.

    ``per_weekday`` patients (Monday first; fractional means need ``poisson: true``) arrive at
    uniform times ``between`` two clock times.  Electives have lower bed priority than
    emergencies and are cancelled when no bed is free ``cancel_after_h`` after arrival.
    """

    unit: str
    per_weekday: list[NonNegative] = Field(min_length=7, max_length=7)
    poisson: bool = False
    between: tuple[str, str] = ("07:00", "12:00")
    elective: bool = True
    cancel_after_h: Positive | None = None

    @model_validator(mode="after")
    def _check(self) -> AdmissionStream:
        a, b = (clock_minutes(t) for t in self.between)
        if not a < b:
            raise ValueError(
                f"between must be an increasing pair of clock times, got {self.between}"
            )
        if not self.poisson and any(x != int(x) for x in self.per_weekday):
            raise ValueError(
                "fixed per_weekday counts must be whole numbers (or set poisson: true)"
            )
        return self


class Discharge(_Spec):
    """When patients go home: relative weights for the 24 hours of the day.

    A patient whose stay ends (medically ready) at time ``r`` leaves at the next time after
    ``r`` whose clock time is drawn from this profile (hour by the weights, minute uniform).
    """

    hour_profile: list[NonNegative] = Field(
        default_factory=lambda: [1.0] * 24, min_length=24, max_length=24
    )

    @field_validator("hour_profile")
    @classmethod
    def _positive(cls, v: list[float]) -> list[float]:
        if sum(v) <= 0:
            raise ValueError("hour_profile weights must not all be 0")
        return v


class Lounge(_Spec):
    """A discharge lounge: ``capacity`` chairs open from ``opens`` to ``closes``.

    A share ``eligible`` of patients going home whose discharge falls within opening hours move
    to the lounge as soon as they are ready (or when it opens), if that frees the bed at least
    ``min_gain_h`` earlier and a chair is free; they leave at their discharge time.
    """

    capacity: int = Field(ge=1)
    opens: str = "08:00"
    closes: str = "20:00"
    eligible: Probability = 0.6
    min_gain_h: NonNegative = 0.5

    @model_validator(mode="after")
    def _hours(self) -> Lounge:
        if not clock_minutes(self.opens) < clock_minutes(self.closes):
            raise ValueError(f"opens ({self.opens}) must be before closes ({self.closes})")
        return self


class StartTime(_Spec):
    """Where the model clock starts when no start date is given: a weekday and a clock time."""

    weekday: Weekday = "Mon"
    time: str = "00:00"

    @field_validator("time")
    @classmethod
    def _clock(cls, v: str) -> str:
        clock_minutes(v)
        return v

    @property
    def week_minute(self) -> float:
        """Minutes after Monday 00:00."""
        return float(WEEKDAYS.index(self.weekday) * 1440 + clock_minutes(self.time))


class RunSettings(_Spec):
    """Default run length and warm-up (chosen with MSER-5, see :func:`choose_warmup`)."""

    days: Positive = 365.0
    warmup_days: NonNegative = 0.0


class HospitalSpec(_Spec):
    """A whole hospital: ED, inpatient units, admission streams, discharge profile."""

    name: str
    description: str = ""
    timezone: str = "UTC"
    start: StartTime = Field(default_factory=StartTime)
    run: RunSettings = Field(default_factory=RunSettings)
    ed: EmergencyDepartment | None = None
    units: dict[str, Unit] = Field(default_factory=dict)
    admissions: dict[str, AdmissionStream] = Field(default_factory=dict)
    turnaround: Distribution | None = None
    discharge: Discharge = Field(default_factory=Discharge)
    lounge: Lounge | None = None

    @field_validator("timezone")
    @classmethod
    def _tz(cls, v: str) -> str:
        try:
            ZoneInfo(v)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError(
                f"unknown time zone {v!r} (an IANA name such as Europe/London)"
            ) from None
        return v

    @model_validator(mode="after")
    def _references(self) -> HospitalSpec:
        problems = list(_reference_problems(self))
        if problems:
            raise ValueError("; ".join(problems))
        return self

    @property
    def tz(self) -> ZoneInfo:
        """The hospital's time zone (clock times in the file are local to it)."""
        return ZoneInfo(self.timezone)

    def unit_names(self) -> dict[str, str]:
        """Every name a census may use (unit names, aliases, the ED's) -> spec unit name."""
        names: dict[str, str] = {}
        if self.ed is not None:
            for n in (self.ed.name, *self.ed.aliases):
                names[n] = self.ed.name
        for u, unit in self.units.items():
            for n in (u, *unit.aliases):
                names[n] = u
        return names

    def class_names(self) -> list[str]:
        """ED acuity classes, then admission streams (the keys ``los_by_class`` accepts)."""
        return [*(self.ed.classes if self.ed else ()), *self.admissions]


def _reference_problems(spec: HospitalSpec) -> list[str]:
    """Cross-references between sections, each message naming its path."""
    out: list[str] = []
    units = set(spec.units)
    classes = set(spec.class_names())
    ed = spec.ed
    if ed is not None:
        if ed.name in units:
            out.append(f"ed.name: {ed.name!r} is also a unit name")
        resources_ = set(ed.resources)
        for pname, steps in ed.pathways.items():
            users = {c for c, k in ed.classes.items() if k.pathway == pname}
            seen: set[str] = set()
            for i, step in enumerate(steps):
                where = f"ed.pathways.{pname}[{i}]"
                if step.name in seen:
                    out.append(f"{where}.name: step {step.name!r} appears twice in the pathway")
                seen.add(step.name)
                for field in ("seize", "use"):
                    for j, r in enumerate(getattr(step, field)):
                        if r not in resources_:
                            out.append(
                                f"{where}.{field}[{j}]: unknown resource {r!r} "
                                f"(known: {', '.join(sorted(resources_)) or 'none'})"
                            )
                for field in ("duration_by_class", "probability_by_class"):
                    for c in getattr(step, field):
                        if c not in users:
                            out.append(
                                f"{where}.{field}.{c}: class {c!r} does not follow pathway "
                                f"{pname!r} (it has {', '.join(sorted(users)) or 'none'})"
                            )
        for cname, k in ed.classes.items():
            if k.pathway not in ed.pathways:
                out.append(
                    f"ed.classes.{cname}.pathway: unknown pathway {k.pathway!r} "
                    f"(known: {', '.join(ed.pathways)})"
                )
            if k.admission is not None:
                for u in k.admission.units:
                    if u not in units:
                        out.append(
                            f"ed.classes.{cname}.admission.units.{u}: unknown unit {u!r} "
                            f"(known: {', '.join(units) or 'none'})"
                        )
    for uname, unit in spec.units.items():
        for u in unit.next:
            if u not in units:
                out.append(f"units.{uname}.next.{u}: unknown unit {u!r}")
        for c in unit.los_by_class:
            if c not in classes:
                out.append(
                    f"units.{uname}.los_by_class.{c}: unknown class {c!r} "
                    f"(known: {', '.join(sorted(classes)) or 'none'})"
                )
    for aname, stream in spec.admissions.items():
        if stream.unit not in units:
            out.append(f"admissions.{aname}.unit: unknown unit {stream.unit!r}")
        if ed is not None and aname in ed.classes:
            out.append(f"admissions.{aname}: name clashes with an ED class")
    names: dict[str, str] = {}
    for owner, ns in ([("ed", [ed.name, *ed.aliases])] if ed else []) + [
        (f"units.{u}", [u, *unit.aliases]) for u, unit in spec.units.items()
    ]:
        for n in ns:
            if n in names and names[n] != owner:
                out.append(f"{owner}.aliases: name {n!r} is also used by {names[n]}")
            names[n] = owner
    return out


# -- loading -----------------------------------------------------------------------------


def _format_loc(loc: tuple[int | str, ...]) -> str:
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        elif part in _TAGS:
            continue  # the discriminator tag pydantic adds inside a distribution
        else:
            out += f".{part}" if out else str(part)
    return out


_TAGS = {
    "exponential",
    "lognormal",
    "gamma",
    "normal",
    "triangular",
    "uniform",
    "fixed",
    "function-after[_ordered(), Triangular]",
    "function-after[_ordered(), Uniform]",
}


def validation_message(exc: ValidationError, prefix: str = "") -> str:
    """One line per error: ``path: message``."""
    lines = []
    for err in exc.errors():
        loc = _format_loc(tuple(err["loc"]))
        msg = str(err["msg"]).removeprefix("Value error, ")
        path = ".".join(p for p in (prefix, loc) if p)
        lines.append(f"{path}: {msg}" if path else msg)
    return "\n".join(lines)


def _bundled(name: str) -> Path | None:
    base = resources.files("medtwin.hospital").joinpath("data")
    for ext in (".yaml", ".yml", ".json"):
        p = base.joinpath(name + ext)
        if p.is_file():
            return Path(str(p))
    return None


def load_hospital(source: HospitalSpec | Mapping[str, Any] | str | Path) -> HospitalSpec:
    """Read and validate a hospital: a spec, a dict, a YAML/JSON path or a bundled name.

    Raises :class:`~medtwin.errors.ConfigurationError` naming the file and each bad field.

    >>> load_hospital({"name": "x", "units": {"W": {"beds": 0, "los": {"dist": "fixed",
    ...                "value": 2, "unit": "d"}}}})
    Traceback (most recent call last):
    ...
    medtwin.errors.ConfigurationError: invalid hospital x:
    units.W.beds: Input should be greater than or equal to 1
    """
    if isinstance(source, HospitalSpec):
        return source
    origin = "hospital"
    if isinstance(source, (str, Path)):
        path = Path(source)
        if not path.exists():
            bundled = _bundled(str(source))
            if bundled is None:
                raise ConfigurationError(
                    f"no hospital file {str(source)!r} (and no bundled example "
                    "of that name: try 'example_hospital')"
                )
            path = bundled
        origin = str(path)
        try:
            text = path.read_text()
            data = json.loads(text) if path.suffix == ".json" else yaml.safe_load(text)
        except (OSError, yaml.YAMLError, json.JSONDecodeError) as exc:
            raise ConfigurationError(f"cannot read hospital file {origin}: {exc}") from exc
        if not isinstance(data, dict):
            raise ConfigurationError(f"{origin}: a hospital file holds a mapping at the top")
    else:
        data = dict(source)
        origin = f"hospital {data.get('name', '')}".strip()
    try:
        return HospitalSpec.model_validate(data)
    except ValidationError as exc:
        raise ConfigurationError(f"invalid {origin}:\n{validation_message(exc)}") from None
