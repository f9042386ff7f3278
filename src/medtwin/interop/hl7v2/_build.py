"""ADTEvents out as HL7 v2.5.1 ADT messages, and acknowledgements (ACK) in and out.

The writer puts each :class:`~medtwin.hospital._records.ADTEvent` field where the reader
(:mod:`medtwin.interop.hl7v2._parse`) looks for it, so ``parse(build(event)) == event``.  Messages
follow the v2.5.1 message structures (chapter 3.3): MSH, EVN, PID, PV1 and, when there is an
acuity, PV2 (or the segment ``acuity_field`` names).  PID-5 (patient name, required) is written
as ``^^^^^^U`` (name type "unspecified"): medtwin's events carry no names.

An ACK (chapter 2, original acknowledgement mode) answers a message with MSH, MSA and, for
AE and AR, ERR: MSA-1 is the acknowledgement code, MSA-2 the MSH-10 of the message answered, MSA-3
a text (deprecated in v2.5 but still read by interface engines); ERR-2 names the field, ERR-3 the
table 0357 condition, ERR-4 the severity and ERR-8 the reason for a person to read.
"""

from __future__ import annotations

import re
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, tzinfo
from typing import Literal

import hl7

from medtwin.errors import DataFormatError
from medtwin.hospital._records import ADTEvent
from medtwin.interop.hl7v2._fields import component, escape, locator, unescape
from medtwin.interop.hl7v2._timestamp import format_ts

__all__ = ["CONDITIONS", "Acknowledgement", "build_ack", "build_adt_message", "parse_ack"]

_STRUCTURE = {
    "A01": "ADT_A01",
    "A02": "ADT_A02",
    "A03": "ADT_A03",
    "A04": "ADT_A01",
    "A08": "ADT_A01",
    "A11": "ADT_A09",
    "A12": "ADT_A12",
    "A13": "ADT_A01",
}
"""Message structure (MSH-9.3) of each trigger event in HL7 v2.5.1."""

CONDITIONS: dict[int, str] = {
    0: "Message accepted",
    100: "Segment sequence error",
    101: "Required field missing",
    102: "Data type error",
    103: "Table value not found",
    200: "Unsupported message type",
    201: "Unsupported event code",
    202: "Unsupported processing id",
    203: "Unsupported version id",
    204: "Unknown key identifier",
    205: "Duplicate key identifier",
    206: "Application record locked",
    207: "Application internal error",
}
"""HL7 table 0357, message error condition codes, as ERR-3 carries them."""

AckCode = Literal["AA", "AE", "AR"]
_ACK_CODES = ("AA", "AE", "AR", "CA", "CE", "CR")
_WHERE = re.compile(r"([A-Z][A-Z0-9]{2})(?:-(\d+))?")


def _location(unit: str | None, bed: str | None) -> str:
    if unit is None and bed is None:
        return ""
    return f"{escape(unit or '')}^^{escape(bed)}" if bed else escape(unit or "")


def _segment(name: str, fields: dict[int, str]) -> str:
    last = max((n for n, v in fields.items() if v), default=0)
    return "|".join([name, *(fields.get(n, "") for n in range(1, last + 1))])


def build_adt_message(
    event: ADTEvent,
    *,
    sending_application: str = "MEDTWIN",
    sending_facility: str = "MEDTWIN",
    receiving_application: str = "",
    receiving_facility: str = "",
    assigning_authority: str = "MEDTWIN",
    acuity_field: str = "PV2-25",
    tz: tzinfo = UTC,
) -> str:
    r"""The HL7 v2.5.1 ADT message (segments separated by ``\r``) that carries ``event``.

    Times are written in ``tz`` with their offset; MSH-7 and EVN-2 are ``recorded_at`` (or
    ``occurred_at`` when there is none), EVN-6 is ``occurred_at``.  The bed goes into PV1-3.3
    (PV1-6.3 for the prior bed) as one string.  For a cancel, PV1-3 and PV1-6 carry the event's
    ``unit`` and ``prior_unit`` as they are: for an A12, the location the patient returns to and
    the one the cancelled transfer went to.

    Examples
    --------
    >>> from datetime import datetime
    >>> e = ADTEvent("MSG1", "A01", datetime(2026, 1, 5, 9, 30, tzinfo=UTC), "P1", "V1",
    ...              unit="MED", bed="12", prior_unit="ED", patient_class="I", acuity="3")
    >>> print(build_adt_message(e).replace("\r", "\n"))
    MSH|^~\&|MEDTWIN|MEDTWIN|||20260105093000+0000||ADT^A01^ADT_A01|MSG1|P|2.5.1
    EVN|A01|20260105093000+0000||||20260105093000+0000
    PID|1||P1^^^MEDTWIN^MR||^^^^^^U
    PV1|1|I|MED^^12|||ED|||||||||||||V1^^^MEDTWIN^VN
    PV2|||||||||||||||||||||||||3
    """
    where = locator(acuity_field)
    sent = format_ts(event.recorded_at or event.occurred_at, tz=tz)
    occurred = format_ts(event.occurred_at, tz=tz)
    aa = escape(assigning_authority)
    msh = "|".join(
        [
            "MSH",
            "^~\\&",
            escape(sending_application),
            escape(sending_facility),
            escape(receiving_application),
            escape(receiving_facility),
            sent,
            "",
            f"ADT^{event.event_type}^{_STRUCTURE[event.event_type]}",
            escape(event.message_id),
            "P",
            "2.5.1",
        ]
    )
    segments: dict[str, dict[int, str]] = {
        "EVN": {1: event.event_type, 2: sent, 6: occurred},
        "PID": {1: "1", 3: f"{escape(event.patient_id)}^^^{aa}^MR", 5: "^^^^^^U"},
        "PV1": {
            1: "1",
            2: event.patient_class or "",
            3: _location(event.unit, event.bed),
            4: escape(event.admission_type or ""),
            6: _location(event.prior_unit, event.prior_bed),
            19: f"{escape(event.visit_id)}^^^{aa}^VN",
        },
    }
    if event.acuity:
        fields = segments.setdefault(where.segment, {})
        value = escape(event.acuity)
        fields[where.field] = "^" * (where.component - 1) + value
    order = ["EVN", "PID", "PV1", "PV2"]
    order += sorted(s for s in segments if s not in order)
    lines = [msh] + [_segment(s, segments[s]) for s in order if s in segments]
    return "\r".join(lines)


def _header(message: str | bytes | None) -> list[str]:
    """The MSH fields of ``message``, read leniently (it may be the malformed one answered)."""
    if isinstance(message, bytes):
        message = message.decode("utf-8", errors="replace")
    if not message:
        return []
    text = message.lstrip(" \t\r\n\ufeff\x0b")
    if not text.startswith("MSH") or len(text) < 4:
        return []
    first = text.replace("\n", "\r").split("\r", 1)[0]
    return first.split(text[3])


def build_ack(
    message: str | bytes | None,
    code: AckCode = "AA",
    *,
    text: str = "",
    condition: int | None = None,
    where: str | None = None,
    control_id: str | None = None,
    now: datetime | None = None,
    application: str = "MEDTWIN",
    facility: str = "MEDTWIN",
) -> str:
    r"""The ACK that answers ``message`` (its text, even if malformed; ``None`` if unreadable).

    MSA-2 is the answered message's MSH-10 when it can be read.  ``condition`` is an HL7 table
    0357 code (0 for AA; 207 "application internal error" by default otherwise) and ``where`` the
    field it concerns (``"PV1-19"``), written to ERR-2 as segment^sequence^field.

    Examples
    --------
    >>> msg = "MSH|^~\\&|ADT|HOSP|MEDTWIN|HOSP|20260105143500||ADT^A01|MSG7|P|2.5.1"
    >>> ack = build_ack(msg, "AE", text="PV1-19 (visit number) is empty", condition=101,
    ...                 where="PV1-19", control_id="ACK1",
    ...                 now=datetime(2026, 1, 5, 13, 36, tzinfo=UTC))
    >>> print(ack.replace("\r", "\n"))
    MSH|^~\&|MEDTWIN|MEDTWIN|ADT|HOSP|20260105133600+0000||ACK^A01^ACK|ACK1|P|2.5.1
    MSA|AE|MSG7|PV1-19 (visit number) is empty
    ERR||PV1^1^19|101^Required field missing^HL70357|E||||PV1-19 (visit number) is empty
    """
    if code not in ("AA", "AE", "AR"):
        raise ValueError(f"code must be 'AA', 'AE' or 'AR', got {code!r}")
    msh = _header(message)

    def field(n: int) -> str:  # MSH-n is at index n-1 of the split (MSH-1 is the separator)
        return msh[n - 1] if len(msh) >= n else ""

    answered = field(10)
    trigger = field(9).split("^")[1] if "^" in field(9) else ""
    stamp = format_ts(now or datetime.now(UTC))
    ident = control_id or f"ACK{uuid.uuid4().hex[:17]}"
    header = "|".join(
        [
            "MSH",
            "^~\\&",
            escape(application),
            escape(facility),
            field(3),
            field(4),
            stamp,
            "",
            f"ACK^{trigger}^ACK" if trigger else "ACK",
            escape(ident),
            field(11) or "P",
            field(12) or "2.5.1",
        ]
    )
    lines = [header, _segment("MSA", {1: code, 2: answered, 3: escape(text)})]
    if code != "AA":
        number = 207 if condition is None else condition
        found = _WHERE.fullmatch(where or "")
        erl = "" if found is None else "^".join(p for p in (found[1], "1", found[2]) if p)
        cwe = f"{number}^{CONDITIONS.get(number, 'Error')}^HL70357"
        lines.append(_segment("ERR", {2: erl, 3: cwe, 4: "E", 8: escape(text)}))
    return "\r".join(lines)


@dataclass(frozen=True, slots=True)
class Acknowledgement:
    """An ACK as read: MSA-1 ``code``, MSA-2 ``message_id``, the reason and ERR-3 condition."""

    code: str
    message_id: str
    text: str = ""
    condition: int | None = None
    control_id: str = ""

    @property
    def accepted(self) -> bool:
        """Whether the message was accepted (AA, or CA in enhanced mode)."""
        return self.code in ("AA", "CA")


def parse_ack(message: str | bytes) -> Acknowledgement:
    """Read an ACK: the acknowledgement code, the message it answers, and why (ERR-8 or MSA-3).

    Raises
    ------
    DataFormatError
        Not an ACK (no MSA segment, or an MSA-1 that is not an acknowledgement code).
    """
    if isinstance(message, bytes):
        message = message.decode("utf-8")
    text = message.strip(" \t\r\n\x0b\x1c").replace("\r\n", "\r").replace("\n", "\r")
    try:
        parsed = hl7.parse(text)
        msa = parsed.segment("MSA")
    except Exception as exc:  # python-hl7: KeyError for a missing segment, ParseException, ...
        raise DataFormatError(f"not an HL7 ACK: {exc!r}") from None

    def get(seg: object, n: int, comp: int = 1) -> str:
        return unescape(component(seg, n, comp), str(parsed.separators), str(parsed.esc))

    code = get(msa, 1)
    if code not in _ACK_CODES:
        raise DataFormatError(f"not an HL7 ACK: MSA-1 is {code!r}")
    reason, condition = get(msa, 3), None
    for segment in parsed:
        if str(segment[0]) == "ERR":
            reason = get(segment, 8) or reason
            number = get(segment, 3)
            condition = int(number) if number.isdigit() else None
            break
    return Acknowledgement(code, get(msa, 2), reason, condition, get(parsed.segment("MSH"), 10))
