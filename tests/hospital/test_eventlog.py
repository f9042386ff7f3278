from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pandas as pd
import pytest

from medtwin.errors import ConfigurationError, ConflictError, DataFormatError
from medtwin.hospital._records import ADTEvent
from medtwin.hospital.eventlog import (
    COLUMNS,
    read_event_log,
    stays_from_events,
    visits_from_events,
    write_event_log,
)
from medtwin.hospital.synthetic import synthetic_adt_stream

HEADER = ",".join(COLUMNS)
GOOD = [
    "m1,A04,2026-01-05T08:00:00+01:00,P1,V1,ED,3,,,E,2,E,2026-01-05T08:00:05+01:00",
    "m2,A01,2026-01-05T12:00:00Z,P1,V1,MED,12,ED,3,I,2,E,",
    "m3,A02,2026-01-06T12:00:00Z,P1,V1,ICU,1,MED,12,I,1,E,",
    "m4,A03,2026-01-08T12:00:00Z,P1,V1,ICU,1,,,I,1,E,",
]


def write(tmp_path, lines, name="adt.csv"):
    path = tmp_path / name
    path.write_text("\n".join(lines) + "\n")
    return path


def test_read_an_event_log(tmp_path):
    events = read_event_log(write(tmp_path, [HEADER, *GOOD]))
    assert events[0] == ADTEvent(
        "m1",
        "A04",
        datetime(2026, 1, 5, 7, tzinfo=UTC),
        "P1",
        "V1",
        unit="ED",
        bed="3",
        patient_class="E",
        acuity="2",
        admission_type="E",
        recorded_at=datetime(2026, 1, 5, 7, 0, 5, tzinfo=UTC),
    )
    assert [e.event_type for e in events] == ["A04", "A01", "A02", "A03"]
    assert events[2].prior_unit == "MED" and events[1].recorded_at is None


def test_minimal_columns_any_order_and_unknown_columns(tmp_path):
    path = write(
        tmp_path,
        [
            "note,visit_id,patient_id,occurred_at,event_type,message_id,unit,patient_class",
            "hello,V1,P1,2026-01-05T08:00:00Z,a04,m1,ED,E",
            "",
            "bye,V1,P1,2026-01-05T09:00:00Z,A03,m2,,",
        ],
    )
    events = read_event_log(path)
    assert [(e.event_type, e.unit) for e in events] == [("A04", "ED"), ("A03", None)]


def test_write_then_read_is_the_identity(tmp_path):
    events = synthetic_adt_stream(days=1, seed=8).events
    path = tmp_path / "out.csv"
    write_event_log(events, path)
    assert read_event_log(path) == events


def test_times_without_offset_need_a_zone(tmp_path):
    lines = [HEADER, "m1,A04,2026-07-05T08:00:00,P1,V1,ED,,,,E,,,"]
    with pytest.raises(DataFormatError, match="has no UTC offset"):
        read_event_log(write(tmp_path, lines))
    [event] = read_event_log(write(tmp_path, lines), tz="Europe/Berlin")
    assert event.occurred_at == datetime(2026, 7, 5, 6, tzinfo=UTC)  # summer time
    with pytest.raises(ConfigurationError, match="time zone"):
        read_event_log(write(tmp_path, lines), tz="Nowhere/Else")


BAD_ROWS = {
    "unknown event": ("m9,A05,2026-01-09T08:00:00Z,P1,V1,ED,,,,E,,,", "event_type", "'A05' is not"),
    "bad time": ("m9,A04,2026-01-09T25:00:00Z,P1,V1,ED,,,,E,,,", "occurred_at", "cannot read"),
    "date only": ("m9,A04,2026-01-09,P1,V1,ED,,,,E,,,", "occurred_at", "no time of day"),
    "no offset": ("m9,A04,2026-01-09T08:00:00,P1,V1,ED,,,,E,,,", "occurred_at", "no UTC offset"),
    "no time": ("m9,A04,,P1,V1,ED,,,,E,,,", "occurred_at", "is empty"),
    "bad recorded": (
        "m9,A04,2026-01-09T08:00:00Z,P1,V1,ED,,,,E,,,soon",
        "recorded_at",
        "cannot read",
    ),
    "no id": (",A04,2026-01-09T08:00:00Z,P1,V1,ED,,,,E,,,", "message_id", "is empty"),
    "no patient": ("m9,A04,2026-01-09T08:00:00Z,,V1,ED,,,,E,,,", "patient_id", "is empty"),
    "no visit": ("m9,A04,2026-01-09T08:00:00Z,P1,,ED,,,,E,,,", "visit_id", "is empty"),
    "bad class": ("m9,A04,2026-01-09T08:00:00Z,P1,V1,ED,,,,X,,,", "patient_class", "'X' is not"),
    "admit nowhere": ("m9,A01,2026-01-09T08:00:00Z,P1,V1,,,,,I,,,", "unit", "an A01 needs"),
    "transfer from nowhere": (
        "m9,A02,2026-01-09T08:00:00Z,P1,V1,ICU,,,,I,,,",
        "prior_unit",
        "an A02 transfer needs",
    ),
    "same id other data": (
        "m2,A01,2026-01-05T13:00:00Z,P1,V1,MED,12,ED,3,I,2,E,",
        "message_id",
        "'m2' is also on line 3 with other content",
    ),
}


@pytest.mark.parametrize("case", list(BAD_ROWS))
def test_malformed_rows_name_file_line_row_and_column(tmp_path, case):
    row, column, reason = BAD_ROWS[case]
    path = write(tmp_path, [HEADER, *GOOD[:2], row, *GOOD[2:]])
    with pytest.raises(DataFormatError) as info:
        read_event_log(path)
    message = str(info.value)
    assert message.startswith(f"{path}, line 4 (row 3), column {column!r}: "), message
    assert reason in message


def test_malformed_files(tmp_path):
    with pytest.raises(DataFormatError, match="line 1: the file is empty"):
        read_event_log(write(tmp_path, [""]))
    with pytest.raises(DataFormatError, match="missing columns 'occurred_at', 'visit_id'"):
        read_event_log(write(tmp_path, ["message_id,event_type,patient_id"]))
    with pytest.raises(
        DataFormatError, match=r"line 3 \(row 2\): 14 cells where the header has 13"
    ):
        read_event_log(write(tmp_path, [HEADER, GOOD[0], GOOD[1] + ",extra"]))


def test_identical_rows_are_kept_for_the_census_to_ignore(tmp_path):
    events = read_event_log(write(tmp_path, [HEADER, *GOOD, GOOD[1]]))
    assert len(events) == 5
    assert len(stays_from_events(events)) == 3


# -- stays and visits: what calibration reads -------------------------------------------------


def test_stays_and_visits_of_one_path(tmp_path):
    events = read_event_log(write(tmp_path, [HEADER, *GOOD]))
    stays = stays_from_events(events)
    assert stays.columns.tolist() == [
        "visit_id",
        "patient_id",
        "stay",
        "unit",
        "bed",
        "start",
        "end",
        "los_hours",
        "exit",
        "next_unit",
        "patient_class",
        "acuity",
    ]
    assert stays[["unit", "los_hours", "exit", "patient_class", "acuity"]].values.tolist() == [
        ["ED", 5.0, "transfer", "E", "2"],
        ["MED", 24.0, "transfer", "I", "2"],
        ["ICU", 48.0, "discharge", "I", "1"],
    ]
    assert isinstance(stays["start"].dtype, pd.DatetimeTZDtype) and stays["start"].dt.tz == UTC
    visits = visits_from_events(events)
    row = visits.iloc[0]
    assert row["path"] == "ED>MED>ICU" and row["ed_los_hours"] == 5.0
    assert row["los_hours"] == 77.0 and row["admitted"]
    assert (row["acuity"], row["final_acuity"], row["patient_class"], row["final_class"]) == (
        "2",
        "1",
        "E",
        "I",
    )


def test_open_stays_and_empty_input():
    t = datetime(2026, 1, 5, tzinfo=UTC)
    events = [ADTEvent("m1", "A04", t, "P1", "V1", unit="ED", patient_class="E")]
    stays = stays_from_events(events)
    assert stays.loc[0, "exit"] == "open" and pd.isna(stays.loc[0, "end"])
    assert pd.isna(stays.loc[0, "los_hours"])
    visit = visits_from_events(events).iloc[0]
    assert pd.isna(visit["ed_departure"]) and pd.isna(visit["discharged_at"])
    assert stays_from_events([]).empty and visits_from_events([]).empty
    assert visits_from_events([]).columns.tolist()[:3] == ["visit_id", "patient_id", "arrived_at"]


def test_conflicting_events_are_refused():
    t = datetime(2026, 1, 5, tzinfo=UTC)
    a = ADTEvent("m1", "A04", t, "P1", "V1", unit="ED", patient_class="E")
    with pytest.raises(ConflictError):
        stays_from_events([a, ADTEvent("m1", "A04", t, "P1", "V1", unit="AMU", patient_class="E")])


def test_stays_recover_the_real_stays_of_a_messy_stream():
    stream = synthetic_adt_stream(days=5, seed=21)  # cancels, resends, late delivery
    stays = stays_from_events(stream.events)
    found = {
        (r.visit_id, r.unit, r.start, None if pd.isna(r.end) else r.end) for r in stays.itertuples()
    }
    expected = {
        (v.visit_id, s.unit, s.start, s.end) for v in stream.visits for s in v.stays if not v.ghost
    }
    assert found == expected
    visits = visits_from_events(stream.events).set_index("visit_id")
    real = [v for v in stream.visits if not v.ghost]
    assert set(visits.index) == {v.visit_id for v in real}
    for v in real[::7]:
        row = visits.loc[v.visit_id]
        assert row["arrived_at"] == v.arrived_at
        assert (None if pd.isna(row["discharged_at"]) else row["discharged_at"]) == v.discharged_at
        first = v.stays[0]
        if first.unit == "ED":
            left = first.end
            assert (None if pd.isna(row["ed_departure"]) else row["ed_departure"]) == left
    # what calibration gets: ED dispositions and lengths of stay
    ed = stays[stays.unit == "ED"]
    routing = ed.exit.where(ed.exit != "transfer", ed.next_unit).value_counts(normalize=True)
    assert 0.55 < routing["discharge"] < 0.8 and routing["ICU"] < routing["MED"]
    closed = ed[ed.exit != "open"]
    assert 2 < closed.los_hours.median() < 6
    hourly = visits[visits.first_unit == "ED"].arrived_at.dt.hour.value_counts()
    assert hourly.loc[12] > 2 * hourly.loc[4]


def test_a_long_stream_in_seconds():
    events = synthetic_adt_stream(days=10, seed=1).events
    start = datetime.now(UTC)
    stays = stays_from_events(events)
    visits_from_events(events)
    assert datetime.now(UTC) - start < timedelta(seconds=10)
    assert len(stays) > len(visits_from_events(events[:100]))
