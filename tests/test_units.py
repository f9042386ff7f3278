import math

import pytest

from medtwin.errors import UnitError
from medtwin.units import convert, glucose_from_mg_dl, glucose_to_mg_dl, is_unit, parse_unit


@pytest.mark.parametrize(
    "code",
    [
        "mg/dL",
        "mmol/L",
        "pmol/kg/min",
        "1/min",
        "U/h",
        "[iU]",
        "mg/dL/U",
        "g/U",
        "L/kg",
        "kg",
        "1",
        "%",
        "mg.L/kg/min/pmol",
        "{beats}/min",
        "mm[Hg]",
        "10*3/uL",
    ],
)
def test_known_units_parse(code):
    assert is_unit(code)


@pytest.mark.parametrize("code", ["mg/dl/x", "furlong", "", " mg", "/min", "mg dL", "kgg"])
def test_unknown_units_are_rejected_with_the_code_named(code):
    with pytest.raises(UnitError):
        parse_unit(code)


def test_glucose_conversion_uses_the_molar_mass():
    # 1 mmol/L glucose = 18.0156 mg/dL (M = 180.156 g/mol); the clinical rule of thumb is x18.
    assert glucose_to_mg_dl(1.0, "mmol/L") == pytest.approx(18.0156)
    assert glucose_from_mg_dl(180.156, "mmol/L") == pytest.approx(10.0)
    assert glucose_to_mg_dl(1.0, "g/L") == pytest.approx(100.0)


def test_rate_and_volume_conversions():
    assert convert(1.2, "U/h", "U/min") == pytest.approx(0.02)
    assert convert(1.0, "L/kg", "dL/kg") == pytest.approx(10.0)
    assert convert(6000.0, "pmol/kg/min", "nmol/kg/h") == pytest.approx(360.0)


def test_incompatible_units_name_both():
    with pytest.raises(UnitError, match=r"mg/dL.*U/h"):
        convert(1.0, "mg/dL", "U/h")
    with pytest.raises(UnitError, match="molar_mass"):
        convert(1.0, "mg/dL", "mmol/L")


def test_insulin_units_never_become_moles():
    with pytest.raises(UnitError):
        convert(1.0, "U", "pmol", molar_mass_g_per_mol=5808.0)
    assert math.isclose(convert(1.0, "[iU]", "U"), 1.0)
