import jax
import jax.numpy as jnp
import numpy as np
import pytest

from medtwin.errors import ParameterError
from medtwin.models.pk import (
    CovariateModel,
    Linear,
    MichaelisMenten,
    Power,
    ThreeCompartmentOral,
    cockcroft_gault,
)


def test_allometric_scaling_uses_three_quarters_for_clearances_and_one_for_volumes():
    cov = CovariateModel.allometric(ThreeCompartmentOral)
    exponents = {e.param: e.exponent for e in cov.effects}
    assert exponents == {"CL": 0.75, "V1": 1.0, "Q2": 0.75, "V2": 1.0, "Q3": 0.75, "V3": 1.0}
    p = cov.apply(ThreeCompartmentOral.defaults(), {"WT": np.array([17.5, 70.0, 140.0])})
    np.testing.assert_allclose(p["CL"], 5.0 * np.array([0.25, 1.0, 2.0]) ** 0.75)
    np.testing.assert_allclose(p["V3"], 100.0 * np.array([0.25, 1.0, 2.0]))
    assert float(p["KA"]) == 1.0  # untouched
    assert {e.param for e in CovariateModel.allometric(MichaelisMenten).effects} == {"VMAX", "V"}


def test_renal_function_and_age_compose_multiplicatively():
    cov = CovariateModel((Power("CL", "CRCL", 100.0, 0.7),)) + CovariateModel(
        (Linear("CL", "AGE", 40.0, -0.01),)
    )
    assert cov.covariates == ("CRCL", "AGE")
    p = cov.apply({"CL": 10.0}, {"CRCL": np.array([50.0, 100.0]), "AGE": np.array([40.0, 60.0])})
    np.testing.assert_allclose(p["CL"], [10.0 * 0.5**0.7, 10.0 * 0.8])


def test_covariate_models_are_differentiable():
    cov = CovariateModel.allometric(ThreeCompartmentOral)
    grad = jax.grad(
        lambda cl: cov.apply(
            {"CL": cl, "V1": 1.0, "Q2": 1.0, "V2": 1.0, "Q3": 1.0, "V3": 1.0}, {"WT": 35.0}
        )["CL"]
    )(jnp.asarray(4.0))
    assert float(grad) == pytest.approx(0.5**0.75)


def test_cockcroft_gault():
    # (140 - 60) * 80 / (72 * 1.2) = 74.07 mL/min; women x 0.85
    crcl = cockcroft_gault(np.array([60, 60]), 80.0, 1.2, np.array([False, True]))
    np.testing.assert_allclose(crcl, [74.074074, 62.962963], rtol=1e-6)


def test_bad_covariate_models_are_rejected():
    with pytest.raises(ParameterError, match="reference > 0"):
        Power("CL", "WT", 0.0, 0.75)
    with pytest.raises(ParameterError, match="needs \\['WT'\\]"):
        CovariateModel.allometric(ThreeCompartmentOral).apply(ThreeCompartmentOral.defaults(), {})
    with pytest.raises(ParameterError, match="'CL'"):
        CovariateModel((Linear("CL", "AGE", 40.0, 0.1),)).apply({"V": 1.0}, {"AGE": 3.0})
