r"""HL7 v2 ADT messages in, :class:`~medtwin.hospital._records.ADTEvent` out.

The fields read, with their definitions in HL7 v2.5.1 (chapter 2 for MSH, chapter 3 for the
ADT segments; v2.3 to v2.5.1 messages carry them in the same places):

=================  =====================================  ===========================================
ADTEvent           HL7 field                              notes
=================  =====================================  ===========================================
message_id         MSH-10 Message Control ID              required
event_type         MSH-9.2 Trigger Event                  else EVN-1 Event Type Code (3.4.1.1); both
                                                          given and different is an error
occurred_at        EVN-6 Event Occurred (3.4.1.6)         else EVN-2 Recorded Date/Time (3.4.1.2),
                                                          else MSH-7 Date/Time of Message
recorded_at        EVN-2 Recorded Date/Time               else MSH-7
patient_id         PID-3.1 Patient Identifier List        the repetition whose CX.5 identifier type is
                   (3.4.2.3)                              ``MR``, else the first
visit_id           PV1-19.1 Visit Number (3.4.3.19)       required
patient_class      PV1-2 Patient Class (3.4.3.2)          table 0004: E, I, O as they are, B read as
                                                          I, R as O; P, C, N, U rejected
unit, bed          PV1-3 Assigned Patient Location        PL.1 point of care; bed from PL.3 bed and
                   (3.4.3.3)                              PL.2 room (see below)
admission_type     PV1-4 Admission Type (3.4.3.4)         table 0007, as sent
prior_unit,        PV1-6 Prior Patient Location
prior_bed          (3.4.3.6)
acuity             PV2-25 Visit Priority Code (3.4.4.25)  user-defined table 0217, as sent (the
                                                          synthetic stream sends ESI triage levels
                                                          1-5); another field by ``acuity_field``,
                                                          e.g. ``"PV2-40"`` (Admission Level of Care,
                                                          table 0432) or a Z-segment ``"ZTR-1"``
=================  =====================================  ===========================================

Bed: PL.3 alone when PL.2 (room) is empty or PL.3 already starts with the room; PL.2 alone when
PL.3 is empty; otherwise ``room-bed`` (``"12-B"``).  PL.4 (facility) is not read: a census is of
one facility.  PD1, PV2 (but the acuity field), Z-segments and every other segment are ignored.

Times are TS values (chapter 2A); one without a UTC offset is local time of the sender: medtwin
reads it with MSH-7's offset when MSH-7 has one, else in the ``tz`` the caller names (UTC by
default).  Event times need at least minute precision.  PV1-44 and PV1-45 (admit and discharge
date/time) are not read: some senders keep the visit's first arrival in PV1-44 on every message,
so the event's own time is EVN-6.

Segments end with a carriage return (``\r``, chapter 2); files that use ``\n`` or ``\r\n``
are read too.  Required: MSH first, then EVN, PID and PV1 (every ADT message structure has them);
for A01 and A04 PV1-2 and PV1-3.1, for A02 PV1-3.1 and PV1-6.1 (where the patient came from).
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta, timezone, tzinfo
from pathlib import Path
from typing import Any, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import hl7

from medtwin.errors import ConfigurationError, DataFormatError
from medtwin.hospital._records import ADT_EVENT_TYPES, ADTEvent, PatientClass
from medtwin.interop.hl7v2._fields import (
    FieldLocator,
    component,
    locator,
    repetitions,
    segment_id_ok,
    unescape,
)
from medtwin.interop.hl7v2._timestamp import parse_ts

__all__ = [
    "PATIENT_CLASSES",
    "SUPPORTED_EVENTS",
    "MessageError",
    "parse_adt_message",
    "parse_adt_messages",
    "read",
    "read_adt_file",
    "resolve_options",
    "split_messages",
]

SUPPORTED_EVENTS = tuple(ADT_EVENT_TYPES)
"""The ADT trigger events read: A01, A02, A03, A04, A08, A11, A12, A13."""

PATIENT_CLASSES: dict[str, PatientClass] = {"E": "E", "I": "I", "O": "O", "B": "I", "R": "O"}
"""PV1-2 (table 0004) codes read, and the class each becomes: B (obstetrics) is an inpatient,
R (recurring patient) an outpatient.  P (preadmit), C (commercial account), N (not applicable) and
U (unknown) are rejected: none of them says where the patient is."""

_FRAMING = "\x0b\x1c"
_BATCH_SEGMENTS = ("FHS", "BHS", "BTS", "FTS")
_NEEDS_CLASS = frozenset({"A01", "A04"})
_NEEDS_UNIT = frozenset({"A01", "A02", "A04"})
_OFFSET = re.compile(r"([+-])(\d{2})(\d{2})$")


AckCode = Literal["AA", "AE", "AR"]


class MessageError(Exception):
    """Why a message was rejected, in the terms an HL7 ACK needs (internal to the package).

    ``ack`` is AE (content error) or AR (cannot be processed: not HL7, unsupported message type,
    event or version); ``condition`` an HL7 table 0357 code; ``where`` the field (``PV1-19``).
    """

    def __init__(
        self,
        reason: str,
        *,
        message_id: str | None = None,
        where: str | None = None,
        condition: int = 207,
        ack: AckCode = "AE",
    ) -> None:
        super().__init__(reason)
        self.reason = reason
        self.message_id = message_id
        self.where = where
        self.condition = condition
        self.ack: AckCode = ack

    def describe(self) -> str:
        """``message MSG00042: PV1-19 (visit number) is empty``."""
        who = f"message {self.message_id}" if self.message_id else "HL7 message"
        return f"{who}: {self.reason}"


@dataclass(frozen=True, slots=True)
class Options:
    """How to read messages: the zone of times without an offset, and where acuity is."""

    tz: tzinfo
    acuity: FieldLocator


def resolve_options(tz: str | tzinfo, acuity_field: str) -> Options:
    """Check the reading options once (a bad zone or locator is the caller's error)."""
    zone: tzinfo
    if isinstance(tz, tzinfo):
        zone = tz
    else:
        try:
            zone = UTC if tz in ("UTC", "utc", "Z") else ZoneInfo(tz)
        except (ZoneInfoNotFoundError, ValueError, TypeError):
            raise ConfigurationError(
                f"unknown time zone {tz!r}; expected an IANA name such as 'Europe/Berlin'"
            ) from None
    try:
        where = locator(acuity_field)
    except ValueError as exc:
        raise ConfigurationError(f"acuity_field: {exc}") from None
    return Options(zone, where)


def parse_adt_message(
    message: str | bytes,
    *,
    tz: str | tzinfo = "UTC",
    acuity_field: str = "PV2-25",
    encoding: str = "utf-8",
) -> ADTEvent:
    r"""Read one HL7 v2 ADT message (A01, A02, A03, A04, A08, A11, A12, A13) as an ADTEvent.

    See :mod:`medtwin.interop.hl7v2` for the fields read.  ``tz`` is the zone of times without an
    offset when MSH-7 has none either; ``acuity_field`` the field that carries acuity.

    Raises
    ------
    DataFormatError
        The message is malformed or incomplete; the error names the message (MSH-10) when it
        could be read, the field, and what is wrong.

    Examples
    --------
    >>> e = parse_adt_message(
    ...     "MSH|^~\\&|ADT|HOSP|MEDTWIN|HOSP|20260105143500+0100||ADT^A02^ADT_A02|MSG00042|P|2.5.1\r"
    ...     "EVN|A02|20260105143500+0100||||20260105143000+0100\r"
    ...     "PID|1||P123^^^HOSP^MR\r"
    ...     "PV1|1|I|ICU^12^B|E||MED^4^A|||||||||||||V456^^^HOSP^VN\r"
    ... )
    >>> e.event_type, e.visit_id, e.unit, e.bed, e.prior_unit, e.occurred_at.isoformat()
    ('A02', 'V456', 'ICU', '12-B', 'MED', '2026-01-05T13:30:00+00:00')
    """
    options = resolve_options(tz, acuity_field)
    try:
        return read(message, options, encoding=encoding)
    except MessageError as problem:
        raise DataFormatError(problem.describe()) from None


def parse_adt_messages(
    text: str | bytes,
    *,
    source: str = "<messages>",
    tz: str | tzinfo = "UTC",
    acuity_field: str = "PV2-25",
    encoding: str = "utf-8",
) -> list[ADTEvent]:
    r"""Read many ADT messages: MLLP frames, or messages separated by blank lines or MSH segments.

    Batch envelopes (FHS, BHS, BTS, FTS segments) are skipped.  The first malformed message
    rejects the whole text; the error names ``source``, the message's index (1-based) and line,
    and its MSH-10.  To keep the good messages of a bad batch, call :func:`parse_adt_message` on
    each of :func:`split_messages`.

    Examples
    --------
    >>> from datetime import UTC, datetime
    >>> from medtwin.hospital._records import ADTEvent
    >>> from medtwin.interop.hl7v2 import build_adt_message
    >>> t = datetime(2026, 1, 5, 8, tzinfo=UTC)
    >>> a = ADTEvent("M1", "A04", t, "P1", "V1", unit="ED", patient_class="E")
    >>> b = ADTEvent("M2", "A03", t.replace(hour=11), "P1", "V1", unit="ED")
    >>> text = build_adt_message(a) + "\n\n" + build_adt_message(b)
    >>> [e.event_type for e in parse_adt_messages(text)]
    ['A04', 'A03']
    """
    options = resolve_options(tz, acuity_field)
    events = []
    for index, line, chunk in split_messages(text, encoding=encoding, source=source):
        try:
            events.append(read(chunk, options, encoding=encoding))
        except MessageError as problem:
            ident = f", {problem.message_id}" if problem.message_id else ""
            raise DataFormatError(
                f"{source}, message {index} (line {line}{ident}): {problem.reason}"
            ) from None
    return events


def read_adt_file(
    path: str | os.PathLike[str],
    *,
    tz: str | tzinfo = "UTC",
    acuity_field: str = "PV2-25",
    encoding: str = "utf-8",
) -> list[ADTEvent]:
    """Read a file of HL7 v2 ADT messages (see :func:`parse_adt_messages`) as ADTEvents.

    Raises
    ------
    DataFormatError
        A malformed message; the error names the file, the message's index and line, its MSH-10
        and the field.
    """
    data = Path(path).read_bytes()
    return parse_adt_messages(
        data, source=str(Path(path)), tz=tz, acuity_field=acuity_field, encoding=encoding
    )


def split_messages(
    text: str | bytes, *, encoding: str = "utf-8", source: str = "<messages>"
) -> Iterator[tuple[int, int, str]]:
    """The messages of a text as ``(index, line, message)``: index 1-based, line of its start.

    MLLP-framed text (``0x0b ... 0x1c 0x0d``) is split by frame; other text at blank lines and
    before each MSH segment, with batch envelope segments (FHS, BHS, BTS, FTS) left out.
    """
    if isinstance(text, bytes):
        try:
            text = text.decode(encoding).removeprefix("\ufeff")
        except UnicodeDecodeError as exc:
            raise DataFormatError(
                f"{source}: byte {exc.start} cannot be read as {encoding}"
            ) from None
    if "\x0b" in text:
        yield from _split_frames(text, source)
        return
    index = 0
    current: list[str] = []
    start = 0
    for number, line in enumerate(text.replace("\r\n", "\n").replace("\r", "\n").split("\n"), 1):
        head = line[:3]
        is_envelope = head in _BATCH_SEGMENTS and (len(line) == 3 or not line[3].isalnum())
        if not line.strip() or is_envelope or (head == "MSH" and current):
            if current:
                index += 1
                yield index, start, "\r".join(current)
                current = []
            if not line.strip() or is_envelope:
                continue
        if not current:
            start = number
        current.append(line)
    if current:
        yield index + 1, start, "\r".join(current)


def _split_frames(text: str, source: str) -> Iterator[tuple[int, int, str]]:
    index = 0
    position = 0
    while True:
        begin = text.find("\x0b", position)
        outside = text[position : begin if begin >= 0 else len(text)]
        if outside.strip():
            line = text.count("\n", 0, position) + 1
            raise DataFormatError(
                f"{source}, line {line}: text outside MLLP frames ({outside.strip()[:20]!r}); "
                "each message must be framed as 0x0b ... 0x1c 0x0d"
            )
        if begin < 0:
            return
        end = text.find("\x1c", begin)
        index += 1
        line = text.count("\n", 0, begin) + 1
        if end < 0:
            raise DataFormatError(
                f"{source}, message {index} (line {line}): MLLP frame has no end (0x1c)"
            )
        yield index, line, text[begin + 1 : end]
        position = end + 1


def read(message: str | bytes, options: Options, *, encoding: str = "utf-8") -> ADTEvent:
    """Read one message; raise :class:`MessageError` with the ACK code, condition and field."""
    if isinstance(message, bytes):
        try:
            message = message.decode(encoding)
        except UnicodeDecodeError as exc:
            raise MessageError(
                f"byte {exc.start} cannot be read as {encoding}", condition=102, ack="AR"
            ) from None
    text = message.strip(" \t\r\n\ufeff" + _FRAMING)
    if not text:
        raise MessageError("the message is empty", condition=100, ack="AR")
    if not text.startswith("MSH"):
        raise MessageError(
            f"does not start with an MSH segment (starts with {text[:12]!r})",
            condition=100,
            ack="AR",
            where="MSH",
        )
    separator = text[3:4]
    end = text.find(separator, 4) if separator else -1
    encoding_chars = text[4:end] if end > 0 else ""
    if (
        not separator
        or separator.isalnum()
        or separator in "\r\n"
        or not 4 <= len(encoding_chars) <= 5
        or len(set(encoding_chars + separator)) != len(encoding_chars) + 1
        or any(c.isalnum() or c in "\r\n" for c in encoding_chars)
    ):
        raise MessageError(
            f"MSH-1/MSH-2 (separators) are not valid: {text[:8]!r}; expected e.g. 'MSH|^~\\&|'",
            condition=102,
            ack="AR",
            where="MSH-2",
        )
    lines = [s for s in text.replace("\r\n", "\r").replace("\n", "\r").split("\r") if s.strip()]
    header = lines[0].split(separator)
    message_id = header[9].strip() if len(header) > 9 else ""
    ident = message_id or None
    for number, segment in enumerate(lines, 1):
        if not segment_id_ok(segment[:3]) or (len(segment) > 3 and segment[3] != separator):
            raise MessageError(
                f"segment {number} ({segment[:12]!r}) does not start with a segment ID and "
                f"{separator!r}; segments must be separated by carriage returns",
                message_id=ident,
                condition=100,
            )
    try:
        parsed = hl7.parse("\r".join(lines))
    except Exception as exc:  # python-hl7 raises bare ValueError/IndexError on broken text
        raise MessageError(
            f"cannot be parsed as HL7 v2: {exc}", message_id=ident, condition=102, ack="AR"
        ) from None
    return _translate(parsed, lines, separator, ident, options)


def _translate(
    parsed: Any, lines: list[str], separator: str, ident: str | None, options: Options
) -> ADTEvent:
    separators, esc = str(parsed.separators), str(parsed.esc)
    segments: dict[str, Any] = {}
    for segment in parsed:
        segments.setdefault(str(segment[0]), segment)
    msh = segments["MSH"]

    def get(seg: Any, field: int, comp: int = 1, rep: int = 1) -> str:
        return unescape(component(seg, field, comp, rep), separators, esc).strip()

    def fail(reason: str, where: str | None = None, condition: int = 207) -> MessageError:
        return MessageError(reason, message_id=ident, where=where, condition=condition)

    if ident is None:
        raise fail("MSH-10 (message control ID) is empty", "MSH-10", 101)
    ident = get(msh, 10) or ident  # with escape sequences resolved
    version = get(msh, 12)
    if version and not version.startswith("2."):
        raise MessageError(
            f"MSH-12 (version ID) {version!r} is not supported; expected HL7 v2.x",
            message_id=ident,
            where="MSH-12",
            condition=203,
            ack="AR",
        )
    code = get(msh, 9)
    if not code:
        raise MessageError(
            "MSH-9 (message type) is empty", message_id=ident, where="MSH-9", condition=101
        )
    if code != "ADT":
        raise MessageError(
            f"MSH-9 (message type) is {code!r}; only ADT messages are read",
            message_id=ident,
            where="MSH-9",
            condition=200,
            ack="AR",
        )
    for required in ("EVN", "PID", "PV1"):
        if required not in segments:
            raise fail(_missing_segment(required, lines, separator), required, 100)
    evn, pid, pv1 = segments["EVN"], segments["PID"], segments["PV1"]
    trigger, evn_type = get(msh, 9, 2), get(evn, 1)
    if trigger and evn_type and trigger != evn_type:
        raise fail(
            f"MSH-9.2 (trigger event) is {trigger} but EVN-1 (event type code) is {evn_type}",
            "MSH-9",
        )
    event_type = trigger or evn_type
    if not event_type:
        raise fail("MSH-9.2 (trigger event) is empty and so is EVN-1", "MSH-9", 101)
    if event_type not in ADT_EVENT_TYPES:
        raise MessageError(
            f"trigger event {event_type} is not supported; medtwin reads "
            + ", ".join(SUPPORTED_EVENTS),
            message_id=ident,
            where="MSH-9",
            condition=201,
            ack="AR",
        )

    sent_at, zone = _header_time(get(msh, 7), options.tz, fail)
    times: dict[str, datetime] = {}
    for where, name, value in (
        ("EVN-6", "event occurred", get(evn, 6)),
        ("EVN-2", "recorded date/time", get(evn, 2)),
    ):
        if value:
            try:
                times[where] = parse_ts(value, tz=zone)
            except ValueError as exc:
                raise fail(f"{where} ({name}): {exc}", where, 102) from None
    occurred_at = times.get("EVN-6") or times.get("EVN-2") or sent_at
    if occurred_at is None:
        raise fail("no event time: EVN-6, EVN-2 and MSH-7 are all empty", "EVN-6", 101)

    patient_id = _patient_id(pid, get)
    if not patient_id:
        raise fail("PID-3 (patient identifier list) is empty", "PID-3", 101)
    visit_id = get(pv1, 19)
    if not visit_id:
        raise fail("PV1-19 (visit number) is empty", "PV1-19", 101)

    raw_class = get(pv1, 2)
    patient_class: PatientClass | None = None
    if raw_class:
        if raw_class not in PATIENT_CLASSES:
            raise fail(
                f"PV1-2 (patient class) {raw_class!r} is not supported; medtwin reads E, I and O "
                "(B as I, R as O; table 0004)",
                "PV1-2",
                103,
            )
        patient_class = PATIENT_CLASSES[raw_class]
    elif event_type in _NEEDS_CLASS:
        raise fail(f"PV1-2 (patient class) is empty; an {event_type} needs it", "PV1-2", 101)

    unit, bed = _location(pv1, 3, get)
    if unit is None and bed is not None:
        raise fail("PV1-3 (assigned patient location) has a bed but no point of care", "PV1-3")
    if unit is None and event_type in _NEEDS_UNIT:
        raise fail(
            f"PV1-3.1 (assigned patient location: point of care) is empty; an {event_type} "
            "needs it",
            "PV1-3",
            101,
        )
    prior_unit, prior_bed = _location(pv1, 6, get)
    if prior_unit is None and event_type == "A02":
        raise fail(
            "PV1-6 (prior patient location) is empty; an A02 transfer needs where the patient "
            "came from",
            "PV1-6",
            101,
        )
    acuity_at = options.acuity
    acuity_segment = segments.get(acuity_at.segment)
    acuity = get(acuity_segment, acuity_at.field, acuity_at.component) if acuity_segment else ""
    admission_type = get(pv1, 4)
    return ADTEvent(
        message_id=ident,
        event_type=event_type,
        occurred_at=occurred_at,
        patient_id=patient_id,
        visit_id=visit_id,
        unit=unit,
        bed=bed,
        prior_unit=prior_unit,
        prior_bed=prior_bed,
        patient_class=patient_class,
        acuity=acuity or None,
        admission_type=admission_type or None,
        recorded_at=times.get("EVN-2") or sent_at,
    )


def _header_time(
    value: str, tz: tzinfo, fail: Callable[[str, str | None, int], MessageError]
) -> tuple[datetime | None, tzinfo]:
    """MSH-7 and the zone of other times without an offset (MSH-7's offset when it has one)."""
    if not value:
        return None, tz
    try:
        sent_at = parse_ts(value, tz=tz)
    except ValueError as exc:
        raise fail(f"MSH-7 (date/time of message): {exc}", "MSH-7", 102) from None
    match = _OFFSET.search(value)
    if match is None:
        return sent_at, tz
    minutes = int(match.group(2)) * 60 + int(match.group(3))
    return sent_at, timezone(timedelta(minutes=-minutes if match.group(1) == "-" else minutes))


def _patient_id(pid: Any, get: Any) -> str:
    count = repetitions(pid, 3)
    for rep in range(1, count + 1):
        if get(pid, 3, 5, rep) == "MR" and get(pid, 3, 1, rep):
            return str(get(pid, 3, 1, rep))
    for rep in range(1, count + 1):
        if get(pid, 3, 1, rep):
            return str(get(pid, 3, 1, rep))
    return ""


def _location(pv1: Any, field: int, get: Any) -> tuple[str | None, str | None]:
    """Point of care and bed of a PL field (PV1-3 or PV1-6)."""
    unit, room, bed = get(pv1, field, 1), get(pv1, field, 2), get(pv1, field, 3)
    if room and bed and not bed.startswith(room):
        bed = f"{room}-{bed}"
    return unit or None, (bed or room) or None


def _missing_segment(name: str, lines: list[str], separator: str) -> str:
    embedded_segment = re.compile(rf"(?:EVN|PID|PV1){re.escape(separator)}")
    for number, segment in enumerate(lines, 1):
        embedded = embedded_segment.search(segment, 3)
        if embedded is not None:
            return (
                f"no {name} segment: segments must be separated by carriage returns (\\r), but "
                f"{embedded.group(0)!r} appears inside segment {number} ({segment[:3]})"
            )
    if any("\\r" in s or "<CR>" in s.upper() for s in lines):
        return (
            f"no {name} segment: the text holds a written '\\r' or '<CR>' where a carriage "
            "return should separate segments"
        )
    return f"no {name} segment (every ADT message has MSH, EVN, PID and PV1)"
