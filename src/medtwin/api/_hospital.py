"""The hospital twin the service hosts: a hospital spec, its live census, forecasts, what-ifs.

ADT events reach :meth:`HospitalHost.ingest` from every path (HTTP HL7 v2 batches, FHIR
Encounters, the MLLP listener, the demo), always the same way:

1. the whole batch is checked (no visit may change patient, nothing dated in the future),
2. stored in one transaction (:meth:`medtwin.store.Store.ingest_adt`: idempotent by message id,
   a conflicting resubmission is a 409 and nothing of the batch is stored),
3. applied to the :class:`~medtwin.hospital.census.Census` in memory.

What the service acknowledged is therefore on disk first, and at start-up the census is rebuilt
from the stored events (:meth:`HospitalHost.load`), in the order they were accepted: the census
is event-sourced, so it ends in the same state whatever that order.

Forecasts (:func:`medtwin.hospital.forecast`) start from the census and are cached by census
version: a request gets the cached forecast while the census has not changed, or while it is
younger than ``max_age_s``; heavy computations (forecasts, scenario comparisons) run one at a
time and within a budget of simulated time, so no request can run for ever.
"""

from __future__ import annotations

import logging
import math
import threading
import time
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import pandas as pd

from medtwin.errors import ConfigurationError, ConflictError, DataFormatError
from medtwin.hospital import (
    ADTEvent,
    CensusForecast,
    CensusSnapshot,
    Comparison,
    HospitalSpec,
    compare,
    forecast,
    load_hospital,
)
from medtwin.hospital.census import Census, CensusChange
from medtwin.hospital.scenario import as_scenario

__all__ = [
    "FORECAST_BUDGET_REPLICATION_HOURS",
    "SCENARIO_BUDGET_DAYS",
    "AdtOutcome",
    "CachedForecast",
    "HospitalHost",
]

log = logging.getLogger("medtwin.hospital")

FORECAST_BUDGET_REPLICATION_HOURS = 14_400
"""A forecast may simulate at most this many replication-hours (200 replications of 72 h)."""
SCENARIO_BUDGET_DAYS = 1_500
"""A scenario comparison may simulate at most this many hospital-days, all runs together."""


@dataclass(frozen=True, slots=True)
class AdtOutcome:
    """What ingesting one event did: stored now or before, and what the census made of it."""

    event: ADTEvent
    stored: bool
    change: CensusChange


@dataclass(frozen=True, slots=True)
class CachedForecast:
    """A forecast, the census version it started from, and when it was computed."""

    forecast: CensusForecast
    version: int
    census_at: datetime
    computed_at: datetime
    elapsed_s: float


@dataclass(eq=False)
class HospitalHost:
    """The hosted hospital twin (see the module docstring); thread-safe."""

    store: Any
    spec: HospitalSpec
    forecast_max_age_s: float = 300.0
    census: Census = field(default_factory=Census)
    version: int = 0
    _visits: dict[str, str] = field(default_factory=dict, repr=False)
    _lock: threading.RLock = field(default_factory=threading.RLock, repr=False)
    _compute: threading.Lock = field(default_factory=threading.Lock, repr=False)
    _forecasts: dict[tuple[int, int, int], CachedForecast] = field(default_factory=dict, repr=False)

    @classmethod
    def open(cls, store: Any, source: HospitalSpec | Mapping[str, Any] | str) -> HospitalHost:
        """The host of the hospital ``source`` (a spec, a file, a bundled name), census loaded."""
        host = cls(store, load_hospital(source))
        host.load()
        return host

    # -- the census ------------------------------------------------------------------------------

    def load(self) -> int:
        """Rebuild the census from every stored event (in the order accepted); their number."""
        started = time.perf_counter()
        events = self.store.adt_events()
        census = Census()
        visits: dict[str, str] = {}
        for event in events:
            try:
                census.apply(event)
            except (ConflictError, DataFormatError) as exc:  # stored before a rule tightened
                log.warning("stored ADT event %s not applied: %s", event.message_id, exc)
                continue
            visits.setdefault(event.visit_id, event.patient_id)
        with self._lock:
            self.census, self._visits = census, visits
            self.version += 1
            self._forecasts.clear()
        log.info(
            "hospital %s: census rebuilt from %d stored ADT events in %.1f s (%d patients in)",
            self.spec.name,
            len(events),
            time.perf_counter() - started,
            len(census),
        )
        return len(events)

    def ingest(self, events: Sequence[ADTEvent], *, source: str = "api") -> list[AdtOutcome]:
        """Check, store (one transaction) and apply a batch of events; one outcome each.

        Raises ConflictError (a visit of another patient, a message id stored with other
        content) or DataFormatError before anything is stored.
        """
        events = list(events)
        with self._lock:
            claimed: dict[str, tuple[str, str]] = {}
            for e in events:
                owner = self._visits.get(e.visit_id)
                if owner is None and e.visit_id in claimed:
                    owner = claimed[e.visit_id][0]
                if owner is not None and owner != e.patient_id:
                    raise ConflictError(
                        f"message {e.message_id}: visit {e.visit_id} belongs to another patient "
                        "than this message names (PID-3 / PV1-19 mismatch); nothing of this batch "
                        "was stored"
                    )
                claimed.setdefault(e.visit_id, (e.patient_id, e.message_id))
                _check_event(e)
            result = self.store.ingest_adt(events, source=source)
            stored = set(result.ids)  # the first of repeats within the batch is the one stored
            outcomes = []
            for e in events:
                try:
                    change = self.census.apply(e)
                except (ConflictError, DataFormatError):  # checked above: a bug if it happens
                    log.exception("census refused stored ADT event %s; rebuilding", e.message_id)
                    self.load()
                    raise
                self._visits.setdefault(e.visit_id, e.patient_id)
                if change.status == "applied":
                    self.version += 1
                outcomes.append(AdtOutcome(e, e.message_id in stored, change))
                stored.discard(e.message_id)
            return outcomes

    @property
    def now(self) -> datetime | None:
        """The time the census is up to (its latest event), ``None`` while empty."""
        with self._lock:
            return self.census.now

    def unit_of(self, name: str) -> str | None:
        """The spec's unit (or ED) a census unit name means, ``None`` if the spec lacks it."""
        return self.spec.unit_names().get(name)

    def ed_spaces(self) -> int | None:
        """Cubicles and bays of the ED (fixed-capacity resources a pathway step seizes)."""
        ed = self.spec.ed
        if ed is None:
            return None
        seized = {r for steps in ed.pathways.values() for s in steps for r in s.seize}
        caps = [ed.resources[r].capacity for r in sorted(seized) if r in ed.resources]
        return sum(c for c in caps if c is not None) or None

    def census_view(self, *, with_patients: bool) -> dict[str, Any]:
        """Occupancy per unit against capacity (and, ``with_patients``, who is in which bed)."""
        with self._lock:
            census = self.census
            counts = census.counts()
            occupants = list(census.occupants.values()) if with_patients else []
            issues = census.issues
            now, version = census.now, self.version
            applied, duplicates = census.n_applied, census.n_duplicates
            boarding = sum(
                1
                for o in census.occupants.values()
                if self.spec.ed is not None
                and self.unit_of(o.unit) == self.spec.ed.name
                and o.patient_class == "I"
            )
        by_unit: Counter[str] = Counter()
        unknown: dict[str, int] = {}
        for name, n in counts.items():
            unit = self.unit_of(name)
            if unit is None:
                unknown[name] = n
            else:
                by_unit[unit] += n
        units: list[dict[str, Any]] = []
        if self.spec.ed is not None:
            spaces = self.ed_spaces()
            n = by_unit[self.spec.ed.name]
            units.append(
                {
                    "unit": self.spec.ed.name,
                    "kind": "ed",
                    "occupied": n,
                    "capacity": spaces,
                    "occupancy": None if not spaces else round(n / spaces, 4),
                    "boarding": boarding,
                }
            )
        for name, ward in self.spec.units.items():
            n = by_unit[name]
            units.append(
                {
                    "unit": name,
                    "kind": "ward",
                    "occupied": n,
                    "capacity": ward.beds,
                    "occupancy": round(n / ward.beds, 4),
                    "boarding": None,
                }
            )
        beds = sum(u.beds for u in self.spec.units.values())
        in_beds = sum(by_unit[u] for u in self.spec.units)
        out: dict[str, Any] = {
            "hospital": self.spec.name,
            "as_of": now,
            "version": version,
            "units": units,
            "unknown_units": unknown,
            "inpatients": in_beds,
            "beds": beds,
            "occupancy": round(in_beds / beds, 4) if beds else None,
            "events_applied": applied,
            "events_duplicate": duplicates,
            "issues": dict(sorted(Counter(i.kind for i in issues).items())),
        }
        if with_patients:
            out["patients"] = [
                {
                    "unit": o.unit,
                    "bed": o.bed,
                    "visit_id": o.visit_id,
                    "patient_id": o.patient_id,
                    "unit_since": o.unit_since,
                    "arrived_at": o.arrived_at,
                    "patient_class": o.patient_class,
                    "acuity": o.acuity,
                }
                for o in sorted(occupants, key=lambda o: (o.unit, o.bed or "", o.visit_id))
            ]
            out["issue_list"] = [
                {
                    "kind": i.kind,
                    "detail": i.detail,
                    "visit_ids": list(i.visit_ids),
                    "message_id": i.message_id,
                }
                for i in issues
            ]
        return out

    def history(
        self, freq: str, start: datetime | None = None, end: datetime | None = None
    ) -> pd.DataFrame:
        """Occupancy per spec unit on a regular grid (``freq``) from ``start`` to ``end``."""
        with self._lock:
            frame = self.census.history(freq=freq, start=start, end=end)
        if frame.empty:
            return frame
        grouped: dict[str, pd.Series] = {}
        for name in frame.columns:
            unit = self.unit_of(str(name)) or str(name)
            grouped[unit] = grouped[unit] + frame[name] if unit in grouped else frame[name]
        return pd.DataFrame(grouped, index=frame.index)

    def snapshot(self) -> tuple[CensusSnapshot, int]:
        """The census now and its version."""
        with self._lock:
            return self.census.snapshot(), self.version

    # -- looking ahead ---------------------------------------------------------------------------

    def forecast(
        self,
        horizon_hours: int = 72,
        *,
        replications: int = 40,
        seed: int = 0,
        max_age_s: float | None = None,
    ) -> tuple[CachedForecast, bool]:
        """The forecast from the census (cached); and whether it predates the census now."""
        if replications * horizon_hours > FORECAST_BUDGET_REPLICATION_HOURS:
            raise ConfigurationError(
                f"replications x horizon_hours = {replications * horizon_hours} is over the "
                f"budget of {FORECAST_BUDGET_REPLICATION_HOURS} replication-hours; ask for fewer "
                "replications or a shorter horizon"
            )
        age = self.forecast_max_age_s if max_age_s is None else max_age_s
        key = (int(horizon_hours), int(replications), int(seed))

        def usable() -> tuple[CachedForecast, bool] | None:
            with self._lock:
                hit = self._forecasts.get(key)
                version = self.version
            if hit is None:
                return None
            if hit.version == version:
                return hit, False
            fresh = (datetime.now(UTC) - hit.computed_at).total_seconds() <= age
            return (hit, True) if fresh else None

        found = usable()
        if found is not None:
            return found
        with self._compute:  # one heavy computation at a time; a waiting twin request reuses it
            found = usable()
            if found is not None:
                return found
            snapshot, version = self.snapshot()
            started = time.perf_counter()
            fc = forecast(self.spec, snapshot, horizon_hours, replications=replications, seed=seed)
            cached = CachedForecast(
                fc, version, snapshot.at, datetime.now(UTC), time.perf_counter() - started
            )
            with self._lock:
                self._forecasts[key] = cached
                if len(self._forecasts) > 16:
                    del self._forecasts[
                        min(self._forecasts, key=lambda k: self._forecasts[k].computed_at)
                    ]
            return cached, version != self.version

    def compare(
        self,
        scenarios: Mapping[str, Mapping[str, Any]],
        *,
        replications: int,
        days: float,
        from_census: bool,
        warmup_days: float | None = None,
        seed: int = 0,
    ) -> tuple[Comparison, dict[str, Any]]:
        """Scenarios against the baseline (common random numbers), from the census or empty."""
        warm = 0.0 if from_census else (
            self.spec.run.warmup_days if warmup_days is None else float(warmup_days)
        )  # fmt: skip
        total = (1 + len(scenarios)) * replications * (days + warm)
        if total > SCENARIO_BUDGET_DAYS:
            raise ConfigurationError(
                f"(1 + {len(scenarios)} scenarios) x {replications} replications x "
                f"({days:g} + {warm:g} warm-up) days = {total:g} simulated days is over the budget "
                f"of {SCENARIO_BUDGET_DAYS}; ask for fewer replications, scenarios or days"
            )
        for name, settings in scenarios.items():  # a bad scenario is refused before any run
            scenario = as_scenario({**settings, "name": name})
            assert scenario is not None
            scenario.apply(self.spec)
        snapshot = None
        if from_census:
            snapshot, _ = self.snapshot()
        with self._compute:
            started = time.perf_counter()
            result = compare(
                self.spec,
                {name: dict(s) for name, s in scenarios.items()},
                replications=replications,
                days=days,
                warmup_days=warm,
                seed=seed,
                snapshot=snapshot,
            )
        meta = {
            "census_at": snapshot.at if snapshot is not None else None,
            "simulated_days": total,
            "elapsed_s": round(time.perf_counter() - started, 2),
        }
        return result, meta


def _check_event(e: ADTEvent) -> None:
    """What :meth:`Census.apply` would refuse, checked before anything is stored."""
    who = f"message {e.message_id!r}"
    for name in ("message_id", "patient_id", "visit_id"):
        value = getattr(e, name)
        if not isinstance(value, str) or not value.strip():
            raise DataFormatError(f"{who}: {name} is empty; nothing of this batch was stored")
    if e.event_type in ("A01", "A02", "A04") and not e.unit:
        raise DataFormatError(
            f"{who}: an {e.event_type} needs the unit the patient is in (PV1-3); nothing of this "
            "batch was stored"
        )
    if e.patient_class is not None and e.patient_class not in ("E", "I", "O"):
        raise DataFormatError(f"{who}: patient class must be E, I or O, got {e.patient_class!r}")


def finite(x: Any, digits: int = 3) -> float | None:
    """A JSON number: rounded, and ``None`` for NaN or infinity."""
    v = float(x)
    return round(v, digits) if math.isfinite(v) else None
