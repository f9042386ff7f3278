from __future__ import annotations

import pytest
from argon2 import PasswordHasher, profiles

from medtwin.errors import ParameterError
from medtwin.security import (
    generate_password,
    hash_password,
    password_needs_rehash,
    verify_password,
)
from medtwin.security._passwords import DEFAULT_HASHER

CHEAP = PasswordHasher.from_parameters(profiles.CHEAPEST)


def test_round_trip_and_wrong_password():
    stored = hash_password("correct horse", hasher=CHEAP)
    assert stored.startswith("$argon2id$")
    assert verify_password(stored, "correct horse")
    assert not verify_password(stored, "correct horsE")
    assert not verify_password(stored, "")


def test_salted_hashes_differ():
    assert hash_password("pw", hasher=CHEAP) != hash_password("pw", hasher=CHEAP)


def test_unicode_password():
    stored = hash_password("pässwörd-日本", hasher=CHEAP)
    assert verify_password(stored, "pässwörd-日本")
    assert not verify_password(stored, "passwword-日本")


def test_default_parameters_are_argon2id_rfc9106():
    params = DEFAULT_HASHER._parameters
    assert params.type.name == "ID"
    assert params.memory_cost >= 64 * 1024 and params.time_cost >= 3


@pytest.mark.parametrize(
    "stored",
    [
        "",
        "not a hash",
        "$argon2i$v=19$m=8,t=1,p=1$c2FsdHNhbHQ$aGFzaA",  # another argon2 variant
        "$2b$12$abcdefghijklmnopqrstuuO6bC2gSdeqgPRR7o6uMoZ0sD6YQO3vC",  # bcrypt
    ],
)
def test_malformed_or_foreign_hash_verifies_nothing(stored):
    assert verify_password(stored, "anything") is False


def test_argon2i_hash_of_the_right_password_is_still_rejected():
    legacy = PasswordHasher.from_parameters(profiles.CHEAPEST)
    stored = legacy.hash("pw").replace("$argon2id$", "$argon2i$")
    assert not verify_password(stored, "pw")


def test_empty_password_is_refused():
    with pytest.raises(ParameterError, match="non-empty"):
        hash_password("", hasher=CHEAP)


def test_needs_rehash_for_cheap_parameters():
    assert password_needs_rehash(hash_password("pw", hasher=CHEAP))
    assert password_needs_rehash("garbage")


def test_generate_password_entropy_and_alphabet():
    pws = {generate_password() for _ in range(50)}
    assert len(pws) == 50
    for pw in pws:
        assert len(pw) >= 22  # >= 128 bits of base64
        assert set(pw) <= set("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_")
