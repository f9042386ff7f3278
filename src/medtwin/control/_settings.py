"""Per-patient controller settings: a scalar for everyone or one value per patient.

A per-patient setting is kept as a read-only float64 array, so the engine can treat it as data (its
compiled code depends on the shape only); :func:`value_key` gives controllers holding such arrays
value equality and a hash.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from typing import Any

import numpy as np

from medtwin.errors import ConfigurationError, ParameterError

__all__ = ["Setting", "broadcast", "normalise", "value_key"]

Setting = float | Sequence[float] | np.ndarray
"""A controller setting: one value for every patient, or one per patient."""


def normalise(
    owner: str, name: str, value: Setting, *, minimum: float | None = None, strict: bool = False
) -> float | np.ndarray:
    """Check a setting; return a float, or a read-only float64 array with one value per patient."""
    try:
        arr = np.array(value, dtype=np.float64)
    except (TypeError, ValueError):
        raise ParameterError(f"{owner} {name} must be a number or numbers, got {value!r}") from None
    if arr.ndim > 1 or arr.size == 0:
        raise ParameterError(
            f"{owner} {name} must be a scalar or a non-empty 1-d array (one per patient), "
            f"got shape {arr.shape}"
        )
    flat = arr.reshape(-1)
    bad = ~np.isfinite(flat)
    if minimum is not None:
        bad |= (flat <= minimum) if strict else (flat < minimum)
    if bad.any():
        i = int(np.flatnonzero(bad)[0])
        where = "" if arr.ndim == 0 else f" (entry {i} of {flat.size})"
        need = "finite" if minimum is None else f"finite and {'>' if strict else '>='} {minimum:g}"
        raise ParameterError(f"{owner} {name} must be {need}, got {float(flat[i])!r}{where}")
    if arr.ndim == 0:
        return float(arr)
    arr.flags.writeable = False  # a private copy: the controller stays immutable
    return arr


def broadcast(owner: str, name: str, value: float | np.ndarray, n: int) -> np.ndarray:
    """Return the setting as a length-``n`` float64 array."""
    if isinstance(value, np.ndarray):
        if value.shape != (n,):
            raise ConfigurationError(
                f"{owner} {name} has {value.size} values, one per patient, "
                f"but the batch has {n} patients"
            )
        return value.copy()
    return np.full(n, value, dtype=np.float64)


def value_key(obj: Any) -> tuple[Any, ...]:
    """Return a hashable stand-in for a dataclass's field values, arrays by shape and content."""
    key: list[Any] = [type(obj)]
    for field in dataclasses.fields(obj):
        v = getattr(obj, field.name)
        # + 0.0 turns -0.0 into 0.0, which compare equal but differ in bytes
        key.append(("array", v.shape, (v + 0.0).tobytes()) if isinstance(v, np.ndarray) else v)
    return tuple(key)
