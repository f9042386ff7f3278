"""Security: passwords, keys, PHI encryption, scopes, tokens, authorization, audit chain, de-id.

Pure functions and value objects, no database: :mod:`medtwin.store` keeps what these compute.
"""

from __future__ import annotations

from medtwin.security._audit import GENESIS, AuditEntry, ChainReport, chain_hash, verify_chain
from medtwin.security._deid import deidentify_fhir, deidentify_patient
from medtwin.security._fields import FieldCipher, blind_index, pseudonym
from medtwin.security._keys import Keyring
from medtwin.security._passwords import (
    generate_password,
    hash_password,
    password_needs_rehash,
    verify_password,
)
from medtwin.security._policy import Decision, authorize
from medtwin.security._roles import ROLE_SCOPES, Principal, Role
from medtwin.security._scopes import Scope, format_scopes, parse_scopes
from medtwin.security._tokens import TokenIssuer

__all__ = [
    "GENESIS",
    "ROLE_SCOPES",
    "AuditEntry",
    "ChainReport",
    "Decision",
    "FieldCipher",
    "Keyring",
    "Principal",
    "Role",
    "Scope",
    "TokenIssuer",
    "authorize",
    "blind_index",
    "chain_hash",
    "deidentify_fhir",
    "deidentify_patient",
    "format_scopes",
    "generate_password",
    "hash_password",
    "parse_scopes",
    "password_needs_rehash",
    "pseudonym",
    "verify_chain",
    "verify_password",
]
