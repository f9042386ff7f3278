from __future__ import annotations

import importlib

import pytest

import medtwin
from medtwin.errors import DataFormatError, MedtwinError
from tests.test_public_api import _ruff_order


@pytest.mark.parametrize(
    "name", ["medtwin.interop", "medtwin.interop.wearables", "medtwin.interop.fhir"]
)
def test_all_sorted_resolves_and_documented(name):
    mod = importlib.import_module(name)
    assert list(mod.__all__) == sorted(mod.__all__, key=_ruff_order)
    for attr in mod.__all__:
        obj = getattr(mod, attr)
        if callable(obj):
            assert obj.__doc__ and obj.__doc__.strip(), attr


def test_data_format_error_is_public_and_a_value_error():
    assert medtwin.DataFormatError is DataFormatError
    assert issubclass(DataFormatError, MedtwinError) and issubclass(DataFormatError, ValueError)
    assert "DataFormatError" in medtwin.__all__
