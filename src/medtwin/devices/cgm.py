"""Continuous glucose monitors in JAX: simglucose's CGM error model and a factory-calibrated G6.

:class:`FactoryCalibratedCGM` is the Dexcom G6 error model of Vettoretti et al. (2019), described
on the class.  :class:`CGMSensor` is simglucose's:

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

__all__ = ["CGMSensor", "FactoryCalibratedCGM", "sensor_named"]

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


@dataclass(frozen=True, slots=True)
class FactoryCalibratedCGM:
    """A factory-calibrated CGM (no fingerstick calibrations) with the Padova error model.

    Vettoretti, Del Favero, Sparacino & Facchinetti, "Modeling the error of factory-calibrated
    continuous glucose monitoring sensors: application to Dexcom G6 sensor data", IEEE EMBC 2019
    (doi:10.1109/EMBC.2019.8856790), after Facchinetti et al., IEEE Trans Biomed Eng 61:620 (2014).
    The reading of interstitial glucose ``IG`` at sample ``k``, ``d`` days into the sensor's life
    (a new sensor every ``lifetime_days``), is

        CGM_k = a(d) * IG_k + b(d) + v_k + c_k
        a(d) = a0 + a1 d + a2 d^2,     b(d) = b0 + b1 d + b2 d^2          (calibration error)
        v_k = alpha1 v_{k-1} + alpha2 v_{k-2} + w_k,   w_k ~ N(0, lambda2)   (sensor noise)
        c_k = beta1 c_{k-1} + beta2 c_{k-2} + u_k,     u_k ~ N(0, sigma2)    (common component)

    with both autoregressions on the sensor's own 5-minute samples and started from their
    stationary distribution.  :meth:`noise` returns, per sample, the gain ``a(d)`` and the additive
    error ``b(d) + v_k + c_k``; :meth:`read` combines them with the true value and clips to the
    sensor's reporting range (40-400 mg/dL for the G6).

    >>> import jax
    >>> g6 = FactoryCalibratedCGM.named("DexcomG6")
    >>> e = g6.noise(jax.random.key(0), 288)
    >>> e.shape, float(g6.read(120.0, e[0])) > 0
    ((288, 2), True)
    """

    name: str
    sample_time: float
    gain: tuple[float, float, float]
    offset: tuple[float, float, float]
    alpha: tuple[float, float]
    lambda2: float
    beta: tuple[float, float]
    sigma2: float
    lifetime_days: float = 10.0
    min_mg_dl: float = 40.0
    max_mg_dl: float = 400.0
    observation: str = "Gsub"

    def __post_init__(self) -> None:
        for name in ("sample_time", "lambda2", "sigma2", "lifetime_days"):
            value = getattr(self, name)
            _check_finite(name, value)
            if value < 0 or (name in ("sample_time", "lifetime_days") and value == 0):
                raise ConfigurationError(f"FactoryCalibratedCGM {name} must be > 0, got {value!r}")
        for name in ("alpha", "beta"):
            a1, a2 = getattr(self, name)
            # AR(2) stationarity triangle
            if not (abs(a2) < 1 and a2 + a1 < 1 and a2 - a1 < 1):
                raise ConfigurationError(
                    f"FactoryCalibratedCGM {name} = {(a1, a2)} is not a stationary AR(2)"
                )
        if not self.min_mg_dl <= self.max_mg_dl:
            raise ConfigurationError(
                f"FactoryCalibratedCGM needs min_mg_dl <= max_mg_dl, got {self.min_mg_dl!r} > "
                f"{self.max_mg_dl!r}"
            )

    @classmethod
    def named(cls, name: str, *, observation: str = "Gsub") -> FactoryCalibratedCGM:
        """The published sensor ``"DexcomG6"`` (Vettoretti et al. 2019, Tables 1 and 2)."""
        if name != "DexcomG6":
            raise ConfigurationError(
                f"unknown factory-calibrated CGM {name!r}; choose one of DexcomG6"
            )
        return cls(
            name="DexcomG6",
            sample_time=5.0,
            gain=(1.048, -0.033, 0.002),
            offset=(-6.398, 6.179, -0.448),
            alpha=(1.220, -0.331),
            lambda2=3.641,
            beta=(1.34, -0.492),
            sigma2=5.538,
            observation=observation,
        )

    def noise_sd(self) -> float:
        """Stationary SD (mg/dL) of the random part ``v + c`` (the AR(2) variance formula)."""

        def var(a: tuple[float, float], s2: float) -> float:
            a1, a2 = a
            return s2 * (1 - a2) / ((1 + a2) * ((1 - a2) ** 2 - a1**2))

        return math.sqrt(var(self.alpha, self.lambda2) + var(self.beta, self.sigma2))

    def noise(self, key: Any, n_samples: int) -> Array:
        """Gain and additive error of ``n_samples`` consecutive readings, shape (n_samples, 2)."""
        n = _check_n_samples(n_samples)
        kv, kc = jax.random.split(key)
        v = _ar2(kv, n, self.alpha, self.lambda2)
        c = _ar2(kc, n, self.beta, self.sigma2)
        d = jnp.mod(jnp.arange(n) * self.sample_time / 1440.0, self.lifetime_days)
        a0, a1, a2 = self.gain
        b0, b1, b2 = self.offset
        gain = a0 + a1 * d + a2 * d**2
        return jnp.stack([gain, b0 + b1 * d + b2 * d**2 + v + c], axis=-1)

    def read(self, value: Array, noise: Array) -> Array:
        """The reading ``gain * value + error``, clipped to ``[min_mg_dl, max_mg_dl]``."""
        return jnp.clip(noise[..., 0] * value + noise[..., 1], self.min_mg_dl, self.max_mg_dl)


def _ar2(key: Any, n: int, a: tuple[float, float], s2: float) -> Array:
    """``n`` samples of a stationary zero-mean AR(2) with innovation variance ``s2``."""
    a1, a2 = a
    # stationary variance and lag-1 autocorrelation start the recursion in equilibrium
    var = s2 * (1 - a2) / ((1 + a2) * ((1 - a2) ** 2 - a1**2))
    rho1 = a1 / (1 - a2)
    z = jax.random.normal(key, (n + 2,), dtype=jnp.float64)
    x0 = math.sqrt(var) * z[0]
    x1 = rho1 * x0 + math.sqrt(var * (1 - rho1**2)) * z[1]

    def step(carry: tuple[Array, Array], w: Array) -> tuple[tuple[Array, Array], Array]:
        x_2, x_1 = carry
        x = a1 * x_1 + a2 * x_2 + math.sqrt(s2) * w
        return (x_1, x), x

    _, xs = jax.lax.scan(step, (x0, x1), z[2:])
    return xs


def sensor_named(name: str, *, observation: str = "Gsub") -> CGMSensor | FactoryCalibratedCGM:
    """A CGM of the catalogue by name: ``DexcomG6`` (factory-calibrated) or a simglucose sensor.

    >>> sensor_named("DexcomG6").name, sensor_named("GuardianRT").sample_time
    ('DexcomG6', 5.0)
    """
    if name == "DexcomG6":
        return FactoryCalibratedCGM.named(name, observation=observation)
    return CGMSensor.named(name, observation=observation)
