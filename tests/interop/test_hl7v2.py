from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta, timezone

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from medtwin.errors import ConfigurationError, DataFormatError
from medtwin.hospital._records import ADT_EVENT_TYPES, ADTEvent
from medtwin.interop.hl7v2 import (
    build_ack,
    build_adt_message,
    frame,
    parse_ack,
    parse_adt_message,
    parse_adt_messages,
    read_adt_file,
    split_messages,
)
from medtwin.interop.hl7v2._timestamp import format_ts, parse_ts


def pv1(
    patient_class: str = "I",
    location: str = "ICU^12^B",
    prior: str = "MED",
    visit: str = "V456",
    **more: str,
) -> str:
    """A PV1 segment with PV1-2, -3, -6, -19 (and PV1-n given as f<n>=...)."""
    fields = {1: "1", 2: patient_class, 3: location, 6: prior, 19: visit}
    fields.update({int(k[1:]): v for k, v in more.items()})
    return "|".join(["PV1", *(fields.get(n, "") for n in range(1, max(fields) + 1))])


# An A02 as a v2.5.1 sender would write it: PD1, PV2 and a Z-segment included, room and bed in
# PV1-3, two patient identifiers (the MRN second), times with offsets.
A02 = [
    "MSH|^~\\&|EPIC|HOSP|MEDTWIN|HOSP|20260105143500+0100||ADT^A02^ADT_A02|MSG00042|P|2.5.1",
    "EVN|A02|20260105143500+0100||||20260105143000+0100",
    "PID|1||987^^^NHS^NH~P123^^^HOSP^MR||DOE^JANE||19700101|F",
    "PD1||||",
    pv1("I", "ICU^12^B^HOSP", "MED^4^A^HOSP", "V456^^^HOSP^VN", f44="20260105080000+0100"),
    "PV2" + "|" * 25 + "2",  # PV2-25 visit priority code
    "ZTR|3",
]


def message(segments: list[str], sep: str = "\r") -> str:
    return sep.join(segments)


def replace(segments: list[str], name: str, new: str | None) -> list[str]:
    out = []
    for s in segments:
        if s.startswith(name + "|"):
            if new is not None:
                out.append(new)
        else:
            out.append(s)
    return out


def test_a02_fields():
    e = parse_adt_message(message(A02))
    assert e == ADTEvent(
        message_id="MSG00042",
        event_type="A02",
        occurred_at=datetime(2026, 1, 5, 13, 30, tzinfo=UTC),
        patient_id="P123",  # the MR repetition of PID-3, not the first
        visit_id="V456",
        unit="ICU",
        bed="12-B",  # room 12, bed B
        prior_unit="MED",
        prior_bed="4-A",
        patient_class="I",
        acuity="2",  # PV2-25
        admission_type=None,
        recorded_at=datetime(2026, 1, 5, 13, 35, tzinfo=UTC),
    )
    assert e.occurred_at.tzinfo is UTC


def test_acuity_field_is_configurable():
    assert parse_adt_message(message(A02), acuity_field="ZTR-1").acuity == "3"
    assert parse_adt_message(message(A02), acuity_field="PV1-18").acuity is None
    with pytest.raises(ConfigurationError, match="acuity_field"):
        parse_adt_message(message(A02), acuity_field="PV2")


@pytest.mark.parametrize("sep", ["\r", "\n", "\r\n"])
def test_segment_terminators_of_files_are_read(sep):
    assert parse_adt_message(message(A02, sep) + sep).visit_id == "V456"


def test_room_and_bed_combined():
    def bed(pl: str) -> str | None:
        return parse_adt_message(message(replace(A02, "PV1", pv1(location=pl)))).bed

    assert bed("ICU^12^B") == "12-B"
    assert bed("ICU^^B") == "B"
    assert bed("ICU^12") == "12"
    assert bed("ICU^12^12B") == "12B"  # the bed already names its room
    assert bed("ICU") is None


def test_time_precedence_and_zones():
    # EVN-6 absent: EVN-2; both absent: MSH-7
    evn2 = replace(A02, "EVN", "EVN|A02|20260105143300+0100")
    assert parse_adt_message(message(evn2)).occurred_at == datetime(2026, 1, 5, 13, 33, tzinfo=UTC)
    msh7 = replace(A02, "EVN", "EVN|A02")
    assert parse_adt_message(message(msh7)).occurred_at == datetime(2026, 1, 5, 13, 35, tzinfo=UTC)
    # a time without offset takes MSH-7's offset ...
    local = replace(A02, "EVN", "EVN|A02|20260105143500||||202601051430")
    assert parse_adt_message(message(local)).occurred_at == datetime(2026, 1, 5, 13, 30, tzinfo=UTC)
    # ... or, when MSH-7 has none either, the zone the caller names (UTC by default)
    bare = [A02[0].replace("20260105143500+0100", "20260105143500"), *local[1:]]
    assert parse_adt_message(message(bare)).occurred_at == datetime(2026, 1, 5, 14, 30, tzinfo=UTC)
    berlin = parse_adt_message(message(bare), tz="Europe/Berlin")
    assert berlin.occurred_at == datetime(2026, 1, 5, 13, 30, tzinfo=UTC)
    with pytest.raises(ConfigurationError, match="time zone"):
        parse_adt_message(message(bare), tz="Mars/Olympus")


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("202601051430", datetime(2026, 1, 5, 14, 30, tzinfo=UTC)),
        ("20260105143059", datetime(2026, 1, 5, 14, 30, 59, tzinfo=UTC)),
        ("20260105143059.1234", datetime(2026, 1, 5, 14, 30, 59, 123400, tzinfo=UTC)),
        ("20260105143000-0500", datetime(2026, 1, 5, 19, 30, tzinfo=UTC)),
        ("20260105143000-0030", datetime(2026, 1, 5, 15, 0, tzinfo=UTC)),  # python-hl7 gets wrong
        ("20260105143000+0545", datetime(2026, 1, 5, 8, 45, tzinfo=UTC)),
    ],
)
def test_timestamps(text, expected):
    assert parse_ts(text) == expected


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        ("2026010514", "precise"),
        ("20260105", "precise"),
        ("20261305143000", "not a valid date"),
        ("20260105253000", "not a valid date"),
        ("20260105143000+2500", "out of range"),
        ("2026-01-05T14:30", "not an HL7 time stamp"),
        ("20260105143000 junk", "not an HL7 time stamp"),
    ],
)
def test_bad_timestamps(text, reason):
    with pytest.raises(ValueError, match=reason):
        parse_ts(text)


def test_format_ts_round_trips_in_any_zone():
    when = datetime(2026, 3, 29, 1, 30, 5, 123400, tzinfo=UTC)
    for zone in (UTC, timezone(timedelta(hours=-3, minutes=-30)), timezone(timedelta(hours=14))):
        assert parse_ts(format_ts(when, tz=zone)) == when


def test_patient_classes():
    def cls(code: str) -> str | None:
        return parse_adt_message(message(replace(A02, "PV1", pv1(code)))).patient_class

    assert [cls(c) for c in "EIOBR"] == ["E", "I", "O", "I", "O"]
    assert cls("") is None  # optional on an A02
    for code in "PCNU":
        with pytest.raises(DataFormatError, match=rf"PV1-2 \(patient class\) '{code}'"):
            cls(code)


def test_escaped_values_are_unescaped():
    segment = pv1(location="4\\S\\A^1\\F\\2", visit="V\\T\\9")
    e = parse_adt_message(message(replace(A02, "PV1", segment)))
    assert (e.unit, e.bed, e.visit_id) == ("4^A", "1|2", "V&9")


def test_older_versions_and_evn1_only():
    v23 = [A02[0].replace("ADT^A02^ADT_A02", "ADT^A02").replace("2.5.1", "2.3"), *A02[1:]]
    assert parse_adt_message(message(v23)).event_type == "A02"
    evn_only = [A02[0].replace("ADT^A02^ADT_A02", "ADT"), *A02[1:]]
    assert parse_adt_message(message(evn_only)).event_type == "A02"


# -- malformed messages: each rejected whole, naming the message and the field ----------------

MALFORMED = {
    "empty": ("", "message is empty"),
    "no MSH": (message(A02[1:]), r"HL7 message: does not start with an MSH segment"),
    "not HL7": ("hello world", "does not start with an MSH segment"),
    "bad separators": (
        message([A02[0].replace("MSH|^~\\&|", "MSH|^|"), *A02[1:]]),
        r"MSH-1/MSH-2 \(separators\)",
    ),
    "segments joined with |": ("|".join(A02), r"message MSG00042: no EVN segment.*'EVN\|' appears"),
    "written \\r": (
        "\\r".join(A02),
        r"message MSG00042: no EVN segment.*carriage return",
    ),
    "broken segment id": (
        message([*A02[:3], "pv1|1|I|ICU||||MED|||||||||||V1"]),
        r"message MSG00042: segment 4 .*segment ID",
    ),
    "no MSH-10": (
        message([A02[0].replace("|MSG00042|", "||"), *A02[1:]]),
        r"HL7 message: MSH-10 \(message control ID\) is empty",
    ),
    "not ADT": (
        message([A02[0].replace("ADT^A02^ADT_A02", "ORU^R01^ORU_R01"), *A02[1:]]),
        r"message MSG00042: MSH-9 \(message type\) is 'ORU'",
    ),
    "unknown trigger": (
        message([A02[0].replace("ADT^A02", "ADT^A05"), "EVN|A05|20260105143500", *A02[2:]]),
        r"message MSG00042: trigger event A05 is not supported",
    ),
    "trigger disagrees": (
        message(replace(A02, "EVN", "EVN|A03|20260105143500+0100")),
        r"message MSG00042: MSH-9.2 \(trigger event\) is A02 but EVN-1",
    ),
    "no trigger": (
        message([A02[0].replace("ADT^A02^ADT_A02", "ADT"), "EVN||20260105143500", *A02[2:]]),
        r"MSH-9.2 \(trigger event\) is empty",
    ),
    "version 3": (
        message([A02[0].replace("2.5.1", "3.0"), *A02[1:]]),
        r"MSH-12 \(version ID\) '3.0' is not supported",
    ),
    "no EVN": (message(replace(A02, "EVN", None)), "message MSG00042: no EVN segment"),
    "no PID": (message(replace(A02, "PID", None)), "message MSG00042: no PID segment"),
    "no PV1": (message(replace(A02, "PV1", None)), "message MSG00042: no PV1 segment"),
    "unparseable EVN-6": (
        message(replace(A02, "EVN", "EVN|A02|20260105143500||||yesterday")),
        r"message MSG00042: EVN-6 \(event occurred\): 'yesterday' is not an HL7 time stamp",
    ),
    "impossible EVN-2": (
        message(replace(A02, "EVN", "EVN|A02|20260230143500")),
        r"EVN-2 \(recorded date/time\): .* not a valid date",
    ),
    "date-only EVN-6": (
        message(replace(A02, "EVN", "EVN|A02|20260105143500||||20260105")),
        r"EVN-6 .*not precise enough",
    ),
    "bad MSH-7": (
        message([A02[0].replace("20260105143500+0100", "2026-01-05"), *A02[1:]]),
        r"MSH-7 \(date/time of message\)",
    ),
    "no time at all": (
        message([A02[0].replace("20260105143500+0100", ""), "EVN|A02", *A02[2:]]),
        "no event time: EVN-6, EVN-2 and MSH-7 are all empty",
    ),
    "no patient id": (
        message(replace(A02, "PID", "PID|1||")),
        r"message MSG00042: PID-3 \(patient identifier list\) is empty",
    ),
    "no visit number": (
        message(replace(A02, "PV1", pv1(visit=""))),
        r"message MSG00042: PV1-19 \(visit number\) is empty",
    ),
    "A02 without prior location": (
        message(replace(A02, "PV1", pv1(prior=""))),
        r"message MSG00042: PV1-6 \(prior patient location\) is empty",
    ),
    "A02 without location": (
        message(replace(A02, "PV1", pv1(location=""))),
        r"message MSG00042: PV1-3.1 .* is empty; an A02 needs it",
    ),
    "bed without unit": (
        message(replace(A02, "PV1", pv1(location="^^B"))),
        r"PV1-3 .* has a bed but no point of care",
    ),
    "A01 without class": (
        message(
            [
                A02[0].replace("ADT^A02^ADT_A02", "ADT^A01^ADT_A01"),
                "EVN|A01|20260105143500+0100",
                A02[2],
                pv1("", "MED^4^A", ""),
            ]
        ),
        r"message MSG00042: PV1-2 \(patient class\) is empty; an A01 needs it",
    ),
    "preadmit class": (
        message(replace(A02, "PV1", pv1("P"))),
        r"message MSG00042: PV1-2 \(patient class\) 'P' is not supported",
    ),
    "not UTF-8": (
        message(A02).replace("DOE", "D\udcffE").encode("utf-8", "surrogateescape"),
        "cannot be read as utf-8",
    ),
}


@pytest.mark.parametrize("case", list(MALFORMED))
def test_malformed_messages_are_rejected_with_id_and_reason(case):
    text, reason = MALFORMED[case]
    with pytest.raises(DataFormatError, match=reason):
        parse_adt_message(text)


def test_every_malformed_case_also_fails_in_a_batch_with_its_index():
    good = message(A02).replace("MSG00042", "OK1")
    for case, (text, reason) in MALFORMED.items():
        if case in ("empty", "not UTF-8"):
            continue
        with pytest.raises(DataFormatError) as info:
            parse_adt_messages(frame(good) + frame(text))
        found = str(info.value)
        named = "MSG00042" in reason
        assert found.startswith(
            "<messages>, message 2 (line 1, MSG00042): "
            if named
            else "<messages>, message 2 (line 1"
        ), (case, found)
        assert re.search(re.sub(r"^(HL7 message|message MSG00042): ", "", reason), found), case


# -- batches and files ------------------------------------------------------------------------


def test_batch_file_with_blank_lines_envelopes_and_back_to_back_messages(tmp_path):
    one = A02
    two = [s.replace("MSG00042", "MSG00043").replace("V456", "V457") for s in A02]
    three = [s.replace("MSG00042", "MSG00044").replace("V456", "V458") for s in A02]
    text = "\n".join(
        [
            "FHS|^~\\&|EPIC",
            "BHS|^~\\&|EPIC",
            *one,
            "",
            "",
            *two,
            *three,  # no blank line between: a new MSH starts a message
            "BTS|3",
            "FTS|1",
            "",
        ]
    )
    path = tmp_path / "adt.hl7"
    path.write_text(text)
    events = read_adt_file(path)
    assert [e.message_id for e in events] == ["MSG00042", "MSG00043", "MSG00044"]
    starts = [line for _, line, _ in split_messages(text)]
    assert starts == [3, 12, 19]


def test_batch_error_names_file_index_line_and_message_id(tmp_path):
    bad = [s.replace("MSG00042", "MSG00099") for s in replace(A02, "PV1", pv1(prior=""))]
    path = tmp_path / "adt.hl7"
    path.write_text("\n".join([*A02, "", *bad]) + "\n")
    with pytest.raises(DataFormatError) as info:
        read_adt_file(path)
    assert str(info.value) == (
        f"{path}, message 2 (line 9, MSG00099): PV1-6 (prior patient location) is empty; "
        "an A02 transfer needs where the patient came from"
    )


def test_mllp_framed_file(tmp_path):
    two = message(A02).replace("MSG00042", "MSG00043")
    path = tmp_path / "adt.mllp"
    path.write_bytes(frame(message(A02)) + b"\n" + frame(two) + b"\n")
    assert [e.message_id for e in read_adt_file(path)] == ["MSG00042", "MSG00043"]
    path.write_bytes(frame(message(A02)) + b"junk" + frame(two))
    with pytest.raises(DataFormatError, match="outside MLLP frames"):
        read_adt_file(path)
    path.write_bytes(frame(message(A02)) + b"\x0b" + two.encode())
    with pytest.raises(DataFormatError, match=r"message 2 \(line 1\): MLLP frame has no end"):
        read_adt_file(path)


# -- writing messages: what is written reads back the same ----------------------------------

_T0 = datetime(2026, 1, 5, tzinfo=UTC)
_text = st.text(
    alphabet=st.characters(codec="utf-8", exclude_categories=("Cs", "Cc")), min_size=1, max_size=12
).filter(lambda s: s.strip() == s)
_ids = st.text(alphabet="ABCXYZ0123456789-_.|^&~\\", min_size=1, max_size=10).filter(
    lambda s: s.strip() == s
)


@st.composite
def events(draw):
    kind = draw(st.sampled_from(list(ADT_EVENT_TYPES)))
    seconds = draw(st.integers(0, 400 * 86400))
    needs_unit = kind in ("A01", "A02", "A04")
    unit = draw(_text if needs_unit else st.none() | _text)
    bed = draw(st.none() | _text) if unit is not None else None
    prior = draw(_text if kind == "A02" else st.none() | _text)
    return ADTEvent(
        message_id=draw(_ids),
        event_type=kind,
        occurred_at=_T0 + timedelta(seconds=seconds),
        patient_id=draw(_ids),
        visit_id=draw(_ids),
        unit=unit,
        bed=bed,
        prior_unit=prior,
        prior_bed=draw(st.none() | _text) if prior is not None else None,
        patient_class=draw(st.sampled_from(["E", "I", "O"]))
        if kind in ("A01", "A04")
        else draw(st.none() | st.sampled_from(["E", "I", "O"])),
        acuity=draw(st.none() | st.sampled_from(["1", "2", "3", "ESI-4", "CR"])),
        admission_type=draw(st.none() | st.sampled_from(["E", "C", "U"])),
        recorded_at=_T0 + timedelta(seconds=seconds + draw(st.integers(0, 600))),
    )


@settings(max_examples=150, deadline=None)
@given(event=events(), zone=st.sampled_from(["UTC", "Europe/Berlin", "America/St_Johns"]))
def test_build_then_parse_is_the_identity(event, zone):
    from zoneinfo import ZoneInfo

    tz = UTC if zone == "UTC" else ZoneInfo(zone)
    text = build_adt_message(event, tz=tz)
    assert "\n" not in text and text.count("\r") >= 3
    assert parse_adt_message(text) == event


def test_built_message_is_v251_with_required_fields():
    e = ADTEvent("M9", "A11", _T0, "P1", "V1", unit="MED", patient_class="I")
    segments = build_adt_message(e).split("\r")
    assert [s[:3] for s in segments] == ["MSH", "EVN", "PID", "PV1"]
    msh = segments[0].split("|")
    assert msh[8:12] == ["ADT^A11^ADT_A09", "M9", "P", "2.5.1"]
    assert segments[2].split("|")[5] == "^^^^^^U"  # PID-5 (required): name type unspecified


def test_acuity_in_a_z_segment():
    e = ADTEvent(
        "M9", "A04", _T0, "P1", "V1", unit="ED", patient_class="E", acuity="2", recorded_at=_T0
    )
    text = build_adt_message(e, acuity_field="ZTR-1")
    assert text.split("\r")[-1] == "ZTR|2"
    assert parse_adt_message(text, acuity_field="ZTR-1") == e


# -- acknowledgements -------------------------------------------------------------------------


def test_ack_answers_message_id_with_swapped_applications():
    ack = build_ack(message(A02), "AA", control_id="A1", now=_T0)
    segments = ack.split("\r")
    assert segments[0].split("|")[2:6] == ["MEDTWIN", "MEDTWIN", "EPIC", "HOSP"]
    assert segments[0].split("|")[8] == "ACK^A02^ACK"
    assert segments[1] == "MSA|AA|MSG00042"
    parsed = parse_ack(ack)
    assert (parsed.code, parsed.message_id, parsed.accepted) == ("AA", "MSG00042", True)


@pytest.mark.parametrize(
    ("case", "code", "condition"),
    [
        ("no visit number", "AE", 101),
        ("unparseable EVN-6", "AE", 102),
        ("not ADT", "AR", 200),
        ("unknown trigger", "AR", 201),
        ("version 3", "AR", 203),
        ("no MSH", "AR", 100),
    ],
)
def test_ack_for_rejected_messages(case, code, condition):
    from medtwin.interop.hl7v2._parse import MessageError, read, resolve_options

    text = MALFORMED[case][0]
    with pytest.raises(MessageError) as info:
        read(text, resolve_options("UTC", "PV2-25"))
    problem = info.value
    assert (problem.ack, problem.condition) == (code, condition)
    ack = parse_ack(
        build_ack(
            text, problem.ack, text=problem.reason, condition=problem.condition, where=problem.where
        )
    )
    assert (ack.code, ack.condition, ack.text) == (code, condition, problem.reason)
    assert ack.message_id == ("" if case == "no MSH" else "MSG00042")


def test_ack_error_location_and_escaping():
    ack = build_ack(message(A02), "AE", text="bad | value", condition=101, where="PV1-19")
    err = ack.split("\r")[2]
    assert err.startswith("ERR||PV1^1^19|101^Required field missing^HL70357|E|")
    assert err.endswith("|bad \\F\\ value")
    assert parse_ack(ack).text == "bad | value"
    with pytest.raises(DataFormatError, match="not an HL7 ACK"):
        parse_ack(message(A02))


def test_public_names_sorted_resolved_and_documented():
    import medtwin.interop
    import medtwin.interop.hl7v2 as package
    from tests.test_public_api import _ruff_order

    assert list(package.__all__) == sorted(package.__all__, key=_ruff_order)
    for name in package.__all__:
        obj = getattr(package, name)
        if callable(obj):
            assert obj.__doc__ and obj.__doc__.strip(), name
    assert medtwin.interop.parse_adt_message is parse_adt_message


@settings(max_examples=400, deadline=None)
@given(
    edits=st.lists(
        st.tuples(st.integers(0, 10_000), st.integers(0, 3), st.sampled_from("|^~\\&\r\nA0 \x1c")),
        min_size=1,
        max_size=6,
    )
)
def test_damaged_messages_never_raise_anything_but_data_format_error(edits):
    text = message(A02)
    for position, action, char in edits:
        i = position % (len(text) + 1)
        if action == 0:
            text = text[:i] + text[i + 1 :]  # delete
        elif action == 1:
            text = text[:i] + char + text[i:]  # insert
        elif action == 2:
            text = text[:i] + char + text[i + 1 :]  # replace
        else:
            text = text[:i]  # truncate
    try:
        event = parse_adt_message(text)
    except DataFormatError as exc:
        assert str(exc).startswith(("message ", "HL7 message: "))
    else:
        assert isinstance(event, ADTEvent)
