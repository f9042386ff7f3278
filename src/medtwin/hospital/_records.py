"""The hospital twin's shared vocabulary: ADT events and census snapshots.

An :class:`ADTEvent` is one admission/discharge/transfer event in canonical form, whatever it
arrived as (an HL7 v2 ADT message, a row of an event-log CSV, a FHIR Encounter).  Translation into
events happens in :mod:`medtwin.interop.hl7v2` and the hospital readers; the live census
(:mod:`medtwin.hospital.census`) applies them; the flow model starts a forecast from a
:class:`CensusSnapshot`.  Times are timezone-aware UTC :class:`datetime.datetime`.

Event types follow HL7 v2 trigger events:

====  ==========================================  =======================================
A04   register an outpatient / ED arrival         patient enters ``unit`` (usually the ED)
A01   admit an inpatient                          patient enters ``unit`` / ``bed``
A02   transfer                                    patient moves ``prior_unit`` -> ``unit``
A03   discharge / end visit                       patient leaves the hospital
A08   update patient information                  acuity, bed or class corrected in place
A11   cancel admit / visit notification           undoes the A01/A04 of ``visit_id``
A12   cancel transfer                             undoes the last A02 of ``visit_id``
A13   cancel discharge                            undoes the A03 of ``visit_id``
====  ==========================================  =======================================
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from datetime import datetime
from typing import Literal

__all__ = ["ADT_EVENT_TYPES", "ADTEvent", "CensusSnapshot", "Occupant"]

ADT_EVENT_TYPES: dict[str, str] = {
    "A01": "admit",
    "A02": "transfer",
    "A03": "discharge",
    "A04": "register",
    "A08": "update",
    "A11": "cancel admit",
    "A12": "cancel transfer",
    "A13": "cancel discharge",
}
"""HL7 v2 ADT trigger events medtwin understands, with what each means."""

PatientClass = Literal["E", "I", "O"]
"""HL7 table 0004: emergency, inpatient, outpatient (the classes the flow model uses)."""


@dataclass(frozen=True, slots=True)
class ADTEvent:
    """One admission, discharge or transfer event.

    ``message_id`` is the identity of the message (HL7 ``MSH-10``, an event-log row id, a FHIR
    resource id + version): the census ignores a message id it has already applied.
    ``occurred_at`` is when the event happened (HL7 ``EVN-6``, else ``EVN-2``/``MSH-7``), which
    orders events; ``recorded_at`` is when the message was sent.
    """

    message_id: str
    event_type: str
    occurred_at: datetime
    patient_id: str
    visit_id: str
    unit: str | None = None
    bed: str | None = None
    prior_unit: str | None = None
    prior_bed: str | None = None
    patient_class: PatientClass | None = None
    acuity: str | None = None
    admission_type: str | None = None
    recorded_at: datetime | None = None

    def __post_init__(self) -> None:
        if self.event_type not in ADT_EVENT_TYPES:
            known = ", ".join(ADT_EVENT_TYPES)
            raise ValueError(
                f"message {self.message_id}: unknown ADT event type {self.event_type!r} "
                f"(known: {known})"
            )
        if self.occurred_at.tzinfo is None:
            raise ValueError(f"message {self.message_id}: occurred_at must be timezone-aware")


@dataclass(frozen=True, slots=True)
class Occupant:
    """A patient present in the hospital at a snapshot's time.

    ``unit_since`` is when the patient entered the current unit (the elapsed stay there is
    ``snapshot.at - unit_since``); ``arrived_at`` is when the visit began (ED arrival or
    admission).
    """

    visit_id: str
    patient_id: str
    unit: str
    bed: str | None
    unit_since: datetime
    arrived_at: datetime
    patient_class: PatientClass | None = None
    acuity: str | None = None


@dataclass(frozen=True, slots=True)
class CensusSnapshot:
    """Who is where at time ``at``: the state a forecast starts from."""

    at: datetime
    occupants: tuple[Occupant, ...]

    def counts(self) -> dict[str, int]:
        """Number of occupants per unit."""
        return dict(sorted(Counter(o.unit for o in self.occupants).items()))
