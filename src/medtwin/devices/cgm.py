"""Continuous glucose monitors with simglucose's CGM error model, in JAX.

The sensor error (Breton & Kovatchev, J Diabetes Sci Technol 2:853, 2008; simglucose 0.2.11) is
drawn on its own 15-minute grid and interpolated to the sensor's sample times:

    e_0 = z_0,   e_k = PACF * (e_{k-1} + z_k),   z_k ~ N(0, 1)          (AR(1) innovations)
    eps_k = xi + lambda * sinh((e_k - gamma) / delta)                    (Johnson SU transform)

The grid is cut into windows of 10 segments (150 min) sharing their end points, and each window is
interpolated with a not-a-knot cubic spline (scipy's ``interp1d(kind="cubic")``) at
``sample_time, 2 sample_time, ..., floor(150 / sample_time) sample_time`` minutes after the window
start, exactly as simglucose's ``CGMNoise`` does; the reading taken at simulation time 0 gets the
first of these.  The spline is linear in the grid values, so it is a precomputed matrix applied with
``jnp``: given the same standard normals (:meth:`CGMSensor.noise_from_normals`) the sequence equals
simglucose's to rounding.  Only the random stream differs: :meth:`CGMSensor.noise` draws from a JAX
key where simglucose uses ``numpy.random.RandomState(seed)``.
"""

from __future__ import annotations

import csv
import functools
import math
import operator
from dataclasses import dataclass
from importlib import resources
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from scipy.interpolate import make_interp_spline

from medtwin.errors import ConfigurationError
from medtwin.models._base import Array

__all__ = ["CGMSensor"]

GRID_MIN = 15.0
"""Sample time of the noise model's own grid (min)."""

_SEGMENTS = 10  # grid segments interpolated together (simglucose's CGMNoise.PRECOMPUTE)
_WINDOW_MIN = _SEGMENTS * GRID_MIN


@functools.cache
def _sensor_table() -> dict[str, dict[str, float]]:
    path = resources.files("medtwin.devices") / "data" / "sensor_params.csv"
    rows = list(csv.DictReader(path.read_text(encoding="utf-8").splitlines()))
    return {r["Name"]: {k: float(v) for k, v in r.items() if k != "Name"} for r in rows}


def _samples_per_window(sample_time: float) -> int:
    return math.floor(_WINDOW_MIN / sample_time)


@functools.cache
def _window_matrix(sample_time: float) -> np.ndarray:
    """Not-a-knot cubic spline through one window's 11 grid values, at the sample times."""
    t_grid = np.arange(_SEGMENTS + 1) * GRID_MIN
    t = np.arange(1, _samples_per_window(sample_time) + 1) * sample_time
    # Linear in the data: interpolating the identity gives the weights of every grid value.
    weights = make_interp_spline(t_grid, np.eye(_SEGMENTS + 1), k=3)(t)
    return np.asarray(weights, dtype=np.float64)


def _check_finite(name: str, value: float) -> None:
    if not math.isfinite(value):
        raise ConfigurationError(f"CGMSensor {name} must be finite, got {value!r}")


@dataclass(frozen=True, slots=True)
class CGMSensor:
    """A CGM that reads subcutaneous glucose every ``sample_time`` minutes with simglucose's error.

    ``PACF``, ``gamma``, ``lambda_``, ``delta`` and ``xi`` (mg/dL) parametrise the error model of
    the module docstring; readings are clipped to ``[min_mg_dl, max_mg_dl]``.

    >>> import jax
    >>> from medtwin.devices import CGMSensor
    >>> sensor = CGMSensor.named("Dexcom")
    >>> sensor.sample_time, sensor.observation
    (3.0, 'Gsub')
    >>> eps = sensor.noise(jax.random.key(0), 480)  # one day of 3-minute samples
    >>> eps.shape
    (480,)
    >>> float(sensor.read(700.0, eps[0]))  # the Dexcom reads at most 600 mg/dL
    600.0
    """

    name: str
    sample_time: float
    PACF: float
    gamma: float
    lambda_: float
    delta: float
    xi: float
    min_mg_dl: float = 0.0
    max_mg_dl: float = math.inf
    observation: str = "Gsub"

    def __post_init__(self) -> None:
        for field in ("sample_time", "PACF", "gamma", "lambda_", "delta", "xi"):
            _check_finite(field, getattr(self, field))
        if not 0 < self.sample_time <= _WINDOW_MIN:
            raise ConfigurationError(
                f"CGMSensor sample_time must be in (0, {_WINDOW_MIN:g}] min, "
                f"got {self.sample_time!r}"
            )
        if not -1 < self.PACF < 1:
            raise ConfigurationError(
                f"CGMSensor PACF must be in (-1, 1) for a stationary error, got {self.PACF!r}"
            )
        if not self.delta > 0:
            raise ConfigurationError(f"CGMSensor delta must be > 0, got {self.delta!r}")
        if not self.lambda_ >= 0:
            raise ConfigurationError(f"CGMSensor lambda_ must be >= 0, got {self.lambda_!r}")
        if not self.min_mg_dl <= self.max_mg_dl:
            raise ConfigurationError(
                "CGMSensor needs min_mg_dl <= max_mg_dl, got "
                f"{self.min_mg_dl!r} > {self.max_mg_dl!r}"
            )

    @classmethod
    def named(cls, name: str, *, observation: str = "Gsub") -> CGMSensor:
        """Load a simglucose sensor: ``"Dexcom"``, ``"GuardianRT"`` or ``"Navigator"``.

        >>> CGMSensor.named("Navigator").min_mg_dl
        32.0
        """
        table = _sensor_table()
        if name not in table:
            raise ConfigurationError(
                f"unknown CGM sensor {name!r}; choose one of {', '.join(sorted(table))}"
            )
        row = table[name]
        return cls(
            name=name,
            sample_time=row["sample_time"],
            PACF=row["PACF"],
            gamma=row["gamma"],
            lambda_=row["lambda"],
            delta=row["delta"],
            xi=row["xi"],
            min_mg_dl=row["min"],
            max_mg_dl=row["max"],
            observation=observation,
        )

    @classmethod
    def ideal(cls, sample_time: float = 5.0, *, observation: str = "Gsub") -> CGMSensor:
        """Make a sensor without error that reads the true value (clipped at 0 mg/dL only).

        >>> import jax
        >>> sensor = CGMSensor.ideal()
        >>> float(sensor.read(123.4, sensor.noise(jax.random.key(0), 1)[0]))
        123.4
        """
        return cls(
            name="ideal",
            sample_time=sample_time,
            PACF=0.0,
            gamma=0.0,
            lambda_=0.0,
            delta=1.0,
            xi=0.0,
            min_mg_dl=0.0,
            max_mg_dl=math.inf,
            observation=observation,
        )

    def n_normals(self, n_samples: int) -> int:
        """How many standard normals :meth:`noise_from_normals` needs for ``n_samples`` readings.

        >>> CGMSensor.named("Dexcom").n_normals(50), CGMSensor.named("Dexcom").n_normals(51)
        (11, 21)
        """
        n = _check_n_samples(n_samples)
        n_windows = -(-n // _samples_per_window(self.sample_time))
        return 1 + _SEGMENTS * n_windows

    def noise(self, key: Any, n_samples: int) -> Array:
        """Draw the error of ``n_samples`` consecutive readings of one patient from a JAX PRNG key.

        Jit-able with ``n_samples`` static and vmap-able over keys.
        """
        n = _check_n_samples(n_samples)
        if self.lambda_ == 0.0:
            return jnp.full((n,), self.xi, dtype=jnp.float64)
        z = jax.random.normal(key, (self.n_normals(n),), dtype=jnp.float64)
        return self.noise_from_normals(z, n)

    def noise_from_normals(self, z: Array, n_samples: int) -> Array:
        """Compute the error sequence driven by given standard normals, shape (:meth:`n_normals`,).

        With ``z = numpy.random.RandomState(seed).randn(sensor.n_normals(n))`` this reproduces
        simglucose's ``CGMSensor.withName(name, seed=seed)`` noise to rounding.

        >>> import numpy as np
        >>> sensor = CGMSensor.named("GuardianRT")
        >>> z = np.zeros(sensor.n_normals(30))
        >>> bool(np.allclose(sensor.noise_from_normals(z, 30), sensor.noise_from_normals(z, 30)[0]))
        True
        """
        n = _check_n_samples(n_samples)
        m = self.n_normals(n)
        z = jnp.asarray(z, dtype=jnp.float64)
        if z.shape != (m,):
            raise ConfigurationError(
                f"{n} readings of the {self.name} sensor need {m} standard normals, "
                f"got an array of shape {z.shape}"
            )
        pacf = self.PACF

        def ar1(e: Array, z_k: Array) -> tuple[Array, Array]:
            e = pacf * (e + z_k)
            return e, e

        _, tail = jax.lax.scan(ar1, z[0], z[1:])
        e = jnp.concatenate([z[:1], tail])
        eps = self.xi + self.lambda_ * jnp.sinh((e - self.gamma) / self.delta)
        # Windows of 11 grid values overlapping in their end points, one row each.
        n_windows = (m - 1) // _SEGMENTS
        index = _SEGMENTS * np.arange(n_windows)[:, None] + np.arange(_SEGMENTS + 1)[None, :]
        weights = jnp.asarray(_window_matrix(float(self.sample_time)))
        return (eps[index] @ weights.T).reshape(-1)[:n]

    def read(self, value: Array, noise: Array) -> Array:
        """Return the reading: true value plus error, clipped to ``[min_mg_dl, max_mg_dl]``."""
        return jnp.clip(value + noise, self.min_mg_dl, self.max_mg_dl)


def _check_n_samples(n_samples: int) -> int:
    try:
        n = operator.index(n_samples)
    except TypeError:
        raise ConfigurationError(
            f"n_samples must be a Python int (static under jit), got {n_samples!r}"
        ) from None
    if n < 0:
        raise ConfigurationError(f"n_samples must be >= 0, got {n}")
    return n
