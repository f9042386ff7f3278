from __future__ import annotations

import os
import re

import pytest
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from medtwin.errors import AuthenticationError, ConfigurationError, ParameterError
from medtwin.security import FieldCipher, Keyring, blind_index, pseudonym

RING = Keyring.from_bytes(bytes(range(32)))
CTX = "patient.name:p1"


@pytest.fixture
def cipher():
    return FieldCipher(RING.field_key)


@pytest.mark.parametrize("text", ["Jane Doe", "", "Zoë Ñúñez 日本", "x" * 10_000])
def test_round_trip(cipher, text):
    assert cipher.decrypt(cipher.encrypt(text, context=CTX), context=CTX) == text


def test_layout_is_nonce_then_aes_gcm_with_context_as_aad(cipher):
    blob = cipher.encrypt("Jane Doe", context=CTX)
    assert len(blob) == 12 + len("Jane Doe") + 16
    # An independent AES-GCM decrypts it with the context as associated data.
    assert AESGCM(RING.field_key).decrypt(blob[:12], blob[12:], CTX.encode()) == b"Jane Doe"


def test_random_nonces(cipher):
    blobs = {cipher.encrypt("same", context=CTX) for _ in range(100)}
    assert len(blobs) == 100
    assert len({b[:12] for b in blobs}) == 100


@pytest.mark.parametrize("position", [0, 11, 12, -1, -16])
def test_tampered_ciphertext_is_rejected(cipher, position):
    blob = bytearray(cipher.encrypt("Jane Doe", context=CTX))
    blob[position] ^= 0x01
    with pytest.raises(AuthenticationError, match="does not authenticate"):
        cipher.decrypt(bytes(blob), context=CTX)


def test_wrong_context_is_rejected(cipher):
    blob = cipher.encrypt("Jane Doe", context=CTX)
    for other in ("patient.name:p2", "patient.identifier:p1", CTX + " "):
        with pytest.raises(AuthenticationError, match="moved from another field"):
            cipher.decrypt(blob, context=other)


def test_wrong_key_is_rejected(cipher):
    blob = cipher.encrypt("Jane Doe", context=CTX)
    other = FieldCipher(Keyring.from_bytes(os.urandom(32)).field_key)
    with pytest.raises(AuthenticationError):
        other.decrypt(blob, context=CTX)


@pytest.mark.parametrize("blob", [b"", bytes(27), "text"])
def test_short_or_non_bytes_blob_is_rejected(cipher, blob):
    with pytest.raises(AuthenticationError, match="not a FieldCipher value"):
        cipher.decrypt(blob, context=CTX)


def test_truncated_tag_is_rejected(cipher):
    blob = cipher.encrypt("Jane Doe", context=CTX)
    with pytest.raises(AuthenticationError):
        cipher.decrypt(blob[:-1], context=CTX)


def test_memoryview_from_a_driver_decrypts(cipher):
    blob = cipher.encrypt("Jane Doe", context=CTX)
    assert cipher.decrypt(memoryview(blob), context=CTX) == "Jane Doe"


def test_empty_context_is_refused(cipher):
    with pytest.raises(ParameterError, match="context"):
        cipher.encrypt("x", context="")
    with pytest.raises(ParameterError, match="context"):
        cipher.decrypt(bytes(40), context="")


def test_non_str_plaintext_is_refused(cipher):
    with pytest.raises(ParameterError, match="str"):
        cipher.encrypt(b"bytes", context=CTX)  # type: ignore[arg-type]


@pytest.mark.parametrize("key", [bytes(16), bytes(31), bytes(64), "k" * 32])
def test_cipher_needs_a_32_byte_key(key):
    with pytest.raises(ConfigurationError):
        FieldCipher(key)


def test_repr_hides_the_key(cipher):
    assert "redacted" in repr(cipher)
    assert RING.field_key.hex() not in repr(cipher)


def test_blind_index_is_hmac_sha256_hex():
    import hashlib
    import hmac

    want = hmac.new(RING.index_key, b"urn:mrn|42", hashlib.sha256).hexdigest()
    assert blind_index(RING.index_key, "urn:mrn|42") == want
    assert re.fullmatch(r"[0-9a-f]{64}", want)


def test_blind_index_depends_on_key_and_text():
    a = blind_index(RING.index_key, "urn:mrn|42")
    assert a != blind_index(RING.index_key, "urn:mrn|43")
    assert a != blind_index(RING.pseudonym_key, "urn:mrn|42")


def test_blind_index_rejects_short_keys_and_non_str():
    with pytest.raises(ConfigurationError):
        blind_index(b"short", "x")
    with pytest.raises(ParameterError):
        blind_index(RING.index_key, b"x")  # type: ignore[arg-type]


def test_pseudonym_format_stability_and_keying():
    p = pseudonym(RING.pseudonym_key, "p1")
    assert re.fullmatch(r"P-[A-Z2-7]{16}", p)
    assert p == pseudonym(RING.pseudonym_key, "p1")
    assert p != pseudonym(RING.pseudonym_key, "p2")
    assert p != pseudonym(Keyring.from_bytes(os.urandom(32)).pseudonym_key, "p1")
    assert "p1" not in p


def test_pseudonym_rejects_empty_id():
    with pytest.raises(ParameterError):
        pseudonym(RING.pseudonym_key, "")
