from __future__ import annotations

import ast
import pathlib
import re

import medtwin.security as security

CONTRACT = (
    "AuditEntry",
    "ChainReport",
    "Decision",
    "FieldCipher",
    "GENESIS",
    "Keyring",
    "Principal",
    "ROLE_SCOPES",
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
    "pseudonym",
    "verify_chain",
    "verify_password",
)


def _ruff_order(name: str) -> tuple[int, str]:
    # as in tests/test_public_api.py: SCREAMING_CASE, then CamelCase, then the rest
    if re.fullmatch(r"[A-Z0-9_]+", name) and len(name) > 1:
        return (0, name)
    return (1, name) if name[:1].isupper() else (2, name)


def test_all_is_sorted_resolves_and_documented():
    assert list(security.__all__) == sorted(security.__all__, key=_ruff_order)
    for name in security.__all__:
        obj = getattr(security, name)
        if callable(obj):
            assert obj.__doc__ and obj.__doc__.strip(), name


def test_contract_names_are_public():
    assert set(CONTRACT) <= set(security.__all__)


def test_security_imports_no_upper_layer():
    # security sits below interop.fhir, store and api (docs/service-contract.md, layering).
    for path in pathlib.Path(security.__file__).parent.glob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            names = []
            if isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom):
                names = [node.module or ""]
            for name in names:
                assert not name.startswith(
                    ("medtwin.store", "medtwin.api", "medtwin.interop", "medtwin.web")
                ), f"{path.name} imports {name}"
