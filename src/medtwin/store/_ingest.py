"""Ingestion: validate whole batches, bulk-insert idempotently, tell duplicates from conflicts.

Records are checked before the write transaction starts, so a bad record rejects the batch with a
:class:`~medtwin.errors.DataFormatError` naming it (``observations[3].unit``).  Rows go in with the
dialect's ``INSERT ... ON CONFLICT DO NOTHING RETURNING``: a row that comes back was stored; one
that does not already existed, and is compared with the stored row: the same content is a
duplicate, other content a :class:`~medtwin.errors.ConflictError` (the caller's transaction then
rolls back the whole batch).
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import math
from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass
from datetime import UTC, date, datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

from medtwin.errors import ConflictError, DataFormatError, NotFoundError
from medtwin.records import (
    EVENT_UNITS,
    OBSERVATION_CODES,
    ConditionRecord,
    DeviceRecord,
    EventRecord,
    ObservationRecord,
    PatientRecord,
)
from medtwin.security import FieldCipher, Keyring, blind_index
from medtwin.store._schema import (
    Condition,
    Device,
    Event,
    Observation,
    Patient,
    table,
)

__all__ = [
    "IngestResult",
    "check_id",
    "check_text",
    "check_time",
    "condition_rows",
    "content_digest",
    "decrypt_patient",
    "event_rows",
    "existing",
    "insert",
    "observation_rows",
    "reading_rows",
    "store_conditions",
    "store_devices",
    "store_events",
    "store_observations",
    "store_patients",
]

_CHUNK = 500  # ids per IN (...) list
_SEXES = ("male", "female", "other", "unknown")
_PATIENT_FIELDS = ("identifier", "name", "birth_date", "sex")
_DEVICE_FIELDS = ("patient_id", "kind", "manufacturer", "model")
_OBS_FIELDS = ("code", "time", "value", "unit", "device_id")


@dataclass(frozen=True, slots=True)
class IngestResult:
    """What an ingestion stored.

    ``accepted`` records were new, ``duplicates`` were already stored with the same content.
    ``ids`` names the accepted records in input order: patient and device ids, then the
    ``source_id`` of each observation, event and condition.  ``replayed`` is true when the whole
    message (``message_id``) had been ingested before: nothing was written, and every record of
    the original message counts as a duplicate.
    """

    accepted: int
    duplicates: int
    ids: tuple[str, ...] = ()
    replayed: bool = False


# -- checks --------------------------------------------------------------------------------------


def check_id(label: str, value: object, *, max_len: int = 64) -> str:
    """A non-empty id of at most ``max_len`` characters, or a DataFormatError naming ``label``."""
    if not isinstance(value, str) or not value or len(value) > max_len:
        raise DataFormatError(
            f"{label}: expected a non-empty string of at most {max_len} characters; got {value!r}"
        )
    return value


def check_text(label: str, value: object, *, max_len: int, optional: bool = False) -> str | None:
    """A string of at most ``max_len`` characters (``None`` too when ``optional``)."""
    if value is None and optional:
        return None
    if not isinstance(value, str) or len(value) > max_len:
        raise DataFormatError(
            f"{label}: expected a string of at most {max_len} characters; got {value!r}"
        )
    return value


def check_time(label: str, value: object) -> datetime:
    """A timezone-aware datetime, converted to UTC."""
    if not isinstance(value, datetime) or value.utcoffset() is None:
        raise DataFormatError(f"{label}: expected a timezone-aware datetime (UTC); got {value!r}")
    return value.astimezone(UTC)


def _check_value(label: str, value: object, *, non_negative: bool = False) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        try:
            value = float(value)  # type: ignore[arg-type]  # numpy scalars
        except (TypeError, ValueError):
            raise DataFormatError(f"{label}: expected a number; got {value!r}") from None
    v = float(value)
    if not math.isfinite(v):
        raise DataFormatError(f"{label}: {v} is not a finite number")
    if non_negative and v < 0:
        raise DataFormatError(f"{label}: {v} is negative")
    return v


def _check_unit(label: str, code: str, unit: object) -> None:
    spec = OBSERVATION_CODES.get(code)
    if spec is None:
        raise DataFormatError(
            f"{label}.code: {code!r} is not a code the store accepts; "
            f"expected one of {', '.join(OBSERVATION_CODES)}"
        )
    if unit != spec.unit:
        raise DataFormatError(
            f"{label}.unit: {unit!r} is not the unit of {code} ({spec.display}); "
            f"convert to {spec.unit!r} first"
        )


def _auto_source_id(*parts: object) -> str:
    # A record without a source_id is identified by its natural key, so that resubmitting it is
    # still a no-op, and the same key with another value still a conflict.
    return "auto:" + "|".join("" if p is None else str(p) for p in parts)


def _json(label: str, value: Any) -> Any:
    try:
        return json.loads(json.dumps(value, allow_nan=False))
    except (TypeError, ValueError) as exc:
        raise DataFormatError(f"{label}: not JSON-serialisable ({exc})") from None


def content_digest(**records: Sequence[Any]) -> str:
    """SHA-256 (hex) of a canonical JSON of the records: a message's content identity.

    Times count as instants: the same records with times in another zone have the same digest.
    """

    def default(o: object) -> str:
        if isinstance(o, datetime):
            return o.astimezone(UTC).isoformat() if o.utcoffset() is not None else o.isoformat()
        if isinstance(o, date):
            return o.isoformat()
        return repr(o)

    doc = {
        kind: [[type(r).__name__, *(getattr(r, n) for n in _field_names(type(r)))] for r in recs]
        for kind, recs in records.items()
    }
    text = json.dumps(doc, sort_keys=True, separators=(",", ":"), default=default)
    return hashlib.sha256(text.encode()).hexdigest()


def _field_names(cls: type[Any]) -> tuple[str, ...]:
    names = _FIELDS.get(cls)
    if names is None:
        names = _FIELDS[cls] = tuple(f.name for f in dataclasses.fields(cls))
    return names


_FIELDS: dict[type[Any], tuple[str, ...]] = {}


# -- SQL helpers ---------------------------------------------------------------------------------


def insert(session: Session, model: type[Any]) -> Any:
    """The dialect's INSERT (``on_conflict_do_nothing``/``do_update`` are dialect features)."""
    name = session.get_bind().dialect.name
    t = table(model)
    if name == "postgresql":
        return postgresql.insert(t)
    if name == "sqlite":
        return sqlite.insert(t)
    raise NotImplementedError(f"no ON CONFLICT support for dialect {name}")


def existing(session: Session, column: sa.ColumnElement[Any], ids: Iterable[str]) -> set[str]:
    """Which of ``ids`` are stored in ``column``."""
    ids = sorted(set(ids))
    found: set[str] = set()
    for i in range(0, len(ids), _CHUNK):
        found.update(session.scalars(sa.select(column).where(column.in_(ids[i : i + _CHUNK]))))
    return found


def _rows_where_in(
    session: Session,
    t: sa.Table,
    key: str,
    values: Sequence[Any],
    *extra: sa.ColumnElement[bool],
    columns: Sequence[str] | None = None,
) -> list[sa.Row[Any]]:
    """Rows of ``t`` whose ``key`` is one of ``values`` (only ``columns`` of them, if given)."""
    vals = sorted(set(values))
    cols = [t.c[c] for c in columns] if columns is not None else [t]
    if session.get_bind().dialect.name == "postgresql":
        # One array parameter instead of a placeholder per value (see _insert_returning).
        array = sa.bindparam("vals", vals, type_=postgresql.ARRAY(t.c[key].type))
        return list(session.execute(sa.select(*cols).where(t.c[key] == sa.any_(array), *extra)))
    out: list[sa.Row[Any]] = []
    for i in range(0, len(vals), _CHUNK):
        stmt = sa.select(*cols).where(t.c[key].in_(vals[i : i + _CHUNK]), *extra)
        out.extend(session.execute(stmt))
    return out


def _insert_returning(
    session: Session, model: type[Any], rows: list[dict[str, Any]], *keys: str
) -> set[tuple[Any, ...]]:
    """Insert ``rows``, skipping any that break a unique constraint; the keys of those stored."""
    if not rows:
        return set()
    t = table(model)
    dialect = session.get_bind().dialect
    if dialect.name == "postgresql" and model is Observation and len(rows) > 1:
        # One array per column: pg8000 rewrites every placeholder of a statement in Python, so
        # a multi-row VALUES of 8,000 parameters costs more than the insert itself.
        cols = list(rows[0])
        arrays = ", ".join(f"CAST(:{c} AS {t.c[c].type.compile(dialect=dialect)}[])" for c in cols)
        stmt = sa.text(
            f"INSERT INTO {t.name} ({', '.join(cols)}) SELECT * FROM unnest({arrays}) "
            f"ON CONFLICT DO NOTHING RETURNING {', '.join(keys)}"
        )
        return {tuple(r) for r in session.execute(stmt, {c: [r[c] for r in rows] for c in cols})}
    stmt = insert(session, model).on_conflict_do_nothing().returning(*(t.c[k] for k in keys))
    return {tuple(r) for r in session.execute(stmt, rows)}


# -- patients and devices ------------------------------------------------------------------------


def _patient_row(
    label: str, r: PatientRecord, keyring: Keyring, cipher: FieldCipher, now: datetime
) -> dict[str, Any]:
    if not isinstance(r, PatientRecord):
        raise DataFormatError(f"{label}: expected a PatientRecord; got {type(r).__name__}")
    pid = check_id(f"{label}.id", r.id)
    identifier = check_text(f"{label}.identifier", r.identifier, max_len=1024, optional=True)
    name = check_text(f"{label}.name", r.name, max_len=1024, optional=True)
    if r.birth_date is not None and (
        not isinstance(r.birth_date, date) or isinstance(r.birth_date, datetime)
    ):
        raise DataFormatError(f"{label}.birth_date: expected a date; got {r.birth_date!r}")
    if r.sex is not None and r.sex not in _SEXES:
        raise DataFormatError(f"{label}.sex: expected one of {', '.join(_SEXES)}; got {r.sex!r}")

    def enc(field: str, text: str | None) -> bytes | None:
        return None if text is None else cipher.encrypt(text, context=f"patient:{pid}:{field}")

    return {
        "id": pid,
        "identifier_enc": enc("identifier", identifier),
        "identifier_index": None
        if identifier is None
        else blind_index(keyring.index_key, identifier),
        "name_enc": enc("name", name),
        "birth_date_enc": enc("birth_date", r.birth_date.isoformat() if r.birth_date else None),
        "sex": r.sex,
        "source_id": r.source_id,
        "created_at": now,
    }


def decrypt_patient(row: Any, cipher: FieldCipher) -> PatientRecord:
    """A stored patient row as a decrypted :class:`PatientRecord`."""

    def dec(field: str, blob: bytes | None) -> str | None:
        return None if blob is None else cipher.decrypt(blob, context=f"patient:{row.id}:{field}")

    birth = dec("birth_date", row.birth_date_enc)
    return PatientRecord(
        id=row.id,
        identifier=dec("identifier", row.identifier_enc),
        name=dec("name", row.name_enc),
        birth_date=date.fromisoformat(birth) if birth else None,
        sex=row.sex,
        source_id=row.source_id,
    )


def store_patients(
    session: Session,
    records: Sequence[PatientRecord],
    keyring: Keyring,
    now: datetime,
    label: str = "patients",
) -> tuple[list[str], int]:
    """Store new patients (PHI encrypted); the ids stored and the number of duplicates."""
    if not records:
        return [], 0
    cipher = FieldCipher(keyring.field_key)
    rows = [_patient_row(f"{label}[{i}]", r, keyring, cipher, now) for i, r in enumerate(records)]
    plain = [{"id": r.id, **{f: getattr(r, f) for f in _PATIENT_FIELDS}} for r in records]
    items, _ = _dedupe(plain, ("id",), _PATIENT_FIELDS, label)
    stored = {k[0] for k in _insert_returning(session, Patient, [rows[i] for i, _ in items], "id")}
    skipped = [(i, r) for i, r in items if r["id"] not in stored]
    if skipped:
        t = table(Patient)
        ids = [r["id"] for _, r in skipped]
        have = {row.id: row for row in _rows_where_in(session, t, "id", ids)}
        for i, r in skipped:
            if r["id"] not in have:
                raise ConflictError(
                    f"{label}[{i}].identifier: this identifier already belongs to another "
                    f"patient; patient {r['id']!r} was not stored"
                )
            old = asdict(decrypt_patient(have[r["id"]], cipher))
            _same_or_conflict(f"{label}[{i}]", f"patient {r['id']!r}", r, old, _PATIENT_FIELDS)
    new = [r["id"] for _, r in items if r["id"] in stored]
    return new, len(records) - len(new)


def store_devices(
    session: Session, records: Sequence[DeviceRecord], now: datetime, label: str = "devices"
) -> tuple[list[str], int]:
    """Store new devices (their patients must exist); the ids stored and the duplicates."""
    if not records:
        return [], 0
    rows: list[dict[str, Any]] = []
    for i, rec in enumerate(records):
        lab = f"{label}[{i}]"
        if not isinstance(rec, DeviceRecord):
            raise DataFormatError(f"{lab}: expected a DeviceRecord; got {type(rec).__name__}")
        owner = rec.patient_id
        rows.append(
            {
                "id": check_id(f"{lab}.id", rec.id),
                "patient_id": None if owner is None else check_id(f"{lab}.patient_id", owner),
                "kind": check_text(f"{lab}.kind", rec.kind, max_len=64),
                "manufacturer": check_text(
                    f"{lab}.manufacturer", rec.manufacturer, max_len=1024, optional=True
                ),
                "model": check_text(f"{lab}.model", rec.model, max_len=1024, optional=True),
                "source_id": rec.source_id,
                "created_at": now,
            }
        )
    _require_patients(session, ((f"{label}[{i}]", r["patient_id"]) for i, r in enumerate(rows)))
    items, _ = _dedupe(rows, ("id",), _DEVICE_FIELDS, label)
    stored = {k[0] for k in _insert_returning(session, Device, [r for _, r in items], "id")}
    skipped = [(i, r) for i, r in items if r["id"] not in stored]
    if skipped:
        t = table(Device)
        ids = [r["id"] for _, r in skipped]
        have = {row.id: row for row in _rows_where_in(session, t, "id", ids)}
        for i, r in skipped:
            old = have[r["id"]]._mapping
            _same_or_conflict(f"{label}[{i}]", f"device {r['id']!r}", r, old, _DEVICE_FIELDS)
    new = [r["id"] for _, r in items if r["id"] in stored]
    return new, len(records) - len(new)


def _require_patients(session: Session, refs: Iterable[tuple[str, Any]]) -> None:
    wanted: list[tuple[str, str]] = [(lab, pid) for lab, pid in refs if pid is not None]
    if not wanted:
        return
    found = existing(session, table(Patient).c.id, (pid for _, pid in wanted))
    for lab, pid in wanted:
        if pid not in found:
            raise NotFoundError(
                f"{lab}.patient_id: patient {pid!r} does not exist; add the patient first "
                "(or in the same ingestion); nothing was stored"
            )


# -- observations --------------------------------------------------------------------------------


def observation_rows(
    records: Sequence[ObservationRecord], now: datetime, label: str = "observations"
) -> list[dict[str, Any]]:
    """Validated observation rows (DataFormatError naming the first bad record and field)."""
    rows = []
    for i, r in enumerate(records):
        lab = f"{label}[{i}]"
        if not isinstance(r, ObservationRecord):
            raise DataFormatError(f"{lab}: expected an ObservationRecord; got {type(r).__name__}")
        pid = check_id(f"{lab}.patient_id", r.patient_id)
        _check_unit(lab, r.code, r.unit)
        t = check_time(f"{lab}.time", r.time)
        value = _check_value(f"{lab}.value", r.value)
        dev = None if r.device_id is None else check_id(f"{lab}.device_id", r.device_id)
        sid = r.source_id
        if sid is None:
            sid = _auto_source_id(r.code, dev, t.isoformat())
        elif not isinstance(sid, str) or not sid:
            raise DataFormatError(f"{lab}.source_id: expected a non-empty string; got {sid!r}")
        rows.append(
            {
                "patient_id": pid,
                "code": r.code,
                "time": t,
                "value": value,
                "unit": r.unit,
                "device_id": dev,
                "source_id": sid,
                "received_at": now,
            }
        )
    return rows


def reading_rows(
    patient_id: str,
    device_id: str,
    times: Sequence[datetime],
    values: Sequence[float],
    code: str,
    unit: str,
    first_seq: int | None,
    now: datetime,
) -> list[dict[str, Any]]:
    """Validated rows of one device's readings (the light path)."""
    check_id("patient_id", patient_id)
    check_id("device_id", device_id)
    _check_unit("readings", code, unit)
    if len(times) != len(values):
        raise DataFormatError(
            f"readings: {len(times)} times but {len(values)} values; pass one value per time"
        )
    if first_seq is not None and (isinstance(first_seq, bool) or not isinstance(first_seq, int)):
        raise DataFormatError(f"first_seq: expected an integer; got {first_seq!r}")
    rows = []
    for i, (t, v) in enumerate(zip(times, values, strict=True)):
        tu = check_time(f"readings[{i}].time", t)
        if v.__class__ is not float or not math.isfinite(v):
            v = _check_value(f"readings[{i}].value", v)
        sid = (
            f"{device_id}:{first_seq + i}"
            if first_seq is not None
            else _auto_source_id(code, device_id, tu.isoformat())
        )
        rows.append(
            {
                "patient_id": patient_id,
                "code": code,
                "time": tu,
                "value": v,
                "unit": unit,
                "device_id": device_id,
                "source_id": sid,
                "received_at": now,
            }
        )
    return rows


def store_observations(
    session: Session, rows: list[dict[str, Any]], label: str = "observations"
) -> tuple[list[str], int]:
    """Store observation rows; the source ids stored and the number of duplicates.

    Unknown patients or devices raise NotFoundError; a device attached to another patient, or a
    ``source_id`` (or a device's reading of a code at an instant) stored with other content,
    ConflictError.
    """
    if not rows:
        return [], 0
    _require_patients(session, ((f"{label}[{i}]", r["patient_id"]) for i, r in enumerate(rows)))
    _require_devices(session, rows, label)
    items, repeats = _dedupe(rows, ("patient_id", "source_id"), _OBS_FIELDS, label)
    new = [r for _, r in items]
    stored = _insert_returning(session, Observation, new, "patient_id", "source_id")
    if len(stored) == len(new):
        return [r["source_id"] for r in new], repeats
    skipped = [(i, r) for i, r in items if (r["patient_id"], r["source_id"]) not in stored]
    _check_skipped_observations(session, skipped, label)
    ids = [r["source_id"] for r in new if (r["patient_id"], r["source_id"]) in stored]
    return ids, len(rows) - len(ids)


def _require_devices(session: Session, rows: list[dict[str, Any]], label: str) -> None:
    devices = {r["device_id"] for r in rows if r["device_id"] is not None}
    if not devices:
        return
    t = table(Device)
    found = _rows_where_in(session, t, "id", list(devices), columns=("id", "patient_id"))
    owner = {row.id: row.patient_id for row in found}
    for i, r in enumerate(rows):
        dev = r["device_id"]
        if dev is None:
            continue
        if dev not in owner:
            raise NotFoundError(
                f"{label}[{i}].device_id: device {dev!r} does not exist; add the device first "
                "(or in the same ingestion); nothing was stored"
            )
        if owner[dev] is not None and owner[dev] != r["patient_id"]:
            raise ConflictError(
                f"{label}[{i}].device_id: device {dev!r} belongs to another patient, not "
                f"{r['patient_id']!r}; nothing was stored"
            )


def _check_skipped_observations(
    session: Session, skipped: list[tuple[int, dict[str, Any]]], label: str
) -> None:
    t = table(Observation)
    by_patient: dict[str, list[tuple[int, dict[str, Any]]]] = defaultdict(list)
    for i, r in skipped:
        by_patient[r["patient_id"]].append((i, r))
    for pid, items in by_patient.items():
        where = t.c.patient_id == pid
        sids = [r["source_id"] for _, r in items]
        cols = ("source_id", *_OBS_FIELDS)
        have = {
            row.source_id: row
            for row in _rows_where_in(session, t, "source_id", sids, where, columns=cols)
        }
        for i, r in items:
            row = have.get(r["source_id"])
            if row is None:
                # Stored under another source_id: the same device's reading of a code at a time.
                row = session.execute(
                    sa.select(t).where(
                        where,
                        t.c.code == r["code"],
                        t.c.time == r["time"],
                        t.c.device_id == r["device_id"],
                    )
                ).one()
                what = f"the {r['code']} reading of device {r['device_id']!r} at {r['time'].isoformat()}"
            else:
                what = f"source_id {r['source_id']!r}"
            _same_or_conflict(f"{label}[{i}]", what, r, row._mapping, _OBS_FIELDS)


def _same_or_conflict(
    label: str, what: str, new: Mapping[str, Any], old: Mapping[Any, Any], fields: Sequence[str]
) -> None:
    for field in fields:
        if old[field] != new[field]:
            raise ConflictError(
                f"{label}.{field}: {what} is already stored with {field}={old[field]!r}, not "
                f"{new[field]!r}; nothing was stored"
            )


def _dedupe(
    rows: list[dict[str, Any]], keys: Sequence[str], fields: Sequence[str], label: str
) -> tuple[list[tuple[int, dict[str, Any]]], int]:
    """Drop repeats of a key within one batch (same content) or raise ConflictError (other)."""
    first: dict[tuple[Any, ...], int] = {}
    out: list[tuple[int, dict[str, Any]]] = []
    for i, r in enumerate(rows):
        k = tuple(r[key] for key in keys)
        j = first.setdefault(k, i)
        if j == i:
            out.append((i, r))
            continue
        for field in fields:
            if rows[j][field] != r[field]:
                raise ConflictError(
                    f"{label}[{i}].{field}: {label}[{j}] has the same {'/'.join(keys)} "
                    f"{'/'.join(map(str, k))!r} with {field}={rows[j][field]!r}, not "
                    f"{r[field]!r}; nothing was stored"
                )
    return out, len(rows) - len(out)


# -- events and conditions -----------------------------------------------------------------------


def event_rows(
    records: Sequence[EventRecord], now: datetime, label: str = "events"
) -> list[dict[str, Any]]:
    """Validated event rows (DataFormatError naming the first bad record and field)."""
    rows = []
    for i, r in enumerate(records):
        lab = f"{label}[{i}]"
        if not isinstance(r, EventRecord):
            raise DataFormatError(f"{lab}: expected an EventRecord; got {type(r).__name__}")
        pid = check_id(f"{lab}.patient_id", r.patient_id)
        if r.kind not in EVENT_UNITS:
            raise DataFormatError(
                f"{lab}.kind: {r.kind!r} is not an event kind; expected one of "
                f"{', '.join(EVENT_UNITS)}"
            )
        if r.unit != EVENT_UNITS[r.kind]:
            raise DataFormatError(
                f"{lab}.unit: {r.unit!r} is not the unit of {r.kind} events; "
                f"convert to {EVENT_UNITS[r.kind]!r} first"
            )
        t = check_time(f"{lab}.time", r.time)
        value = _check_value(f"{lab}.value", r.value, non_negative=True)
        detail = _json(f"{lab}.detail", r.detail if r.detail is not None else {})
        if not isinstance(detail, dict):
            raise DataFormatError(f"{lab}.detail: expected a dict; got {type(r.detail).__name__}")
        sid = r.source_id if r.source_id is not None else _auto_source_id(r.kind, t.isoformat())
        if not isinstance(sid, str) or not sid:
            raise DataFormatError(f"{lab}.source_id: expected a non-empty string; got {sid!r}")
        rows.append(
            {
                "patient_id": pid,
                "kind": r.kind,
                "time": t,
                "value": value,
                "unit": r.unit,
                "source_id": sid,
                "detail": detail,
                "received_at": now,
            }
        )
    return rows


def store_events(
    session: Session, rows: list[dict[str, Any]], label: str = "events"
) -> tuple[list[str], int]:
    """Store event rows; the source ids stored and the number of duplicates."""
    return _store_keyed(session, Event, rows, label, ("kind", "time", "value", "unit", "detail"))


def condition_rows(
    records: Sequence[ConditionRecord], now: datetime, label: str = "conditions"
) -> list[dict[str, Any]]:
    """Validated condition rows (DataFormatError naming the first bad record and field)."""
    rows = []
    for i, r in enumerate(records):
        lab = f"{label}[{i}]"
        if not isinstance(r, ConditionRecord):
            raise DataFormatError(f"{lab}: expected a ConditionRecord; got {type(r).__name__}")
        if r.onset is not None and (not isinstance(r.onset, date) or isinstance(r.onset, datetime)):
            raise DataFormatError(f"{lab}.onset: expected a date; got {r.onset!r}")
        system = check_text(f"{lab}.system", r.system, max_len=1024)
        code = check_id(f"{lab}.code", r.code)
        sid = r.source_id if r.source_id is not None else _auto_source_id(system, code)
        if not isinstance(sid, str) or not sid:
            raise DataFormatError(f"{lab}.source_id: expected a non-empty string; got {sid!r}")
        rows.append(
            {
                "patient_id": check_id(f"{lab}.patient_id", r.patient_id),
                "system": system,
                "code": code,
                "display": check_text(f"{lab}.display", r.display, max_len=4096, optional=True),
                "onset": r.onset,
                "source_id": sid,
                "received_at": now,
            }
        )
    return rows


def store_conditions(
    session: Session, rows: list[dict[str, Any]], label: str = "conditions"
) -> tuple[list[str], int]:
    """Store condition rows; the source ids stored and the number of duplicates."""
    return _store_keyed(session, Condition, rows, label, ("system", "code", "display", "onset"))


def _store_keyed(
    session: Session,
    model: type[Any],
    rows: list[dict[str, Any]],
    label: str,
    fields: Sequence[str],
) -> tuple[list[str], int]:
    if not rows:
        return [], 0
    _require_patients(session, ((f"{label}[{i}]", r["patient_id"]) for i, r in enumerate(rows)))
    items, _ = _dedupe(rows, ("patient_id", "source_id"), fields, label)
    stored = _insert_returning(session, model, [r for _, r in items], "patient_id", "source_id")
    skipped = [(i, r) for i, r in items if (r["patient_id"], r["source_id"]) not in stored]
    t = table(model)
    for pid in {r["patient_id"] for _, r in skipped}:
        mine = [(i, r) for i, r in skipped if r["patient_id"] == pid]
        sids = [r["source_id"] for _, r in mine]
        where = t.c.patient_id == pid
        have = {row.source_id: row for row in _rows_where_in(session, t, "source_id", sids, where)}
        for i, r in mine:
            old = have[r["source_id"]]._mapping
            _same_or_conflict(f"{label}[{i}]", f"source_id {r['source_id']!r}", r, old, fields)
    ids = [r["source_id"] for _, r in items if (r["patient_id"], r["source_id"]) in stored]
    return ids, len(rows) - len(ids)
