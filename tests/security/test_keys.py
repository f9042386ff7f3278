from __future__ import annotations

import base64
import os
import pickle
import stat

import pytest

from medtwin.errors import ConfigurationError
from medtwin.security import Keyring

SUBKEYS = ("field_key", "index_key", "pseudonym_key", "token_key", "audit_key")


def test_subkeys_are_distinct_deterministic_and_32_bytes():
    master = os.urandom(32)
    a, b = Keyring.from_bytes(master), Keyring.from_bytes(master)
    keys = [getattr(a, name) for name in SUBKEYS]
    assert all(len(k) == 32 for k in keys)
    assert len(set(keys)) == len(keys)
    assert master not in keys
    assert keys == [getattr(b, name) for name in SUBKEYS]


def test_other_master_other_subkeys():
    a, b = Keyring.from_bytes(bytes(32)), Keyring.from_bytes(b"\x01" + bytes(31))
    for name in SUBKEYS:
        assert getattr(a, name) != getattr(b, name)


def test_known_answer_hkdf_sha256():
    # Independent HKDF (RFC 5869) with the stdlib, so a change of labels or hash is caught.
    import hashlib
    import hmac

    master = bytes(range(32))
    prk = hmac.new(b"\x00" * 32, master, hashlib.sha256).digest()
    okm = hmac.new(prk, b"medtwin/v1/audit-chain\x01", hashlib.sha256).digest()
    assert Keyring.from_bytes(master).audit_key == okm


@pytest.mark.parametrize("bad", [b"", bytes(31), bytes(33), "x" * 32])
def test_from_bytes_rejects_wrong_length(bad):
    with pytest.raises(ConfigurationError, match="32 bytes"):
        Keyring.from_bytes(bad)


def test_repr_and_pickle_do_not_leak():
    ring = Keyring.from_bytes(bytes(range(32)))
    assert "redacted" in repr(ring)
    assert ring.field_key.hex() not in repr(ring)
    with pytest.raises(TypeError):
        pickle.dumps(ring)
    with pytest.raises(AttributeError):
        ring.extra = 1  # type: ignore[attr-defined]


def test_create_file_then_from_file(tmp_path):
    path = tmp_path / "medtwin.key"
    created = Keyring.create_file(path)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert len(path.read_bytes()) == 32
    assert Keyring.from_file(path).audit_key == created.audit_key
    assert [p.name for p in tmp_path.iterdir()] == ["medtwin.key"]  # no temporary left behind


def test_create_file_ignores_a_permissive_umask(tmp_path):
    old = os.umask(0)
    try:
        Keyring.create_file(tmp_path / "k")
    finally:
        os.umask(old)
    assert stat.S_IMODE((tmp_path / "k").stat().st_mode) == 0o600


def test_create_file_refuses_to_overwrite(tmp_path):
    path = tmp_path / "medtwin.key"
    path.write_bytes(b"precious")
    with pytest.raises(ConfigurationError, match="refusing to overwrite"):
        Keyring.create_file(path)
    assert path.read_bytes() == b"precious"


def test_create_file_refuses_a_dangling_symlink(tmp_path):
    link = tmp_path / "k"
    link.symlink_to(tmp_path / "elsewhere")
    with pytest.raises(ConfigurationError, match="refusing to overwrite"):
        Keyring.create_file(link)
    assert not (tmp_path / "elsewhere").exists()


def test_create_file_in_missing_directory(tmp_path):
    with pytest.raises(ConfigurationError, match="not a directory"):
        Keyring.create_file(tmp_path / "nope" / "k")


def _write(path, data, mode=0o600):
    path.write_bytes(data)
    path.chmod(mode)
    return path


@pytest.mark.parametrize(
    "encode",
    [
        lambda k: k,
        base64.b64encode,
        lambda k: base64.b64encode(k) + b"\n",
        lambda k: base64.urlsafe_b64encode(k) + b"\n",
    ],
)
def test_from_file_reads_raw_and_base64(tmp_path, encode):
    master = b"\xfb\xff" + os.urandom(30)  # bytes that differ between the two base64 alphabets
    path = _write(tmp_path / "k", encode(master))
    assert Keyring.from_file(path).token_key == Keyring.from_bytes(master).token_key


def test_from_file_missing(tmp_path):
    with pytest.raises(ConfigurationError, match=r"does not exist.*create_file"):
        Keyring.from_file(tmp_path / "absent.key")


@pytest.mark.parametrize("data", [b"", bytes(16), bytes(64), b"not base64 at all!!", b"QUJD\n"])
def test_from_file_wrong_length(tmp_path, data):
    with pytest.raises(ConfigurationError, match="exactly 32 raw bytes"):
        Keyring.from_file(_write(tmp_path / "k", data))


@pytest.mark.skipif(os.name != "posix", reason="POSIX permissions")
@pytest.mark.parametrize("mode", [0o644, 0o640, 0o604, 0o660])
def test_from_file_rejects_group_or_world_readable(tmp_path, mode):
    path = _write(tmp_path / "k", os.urandom(32), mode)
    with pytest.raises(ConfigurationError, match="chmod 600"):
        Keyring.from_file(path)


def test_from_file_rejects_a_directory(tmp_path):
    d = tmp_path / "dir"
    d.mkdir(mode=0o700)
    with pytest.raises(ConfigurationError, match="not a regular file"):
        Keyring.from_file(d)
