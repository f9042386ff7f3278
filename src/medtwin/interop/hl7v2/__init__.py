"""ADT in and out: HL7 v2 messages, MLLP, and FHIR R4 Encounters as ADT events.

Admissions, discharges and transfers reach a hospital's systems as HL7 v2 ADT messages over MLLP
(or in files), and increasingly as FHIR Encounters.  This package turns both into
:class:`~medtwin.hospital._records.ADTEvent` values for the live census
(:class:`medtwin.hospital.census.Census`) and writes events back out as HL7 v2.5.1:

- :func:`parse_adt_message`, :func:`parse_adt_messages`, :func:`read_adt_file`: messages in;
  every malformed message is rejected whole with a :class:`~medtwin.errors.DataFormatError`
  naming its MSH-10, the field and the reason (:mod:`~medtwin.interop.hl7v2._parse` lists the
  fields read, after HL7 v2.5.1 chapters 2 and 3);
- :func:`build_adt_message`, :func:`build_ack`, :func:`parse_ack`: messages and ACKs out;
- :func:`frame`, :class:`MLLPDecoder`, :func:`serve_mllp`, :func:`send_mllp`: MLLP over TCP;
- :func:`events_from_encounter`: a FHIR R4 Encounter version as events.

>>> from datetime import UTC, datetime
>>> from medtwin.hospital._records import ADTEvent
>>> t = datetime(2026, 1, 5, 8, tzinfo=UTC)
>>> e = ADTEvent("MSG1", "A04", t, "P1", "V1", unit="ED", bed="3", patient_class="E",
...              acuity="2", recorded_at=t)
>>> parse_adt_message(build_adt_message(e)) == e
True
"""

from __future__ import annotations

from medtwin.interop.hl7v2._build import (
    CONDITIONS,
    Acknowledgement,
    build_ack,
    build_adt_message,
    parse_ack,
)
from medtwin.interop.hl7v2._encounter import ENCOUNTER_CLASSES, events_from_encounter
from medtwin.interop.hl7v2._mllp import (
    END_BLOCK,
    START_BLOCK,
    MLLPDecoder,
    frame,
    send_mllp,
    serve_mllp,
)
from medtwin.interop.hl7v2._parse import (
    PATIENT_CLASSES,
    SUPPORTED_EVENTS,
    parse_adt_message,
    parse_adt_messages,
    read_adt_file,
    split_messages,
)

__all__ = [
    "CONDITIONS",
    "ENCOUNTER_CLASSES",
    "END_BLOCK",
    "PATIENT_CLASSES",
    "START_BLOCK",
    "SUPPORTED_EVENTS",
    "Acknowledgement",
    "MLLPDecoder",
    "build_ack",
    "build_adt_message",
    "events_from_encounter",
    "frame",
    "parse_ack",
    "parse_adt_message",
    "parse_adt_messages",
    "read_adt_file",
    "send_mllp",
    "serve_mllp",
    "split_messages",
]
