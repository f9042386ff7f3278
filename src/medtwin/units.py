"""Unit strings and conversions at the boundaries.

Units are written as UCUM case-sensitive codes, the notation FHIR ``Quantity.code`` uses: ``mg/dL``,
``mmol/L``, ``pmol/kg/min``, ``1/min``, ``U/h``, ``[iU]``, ``mg/dL/U``.  This module parses the subset
of UCUM that physiology models need (metric prefixes, ``.`` and ``/`` products, integer exponents,
``{annotations}``) into a scale factor and a dimension vector, so that a model declaration with a
misspelt unit is rejected when the class is defined and a quantity can be converted between any two
compatible units.  Glucose needs its molar mass to cross between mass and amount concentration
(mg/dL <-> mmol/L), which :func:`convert` takes explicitly and :func:`glucose_to_mg_dl` wraps.

Insulin is counted in international units.  UCUM spells this ``[iU]`` (``[IU]`` also accepted); the
bare ``U`` that pumps, trial reports and simglucose use is accepted as the same unit here, although in
strict UCUM ``U`` is the enzyme unit.  It is a dimension of its own and never converts to moles.

>>> convert(100.0, "mg/dL", "g/L")
1.0
>>> round(glucose_to_mg_dl(5.5, "mmol/L"), 2)
99.09
>>> convert(1.0, "U/h", "U/min") * 60
1.0
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import lru_cache

from medtwin.errors import UnitError

__all__ = [
    "GLUCOSE_MOLAR_MASS_G_PER_MOL",
    "ParsedUnit",
    "convert",
    "glucose_from_mg_dl",
    "glucose_to_mg_dl",
    "is_unit",
    "parse_unit",
]

GLUCOSE_MOLAR_MASS_G_PER_MOL = 180.156
"""Molar mass of D-glucose, C6H12O6 (IUPAC atomic weights), used for mg/dL <-> mmol/L."""

# Dimension order: mass, length, time, amount of substance, insulin unit, temperature.
_DIMS = ("M", "L", "T", "N", "IU", "K")

# atom -> (scale to SI-coherent base, dimension exponents)
_ATOMS: dict[str, tuple[float, tuple[int, ...]]] = {
    "g": (1.0, (1, 0, 0, 0, 0, 0)),
    "m": (1.0, (0, 1, 0, 0, 0, 0)),
    "L": (1e-3, (0, 3, 0, 0, 0, 0)),
    "l": (1e-3, (0, 3, 0, 0, 0, 0)),
    "s": (1.0, (0, 0, 1, 0, 0, 0)),
    "min": (60.0, (0, 0, 1, 0, 0, 0)),
    "h": (3600.0, (0, 0, 1, 0, 0, 0)),
    "d": (86400.0, (0, 0, 1, 0, 0, 0)),
    "wk": (604800.0, (0, 0, 1, 0, 0, 0)),
    "mol": (1.0, (0, 0, 0, 1, 0, 0)),
    "[iU]": (1.0, (0, 0, 0, 0, 1, 0)),
    "[IU]": (1.0, (0, 0, 0, 0, 1, 0)),
    "U": (1.0, (0, 0, 0, 0, 1, 0)),
    "K": (1.0, (0, 0, 0, 0, 0, 1)),
    "Cel": (1.0, (0, 0, 0, 0, 0, 1)),
    "%": (1e-2, (0, 0, 0, 0, 0, 0)),
    "1": (1.0, (0, 0, 0, 0, 0, 0)),
    "mm[Hg]": (133.322, (1, -1, -2, 0, 0, 0)),
    "Pa": (1.0, (1, -1, -2, 0, 0, 0)),
}
# Atoms that take a metric prefix (UCUM "metric" units).
_METRIC = {"g", "m", "L", "l", "s", "mol", "[iU]", "[IU]", "U", "Pa"}
_PREFIXES = {
    "k": 1e3,
    "h": 1e2,
    "da": 1e1,
    "d": 1e-1,
    "c": 1e-2,
    "m": 1e-3,
    "u": 1e-6,
    "µ": 1e-6,
    "n": 1e-9,
    "p": 1e-12,
    "f": 1e-15,
}
_TOKEN = re.compile(r"([./])")
_EXPONENT = re.compile(r"^(.*?)(-?\d+)$")


@dataclass(frozen=True, slots=True)
class ParsedUnit:
    """A unit reduced to a scale factor and integer exponents of the base dimensions."""

    code: str
    scale: float
    dims: tuple[int, ...]

    def is_compatible(self, other: ParsedUnit) -> bool:
        """Whether the two units measure the same kind of quantity."""
        return self.dims == other.dims


def _parse_atom(text: str, code: str) -> tuple[float, tuple[int, ...]]:
    if text in _ATOMS:
        return _ATOMS[text]
    for prefix in sorted(_PREFIXES, key=len, reverse=True):
        if text.startswith(prefix) and text[len(prefix) :] in _METRIC:
            scale, dims = _ATOMS[text[len(prefix) :]]
            return _PREFIXES[prefix] * scale, dims
    raise UnitError(
        f"unknown unit {code!r}: cannot read {text!r}; write UCUM codes such as 'mg/dL', "
        "'mmol/L', 'pmol/kg/min', '1/min', 'U/h' or '1' for dimensionless"
    )


def _parse_component(text: str, code: str) -> tuple[float, tuple[int, ...]]:
    text = re.sub(r"\{[^}]*\}", "", text)  # UCUM annotations carry no dimension
    if text == "":
        return 1.0, (0,) * len(_DIMS)
    if text in _ATOMS or any(text.endswith(a) for a in _METRIC if text not in _ATOMS):
        try:
            return _parse_atom(text, code)
        except UnitError:
            pass
    if text.isdigit() or re.fullmatch(r"10\*-?\d+", text):
        base, _, exp = text.partition("*")
        return (float(base) ** int(exp) if exp else float(text)), (0,) * len(_DIMS)
    match = _EXPONENT.match(text)
    if match and match.group(1):
        scale, dims = _parse_atom(match.group(1), code)
        power = int(match.group(2))
        return scale**power, tuple(d * power for d in dims)
    return _parse_atom(text, code)


@lru_cache(maxsize=512)
def parse_unit(code: str) -> ParsedUnit:
    """Parse a UCUM unit code into a :class:`ParsedUnit`.

    >>> parse_unit("mg/dL").dims == parse_unit("g/L").dims
    True
    """
    if not isinstance(code, str) or not code.strip():
        raise UnitError(f"unit must be a non-empty UCUM string, got {code!r}")
    if code != code.strip() or " " in code:
        raise UnitError(f"unit {code!r} contains spaces; UCUM codes have none (e.g. 'mg/dL')")
    scale = 1.0
    dims = [0] * len(_DIMS)
    sign = 1
    for i, token in enumerate(_TOKEN.split(code)):
        if token in {".", "/"}:
            sign = 1 if token == "." else -1
            continue
        if token == "" and i == 0:
            raise UnitError(f"unit {code!r} starts with an operator; write '1/min', not '/min'")
        s, d = _parse_component(token, code)
        scale *= s**sign
        dims = [a + sign * b for a, b in zip(dims, d, strict=True)]
    return ParsedUnit(code=code, scale=scale, dims=tuple(dims))


def is_unit(code: str) -> bool:
    """Whether ``code`` is a unit this module understands."""
    try:
        parse_unit(code)
    except UnitError:
        return False
    return True


def convert(
    value: float,
    from_unit: str,
    to_unit: str,
    *,
    molar_mass_g_per_mol: float | None = None,
) -> float:
    """Convert ``value`` between two compatible UCUM units.

    Mass and amount of substance are converted into each other only when ``molar_mass_g_per_mol`` is
    given (glucose: :data:`GLUCOSE_MOLAR_MASS_G_PER_MOL`).
    """
    src, dst = parse_unit(from_unit), parse_unit(to_unit)
    if src.dims == dst.dims:
        return float(value) * src.scale / dst.scale
    if molar_mass_g_per_mol is not None:
        mass_to_amount = tuple(a - b for a, b in zip(src.dims, dst.dims, strict=True))
        if mass_to_amount == (1, 0, 0, -1, 0, 0):  # src has mass where dst has amount
            return float(value) * src.scale / molar_mass_g_per_mol / dst.scale
        if mass_to_amount == (-1, 0, 0, 1, 0, 0):
            return float(value) * src.scale * molar_mass_g_per_mol / dst.scale
    raise UnitError(
        f"cannot convert {from_unit!r} to {to_unit!r}: they measure different quantities"
        + ("" if molar_mass_g_per_mol else " (mass <-> amount needs molar_mass_g_per_mol)")
    )


def glucose_to_mg_dl(value: float, unit: str) -> float:
    """Convert a glucose concentration in ``unit`` (mg/dL, mmol/L, g/L, ...) to mg/dL."""
    return convert(value, unit, "mg/dL", molar_mass_g_per_mol=GLUCOSE_MOLAR_MASS_G_PER_MOL)


def glucose_from_mg_dl(value_mg_dl: float, unit: str) -> float:
    """Convert a glucose concentration in mg/dL to ``unit``."""
    return convert(value_mg_dl, "mg/dL", unit, molar_mass_g_per_mol=GLUCOSE_MOLAR_MASS_G_PER_MOL)
