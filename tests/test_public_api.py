import importlib
import re
import typing

import pytest


def _ruff_order(name: str) -> tuple[int, str]:
    # ruff's RUF022 ("isort-style"): SCREAMING_CASE, then CamelCase, then the rest
    if re.fullmatch(r"[A-Z0-9_]+", name) and len(name) > 1:
        return (0, name)
    if name[:1].isupper():
        return (1, name)
    return (2, name)


PACKAGES = [
    "medtwin",
    "medtwin.models",
    "medtwin.simulate",
    "medtwin.units",
    "medtwin.errors",
    "medtwin.history",
    "medtwin.calibrate",
    "medtwin.assimilate",
    "medtwin.twin",
    "medtwin.devices",
    "medtwin.control",
    "medtwin.metrics",
    "medtwin.records",
    "medtwin.models.pk",
    "medtwin.calibrate.population",
    "medtwin.trials",
    "medtwin.interop.nonmem",
    "medtwin.security",
    "medtwin.store",
    "medtwin.interop.fhir",
    "medtwin.interop.hl7v2",
    "medtwin.hospital",
    "medtwin.api",
    "medtwin.web",
]


@pytest.mark.parametrize("name", PACKAGES)
def test_all_is_sorted_and_resolves(name):
    mod = importlib.import_module(name)
    assert list(mod.__all__) == sorted(mod.__all__, key=_ruff_order), (
        f"{name}.__all__ is not sorted"
    )
    for attr in mod.__all__:
        assert hasattr(mod, attr), f"{name}.__all__ names missing {attr}"


@pytest.mark.parametrize("name", PACKAGES)
def test_public_objects_have_docstrings(name):
    mod = importlib.import_module(name)
    for attr in mod.__all__:
        obj = getattr(mod, attr)
        if typing.get_origin(obj) is not None:
            continue  # a type alias: documented by the string literal under its definition
        if callable(obj) and not isinstance(obj, (int, float, str, tuple)):
            assert obj.__doc__ and obj.__doc__.strip(), f"{name}.{attr} has no docstring"
