"""The hospital half of the demo: a live ADT feed of the hosted hospital, in real time.

The feed comes from the hospital's own flow model, so the census it builds is one the twin can
forecast: a run of :func:`medtwin.hospital.simulate` written as the ADT events a hospital's
system would send (:meth:`SimulationRun.adt_events <medtwin.hospital.SimulationRun.adt_events>`:
A04 on ED arrival, A08 when the decision to admit makes the patient a boarder, A01 into a ward
bed, A02 for each transfer, A03 when the patient leaves).

:class:`HospitalDemo` simulates from a Monday five weeks back (the hospital starts empty, so the
first weeks are its warm-up), stores every event up to now at start-up through
:meth:`Service.ingest_adt <medtwin.api._service.Service.ingest_adt>` (the path every ADT feed
takes), then sends each later event when its time comes (a few a minute, as HL7 v2 text through
the parser), for a week.  Identifiers are derived from the start Monday, the spec and the seed,
so a restart in the same week resubmits the same events (duplicates, nothing changes); a
restart in a later week (or with another spec or seed) discharges the patients the earlier
feed left in the census before starting anew.
"""

from __future__ import annotations

import dataclasses
import hashlib
import logging
import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

from medtwin.api._service import Service
from medtwin.errors import MedtwinError
from medtwin.hospital import ADTEvent, simulate
from medtwin.interop.hl7v2 import build_adt_message, parse_adt_message

__all__ = ["DAYS_AHEAD", "WEEKS_BEHIND", "HospitalDemo"]

log = logging.getLogger("medtwin.demo")

WEEKS_BEHIND = 5
"""The simulated hospital opens (empty) on the Monday at least this many weeks before now."""
DAYS_AHEAD = 7
"""After catching up with now, the feed goes on in real time for this many days."""


def _whole_seconds(e: ADTEvent) -> ADTEvent:
    """The event with times in whole seconds, as an HL7 v2 message carries them."""
    at = e.occurred_at.replace(microsecond=0)
    return dataclasses.replace(e, occurred_at=at, recorded_at=at)


class HospitalDemo:
    """The demo's ADT feed into the service's hospital twin (see the module docstring)."""

    def __init__(
        self,
        service: Service,
        *,
        seed: int = 11,
        chunk: int = 2_000,
        after: Callable[[], bool] | None = None,
        after_timeout_s: float = 60.0,
    ) -> None:
        self.service = service
        self.seed = seed
        self.chunk = chunk
        # start once ``after()`` is true (the patients' demo is up: the cores are its first)
        self.after = after
        self.after_timeout_s = after_timeout_s
        self.n_sent = 0
        self.ready = threading.Event()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        """Build the feed, catch up with now and go on live (in a background thread)."""
        self._thread = threading.Thread(target=self._run, name="medtwin-hospital-demo", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        """Stop the feed."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=10)

    def _run(self) -> None:
        try:
            deadline = time.monotonic() + self.after_timeout_s
            while self.after is not None and not self.after() and time.monotonic() < deadline:
                if self._stop.wait(0.5):
                    return
            self._feed()
        except Exception:  # the demo must never take the service down with it
            log.exception("the hospital demo feed stopped")
        finally:
            self.ready.set()

    def _feed(self) -> None:
        rest = self.catch_up()
        while rest and not self._stop.wait(5.0):
            now = datetime.now(UTC)
            n = next((k for k, e in enumerate(rest) if e.occurred_at > now), len(rest))
            if n:
                # the live part goes the way an interface engine sends it: as HL7 v2 text
                self._send([parse_adt_message(build_adt_message(e)) for e in rest[:n]])
                rest = rest[n:]

    def catch_up(self) -> list[ADTEvent]:
        """Build the feed and store every event up to now; the events still to come."""
        host = self.service.hospital_host()
        now = datetime.now(UTC)
        monday = (now - timedelta(weeks=WEEKS_BEHIND)).replace(
            hour=0, minute=0, second=0, microsecond=0
        )
        monday -= timedelta(days=monday.weekday())
        feed = f"{self.seed}:{host.spec.model_dump_json()}"
        digest = hashlib.sha256(feed.encode()).hexdigest()[:6]
        prefix = f"demo{monday:%Y%m%d}{digest}"
        days = (now - monday).total_seconds() / 86400 + DAYS_AHEAD
        run = simulate(host.spec, days=days, warmup_days=0, seed=self.seed, start=monday)
        events = [_whole_seconds(e) for e in run.adt_events(prefix=prefix)]
        self._retire(prefix, now)
        due = [e for e in events if e.occurred_at <= now]
        for i in range(0, len(due), self.chunk):
            if self._stop.is_set():
                return []
            self._send(due[i : i + self.chunk])
        log.info(
            "hospital demo: %d ADT events up to now, %d patients in", len(due), len(host.census)
        )
        self.ready.set()
        return events[len(due) :]

    def _retire(self, prefix: str, now: datetime) -> None:
        """Discharge the patients an earlier demo feed (another week or spec) left behind."""
        host = self.service.hospital_host()
        with host._lock:
            stale = [
                o for o in host.census.occupants.values()
                if o.visit_id.startswith("demo") and not o.visit_id.startswith(prefix)
            ]  # fmt: skip
            last = {o.visit_id: host.census.events(o.visit_id)[-1].occurred_at for o in stale}
        retire = [
            ADTEvent(
                f"{o.visit_id}-retired",
                "A03",
                min(last[o.visit_id] + timedelta(minutes=1), now),
                o.patient_id,
                o.visit_id,
                unit=o.unit,
            )
            for o in stale
        ]
        if retire:
            log.info("hospital demo: discharging %d patients of an earlier demo feed", len(retire))
            self._send(retire)

    def _send(self, events: list[ADTEvent]) -> None:
        try:
            self.service.ingest_adt(events, source="demo")
            self.n_sent += len(events)
        except MedtwinError as exc:
            log.warning("hospital demo: %d ADT events refused: %s", len(events), exc)
