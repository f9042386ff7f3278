"""The twins the service hosts: each stored CGM reading updates its patient's twin.

Ingestion (HTTP, MQTT, FHIR, Nightscout) commits readings to the store first and then calls
:meth:`TwinHost.submit`; a worker thread takes each patient with new readings, assimilates them
all in one ``observe`` (readings that arrive while the twin is busy coalesce), computes the risks,
stores and pushes alerts, and pushes the update to WebSocket subscribers.  A worker takes every
patient waiting at once: their twins' filter updates run as one vectorised step and their risks
come from one forecast (:func:`~medtwin.twin.observe_many`, ``forecast_many``), so a ward
whose devices share a clock does not queue at each minute behind one twin after another.

A twin is created when a patient first has an hour of CGM: it starts from the population prior
(:class:`~medtwin.calibrate.PriorCalibrator`) and its particle filter personalises the parameters
as readings arrive.  Twins are saved to the store every ``save_every`` updates and on shutdown; a
restarted service restores each twin and replays the readings stored since it was saved.

Alerts are edge-triggered: one alert when a risk rises through the threshold, a new one only after
it has fallen below it again.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import queue
import threading
import time
from collections import defaultdict, deque
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import numpy as np
import pandas as pd

from medtwin.api._broadcast import Broadcaster
from medtwin.api._settings import Settings
from medtwin.assimilate import ParticleFilter
from medtwin.calibrate import PriorCalibrator
from medtwin.errors import ConfigurationError, NotFoundError
from medtwin.history import PatientHistory
from medtwin.models import UvaPadova2008
from medtwin.records import AlertRecord
from medtwin.simulate import Schedule
from medtwin.twin import Forecast, Twin, forecast_many, observe_many

__all__ = ["RISKS", "RiskSpec", "TwinHost", "alert_json", "trend_arrow"]

log = logging.getLogger("medtwin.host")

CGM = "99504-3"
MIN_READINGS = 12
"""A twin needs an hour of 5-minute CGM readings before it starts."""
MAX_BATCH = 256
"""At most this many patients' twins are updated in one round of a worker."""
HISTORY_DAYS = 3
MAX_GAP = pd.Timedelta(hours=12)
"""A gap in the readings after which a twin restarts from the recent readings."""


@dataclass(frozen=True, slots=True)
class RiskSpec:
    """A risk the host watches: probability of crossing a threshold within a window."""

    kind: str
    below: float | None
    above: float | None
    window_min: float


RISKS = (
    RiskSpec("hypoglycaemia", 70.0, None, 30.0),
    RiskSpec("hyperglycaemia", None, 250.0, 60.0),
)


class TwinHost:
    """Keeps one twin per monitored patient in sync with the store (see the module docstring)."""

    def __init__(self, store: Any, broadcaster: Broadcaster, settings: Settings) -> None:
        self.store = store
        self.broadcaster = broadcaster
        self.settings = settings
        self.model = UvaPadova2008()
        self._twins: dict[str, Twin] = {}
        self._locks: defaultdict[str, threading.Lock] = defaultdict(threading.Lock)
        # patient -> (time submitted, [(reading time, mg/dL), ...]) waiting for the worker
        self._pending: dict[str, list[tuple[float, list[tuple[datetime, float]]]]] = {}
        self._recent: defaultdict[str, deque[tuple[pd.Timestamp, float]]] = defaultdict(
            lambda: deque(maxlen=64)
        )
        self._pending_lock = threading.Lock()
        self._queue: queue.Queue[str | None] = queue.Queue()
        self._updates: defaultdict[str, int] = defaultdict(int)
        self._above: dict[tuple[str, str], bool] = {}
        self._latest: dict[str, dict[str, Any]] = {}
        self._workers: list[threading.Thread] = []
        self._idle = threading.Condition()
        self._busy = 0
        self.latencies_s: deque[float] = deque(maxlen=100_000)

    # -- lifecycle -------------------------------------------------------------------------------

    def start(self, n_workers: int = 1, *, warm_up: bool = True) -> None:
        """Start the worker threads (and compile the batched update in the background)."""
        for i in range(n_workers):
            worker = threading.Thread(target=self._work, name=f"medtwin-twins-{i}", daemon=True)
            worker.start()
            self._workers.append(worker)
        if warm_up:
            threading.Thread(target=self._warm_up, name="medtwin-warm-up", daemon=True).start()

    def _warm_up(self) -> None:
        """Compile the batched update and risk forecast on two synthetic twins.

        Otherwise the first minute at which many twins advance together pays the compilation
        (about a second), and every reading that waits for it.
        """
        try:
            times = pd.date_range("2000-01-01", periods=MIN_READINGS, freq="5min", tz="UTC")
            history = PatientHistory.from_frames(
                pd.DataFrame({"time": times, "glucose_mg_dl": 120.0})
            )
            twins = [
                Twin(
                    self.model,
                    calibrator=PriorCalibrator(self.model),
                    filter=ParticleFilter(self.model, n_members=self.settings.n_members, seed=k),
                    seed=k,
                ).fit(history)
                for k in range(2)
            ]
            for minutes in (1, 5):  # a device's reading every minute, a CGM's every 5
                at = twins[0].now + pd.Timedelta(minutes=minutes)
                reading = PatientHistory.from_frames(
                    pd.DataFrame({"time": [at], "glucose_mg_dl": [120.0]})
                )
                observe_many(twins, [reading, reading])
            _risks_many(twins)
        except Exception:  # only a slower first batch: never a reason to stop the service
            log.exception("warming up the batched twin updates failed")

    def stop(self, *, save: bool = True) -> None:
        """Finish queued work, stop the workers and save every twin."""
        for _ in self._workers:
            self._queue.put(None)
        for worker in self._workers:
            worker.join(timeout=30)
        self._workers.clear()
        if save:
            for patient_id in list(self._twins):
                with self._locks[patient_id]:
                    self._save(patient_id)

    def submit(self, patient_id: str, readings: Sequence[tuple[datetime, float]] = ()) -> None:
        """Tell the host that these CGM readings of ``patient_id`` were stored (returns at once).

        Called with no readings when only the patient's events (insulin, carbohydrate) changed.
        """
        stamp = time.perf_counter()
        with self._pending_lock:
            first = patient_id not in self._pending
            self._pending.setdefault(patient_id, []).append((stamp, list(readings)))
        if first:
            with self._idle:
                self._busy += 1
            self._queue.put(patient_id)

    def events_changed(self, patient_id: str) -> None:
        """Logged events of the patient were stored: the twin takes them in at its next update."""
        self.submit(patient_id, ())

    def wait_idle(self, timeout_s: float = 30.0) -> bool:
        """Block until every submitted reading has been assimilated (for tests and the demo)."""
        deadline = time.monotonic() + timeout_s
        with self._idle:
            while self._busy:
                left = deadline - time.monotonic()
                if left <= 0:
                    return False
                self._idle.wait(left)
        return True

    # -- what the API asks ---------------------------------------------------------------------

    def twin(self, patient_id: str) -> Twin:
        """The patient's twin (restored from the store if needed); NotFoundError if none yet."""
        with self._locks[patient_id]:
            twin = self._twins.get(patient_id) or self._restore(patient_id)
        if twin is None:
            raise NotFoundError(
                f"patient {patient_id!r} has no twin yet: it starts after {MIN_READINGS} CGM "
                "readings (an hour)"
            )
        return twin

    def latest(self, patient_id: str) -> dict[str, Any] | None:
        """The last update pushed for the patient (glucose, trend, risks), if any."""
        return self._latest.get(patient_id)

    def forecast(
        self, patient_id: str, horizon_min: float = 240.0, scenario: Schedule | None = None
    ) -> Forecast:
        """The twin's forecast from now (see :meth:`medtwin.twin.Twin.forecast`)."""
        twin = self.twin(patient_id)
        with self._locks[patient_id]:
            return twin.forecast(horizon_min, scenario)

    def risks(self, patient_id: str) -> dict[str, float]:
        """Probability of each watched risk within its window."""
        twin = self.twin(patient_id)
        with self._locks[patient_id]:
            return _risks(twin)

    def risk(
        self,
        patient_id: str,
        event: str,
        *,
        within_min: float,
        below: float | None = None,
        above: float | None = None,
    ) -> float:
        """Probability of one event (see :meth:`medtwin.twin.Twin.risk`)."""
        twin = self.twin(patient_id)
        with self._locks[patient_id]:
            return twin.risk(event, below=below, above=above, within_min=within_min)

    def compare(
        self, patient_id: str, scenarios: Mapping[str, Schedule | None], horizon_min: float
    ) -> pd.DataFrame:
        """What-if scenarios side by side (see :meth:`medtwin.twin.Twin.compare`)."""
        twin = self.twin(patient_id)
        with self._locks[patient_id]:
            return twin.compare(scenarios, horizon_min)

    # -- the worker ------------------------------------------------------------------------------

    def _work(self) -> None:
        while True:
            patient_id = self._queue.get()
            if patient_id is None:
                return
            # Every patient already waiting joins this round: twins that advance together (a
            # ward's devices share a clock) are updated in one vectorised step, not one by one.
            entries = [patient_id]
            last_round = False
            while len(entries) < MAX_BATCH:
                try:
                    nxt = self._queue.get_nowait()
                except queue.Empty:
                    break
                if nxt is None:  # this worker's stop signal: finish the round, then stop
                    last_round = True
                    break
                entries.append(nxt)
            ids = sorted(set(entries))
            with self._pending_lock:
                taken = {pid: self._pending.pop(pid, []) for pid in ids}
            try:
                with contextlib.ExitStack() as locks:
                    for pid in ids:  # in sorted order: two workers cannot deadlock
                        locks.enter_context(self._locks[pid])
                    self._update_many({pid: [r for _, rs in taken[pid] for r in rs] for pid in ids})
            except Exception:  # a failure of the round must not stop the worker
                log.exception("twin updates failed for patients %s", ", ".join(ids))
            finally:
                done = time.perf_counter()
                self.latencies_s.extend(
                    done - stamp for pid in ids for stamp, rs in taken[pid] for _ in rs
                )
                with self._idle:
                    self._busy -= len(entries)
                    self._idle.notify_all()
            if last_round:
                return

    def _update_many(self, readings: dict[str, list[tuple[datetime, float]]]) -> None:
        """Update the patients' twins (their locks held): one batch for those that advance."""
        ready: dict[str, tuple[Twin, float]] = {}  # patient -> (twin, its clock before)
        observing: dict[str, PatientHistory] = {}
        for patient_id, new_readings in readings.items():
            try:
                got = self._prepare(patient_id, new_readings)
                if got is None:
                    continue
                twin, before, data = got
                ready[patient_id] = (twin, before)
                if data is not None:
                    observing[patient_id] = data
            except Exception:  # one patient's failure must not stop the others' twins
                log.exception("twin update failed for patient %s", patient_id)
        if observing:
            ids = list(observing)
            results = observe_many(
                [ready[pid][0] for pid in ids],
                [observing[pid] for pid in ids],
                return_exceptions=True,
            )
            for pid, result in zip(ids, results, strict=True):
                if isinstance(result, Exception):
                    log.error("twin update failed for patient %s", pid, exc_info=result)
                    del ready[pid]
        advanced = []
        for patient_id, (twin, before) in ready.items():
            self._twins[patient_id] = twin
            self._updates[patient_id] += 1
            if self._updates[patient_id] % self.settings.save_every == 0:
                try:
                    self._save(patient_id)
                except Exception:
                    log.exception("saving the twin of patient %s failed", patient_id)
            # The model's clock counts whole minutes: readings within the same minute as the
            # last one are stored but leave the twin (and so its risks) as they were.
            if float(twin.ensemble_.t) > before or patient_id not in self._latest:
                advanced.append(patient_id)
        risks: dict[str, dict[str, float]] = {}
        try:
            risks = dict(zip(advanced, _risks_many([ready[p][0] for p in advanced]), strict=True))
        except Exception:  # the batch failed: one by one, so the error names the patient
            for patient_id in advanced:
                try:
                    risks[patient_id] = _risks(ready[patient_id][0])
                except Exception:
                    log.exception("twin update failed for patient %s", patient_id)
                    del ready[patient_id]
        for patient_id, (twin, before) in ready.items():
            try:
                moved = float(twin.ensemble_.t) > before
                self._publish(patient_id, twin, moved, risks.get(patient_id))
            except Exception:
                log.exception("publishing the update of patient %s failed", patient_id)

    def _prepare(
        self, patient_id: str, readings: list[tuple[datetime, float]]
    ) -> tuple[Twin, float, PatientHistory | None] | None:
        """The patient's twin, its clock, and the data it is to observe (None: nothing to)."""
        recent = self._recent[patient_id]
        for t, v in sorted(readings):
            recent.append((pd.Timestamp(t), float(v)))
        twin = self._twins.get(patient_id) or self._restore(patient_id)
        if twin is None:
            return self._create(patient_id)
        before = float(twin.ensemble_.t)
        new = [(t, v) for t, v in readings if pd.Timestamp(t) > twin.now]
        last = max((pd.Timestamp(t) for t, _ in new), default=None)
        if last is not None and last - twin.now > MAX_GAP:
            # After a long gap (a sensor off for days) the twin's state says nothing about
            # now: start again from the recent readings instead of integrating the gap.
            log.info("patient %s: %s without readings; restarting the twin", patient_id,
                     last - twin.now)  # fmt: skip
            return self._create(patient_id)
        if last is not None and _minute(twin, last) > twin.ensemble_.t:
            return twin, before, self._new_data(patient_id, twin, new)
        return twin, before, None

    def _new_data(
        self, patient_id: str, twin: Twin, new: list[tuple[datetime, float]]
    ) -> PatientHistory:
        """The new readings (from the ingestion, no store read) and the events since the twin."""
        cgm = pd.DataFrame(
            {"time": pd.to_datetime([t for t, _ in new], utc=True),
             "glucose_mg_dl": [float(v) for _, v in new]}
        )  # fmt: skip
        since = (twin.now - pd.Timedelta(minutes=1)).to_pydatetime()
        events = [
            e for e in self.store.events(patient_id, start=since) if e.kind in _TWIN_EVENT_KINDS
        ]
        frame = pd.DataFrame(
            {
                "time": pd.to_datetime([e.time for e in events], utc=True),
                "kind": [e.kind for e in events],
                "value": [float(e.value) for e in events],
            }
        )
        # Validated by the store already (UTC times, finite values): skip from_frames' checks,
        # which would cost more than the filter update itself.
        return PatientHistory(cgm, frame, (), patient_id, "ingestion")

    def _publish(
        self,
        patient_id: str,
        twin: Twin,
        advanced: bool = True,
        risks: dict[str, float] | None = None,
    ) -> None:
        previous = self._latest.get(patient_id)
        if risks is None:
            risks = _risks(twin) if advanced or previous is None else dict(previous["risks"])
        recent = self._recent[patient_id]
        glucose = recent[-1][1] if recent else float("nan")
        trend = _trend(recent)
        update = {
            "type": "update",
            "patient_id": patient_id,
            "time": twin.now.isoformat(),
            "glucose_mg_dl": None if np.isnan(glucose) else glucose,
            "trend_mg_dl_per_min": trend,
            "risks": risks,
            "n_readings": twin.n_readings_,
        }
        self._latest[patient_id] = update
        self.broadcaster.publish(patient_id, update)
        if not advanced:
            return
        for spec in RISKS:
            p = risks[spec.kind]
            key = (patient_id, spec.kind)
            above = p >= self.settings.alert_threshold
            if above and not self._above.get(key, False):
                self._raise_alert(patient_id, twin, spec, p)
            self._above[key] = above

    def _raise_alert(self, patient_id: str, twin: Twin, spec: RiskSpec, p: float) -> None:
        level = (
            f"below {spec.below:g} mg/dL"
            if spec.below is not None
            else f"above {spec.above:g} mg/dL"
        )
        alert = self.store.add_alert(
            AlertRecord(
                patient_id=patient_id,
                time=twin.now.to_pydatetime(),
                kind=spec.kind,
                probability=round(p, 4),
                threshold=self.settings.alert_threshold,
                window_min=spec.window_min,
                model=type(twin.model).__name__,
                message=(
                    f"{spec.kind}: {100 * p:.0f}% probability of glucose {level} within "
                    f"{spec.window_min:g} min"
                ),
            )
        )
        self.broadcaster.publish(patient_id, {"type": "alert", **alert_json(alert)})

    # -- creating, saving and restoring twins --------------------------------------------------

    def _history(self, patient_id: str, since: datetime) -> PatientHistory:
        obs = self.store.observations_frame(patient_id, code=CGM, start=since)
        cgm = pd.DataFrame(
            {"time": pd.to_datetime(obs["time"], utc=True), "glucose_mg_dl": obs["value"]}
        )
        events = [
            e for e in self.store.events(patient_id, start=since) if e.kind in _TWIN_EVENT_KINDS
        ]
        frame = pd.DataFrame(
            {
                "time": pd.to_datetime([e.time for e in events], utc=True),
                "kind": [e.kind for e in events],
                "value": [float(e.value) for e in events],
            }
        )
        return PatientHistory.from_frames(cgm, frame, patient_id=patient_id, source="store")

    def _create(self, patient_id: str) -> tuple[Twin, float, PatientHistory] | None:
        """A new twin at its first reading, and the history it is to observe (None: too few).

        The history is assimilated with the round's other twins (new twins of a ward start
        together), not here one by one.
        """
        since = datetime.now(UTC) - timedelta(days=3650)
        history = self._history(patient_id, since)
        if len(history.cgm) < MIN_READINGS:
            return None
        last = history.cgm["time"].iloc[-1]
        # the readings since the last gap longer than MAX_GAP, at most HISTORY_DAYS of them
        times = history.cgm["time"]
        gaps = times.diff() > MAX_GAP
        first = times[gaps].iloc[-1] if gaps.any() else times.iloc[0]
        first = max(first, last - pd.Timedelta(days=HISTORY_DAYS))
        events = history.events
        basal = events[(events["kind"] == "basal") & (events["time"] < first)].tail(1)
        history = history.between(first, last + pd.Timedelta(1))
        if len(history.cgm) < MIN_READINGS:
            return None
        if len(basal):  # the basal rate in force when the window starts
            carried = basal.assign(time=first)
            history = PatientHistory.from_frames(
                history.cgm, pd.concat([carried, history.events], ignore_index=True),
                patient_id=patient_id, source="store",
            )  # fmt: skip
        seed = int.from_bytes(hashlib.sha256(patient_id.encode()).digest()[:4], "big")
        twin = Twin(
            self.model,
            calibrator=PriorCalibrator(self.model),
            filter=ParticleFilter(self.model, n_members=self.settings.n_members, seed=seed),
            seed=seed,
        )
        twin.fit(history, assimilate=False)
        tail = history.cgm.tail(64)
        self._recent[patient_id] = deque(
            zip(tail["time"], tail["glucose_mg_dl"].astype(float), strict=True), maxlen=64
        )
        log.info("twin started for patient %s from %d readings", patient_id, len(history.cgm))
        return twin, -np.inf, history

    def _save(self, patient_id: str) -> None:
        twin = self._twins.get(patient_id)
        if twin is not None:
            self.store.save_twin(
                patient_id,
                twin.to_bytes(),
                model=type(twin.model).__name__,
                as_of=twin.now.to_pydatetime(),
            )

    def _restore(self, patient_id: str) -> Twin | None:
        blob = self.store.load_twin(patient_id)
        if blob is None:
            return None
        try:
            twin = Twin.from_bytes(blob, name=f"twin of patient {patient_id}")
        except ConfigurationError:
            log.exception("stored twin of %s cannot be read; starting a new one", patient_id)
            return None
        new = self._history(patient_id, twin.now.to_pydatetime())
        if len(new.cgm) and new.cgm["time"].iloc[-1] - twin.now > MAX_GAP:
            return None  # too old to continue from: _update starts a new twin
        if len(new.cgm):
            twin.observe(new)
        self._twins[patient_id] = twin
        return twin


_TWIN_EVENT_KINDS = frozenset({"bolus", "basal", "carbs"})


def _minute(twin: Twin, t: pd.Timestamp) -> float:
    """The twin's clock reading (whole minutes since its origin) for time ``t``."""
    return float(np.round((t - twin.origin_).total_seconds() / 60.0))


def _risks(twin: Twin) -> dict[str, float]:
    """Every watched risk from one forecast over the longest window.

    Each is what ``Twin.risk`` gives: the weighted share of members that cross the threshold
    within the window; one forecast instead of one per risk halves the cost of an update.
    """
    horizon = max(spec.window_min for spec in RISKS)
    return _risks_from(twin.forecast(horizon, with_sensor_noise=False))


def _risks_many(twins: Sequence[Twin]) -> list[dict[str, float]]:
    """:func:`_risks` of several twins, their forecasts from one run of the engine."""
    if not twins:
        return []
    horizon = max(spec.window_min for spec in RISKS)
    return [
        _risks_from(fc)
        for fc in forecast_many(twins, horizon, with_sensor_noise=False, with_bands=False)
    ]


def _risks_from(fc: Forecast) -> dict[str, float]:
    weights = fc.weights / np.sum(fc.weights)
    out = {}
    for spec in RISKS:
        inside = fc.members[:, (fc.t_min > 0) & (fc.t_min <= spec.window_min + 1e-9)]
        hit = np.zeros(inside.shape[0], dtype=bool)
        if spec.below is not None:
            hit |= (inside < spec.below).any(axis=1)
        if spec.above is not None:
            hit |= (inside > spec.above).any(axis=1)
        out[spec.kind] = round(float(np.sum(weights * hit)), 4)
    return out


def _trend(recent: Sequence[tuple[pd.Timestamp, float]]) -> float | None:
    """Rate of change over the last 20 minutes (mg/dL/min), as a CGM's trend arrow shows it."""
    if len(recent) < 2:
        return None
    newest = recent[-1][0]
    window = [(t, v) for t, v in recent if newest - t <= pd.Timedelta(minutes=20)]
    minutes = np.array([(t - window[0][0]).total_seconds() / 60.0 for t, _ in window])
    if minutes[-1] < 5:
        return None
    slope = np.polyfit(minutes, np.array([v for _, v in window]), 1)[0]
    return round(float(slope), 2)


def alert_json(alert: AlertRecord) -> dict[str, Any]:
    """An alert as the API and WebSocket messages show it."""
    return {
        "id": alert.id,
        "patient_id": alert.patient_id,
        "time": alert.time.isoformat(),
        "kind": alert.kind,
        "probability": alert.probability,
        "threshold": alert.threshold,
        "window_min": alert.window_min,
        "model": alert.model,
        "message": alert.message,
        "acknowledged_by": alert.acknowledged_by,
    }


def trend_arrow(slope: float | None) -> str:
    """Dexcom-style arrow for a rate of change in mg/dL/min."""
    if slope is None:
        return ""
    for limit, arrow in ((-3, "⇊"), (-2, "↓"), (-1, "↘"), (1, "→"), (2, "↗"), (3, "↑")):
        if slope < limit:
            return arrow
    return "⇈"
