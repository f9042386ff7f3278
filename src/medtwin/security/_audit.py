"""The audit log's hash chain: each entry's HMAC covers the previous entry's hash.

The store keeps the rows; this module computes and checks the chain.  Without the audit key nobody
can re-chain an edited log, so an edit, a removal or a reordering shows up in :func:`verify_chain`.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import re
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Literal

from medtwin.errors import AuditChainError, ConfigurationError, ParameterError

__all__ = ["GENESIS", "AuditEntry", "ChainReport", "Outcome", "chain_hash", "verify_chain"]

GENESIS = "0" * 64
"""The ``prev_hash`` of the first entry (seq 1)."""

Outcome = Literal["granted", "denied", "error"]
_OUTCOMES = ("granted", "denied", "error")
_HEX64 = re.compile(r"[0-9a-f]{64}")


@dataclass(frozen=True, slots=True)
class AuditEntry:
    """One audited action: who (``actor``, ``role``) did what (``action``) to which ``resource``.

    ``time`` must be timezone-aware; it is hashed as ISO-8601 UTC with microseconds.

    >>> from datetime import UTC, datetime
    >>> e = AuditEntry(1, datetime(2026, 1, 1, tzinfo=UTC), "u1", "clinician", "read",
    ...                "Patient/p1", "p1", "granted")
    >>> e.detail
    ''
    """

    seq: int
    time: datetime
    actor: str
    role: str
    action: str
    resource: str
    patient_id: str | None
    outcome: Outcome
    detail: str = ""

    def __post_init__(self) -> None:
        if isinstance(self.seq, bool) or not isinstance(self.seq, int) or self.seq < 1:
            raise ParameterError(f"AuditEntry.seq must be an integer >= 1; got {self.seq!r}")
        if not isinstance(self.time, datetime) or self.time.utcoffset() is None:
            raise ParameterError(
                f"AuditEntry.time must be a timezone-aware datetime (UTC); got {self.time!r}"
            )
        if self.outcome not in _OUTCOMES:
            raise ParameterError(
                f"AuditEntry.outcome must be one of {', '.join(_OUTCOMES)}; got {self.outcome!r}"
            )
        for name in ("actor", "role", "action", "resource", "detail"):
            if not isinstance(getattr(self, name), str):
                raise ParameterError(f"AuditEntry.{name} must be a str")
        if self.patient_id is not None and not isinstance(self.patient_id, str):
            raise ParameterError("AuditEntry.patient_id must be a str or None")


def _canonical(prev_hash: str, entry: AuditEntry) -> bytes:
    """Canonical JSON: sorted keys, no spaces, UTF-8, times as ``YYYY-MM-DDTHH:MM:SS.ffffffZ``."""
    doc = {
        "v": 1,
        "prev": prev_hash,
        "seq": entry.seq,
        "time": entry.time.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ"),
        "actor": entry.actor,
        "role": str(entry.role),
        "action": entry.action,
        "resource": entry.resource,
        "patient_id": entry.patient_id,
        "outcome": entry.outcome,
        "detail": entry.detail,
    }
    return json.dumps(doc, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()


def chain_hash(key: bytes, prev_hash: str, entry: AuditEntry) -> str:
    """HMAC-SHA256 (hex) of ``entry`` chained to ``prev_hash`` (:data:`GENESIS` for seq 1).

    >>> from datetime import UTC, datetime
    >>> e = AuditEntry(1, datetime(2026, 1, 1, tzinfo=UTC), "u1", "admin", "login", "User/u1",
    ...                None, "granted")
    >>> h = chain_hash(bytes(32), GENESIS, e)
    >>> len(h), h == chain_hash(bytes(32), GENESIS, e), h == chain_hash(bytes(31) + b"x", GENESIS, e)
    (64, True, False)
    """
    if not isinstance(key, bytes | bytearray) or len(key) < 32:
        raise ConfigurationError("chain_hash needs a key of at least 32 bytes (Keyring.audit_key)")
    if not isinstance(prev_hash, str) or not _HEX64.fullmatch(prev_hash):
        raise ParameterError(
            "prev_hash must be 64 lowercase hex digits (GENESIS for the first entry)"
        )
    return hmac.new(bytes(key), _canonical(prev_hash, entry), hashlib.sha256).hexdigest()


@dataclass(frozen=True, slots=True)
class ChainReport:
    """The result of :func:`verify_chain`; false when the chain does not verify.

    ``reason`` starts with the kind of break: ``edited``, ``hash replaced``, ``deleted``,
    ``reordered`` or ``truncated head``; it is empty when ``ok``.
    """

    ok: bool
    n_entries: int
    first_bad_seq: int | None = None
    reason: str = ""

    def __bool__(self) -> bool:
        return self.ok

    def raise_if_broken(self) -> None:
        """Raise :class:`~medtwin.errors.AuditChainError` with the reason unless the chain is ok."""
        if not self.ok:
            raise AuditChainError(f"audit chain broken at seq {self.first_bad_seq}: {self.reason}")


def _matches(key: bytes, prev_hash: str, entry: AuditEntry, stored: object) -> bool:
    if not isinstance(stored, str) or not _is_hash(stored) or not _is_hash(prev_hash):
        return False
    return hmac.compare_digest(chain_hash(key, prev_hash, entry), stored)


def _is_hash(value: object) -> bool:
    return isinstance(value, str) and _HEX64.fullmatch(value) is not None


class _Peekable:
    """An iterator that can look one item ahead, so the log is still read only once."""

    def __init__(self, items: Iterable[tuple[AuditEntry, str]]) -> None:
        self._it = iter(items)
        self._ahead: list[tuple[AuditEntry, str]] = []

    def __iter__(self) -> _Peekable:
        return self

    def __next__(self) -> tuple[AuditEntry, str]:
        return self._ahead.pop() if self._ahead else next(self._it)

    def peek(self) -> tuple[AuditEntry, str] | None:
        if not self._ahead:
            try:
                self._ahead.append(next(self._it))
            except StopIteration:
                return None
        return self._ahead[0]


def _mismatch(
    key: bytes, prev: str, entry: AuditEntry, stored: object, nxt: tuple[AuditEntry, str] | None
) -> str:
    # The next entry tells which half was changed: it chains to the stored hash if only the content
    # was edited, and to the recomputed one if only the stored hash was replaced.
    if nxt is not None and nxt[0].seq == entry.seq + 1:
        if isinstance(stored, str) and _matches(key, stored, nxt[0], nxt[1]):
            return f"edited: the content of seq {entry.seq} does not match its hash"
        if _matches(key, chain_hash(key, prev, entry), nxt[0], nxt[1]):
            return f"hash replaced: the stored hash of seq {entry.seq} is not the one chained on"
    return f"edited or hash replaced: seq {entry.seq} does not match its stored hash"


def verify_chain(
    key: bytes,
    entries_with_hashes: Iterable[tuple[AuditEntry, str]],
    *,
    expect_start_seq: int | None = 1,
    prev_hash: str | None = None,
) -> ChainReport:
    """Check the hash chain of entries given in stored order (ascending ``seq``).

    Parameters
    ----------
    key
        The audit key (:attr:`Keyring.audit_key`).
    entries_with_hashes
        ``(entry, stored_hash)`` pairs; read once, so a generator over a large log works.
    expect_start_seq
        The ``seq`` the first entry must have (1: the whole log, so a removed head is detected).
        ``None`` accepts any start, to check a window of the log.
    prev_hash
        The stored hash of the entry before the first one, when checking a window; without it a
        window's first entry is taken as given (seq 1 always chains to :data:`GENESIS`).

    Notes
    -----
    Entries cut from the *end* of the log leave a valid chain; compare ``n_entries`` or the last
    hash with a copy kept elsewhere to detect that.

    >>> from datetime import UTC, datetime
    >>> key, t = bytes(32), datetime(2026, 1, 1, tzinfo=UTC)
    >>> log, prev = [], GENESIS
    >>> for seq in (1, 2, 3):
    ...     e = AuditEntry(seq, t, "u1", "admin", "read", "Patient/p1", "p1", "granted")
    ...     prev = chain_hash(key, prev, e)
    ...     log.append((e, prev))
    >>> verify_chain(key, log)
    ChainReport(ok=True, n_entries=3, first_bad_seq=None, reason='')
    >>> verify_chain(key, [log[0], log[2]]).reason
    'deleted: seq 2 is missing (seq 3 follows seq 1)'
    """
    items = _Peekable(entries_with_hashes)
    n = 0
    bad: tuple[int, str] | None = None
    prev_seq: int | None = None
    prev = prev_hash
    for entry, stored in items:
        n += 1
        if not isinstance(entry, AuditEntry):
            raise ParameterError(f"verify_chain takes (AuditEntry, hash) pairs; got {type(entry)}")
        if prev_seq is None:
            if expect_start_seq is not None and entry.seq != expect_start_seq:
                bad = (
                    entry.seq,
                    f"truncated head: the log starts at seq {entry.seq}, expected {expect_start_seq}",
                )
                break
            if entry.seq == 1:
                prev = GENESIS
        elif entry.seq <= prev_seq:
            bad = (entry.seq, f"reordered: seq {entry.seq} comes after seq {prev_seq}")
            break
        elif entry.seq > prev_seq + 1:
            nxt = items.peek()
            if nxt is not None and nxt[0].seq < entry.seq:
                bad = (entry.seq, f"reordered: seq {entry.seq} comes before seq {nxt[0].seq}")
            else:
                first, last = prev_seq + 1, entry.seq - 1
                gap = f"seq {first} is" if first == last else f"seqs {first}-{last} are"
                bad = (
                    prev_seq + 1,
                    f"deleted: {gap} missing (seq {entry.seq} follows seq {prev_seq})",
                )
            break
        if not _is_hash(stored):
            bad = (
                entry.seq,
                f"hash replaced: the stored hash of seq {entry.seq} is not 64 hex digits",
            )
            break
        # A window's first entry with no known predecessor is taken as given (prev is None).
        if prev is not None and not _matches(key, prev, entry, stored):
            bad = (entry.seq, _mismatch(key, prev, entry, stored, items.peek()))
            break
        prev_seq, prev = entry.seq, stored
    n += sum(1 for _ in items)  # count the rest, unchecked, so n_entries is the log's length
    if bad is None:
        return ChainReport(True, n)
    return ChainReport(False, n, bad[0], bad[1])
