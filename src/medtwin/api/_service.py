"""The running service: store, keys, tokens, hosted twins and live updates in one object.

Every ingestion path (HTTP batches, the MQTT bridge, Nightscout uploads, FHIR Bundles, the demo's
virtual devices) goes through :meth:`Service.ingest_readings` or :meth:`Service.ingest_records`:
the store commits first (atomic, idempotent), then the hosted twins are told.  A reading the
service acknowledged is therefore on disk before the acknowledgement leaves.
"""

from __future__ import annotations

import logging
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from medtwin.api._broadcast import Broadcaster
from medtwin.api._hospital import AdtOutcome, HospitalHost
from medtwin.api._host import CGM, TwinHost
from medtwin.api._settings import Settings
from medtwin.errors import (
    AuthorizationError,
    ConfigurationError,
    DataFormatError,
    MedtwinError,
    NotFoundError,
)
from medtwin.hospital import ADTEvent
from medtwin.records import (
    ConditionRecord,
    DeviceRecord,
    EventRecord,
    ObservationRecord,
    PatientRecord,
)
from medtwin.security import (
    ROLE_SCOPES,
    Keyring,
    Principal,
    Role,
    TokenIssuer,
    authorize,
    generate_password,
)
from medtwin.store import ReadingBatch, Store

__all__ = ["DEVICE_TOKEN_TTL_S", "MAX_AHEAD", "Service"]

MAX_AHEAD = timedelta(hours=1)
"""How far ahead of the server's clock a measurement may be dated (device clocks drift)."""

DEVICE_TOKEN_TTL_S = 365 * 86400
"""A device token lasts a year (a sensor is not there to log in again); revoke by key rotation."""

log = logging.getLogger("medtwin.service")


@dataclass(eq=False)
class Service:
    """What the API's requests work with (``app.state.service``)."""

    settings: Settings
    store: Store
    keyring: Keyring
    tokens: TokenIssuer
    broadcaster: Broadcaster
    host: TwinHost
    extras: dict[str, Any] = field(default_factory=dict)
    hospital: HospitalHost | None = None
    _devices: dict[str, Any] = field(default_factory=dict, repr=False)
    _token_cache: dict[str, tuple[Principal, float]] = field(default_factory=dict, repr=False)

    @classmethod
    def open(cls, settings: Settings, *, create_key: bool = True) -> Service:
        """Open the store (migrating it) with the key file, creating the key when allowed."""
        path = settings.key_path
        if not path.exists():
            if not create_key:
                raise ConfigurationError(
                    f"no key file at {path}: create one with `medtwin keygen {path}` and keep it "
                    "outside the database's backups (MEDTWIN_KEY_FILE)"
                )
            path.parent.mkdir(parents=True, exist_ok=True)
            Keyring.create_file(path)
            log.warning(
                "created a new master key at %s: back it up, separately from the data", path
            )
        keyring = Keyring.from_file(path)
        url = settings.database_url
        if url is None:
            settings.home.mkdir(parents=True, exist_ok=True)
            url = f"sqlite:///{(settings.home / 'medtwin.db').resolve()}"
        store = Store.open(url, keyring=keyring)
        broadcaster = Broadcaster()
        host = TwinHost(store, broadcaster, settings)
        tokens = TokenIssuer(keyring.token_key, ttl_s=settings.token_ttl_s)
        hospital = None
        if settings.hospital is not None:
            try:
                hospital = HospitalHost.open(store, settings.hospital)
            except BaseException:
                store.close()
                raise
        return cls(settings, store, keyring, tokens, broadcaster, host, hospital=hospital)

    def start(self) -> None:
        """Start the hosted twins' workers (``settings.workers`` threads)."""
        self.host.start(self.settings.workers)

    def close(self) -> None:
        """Stop the workers (saving every twin) and release the store."""
        self.host.stop(save=True)
        self.store.close()

    # -- accounts ------------------------------------------------------------------------------

    def bootstrap_admin(self, username: str = "admin") -> str | None:
        """On a store with no users: create ``username`` (admin) and return its password, once.

        The password is random and printed only by the caller; nothing else keeps it.
        """
        if self.store.list_users():
            return None
        password = generate_password()
        self.store.create_user(username, password, Role.admin)
        self.store.audit("system", "system", "create admin", f"User/{username}", "granted")
        return password

    def device_principal(self, device_id: str) -> Principal:
        """Who a device is: it may only write its own patient's observations."""
        device = self.store.get_device(device_id)
        if device.patient_id is None:
            raise NotFoundError(f"device {device_id!r} is not attached to a patient")
        return Principal(
            subject=f"device:{device_id}",
            username=f"device:{device_id}",
            role=Role.device,
            scopes=ROLE_SCOPES[Role.device],
            patient_id=device.patient_id,
            device_id=device_id,
        )

    def device_token(self, device_id: str) -> str:
        """A token for a device attached to a patient (valid for a year)."""
        issuer = TokenIssuer(self.keyring.token_key, ttl_s=DEVICE_TOKEN_TTL_S)
        return issuer.issue(self.device_principal(device_id))

    # -- ingestion -----------------------------------------------------------------------------

    def ingest_device_message(self, device_id: str, message: dict[str, Any]) -> Any:
        """One parsed device message (the demo's virtual devices, tests): check, audit, store."""
        [outcome] = self.ingest_device_messages([(device_id, message)])
        if isinstance(outcome, MedtwinError):
            raise outcome
        return outcome

    def ingest_device_messages(self, messages: Sequence[tuple[str, dict[str, Any]]]) -> list[Any]:
        """Parsed device messages (what the MQTT bridge drained), stored in one transaction.

        Each message's token must be its device's; a refused message gets its error in the
        returned list (and an audit entry), the others are stored together with one audit entry
        per device.  If the batch as a whole cannot be stored (one message conflicts with what is
        stored), the messages are stored one by one so one bad message cannot hold up the rest.
        Returns, per message, the :class:`~medtwin.store.IngestResult` of its transaction or the
        error that refused it.
        """
        outcomes: list[Any] = [None] * len(messages)
        accepted: list[tuple[int, ReadingBatch]] = []
        audits: list[dict[str, Any]] = []
        for i, (device_id, message) in enumerate(messages):
            try:
                batch, audit = self._check_device_message(device_id, message)
            except MedtwinError as exc:
                outcomes[i] = exc
                audits.append(getattr(exc, "audit", None) or {})
                continue
            accepted.append((i, batch))
            audits.append(audit)
        self.store.audit_many([a for a in audits if a])
        if not accepted:
            return outcomes
        try:
            result = self.store.ingest_readings_many([b for _, b in accepted])
            for i, _ in accepted:
                outcomes[i] = result
        except MedtwinError:
            if len(accepted) == 1:
                outcomes[accepted[0][0]] = sys.exc_info()[1]
                return outcomes
            for i, b in accepted:
                try:
                    outcomes[i] = self.store.ingest_readings_many([b])
                except MedtwinError as exc:
                    outcomes[i] = exc
        for i, b in accepted:
            if not isinstance(outcomes[i], MedtwinError) and b.code == CGM:
                self.host.submit(b.patient_id, list(zip(b.times, b.values, strict=True)))
        return outcomes

    def _check_device_message(
        self, device_id: str, message: dict[str, Any]
    ) -> tuple[ReadingBatch, dict[str, Any]]:
        """The readings of one message and its audit entry, or a MedtwinError (audit attached)."""
        principal = self._verify_cached(message["token"])
        device = self._devices.get(device_id)
        if device is None:
            device = self._devices.setdefault(device_id, self.store.get_device(device_id))
        if principal.device_id != device_id:
            allowed, reason = (
                False,
                f"token of {principal.username!r} used for device {device_id!r}",
            )
        else:
            decision = authorize(principal, "c", "Observation", patient_id=device.patient_id)
            allowed, reason = decision.allowed, decision.reason
        first = int(message["first_seq"])
        n = len(message["values"])
        audit = {
            "actor": principal.username,
            "role": str(principal.role),
            "action": "device readings",
            "resource": f"Device/{device_id}",
            "outcome": "granted" if allowed else "denied",
            "patient_id": device.patient_id,
            "detail": f"readings {first}-{first + n - 1}" if allowed else reason,
        }
        if not allowed:
            exc = AuthorizationError(reason)
            exc.audit = audit  # type: ignore[attr-defined]
            raise exc
        times = list(message["times"])
        _check_not_future(times, what=f"device {device_id}")
        batch = ReadingBatch(
            str(device.patient_id),
            device_id,
            times,
            list(message["values"]),
            code=message.get("code", CGM),
            unit=message.get("unit", "mg/dL"),
            first_seq=first,
        )
        return batch, audit

    def _verify_cached(self, token: str) -> Principal:
        """Verify a device token once, then trust it from a small cache until it expires."""
        now = time.time()
        hit = self._token_cache.get(token)
        if hit is not None and hit[1] > now:
            return hit[0]
        principal = self.tokens.verify(token)
        if len(self._token_cache) > 10_000:
            self._token_cache.clear()
        self._token_cache[token] = (principal, now + 60.0)
        return principal

    def ingest_readings(
        self,
        patient_id: str,
        device_id: str,
        times: Sequence[datetime],
        values: Sequence[float],
        *,
        first_seq: int,
        code: str = CGM,
        unit: str = "mg/dL",
    ) -> Any:
        """The light path: pre-validated device readings, bulk-stored, then assimilated."""
        _check_not_future(times, what=f"device {device_id}")
        result = self.store.ingest_readings(
            patient_id, device_id, times, values, code=code, unit=unit, first_seq=first_seq
        )
        if code == CGM and result.accepted:
            self.host.submit(patient_id, list(zip(times, values, strict=True)))
        return result

    def ingest_records(
        self,
        *,
        patients: Sequence[PatientRecord] = (),
        observations: Sequence[ObservationRecord] = (),
        events: Sequence[EventRecord] = (),
        conditions: Sequence[ConditionRecord] = (),
        devices: Sequence[DeviceRecord] = (),
        message_id: str | None = None,
    ) -> Any:
        """The full path: records (from FHIR, HTTP JSON, Nightscout) stored in one transaction."""
        _check_not_future([o.time for o in observations], what="observations")
        _check_not_future([e.time for e in events], what="events")
        result = self.store.ingest(
            patients=patients,
            observations=observations,
            events=events,
            conditions=conditions,
            devices=devices,
            message_id=message_id,
        )
        if result.accepted:
            readings: dict[str, list[tuple[datetime, float]]] = {}
            for o in observations:
                if o.code == CGM:
                    readings.setdefault(o.patient_id, []).append((o.time, o.value))
            for patient_id, pairs in readings.items():
                self.host.submit(patient_id, pairs)
            for patient_id in {e.patient_id for e in events}:
                self.host.events_changed(patient_id)
        return result

    # -- the hospital twin ------------------------------------------------------------------------

    def hospital_host(self) -> HospitalHost:
        """The hosted hospital twin (NotFoundError when the service hosts none)."""
        if self.hospital is None:
            raise NotFoundError(
                "this service hosts no hospital twin: start it with `medtwin serve --hospital "
                "PATH` (or MEDTWIN_HOSPITAL=PATH; `example_hospital` is bundled)"
            )
        return self.hospital

    def open_hospital(self, source: Any) -> HospitalHost:
        """Start hosting the hospital ``source`` (a spec, a YAML/JSON path, a bundled name)."""
        self.hospital = HospitalHost.open(self.store, source)
        return self.hospital

    def ingest_adt(self, events: Sequence[ADTEvent], *, source: str = "api") -> list[AdtOutcome]:
        """ADT events from any path: checked, stored in one transaction, then applied.

        The whole batch is refused (nothing stored) when one event is dated more than
        :data:`MAX_AHEAD` ahead of the server's clock, names a visit of another patient, or
        reuses a stored message id with other content.
        """
        host = self.hospital_host()
        limit = datetime.now(UTC) + MAX_AHEAD
        for e in events:
            if e.occurred_at > limit:
                raise DataFormatError(
                    f"message {e.message_id}: the event is dated {e.occurred_at.isoformat()}, more "
                    f"than {MAX_AHEAD} ahead of the server's clock (check the sender's clock and "
                    "time zone); nothing of this batch was stored"
                )
        return host.ingest(events, source=source)


def _check_not_future(times: Sequence[datetime], *, what: str) -> None:
    """Refuse measurements dated in the future: a wrong device clock, not a reading to keep."""
    if not times:
        return
    limit = datetime.now(UTC) + MAX_AHEAD
    for i, t in enumerate(times):
        if t.tzinfo is not None and t > limit:
            raise DataFormatError(
                f"{what}[{i}].time {t.isoformat()} is more than {MAX_AHEAD} ahead of the "
                "server's clock; check the device's clock; nothing was stored"
            )
