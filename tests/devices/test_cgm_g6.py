"""The factory-calibrated Dexcom G6 error model (Vettoretti et al., IEEE EMBC 2019)."""

from __future__ import annotations

import dataclasses

import jax
import numpy as np
import pytest

from medtwin.devices import FactoryCalibratedCGM, sensor_named
from medtwin.errors import ConfigurationError
from medtwin.models import UvaPadova2008, load_patients
from medtwin.simulate import Schedule, Sensor, simulate


@pytest.fixture(scope="module")
def draws() -> np.ndarray:
    g6 = FactoryCalibratedCGM.named("DexcomG6")
    keys = jax.random.split(jax.random.key(7), 400)
    return np.asarray(jax.vmap(lambda k: g6.noise(k, 2880))(keys))  # 400 sensors x 10 days


def test_g6_carries_the_published_parameters() -> None:
    # Vettoretti et al. 2019, Table 1 (calibration polynomials) and Table 2 (AR(2) noise)
    g6 = FactoryCalibratedCGM.named("DexcomG6")
    assert g6.gain == (1.048, -0.033, 0.002) and g6.offset == (-6.398, 6.179, -0.448)
    assert g6.alpha == (1.220, -0.331) and g6.lambda2 == 3.641
    assert g6.beta == (1.34, -0.492) and g6.sigma2 == 5.538
    assert (g6.sample_time, g6.min_mg_dl, g6.max_mg_dl) == (5.0, 40.0, 400.0)
    assert isinstance(g6, Sensor)


def test_noise_has_the_stationary_spread_and_memory_of_its_ar2_processes(
    draws: np.ndarray,
) -> None:
    g6 = FactoryCalibratedCGM.named("DexcomG6")
    d = np.arange(2880) * 5.0 / 1440.0
    drift = -6.398 + 6.179 * d - 0.448 * d**2
    random = draws[..., 1] - drift
    assert random.std() == pytest.approx(g6.noise_sd(), rel=0.03)
    assert g6.noise_sd() == pytest.approx(7.96, abs=0.01)

    # AR(2) autocorrelation: rho1 = a1 / (1 - a2), rho_k = a1 rho_{k-1} + a2 rho_{k-2}, per process
    def acf(a: tuple[float, float], lags: int) -> np.ndarray:
        rho = [1.0, a[0] / (1 - a[1])]
        for _ in range(lags - 1):
            rho.append(a[0] * rho[-1] + a[1] * rho[-2])
        return np.array(rho)

    def var(a: tuple[float, float], s2: float) -> float:
        return s2 * (1 - a[1]) / ((1 + a[1]) * ((1 - a[1]) ** 2 - a[0] ** 2))

    vv, vc = var(g6.alpha, g6.lambda2), var(g6.beta, g6.sigma2)
    expected = (vv * acf(g6.alpha, 6) + vc * acf(g6.beta, 6)) / (vv + vc)
    for lag in (1, 6):
        r = np.corrcoef(random[:, :-lag].ravel(), random[:, lag:].ravel())[0, 1]
        assert r == pytest.approx(expected[lag], abs=0.03)


def test_gain_follows_the_calibration_polynomial_over_the_sensor_life(draws: np.ndarray) -> None:
    d = np.arange(2880) * 5.0 / 1440.0
    np.testing.assert_allclose(draws[0, :, 0], 1.048 - 0.033 * d + 0.002 * d**2, rtol=1e-12)
    # a new sensor after 10 days starts its calibration error again
    again = np.asarray(FactoryCalibratedCGM.named("DexcomG6").noise(jax.random.key(0), 2890))
    assert again[2880, 0] == pytest.approx(1.048)


def test_reading_combines_gain_and_error_and_clips() -> None:
    g6 = FactoryCalibratedCGM.named("DexcomG6")
    assert float(g6.read(100.0, np.array([1.1, -5.0]))) == pytest.approx(105.0)
    assert float(g6.read(500.0, np.array([1.0, 0.0]))) == 400.0
    assert float(g6.read(20.0, np.array([1.0, 0.0]))) == 40.0


def test_the_engine_reads_a_g6_per_patient_independently_of_chunking() -> None:
    vp = load_patients(["adult#001", "adult#002", "adult#003"])
    t = np.arange(0, 24 * 60 + 1, 5.0)
    sched = Schedule().meal(60, 50)
    g6 = sensor_named("DexcomG6")
    a = simulate(UvaPadova2008, sched, t, params=vp.params, sensor=g6, seed=3)
    b = simulate(UvaPadova2008, sched, t, params=vp.params, sensor=g6, seed=3, chunk_size=1)
    np.testing.assert_allclose(np.asarray(a["sensor"]), np.asarray(b["sensor"]), rtol=1e-13)
    err = np.asarray(a["sensor"]) - np.asarray(a["Gsub"])
    assert 2.0 < err.std() < 20.0  # a few mg/dL, not the 12.5 of the 2008-era GuardianRT


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"alpha": (1.5, -0.2)}, "alpha"),
        ({"beta": (0.5, 1.2)}, "beta"),
        ({"sample_time": 0.0}, "sample_time"),
        ({"lambda2": -1.0}, "lambda2"),
        ({"min_mg_dl": 500.0}, "min_mg_dl"),
    ],
)
def test_bad_settings_are_refused_naming_the_field(change: dict, field: str) -> None:
    g6 = FactoryCalibratedCGM.named("DexcomG6")
    with pytest.raises(ConfigurationError, match=field):
        dataclasses.replace(g6, **change)


def test_unknown_names_are_refused() -> None:
    with pytest.raises(ConfigurationError, match="DexcomG6"):
        FactoryCalibratedCGM.named("Libre")
    with pytest.raises(ConfigurationError, match="unknown CGM sensor"):
        sensor_named("Libre")
