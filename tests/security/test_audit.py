from __future__ import annotations

import dataclasses
import hashlib
import hmac
from datetime import UTC, datetime, timedelta, timezone

import pytest

from medtwin.errors import AuditChainError, ConfigurationError, ParameterError
from medtwin.security import GENESIS, AuditEntry, ChainReport, Keyring, chain_hash, verify_chain

KEY = Keyring.from_bytes(bytes(range(32))).audit_key
T0 = datetime(2026, 1, 1, 8, 30, tzinfo=UTC)


def _entry(seq: int, **kw) -> AuditEntry:
    base = {
        "seq": seq,
        "time": T0 + timedelta(seconds=seq),
        "actor": "u1",
        "role": "clinician",
        "action": "read",
        "resource": f"Observation/o{seq}",
        "patient_id": "p1",
        "outcome": "granted",
        "detail": "",
    }
    return AuditEntry(**(base | kw))


def _chain(n: int, key: bytes = KEY) -> list[tuple[AuditEntry, str]]:
    out, prev = [], GENESIS
    for seq in range(1, n + 1):
        e = _entry(seq)
        prev = chain_hash(key, prev, e)
        out.append((e, prev))
    return out


def test_intact_chain_verifies():
    report = verify_chain(KEY, _chain(5))
    assert report == ChainReport(True, 5, None, "")
    assert report
    report.raise_if_broken()


def test_empty_chain_verifies():
    assert verify_chain(KEY, []) == ChainReport(True, 0)


def test_generator_input_is_read_once():
    report = verify_chain(KEY, (item for item in _chain(4)))
    assert report.ok and report.n_entries == 4


def test_known_answer_canonical_json():
    e = AuditEntry(
        1,
        datetime(2026, 1, 1, 9, 30, tzinfo=timezone(timedelta(hours=1))),
        "u1",
        "admin",
        "login",
        "User/u1",
        None,
        "granted",
        "Zoë",
    )
    doc = (
        '{"action":"login","actor":"u1","detail":"Zoë","outcome":"granted","patient_id":null,'
        f'"prev":"{GENESIS}","resource":"User/u1","role":"admin","seq":1,'
        '"time":"2026-01-01T08:30:00.000000Z","v":1}'
    )
    want = hmac.new(KEY, doc.encode(), hashlib.sha256).hexdigest()
    assert chain_hash(KEY, GENESIS, e) == want


def test_same_instant_in_another_zone_hashes_the_same():
    utc = _entry(1)
    cet = dataclasses.replace(utc, time=utc.time.astimezone(timezone(timedelta(hours=2))))
    assert chain_hash(KEY, GENESIS, utc) == chain_hash(KEY, GENESIS, cet)


@pytest.mark.parametrize(
    "change",
    [
        {"actor": "u2"},
        {"role": "admin"},
        {"action": "delete"},
        {"resource": "Observation/oX"},
        {"patient_id": None},
        {"patient_id": "p2"},
        {"outcome": "denied"},
        {"detail": "edited"},
        {"time": T0 + timedelta(seconds=3, microseconds=1)},
    ],
)
def test_edited_entry(change):
    log = _chain(5)
    e, h = log[2]
    log[2] = (dataclasses.replace(e, **change), h)
    report = verify_chain(KEY, log)
    assert not report.ok and report.first_bad_seq == 3 and report.n_entries == 5
    assert report.reason.startswith("edited:")


def test_edited_last_entry():
    log = _chain(3)
    log[2] = (dataclasses.replace(log[2][0], detail="x"), log[2][1])
    report = verify_chain(KEY, log)
    assert not report.ok and report.first_bad_seq == 3 and "edited" in report.reason


def test_edited_and_rehashed_without_the_key():
    # An attacker re-chains with a guessed key: the first edited entry no longer verifies.
    log = _chain(5)
    forged, prev = log[:2], log[1][1]
    for e, _ in log[2:]:
        e = dataclasses.replace(e, detail="forged") if e.seq == 3 else e
        prev = chain_hash(bytes(32), prev, e)
        forged.append((e, prev))
    report = verify_chain(KEY, forged)
    assert not report.ok and report.first_bad_seq == 3


def test_deleted_entry_leaves_a_gap():
    log = _chain(5)
    del log[2]
    report = verify_chain(KEY, log)
    assert not report.ok and report.first_bad_seq == 3 and report.n_entries == 4
    assert report.reason == "deleted: seq 3 is missing (seq 4 follows seq 2)"


def test_deleted_several_entries():
    log = _chain(6)
    del log[1:4]
    report = verify_chain(KEY, log)
    assert report.first_bad_seq == 2 and report.reason.startswith("deleted: seqs 2-4 are missing")


def test_deleted_and_renumbered_breaks_the_hash():
    # Renumbering after a deletion closes the gap but not the chain.
    log = _chain(5)
    del log[2]
    log = [(dataclasses.replace(e, seq=i), h) for i, (e, h) in enumerate(log, start=1)]
    report = verify_chain(KEY, log)
    assert not report.ok and report.first_bad_seq == 3


def test_reordered_entries():
    log = _chain(5)
    log[1], log[2] = log[2], log[1]
    report = verify_chain(KEY, log)
    assert not report.ok and report.first_bad_seq == 3
    assert report.reason.startswith("reordered:")


def test_reordered_far_back():
    log = _chain(5)
    log.append(log.pop(1))  # 1 3 4 5 2
    report = verify_chain(KEY, log)
    assert not report.ok
    assert report.reason.startswith(("reordered", "deleted"))


def test_reordered_by_swapping_contents_and_seqs():
    log = _chain(5)
    (e2, h2), (e3, h3) = log[1], log[2]
    log[1] = (dataclasses.replace(e3, seq=2), h3)
    log[2] = (dataclasses.replace(e2, seq=3), h2)
    report = verify_chain(KEY, log)
    assert not report.ok and report.first_bad_seq == 2


def test_duplicate_seq():
    log = _chain(3)
    log.insert(2, log[1])
    report = verify_chain(KEY, log)
    assert not report.ok and report.reason.startswith("reordered") and report.first_bad_seq == 2


def test_replaced_hash():
    log = _chain(5)
    log[2] = (log[2][0], "f" * 64)
    report = verify_chain(KEY, log)
    assert not report.ok and report.first_bad_seq == 3
    assert report.reason.startswith("hash replaced:")


@pytest.mark.parametrize("bad", ["F" * 64, "abc", "", None, 42])
def test_malformed_stored_hash(bad):
    log = _chain(3)
    log[1] = (log[1][0], bad)
    report = verify_chain(KEY, log)
    assert not report.ok and report.first_bad_seq == 2 and "hash replaced" in report.reason


def test_replaced_last_hash():
    log = _chain(3)
    log[2] = (log[2][0], "0" * 64)
    report = verify_chain(KEY, log)
    assert not report.ok and report.first_bad_seq == 3


def test_first_entry_edited():
    log = _chain(3)
    log[0] = (dataclasses.replace(log[0][0], actor="mallory"), log[0][1])
    report = verify_chain(KEY, log)
    assert not report.ok and report.first_bad_seq == 1 and report.reason.startswith("edited")


def test_truncated_head():
    log = _chain(5)[2:]
    report = verify_chain(KEY, log)
    assert not report.ok and report.first_bad_seq == 3 and report.n_entries == 3
    assert report.reason.startswith("truncated head")


def test_truncated_head_renumbered_from_one():
    log = [(dataclasses.replace(e, seq=e.seq - 2), h) for e, h in _chain(5)[2:]]
    report = verify_chain(KEY, log)
    assert not report.ok and report.first_bad_seq == 1


def test_window_without_start_check():
    window = _chain(6)[2:]
    assert verify_chain(KEY, window, expect_start_seq=None).ok
    assert verify_chain(KEY, window, expect_start_seq=3).ok
    # The anchor entry is taken as given, but the ones after it are checked.
    window[2] = (dataclasses.replace(window[2][0], detail="x"), window[2][1])
    report = verify_chain(KEY, window, expect_start_seq=None)
    assert not report.ok and report.first_bad_seq == 5


def test_window_with_known_previous_hash():
    log = _chain(6)
    window = log[3:]
    assert verify_chain(KEY, window, expect_start_seq=4, prev_hash=log[2][1]).ok
    window[0] = (dataclasses.replace(window[0][0], detail="x"), window[0][1])
    report = verify_chain(KEY, window, expect_start_seq=4, prev_hash=log[2][1])
    assert not report.ok and report.first_bad_seq == 4


def test_wrong_key():
    report = verify_chain(Keyring.from_bytes(bytes(32)).audit_key, _chain(3))
    assert not report.ok and report.first_bad_seq == 1


def test_raise_if_broken():
    log = _chain(3)
    del log[1]
    with pytest.raises(AuditChainError, match=r"seq 2.*deleted"):
        verify_chain(KEY, log).raise_if_broken()


def test_entry_validation():
    with pytest.raises(ParameterError, match="timezone-aware"):
        _entry(1, time=datetime(2026, 1, 1))
    with pytest.raises(ParameterError, match="outcome"):
        _entry(1, outcome="ok")
    with pytest.raises(ParameterError, match="seq"):
        _entry(0)
    with pytest.raises(ParameterError, match="seq"):
        _entry(True)
    with pytest.raises(ParameterError, match="actor"):
        _entry(1, actor=None)


def test_chain_hash_validation():
    with pytest.raises(ConfigurationError):
        chain_hash(b"short", GENESIS, _entry(1))
    with pytest.raises(ParameterError):
        chain_hash(KEY, "not-a-hash", _entry(1))


def test_chain_hash_depends_on_prev():
    assert chain_hash(KEY, GENESIS, _entry(2)) != chain_hash(KEY, "1" * 64, _entry(2))


def test_role_enum_and_str_hash_the_same():
    from medtwin.security import Role

    assert chain_hash(KEY, GENESIS, _entry(1, role=Role.clinician)) == chain_hash(
        KEY, GENESIS, _entry(1, role="clinician")
    )
