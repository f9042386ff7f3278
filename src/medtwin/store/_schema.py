"""The store's tables (SQLAlchemy 2 declarative).

The schema is created only by the Alembic migrations in ``medtwin/store/migrations``; these classes
describe it for queries, and a test checks that the migrations produce exactly this metadata on
SQLite and PostgreSQL.  Times are :class:`UTCDateTime`: ``timestamptz`` on PostgreSQL, and on
SQLite (which has no time zones) UTC text that is read back as an aware UTC datetime.
"""

from __future__ import annotations

from datetime import UTC, date, datetime
from typing import Any, ClassVar, cast

import sqlalchemy as sa
from sqlalchemy.engine import Dialect
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

__all__ = [
    "AdtEvent",
    "Alert",
    "Audit",
    "AuditHead",
    "Base",
    "CareTeam",
    "Condition",
    "Device",
    "Event",
    "Forecast",
    "Message",
    "Observation",
    "Patient",
    "Twin",
    "UTCDateTime",
    "User",
    "table",
]

ID = sa.String(64)
"""Patients, devices: FHIR ids are at most 64 characters."""

BIGID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
"""A 64-bit surrogate key; on SQLite ``INTEGER PRIMARY KEY`` so that it is the rowid."""


class UTCDateTime(sa.types.TypeDecorator[datetime]):
    """An aware UTC datetime: stored in UTC, always read back aware (tz = UTC).

    Naive datetimes are refused: a time without a zone is ambiguous in a clinical record.
    """

    impl = sa.DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        """Convert to UTC (and drop the zone on SQLite, whose DATETIME is plain text)."""
        if value is None:
            return None
        if value.tzinfo is None or value.utcoffset() is None:
            raise ValueError(f"naive datetime {value!r}: pass an aware datetime (UTC)")
        value = value.astimezone(UTC)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        """Attach UTC (SQLite) or convert to it (PostgreSQL returns the session's zone)."""
        if value is None:
            return None
        if value.tzinfo is None:
            return value.replace(tzinfo=UTC)
        return value.astimezone(UTC)


class Base(DeclarativeBase):
    """Declarative base of the store's tables."""

    metadata = sa.MetaData(
        naming_convention={
            "ix": "ix_%(table_name)s_%(column_0_N_name)s",
            "uq": "uq_%(table_name)s_%(column_0_N_name)s",
            "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
            "pk": "pk_%(table_name)s",
        }
    )
    type_annotation_map: ClassVar[dict[Any, Any]] = {
        datetime: UTCDateTime(),
        date: sa.Date(),
        float: sa.Double(),
    }


class User(Base):
    """A login: argon2 hash, role and SMART scopes (space-separated); device accounts name theirs."""

    __tablename__ = "users"

    id: Mapped[str] = mapped_column(sa.String(32), primary_key=True)
    username: Mapped[str] = mapped_column(sa.String(128), unique=True)
    password_hash: Mapped[str] = mapped_column(sa.Text)
    role: Mapped[str] = mapped_column(sa.String(16))
    scopes: Mapped[str] = mapped_column(sa.Text)
    disabled: Mapped[bool] = mapped_column(sa.Boolean, default=False)
    patient_id: Mapped[str | None] = mapped_column(ID, sa.ForeignKey("patients.id"))
    device_id: Mapped[str | None] = mapped_column(ID, sa.ForeignKey("devices.id"))
    created_at: Mapped[datetime]


class Patient(Base):
    """A patient; identifier, name and birth date are AES-GCM ciphertexts (never plaintext)."""

    __tablename__ = "patients"

    id: Mapped[str] = mapped_column(ID, primary_key=True)
    identifier_enc: Mapped[bytes | None] = mapped_column(sa.LargeBinary)
    # HMAC of the identifier: finds a patient by MRN without decrypting every row.
    identifier_index: Mapped[str | None] = mapped_column(sa.String(64), unique=True)
    name_enc: Mapped[bytes | None] = mapped_column(sa.LargeBinary)
    birth_date_enc: Mapped[bytes | None] = mapped_column(sa.LargeBinary)
    sex: Mapped[str | None] = mapped_column(sa.String(16))
    source_id: Mapped[str | None] = mapped_column(sa.Text)
    created_at: Mapped[datetime]


class CareTeam(Base):
    """Which users (clinicians) care for which patients."""

    __tablename__ = "care_team"
    __table_args__ = (sa.Index(None, "user_id"),)

    patient_id: Mapped[str] = mapped_column(ID, sa.ForeignKey("patients.id"), primary_key=True)
    user_id: Mapped[str] = mapped_column(sa.String(32), sa.ForeignKey("users.id"), primary_key=True)
    added_at: Mapped[datetime]


class Device(Base):
    """A device (CGM, pump, watch) and the patient it is attached to."""

    __tablename__ = "devices"

    id: Mapped[str] = mapped_column(ID, primary_key=True)
    patient_id: Mapped[str | None] = mapped_column(ID, sa.ForeignKey("patients.id"), index=True)
    kind: Mapped[str] = mapped_column(sa.String(64))
    manufacturer: Mapped[str | None] = mapped_column(sa.Text)
    model: Mapped[str | None] = mapped_column(sa.Text)
    source_id: Mapped[str | None] = mapped_column(sa.Text)
    created_at: Mapped[datetime]


class Observation(Base):
    """One measurement in its code's canonical unit.

    ``source_id`` is unique per patient (idempotent re-ingestion), and so is a device's reading of
    one code at one instant (the same reading arriving by two routes is stored once).
    """

    __tablename__ = "observations"
    __table_args__ = (
        sa.UniqueConstraint("patient_id", "source_id"),
        sa.UniqueConstraint("patient_id", "code", "time", "device_id"),
        sa.Index(None, "patient_id", "time"),
    )

    id: Mapped[int] = mapped_column(BIGID, primary_key=True, autoincrement=True)
    patient_id: Mapped[str] = mapped_column(ID, sa.ForeignKey("patients.id"))
    code: Mapped[str] = mapped_column(sa.String(16))
    time: Mapped[datetime]
    value: Mapped[float]
    unit: Mapped[str] = mapped_column(sa.String(16))
    device_id: Mapped[str | None] = mapped_column(ID, sa.ForeignKey("devices.id"))
    source_id: Mapped[str] = mapped_column(sa.Text)
    received_at: Mapped[datetime]


class Event(Base):
    """A dose, meal or basal-rate change in its kind's canonical unit."""

    __tablename__ = "events"
    __table_args__ = (
        sa.UniqueConstraint("patient_id", "source_id"),
        sa.Index(None, "patient_id", "time"),
    )

    id: Mapped[int] = mapped_column(BIGID, primary_key=True, autoincrement=True)
    patient_id: Mapped[str] = mapped_column(ID, sa.ForeignKey("patients.id"))
    kind: Mapped[str] = mapped_column(sa.String(16))
    time: Mapped[datetime]
    value: Mapped[float]
    unit: Mapped[str] = mapped_column(sa.String(16))
    source_id: Mapped[str] = mapped_column(sa.Text)
    detail: Mapped[dict[str, Any]] = mapped_column(sa.JSON)
    received_at: Mapped[datetime]


class Condition(Base):
    """A diagnosis."""

    __tablename__ = "conditions"
    __table_args__ = (sa.UniqueConstraint("patient_id", "source_id"),)

    id: Mapped[int] = mapped_column(BIGID, primary_key=True, autoincrement=True)
    patient_id: Mapped[str] = mapped_column(ID, sa.ForeignKey("patients.id"))
    system: Mapped[str] = mapped_column(sa.Text)
    code: Mapped[str] = mapped_column(sa.String(64))
    display: Mapped[str | None] = mapped_column(sa.Text)
    onset: Mapped[date | None]
    source_id: Mapped[str] = mapped_column(sa.Text)
    received_at: Mapped[datetime]


class Message(Base):
    """A whole ingested message (a Bundle, an upload): its digest makes resubmission a no-op."""

    __tablename__ = "messages"

    message_id: Mapped[str] = mapped_column(sa.String(255), primary_key=True)
    digest: Mapped[str] = mapped_column(sa.String(64))
    received_at: Mapped[datetime]
    accepted: Mapped[int]
    duplicates: Mapped[int]


class Twin(Base):
    """A patient twin's serialised state (one per patient)."""

    __tablename__ = "twins"

    patient_id: Mapped[str] = mapped_column(ID, sa.ForeignKey("patients.id"), primary_key=True)
    blob: Mapped[bytes] = mapped_column(sa.LargeBinary)
    model: Mapped[str] = mapped_column(sa.String(128))
    as_of: Mapped[datetime]
    updated_at: Mapped[datetime]


class Forecast(Base):
    """A forecast as made at ``made_at`` (a JSON payload: bands, model, horizon)."""

    __tablename__ = "forecasts"
    __table_args__ = (sa.Index(None, "patient_id", "made_at"),)

    id: Mapped[int] = mapped_column(BIGID, primary_key=True, autoincrement=True)
    patient_id: Mapped[str] = mapped_column(ID, sa.ForeignKey("patients.id"))
    made_at: Mapped[datetime]
    payload: Mapped[dict[str, Any]] = mapped_column(sa.JSON)
    created_at: Mapped[datetime]


class Alert(Base):
    """A risk that crossed its threshold, until a user acknowledges it."""

    __tablename__ = "alerts"
    __table_args__ = (sa.Index(None, "patient_id", "time"), sa.Index(None, "time"))

    id: Mapped[int] = mapped_column(BIGID, primary_key=True, autoincrement=True)
    patient_id: Mapped[str] = mapped_column(ID, sa.ForeignKey("patients.id"))
    time: Mapped[datetime]
    kind: Mapped[str] = mapped_column(sa.String(64))
    probability: Mapped[float]
    threshold: Mapped[float]
    window_min: Mapped[float]
    model: Mapped[str] = mapped_column(sa.String(128))
    message: Mapped[str] = mapped_column(sa.Text)
    acknowledged_by: Mapped[str | None] = mapped_column(sa.String(32), sa.ForeignKey("users.id"))
    acknowledged_at: Mapped[datetime | None]
    created_at: Mapped[datetime]


class AdtEvent(Base):
    """One accepted ADT event (admission, discharge, transfer) of the hospital twin's census.

    ``message_id`` (HL7 MSH-10, a FHIR Encounter version's event id) makes resubmission a no-op;
    ``digest`` is a keyed hash (HMAC under the index key) of the content, to tell a resend from a
    conflicting message without decrypting.  The patient and visit numbers are identifiers: they
    are AES-GCM ciphertexts bound to the message id.  ``id`` is the order of arrival, the order
    the census is rebuilt in.
    """

    __tablename__ = "adt_events"

    id: Mapped[int] = mapped_column(BIGID, primary_key=True, autoincrement=True)
    message_id: Mapped[str] = mapped_column(sa.String(255), unique=True)
    digest: Mapped[str] = mapped_column(sa.String(64))
    event_type: Mapped[str] = mapped_column(sa.String(3))
    occurred_at: Mapped[datetime]
    recorded_at: Mapped[datetime | None]
    patient_enc: Mapped[bytes] = mapped_column(sa.LargeBinary)
    visit_enc: Mapped[bytes] = mapped_column(sa.LargeBinary)
    unit: Mapped[str | None] = mapped_column(sa.String(64))
    bed: Mapped[str | None] = mapped_column(sa.String(64))
    prior_unit: Mapped[str | None] = mapped_column(sa.String(64))
    prior_bed: Mapped[str | None] = mapped_column(sa.String(64))
    patient_class: Mapped[str | None] = mapped_column(sa.String(1))
    acuity: Mapped[str | None] = mapped_column(sa.String(64))
    admission_type: Mapped[str | None] = mapped_column(sa.String(64))
    source: Mapped[str] = mapped_column(sa.String(16))
    received_at: Mapped[datetime]


class Audit(Base):
    """One audit entry with its chain hash; appended only, never updated or deleted."""

    __tablename__ = "audit"
    __table_args__ = (sa.Index(None, "patient_id"),)

    seq: Mapped[int] = mapped_column(BIGID, primary_key=True, autoincrement=False)
    time: Mapped[datetime]
    actor: Mapped[str] = mapped_column(sa.String(128))
    role: Mapped[str] = mapped_column(sa.String(16))
    action: Mapped[str] = mapped_column(sa.String(64))
    resource: Mapped[str] = mapped_column(sa.Text)
    # No foreign key: denied accesses to patients that do not exist are audited too.
    patient_id: Mapped[str | None] = mapped_column(ID)
    outcome: Mapped[str] = mapped_column(sa.String(16))
    detail: Mapped[str] = mapped_column(sa.Text)
    prev_hash: Mapped[str] = mapped_column(sa.String(64))
    hash: Mapped[str] = mapped_column(sa.String(64))


class AuditHead(Base):
    """The chain's last seq and hash (one row, id 1): the lock appends take, and a tail check."""

    __tablename__ = "audit_head"

    id: Mapped[int] = mapped_column(sa.Integer, primary_key=True, autoincrement=False)
    seq: Mapped[int] = mapped_column(sa.BigInteger)
    hash: Mapped[str] = mapped_column(sa.String(64))


def table(model: type[Base]) -> sa.Table:
    """The Core :class:`~sqlalchemy.Table` of a declarative class (for bulk statements)."""
    return cast(sa.Table, model.__table__)
