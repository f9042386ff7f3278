"""The :class:`Store`: users, patients, devices, ingestion, reads, twins, alerts and the audit log."""

from __future__ import annotations

import contextlib
import dataclasses
import threading
import uuid
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from types import TracebackType
from typing import Any

import pandas as pd
import sqlalchemy as sa
from sqlalchemy.engine import make_url
from sqlalchemy.orm import Session, sessionmaker

from medtwin.errors import ConflictError, DataFormatError, NotFoundError
from medtwin.hospital._records import ADTEvent
from medtwin.records import (
    AlertRecord,
    ConditionRecord,
    DeviceRecord,
    EventRecord,
    ObservationRecord,
    PatientRecord,
)
from medtwin.security import (
    GENESIS,
    ROLE_SCOPES,
    AuditEntry,
    ChainReport,
    FieldCipher,
    Keyring,
    Principal,
    Role,
    Scope,
    blind_index,
    chain_hash,
    format_scopes,
    hash_password,
    parse_scopes,
    password_needs_rehash,
    pseudonym,
    verify_chain,
    verify_password,
)
from medtwin.store._adt import adt_difference, adt_event, adt_rows, conflict
from medtwin.store._engine import WRITE, create_engine, default_url, is_memory, migrate
from medtwin.store._ingest import (
    IngestResult,
    check_id,
    check_text,
    check_time,
    condition_rows,
    content_digest,
    decrypt_patient,
    event_rows,
    existing,
    insert,
    observation_rows,
    reading_rows,
    store_conditions,
    store_devices,
    store_events,
    store_observations,
    store_patients,
)
from medtwin.store._schema import (
    AdtEvent,
    Alert,
    Audit,
    AuditHead,
    CareTeam,
    Condition,
    Device,
    Event,
    Forecast,
    Message,
    Observation,
    Patient,
    Twin,
    User,
    table,
)

__all__ = ["ReadingBatch", "Store", "StoredForecast", "UserInfo"]

_OBS_COLUMNS = ["time", "code", "value", "unit", "device_id", "source_id"]


@dataclass(frozen=True, slots=True)
class UserInfo:
    """A stored user, without the password hash."""

    id: str
    username: str
    role: Role
    scopes: tuple[Scope, ...]
    disabled: bool
    created_at: datetime
    patient_id: str | None = None
    device_id: str | None = None


@dataclass(frozen=True, slots=True)
class ReadingBatch:
    """One device's readings for :meth:`Store.ingest_readings_many` (as ``ingest_readings``)."""

    patient_id: str
    device_id: str
    times: Sequence[datetime]
    values: Sequence[float]
    code: str = "99504-3"
    unit: str = "mg/dL"
    first_seq: int | None = None


@dataclass(frozen=True, slots=True)
class StoredForecast:
    """A forecast as stored: the JSON ``payload`` made at ``made_at``."""

    id: int
    patient_id: str
    made_at: datetime
    payload: dict[str, Any]


class Store:
    """Persistence behind one interface: SQLite by default, PostgreSQL by URL.

    Thread-safe: one engine, a session per call.  PHI (identifier, name, birth date) is stored
    AES-GCM encrypted under ``keyring.field_key``; the audit chain is keyed by
    ``keyring.audit_key``.  Open one with :meth:`open`.
    """

    def __init__(self, engine: sa.Engine, *, keyring: Keyring) -> None:
        self._engine = engine
        self._keyring = keyring
        self._cipher = FieldCipher(keyring.field_key)
        self._read = sessionmaker(engine, expire_on_commit=False)
        self._write = sessionmaker(
            engine.execution_options(**{WRITE: True}), expire_on_commit=False
        )
        # An in-memory SQLite database is one shared connection: one call at a time.
        self._lock: contextlib.AbstractContextManager[Any] = (
            threading.RLock() if is_memory(engine.url) else contextlib.nullcontext()
        )
        self._dummy_hash: str | None = None

    @classmethod
    def open(cls, url: str | None = None, *, keyring: Keyring) -> Store:
        """Open (and create or upgrade, with Alembic) the database at ``url``.

        ``url`` defaults to ``MEDTWIN_DATABASE_URL``, else the SQLite file
        ``<MEDTWIN_HOME or ./medtwin-data>/medtwin.db`` (its folder is created).  PostgreSQL:
        ``postgresql+pg8000://user@host/dbname``.

        >>> from medtwin.records import PatientRecord
        >>> from medtwin.security import Keyring
        >>> store = Store.open("sqlite://", keyring=Keyring.from_bytes(bytes(32)))
        >>> store.add_patient(PatientRecord("p1", identifier="urn:mrn|42", name="Ada Lovelace"))
        'p1'
        >>> store.find_patient("urn:mrn|42"), store.get_patient("p1").name
        ('p1', 'Ada Lovelace')
        >>> store.close()
        """
        engine = create_engine(url or default_url())
        try:
            migrate(engine)
        except BaseException:
            engine.dispose()
            raise
        return cls(engine, keyring=keyring)

    @property
    def url(self) -> str:
        """The database URL, password hidden."""
        return make_url(self._engine.url).render_as_string(hide_password=True)

    @property
    def backend(self) -> str:
        """``"sqlite"`` or ``"postgresql"``."""
        return self._engine.dialect.name

    def close(self) -> None:
        """Close every pooled connection."""
        self._engine.dispose()

    def __enter__(self) -> Store:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"Store({self.url!r})"

    @contextlib.contextmanager
    def _session(self, *, write: bool = False) -> Iterator[Session]:
        with self._lock, (self._write if write else self._read).begin() as session:
            yield session

    # -- users ---------------------------------------------------------------------------------

    def create_user(
        self,
        username: str,
        password: str,
        role: Role | str,
        *,
        scopes: str | Iterable[Scope] | None = None,
        patient_id: str | None = None,
        device_id: str | None = None,
    ) -> str:
        """Create a user; its id.  ``scopes`` default to ``ROLE_SCOPES[role]``.

        A device account names its ``patient_id`` (and ``device_id``): the one patient it may
        write observations for.  An existing username raises ConflictError.
        """
        check_text("username", username, max_len=128)
        if not username:
            raise DataFormatError("username: must not be empty")
        r = _role(role)
        granted = (
            ROLE_SCOPES[r]
            if scopes is None
            else parse_scopes(scopes)
            if isinstance(scopes, str)
            else tuple(scopes)
        )
        pw_hash = hash_password(password)  # slow by design: outside the transaction
        uid = uuid.uuid4().hex
        with self._session(write=True) as s:
            if s.scalar(sa.select(User.id).where(User.username == username)) is not None:
                raise ConflictError(f"username {username!r} is taken; choose another")
            if patient_id is not None:
                self._require(s, Patient, patient_id, "patient")
            if device_id is not None:
                self._require(s, Device, device_id, "device")
            s.add(
                User(
                    id=uid,
                    username=username,
                    password_hash=pw_hash,
                    role=str(r),
                    scopes=format_scopes(granted),
                    disabled=False,
                    patient_id=patient_id,
                    device_id=device_id,
                    created_at=_now(),
                )
            )
        return uid

    def authenticate(self, username: str, password: str) -> Principal | None:
        """The principal for a correct username and password of an enabled user, else ``None``."""
        with self._session() as s:
            user = s.scalar(sa.select(User).where(User.username == username))
        if user is None or user.disabled:
            # Spend the same time as a real check, so timing does not reveal which usernames exist.
            verify_password(self._timing_hash(), password)
            return None
        if not verify_password(user.password_hash, password):
            return None
        if password_needs_rehash(user.password_hash):
            new_hash = hash_password(password)
            with self._session(write=True) as s:
                s.execute(sa.update(User).where(User.id == user.id).values(password_hash=new_hash))
        return Principal(
            subject=user.id,
            username=user.username,
            role=Role(user.role),
            scopes=parse_scopes(user.scopes),
            patient_id=user.patient_id,
            device_id=user.device_id,
        )

    def _timing_hash(self) -> str:
        if self._dummy_hash is None:
            self._dummy_hash = hash_password(uuid.uuid4().hex)
        return self._dummy_hash

    def get_user(self, user_id: str) -> UserInfo:
        """A user by id (NotFoundError if there is none)."""
        with self._session() as s:
            user = s.get(User, user_id)
            if user is None:
                raise NotFoundError(f"user {user_id!r} does not exist")
            return _user_info(user)

    def list_users(self) -> list[UserInfo]:
        """Every user, by username."""
        with self._session() as s:
            return [_user_info(u) for u in s.scalars(sa.select(User).order_by(User.username))]

    def disable_user(self, user_id: str, *, disabled: bool = True) -> None:
        """Disable (or re-enable) a user: a disabled user cannot authenticate."""
        with self._session(write=True) as s:
            self._require(s, User, user_id, "user")
            s.execute(sa.update(User).where(User.id == user_id).values(disabled=disabled))

    # -- patients ------------------------------------------------------------------------------

    def add_patient(self, record: PatientRecord, *, clinicians: Iterable[str] = ()) -> str:
        """Store a patient (PHI encrypted) and its care team; its id.

        An empty ``record.id`` gets a new one.  Adding the same patient again changes nothing;
        the same id (or identifier) with other content raises ConflictError.
        """
        if isinstance(record, PatientRecord) and not record.id:
            record = dataclasses.replace(record, id=uuid.uuid4().hex)
        users = list(dict.fromkeys(clinicians))
        now = _now()
        with self._session(write=True) as s:
            store_patients(s, [record], self._keyring, now, label="patient")
            self._add_care_team(s, record.id, users, now)
        return record.id

    def get_patient(self, patient_id: str) -> PatientRecord:
        """A patient, decrypted (NotFoundError if there is none)."""
        with self._session() as s:
            row = s.get(Patient, patient_id)
            if row is None:
                raise NotFoundError(f"patient {patient_id!r} does not exist")
            return decrypt_patient(row, self._cipher)

    def find_patient(self, identifier: str) -> str | None:
        """The id of the patient with this identifier (exact match, by blind index)."""
        index = blind_index(self._keyring.index_key, identifier)
        with self._session() as s:
            return s.scalar(sa.select(Patient.id).where(Patient.identifier_index == index))

    def list_patients(self, *, clinician: str | None = None) -> list[str]:
        """Patient ids, sorted; only those on ``clinician``'s (a user id) care team if given."""
        stmt = sa.select(Patient.id).order_by(Patient.id)
        if clinician is not None:
            stmt = stmt.join(CareTeam, CareTeam.patient_id == Patient.id).where(
                CareTeam.user_id == clinician
            )
        with self._session() as s:
            return list(s.scalars(stmt))

    def assign_clinician(self, patient_id: str, user_id: str) -> None:
        """Put a user on a patient's care team (no-op if already there)."""
        with self._session(write=True) as s:
            self._require(s, Patient, patient_id, "patient")
            self._add_care_team(s, patient_id, [user_id], _now())

    def _add_care_team(self, s: Session, patient_id: str, users: list[str], now: datetime) -> None:
        if not users:
            return
        found = existing(s, table(User).c.id, users)
        missing = [u for u in users if u not in found]
        if missing:
            raise NotFoundError(f"user {missing[0]!r} does not exist; nothing was stored")
        rows = [{"patient_id": patient_id, "user_id": u, "added_at": now} for u in users]
        s.execute(insert(s, CareTeam).on_conflict_do_nothing(), rows)

    def on_care_team(self, user_id: str, patient_id: str) -> bool:
        """Whether the user is on the patient's care team."""
        stmt = sa.select(CareTeam.user_id).where(
            CareTeam.user_id == user_id, CareTeam.patient_id == patient_id
        )
        with self._session() as s:
            return s.scalar(stmt) is not None

    def pseudonym(self, patient_id: str) -> str:
        """The patient's stable research pseudonym (keyed hash; no database access)."""
        return pseudonym(self._keyring.pseudonym_key, patient_id)

    # -- devices -------------------------------------------------------------------------------

    def add_device(self, record: DeviceRecord) -> str:
        """Store a device (its patient must exist); its id.  Idempotent like :meth:`ingest`."""
        with self._session(write=True) as s:
            store_devices(s, [record], _now(), label="device")
        return record.id

    def get_device(self, device_id: str) -> DeviceRecord:
        """A device (NotFoundError if there is none)."""
        with self._session() as s:
            d = s.get(Device, device_id)
            if d is None:
                raise NotFoundError(f"device {device_id!r} does not exist")
            return DeviceRecord(d.id, d.patient_id, d.kind, d.manufacturer, d.model, d.source_id)

    # -- ingestion -----------------------------------------------------------------------------

    def ingest(
        self,
        *,
        observations: Sequence[ObservationRecord] = (),
        events: Sequence[EventRecord] = (),
        patients: Sequence[PatientRecord] = (),
        conditions: Sequence[ConditionRecord] = (),
        devices: Sequence[DeviceRecord] = (),
        message_id: str | None = None,
    ) -> IngestResult:
        """Store records in one transaction: all of them, or none.

        Patients and devices go first, so a message may carry the patient its observations
        belong to.  Idempotent: a record whose ``source_id`` (or id) is stored with the same
        content is a duplicate; with other content it raises ConflictError.  A ``message_id``
        seen before with the same content returns a replay (nothing written), with other
        content ConflictError.  Invalid records raise DataFormatError naming the record and
        field, unknown patients or devices NotFoundError; either way nothing is stored.
        """
        observations, events = list(observations), list(events)
        patients, conditions, devices = list(patients), list(conditions), list(devices)
        now = _now()
        # Validate what needs no database before taking the write lock.
        obs_rows = observation_rows(observations, now)
        ev_rows = event_rows(events, now)
        cond_rows = condition_rows(conditions, now)
        digest = None
        if message_id is not None:
            check_text("message_id", message_id, max_len=255)
            digest = content_digest(
                observations=observations,
                events=events,
                patients=patients,
                conditions=conditions,
                devices=devices,
            )
        with self._session(write=True) as s:
            if message_id is not None and digest is not None:
                replay = self._claim_message(s, message_id, digest, now)
                if replay is not None:
                    return replay
            ids: list[str] = []
            dups = 0
            for new, dup in (
                store_patients(s, patients, self._keyring, now),
                store_devices(s, devices, now),
                store_observations(s, obs_rows),
                store_events(s, ev_rows),
                store_conditions(s, cond_rows),
            ):
                ids += new
                dups += dup
            if message_id is not None:
                s.execute(
                    sa.update(Message)
                    .where(Message.message_id == message_id)
                    .values(accepted=len(ids), duplicates=dups)
                )
        return IngestResult(len(ids), dups, tuple(ids))

    def _claim_message(
        self, s: Session, message_id: str, digest: str, now: datetime
    ) -> IngestResult | None:
        # Insert first: on PostgreSQL a concurrent ingestion of the same message waits here for
        # the first to commit (or roll back) instead of storing its records a second time.
        row = {
            "message_id": message_id,
            "digest": digest,
            "received_at": now,
            "accepted": 0,
            "duplicates": 0,
        }
        stmt = insert(s, Message).on_conflict_do_nothing().returning(table(Message).c.message_id)
        if s.execute(stmt, row).first() is not None:
            return None
        old = s.execute(sa.select(Message).where(Message.message_id == message_id)).scalar_one()
        if old.digest != digest:
            raise ConflictError(
                f"message_id {message_id!r} was ingested before with other content; "
                "give a changed message a new message_id; nothing was stored"
            )
        return IngestResult(0, old.accepted + old.duplicates, (), replayed=True)

    def ingest_readings(
        self,
        patient_id: str,
        device_id: str,
        times: Sequence[datetime],
        values: Sequence[float],
        code: str = "99504-3",
        unit: str = "mg/dL",
        *,
        first_seq: int | None = None,
    ) -> IngestResult:
        """The light path: one device's pre-validated readings, bulk-inserted in one transaction.

        ``source_id`` of reading ``i`` is ``"<device_id>:<first_seq + i>"`` (without
        ``first_seq``: derived from code, device and time).  Same idempotency and checks as
        :meth:`ingest`; ``values`` must be finite and in ``unit``, the code's canonical unit.
        """
        rows = reading_rows(patient_id, device_id, times, values, code, unit, first_seq, _now())
        with self._session(write=True) as s:
            ids, dups = store_observations(s, rows, label="readings")
        return IngestResult(len(ids), dups, tuple(ids))

    def ingest_readings_many(self, batches: Sequence[ReadingBatch]) -> IngestResult:
        """Several devices' readings in ONE transaction (all or none): what a broker delivers.

        Same rows, checks and idempotency as :meth:`ingest_readings`; one commit for the lot is
        what lets one bridge keep up with hundreds of devices.
        """
        now = _now()
        rows: list[dict[str, Any]] = []
        for b in batches:
            rows += reading_rows(
                b.patient_id, b.device_id, b.times, b.values, b.code, b.unit, b.first_seq, now
            )
        with self._session(write=True) as s:
            ids, dups = store_observations(s, rows, label="readings")
        return IngestResult(len(ids), dups, tuple(ids))

    # -- ADT events (the hospital twin's census) ------------------------------------------------

    def ingest_adt(self, events: Sequence[ADTEvent], *, source: str = "api") -> IngestResult:
        """Store ADT events in one transaction: all of them, or none.

        Idempotent by message id: an event stored before with the same content (every field but
        ``recorded_at``) is a duplicate; with other content ConflictError naming the message and
        the fields that differ, and nothing of the batch is stored.  ``ids`` of the result are
        the message ids stored now, in input order.  The patient and visit numbers are stored
        encrypted.

        >>> from datetime import UTC, datetime
        >>> from medtwin.hospital import ADTEvent
        >>> from medtwin.security import Keyring
        >>> t = datetime(2026, 1, 5, 8, tzinfo=UTC)
        >>> e = ADTEvent("MSG1", "A04", t, "MRN-1", "V1", unit="ED", patient_class="E")
        >>> with Store.open("sqlite://", keyring=Keyring.from_bytes(bytes(32))) as store:
        ...     first, again = store.ingest_adt([e]), store.ingest_adt([e])
        ...     stored = store.adt_events()
        >>> (first.accepted, again.duplicates), stored == [e]
        ((1, 1), True)
        """
        events = list(events)
        rows = adt_rows(events, self._keyring, source=source, now=_now())
        first: dict[str, int] = {}
        unique: list[int] = []
        for i, row in enumerate(rows):
            j = first.setdefault(row["message_id"], i)
            if j == i:
                unique.append(i)
            elif rows[j]["digest"] != row["digest"]:
                raise conflict(row["message_id"], adt_difference(events[j], events[i]))
        t = table(AdtEvent)
        with self._session(write=True) as s:
            stmt = insert(s, AdtEvent).on_conflict_do_nothing().returning(t.c.message_id)
            stored = set(s.scalars(stmt, [rows[i] for i in unique])) if unique else set()
            skipped = [i for i in unique if rows[i]["message_id"] not in stored]
            if skipped:
                ids = [rows[i]["message_id"] for i in skipped]
                have = {
                    r.message_id: r for r in s.execute(sa.select(t).where(t.c.message_id.in_(ids)))
                }
                for i in skipped:
                    old = have[rows[i]["message_id"]]
                    if old.digest != rows[i]["digest"]:
                        before = adt_event(old, self._cipher)
                        raise conflict(old.message_id, adt_difference(before, events[i]))
        accepted = tuple(rows[i]["message_id"] for i in unique if rows[i]["message_id"] in stored)
        return IngestResult(len(accepted), len(events) - len(accepted), accepted)

    def adt_events(self) -> list[ADTEvent]:
        """Every stored ADT event, in the order they were accepted (identifiers decrypted)."""
        t = table(AdtEvent)
        with self._session() as s:
            rows = s.execute(sa.select(t).order_by(t.c.id)).yield_per(5000)
            return [adt_event(r, self._cipher) for r in rows]

    def count_adt_events(self) -> int:
        """How many ADT events are stored."""
        with self._session() as s:
            return int(s.scalar(sa.select(sa.func.count()).select_from(table(AdtEvent))) or 0)

    # -- reads ---------------------------------------------------------------------------------

    def _observation_select(
        self,
        patient_id: str,
        code: str | None,
        start: datetime | None,
        end: datetime | None,
        columns: Sequence[sa.ColumnElement[Any]],
    ) -> sa.Select[Any]:
        t = table(Observation)
        stmt = sa.select(*columns).where(t.c.patient_id == patient_id)
        if code is not None:
            stmt = stmt.where(t.c.code == code)
        if start is not None:
            stmt = stmt.where(t.c.time >= check_time("start", start))
        if end is not None:
            stmt = stmt.where(t.c.time < check_time("end", end))
        return stmt.order_by(t.c.time, t.c.code, t.c.id)

    def observations(
        self,
        patient_id: str,
        *,
        code: str | None = None,
        start: datetime | None = None,
        end: datetime | None = None,
    ) -> list[ObservationRecord]:
        """A patient's observations with ``start <= time < end``, oldest first."""
        t = table(Observation)
        cols = [t.c.patient_id, t.c.code, t.c.time, t.c.value, t.c.unit, t.c.device_id]
        stmt = self._observation_select(patient_id, code, start, end, [*cols, t.c.source_id])
        with self._session() as s:
            self._require(s, Patient, patient_id, "patient")
            return [ObservationRecord(*row) for row in s.execute(stmt)]

    def observations_frame(
        self,
        patient_id: str,
        *,
        code: str | None = None,
        start: datetime | None = None,
        end: datetime | None = None,
    ) -> pd.DataFrame:
        """:meth:`observations` as a DataFrame: time (UTC), code, value, unit, device_id, source_id."""
        t = table(Observation)
        stmt = self._observation_select(
            patient_id, code, start, end, [t.c[c] for c in _OBS_COLUMNS]
        )
        with self._session() as s:
            self._require(s, Patient, patient_id, "patient")
            rows = s.execute(stmt).all()
        frame = pd.DataFrame.from_records(rows, columns=_OBS_COLUMNS)
        frame["time"] = pd.to_datetime(frame["time"], utc=True)
        frame["value"] = frame["value"].astype("float64")
        return frame

    def events(
        self,
        patient_id: str,
        *,
        kind: str | None = None,
        start: datetime | None = None,
        end: datetime | None = None,
    ) -> list[EventRecord]:
        """A patient's events (doses, meals, basal changes) with ``start <= time < end``."""
        stmt = sa.select(Event).where(Event.patient_id == patient_id)
        if kind is not None:
            stmt = stmt.where(Event.kind == kind)
        if start is not None:
            stmt = stmt.where(Event.time >= check_time("start", start))
        if end is not None:
            stmt = stmt.where(Event.time < check_time("end", end))
        with self._session() as s:
            self._require(s, Patient, patient_id, "patient")
            return [
                EventRecord(e.patient_id, e.kind, e.time, e.value, e.unit, e.source_id, e.detail)  # type: ignore[arg-type]
                for e in s.scalars(stmt.order_by(Event.time, Event.id))
            ]

    def conditions(self, patient_id: str) -> list[ConditionRecord]:
        """A patient's conditions, in the order they were stored."""
        stmt = sa.select(Condition).where(Condition.patient_id == patient_id).order_by(Condition.id)
        with self._session() as s:
            self._require(s, Patient, patient_id, "patient")
            return [
                ConditionRecord(c.patient_id, c.system, c.code, c.display, c.onset, c.source_id)
                for c in s.scalars(stmt)
            ]

    # -- twins, forecasts, alerts --------------------------------------------------------------

    def save_twin(self, patient_id: str, blob: bytes, *, model: str, as_of: datetime) -> None:
        """Save (replace) the patient's twin state."""
        if not isinstance(blob, bytes | bytearray | memoryview):
            raise DataFormatError(f"blob: expected bytes; got {type(blob).__name__}")
        row = {
            "patient_id": patient_id,
            "blob": bytes(blob),
            "model": check_text("model", model, max_len=128),
            "as_of": check_time("as_of", as_of),
            "updated_at": _now(),
        }
        with self._session(write=True) as s:
            self._require(s, Patient, patient_id, "patient")
            stmt = insert(s, Twin)
            stmt = stmt.on_conflict_do_update(
                index_elements=[table(Twin).c.patient_id],
                set_={k: stmt.excluded[k] for k in ("blob", "model", "as_of", "updated_at")},
            )
            s.execute(stmt, row)

    def load_twin(self, patient_id: str) -> bytes | None:
        """The patient's saved twin state, or ``None``."""
        with self._session() as s:
            return s.scalar(sa.select(Twin.blob).where(Twin.patient_id == patient_id))

    def add_forecast(self, patient_id: str, made_at: datetime, payload: dict[str, Any]) -> int:
        """Store a forecast (a JSON-serialisable dict); its id."""
        made = check_time("made_at", made_at)
        if not isinstance(payload, dict):
            raise DataFormatError(f"payload: expected a dict; got {type(payload).__name__}")
        with self._session(write=True) as s:
            self._require(s, Patient, patient_id, "patient")
            row = {
                "patient_id": patient_id,
                "made_at": made,
                "payload": payload,
                "created_at": _now(),
            }
            try:
                return int(s.execute(sa.insert(Forecast).returning(Forecast.id), row).scalar_one())
            except sa.exc.StatementError as exc:
                if isinstance(exc.orig, TypeError | ValueError):
                    raise DataFormatError(f"payload: not JSON-serialisable ({exc.orig})") from None
                raise

    def latest_forecast(self, patient_id: str) -> StoredForecast | None:
        """The patient's most recent forecast (by ``made_at``), or ``None``."""
        stmt = (
            sa.select(Forecast)
            .where(Forecast.patient_id == patient_id)
            .order_by(Forecast.made_at.desc(), Forecast.id.desc())
            .limit(1)
        )
        with self._session() as s:
            f = s.scalar(stmt)
            return None if f is None else StoredForecast(f.id, f.patient_id, f.made_at, f.payload)

    def add_alert(self, alert: AlertRecord) -> AlertRecord:
        """Store an alert; the record with its ``id``."""
        row = {
            "patient_id": alert.patient_id,
            "time": check_time("time", alert.time),
            "kind": check_text("kind", alert.kind, max_len=64),
            "probability": _probability("probability", alert.probability),
            "threshold": _probability("threshold", alert.threshold),
            "window_min": _finite("window_min", alert.window_min),
            "model": check_text("model", alert.model, max_len=128),
            "message": check_text("message", alert.message, max_len=100_000),
            "acknowledged_by": None,
            "acknowledged_at": None,
            "created_at": _now(),
        }
        with self._session(write=True) as s:
            self._require(s, Patient, alert.patient_id, "patient")
            new_id = s.scalar(sa.insert(Alert).returning(Alert.id), row)
        return dataclasses.replace(alert, id=new_id, acknowledged_by=None)

    def get_alert(self, alert_id: int) -> AlertRecord:
        """An alert by id (NotFoundError if there is none)."""
        with self._session() as s:
            a = s.get(Alert, alert_id)
            if a is None:
                raise NotFoundError(f"alert {alert_id!r} does not exist")
            return _alert(a)

    def alerts(
        self,
        *,
        patient_id: str | None = None,
        since: datetime | None = None,
        active: bool | None = None,
    ) -> list[AlertRecord]:
        """Alerts, newest first; ``active`` true: not yet acknowledged, false: acknowledged."""
        stmt = sa.select(Alert)
        if patient_id is not None:
            stmt = stmt.where(Alert.patient_id == patient_id)
        if since is not None:
            stmt = stmt.where(Alert.time >= check_time("since", since))
        if active is True:
            stmt = stmt.where(Alert.acknowledged_by.is_(None))
        elif active is False:
            stmt = stmt.where(Alert.acknowledged_by.is_not(None))
        with self._session() as s:
            return [_alert(a) for a in s.scalars(stmt.order_by(Alert.time.desc(), Alert.id.desc()))]

    def acknowledge_alert(self, alert_id: int, user_id: str) -> AlertRecord:
        """Acknowledge an alert as user ``user_id``; the first acknowledgement stands."""
        with self._session(write=True) as s:
            self._require(s, User, user_id, "user")
            a = s.get(Alert, alert_id)
            if a is None:
                raise NotFoundError(f"alert {alert_id!r} does not exist")
            if a.acknowledged_by is None:
                a.acknowledged_by = user_id
                a.acknowledged_at = _now()
            return _alert(a)

    # -- audit ---------------------------------------------------------------------------------

    def audit(
        self,
        actor: str,
        role: str,
        action: str,
        resource: str,
        outcome: str,
        *,
        patient_id: str | None = None,
        detail: str = "",
    ) -> AuditEntry:
        """Append one entry to the audit log, chained to the one before; the entry.

        Appends are serialised across threads and processes: SQLite's write transaction starts
        with ``BEGIN IMMEDIATE``; PostgreSQL locks the chain's head row.
        """
        check_text("actor", actor, max_len=128)
        check_text("role", str(role), max_len=16)
        check_text("action", action, max_len=64)
        check_text("outcome", outcome, max_len=16)
        if patient_id is not None:
            check_id("patient_id", patient_id)
        head_t = table(AuditHead)
        with self._session(write=True) as s:
            # Under the write lock (SQLite) or the row lock (PostgreSQL): nobody appends between
            # reading the head and moving it.
            head = s.execute(
                sa.select(head_t.c.seq, head_t.c.hash).where(head_t.c.id == 1).with_for_update()
            ).one()
            entry = AuditEntry(
                seq=head.seq + 1,
                time=_now(),
                actor=actor,
                role=str(role),
                action=action,
                resource=resource,
                patient_id=patient_id,
                outcome=outcome,  # type: ignore[arg-type]  # AuditEntry checks it
                detail=detail,
            )
            h = chain_hash(self._keyring.audit_key, head.hash, entry)
            s.execute(
                sa.insert(Audit),
                {**_entry_row(entry), "prev_hash": head.hash, "hash": h},
            )
            s.execute(sa.update(head_t).where(head_t.c.id == 1).values(seq=entry.seq, hash=h))
        return entry

    def audit_many(self, entries: Sequence[Mapping[str, Any]]) -> list[AuditEntry]:
        """Append several entries in one transaction (keyword arguments of :meth:`audit` each)."""
        out: list[AuditEntry] = []
        if not entries:
            return out
        head_t = table(AuditHead)
        with self._session(write=True) as s:
            head = s.execute(
                sa.select(head_t.c.seq, head_t.c.hash).where(head_t.c.id == 1).with_for_update()
            ).one()
            seq, prev = head.seq, head.hash
            now = _now()
            for e in entries:
                check_text("actor", e["actor"], max_len=128)
                check_text("action", e["action"], max_len=64)
                entry = AuditEntry(
                    seq=seq + 1,
                    time=now,
                    actor=e["actor"],
                    role=str(e["role"]),
                    action=e["action"],
                    resource=e["resource"],
                    patient_id=e.get("patient_id"),
                    outcome=e["outcome"],
                    detail=e.get("detail", ""),
                )
                h = chain_hash(self._keyring.audit_key, prev, entry)
                s.execute(sa.insert(Audit), {**_entry_row(entry), "prev_hash": prev, "hash": h})
                seq, prev = entry.seq, h
                out.append(entry)
            s.execute(sa.update(head_t).where(head_t.c.id == 1).values(seq=seq, hash=prev))
        return out

    def audit_log(
        self,
        *,
        limit: int = 100,
        before_seq: int | None = None,
        patient_id: str | None = None,
    ) -> list[AuditEntry]:
        """The newest entries first (those before ``before_seq`` to page back; of one patient)."""
        stmt = sa.select(Audit)
        if before_seq is not None:
            stmt = stmt.where(Audit.seq < before_seq)
        if patient_id is not None:
            stmt = stmt.where(Audit.patient_id == patient_id)
        with self._session() as s:
            return [_entry(a) for a in s.scalars(stmt.order_by(Audit.seq.desc()).limit(limit))]

    def verify_audit(self) -> ChainReport:
        """Check the whole audit chain, and that it ends at the recorded head.

        Edits, removals and reorderings anywhere show as a ChainReport with ``ok`` false naming
        the first bad entry; so does cutting entries from the end (the head remembers the last).
        """
        t = table(Audit)
        last: list[tuple[int, str]] = []
        seen = [0]
        unreadable: list[tuple[int, str]] = []

        def pairs(rows: Iterable[Any]) -> Iterator[tuple[AuditEntry, str]]:
            for row in rows:
                seen[0] += 1
                if unreadable:
                    continue  # count the rest only
                try:
                    entry = _entry(row)
                except (ValueError, TypeError) as exc:
                    reason = f"edited: seq {row.seq} is not a valid entry ({exc})"
                    unreadable.append((row.seq, reason))
                    continue
                last[:] = [(row.seq, row.hash)]
                yield entry, row.hash

        with self._session() as s:
            head = s.execute(
                sa.select(AuditHead.seq, AuditHead.hash).where(AuditHead.id == 1)
            ).one()
            try:
                rows = s.execute(sa.select(t).order_by(t.c.seq)).yield_per(1000)
                report = verify_chain(self._keyring.audit_key, pairs(rows))
            except (ValueError, TypeError) as exc:  # a value the driver cannot even read
                seq = last[0][0] + 1 if last else 1
                n = s.scalar(sa.select(sa.func.count()).select_from(t)) or 0
                return ChainReport(False, n, seq, f"edited: seq {seq} cannot be read ({exc})")
        if unreadable:
            seq, reason = unreadable[0]
            if report.ok or (report.first_bad_seq or 0) > seq:
                return ChainReport(False, seen[0], seq, reason)
        if not report.ok:
            return report
        last_seq, last_hash = last[0] if last else (0, GENESIS)
        if head.seq > last_seq:
            gap = (
                f"seq {last_seq + 1}"
                if head.seq == last_seq + 1
                else f"seqs {last_seq + 1}-{head.seq}"
            )
            return ChainReport(
                False,
                report.n_entries,
                last_seq + 1,
                f"deleted: {gap} missing from the end (the chain head is seq {head.seq})",
            )
        if head.seq < last_seq or head.hash != last_hash:
            return ChainReport(
                False,
                report.n_entries,
                last_seq,
                f"edited: the chain head (seq {head.seq}) does not match the last entry (seq {last_seq})",
            )
        return report

    # -- helpers -------------------------------------------------------------------------------

    @staticmethod
    def _require(s: Session, model: type[Any], key: str, what: str) -> None:
        if s.get(model, key) is None:
            raise NotFoundError(f"{what} {key!r} does not exist")


def _now() -> datetime:
    return datetime.now(UTC)


def _role(role: Role | str) -> Role:
    try:
        return Role(role)
    except ValueError:
        raise DataFormatError(
            f"role: {role!r} is not a role; expected one of {', '.join(Role)}"
        ) from None


def _finite(label: str, value: float) -> float:
    try:
        v = float(value)
    except (TypeError, ValueError):
        raise DataFormatError(f"{label}: expected a number; got {value!r}") from None
    if v != v or v in (float("inf"), float("-inf")):
        raise DataFormatError(f"{label}: {v} is not a finite number")
    return v


def _probability(label: str, value: float) -> float:
    v = _finite(label, value)
    if not 0.0 <= v <= 1.0:
        raise DataFormatError(f"{label}: {v} is not a probability between 0 and 1")
    return v


def _user_info(u: User) -> UserInfo:
    return UserInfo(
        id=u.id,
        username=u.username,
        role=Role(u.role),
        scopes=parse_scopes(u.scopes),
        disabled=u.disabled,
        created_at=u.created_at,
        patient_id=u.patient_id,
        device_id=u.device_id,
    )


def _alert(a: Alert) -> AlertRecord:
    return AlertRecord(
        patient_id=a.patient_id,
        time=a.time,
        kind=a.kind,
        probability=a.probability,
        threshold=a.threshold,
        window_min=a.window_min,
        model=a.model,
        message=a.message,
        id=a.id,
        acknowledged_by=a.acknowledged_by,
    )


def _entry(a: Any) -> AuditEntry:
    return AuditEntry(
        seq=a.seq,
        time=a.time,
        actor=a.actor,
        role=a.role,
        action=a.action,
        resource=a.resource,
        patient_id=a.patient_id,
        outcome=a.outcome,
        detail=a.detail,
    )


def _entry_row(e: AuditEntry) -> dict[str, Any]:
    return {
        "seq": e.seq,
        "time": e.time,
        "actor": e.actor,
        "role": e.role,
        "action": e.action,
        "resource": e.resource,
        "patient_id": e.patient_id,
        "outcome": e.outcome,
        "detail": e.detail,
    }
