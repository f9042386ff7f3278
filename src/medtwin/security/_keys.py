"""The master key file and the subkeys derived from it (HKDF-SHA256)."""

from __future__ import annotations

import base64
import binascii
import contextlib
import errno
import os
import secrets
import stat
from pathlib import Path
from typing import NoReturn, final

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from medtwin.errors import ConfigurationError

__all__ = ["KEY_BYTES", "Keyring"]

KEY_BYTES = 32
"""Length of the master key and of every subkey."""

_NO_HARDLINKS = {
    errno.EPERM,
    errno.ENOTSUP,
    errno.EOPNOTSUPP,
    errno.ENOSYS,
    errno.EMLINK,
    errno.EXDEV,
}

# One HKDF info label per use, so no two purposes ever share key material.
_LABELS = {
    "field_key": b"medtwin/v1/field-encryption",
    "index_key": b"medtwin/v1/blind-index",
    "pseudonym_key": b"medtwin/v1/pseudonym",
    "token_key": b"medtwin/v1/token-signing",
    "audit_key": b"medtwin/v1/audit-chain",
}


def _derive(master: bytes, info: bytes) -> bytes:
    # No salt: the master key is already uniformly random (RFC 5869, section 3.1).
    return HKDF(algorithm=hashes.SHA256(), length=KEY_BYTES, salt=None, info=info).derive(master)


@final
class Keyring:
    """The 32-byte master key and its HKDF-SHA256 subkeys, one per purpose.

    The master key lives only in the key file (``MEDTWIN_KEY_FILE``), never in the database.
    Subkeys are the properties :attr:`field_key`, :attr:`index_key`, :attr:`pseudonym_key`,
    :attr:`token_key` and :attr:`audit_key`.

    >>> ring = Keyring.from_bytes(bytes(range(32)))
    >>> len(ring.field_key), ring.field_key != ring.index_key
    (32, True)
    >>> ring
    Keyring(<redacted>)
    """

    __slots__ = ("_subkeys",)

    _subkeys: dict[str, bytes]

    def __init__(self, master: bytes) -> None:
        if not isinstance(master, bytes | bytearray) or len(master) != KEY_BYTES:
            n = len(master) if isinstance(master, bytes | bytearray) else type(master).__name__
            raise ConfigurationError(f"a master key must be exactly {KEY_BYTES} bytes; got {n}")
        # The master key itself is not kept: only what is derived from it.
        object.__setattr__(
            self, "_subkeys", {name: _derive(bytes(master), info) for name, info in _LABELS.items()}
        )

    def __setattr__(self, name: str, value: object) -> None:
        raise AttributeError("a Keyring is immutable")

    def __repr__(self) -> str:
        return "Keyring(<redacted>)"

    def __reduce__(self) -> NoReturn:
        raise TypeError("a Keyring is not picklable: keys stay in memory and in the key file")

    @classmethod
    def from_bytes(cls, master: bytes) -> Keyring:
        """A keyring from the raw 32-byte master key (tests, or a key from a secret manager)."""
        return cls(master)

    @classmethod
    def from_file(cls, path: str | os.PathLike[str]) -> Keyring:
        """Read the master key file: 32 raw bytes, or their base64 (standard or URL-safe).

        Raises :class:`~medtwin.errors.ConfigurationError` when the file is missing, holds
        something else, or is accessible to group or others (``chmod 600`` fixes that).
        """
        p = Path(path)
        try:
            st = p.stat()
        except FileNotFoundError:
            raise ConfigurationError(
                f"key file {p} does not exist; create one with Keyring.create_file({str(p)!r}) "
                "and point MEDTWIN_KEY_FILE at it"
            ) from None
        except OSError as exc:
            raise ConfigurationError(f"cannot read key file {p}: {exc.strerror}") from exc
        if not stat.S_ISREG(st.st_mode):
            raise ConfigurationError(f"key file {p} is not a regular file")
        if os.name == "posix" and st.st_mode & 0o077:
            raise ConfigurationError(
                f"key file {p} is accessible to group or others (mode {stat.S_IMODE(st.st_mode):#o}); "
                f"restrict it with: chmod 600 {p}"
            )
        if st.st_size > 1024:
            raise ConfigurationError(
                f"key file {p} must hold exactly {KEY_BYTES} raw bytes or their base64 "
                f"({st.st_size} bytes found); create a new one with Keyring.create_file"
            )
        try:
            data = p.read_bytes()
        except OSError as exc:
            raise ConfigurationError(f"cannot read key file {p}: {exc.strerror}") from exc
        return cls(_parse_key(data, p))

    @classmethod
    def create_file(cls, path: str | os.PathLike[str]) -> Keyring:
        """Write a new random master key to ``path`` (mode 0600) and return its keyring.

        The file appears whole or not at all, and an existing file is never overwritten.

        >>> import pathlib, tempfile
        >>> with tempfile.TemporaryDirectory() as d:
        ...     ring = Keyring.create_file(pathlib.Path(d) / "medtwin.key")
        ...     oct(pathlib.Path(d, "medtwin.key").stat().st_mode & 0o777)
        '0o600'
        """
        p = Path(path)
        if p.exists() or p.is_symlink():
            raise ConfigurationError(f"key file {p} already exists; refusing to overwrite a key")
        if not p.parent.is_dir():
            raise ConfigurationError(f"cannot create key file {p}: {p.parent} is not a directory")
        master = secrets.token_bytes(KEY_BYTES)
        tmp = p.with_name(f".{p.name}.{secrets.token_hex(8)}.tmp")
        try:
            _write_new(tmp, master)
            try:
                # link() fails if the target exists: an atomic create-if-absent, unlike rename().
                os.link(tmp, p)
            except OSError as exc:
                if exc.errno not in _NO_HARDLINKS:
                    raise
                _write_new(p, master)  # exclusive, though a crash could leave a short file
        except FileExistsError:
            raise ConfigurationError(
                f"key file {p} already exists; refusing to overwrite a key"
            ) from None
        except OSError as exc:
            raise ConfigurationError(f"cannot create key file {p}: {exc.strerror}") from exc
        finally:
            with contextlib.suppress(FileNotFoundError):
                tmp.unlink()
        _fsync_dir(p.parent)
        return cls(master)

    @property
    def field_key(self) -> bytes:
        """AES-256-GCM key for PHI columns (:class:`FieldCipher`)."""
        return self._subkeys["field_key"]

    @property
    def index_key(self) -> bytes:
        """HMAC key for blind indexes (:func:`blind_index`)."""
        return self._subkeys["index_key"]

    @property
    def pseudonym_key(self) -> bytes:
        """HMAC key for research pseudonyms (:func:`pseudonym`)."""
        return self._subkeys["pseudonym_key"]

    @property
    def token_key(self) -> bytes:
        """HS256 key for access tokens (:class:`TokenIssuer`)."""
        return self._subkeys["token_key"]

    @property
    def audit_key(self) -> bytes:
        """HMAC key for the audit hash chain (:func:`chain_hash`)."""
        return self._subkeys["audit_key"]


def _parse_key(data: bytes, path: Path) -> bytes:
    if len(data) == KEY_BYTES:
        return data
    text = data.strip()
    for altchars in (None, b"-_"):  # standard, then URL-safe base64
        try:
            key = base64.b64decode(text, altchars=altchars, validate=True)
        except (binascii.Error, ValueError):
            continue
        if len(key) == KEY_BYTES:
            return key
    raise ConfigurationError(
        f"key file {path} must hold exactly {KEY_BYTES} raw bytes or their base64 "
        f"({len(data)} bytes found); create a new one with Keyring.create_file"
    )


def _write_new(path: Path, data: bytes) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        if hasattr(os, "fchmod"):
            os.fchmod(fd, 0o600)  # whatever the umask
        if os.write(fd, data) != len(data):
            raise OSError(errno.EIO, "short write")
        os.fsync(fd)
    finally:
        os.close(fd)


def _fsync_dir(directory: Path) -> None:
    # Make the new directory entry durable; not every platform can open a directory.
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)
