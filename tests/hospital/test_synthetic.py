from __future__ import annotations

import collections
import itertools
from datetime import UTC, datetime, timedelta

import pytest

from medtwin.hospital.synthetic import UNITS, synthetic_adt_stream
from medtwin.interop.hl7v2 import parse_adt_message


@pytest.fixture(scope="module")
def month():
    return synthetic_adt_stream(days=30, seed=42)


def test_a_month_is_about_ten_thousand_visits(month):
    real = [v for v in month.visits if not v.ghost]
    assert 9_000 < len(real) < 11_500
    routes = collections.Counter(v.route for v in real)
    assert routes["ed"] > 7_500 and routes["elective"] > 1_000 and routes["day"] > 300
    admitted = sum(
        any(p.unit in ("MED", "SURG", "CARD", "ICU") for p in v.placements) for v in real
    )
    assert 3_000 < admitted < 6_000
    kinds = collections.Counter(d.event.event_type for d in month.deliveries if not d.resent)
    assert kinds["A04"] > kinds["A01"] > kinds["A02"] > kinds["A08"] > 0
    assert min(kinds["A11"], kinds["A12"], kinds["A13"]) >= 50


def test_disorder_is_about_five_percent(month):
    n = len(month.deliveries)
    assert 0.015 < month.n_resent / n < 0.035
    delayed = sum(
        d.delivered_at - d.event.recorded_at > timedelta(minutes=5) and not d.resent
        for d in month.deliveries
    )
    assert 0.015 < delayed / n < 0.035
    assert month.n_late > delayed  # late also counts natural jitter of a few seconds
    first = {}
    for d in month.deliveries:
        if d.resent:
            assert d.message == first[d.event.message_id]  # the same message resent
        else:
            assert d.event.message_id not in first
            first[d.event.message_id] = d.message


def test_arrivals_and_discharges_follow_the_clock(month):
    ed = collections.Counter(v.arrived_at.hour for v in month.visits if v.route == "ed")
    assert sum(ed[h] for h in range(11, 15)) > 3 * sum(ed[h] for h in range(3, 7))
    inpatient = [
        v.discharged_at.hour
        for v in month.visits
        if v.discharged_at and v.placements[-1].unit in ("MED", "SURG", "CARD")
    ]
    daytime = sum(9 <= h < 19 for h in inpatient)
    assert daytime / len(inpatient) > 0.9
    weekdays = collections.Counter(
        v.arrived_at.weekday() for v in month.visits if v.route == "elective"
    )
    assert weekdays[5] == weekdays[6] == 0


def test_the_real_timeline_is_consistent(month):
    occupied: dict[tuple[str, str], list[tuple[datetime, datetime]]] = collections.defaultdict(list)
    for v in month.visits:
        if v.ghost:
            assert v.placements == () and v.discharged_at is None
            continue
        assert v.placements[0].start == v.arrived_at
        for a, b in zip(v.placements, v.placements[1:], strict=False):
            assert a.end == b.start and a.start < a.end
        assert v.placements[-1].end == v.discharged_at
        for p in v.placements:
            assert p.unit in UNITS
            if p.bed is not None:
                occupied[(p.unit, p.bed)].append((p.start, p.end or month.end))
    for spans in occupied.values():  # in reality no two patients share a bed
        spans.sort()
        for (_, end), (start, _) in itertools.pairwise(spans):
            assert end <= start


def test_every_mistake_is_cancelled_within_the_stream(month):
    roles = collections.Counter(d.role for d in month.deliveries if not d.resent)
    assert roles["mistake"] == roles["cancel"] > 150


def test_messages_parse_to_their_events(month):
    for d in month.deliveries[::97]:
        assert parse_adt_message(d.message) == d.event


def test_truth_iterated_and_afresh_agree_and_end_in_reality():
    stream = synthetic_adt_stream(days=4, seed=3)
    n = len(stream.deliveries)
    checkpoints = {1, n // 3, n // 2, n - 1, n}
    for k, truth in enumerate(stream.truth(), 1):
        if k in checkpoints:
            assert dict(truth) == stream.truth_after(k)
    final = stream.truth_after(n)
    reality = stream.occupancy_at(stream.end - timedelta(microseconds=1))
    assert {k: (o.unit, o.bed) for k, o in final.items()} == reality
    for visit in stream.visits:
        if visit.visit_id in final:
            assert final[visit.visit_id].arrived_at == visit.arrived_at
            assert final[visit.visit_id].unit_since == visit.stays[-1].start


def test_same_seed_same_stream():
    a = synthetic_adt_stream(days=0.5, seed=9)
    b = synthetic_adt_stream(days=0.5, seed=9)
    c = synthetic_adt_stream(days=0.5, seed=10)
    assert a.messages == b.messages and a.messages != c.messages


def test_times_are_written_in_the_zone_asked_for():
    stream = synthetic_adt_stream(days=0.2, seed=1, tz="America/New_York")
    assert "-0500|" in stream.messages[0]
    assert parse_adt_message(stream.messages[0]) == stream.deliveries[0].event


def test_no_errors_no_disorder():
    stream = synthetic_adt_stream(days=1, seed=4, cancel_rate=0, disorder=0)
    assert {d.role for d in stream.deliveries} == {"real"}
    assert stream.n_resent == 0
    times = [d.event.occurred_at for d in stream.deliveries]
    assert sum(a > b + timedelta(minutes=1) for a, b in itertools.pairwise(times)) == 0


@pytest.mark.parametrize(
    "kwargs",
    [
        {"start": datetime(2026, 1, 5)},
        {"cancel_rate": 0.9},
        {"disorder": -0.1},
    ],
)
def test_bad_settings(kwargs):
    with pytest.raises(ValueError):
        synthetic_adt_stream(days=1, **kwargs)


def test_start_is_utc():
    stream = synthetic_adt_stream(days=0.2, seed=1)
    assert stream.start == datetime(2026, 1, 5, tzinfo=UTC)
