"""The demo's ADT feed: the hospital's own flow model written as ADT events, fed live."""

from __future__ import annotations

import datetime as dt

import pytest

from medtwin.api import Service, Settings
from medtwin.api import _hospital_demo as demo
from medtwin.hospital import forecast, load_hospital
from medtwin.interop.hl7v2 import build_adt_message, parse_adt_message


@pytest.fixture(scope="module")
def spec():
    return load_hospital("example_hospital")


def test_restarts_resubmit_and_another_feed_retires_the_old_patients(tmp_path, spec, monkeypatch):
    monkeypatch.setattr(demo, "WEEKS_BEHIND", 1)
    monkeypatch.setattr(demo, "DAYS_AHEAD", 0.05)
    service = Service.open(Settings(home=tmp_path, n_members=100))
    try:
        service.open_hospital(spec)
        first = demo.HospitalDemo(service, seed=1)
        first.catch_up()
        stored = service.store.count_adt_events()
        census = service.hospital_host().census
        assert stored > 1000 and len(census) > 50
        assert census.now <= dt.datetime.now(dt.UTC)
        assert census.issues == []
        # the live part goes through HL7 v2 text: the same events as those stored directly
        events = service.store.adt_events()
        assert all(parse_adt_message(build_adt_message(e)) == e for e in events[:300])
        # the twin can forecast from the census the feed made
        fc = forecast(spec, census.snapshot(), horizon_hours=2, replications=2, seed=1)
        assert fc.samples["occupied:medicine"][0, 0] == census.counts()["medicine"]
        again = demo.HospitalDemo(service, seed=1)
        again.catch_up()
        assert service.store.count_adt_events() == stored  # the same events: duplicates
        old = set(census.occupants)
        other = demo.HospitalDemo(service, seed=2)
        other.catch_up()
        census = service.hospital_host().census
        assert not old & set(census.occupants)  # the first feed's patients were discharged
        assert len(census) > 50 and census.issues == []
    finally:
        service.close()
