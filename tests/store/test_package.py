from __future__ import annotations

import inspect
import re

import medtwin.store
from medtwin.store import Store


def _ruff_order(name: str) -> tuple[int, str]:
    if re.fullmatch(r"[A-Z0-9_]+", name) and len(name) > 1:
        return (0, name)
    return (1, name) if name[:1].isupper() else (2, name)


def test_all_is_sorted_resolves_and_is_documented():
    names = list(medtwin.store.__all__)
    assert names == sorted(names, key=_ruff_order)
    for name in names:
        obj = getattr(medtwin.store, name)
        assert obj.__doc__ and obj.__doc__.strip(), name


def test_every_public_method_is_documented_and_annotated():
    for name, member in inspect.getmembers(Store):
        if name.startswith("_") or not callable(member):
            continue
        assert member.__doc__ and member.__doc__.strip(), name
        assert "return" in inspect.get_annotations(member), name


def test_the_store_never_imports_the_layers_above_it():
    import sys

    source = "\n".join(
        inspect.getsource(m)
        for m in (
            medtwin.store,
            *(
                sys.modules[f"medtwin.store.{n}"]
                for n in ("_store", "_ingest", "_engine", "_schema")
            ),
        )
    )
    assert "medtwin.api" not in source and "medtwin.web" not in source
