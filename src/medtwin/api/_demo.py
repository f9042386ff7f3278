"""The demo `make run` starts: a dozen virtual patients whose CGMs stream in, in accelerated time.

The patients come from the virtual-patient bench (:func:`medtwin.twin.make_bench`): UVA/Padova
patients with intraday insulin sensitivity, unannounced and mis-estimated meals and a simulated CGM
with noise and dropouts.  Each has a CGM device with its own device token, and every reading goes
through :meth:`Service.ingest_device_message`, the path MQTT messages take: token checked,
audited, stored, then assimilated by the patient's twin.  Logged insulin and carbohydrate arrive
as events when their time comes.

Time runs ``speed`` times faster than the wall clock (60: a 5-minute CGM reading every 5 s) from
two days ago until the stream catches up with now, then in real time; the first ``preload_h``
hours arrive at once so the twins start straight away.  No reading is ever dated in the future.
"""

from __future__ import annotations

import logging
import threading
from datetime import UTC, datetime
from typing import cast

import pandas as pd

from medtwin.api._service import Service
from medtwin.errors import ConflictError, NotFoundError
from medtwin.history import PatientHistory
from medtwin.records import DeviceRecord, EventKind, EventRecord, PatientRecord
from medtwin.twin import make_bench

__all__ = ["Demo"]

log = logging.getLogger("medtwin.demo")

_UNITS = {"bolus": "U", "basal": "U/h", "carbs": "g"}
DAYS_BEHIND = 2
"""The demo's day starts this many days ago and streams, accelerated, up to now ..."""
DAYS_AHEAD = 2
"""... then goes on in real time for this many days."""


class Demo:
    """Virtual patients streaming into a :class:`Service` (see the module docstring)."""

    def __init__(
        self,
        service: Service,
        *,
        n_patients: int = 12,
        speed: float = 60.0,
        preload_h: float = 3.0,
        seed: int = 7,
    ) -> None:
        self.service = service
        self.n_patients = n_patients
        self.speed = speed
        self.preload_h = preload_h
        self.seed = seed
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.n_sent = 0

    def setup(self) -> list[str]:
        """Create the demo patients and their CGM devices (once; a restart reuses them)."""
        store = self.service.store
        ids = []
        for i in range(self.n_patients):
            pid = f"demo-{i + 1:02d}"
            ids.append(pid)
            try:
                store.get_patient(pid)
            except NotFoundError:
                store.add_patient(
                    PatientRecord(
                        id=pid,
                        identifier=f"urn:medtwin:demo|MRN-{1000 + i}",
                        name=f"Demo Patient {i + 1:02d} (virtual)",
                        sex="female" if i % 2 else "male",
                        source_id=f"demo:Patient/{pid}",
                    )
                )
                store.add_device(DeviceRecord(f"cgm-{pid}", pid, "cgm", "medtwin", "virtual CGM"))
        return ids

    def start(self) -> None:
        """Simulate the patients and start streaming (in a background thread)."""
        self._thread = threading.Thread(target=self._run, name="medtwin-demo", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        """Stop streaming."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=10)

    def _run(self) -> None:
        try:
            self._stream()
        except Exception:  # the demo must never take the service down with it
            log.exception("the demo stream stopped")

    def _stream(self) -> None:
        ids = self.setup()
        now = pd.Timestamp(datetime.now(UTC)).floor("5min")
        start = now - pd.Timedelta(days=DAYS_BEHIND)
        bench = make_bench(
            self.n_patients, days=DAYS_BEHIND + DAYS_AHEAD, seed=self.seed, start=start.isoformat()
        )
        tokens = {pid: self.service.device_token(f"cgm-{pid}") for pid in ids}
        step = pd.Timedelta(minutes=5)
        t = start + pd.Timedelta(hours=self.preload_h)
        # the preload: everything up to t at once, so the twins start immediately
        for pid, patient in zip(ids, bench, strict=True):
            self._send(pid, tokens[pid], patient.history, start - step, t)
        end = start + pd.Timedelta(days=DAYS_BEHIND + DAYS_AHEAD)
        tick_s = 300.0 / self.speed
        while not self._stop.is_set() and t < end:
            nxt = t + step
            # accelerated until the stream catches up with the wall clock, then in real time:
            # a reading is never dated in the future
            ahead_s = (nxt - pd.Timestamp(datetime.now(UTC))).total_seconds()
            if ahead_s > 0 and self._stop.wait(ahead_s):
                return
            for pid, patient in zip(ids, bench, strict=True):
                self._send(pid, tokens[pid], patient.history, t, nxt)
            t = nxt
            self._stop.wait(tick_s)

    def _send(self, pid: str, token: str, history: PatientHistory, after: pd.Timestamp,
              until: pd.Timestamp) -> None:  # fmt: skip
        cgm, events = history.cgm, history.events
        ev = events[(events["time"] > after) & (events["time"] <= until)]
        if len(ev):
            records = [
                EventRecord(pid, cast("EventKind", str(k)), _utc(tm), float(v), _UNITS[str(k)],
                            source_id=f"demo:{pid}:{k}:{int(tm.value // 60_000_000_000)}")
                for tm, k, v in zip(ev["time"], ev["kind"], ev["value"], strict=True)
            ]  # fmt: skip
            try:
                self.service.ingest_records(events=records)
            except ConflictError:
                log.warning("demo events for %s conflict with stored ones; skipped", pid)
        rows = cgm[(cgm["time"] > after) & (cgm["time"] <= until)]
        if not len(rows):
            return
        times = [_utc(x) for x in rows["time"]]
        minutes = [int(x.timestamp() // 300) for x in times]
        # Readings are numbered by their 5-minute slot: a restarted demo never reuses a number.
        for first in range(0, len(times), 500):
            chunk = slice(first, first + 500)
            seqs = minutes[chunk]
            if seqs != list(range(seqs[0], seqs[0] + len(seqs))):
                for tm, v, seq in zip(times[chunk], rows["glucose_mg_dl"].iloc[chunk], seqs,
                                      strict=True):  # fmt: skip
                    self._message(pid, token, [tm], [float(v)], seq)
            else:
                values = [float(v) for v in rows["glucose_mg_dl"].iloc[chunk]]
                self._message(pid, token, times[chunk], values, seqs[0])

    def _message(self, pid: str, token: str, times: list[datetime], values: list[float],
                 first_seq: int) -> None:  # fmt: skip
        message = {"token": token, "first_seq": first_seq, "times": times, "values": values,
                   "code": "99504-3", "unit": "mg/dL"}  # fmt: skip
        try:
            self.service.ingest_device_message(f"cgm-{pid}", message)
            self.n_sent += len(values)
        except ConflictError:
            log.warning("demo readings of %s conflict with stored ones; skipped", pid)


def _utc(t: pd.Timestamp) -> datetime:
    return pd.Timestamp(t).tz_convert("UTC").to_pydatetime()
