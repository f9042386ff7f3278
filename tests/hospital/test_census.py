from __future__ import annotations

import dataclasses
import functools
import random
import time
from datetime import UTC, datetime, timedelta, timezone

import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from medtwin.errors import ConflictError, DataFormatError
from medtwin.hospital._records import ADTEvent, Occupant
from medtwin.hospital.census import Census
from medtwin.hospital.synthetic import synthetic_adt_stream
from medtwin.interop.hl7v2 import parse_adt_message

T0 = datetime(2026, 1, 5, 8, tzinfo=UTC)


def at(hours: float) -> datetime:
    return T0 + timedelta(hours=hours)


def ev(mid: str, kind: str, hours: float, visit: str = "V1", **fields) -> ADTEvent:
    patient = fields.pop("patient", "P1")
    return ADTEvent(mid, kind, at(hours), patient, visit, **fields)


ARRIVE = ev("m1", "A04", 0, unit="ED", bed="ED-3", patient_class="E", acuity="2")
ADMIT = ev(
    "m2", "A01", 4, unit="MED", bed="12", prior_unit="ED", prior_bed="ED-3", patient_class="I"
)
MOVE = ev("m3", "A02", 30, unit="ICU", bed="1", prior_unit="MED", prior_bed="12")
BACK = ev("m4", "A02", 60, unit="MED", bed="7", prior_unit="ICU", prior_bed="1")
LEAVE = ev("m5", "A03", 100, unit="MED", bed="7")
PATH = [ARRIVE, ADMIT, MOVE, BACK, LEAVE]


def state(census: Census) -> tuple:
    # (an empty census's snapshot is labelled with the wall clock: compare its occupants)
    return (
        census.snapshot().occupants,
        census.now,
        census.counts(),
        census.beds(),
        census.issues,
        census.n_applied,
    )


def test_a_visit_from_arrival_to_discharge():
    census = Census()
    changes = [census.apply(e) for e in PATH[:3]]
    assert [c.status for c in changes] == ["applied"] * 3
    assert changes[0].before is None and changes[0].after.unit == "ED"
    assert census.occupants["V1"] == Occupant("V1", "P1", "ICU", "1", at(30), at(0), "I", "2")
    assert census.counts() == {"ICU": 1} and census.beds() == {"ICU": {"1": ("V1",)}}
    assert census.now == at(30) and len(census) == 1 and "V1" in census
    census.apply(BACK)
    change = census.apply(LEAVE)
    assert change.changed and change.after is None and len(census) == 0
    assert [(t, o and o.unit) for t, o in census.timeline("V1")] == [
        (at(0), "ED"),
        (at(4), "MED"),
        (at(30), "ICU"),
        (at(60), "MED"),
        (at(100), None),
    ]
    # the past, event-sourced
    assert census.snapshot(at(29.9)).counts() == {"MED": 1}
    assert census.snapshot(at(30)).counts() == {"ICU": 1}  # an event counts from its time
    assert census.snapshot(at(-1)).occupants == ()
    assert census.snapshot(at(70)).occupants[0].unit_since == at(60)
    assert census.counts(at(2)) == {"ED": 1}
    with pytest.raises(ValueError, match="timezone-aware"):
        census.snapshot(datetime(2026, 1, 5))


def test_times_in_any_zone_are_kept_in_utc():
    local = dataclasses.replace(ARRIVE, occurred_at=at(0).astimezone(timezone(timedelta(hours=5))))
    census = Census.from_events([local])
    assert census.occupants["V1"].arrived_at == at(0)
    assert census.occupants["V1"].arrived_at.tzinfo is UTC


def test_duplicates_change_nothing_and_conflicts_are_refused_whole():
    census = Census.from_events(PATH[:3])
    before = state(census)
    resent = dataclasses.replace(MOVE, recorded_at=at(31))  # MSH-7 of a resend may differ
    change = census.apply(resent)
    assert change.status == "duplicate" and not change.changed
    assert census.n_duplicates == 1
    # a resend under a new message id with the same content is a duplicate too
    change = census.apply(dataclasses.replace(MOVE, message_id="m3-again"))
    assert (change.status, change.duplicate_of) == ("duplicate", "m3")
    assert state(census) == before
    with pytest.raises(
        ConflictError,
        match=r"message m3 was applied with other content \(differs "
        r"in unit",
    ):
        census.apply(dataclasses.replace(MOVE, unit="CCU"))
    with pytest.raises(ConflictError, match="visit V1 belongs to patient P1, not P2"):
        census.apply(ev("m9", "A08", 31, patient="P2", acuity="1"))
    assert state(census) == before


@pytest.mark.parametrize(
    ("event", "reason"),
    [
        (ev(" ", "A04", 1, unit="ED", patient_class="E"), "message_id is empty"),
        (ev("x1", "A04", 1, visit="", unit="ED", patient_class="E"), "visit_id is empty"),
        (ev("x2", "A04", 1, patient="", unit="ED", patient_class="E"), "patient_id is empty"),
        (ev("x3", "A01", 1, patient_class="I"), "an A01 .* needs the unit"),
        (ev("x4", "A02", 1, prior_unit="ED"), "an A02 .* needs the unit"),
        (ev("x5", "A04", 1, unit="ED", patient_class="X"), "patient_class must be"),
        ("not an event", "expected an ADTEvent"),
    ],
)
def test_invalid_events_are_rejected_and_nothing_changes(event, reason):
    census = Census.from_events(PATH[:2])
    before = state(census)
    with pytest.raises(DataFormatError, match=reason):
        census.apply(event)
    assert state(census) == before


def test_late_events_land_in_their_place():
    census = Census()
    changes = [census.apply(e) for e in reversed(PATH[:4])]
    assert [c.late for c in changes] == [False, True, True, True]
    assert census.occupants["V1"] == Census.from_events(PATH[:4]).occupants["V1"]
    assert census.occupants["V1"].unit_since == at(60)
    assert census.occupants["V1"].arrived_at == at(0)
    # the transfer came first, before anything said the patient had arrived
    assert changes[0].after.unit == "MED" and changes[0].after.arrived_at == at(60)
    assert {i.kind for i in Census.from_events([BACK]).issues} == {"no-arrival"}
    assert census.issues == []


def test_cancel_admit():
    wrong = ev("w1", "A01", 3, unit="SURG", bed="4", prior_unit="ED", patient_class="I")
    cancel = ev("c1", "A11", 3.5, unit="SURG", patient_class="I")
    census = Census.from_events([ARRIVE, wrong])
    assert census.occupants["V1"].unit == "SURG"
    change = census.apply(cancel)
    assert change.before.unit == "SURG" and change.after == census.occupants["V1"]
    assert census.occupants["V1"] == Occupant("V1", "P1", "ED", "ED-3", at(0), at(0), "E", "2")
    census.apply(ADMIT)
    assert census.occupants["V1"].unit == "MED"
    assert [e.message_id for e in census.events("V1")] == ["m1", "m2"]


def test_cancel_visit_and_the_class_decides_what_an_a11_cancels():
    census = Census.from_events([ARRIVE, ADMIT])
    census.apply(ev("c1", "A11", 5, patient_class="E"))  # a non-admitted patient: the A04
    assert census.occupants["V1"].unit == "MED" and census.occupants["V1"].arrived_at == at(4)
    census.apply(ev("c2", "A11", 6))  # no class: the latest arrival left, the A01
    assert len(census) == 0 and census.issues == []
    census.apply(ev("c3", "A11", 7))
    assert [i.kind for i in census.issues] == ["unmatched-cancel"]


def test_cancel_transfer_matches_where_the_transfer_went():
    census = Census.from_events([ARRIVE, ADMIT, MOVE])
    # an A12 for a transfer MED -> CCU (never sent) cancels nothing ...
    census.apply(ev("c1", "A12", 31, unit="MED", prior_unit="CCU"))
    assert census.occupants["V1"].unit == "ICU"
    assert [i.kind for i in census.issues] == ["unmatched-cancel"]
    # ... the one for MED -> ICU does: the patient is back in MED, in the old bed, since 4 h
    census.apply(ev("c2", "A12", 32, unit="MED", bed="12", prior_unit="ICU"))
    assert census.occupants["V1"] == Occupant("V1", "P1", "MED", "12", at(4), at(0), "I", "2")
    assert [i.kind for i in census.issues] == ["unmatched-cancel"]


def test_cancel_discharge_and_a_cancel_that_arrives_before_its_target():
    cancel = ev("c1", "A13", 101, unit="MED", bed="7")
    census = Census.from_events([*PATH, cancel])
    assert census.occupants["V1"].unit == "MED" and census.occupants["V1"].unit_since == at(60)
    late = Census.from_events([ARRIVE, ADMIT, MOVE, BACK, cancel])
    assert "V1" in late and [i.kind for i in late.issues] == ["unmatched-cancel"]
    change = late.apply(LEAVE)  # the discharge it cancels arrives after the cancel
    assert change.late and not change.changed and late.issues == []


def test_updates():
    census = Census.from_events([ARRIVE, ADMIT])
    census.apply(ev("u1", "A08", 5, unit="MED", bed="14", acuity="1"))
    assert (census.occupants["V1"].bed, census.occupants["V1"].acuity) == ("14", "1")
    assert census.occupants["V1"].unit_since == at(4)
    census.apply(ev("u2", "A08", 6, unit="ICU", bed="2", patient_class="I"))
    assert census.occupants["V1"].unit == "MED"  # a transfer needs an A02
    assert [i.kind for i in census.issues] == ["update-elsewhere"]
    census.apply(ev("u3", "A02", 7, unit="MED", bed="20", prior_unit="MED", prior_bed="14"))
    assert census.occupants["V1"].unit_since == at(4)  # a bed move keeps the unit stay


def test_two_patients_in_one_bed_is_an_issue_not_an_error():
    census = Census.from_events(PATH[:2])
    census.apply(
        ev("n1", "A01", 5, visit="V2", patient="P2", unit="MED", bed="12", patient_class="I")
    )
    [issue] = census.issues
    assert issue.kind == "bed-conflict" and issue.visit_ids == ("V1", "V2")
    assert census.beds() == {"MED": {"12": ("V1", "V2")}}
    census.apply(MOVE)
    assert census.issues == [] and census.beds()["MED"] == {"12": ("V2",)}


def test_history_per_unit():
    census = Census.from_events(
        [*PATH, ev("n1", "A04", 2, visit="V2", patient="P2", unit="ED", patient_class="E")]
    )
    steps = census.history()
    assert steps.index.tz is not None and list(steps.columns) == ["ED", "ICU", "MED"]
    assert steps.loc[at(2)].to_dict() == {"ED": 2, "ICU": 0, "MED": 0}
    assert steps.iloc[-1].to_dict() == {"ED": 1, "ICU": 0, "MED": 0}
    hourly = census.history(freq="1h")
    assert hourly.index[0] == at(0) and hourly.index[-1] == at(100)
    for when in (at(0), at(3), at(4), at(45), at(99)):
        assert hourly.loc[when][hourly.loc[when] > 0].to_dict() == census.counts(when)
    assert Census().history().empty


# -- order independence and duplicates: the census never double-counts -------------------------


@functools.cache
def _one_day():
    return tuple(synthetic_adt_stream(days=1, seed=11, disorder=0.0).events)


@functools.cache
def _reference():
    census = Census.from_events(sorted(_one_day(), key=lambda e: e.occurred_at))
    return census.snapshot(), census.issues, census.history()


@settings(max_examples=12, deadline=None, derandomize=True)
@given(order=st.randoms(use_true_random=False), resend=st.floats(0.0, 0.3))
def test_any_order_with_any_resends_gives_the_same_census(order, resend):
    events = list(_one_day())
    events += [e for e in events if order.random() < resend]
    order.shuffle(events)
    census = Census.from_events(events)
    snapshot, issues, history = _reference()
    assert census.snapshot() == snapshot
    assert census.issues == issues
    pd.testing.assert_frame_equal(census.history(), history)
    assert census.n_applied == len(set(_one_day()))


def test_ten_thousand_admissions_in_any_order_in_seconds():
    events = []
    for v in range(10_000):
        h = v / 15  # a new visit every 4 minutes
        visit = dict(visit=f"V{v}", patient=f"P{v}")
        ward = ("MED", "SURG", "CARD")[v % 3]
        events += [
            ev(
                f"{v}a",
                "A04",
                h,
                unit="ED",
                bed=f"E{v % 50}",
                patient_class="E",
                acuity="3",
                **visit,
            ),
            ev(
                f"{v}b",
                "A01",
                h + 4,
                unit=ward,
                bed=f"{v % 300}",
                prior_unit="ED",
                patient_class="I",
                **visit,
            ),
            ev(f"{v}c", "A08", h + 20, unit=ward, bed=f"{v % 300}", acuity="2", **visit),
            ev(f"{v}d", "A02", h + 30, unit="ICU", bed=f"{v % 40}", prior_unit=ward, **visit),
            ev(f"{v}e", "A03", h + 90, unit="ICU", **visit),
        ]
    random.Random(3).shuffle(events)
    start = time.perf_counter()
    census = Census.from_events(events)
    elapsed = time.perf_counter() - start
    assert elapsed < 5.0, f"50,000 shuffled events took {elapsed:.1f} s"
    assert census.n_applied == 50_000 and len(census) == 0  # everyone discharged in the end
    # at 400 h: arrivals of the last 4 h in the ED, of the 26 h before on the wards, then ICU
    counts = census.counts(at(400))
    assert (counts["ED"], counts["ICU"]) == (60, 900)
    assert counts["MED"] + counts["SURG"] + counts["CARD"] == 390


# -- the done-when test: a synthetic HL7 v2 feed, the census equal to the truth after every event --


def _replay_against_truth(days: float, seed: int) -> None:
    stream = synthetic_adt_stream(days=days, seed=seed, tz="Europe/Berlin")
    assert stream.n_late > 0 and stream.n_resent > 0
    kinds = {d.event.event_type for d in stream.deliveries if d.role == "cancel"}
    assert kinds == {"A11", "A12", "A13"}
    census = Census()
    compared = 0
    for delivery, truth in zip(stream.deliveries, stream.truth(), strict=True):
        event = parse_adt_message(delivery.message)
        assert event == delivery.event
        census.apply(event)
        assert census.occupants == truth, (
            f"delivery {delivery.index} ({delivery.event.message_id}, {delivery.event.event_type} "
            f"of {delivery.event.visit_id}): census and truth differ"
        )
        compared += 1
    assert compared == len(stream.deliveries)
    # every message delivered: the census's past is what really happened
    step = timedelta(hours=7)
    when = stream.start
    while when < stream.end:
        past = {o.visit_id: (o.unit, o.bed) for o in census.snapshot(when).occupants}
        assert past == stream.occupancy_at(when), when
        when += step
    assert all(i.kind != "unmatched-cancel" for i in census.issues)


def test_census_equals_truth_after_every_event_3_days():
    _replay_against_truth(days=3, seed=2026)


@pytest.mark.slow
def test_census_equals_truth_after_every_event_30_days():
    _replay_against_truth(days=30, seed=2026)


def test_the_truth_check_can_fail():
    # a census that ignores cancels, or one that keeps arrival order, must be caught
    stream = synthetic_adt_stream(days=2, seed=5)
    without_cancels = Census()
    naive: dict[str, str] = {}
    caught_cancels = caught_order = False
    for delivery, truth in zip(stream.deliveries, stream.truth(), strict=True):
        e = delivery.event
        if e.event_type not in ("A11", "A12", "A13"):
            without_cancels.apply(e)
        caught_cancels |= without_cancels.occupants != truth
        if e.event_type == "A03":
            naive.pop(e.visit_id, None)
        elif e.event_type in ("A01", "A02", "A04") and e.unit:
            naive[e.visit_id] = e.unit
        caught_order |= naive != {k: o.unit for k, o in truth.items()}
    assert caught_cancels and caught_order


_UNITS = st.sampled_from(["ED", "MED", "ICU", None])


@st.composite
def _events(draw):
    kind = draw(st.sampled_from(["A01", "A02", "A03", "A04", "A08", "A11", "A12", "A13"]))
    return ADTEvent(
        message_id=f"m{draw(st.integers(0, 40))}",
        event_type=kind,
        occurred_at=at(draw(st.integers(0, 48))),
        patient_id=draw(st.sampled_from(["P1", "P2"])),
        visit_id=draw(st.sampled_from(["V1", "V2", "V3"])),
        unit=draw(_UNITS),
        bed=draw(st.sampled_from(["1", "2", None])),
        prior_unit=draw(_UNITS),
        patient_class=draw(st.sampled_from(["E", "I", "O", None])),
        acuity=draw(st.sampled_from(["1", "3", None])),
    )


@settings(max_examples=300, deadline=None)
@given(events=st.lists(_events(), max_size=40), order=st.randoms(use_true_random=False))
def test_random_events_never_break_the_census(events, order):
    census = Census()
    accepted = []
    for event in events:
        before = state(census)
        try:
            change = census.apply(event)
        except (DataFormatError, ConflictError):
            assert state(census) == before  # rejected whole
            continue
        if change.status == "applied":
            accepted.append(event)
        assert sum(census.counts().values()) == len(census)
        in_beds = sorted(v for unit in census.beds().values() for vs in unit.values() for v in vs)
        assert in_beds == sorted(k for k, o in census.occupants.items() if o.bed is not None)
    order.shuffle(accepted)
    again = Census.from_events(accepted)
    assert state(again)[:-1] == state(census)[:-1]
