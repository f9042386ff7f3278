"""ADT events at rest: validated rows, identifiers encrypted, idempotent by message id.

An ADT event's message id (HL7 MSH-10, a FHIR Encounter version's event id) is its identity: a
resubmitted event is a duplicate, the same message id with other content a
:class:`~medtwin.errors.ConflictError`.  Content is compared by a keyed digest (HMAC under the
index key) of every field but ``recorded_at`` (a resend carries a new sending time), as the live
census compares events.  The patient and visit numbers are identifiers (PHI): they are stored as
AES-GCM ciphertexts bound to the row's message id and field.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

from medtwin.errors import ConflictError, DataFormatError
from medtwin.hospital._records import ADT_EVENT_TYPES, ADTEvent
from medtwin.security import FieldCipher, Keyring, blind_index
from medtwin.store._ingest import check_text, check_time

__all__ = ["ADT_SOURCES", "adt_difference", "adt_event", "adt_rows", "conflict"]

ADT_SOURCES = ("hl7v2", "mllp", "fhir", "csv", "demo", "api")
"""Where stored ADT events came from (kept with each row)."""

_TEXT_FIELDS = ("unit", "bed", "prior_unit", "prior_bed", "acuity", "admission_type")
_CLASSES = ("E", "I", "O")


def _digest(keyring: Keyring, e: ADTEvent) -> str:
    content = [
        e.message_id,
        e.event_type,
        e.occurred_at.astimezone(UTC).isoformat(),
        e.patient_id,
        e.visit_id,
        *(getattr(e, f) for f in _TEXT_FIELDS),
        e.patient_class,
    ]
    return blind_index(keyring.index_key, json.dumps(content, separators=(",", ":")))


def _context(message_id: str, field: str) -> str:
    return f"adt:{message_id}:{field}"


def adt_rows(
    events: Sequence[ADTEvent], keyring: Keyring, *, source: str, now: datetime
) -> list[dict[str, Any]]:
    """Validated rows of ``events`` (DataFormatError naming the event and field)."""
    if source not in ADT_SOURCES:
        raise DataFormatError(f"source: {source!r} is not one of {', '.join(ADT_SOURCES)}")
    cipher = FieldCipher(keyring.field_key)
    rows = []
    for i, e in enumerate(events):
        label = f"events[{i}]"
        if not isinstance(e, ADTEvent):
            raise DataFormatError(f"{label}: expected an ADTEvent; got {type(e).__name__}")
        mid = e.message_id
        if not isinstance(mid, str) or not mid.strip() or len(mid) > 255:
            raise DataFormatError(
                f"{label}.message_id: expected a non-empty string of at most 255 characters; "
                f"got {mid!r}"
            )
        label = f"message {mid}"
        if e.event_type not in ADT_EVENT_TYPES:
            raise DataFormatError(f"{label}: unknown event type {e.event_type!r}")
        for name in ("patient_id", "visit_id"):
            value = getattr(e, name)
            if not isinstance(value, str) or not value.strip() or len(value) > 1024:
                raise DataFormatError(f"{label}: {name} must be a non-empty string; got {value!r}")
        row: dict[str, Any] = {
            "message_id": mid,
            "digest": _digest(keyring, e),
            "event_type": e.event_type,
            "occurred_at": check_time(f"{label}.occurred_at", e.occurred_at),
            "recorded_at": None
            if e.recorded_at is None
            else check_time(f"{label}.recorded_at", e.recorded_at),
            "patient_enc": cipher.encrypt(e.patient_id, context=_context(mid, "patient_id")),
            "visit_enc": cipher.encrypt(e.visit_id, context=_context(mid, "visit_id")),
            "source": source,
            "received_at": now,
        }
        for name in _TEXT_FIELDS:
            row[name] = check_text(f"{label}.{name}", getattr(e, name), max_len=64, optional=True)
        if e.patient_class is not None and e.patient_class not in _CLASSES:
            raise DataFormatError(
                f"{label}.patient_class: expected E, I or O; got {e.patient_class!r}"
            )
        row["patient_class"] = e.patient_class
        rows.append(row)
    return rows


def adt_event(row: Any, cipher: FieldCipher) -> ADTEvent:
    """A stored row as the :class:`ADTEvent` it was (identifiers decrypted)."""
    mid = row.message_id
    return ADTEvent(
        message_id=mid,
        event_type=row.event_type,
        occurred_at=row.occurred_at,
        patient_id=cipher.decrypt(row.patient_enc, context=_context(mid, "patient_id")),
        visit_id=cipher.decrypt(row.visit_enc, context=_context(mid, "visit_id")),
        unit=row.unit,
        bed=row.bed,
        prior_unit=row.prior_unit,
        prior_bed=row.prior_bed,
        patient_class=row.patient_class,
        acuity=row.acuity,
        admission_type=row.admission_type,
        recorded_at=row.recorded_at,
    )


def adt_difference(old: ADTEvent, new: ADTEvent) -> list[str]:
    """The fields (but ``recorded_at``) in which two events of one message id differ."""
    out = []
    for f in dataclasses.fields(ADTEvent):
        if f.name == "recorded_at":
            continue
        a, b = getattr(old, f.name), getattr(new, f.name)
        if isinstance(a, datetime) and isinstance(b, datetime):
            a, b = a.astimezone(UTC), b.astimezone(UTC)
        if a != b:
            out.append(f.name)
    return out


def conflict(message_id: str, fields: list[str]) -> ConflictError:
    """The error for a message id stored before with other content."""
    differs = f" (it differs in {', '.join(fields)})" if fields else ""
    return ConflictError(
        f"message {message_id} was accepted before with other content{differs}; a correction "
        "needs a new message id (an A08 update, or a cancel and the corrected event); nothing "
        "of this batch was stored"
    )
