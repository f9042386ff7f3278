"""PHI at rest: field encryption, blind indexes and research pseudonyms."""

from __future__ import annotations

import base64
import hashlib
import hmac
import os
from typing import final

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from medtwin.errors import AuthenticationError, ConfigurationError, ParameterError

__all__ = ["FieldCipher", "blind_index", "pseudonym"]

_NONCE_BYTES = 12
_TAG_BYTES = 16


def _check_key(key: bytes, what: str) -> bytes:
    if not isinstance(key, bytes | bytearray) or len(key) < 32:
        raise ConfigurationError(f"{what} needs a key of at least 32 bytes (a Keyring subkey)")
    return bytes(key)


@final
class FieldCipher:
    """AES-256-GCM for one column value, bound to its ``context`` (e.g. ``"patient.name:p1"``).

    A ciphertext is ``nonce (12 random bytes) || ciphertext || tag (16 bytes)``; ``context`` is the
    associated data, so a ciphertext copied to another row or column no longer decrypts.

    >>> cipher = FieldCipher(bytes(32))
    >>> blob = cipher.encrypt("Jane Doe", context="patient.name:p1")
    >>> cipher.decrypt(blob, context="patient.name:p1")
    'Jane Doe'
    >>> cipher.decrypt(blob, context="patient.name:p2")  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    medtwin.errors.AuthenticationError: field ciphertext does not authenticate for context ...
    """

    __slots__ = ("_aead",)

    def __init__(self, key: bytes) -> None:
        key = _check_key(key, "FieldCipher")
        if len(key) != 32:
            raise ConfigurationError(
                f"FieldCipher needs a 32-byte AES-256 key; got {len(key)} bytes"
            )
        self._aead = AESGCM(key)

    def __repr__(self) -> str:
        return "FieldCipher(<redacted>)"

    def encrypt(self, text: str, *, context: str) -> bytes:
        """Encrypt ``text`` under a fresh random nonce, bound to ``context``."""
        if not isinstance(text, str):
            raise ParameterError(f"FieldCipher encrypts str values; got {type(text).__name__}")
        nonce = os.urandom(_NONCE_BYTES)
        return nonce + self._aead.encrypt(nonce, text.encode("utf-8"), _aad(context))

    def decrypt(self, blob: bytes, *, context: str) -> str:
        """Decrypt a value from :meth:`encrypt`; raises ``AuthenticationError`` if it does not verify."""
        aad = _aad(context)
        data = bytes(blob) if isinstance(blob, bytes | bytearray | memoryview) else None
        if data is None or len(data) < _NONCE_BYTES + _TAG_BYTES:
            raise AuthenticationError(
                f"field ciphertext for context {context!r} is not a FieldCipher value (too short)"
            )
        try:
            plain = self._aead.decrypt(data[:_NONCE_BYTES], data[_NONCE_BYTES:], aad)
        except InvalidTag:
            raise AuthenticationError(
                f"field ciphertext does not authenticate for context {context!r}: it was altered, "
                "moved from another field, or encrypted under another key"
            ) from None
        return plain.decode("utf-8")


def _aad(context: str) -> bytes:
    if not isinstance(context, str) or not context:
        raise ParameterError("FieldCipher needs a non-empty context string (table.column:row id)")
    return context.encode("utf-8")


def blind_index(key: bytes, text: str) -> str:
    """HMAC-SHA256 of ``text`` as 64 hex digits: an exact-match lookup of an encrypted value.

    The caller normalises ``text`` (e.g. ``system|value``) the same way on write and on lookup.

    >>> blind_index(bytes(32), "urn:mrn|12345") == blind_index(bytes(32), "urn:mrn|12345")
    True
    >>> len(blind_index(bytes(32), "urn:mrn|12345"))
    64
    """
    key = _check_key(key, "blind_index")
    if not isinstance(text, str):
        raise ParameterError(f"blind_index takes a str; got {type(text).__name__}")
    return hmac.new(key, text.encode("utf-8"), hashlib.sha256).hexdigest()


def pseudonym(key: bytes, patient_id: str) -> str:
    """A stable research pseudonym: ``"P-"`` and 16 base32 characters (80 bits) of HMAC-SHA256.

    Without ``key`` nobody can link a pseudonym back to ``patient_id`` or recompute it.

    >>> p = pseudonym(bytes(32), "p1")
    >>> p.startswith("P-"), len(p), p == pseudonym(bytes(32), "p1")
    (True, 18, True)
    """
    key = _check_key(key, "pseudonym")
    if not isinstance(patient_id, str) or not patient_id:
        raise ParameterError("pseudonym needs a non-empty patient id")
    digest = hmac.new(key, b"patient:" + patient_id.encode("utf-8"), hashlib.sha256).digest()
    return "P-" + base64.b32encode(digest[:10]).decode("ascii")
