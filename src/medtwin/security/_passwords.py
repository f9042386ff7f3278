"""Password hashing (argon2id) and one-time credentials."""

from __future__ import annotations

import secrets

from argon2 import PasswordHasher, profiles
from argon2.exceptions import InvalidHashError, VerificationError

from medtwin.errors import ParameterError

__all__ = [
    "DEFAULT_HASHER",
    "generate_password",
    "hash_password",
    "password_needs_rehash",
    "verify_password",
]

DEFAULT_HASHER = PasswordHasher.from_parameters(profiles.RFC_9106_LOW_MEMORY)
"""argon2id, RFC 9106's second recommended option: t=3, m=64 MiB, p=4, 16-byte salt, 32-byte tag."""

_PREFIX = "$argon2id$"


def hash_password(pw: str, *, hasher: PasswordHasher | None = None) -> str:
    """Hash a password with argon2id and a random salt, as a PHC string.

    Parameters
    ----------
    pw
        The password; must not be empty.
    hasher
        Another argon2-cffi hasher (tests pass ``profiles.CHEAPEST``); :data:`DEFAULT_HASHER` otherwise.

    >>> stored = hash_password("correct horse battery staple")
    >>> stored.startswith("$argon2id$"), verify_password(stored, "correct horse battery staple")
    (True, True)
    """
    if not isinstance(pw, str) or not pw:
        raise ParameterError("a password must be a non-empty string")
    return (hasher or DEFAULT_HASHER).hash(pw)


def verify_password(stored: str, pw: str) -> bool:
    """Whether ``pw`` matches the argon2id hash ``stored`` (constant time in the password).

    A malformed or non-argon2id ``stored`` value verifies nothing and returns ``False``.

    >>> verify_password(hash_password("s3cret!"), "S3cret!")
    False
    """
    if not isinstance(stored, str) or not stored.startswith(_PREFIX) or not isinstance(pw, str):
        return False
    try:
        # The parameters come from the PHC string, so any hasher verifies any cost setting.
        return DEFAULT_HASHER.verify(stored, pw)
    except (VerificationError, InvalidHashError):
        return False


def password_needs_rehash(stored: str) -> bool:
    """Whether ``stored`` was hashed with weaker parameters than :data:`DEFAULT_HASHER`'s.

    Call after a successful :func:`verify_password` and store ``hash_password(pw)`` when true.

    >>> password_needs_rehash(hash_password("pw"))
    False
    """
    try:
        return DEFAULT_HASHER.check_needs_rehash(stored)
    except (InvalidHashError, ValueError):
        return True


def generate_password() -> str:
    """A one-time credential: 192 random bits, URL-safe base64 (32 characters).

    >>> len(generate_password()), generate_password() != generate_password()
    (32, True)
    """
    return secrets.token_urlsafe(24)
